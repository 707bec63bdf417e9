//! The dead-letter record: a rejected input kept whole, with why it was rejected.

use apache_avro::{serde_avro_bytes, serde_avro_bytes_opt};
use serde::{Deserialize, Serialize};

/// One Kafka header of the original record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub key: String,
    #[serde(with = "serde_avro_bytes_opt")]
    pub value: Option<Vec<u8>>,
}

/// Value of a record on `rrc.dlq` (schema `schemas/dead_letter.avsc`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub reason: String,
    pub detail: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub source_timestamp: Option<i64>,
    #[serde(with = "serde_avro_bytes_opt")]
    pub original_key: Option<Vec<u8>>,
    #[serde(with = "serde_avro_bytes")]
    pub original_value: Vec<u8>,
    pub original_headers: Vec<Header>,
}

/// The schema of `DeadLetter.original_headers` (`array<rallypoint.Header>`), taken from the
/// dead letter's own compiled schema, so that the two cannot drift apart.
pub(super) fn headers_schema(dead_letter: &apache_avro::Schema) -> Option<apache_avro::Schema> {
    match dead_letter {
        apache_avro::Schema::Record(r) => r
            .fields
            .iter()
            .find(|f| f.name == "original_headers")
            .map(|f| f.schema.clone()),
        _ => None,
    }
}
