//! Helpers shared by the fold's scenario tests.
#![allow(dead_code)]

use rallypoint_core::decision::{Audience, Decision};
use rallypoint_core::event::{Capability, Envelope, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use rallypoint_core::{apply, CoreConfig, Event, MemStore, Output, RejectReason};

pub struct World {
    pub store: MemStore,
    pub config: CoreConfig,
    pub clock: Clock,
}

impl World {
    pub fn new() -> Self {
        Self {
            store: MemStore::new(),
            config: CoreConfig {
                acceptance_timeout_ms: 600_000,
                ..CoreConfig::default()
            },
            clock: Clock::new(1_800_000_000_000, 1_000),
        }
    }

    pub fn env(&mut self, nation: &str) -> Envelope {
        self.clock.envelope(nation)
    }

    /// Decisions and rejections; threat-picture and hunt updates are left to
    /// [`World::apply_all`].
    pub fn apply(&mut self, e: &Event) -> Vec<Output> {
        let mut out = self.apply_all(e);
        out.retain(|o| !matches!(o, Output::Picture(_) | Output::Hunt(_)));
        out
    }

    pub fn apply_all(&mut self, e: &Event) -> Vec<Output> {
        apply(&mut self.store, &self.config, e).unwrap()
    }

    /// Reports an incident of `nation` and asks for `units` of `cap`; returns the outputs of the request.
    pub fn hit(
        &mut self,
        nation: &str,
        id: &str,
        tlp: Tlp,
        cap: Capability,
        units: i32,
    ) -> Vec<Output> {
        let e = self.env(nation);
        assert!(self
            .apply(&sample::incident(e, id, tlp, Priority::Severe))
            .is_empty());
        let e = self.env(nation);
        self.apply(&sample::request(e, &format!("R-{id}"), id, &[(cap, units)]))
    }

    pub fn offer(&mut self, nation: &str, id: &str, cap: Capability, units: i32) -> Vec<Output> {
        let e = self.env(nation);
        self.apply(&sample::offer(e, id, cap, units))
    }
}

/// Decisions for one audience, as (type, assignment or request key).
pub fn seen_by(outputs: &[Output], who: &Audience) -> Vec<(&'static str, String)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Decision(r) if &r.audience == who => {
                Some((r.decision.type_name(), r.decision.key().to_owned()))
            }
            _ => None,
        })
        .collect()
}

pub fn nation(n: &str) -> Audience {
    Audience::Nation(n.into())
}

pub fn rejection(outputs: &[Output]) -> Option<RejectReason> {
    outputs.iter().find_map(|o| match o {
        Output::Rejected(r) => Some(r.reason),
        _ => None,
    })
}

/// Every decision of the outputs (all audiences), in order.
pub fn decisions(outputs: &[Output]) -> Vec<&Decision> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Decision(r) => Some(&r.decision),
            _ => None,
        })
        .collect()
}

/// The decisions the coordination cell sees (each decision once), as (type, key).
pub fn cell(outputs: &[Output]) -> Vec<(&'static str, String)> {
    seen_by(outputs, &Audience::Coalition)
}

/// (assignment, offer, units) of each proposal the cell sees.
pub fn proposals(outputs: &[Output]) -> Vec<(String, String, i32)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Decision(r) if r.audience == Audience::Coalition => match &r.decision {
                Decision::AssignmentProposed(p) => {
                    Some((p.assignment_id.clone(), p.offer_id.clone(), p.units))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}
