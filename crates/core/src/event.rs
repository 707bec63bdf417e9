//! Input events: what national feeds say, after intake has decoded them.
//!
//! Field names are the Avro field names of `schemas/*.avsc` and the JSON field names that simple
//! feeds send; serde carries both. Times are milliseconds since the Unix epoch (UTC), as Avro's
//! `timestamp-millis`.

use serde::{Deserialize, Serialize};

/// Common header of every input event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// UUID chosen by the feed; a repeated id is a retry and is applied once.
    pub event_id: String,
    /// When the thing happened (e.g. the attack was first seen).
    pub occurred_at: i64,
    /// When the feed reported it. Stream time advances on this.
    pub reported_at: i64,
    /// ISO 3166-1 alpha-3 code of the nation that sends the event.
    pub nation: String,
    pub schema_version: i32,
}

/// Traffic Light Protocol 2.0, ordered from least to most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tlp {
    Clear,
    Green,
    Amber,
    AmberStrict,
    Red,
}

/// Permissible Actions Protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Pap {
    Clear,
    Green,
    Amber,
    Red,
}

/// NCISS-style priority, from least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    Baseline,
    Low,
    Medium,
    High,
    Severe,
    Emergency,
}

impl Priority {
    /// Weight of one unit of help for a request of this priority (used by the matcher).
    pub fn weight(self) -> u64 {
        match self {
            Priority::Baseline => 1,
            Priority::Low => 2,
            Priority::Medium => 4,
            Priority::High => 8,
            Priority::Severe => 16,
            Priority::Emergency => 32,
        }
    }
}

/// NIS2 Annex I/II sectors, plus `defence` for the alliance's own networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sector {
    Energy,
    Transport,
    Banking,
    FinancialMarket,
    Health,
    DrinkingWater,
    WasteWater,
    DigitalInfrastructure,
    IctServiceManagement,
    PublicAdministration,
    Space,
    Postal,
    WasteManagement,
    Chemicals,
    Food,
    Manufacturing,
    DigitalProviders,
    Research,
    Defence,
}

/// ENISA Reference Security Incident Taxonomy, top-level classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RsitClass {
    AbusiveContent,
    MaliciousCode,
    InformationGathering,
    IntrusionAttempts,
    Intrusions,
    Availability,
    InformationContentSecurity,
    Fraud,
    Vulnerable,
    Other,
}

/// What an offered team can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    IncidentResponse,
    Forensics,
    MalwareAnalysis,
    ThreatIntelligence,
    IcsOt,
    NetworkMonitoring,
    Recovery,
}

impl Capability {
    pub const ALL: [Capability; 7] = [
        Capability::IncidentResponse,
        Capability::Forensics,
        Capability::MalwareAnalysis,
        Capability::ThreatIntelligence,
        Capability::IcsOt,
        Capability::NetworkMonitoring,
        Capability::Recovery,
    ];

    /// Stable short name, used in state keys, metric labels and topic-facing text.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::IncidentResponse => "incident_response",
            Capability::Forensics => "forensics",
            Capability::MalwareAnalysis => "malware_analysis",
            Capability::ThreatIntelligence => "threat_intelligence",
            Capability::IcsOt => "ics_ot",
            Capability::NetworkMonitoring => "network_monitoring",
            Capability::Recovery => "recovery",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    Ipv4,
    Ipv6,
    Domain,
    Url,
    Sha256,
    Sha1,
    Md5,
    Email,
    Cve,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    pub kind: IndicatorKind,
    pub value: String,
}

/// NCISS-style impact inputs, each 0..=100.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub functional: i32,
    pub information: i32,
    pub recoverability: i32,
}

/// How a team works: from home, at the victim's site, or either. On a need, what the requester
/// prefers (offers that match are proposed first; it is not an eligibility rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Remote,
    OnSite,
    #[default]
    Either,
}

impl Delivery {
    /// Whether a team that works `self` way can serve a need that prefers `wanted`.
    pub fn suits(self, wanted: Delivery) -> bool {
        self == Delivery::Either || wanted == Delivery::Either || self == wanted
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentReported {
    pub envelope: Envelope,
    pub incident_id: String,
    pub title: String,
    pub tlp: Tlp,
    pub pap: Pap,
    pub sector: Sector,
    pub rsit_class: RsitClass,
    pub priority: Priority,
    pub essential_entity: bool,
    pub cross_border: bool,
    pub impact: Impact,
    pub techniques: Vec<String>,
    pub indicators: Vec<Indicator>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityNeed {
    pub capability: Capability,
    pub units: i32,
    /// Added in schema version 2 with the default `either`: older records still decode.
    #[serde(default)]
    pub delivery: Delivery,
}

/// New facts about an open incident: its severity and impact as now assessed (they re-rank its
/// waiting requests), and techniques and indicators seen since it was reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentUpdated {
    pub envelope: Envelope,
    pub incident_id: String,
    pub priority: Priority,
    pub essential_entity: bool,
    pub cross_border: bool,
    pub impact: Impact,
    /// Added to those already known.
    pub techniques: Vec<String>,
    /// Added to those already known.
    pub indicators: Vec<Indicator>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistanceRequested {
    pub envelope: Envelope,
    pub request_id: String,
    pub incident_id: String,
    pub needs: Vec<CapabilityNeed>,
    /// The requester's own mitigation measures so far, 0..=100 (EU Cyber Solidarity Act 14(2)).
    pub own_measures: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentClosed {
    pub envelope: Envelope,
    pub incident_id: String,
    pub resolution: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetOffered {
    pub envelope: Envelope,
    pub offer_id: String,
    pub team: String,
    pub capability: Capability,
    pub capacity_units: i32,
    pub available_from: i64,
    pub available_until: i64,
    pub response_time_minutes: i32,
    /// Nations that may receive this help; empty means every member.
    pub eligible_nations: Vec<String>,
    pub excluded_nations: Vec<String>,
    /// Highest TLP the team may receive.
    pub max_tlp: Tlp,
    pub sector_expertise: Vec<Sector>,
    pub delivery: Delivery,
}

/// New terms for a live offer, stated in full (the capability stays). Assignments the new terms
/// no longer allow are cancelled, newest proposals first when capacity shrinks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferUpdated {
    pub envelope: Envelope,
    pub offer_id: String,
    pub capacity_units: i32,
    pub available_from: i64,
    pub available_until: i64,
    pub response_time_minutes: i32,
    pub eligible_nations: Vec<String>,
    pub excluded_nations: Vec<String>,
    pub max_tlp: Tlp,
    pub sector_expertise: Vec<Sector>,
    pub delivery: Delivery,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferWithdrawn {
    pub envelope: Envelope,
    pub offer_id: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentAccepted {
    pub envelope: Envelope,
    pub assignment_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentDeclined {
    pub envelope: Envelope,
    pub assignment_id: String,
    pub reason: String,
}

/// The provider reports a confirmed assignment done: its units are free again, and the need it
/// served stays covered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentCompleted {
    pub envelope: Envelope,
    pub assignment_id: String,
    pub summary: String,
}

/// Which input topic of a nation an event belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Incidents,
    Offers,
    Responses,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Incidents, Stream::Offers, Stream::Responses];

    /// The last segment of the input topic name, `rrc.in.<NATION>.<suffix>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Stream::Incidents => "incidents",
            Stream::Offers => "offers",
            Stream::Responses => "responses",
        }
    }

    pub fn from_suffix(s: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|k| k.suffix() == s)
    }
}

/// Every event a feed can send. The variant name is the Avro record name and the JSON `type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    IncidentReported(IncidentReported),
    IncidentUpdated(IncidentUpdated),
    AssistanceRequested(AssistanceRequested),
    IncidentClosed(IncidentClosed),
    AssetOffered(AssetOffered),
    OfferUpdated(OfferUpdated),
    OfferWithdrawn(OfferWithdrawn),
    AssignmentAccepted(AssignmentAccepted),
    AssignmentDeclined(AssignmentDeclined),
    AssignmentCompleted(AssignmentCompleted),
}

/// Calls `$body` with the inner event bound to `$e`, whatever the variant.
macro_rules! each_event {
    ($event:expr, $e:ident => $body:expr) => {
        match $event {
            Event::IncidentReported($e) => $body,
            Event::IncidentUpdated($e) => $body,
            Event::AssistanceRequested($e) => $body,
            Event::IncidentClosed($e) => $body,
            Event::AssetOffered($e) => $body,
            Event::OfferUpdated($e) => $body,
            Event::OfferWithdrawn($e) => $body,
            Event::AssignmentAccepted($e) => $body,
            Event::AssignmentDeclined($e) => $body,
            Event::AssignmentCompleted($e) => $body,
        }
    };
}

impl Event {
    pub fn envelope(&self) -> &Envelope {
        each_event!(self, e => &e.envelope)
    }

    pub fn envelope_mut(&mut self) -> &mut Envelope {
        each_event!(self, e => &mut e.envelope)
    }

    /// The event type's name: Avro record name and JSON `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::IncidentReported(_) => "IncidentReported",
            Event::IncidentUpdated(_) => "IncidentUpdated",
            Event::AssistanceRequested(_) => "AssistanceRequested",
            Event::IncidentClosed(_) => "IncidentClosed",
            Event::AssetOffered(_) => "AssetOffered",
            Event::OfferUpdated(_) => "OfferUpdated",
            Event::OfferWithdrawn(_) => "OfferWithdrawn",
            Event::AssignmentAccepted(_) => "AssignmentAccepted",
            Event::AssignmentDeclined(_) => "AssignmentDeclined",
            Event::AssignmentCompleted(_) => "AssignmentCompleted",
        }
    }

    /// The input topic kind this event must arrive on.
    pub fn stream(&self) -> Stream {
        match self {
            Event::IncidentReported(_)
            | Event::IncidentUpdated(_)
            | Event::AssistanceRequested(_)
            | Event::IncidentClosed(_) => Stream::Incidents,
            Event::AssetOffered(_) | Event::OfferUpdated(_) | Event::OfferWithdrawn(_) => {
                Stream::Offers
            }
            Event::AssignmentAccepted(_)
            | Event::AssignmentDeclined(_)
            | Event::AssignmentCompleted(_) => Stream::Responses,
        }
    }

    /// The id of the entity the event is about: the Kafka key it is journaled under.
    pub fn entity_id(&self) -> &str {
        match self {
            Event::IncidentReported(e) => &e.incident_id,
            Event::IncidentUpdated(e) => &e.incident_id,
            Event::AssistanceRequested(e) => &e.incident_id,
            Event::IncidentClosed(e) => &e.incident_id,
            Event::AssetOffered(e) => &e.offer_id,
            Event::OfferUpdated(e) => &e.offer_id,
            Event::OfferWithdrawn(e) => &e.offer_id,
            Event::AssignmentAccepted(e) => &e.assignment_id,
            Event::AssignmentDeclined(e) => &e.assignment_id,
            Event::AssignmentCompleted(e) => &e.assignment_id,
        }
    }
}
