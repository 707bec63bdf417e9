//! Decisions: what the coordinator tells the nations and the coordination cell.
//!
//! A decision is built once, in full, then redacted per audience by [`crate::tlp`].

use serde::{Deserialize, Serialize};

use crate::event::{Capability, Priority, RsitClass, Sector, Tlp};

/// Identity of a decision: deterministic, derived from the journal event that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionHeader {
    /// `<cause_event_id>.<n>`: unique, and the same on every replay. A nation sees the cause
    /// under an id of its own unless it sent that event (see [`crate::tlp`]).
    pub decision_id: String,
    pub cause_event_id: String,
    /// Stream time when the decision was taken (ms since the epoch).
    pub stream_time: i64,
}

/// One named input of a score, e.g. `priority_weight = 16`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub value: i64,
}

/// How many candidate offers one eligibility rule excluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    pub rule: String,
    pub excluded: i32,
}

/// Why the coordinator decided as it did, machine-readable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rationale {
    pub score: i64,
    pub criteria: Vec<Criterion>,
    pub candidates: i32,
    pub excluded: Vec<RuleCount>,
}

/// Incident facts that a helper may need: visible or not depending on TLP and audience.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentDetails {
    pub title: String,
    pub rsit_class: RsitClass,
    pub techniques: Vec<String>,
    pub essential_entity: bool,
    pub cross_border: bool,
}

/// Fields shared by every decision about one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub request_id: String,
    pub incident_id: String,
    pub requester_nation: String,
    pub capability: Capability,
    pub tlp: Tlp,
    /// Hidden from audiences that may see only ids and capability.
    pub sector: Option<Sector>,
    pub priority: Option<Priority>,
    /// Hidden from audiences that may see only what they need to act.
    pub details: Option<IncidentDetails>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentProposed {
    pub header: DecisionHeader,
    pub subject: Subject,
    pub assignment_id: String,
    pub offer_id: String,
    pub provider_nation: String,
    pub units: i32,
    /// Stream time by which the provider must accept, or the proposal is cancelled.
    pub respond_by: i64,
    pub rationale: Option<Rationale>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentConfirmed {
    pub header: DecisionHeader,
    pub subject: Subject,
    pub assignment_id: String,
    pub offer_id: String,
    pub provider_nation: String,
    pub units: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    Declined,
    TimedOut,
    OfferWithdrawn,
    IncidentClosed,
    /// The offer's new terms (less capacity, a nation excluded, a lower TLP clearance) no
    /// longer cover the assignment.
    OfferReduced,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentCancelled {
    pub header: DecisionHeader,
    pub subject: Subject,
    pub assignment_id: String,
    pub offer_id: String,
    pub provider_nation: String,
    pub units: i32,
    pub reason: CancelReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistanceUnmet {
    pub header: DecisionHeader,
    pub subject: Subject,
    pub units_requested: i32,
    pub units_missing: i32,
    pub rationale: Option<Rationale>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    AssignmentProposed(AssignmentProposed),
    AssignmentConfirmed(AssignmentConfirmed),
    AssignmentCancelled(AssignmentCancelled),
    AssistanceUnmet(AssistanceUnmet),
}

impl Decision {
    pub fn type_name(&self) -> &'static str {
        match self {
            Decision::AssignmentProposed(_) => "AssignmentProposed",
            Decision::AssignmentConfirmed(_) => "AssignmentConfirmed",
            Decision::AssignmentCancelled(_) => "AssignmentCancelled",
            Decision::AssistanceUnmet(_) => "AssistanceUnmet",
        }
    }

    pub fn header(&self) -> &DecisionHeader {
        match self {
            Decision::AssignmentProposed(d) => &d.header,
            Decision::AssignmentConfirmed(d) => &d.header,
            Decision::AssignmentCancelled(d) => &d.header,
            Decision::AssistanceUnmet(d) => &d.header,
        }
    }

    pub(crate) fn header_mut(&mut self) -> &mut DecisionHeader {
        match self {
            Decision::AssignmentProposed(d) => &mut d.header,
            Decision::AssignmentConfirmed(d) => &mut d.header,
            Decision::AssignmentCancelled(d) => &mut d.header,
            Decision::AssistanceUnmet(d) => &mut d.header,
        }
    }

    pub fn subject(&self) -> &Subject {
        match self {
            Decision::AssignmentProposed(d) => &d.subject,
            Decision::AssignmentConfirmed(d) => &d.subject,
            Decision::AssignmentCancelled(d) => &d.subject,
            Decision::AssistanceUnmet(d) => &d.subject,
        }
    }

    pub fn subject_mut(&mut self) -> &mut Subject {
        match self {
            Decision::AssignmentProposed(d) => &mut d.subject,
            Decision::AssignmentConfirmed(d) => &mut d.subject,
            Decision::AssignmentCancelled(d) => &mut d.subject,
            Decision::AssistanceUnmet(d) => &mut d.subject,
        }
    }

    /// The helping nation, for decisions about an assignment.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Decision::AssignmentProposed(d) => Some(&d.provider_nation),
            Decision::AssignmentConfirmed(d) => Some(&d.provider_nation),
            Decision::AssignmentCancelled(d) => Some(&d.provider_nation),
            Decision::AssistanceUnmet(_) => None,
        }
    }

    /// The Kafka key: the assignment, or the request when there is none.
    pub fn key(&self) -> &str {
        match self {
            Decision::AssignmentProposed(d) => &d.assignment_id,
            Decision::AssignmentConfirmed(d) => &d.assignment_id,
            Decision::AssignmentCancelled(d) => &d.assignment_id,
            Decision::AssistanceUnmet(d) => &d.subject.request_id,
        }
    }

    pub(crate) fn clear_rationale(&mut self) {
        match self {
            Decision::AssignmentProposed(d) => d.rationale = None,
            Decision::AssistanceUnmet(d) => d.rationale = None,
            Decision::AssignmentConfirmed(_) | Decision::AssignmentCancelled(_) => {}
        }
    }
}

/// Who receives an output.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Audience {
    /// A member nation's decision topic, `rrc.out.<NATION>.decisions`.
    Nation(String),
    /// The coordination cell, `rrc.out.coalition.decisions`.
    Coalition,
}

/// A decision redacted for one audience.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    pub audience: Audience,
    pub decision: Decision,
}
