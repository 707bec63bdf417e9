//! Input events: what national feeds say, after intake has decoded them.
//!
//! Field names are the Avro field names of `schemas/*.avsc` and the JSON field names that simple
//! feeds send; serde carries both. Times are milliseconds since the Unix epoch (UTC), as Avro's
//! `timestamp-millis`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A unit enum whose wire names (serde, Avro symbols, state keys, metric labels) are written
/// once, next to each variant: `as_str` gives the name and `ALL` every variant in order.
macro_rules! wire_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            pub const ALL: [Self; [$($wire),+].len()] = [$(Self::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }
        }
    };
}

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

wire_enum! {
    /// Traffic Light Protocol 2.0, ordered from least to most restrictive.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum Tlp {
        Clear = "CLEAR",
        Green = "GREEN",
        Amber = "AMBER",
        AmberStrict = "AMBER_STRICT",
        Red = "RED",
    }
}

wire_enum! {
    /// Permissible Actions Protocol.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Pap {
        Clear = "CLEAR",
        Green = "GREEN",
        Amber = "AMBER",
        Red = "RED",
    }
}

wire_enum! {
    /// NCISS-style priority, from least to most severe.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum Priority {
        Baseline = "Baseline",
        Low = "Low",
        Medium = "Medium",
        High = "High",
        Severe = "Severe",
        Emergency = "Emergency",
    }
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

wire_enum! {
    /// NIS2 Annex I/II sectors, plus `defence` for the alliance's own networks.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum Sector {
        Energy = "energy",
        Transport = "transport",
        Banking = "banking",
        FinancialMarket = "financial_market",
        Health = "health",
        DrinkingWater = "drinking_water",
        WasteWater = "waste_water",
        DigitalInfrastructure = "digital_infrastructure",
        IctServiceManagement = "ict_service_management",
        PublicAdministration = "public_administration",
        Space = "space",
        Postal = "postal",
        WasteManagement = "waste_management",
        Chemicals = "chemicals",
        Food = "food",
        Manufacturing = "manufacturing",
        DigitalProviders = "digital_providers",
        Research = "research",
        Defence = "defence",
    }
}

wire_enum! {
    /// ENISA Reference Security Incident Taxonomy, top-level classes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum RsitClass {
        AbusiveContent = "abusive_content",
        MaliciousCode = "malicious_code",
        InformationGathering = "information_gathering",
        IntrusionAttempts = "intrusion_attempts",
        Intrusions = "intrusions",
        Availability = "availability",
        InformationContentSecurity = "information_content_security",
        Fraud = "fraud",
        Vulnerable = "vulnerable",
        Other = "other",
    }
}

wire_enum! {
    /// What an offered team can do.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum Capability {
        IncidentResponse = "incident_response",
        Forensics = "forensics",
        MalwareAnalysis = "malware_analysis",
        ThreatIntelligence = "threat_intelligence",
        IcsOt = "ics_ot",
        NetworkMonitoring = "network_monitoring",
        Recovery = "recovery",
    }
}

wire_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum IndicatorKind {
        Ipv4 = "ipv4",
        Ipv6 = "ipv6",
        Domain = "domain",
        Url = "url",
        Sha256 = "sha256",
        Sha1 = "sha1",
        Md5 = "md5",
        Email = "email",
        Cve = "cve",
    }
}

/// An observable an incident reported, or a nation sighted. Confidence and the times it was
/// first and last seen are optional (added in schema version 3; older records read as none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    pub kind: IndicatorKind,
    pub value: String,
    /// How sure the reporter is that it is malicious, 0..=100.
    #[serde(default)]
    pub confidence: Option<i32>,
    #[serde(default)]
    pub first_seen: Option<i64>,
    /// Not before `first_seen`.
    #[serde(default)]
    pub last_seen: Option<i64>,
}

impl Indicator {
    /// An indicator with no confidence or times given.
    pub fn new(kind: IndicatorKind, value: String) -> Self {
        Self {
            kind,
            value,
            confidence: None,
            first_seen: None,
            last_seen: None,
        }
    }
}

/// Whether an incident's indicators may be shared with every member's hunt (see
/// docs/architecture.md, "Hunt packages"). DEFAULT releases those of CLEAR and GREEN incidents;
/// ALLIANCE is the source's explicit permission to share an AMBER incident's as well (TLP 2.0
/// lets a source widen sharing); NONE keeps them with the coordination cell. AMBER_STRICT and
/// RED incidents are never released, whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HuntRelease {
    #[default]
    Default,
    Alliance,
    None,
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
    /// Added in schema version 3 with the default DEFAULT: older records still decode.
    #[serde(default)]
    pub hunt_release: HuntRelease,
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

wire_enum! {
    /// What a sighting says about an indicator (MISP's sighting types).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum SightingKind {
        /// Seen in the nation's own data.
        Sighting = "SIGHTING",
        /// Seen, and it was not malicious there.
        FalsePositive = "FALSE_POSITIVE",
        /// Seen, and confirmed malicious.
        TruePositive = "TRUE_POSITIVE",
        /// The nation no longer considers it current.
        Expiration = "EXPIRATION",
    }
}

impl SightingKind {
    /// Whether it says the indicator was seen to be what it claims.
    pub fn confirms(self) -> bool {
        matches!(self, SightingKind::Sighting | SightingKind::TruePositive)
    }
}

fn amber() -> Tlp {
    Tlp::Amber
}

fn yes() -> bool {
    true
}

/// A nation's SIEM saw an indicator (or says it is a false positive, or expired): what hunting
/// brings back. Topic `rrc.in.<NATION>.sightings`, key `sighting_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndicatorSighted {
    pub envelope: Envelope,
    /// Chosen by the nation; a repeat is a retry.
    pub sighting_id: String,
    /// The hunt package it answers, if any.
    #[serde(default)]
    pub hunt_id: Option<String>,
    pub indicator: Indicator,
    pub kind: SightingKind,
    /// How many times, 1..=999,999,999 (STIX's bound).
    pub count: i32,
    pub first_seen: i64,
    pub last_seen: i64,
    /// A free label of what saw it (a SIEM, a sensor network).
    pub source: String,
    #[serde(default)]
    pub sector: Option<Sector>,
    #[serde(default = "amber")]
    pub tlp: Tlp,
    /// Whether the sighting nation may be named to other nations (never to the cell's
    /// disadvantage: the cell sees who sighted).
    #[serde(default = "yes")]
    pub anonymous: bool,
}

/// Which input topic of a nation an event belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Incidents,
    Offers,
    Responses,
    Sightings,
}

impl Stream {
    pub const ALL: [Stream; 4] = [
        Stream::Incidents,
        Stream::Offers,
        Stream::Responses,
        Stream::Sightings,
    ];

    /// The last segment of the input topic name, `rrc.in.<NATION>.<suffix>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Stream::Incidents => "incidents",
            Stream::Offers => "offers",
            Stream::Responses => "responses",
            Stream::Sightings => "sightings",
        }
    }

    pub fn from_suffix(s: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|k| k.suffix() == s)
    }
}

/// What every input event type has, whatever it says: the facts the [`events!`] table declares.
pub trait EventType: Serialize + DeserializeOwned + Into<Event> {
    /// The Avro record name and the JSON `type`.
    const NAME: &'static str;
    /// The input topic kind it arrives on.
    const STREAM: Stream;
    fn envelope(&self) -> &Envelope;
    /// The id of the entity it is about: the Kafka key it is journaled under.
    fn entity_id(&self) -> &str;
}

/// One input event type as the codec and the registry see it.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    pub name: &'static str,
    pub stream: Stream,
    /// Its Avro schema, `schemas/<file>.avsc`.
    pub schema: &'static str,
}

/// Hands the record inside an [`Event`] over with its type: see [`Event::visit`].
pub trait Visit {
    type Out;
    fn visit<T: EventType>(self, record: &T) -> Self::Out;
}

/// A source a record of any type can be read from (an Avro value, a JSON object).
pub trait Parse {
    fn parse<T: DeserializeOwned>(&self) -> Result<T, String>;
}

/// **The one declaration of every input event type** (docs/architecture.md, "Event types"):
/// `Type: Stream, entity_field, "schema file" => rule;`. From each row follow the [`Event`] variant,
/// [`EventType`], [`Event::TYPES`] (name, stream, schema: what the codec, the registry and the
/// topic checks read), decoding by name ([`Event::parse`]), encoding ([`Event::visit`]), and the
/// dispatch to the type's field checks ([`crate::validate::Check`]) and to the rule that applies
/// it (the `Fold` method the row names), both next to each other in `apply/`.
///
/// Adding a type: its schema file, its struct and row here, and its `Check` and its rule in the
/// rule's file.
macro_rules! events {
    ($($name:ident: $stream:ident, $entity:ident, $schema:literal => $rule:ident;)+) => {
        /// Every event a feed can send. The variant name is the Avro record name and the JSON
        /// `type`.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Event {
            $($name($name),)+
        }

        $(
            impl EventType for $name {
                const NAME: &'static str = stringify!($name);
                const STREAM: Stream = Stream::$stream;
                fn envelope(&self) -> &Envelope {
                    &self.envelope
                }
                fn entity_id(&self) -> &str {
                    &self.$entity
                }
            }

            impl From<$name> for Event {
                fn from(e: $name) -> Event {
                    Event::$name(e)
                }
            }
        )+

        impl Event {
            /// Every input event type, in the table's order.
            pub const TYPES: &'static [TypeInfo] = &[$(TypeInfo {
                name: stringify!($name),
                stream: Stream::$stream,
                schema: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/", $schema, ".avsc")),
            },)+];

            /// The event type's name: Avro record name and JSON `type`.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Event::$name(_) => stringify!($name),)+
                }
            }

            /// The input topic kind this event must arrive on.
            pub fn stream(&self) -> Stream {
                match self {
                    $(Event::$name(_) => Stream::$stream,)+
                }
            }

            pub fn envelope(&self) -> &Envelope {
                match self {
                    $(Event::$name(e) => &e.envelope,)+
                }
            }

            pub fn envelope_mut(&mut self) -> &mut Envelope {
                match self {
                    $(Event::$name(e) => &mut e.envelope,)+
                }
            }

            /// The id of the entity the event is about: the Kafka key it is journaled under.
            pub fn entity_id(&self) -> &str {
                match self {
                    $(Event::$name(e) => &e.$entity,)+
                }
            }

            /// Calls `v` with the record inside, typed.
            pub fn visit<V: Visit>(&self, v: V) -> V::Out {
                match self {
                    $(Event::$name(e) => v.visit(e),)+
                }
            }

            /// The event of type `name`, read from `src`; `None` when no input event type has
            /// that name.
            pub fn parse(name: &str, src: &impl Parse) -> Option<Result<Event, String>> {
                match name {
                    $(stringify!($name) => Some(src.parse::<$name>().map(Event::$name)),)+
                    _ => None,
                }
            }

            /// The type's field checks (see [`crate::validate::Check`]).
            pub(crate) fn check(&self, f: &mut crate::validate::Fields) {
                use crate::validate::Check;
                match self {
                    $(Event::$name(e) => e.check(f),)+
                }
            }

            /// The rule that applies it: the `Fold` method the table names.
            pub(crate) fn rule<S: crate::store::StoreMut>(
                &self,
                fold: &mut crate::apply::Fold<'_, '_, S>,
            ) -> crate::apply::Handled {
                match self {
                    $(Event::$name(e) => fold.$rule(e),)+
                }
            }
        }
    };
}

events! {
    IncidentReported: Incidents, incident_id, "incident_reported" => incident_reported;
    IncidentUpdated: Incidents, incident_id, "incident_updated" => incident_updated;
    AssistanceRequested: Incidents, incident_id, "assistance_requested" => assistance_requested;
    IncidentClosed: Incidents, incident_id, "incident_closed" => incident_closed;
    AssetOffered: Offers, offer_id, "asset_offered" => asset_offered;
    OfferUpdated: Offers, offer_id, "offer_updated" => offer_updated;
    OfferWithdrawn: Offers, offer_id, "offer_withdrawn" => offer_withdrawn;
    AssignmentAccepted: Responses, assignment_id, "assignment_accepted" => assignment_accepted;
    AssignmentDeclined: Responses, assignment_id, "assignment_declined" => assignment_declined;
    AssignmentCompleted: Responses, assignment_id, "assignment_completed" => assignment_completed;
    IndicatorSighted: Sightings, sighting_id, "indicator_sighted" => indicator_sighted;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn each_wire_name_is_what_serde_writes_and_reads() {
        macro_rules! check {
            ($($t:ty),+) => {$(
                for v in <$t>::ALL {
                    assert_eq!(v.as_str(), json(v));
                    let back: $t = serde_json::from_value(serde_json::json!(v.as_str())).unwrap();
                    assert_eq!(back, v);
                }
            )+};
        }
        check!(
            Tlp,
            Pap,
            Priority,
            Sector,
            RsitClass,
            Capability,
            IndicatorKind
        );
        assert_eq!(RsitClass::MaliciousCode.as_str(), "malicious_code");
        assert_eq!(Sector::DrinkingWater.as_str(), "drinking_water");
        assert_eq!(Tlp::AmberStrict.as_str(), "AMBER_STRICT");
        assert_eq!(Capability::ALL.len(), 7);
    }
}
