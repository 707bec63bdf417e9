//! Small builders of valid events, for tests, benchmarks and the simulator. Each returns an
//! event that passes [`crate::validate`]; callers change the fields they care about.

use crate::decision::{Audience, Decision};
use crate::event::*;
use crate::store::{StoreError, StoreMut};
use crate::{apply, CoreConfig, Output};

/// A clock for building events: `reported_at` of the next event, moving on by `step_ms`.
#[derive(Clone, Debug)]
pub struct Clock {
    pub now: i64,
    pub step_ms: i64,
    counter: u64,
}

impl Clock {
    pub fn new(start_ms: i64, step_ms: i64) -> Self {
        Self {
            now: start_ms,
            step_ms,
            counter: 0,
        }
    }

    /// A fresh envelope for `nation`, with a deterministic UUID-shaped event id.
    pub fn envelope(&mut self, nation: &str) -> Envelope {
        self.counter += 1;
        self.now += self.step_ms;
        Envelope {
            event_id: uuid_from(self.counter, self.now),
            occurred_at: self.now - 60_000,
            reported_at: self.now,
            nation: nation.to_owned(),
            schema_version: 2,
        }
    }
}

/// A UUID-shaped id (version 4 layout) derived from two numbers.
pub fn uuid_from(a: u64, b: i64) -> String {
    let x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (b as u64);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (x >> 32) as u32,
        (x >> 16) as u16,
        x as u16 & 0xfff,
        (a as u16) & 0xfff,
        a & 0xffff_ffff_ffff
    )
}

pub fn incident(env: Envelope, id: &str, tlp: Tlp, priority: Priority) -> Event {
    incident_with(env, id, tlp, priority, |_| {})
}

/// An [`incident`] whose fields `change` sets further (the simulator's sectors and techniques).
pub fn incident_with(
    env: Envelope,
    id: &str,
    tlp: Tlp,
    priority: Priority,
    change: impl FnOnce(&mut IncidentReported),
) -> Event {
    let mut incident = IncidentReported {
        envelope: env,
        incident_id: id.to_owned(),
        title: format!("Incident {id}"),
        tlp,
        pap: Pap::Amber,
        sector: Sector::Energy,
        rsit_class: RsitClass::MaliciousCode,
        priority,
        essential_entity: true,
        cross_border: false,
        impact: Impact {
            functional: 60,
            information: 40,
            recoverability: 50,
        },
        techniques: vec!["T1486".into(), "T1059.001".into()],
        indicators: vec![Indicator::new(IndicatorKind::Ipv4, "203.0.113.7".into())],
        hunt_release: HuntRelease::Default,
    };
    change(&mut incident);
    Event::IncidentReported(incident)
}

pub fn request(env: Envelope, id: &str, incident: &str, needs: &[(Capability, i32)]) -> Event {
    Event::AssistanceRequested(AssistanceRequested {
        envelope: env,
        request_id: id.to_owned(),
        incident_id: incident.to_owned(),
        needs: needs
            .iter()
            .map(|&(capability, units)| CapabilityNeed {
                capability,
                units,
                delivery: Delivery::Either,
            })
            .collect(),
        own_measures: 50,
    })
}

pub fn closed(env: Envelope, incident: &str) -> Event {
    Event::IncidentClosed(IncidentClosed {
        envelope: env,
        incident_id: incident.to_owned(),
        resolution: "contained".into(),
    })
}

/// An offer available for a year from the envelope's time, answering in 60 minutes.
pub fn offer(env: Envelope, id: &str, capability: Capability, units: i32) -> Event {
    offer_with(env, id, capability, units, |_| {})
}

/// An [`offer`] whose fields `change` sets further (its TLP ceiling, eligible nations, team).
pub fn offer_with(
    env: Envelope,
    id: &str,
    capability: Capability,
    units: i32,
    change: impl FnOnce(&mut AssetOffered),
) -> Event {
    let from = env.reported_at - 1_000;
    let mut offer = AssetOffered {
        envelope: env,
        offer_id: id.to_owned(),
        team: format!("Team {id}"),
        capability,
        capacity_units: units,
        available_from: from,
        available_until: from + 365 * 24 * 3_600_000,
        response_time_minutes: 60,
        eligible_nations: vec![],
        excluded_nations: vec![],
        max_tlp: Tlp::Amber,
        sector_expertise: vec![Sector::Energy],
        delivery: Delivery::Either,
    };
    change(&mut offer);
    Event::AssetOffered(offer)
}

/// New terms for offer `id`, as [`offer`] states them, with `units` of capacity.
pub fn offer_updated(env: Envelope, id: &str, units: i32) -> Event {
    let Event::AssetOffered(o) = offer(env, id, Capability::Forensics, units) else {
        unreachable!("offer builds an AssetOffered")
    };
    Event::OfferUpdated(OfferUpdated {
        envelope: o.envelope,
        offer_id: o.offer_id,
        capacity_units: o.capacity_units,
        available_from: o.available_from,
        available_until: o.available_until,
        response_time_minutes: o.response_time_minutes,
        eligible_nations: o.eligible_nations,
        excluded_nations: o.excluded_nations,
        max_tlp: o.max_tlp,
        sector_expertise: o.sector_expertise,
        delivery: o.delivery,
    })
}

/// The incident re-assessed at `priority`, with one more technique seen.
pub fn incident_updated(env: Envelope, incident: &str, priority: Priority) -> Event {
    Event::IncidentUpdated(IncidentUpdated {
        envelope: env,
        incident_id: incident.to_owned(),
        priority,
        essential_entity: true,
        cross_border: true,
        impact: Impact {
            functional: 80,
            information: 50,
            recoverability: 60,
        },
        techniques: vec!["T1021.001".into()],
        indicators: vec![Indicator::new(
            IndicatorKind::Domain,
            "update.example.net".into(),
        )],
    })
}

pub fn completed(env: Envelope, assignment: &str) -> Event {
    Event::AssignmentCompleted(AssignmentCompleted {
        envelope: env,
        assignment_id: assignment.to_owned(),
        summary: "systems restored".into(),
    })
}

/// A sighting of `indicator` by the envelope's nation: seen once, at the envelope's time, GREEN
/// and not anonymous.
pub fn sighted(env: Envelope, id: &str, indicator: Indicator, kind: SightingKind) -> Event {
    sighted_with(env, id, indicator, kind, |_| {})
}

/// A [`sighted`] whose fields `change` sets further (the simulated SIEMs' counts, times and
/// the hunt indicator they answer).
pub fn sighted_with(
    env: Envelope,
    id: &str,
    indicator: Indicator,
    kind: SightingKind,
    change: impl FnOnce(&mut IndicatorSighted),
) -> Event {
    let at = env.occurred_at;
    let mut sighting = IndicatorSighted {
        envelope: env,
        sighting_id: id.to_owned(),
        hunt_id: None,
        indicator,
        kind,
        count: 1,
        first_seen: at,
        last_seen: at,
        source: "siem".into(),
        sector: None,
        tlp: Tlp::Green,
        anonymous: false,
    };
    change(&mut sighting);
    Event::IndicatorSighted(sighting)
}

pub fn withdrawn(env: Envelope, offer: &str) -> Event {
    Event::OfferWithdrawn(OfferWithdrawn {
        envelope: env,
        offer_id: offer.to_owned(),
        reason: "team recalled".into(),
    })
}

pub fn accepted(env: Envelope, assignment: &str) -> Event {
    Event::AssignmentAccepted(AssignmentAccepted {
        envelope: env,
        assignment_id: assignment.to_owned(),
    })
}

pub fn declined(env: Envelope, assignment: &str) -> Event {
    Event::AssignmentDeclined(AssignmentDeclined {
        envelope: env,
        assignment_id: assignment.to_owned(),
        reason: "team committed at home".into(),
    })
}

/// A deterministic mixed stream of `n` events from `nations`: offers, incidents with requests,
/// updates of both, closures, withdrawals, and answers to the proposals the fold would make are not included
/// (they depend on the fold). For benchmarks and property tests.
pub fn stream(nations: &[&str], n: usize, seed: u64) -> Vec<Event> {
    let mut rng = Lcg(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut clock = Clock::new(1_800_000_000_000, 250);
    let mut out = Vec::with_capacity(n);
    let mut open: Vec<(String, String)> = Vec::new();
    let mut offers: Vec<(String, String)> = Vec::new();
    let tlps = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];
    let priorities = [
        Priority::Medium,
        Priority::High,
        Priority::Severe,
        Priority::Emergency,
    ];
    while out.len() < n {
        let nation = nations[rng.below(nations.len())];
        let k = out.len();
        match rng.below(100) {
            0..=19 => {
                let cap = Capability::ALL[rng.below(Capability::ALL.len())];
                let id = format!("O-{k}");
                let mut e = offer(clock.envelope(nation), &id, cap, 1 + rng.below(6) as i32);
                if let Event::AssetOffered(o) = &mut e {
                    o.max_tlp = tlps[2 + rng.below(4)];
                }
                offers.push((nation.to_owned(), id));
                out.push(e);
            }
            20..=79 => {
                let id = format!("I-{k}");
                let tlp = tlps[rng.below(tlps.len())];
                let mut report =
                    incident(clock.envelope(nation), &id, tlp, priorities[rng.below(4)]);
                if let Event::IncidentReported(r) = &mut report {
                    // Shared infrastructure from a small pool links some incidents into
                    // campaigns; a file hash of its own links none.
                    r.indicators = vec![
                        Indicator::new(
                            IndicatorKind::Domain,
                            format!("c2-{}.example.net", rng.below(40)),
                        ),
                        Indicator::new(
                            IndicatorKind::Sha256,
                            format!("{:064x}", k as u128 * 0x9E37_79B9_7F4A_7C15 + seed as u128),
                        ),
                    ];
                }
                out.push(report);
                let cap = Capability::ALL[rng.below(Capability::ALL.len())];
                out.push(request(
                    clock.envelope(nation),
                    &format!("R-{k}"),
                    &id,
                    &[(cap, 1 + rng.below(3) as i32)],
                ));
                open.push((nation.to_owned(), id));
            }
            90..=94 if !open.is_empty() => {
                let (owner, id) = open.swap_remove(rng.below(open.len()));
                out.push(closed(clock.envelope(&owner), &id));
            }
            80..=84 if !open.is_empty() => {
                let (owner, id) = &open[rng.below(open.len())];
                let p = priorities[rng.below(4)];
                out.push(incident_updated(clock.envelope(owner), id, p));
            }
            85..=89 if !offers.is_empty() => {
                let (owner, id) = &offers[rng.below(offers.len())];
                let units = 1 + rng.below(6) as i32;
                out.push(offer_updated(clock.envelope(owner), id, units));
            }
            95..=99 if !offers.is_empty() => {
                let (owner, id) = offers.swap_remove(rng.below(offers.len()));
                out.push(withdrawn(clock.envelope(&owner), &id));
            }
            _ => {}
        }
    }
    out.truncate(n);
    out
}

/// How a provider answers a proposal in a generated run: by code 0 to 3, accept, decline, stay
/// silent (the deadline passes), or accept and later report the work completed.
pub fn answer(
    queue: &mut std::collections::VecDeque<Event>,
    clock: &mut Clock,
    provider: &str,
    assignment: &str,
    code: u8,
) {
    let env = clock.envelope(provider);
    match code % 4 {
        0 => queue.push_back(accepted(env, assignment)),
        1 => queue.push_back(declined(env, assignment)),
        2 => {}
        _ => {
            queue.push_back(accepted(env, assignment));
            let env = clock.envelope(provider);
            queue.push_back(completed(env, assignment));
        }
    }
}

/// Folds `events` into `store`, answering the k-th proposal (counted from 1) with
/// [`answer`] code `code(k)`, in the stream's own time: some answers arrive in time, and
/// silence times out. Returns every event applied, in order (a journal), and every output.
pub fn fold_with_answers<S: StoreMut>(
    store: &mut S,
    config: &CoreConfig,
    events: Vec<Event>,
    mut code: impl FnMut(usize) -> u8,
) -> Result<(Vec<Event>, Vec<Output>), StoreError> {
    let mut clock = Clock::new(0, 1);
    let mut k = 0;
    let mut queue: std::collections::VecDeque<Event> = events.into();
    let (mut journal, mut outputs) = (Vec::new(), Vec::new());
    while let Some(e) = queue.pop_front() {
        clock.now = clock.now.max(e.envelope().reported_at);
        for o in apply(store, config, &e)? {
            if let Output::Decision(r) = &o {
                if let (Decision::AssignmentProposed(p), Audience::Coalition) =
                    (&r.decision, &r.audience)
                {
                    k += 1;
                    answer(
                        &mut queue,
                        &mut clock,
                        &p.provider_nation,
                        &p.assignment_id,
                        code(k),
                    );
                }
            }
            outputs.push(o);
        }
        journal.push(e);
    }
    Ok((journal, outputs))
}

/// A small, fixed pseudo-random generator: the same seed gives the same stream everywhere.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}
