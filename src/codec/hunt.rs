//! Hunt records (`HuntIndicatorPublished`, `HuntIndicatorRetired`): a campaign's hunt
//! indicator as every member's SIEM receives it, in Avro or JSON with the same field names.
//!
//! The hunt record's enums ([`Pap`], [`HuntAction`], [`RetireReason`]) name their wire symbols
//! with `as_str()`; here each is written as the symbol of its Avro enum (its index in the
//! schema's symbols, and its name in JSON), so the core's types need not follow the schema's
//! symbol order. The symbol tables below are checked against the compiled schemas by the
//! codec's tests.

use rallypoint_core::event::{IndicatorKind, Pap, Sector, Tlp};
use rallypoint_core::hunt::{self, HuntAction, HuntIndicator, HuntUpdate, RetireReason};
use rallypoint_core::Rejection;
use serde::ser::{Error as _, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use super::records::undecodable;
use rallypoint_core::event::Parse;

/// The only pattern type Rallypoint writes: STIX 2.1 patterns.
pub(super) const PATTERN_TYPE: &str = "stix";

/// The symbols of `rallypoint.Pap` (common.avsc), in schema order.
pub(super) const PAP_SYMBOLS: &[&str] = &["CLEAR", "GREEN", "AMBER", "RED"];
/// The symbols of `rallypoint.HuntAction` (common.avsc), in schema order.
pub(super) const ACTION_SYMBOLS: &[&str] = &["SEARCH_LOGS", "ALERT", "BLOCK"];
/// The symbols of `rallypoint.RetireReason` (hunt_indicator_retired.avsc), in schema order.
pub(super) const REASON_SYMBOLS: &[&str] = &[
    "EXPIRED",
    "FALSE_POSITIVE",
    "WARNINGLISTED",
    "CAMPAIGN_DISSOLVED",
    "RELEASE_WITHDRAWN",
];

/// One symbol of an Avro enum: serialized as a unit variant, which the Avro writer encodes as
/// the symbol's index and JSON as its name.
struct Symbol {
    enum_name: &'static str,
    symbols: &'static [&'static str],
    name: &'static str,
}

impl Symbol {
    fn pap(p: Pap) -> Self {
        Self {
            enum_name: "Pap",
            symbols: PAP_SYMBOLS,
            name: p.as_str(),
        }
    }

    fn action(a: HuntAction) -> Self {
        Self {
            enum_name: "HuntAction",
            symbols: ACTION_SYMBOLS,
            name: a.as_str(),
        }
    }

    fn reason(r: RetireReason) -> Self {
        Self {
            enum_name: "RetireReason",
            symbols: REASON_SYMBOLS,
            name: r.as_str(),
        }
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let index = self
            .symbols
            .iter()
            .position(|x| *x == self.name)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| {
                S::Error::custom(format!(
                    "{} is not a symbol of {}",
                    self.name, self.enum_name
                ))
            })?;
        s.serialize_unit_variant(self.enum_name, index, self.name)
    }
}

/// The record of a published or retired indicator (with `reason` when retired), in the field
/// order of its schema.
pub(super) struct HuntRecord<'a> {
    pub(super) indicator: &'a HuntIndicator,
    pub(super) reason: Option<RetireReason>,
}

impl<'a> HuntRecord<'a> {
    /// The record of an update and its record name; `None` for a removal (a tombstone).
    pub(super) fn of(update: &'a HuntUpdate) -> Option<(&'static str, Self)> {
        let record = match update {
            HuntUpdate::Published(indicator) => Self {
                indicator,
                reason: None,
            },
            HuntUpdate::Retired { indicator, reason } => Self {
                indicator,
                reason: Some(*reason),
            },
            HuntUpdate::Removed { .. } => return None,
        };
        Some((update.type_name()?, record))
    }
}

impl Serialize for HuntRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.indicator;
        let (name, fields) = match self.reason {
            None => ("HuntIndicatorPublished", 16),
            Some(_) => ("HuntIndicatorRetired", 17),
        };
        let actions: Vec<Symbol> = hunt::actions(i.pap)
            .iter()
            .map(|a| Symbol::action(*a))
            .collect();
        let mut r = s.serialize_struct(name, fields)?;
        r.serialize_field("campaign_id", &i.campaign_id)?;
        r.serialize_field("indicator_id", &i.indicator_id)?;
        r.serialize_field("kind", &i.kind)?;
        r.serialize_field("pattern", &i.pattern)?;
        r.serialize_field("pattern_type", PATTERN_TYPE)?;
        r.serialize_field("valid_from", &i.valid_from)?;
        r.serialize_field("valid_until", &i.valid_until)?;
        r.serialize_field("stream_time", &i.stream_time)?;
        r.serialize_field("score", &i32::from(i.score))?;
        r.serialize_field("confidence", &i32::from(i.confidence))?;
        r.serialize_field("kill_chain_phases", &i.kill_chain_phases)?;
        r.serialize_field("tlp", &i.tlp)?;
        r.serialize_field("pap", &Symbol::pap(i.pap))?;
        r.serialize_field("actions", &actions)?;
        r.serialize_field(
            "nation_count",
            &i32::try_from(i.nation_count).unwrap_or(i32::MAX),
        )?;
        r.serialize_field("sectors", &i.sectors)?;
        if let Some(reason) = self.reason {
            r.serialize_field("reason", &Symbol::reason(reason))?;
        }
        r.end()
    }
}

/// A hunt record as read back (Avro value or JSON object): enums by their symbol names.
#[derive(Deserialize)]
struct HuntRecordIn {
    campaign_id: String,
    indicator_id: String,
    kind: IndicatorKind,
    pattern: String,
    pattern_type: String,
    valid_from: i64,
    valid_until: i64,
    stream_time: i64,
    score: i32,
    confidence: i32,
    kill_chain_phases: Vec<String>,
    tlp: Tlp,
    pap: String,
    actions: Vec<String>,
    nation_count: i32,
    sectors: Vec<Sector>,
    /// Only in a retired indicator's record.
    #[serde(default)]
    reason: Present,
}

/// A field a record may lack (`None`), read as a string when it is there: an Avro enum value
/// is not a union, so `Option` cannot read it.
#[derive(Default)]
struct Present(Option<String>);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Present(Some(s)))
    }
}

/// Every PAP a hunt indicator may carry (the most restrictive of its releasing incidents').
pub(super) fn every_pap() -> [Pap; 4] {
    Pap::ALL
}

/// Every retire reason; the match fails to compile when the core adds one.
pub(super) fn every_reason() -> [RetireReason; 5] {
    use RetireReason::*;
    let _all = |r: RetireReason| match r {
        Expired | FalsePositive | Warninglisted | CampaignDissolved | ReleaseWithdrawn => (),
    };
    [
        Expired,
        FalsePositive,
        Warninglisted,
        CampaignDissolved,
        ReleaseWithdrawn,
    ]
}

/// The hunt update a record named `name` holds.
pub(super) fn hunt_from(name: &str, src: &impl Parse) -> Result<HuntUpdate, Rejection> {
    let bad = |e: String| undecodable(format!("{name}: {e}"));
    let retired = match name {
        "HuntIndicatorPublished" => false,
        "HuntIndicatorRetired" => true,
        other => {
            return Err(Rejection::new(
                rallypoint_core::RejectReason::UnknownSchema,
                format!("{other:?} is not a hunt record"),
            ))
        }
    };
    let r: HuntRecordIn = src.parse().map_err(bad)?;
    if r.pattern_type != PATTERN_TYPE {
        return Err(bad(format!(
            "pattern_type {:?} is not stix",
            r.pattern_type
        )));
    }
    let percent = |field: &str, v: i32| {
        u8::try_from(v)
            .ok()
            .filter(|v| *v <= 100)
            .ok_or_else(|| bad(format!("{field} {v} is not within 0..100")))
    };
    let pap = every_pap()
        .into_iter()
        .find(|p| p.as_str() == r.pap)
        .ok_or_else(|| bad(format!("pap {:?} is not CLEAR, GREEN, AMBER or RED", r.pap)))?;
    let allowed: Vec<&str> = hunt::actions(pap).iter().map(|a| a.as_str()).collect();
    if r.actions != allowed {
        return Err(bad(format!(
            "actions {:?} are not what PAP:{} allows ({allowed:?})",
            r.actions,
            pap.as_str()
        )));
    }
    let indicator = HuntIndicator {
        campaign_id: r.campaign_id,
        indicator_id: r.indicator_id,
        kind: r.kind,
        pattern: r.pattern,
        valid_from: r.valid_from,
        valid_until: r.valid_until,
        score: percent("score", r.score)?,
        confidence: percent("confidence", r.confidence)?,
        kill_chain_phases: r.kill_chain_phases,
        tlp: r.tlp,
        pap,
        nation_count: u32::try_from(r.nation_count)
            .map_err(|_| bad(format!("nation_count {} is negative", r.nation_count)))?,
        sectors: r.sectors,
        stream_time: r.stream_time,
    };
    match (retired, r.reason.0) {
        (false, None) => Ok(HuntUpdate::Published(indicator)),
        (false, Some(_)) => Err(bad("a published indicator has no reason".into())),
        (true, None) => Err(bad("no reason".into())),
        (true, Some(reason)) => {
            let reason = every_reason()
                .into_iter()
                .find(|x| x.as_str() == reason)
                .ok_or_else(|| bad(format!("reason {reason:?} is not a retire reason")))?;
            Ok(HuntUpdate::Retired { indicator, reason })
        }
    }
}
