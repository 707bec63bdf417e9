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
    let mut solver = Solver::new(p.capacity.clone());
    let mut order: Vec<usize> = (0..p.demand.len()).collect();
    order.sort_by(|a, b| p.weight[*b].cmp(&p.weight[*a]).then(a.cmp(b)));
    let mut slot = vec![0; p.demand.len()];
    for i in order {
        slot[i] = solver.add_need(p.demand[i], p.eligible[i].clone());
    }
    Plan {
        flow: slot
            .iter()
            .map(|&k| {
                let mut f = solver.flow(k);
                f.sort();
                f
            })
            .collect(),
    }
}

/// The greedy-with-rerouting algorithm, one need at a time: needs must be added in falling
/// weight (best rank first). After each [`Solver::add_need`] the plan is optimal for the needs
/// added so far, so a caller can stop adding once no capacity is left ([`Solver::free`]).
/// Capacities are fixed at construction; that is what keeps the dead-offer pruning sound.
#[derive(Clone, Debug, Default)]
pub struct Solver {
    demand: Vec<i32>,
    eligible: Vec<Vec<usize>>,
    /// x[i][k]: units need i takes from offer eligible[i][k].
    x: Vec<Vec<i32>>,
    left: Vec<i32>,
    /// Who uses each offer: (need, position in its eligible list).
    users: Vec<Vec<(usize, usize)>>,
    /// Offers from which no free capacity can be reached: once so, always so (capacity only
    /// shrinks and later paths never pass through them), so searches skip them.
    dead: Vec<bool>,
}

impl Solver {
    pub fn new(capacity: Vec<i32>) -> Self {
        let offers = capacity.len();
        Self {
            left: capacity,
            users: vec![Vec::new(); offers],
            dead: vec![false; offers],
            ..Self::default()
        }
    }

    /// Adds a need for `demand` units that may use `eligible` offers, preferred first, and
    /// serves it as fully as the network allows; returns the need's index.
    pub fn add_need(&mut self, demand: i32, eligible: Vec<usize>) -> usize {
        let i = self.demand.len();
        for (k, &j) in eligible.iter().enumerate() {
            self.users[j].push((i, k));
        }
        self.x.push(vec![0; eligible.len()]);
        self.demand.push(demand);
        self.eligible.push(eligible);
        let mut missing = demand;
        // Direct capacity first, in the need's order of preference: no rerouting needed.
        for (k, &j) in self.eligible[i].iter().enumerate() {
            let take = missing.min(self.left[j]);
            if take > 0 {
                self.x[i][k] += take;
                self.left[j] -= take;
                missing -= take;
            }
        }
        while missing > 0 {
            let Some(path) = self.augmenting_path(i) else {
                break;
            };
            missing -= self.push(&path, missing);
        }
        i
    }

    /// Units still unassigned over all offers.
    pub fn free(&self) -> i64 {
        self.left.iter().map(|&u| u as i64).sum()
    }

    /// (offer, units) given to need `i`, in its order of preference.
    pub fn flow(&self, i: usize) -> Vec<(usize, i32)> {
        self.x[i]
            .iter()
            .zip(&self.eligible[i])
            .filter(|(u, _)| **u > 0)
            .map(|(u, &j)| (j, *u))
            .collect()
    }

    /// Breadth-first search from need `start` to an offer with capacity left, through full
    /// offers and the needs holding them, which can take their unit from elsewhere.
    fn augmenting_path(&mut self, start: usize) -> Option<Path> {
        // How each offer was reached: (need, slot); how each need was reached: (offer, slot).
        let mut offer_from: Vec<Option<(usize, usize)>> = vec![None; self.left.len()];
        let mut need_from: Vec<Option<(usize, usize)>> = vec![None; self.demand.len()];
        let mut seen_need = vec![false; self.demand.len()];
        let mut queue = std::collections::VecDeque::new();
        seen_need[start] = true;
        queue.push_back(start);
        while let Some(i) = queue.pop_front() {
            for (k, &j) in self.eligible[i].iter().enumerate() {
                if offer_from[j].is_some() || self.dead[j] {
                    continue;
                }
                offer_from[j] = Some((i, k));
                if self.left[j] > 0 {
                    return Some(self.trace(start, j, &offer_from, &need_from));
                }
                for &(holder, hk) in &self.users[j] {
                    if self.x[holder][hk] > 0 && !seen_need[holder] {
                        seen_need[holder] = true;
                        need_from[holder] = Some((j, hk));
                        queue.push_back(holder);
                    }
                }
            }
        }
        for (j, reached) in offer_from.iter().enumerate() {
            if reached.is_some() {
                self.dead[j] = true;
            }
        }
        None
    }

    fn trace(
        &self,
        start: usize,
        end: usize,
        offer_from: &[Option<(usize, usize)>],
        need_from: &[Option<(usize, usize)>],
    ) -> Path {
        let mut path = Path {
            end,
            ..Path::default()
        };
        let mut j = end;
        while let Some((i, k)) = offer_from[j] {
            path.take.push((i, k));
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
    fn push(&mut self, path: &Path, want: i32) -> i32 {
        let bottleneck = path
            .give
            .iter()
            .map(|&(h, hk)| self.x[h][hk])
            .fold(want.min(self.left[path.end]), i32::min);
        if bottleneck <= 0 {
            return 0;
        }
        for &(i, k) in &path.take {
            self.x[i][k] += bottleneck;
        }
        for &(h, hk) in &path.give {
            self.x[h][hk] -= bottleneck;
        }
        self.left[path.end] -= bottleneck;
        bottleneck
    }
}

/// Edges of an augmenting path, from the start need to an offer with capacity left.
#[derive(Clone, Debug, Default)]
struct Path {
    /// Need takes more of an offer: (need, slot in its eligible list).
    take: Vec<(usize, usize)>,
    /// Need gives back units of an offer it held: (need, slot).
    give: Vec<(usize, usize)>,
    end: usize,
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
