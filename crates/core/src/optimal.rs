//! Optimal matching of needs to offers: maximize the priority-weighted units covered.
//!
//! Needs `i` want `demand[i]` units and weigh `weight[i]` per unit; offers `j` have
//! `capacity[j]` units; `eligible[i]` lists the offers need `i` may use. The units each need
//! can be served together form a polymatroid (the capacity of a set of needs is bounded by
//! what their eligible offers hold, as in Hall's theorem), and on a polymatroid the greedy
//! order is optimal: serve needs in falling weight, each as fully as the network allows, where
//! "allows" includes moving units already given to earlier needs onto other eligible offers
//! (augmenting paths). Earlier needs keep every unit they were given; only which offer gives
//! it may change. Ties in weight keep the order the needs are given in (their rank).
//!
//! This function performs no I/O and is deterministic: the same input gives the same plan.

/// A matching problem; indices into `demand`/`weight` are needs, into `capacity` offers.
#[derive(Clone, Debug, Default)]
pub struct Problem {
    pub demand: Vec<i32>,
    pub weight: Vec<i64>,
    pub capacity: Vec<i32>,
    pub eligible: Vec<Vec<usize>>,
}

/// Units given: `flow[i]` lists (offer, units) for need `i`, offers ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub flow: Vec<Vec<(usize, i32)>>,
}

impl Plan {
    /// Units served per need.
    pub fn served(&self) -> Vec<i32> {
        self.flow
            .iter()
            .map(|f| f.iter().map(|(_, u)| u).sum())
            .collect()
    }

    /// The objective: priority-weighted units covered.
    pub fn value(&self, p: &Problem) -> i64 {
        self.served()
            .iter()
            .zip(&p.weight)
            .map(|(s, w)| *s as i64 * w)
            .sum()
    }
}

/// The optimal plan.
pub fn solve(p: &Problem) -> Plan {
    let needs = p.demand.len();
    let offers = p.capacity.len();
    // x[i][j]: units need i takes from offer j (dense per need over its eligible list).
    let mut x: Vec<Vec<i32>> = p.eligible.iter().map(|e| vec![0; e.len()]).collect();
    let mut left: Vec<i32> = p.capacity.clone();
    // Who uses each offer: (need, position in its eligible list).
    let mut users: Vec<Vec<(usize, usize)>> = vec![Vec::new(); offers];
    for (i, e) in p.eligible.iter().enumerate() {
        for (k, &j) in e.iter().enumerate() {
            users[j].push((i, k));
        }
    }
    // Offers from which no free capacity can be reached: once so, always so (capacity only
    // shrinks and later paths never pass through them), so searches skip them.
    let mut dead = vec![false; offers];
    let mut order: Vec<usize> = (0..needs).collect();
    order.sort_by(|a, b| p.weight[*b].cmp(&p.weight[*a]).then(a.cmp(b)));
    for i in order {
        let mut missing = p.demand[i];
        // Direct capacity first: no rerouting needed.
        for (k, &j) in p.eligible[i].iter().enumerate() {
            let take = missing.min(left[j]);
            if take > 0 {
                x[i][k] += take;
                left[j] -= take;
                missing -= take;
            }
        }
        while missing > 0 {
            let Some(path) = augmenting_path(p, i, &x, &left, &users, &mut dead) else {
                break;
            };
            let pushed = push(p, &path, missing, &mut x, &mut left);
            missing -= pushed;
        }
    }
    Plan {
        flow: x
            .iter()
            .enumerate()
            .map(|(i, xs)| {
                let mut f: Vec<(usize, i32)> = xs
                    .iter()
                    .enumerate()
                    .filter(|(_, u)| **u > 0)
                    .map(|(k, u)| (p.eligible[i][k], *u))
                    .collect();
                f.sort();
                f
            })
            .collect(),
    }
}

/// Edges of an augmenting path, from the start need to an offer with capacity left.
#[derive(Clone, Debug, Default)]
struct Path {
    /// Need takes more of an offer: (need, slot in its eligible list, offer).
    take: Vec<(usize, usize, usize)>,
    /// Need gives back units of an offer it held: (need, slot).
    give: Vec<(usize, usize)>,
    end: usize,
}

/// Breadth-first search from need `start` to an offer with capacity left, through full offers
/// and the needs holding them, which can take their unit from elsewhere.
fn augmenting_path(
    p: &Problem,
    start: usize,
    x: &[Vec<i32>],
    left: &[i32],
    users: &[Vec<(usize, usize)>],
    dead: &mut [bool],
) -> Option<Path> {
    // How each offer was reached: (need, slot); how each need was reached: (offer, slot).
    let mut offer_from: Vec<Option<(usize, usize)>> = vec![None; left.len()];
    let mut need_from: Vec<Option<(usize, usize)>> = vec![None; p.demand.len()];
    let mut seen_need = vec![false; p.demand.len()];
    let mut queue = std::collections::VecDeque::new();
    seen_need[start] = true;
    queue.push_back(start);
    while let Some(i) = queue.pop_front() {
        for (k, &j) in p.eligible[i].iter().enumerate() {
            if offer_from[j].is_some() || dead[j] {
                continue;
            }
            offer_from[j] = Some((i, k));
            if left[j] > 0 {
                return Some(trace(start, j, &offer_from, &need_from, p));
            }
            for &(holder, hk) in &users[j] {
                if x[holder][hk] > 0 && !seen_need[holder] {
                    seen_need[holder] = true;
                    need_from[holder] = Some((j, hk));
                    queue.push_back(holder);
                }
            }
        }
    }
    for (j, reached) in offer_from.iter().enumerate() {
        if reached.is_some() {
            dead[j] = true;
        }
    }
    None
}

fn trace(
    start: usize,
    end: usize,
    offer_from: &[Option<(usize, usize)>],
    need_from: &[Option<(usize, usize)>],
    p: &Problem,
) -> Path {
    let mut path = Path {
        end,
        ..Path::default()
    };
    let mut j = end;
    while let Some((i, k)) = offer_from[j] {
        path.take.push((i, k, p.eligible[i][k]));
        if i == start {
            break;
        }
        let Some((held, hk)) = need_from[i] else {
            break;
        };
        path.give.push((i, hk));
        j = held;
    }
    path
}

/// Moves as many units as the path allows, up to `want`; returns how many moved.
fn push(_p: &Problem, path: &Path, want: i32, x: &mut [Vec<i32>], left: &mut [i32]) -> i32 {
    let bottleneck = path
        .give
        .iter()
        .map(|&(h, hk)| x[h][hk])
        .fold(want.min(left[path.end]), i32::min);
    if bottleneck <= 0 {
        return 0;
    }
    for &(i, k, _) in &path.take {
        x[i][k] += bottleneck;
    }
    for &(h, hk) in &path.give {
        x[h][hk] -= bottleneck;
    }
    left[path.end] -= bottleneck;
    bottleneck
}

/// The optimum by exhaustive search over every vector of served units, each checked for
/// feasibility by Hall's condition (every set of needs fits in what its offers hold). For
/// tests on small problems only: its cost grows exponentially.
pub fn exhaustive_value(p: &Problem) -> i64 {
    let needs = p.demand.len();
    let mut best = 0;
    let mut served = vec![0i32; needs];
    loop {
        if feasible(p, &served) {
            best = best.max(
                served
                    .iter()
                    .zip(&p.weight)
                    .map(|(s, w)| *s as i64 * w)
                    .sum(),
            );
        }
        // Next vector, like an odometer.
        let mut i = 0;
        while i < needs && served[i] == p.demand[i] {
            served[i] = 0;
            i += 1;
        }
        if i == needs {
            return best;
        }
        served[i] += 1;
    }
}

fn feasible(p: &Problem, served: &[i32]) -> bool {
    let needs = p.demand.len();
    (1u32..(1 << needs)).all(|set| {
        let mut want = 0i64;
        let mut reach = vec![false; p.capacity.len()];
        for i in (0..needs).filter(|i| set & (1 << i) != 0) {
            want += served[i] as i64;
            for &j in &p.eligible[i] {
                reach[j] = true;
            }
        }
        let have: i64 = reach
            .iter()
            .zip(&p.capacity)
            .filter(|(r, _)| **r)
            .map(|(_, c)| *c as i64)
            .sum();
        want <= have
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn problem() -> impl Strategy<Value = Problem> {
        (1usize..=8, 1usize..=8).prop_flat_map(|(n, m)| {
            (
                proptest::collection::vec(0i32..=2, n),
                proptest::collection::vec(
                    prop_oneof![Just(1i64), Just(2), Just(4), Just(8), Just(16), Just(32)],
                    n,
                ),
                proptest::collection::vec(0i32..=3, m),
                proptest::collection::vec(proptest::collection::vec(any::<bool>(), m), n),
            )
                .prop_map(|(demand, weight, capacity, edges)| Problem {
                    eligible: edges
                        .iter()
                        .map(|row| {
                            row.iter()
                                .enumerate()
                                .filter(|(_, e)| **e)
                                .map(|(j, _)| j)
                                .collect()
                        })
                        .collect(),
                    demand,
                    weight,
                    capacity,
                })
        })
    }

    #[test]
    fn moving_an_earlier_unit_lets_a_later_need_be_served() {
        // Need 0 (heavier) could use offer 0 or 1; need 1 only offer 0. Greedy without
        // rerouting would leave need 1 empty if need 0 took offer 0.
        let p = Problem {
            demand: vec![1, 1],
            weight: vec![8, 4],
            capacity: vec![1, 1],
            eligible: vec![vec![0, 1], vec![0]],
        };
        let plan = solve(&p);
        assert_eq!(plan.served(), vec![1, 1]);
        assert_eq!(plan.value(&p), 12);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_plan_is_feasible_and_as_good_as_exhaustive_search(p in problem()) {
            let plan = solve(&p);
            let served = plan.served();
            let mut used = vec![0i32; p.capacity.len()];
            for (i, f) in plan.flow.iter().enumerate() {
                prop_assert!(served[i] <= p.demand[i]);
                for &(j, u) in f {
                    prop_assert!(p.eligible[i].contains(&j), "need {} used ineligible offer {}", i, j);
                    used[j] += u;
                }
            }
            for (j, u) in used.iter().enumerate() {
                prop_assert!(*u <= p.capacity[j]);
            }
            prop_assert_eq!(plan.value(&p), exhaustive_value(&p));
        }
    }
}
