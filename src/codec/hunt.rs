//! Hunt records, in Avro or JSON with the same field names: a campaign's hunt indicator as
//! every member's SIEM receives it (`HuntIndicatorPublished`, `HuntIndicatorRetired`), the
//! sightings summary its campaign's nations receive (`HuntSightingsSummarized`), and the
//! coordination cell's review of a value (`HuntValueReviewed`).
//!
//! The hunt record's enums ([`Pap`], [`HuntAction`], [`RetireReason`]) name their wire symbols
//! with `as_str()`; here each is written as the symbol of its Avro enum (its index in the
//! schema's symbols, and its name in JSON), so the core's types need not follow the schema's
//! symbol order. The symbol tables below are checked against the compiled schemas by the
//! codec's tests.

use rallypoint_core::event::{IndicatorKind, Pap, Sector, Tlp};
use rallypoint_core::hunt::{
    self, Disposition, HuntAction, HuntIndicator, HuntReview, HuntUpdate, RetireReason,
    SightingSummary, SightingTally,
};
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
pub(super) struct Symbol {
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

/// The symbols of `rallypoint.HuntDisposition` (hunt_value_reviewed.avsc), in schema order.
pub(super) const DISPOSITION_SYMBOLS: &[&str] = &[
    "PUBLISHED",
    "RETIRED",
    "WITHHELD",
    "BLOCKED",
    "TRUNCATED",
    "NOT_HUNTED",
    "DEFERRED",
];

/// The record of a hunt update, in the field order of its schema.
pub(super) enum HuntRecord<'a> {
    /// A published or retired indicator (with `reason` when retired).
    Indicator {
        indicator: &'a HuntIndicator,
        reason: Option<RetireReason>,
    },
    Sightings(SummaryWire),
    Reviewed(Box<ReviewWire>),
}

impl<'a> HuntRecord<'a> {
    /// The record of an update and its record name; `None` for a removal (a tombstone).
    pub(super) fn of(update: &'a HuntUpdate) -> Option<(&'static str, Self)> {
        let record = match update {
            HuntUpdate::Published(indicator) => Self::Indicator {
                indicator,
                reason: None,
            },
            HuntUpdate::Retired { indicator, reason } => Self::Indicator {
                indicator,
                reason: Some(*reason),
            },
            HuntUpdate::Sightings { summary, .. } => Self::Sightings(SummaryWire::from(summary)),
            HuntUpdate::Reviewed(review) => Self::Reviewed(Box::new(ReviewWire::from(review))),
            HuntUpdate::Removed { .. }
            | HuntUpdate::SightingsRemoved { .. }
            | HuntUpdate::ReviewRemoved { .. } => return None,
        };
        Some((update.type_name()?, record))
    }
}

fn long(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `HuntSightingsSummarized` as written and read.
#[derive(Serialize, Deserialize)]
pub(super) struct SummaryWire {
    campaign_id: String,
    indicator_id: String,
    pattern: String,
    sightings: i64,
    true_positives: i64,
    false_positives: i64,
    nations_sighting: i32,
    nations_false_positive: i32,
    named_nations: Vec<String>,
    stream_time: i64,
}

impl From<&SightingSummary> for SummaryWire {
    fn from(s: &SightingSummary) -> Self {
        SummaryWire {
            campaign_id: s.campaign_id.clone(),
            indicator_id: s.indicator_id.clone(),
            pattern: s.pattern.clone(),
            sightings: long(s.sightings),
            true_positives: long(s.true_positives),
            false_positives: long(s.false_positives),
            nations_sighting: i32::try_from(s.nations_sighting).unwrap_or(i32::MAX),
            nations_false_positive: i32::try_from(s.nations_false_positive).unwrap_or(i32::MAX),
            named_nations: s.named_nations.clone(),
            stream_time: s.stream_time,
        }
    }
}

/// `HuntValueReviewed` as written (the disposition a [`Symbol`]) and read back (`String`: its
/// symbol's name).
#[derive(Serialize, Deserialize)]
pub(super) struct ReviewWire<D = Symbol> {
    campaign_id: String,
    value: String,
    disposition: D,
    indicator_id: Option<String>,
    tlp: Option<String>,
    reason: Option<String>,
    warninglist: Option<String>,
    deferred_until: Option<i64>,
    overridden: i32,
    sighted_by: Vec<String>,
    true_positive_by: Vec<String>,
    false_positive_by: Vec<String>,
    named: Vec<String>,
    sightings: i64,
    true_positives: i64,
    false_positives: i64,
    stream_time: i64,
}

impl From<&HuntReview> for ReviewWire {
    fn from(r: &HuntReview) -> Self {
        let (mut indicator_id, mut tlp, mut reason, mut warninglist, mut overridden) =
            (None, None, None, None, 0);
        let mut deferred_until = None;
        match &r.disposition {
            Disposition::Published {
                indicator_id: id,
                tlp: t,
                inform,
            } => {
                indicator_id = Some(id.clone());
                tlp = Some(t.as_str().to_owned());
                warninglist = inform.clone();
            }
            Disposition::Retired {
                indicator_id: id,
                reason: why,
            } => {
                indicator_id = Some(id.clone());
                reason = Some(why.as_str().to_owned());
            }
            Disposition::Withheld { overridden: n } => {
                overridden = i32::try_from(*n).unwrap_or(i32::MAX)
            }
            Disposition::Blocked { list } => warninglist = Some(list.clone()),
            Disposition::Deferred { until } => deferred_until = Some(*until),
            Disposition::Truncated | Disposition::NotHunted => {}
        }
        let t = &r.tally;
        ReviewWire {
            campaign_id: r.campaign_id.clone(),
            value: r.value.clone(),
            disposition: Symbol {
                enum_name: "HuntDisposition",
                symbols: DISPOSITION_SYMBOLS,
                name: r.disposition.as_str(),
            },
            indicator_id,
            tlp,
            reason,
            warninglist,
            deferred_until,
            overridden,
            sighted_by: t.sighted_by.clone(),
            true_positive_by: t.true_positive_by.clone(),
            false_positive_by: t.false_positive_by.clone(),
            named: t.named.clone(),
            sightings: long(t.sightings),
            true_positives: long(t.true_positives),
            false_positives: long(t.false_positives),
            stream_time: r.stream_time,
        }
    }
}

impl Serialize for HuntRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HuntRecord::Indicator { indicator, reason } => {
                IndicatorRecord(indicator, *reason).serialize(s)
            }
            HuntRecord::Sightings(w) => w.serialize(s),
            HuntRecord::Reviewed(w) => w.serialize(s),
        }
    }
}

/// A published or retired indicator's record (with its reason when retired).
struct IndicatorRecord<'a>(&'a HuntIndicator, Option<RetireReason>);

impl Serialize for IndicatorRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (i, reason) = (self.0, self.1);
        let (name, fields) = match reason {
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
        if let Some(reason) = reason {
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
        "HuntSightingsSummarized" => return summary_from(src).map_err(bad),
        "HuntValueReviewed" => return review_from(src).map_err(bad),
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

fn count(field: &str, n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("{field} {n} is negative"))
}

fn summary_from(src: &impl Parse) -> Result<HuntUpdate, String> {
    let w: SummaryWire = src.parse()?;
    let nations =
        |field: &str, n: i32| u32::try_from(n).map_err(|_| format!("{field} {n} is negative"));
    Ok(HuntUpdate::Sightings {
        // Who it went to is the topic's, not the record's.
        to: Vec::new(),
        summary: SightingSummary {
            campaign_id: w.campaign_id,
            indicator_id: w.indicator_id,
            pattern: w.pattern,
            sightings: count("sightings", w.sightings)?,
            true_positives: count("true_positives", w.true_positives)?,
            false_positives: count("false_positives", w.false_positives)?,
            nations_sighting: nations("nations_sighting", w.nations_sighting)?,
            nations_false_positive: nations("nations_false_positive", w.nations_false_positive)?,
            named_nations: w.named_nations,
            stream_time: w.stream_time,
        },
    })
}

fn review_from(src: &impl Parse) -> Result<HuntUpdate, String> {
    let r: ReviewWire<String> = src.parse()?;
    let need = |field: &str, v: Option<String>| {
        v.ok_or_else(|| {
            format!(
                "{field} is required when the disposition is {}",
                r.disposition
            )
        })
    };
    let disposition = match r.disposition.as_str() {
        "PUBLISHED" => Disposition::Published {
            indicator_id: need("indicator_id", r.indicator_id.clone())?,
            tlp: {
                let t = need("tlp", r.tlp.clone())?;
                Tlp::ALL
                    .into_iter()
                    .find(|x| x.as_str() == t)
                    .ok_or_else(|| format!("tlp {t:?} is not a TLP"))?
            },
            inform: r.warninglist.clone(),
        },
        "RETIRED" => Disposition::Retired {
            indicator_id: need("indicator_id", r.indicator_id.clone())?,
            reason: {
                let why = need("reason", r.reason.clone())?;
                every_reason()
                    .into_iter()
                    .find(|x| x.as_str() == why)
                    .ok_or_else(|| format!("reason {why:?} is not a retire reason"))?
            },
        },
        "WITHHELD" => Disposition::Withheld {
            overridden: u32::try_from(r.overridden)
                .map_err(|_| format!("overridden {} is negative", r.overridden))?,
        },
        "BLOCKED" => Disposition::Blocked {
            list: need("warninglist", r.warninglist.clone())?,
        },
        "TRUNCATED" => Disposition::Truncated,
        "NOT_HUNTED" => Disposition::NotHunted,
        "DEFERRED" => Disposition::Deferred {
            until: r
                .deferred_until
                .ok_or("deferred_until is required when the disposition is DEFERRED")?,
        },
        other => return Err(format!("disposition {other:?} is not a hunt disposition")),
    };
    Ok(HuntUpdate::Reviewed(HuntReview {
        campaign_id: r.campaign_id,
        value: r.value,
        disposition,
        tally: SightingTally {
            sighted_by: r.sighted_by,
            true_positive_by: r.true_positive_by,
            false_positive_by: r.false_positive_by,
            named: r.named,
            sightings: count("sightings", r.sightings)?,
            true_positives: count("true_positives", r.true_positives)?,
            false_positives: count("false_positives", r.false_positives)?,
        },
        stream_time: r.stream_time,
    }))
}
