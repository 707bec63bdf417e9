//! The audience gate: every record the coordinator publishes for an audience is made here,
//! from the view the core's TLP rules computed for that audience ([`rallypoint_core::tlp`]).
//!
//! The core routes each decision to the audiences entitled to it, each redacted to what it
//! may see and with identifiers it may see; the threat picture and campaigns are built for
//! the coordination cell, with RED incidents' ids, indicators and techniques left out and
//! campaign ids that name no incident. This module only frames those views as Kafka records
//! (topic, key, value, headers): nothing here adds a field, so no output path builds a view
//! of its own. The canary test (`tests/canary.rs`) checks every byte of its records.

use rallypoint_core::decision::{Audience, Routed};
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
    pub value: Vec<u8>,
    /// Header names and values; a `None` value is a header without a value.
    pub headers: Vec<(&'static str, Option<String>)>,
}

/// What an output becomes on its audience's topic; `None` for a rejection (its dead letter
/// is the original record, for operators: see `kafka::send_dead_letter`). `input_ts` is the
/// `rp.input_ts` header: the timestamp of the input record that led to it.
pub fn record(
    output: &Output,
    codec: &Codec,
    format: Format,
    topics: &Topics,
    input_ts: Option<&str>,
) -> Option<OutRecord> {
    match output {
        Output::Decision(routed) => Some(decision(routed, codec, format, topics, input_ts)),
        Output::Picture(update) => Some(picture(update, codec, format, topics, input_ts)),
        Output::Rejected(_) => None,
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
        value: codec.encode_decision(d, format),
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
        value: codec.encode_picture(update, format),
        headers: vec![
            ("rp.type", Some(update.type_name().to_owned())),
            (HDR_INPUT_TS, input_ts.map(str::to_owned)),
        ],
    }
}
