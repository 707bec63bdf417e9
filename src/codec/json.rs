//! JSON records: an object with the Avro field names and a `type` naming the record, as simple
//! feeds and `kcat` send them.

use rallypoint_core::decision::Decision;
use rallypoint_core::event::{Event, EventType, Parse, Visit};
use rallypoint_core::Rejection;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::records::{event_from, undecodable};

/// A typed record read from a JSON value.
pub(super) struct FromJson<'a>(pub(super) &'a serde_json::Value);

impl Parse for FromJson<'_> {
    fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        T::deserialize(self.0).map_err(|e| e.to_string())
    }
}

/// A JSON input: an object whose `type` names the event.
pub(super) fn decode_json(bytes: &[u8]) -> Result<Event, Rejection> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| undecodable(format!("JSON: {e}")))?;
    let kind = match value.get("type") {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => return Err(undecodable("JSON event has no string field \"type\"")),
    };
    event_from(&kind, &FromJson(&value))
}

/// An event as a JSON object with its `type`.
pub fn event_json(e: &Event) -> Vec<u8> {
    struct Json;
    impl Visit for Json {
        type Out = Vec<u8>;
        fn visit<T: EventType>(self, record: &T) -> Vec<u8> {
            typed_json(record, T::NAME)
        }
    }
    e.visit(Json)
}

/// A decision as a JSON object with its `type`.
pub(super) fn decision_json(d: &Decision) -> Vec<u8> {
    let name = d.type_name();
    match d {
        Decision::AssignmentProposed(d) => typed_json(d, name),
        Decision::AssignmentConfirmed(d) => typed_json(d, name),
        Decision::AssignmentCancelled(d) => typed_json(d, name),
        Decision::AssistanceUnmet(d) => typed_json(d, name),
    }
}

/// A record as a JSON object with a `type` field naming it.
pub(super) fn typed_json<T: Serialize>(record: &T, type_name: &str) -> Vec<u8> {
    let mut body = serde_json::to_value(record).expect("records are plain data");
    body["type"] = serde_json::Value::String(type_name.into());
    serde_json::to_vec(&body).expect("a JSON value serializes")
}

/// One of our own JSON records and the `type` it names (empty when it names none).
pub(super) fn json_with_type(bytes: &[u8]) -> Result<(String, serde_json::Value), Rejection> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| undecodable(e.to_string()))?;
    let kind = v
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    Ok((kind, v))
}
