//! The audience gate: every record the coordinator publishes for an audience is made here,
//! from the view the core's TLP rules computed for that audience ([`rallypoint_core::tlp`]).
//!
//! The core routes each decision to the audiences entitled to it, each redacted to what it
//! may see and with identifiers it may see; the threat picture and campaigns are built for
//! the coordination cell, with RED incidents' ids, indicators and techniques left out and
//! campaign ids that name no incident; hunt indicators are built for every member alike, from
//! released values only, naming no nation. This module only frames those views as Kafka
//! records (topic, key, value, headers): nothing here adds a field, so no output path builds a
//! view of its own. The canary test (`tests/canary.rs`) checks every byte of its records.

use rallypoint_core::decision::{Audience, Routed};
use rallypoint_core::hunt::HuntUpdate;
use rallypoint_core::picture::PictureUpdate;
use rallypoint_core::Output;

use crate::codec::Codec;
use crate::codec::Format;
use crate::kafka::{Topics, HDR_INPUT_TS};

/// One record for an audience's topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutRecord {
    pub topic: String,
    pub key: String,
    /// `None`: a tombstone, the key with a null value (not an empty one), which removes the
    /// key from a compacted topic.
    pub value: Option<Vec<u8>>,
    /// Header names and values; a `None` value is a header without a value.
    pub headers: Vec<(&'static str, Option<String>)>,
}

/// Every record an output becomes, in the order they are to be sent: one for a decision (on
/// its audience's topic) and for a picture record, one per member nation for a hunt update
/// (each nation's hunt topic, in the configured order of the nations), none for a rejection
/// (its dead letter is the original record, for operators: see `kafka::send_dead_letter`).
/// `input_ts` is the `rp.input_ts` header: the timestamp of the input record that led to it.
pub fn record(
    output: &Output,
    codec: &Codec,
    format: Format,
    topics: &Topics,
    input_ts: Option<&str>,
) -> Vec<OutRecord> {
    match output {
        Output::Decision(routed) => vec![decision(routed, codec, format, topics, input_ts)],
        Output::Picture(update) => vec![picture(update, codec, format, topics, input_ts)],
        Output::Hunt(update) => hunt(update, codec, format, topics, input_ts),
        Output::Rejected(_) => Vec::new(),
    }
}

fn decision(
    routed: &Routed,
    codec: &Codec,
    format: Format,
    topics: &Topics,
    input_ts: Option<&str>,
) -> OutRecord {
    let d = &routed.decision;
    OutRecord {
        topic: match &routed.audience {
            Audience::Nation(n) => topics.decisions(n),
            Audience::Coalition => topics.coalition_decisions(),
        },
        key: d.key().to_owned(),
        value: Some(codec.encode_decision(d, format)),
        headers: vec![
            ("rp.type", Some(d.type_name().to_owned())),
            ("rp.decision_id", Some(d.header().decision_id.clone())),
            (HDR_INPUT_TS, input_ts.map(str::to_owned)),
        ],
    }
}

fn picture(
    update: &PictureUpdate,
    codec: &Codec,
    format: Format,
    topics: &Topics,
    input_ts: Option<&str>,
) -> OutRecord {
    OutRecord {
        topic: topics.threat_picture(),
        key: update.key(),
        value: Some(codec.encode_picture(update, format)),
        headers: vec![
            ("rp.type", Some(update.type_name().to_owned())),
            (HDR_INPUT_TS, input_ts.map(str::to_owned)),
        ],
    }
}

/// A hunt update's records: an indicator's publication, retirement or removal, and the removal
/// of its sightings summary, the same on every member's hunt topic (key
/// `<campaign_id>/<indicator_id>`, with `/sightings` for the summary); a sightings summary on
/// the hunt topics of the nations it is for only; a review, or its removal, on the cell's hunt
/// topic (key `<campaign_id>/<value>`). A removal is a tombstone: no value, no `rp.type`.
fn hunt(
    update: &HuntUpdate,
    codec: &Codec,
    format: Format,
    topics: &Topics,
    input_ts: Option<&str>,
) -> Vec<OutRecord> {
    let key = update.key();
    let value = codec.encode_hunt(update, format);
    let mut headers = Vec::with_capacity(2);
    if let Some(name) = update.type_name() {
        headers.push(("rp.type", Some(name.to_owned())));
    }
    headers.push((HDR_INPUT_TS, input_ts.map(str::to_owned)));
    let to: Vec<String> = match update {
        HuntUpdate::Published(_)
        | HuntUpdate::Retired { .. }
        | HuntUpdate::Removed { .. }
        | HuntUpdate::SightingsRemoved { .. } => {
            topics.nations().iter().map(|n| topics.hunt(n)).collect()
        }
        HuntUpdate::Sightings { to, .. } => topics
            .nations()
            .iter()
            .filter(|n| to.contains(n))
            .map(|n| topics.hunt(n))
            .collect(),
        HuntUpdate::Reviewed(_) | HuntUpdate::ReviewRemoved { .. } => {
            vec![topics.coalition_hunt()]
        }
    };
    to.into_iter()
        .map(|topic| OutRecord {
            topic,
            key: key.clone(),
            value: value.clone(),
            headers: headers.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rallypoint_core::event::Pap;
    use rallypoint_core::event::{IndicatorKind, Sector, Tlp};
    use rallypoint_core::hunt::{HuntIndicator, RetireReason};

    fn topics(nations: &str) -> Topics {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rallypoint.toml");
        std::fs::write(
            &path,
            format!("nations = [{nations}]\n[kafka]\nnamespace = \"exercise\"\n"),
        )
        .unwrap();
        Topics::new(&crate::config::Config::load(Some(&path)).unwrap_or_else(|e| panic!("{e}")))
    }

    fn indicator() -> HuntIndicator {
        let pattern = "[domain-name:value = 'c2.example.net']".to_owned();
        HuntIndicator {
            campaign_id: "C-000001".into(),
            indicator_id: rallypoint_core::hunt::indicator_id(&pattern),
            kind: IndicatorKind::Domain,
            pattern,
            valid_from: 1_800_000_000_000,
            valid_until: 1_810_368_000_000,
            score: 90,
            confidence: 70,
            kill_chain_phases: vec!["command-and-control".into()],
            tlp: Tlp::Green,
            pap: Pap::Green,
            nation_count: 2,
            sectors: vec![Sector::Energy],
            stream_time: 1_800_000_100_000,
        }
    }

    #[test]
    fn a_hunt_update_goes_to_every_member_alike_and_a_removal_is_a_tombstone() {
        let codec = Codec::new().unwrap();
        let topics = topics("\"LVA\", \"EST\", \"DEU\"");
        let published = HuntUpdate::Published(indicator());
        let retired = HuntUpdate::Retired {
            indicator: indicator(),
            reason: RetireReason::CampaignDissolved,
        };
        let removed = HuntUpdate::Removed {
            key: indicator().key(),
        };
        for format in [Format::Avro, Format::Json] {
            for (update, kind) in [
                (&published, Some("HuntIndicatorPublished")),
                (&retired, Some("HuntIndicatorRetired")),
                (&removed, None),
            ] {
                let records = record(
                    &Output::Hunt(update.clone()),
                    &codec,
                    format,
                    &topics,
                    Some("1800000000000"),
                );
                let names: Vec<&str> = records.iter().map(|r| r.topic.as_str()).collect();
                assert_eq!(
                    names,
                    [
                        "exercise.rrc.out.LVA.hunt",
                        "exercise.rrc.out.EST.hunt",
                        "exercise.rrc.out.DEU.hunt"
                    ]
                );
                let want_headers: Vec<(&str, Option<String>)> = kind
                    .map(|k| ("rp.type", Some(k.to_owned())))
                    .into_iter()
                    .chain([(HDR_INPUT_TS, Some("1800000000000".to_owned()))])
                    .collect();
                for r in &records {
                    // The key docs/contracts.md gives as its example.
                    assert_eq!(
                        r.key,
                        "C-000001/indicator--d7936e75-b5ce-55da-a5b7-4832613c8ef5"
                    );
                    assert_eq!(r.value, records[0].value);
                    assert_eq!(r.headers, want_headers);
                }
                match kind {
                    Some(_) => {
                        let value = records[0].value.as_deref().expect("a value");
                        assert_eq!(&codec.decode_hunt(value).unwrap(), update);
                    }
                    None => assert_eq!(records[0].value, None, "a tombstone has no value"),
                }
            }
        }
    }

    #[test]
    fn a_rejection_becomes_no_record() {
        let codec = Codec::new().unwrap();
        let rejected = Output::Rejected(rallypoint_core::Rejection::new(
            rallypoint_core::RejectReason::UnknownEntity,
            "x",
        ));
        assert!(record(&rejected, &codec, Format::Avro, &topics("\"EST\""), None).is_empty());
    }
}
