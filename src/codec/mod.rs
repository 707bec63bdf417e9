//! Bytes ⇄ events and decisions.
//!
//! Three framings, detected from the first bytes of a record:
//! - Avro single-object encoding: `C3 01`, 8-byte CRC-64-AVRO fingerprint, Avro binary body.
//!   The default, and what the journal and output topics carry when no registry is configured.
//! - Confluent wire format: `00`, 4-byte big-endian schema id, Avro binary body; ids come from a
//!   Schema Registry (see [`Codec::set_registered_id`] and [`Codec::learn_registry_schema`]).
//!   Once its schemas are registered, the codec writes this framing instead of single-object.
//! - JSON: an object with the Avro field names and a `type` naming the event (for `kcat` and
//!   simple feeds).
//!
//! One concern per file: [`framing`] (which of the three), [`avro`] (bodies), [`json`],
//! [`records`] (which typed record a name stands for), [`hunt`] (the hunt topics' records),
//! [`schemas`] (compiled in), [`ids`] (what a registry id stands for), [`dead_letter`];
//! `samples` holds fixtures for interoperability checks, and `tests` the codec's tests.

mod avro;
mod dead_letter;
mod framing;
mod hunt;
mod ids;
mod json;
mod records;
mod samples;
pub mod schemas;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use apache_avro::types::Value;
use apache_avro::{from_value, Schema};
use rallypoint_core::decision::Decision;
use rallypoint_core::event::*;
use rallypoint_core::hunt::HuntUpdate;
use rallypoint_core::picture::PictureUpdate;
use rallypoint_core::{RejectReason, Rejection};
use serde::Serialize;

use avro::{avro_body, read_with, resolved, FromAvro, MAX_ALLOCATION};
pub use dead_letter::{DeadLetter, Header};
pub use framing::{detect, Format, Framing};
use framing::{hex, CONFLUENT_MAGIC, SINGLE_OBJECT};
pub use ids::{Learnt, MISSING_RETRY};
pub use json::event_json;
use json::{decision_json, decode_json, json_with_type, typed_json, FromJson};
use records::{decision_from, event_from, picture_from, undecodable, CampaignRecord};
pub use samples::{hunt_samples, review_samples, samples};
pub use schemas::SchemaError;

/// The compiled schemas and the tables to find them by fingerprint or registry id.
pub struct Codec {
    schemas: Vec<schemas::Compiled>,
    by_name: HashMap<&'static str, usize>,
    by_fingerprint: HashMap<[u8; 8], usize>,
    /// Registry ids: learnt while running, so behind a lock (reads are uncontended).
    ids: RwLock<ids::IdTable>,
    /// Released schemas that differ from the current ones: a record written with one is read
    /// with it, then resolved to the current schema (new fields take their defaults).
    released: Vec<schemas::Compiled>,
    by_released_fingerprint: HashMap<[u8; 8], usize>,
    /// `array<rallypoint.Header>`: how the journal carries a feed record's headers.
    headers: Schema,
}

impl Codec {
    pub fn new() -> Result<Self, SchemaError> {
        // A hostile length prefix must not make the decoder allocate more than any record we
        // accept could hold (records are capped far below this by `intake.max_record_bytes`).
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION);
        let schemas = schemas::compile_all()?;
        let by_name = schemas
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name, i))
            .collect();
        let by_fingerprint: HashMap<[u8; 8], usize> = schemas
            .iter()
            .enumerate()
            .map(|(i, c)| (c.fingerprint, i))
            .collect();
        let released: Vec<schemas::Compiled> = schemas::compile_released()?
            .into_iter()
            .filter(|old| !by_fingerprint.contains_key(&old.fingerprint))
            .collect();
        let by_released_fingerprint = released
            .iter()
            .enumerate()
            .map(|(i, c)| (c.fingerprint, i))
            .collect();
        let headers = schemas
            .iter()
            .find(|c| c.name == "DeadLetter")
            .and_then(|c| dead_letter::headers_schema(&c.expanded))
            .ok_or_else(|| SchemaError::new("DeadLetter", "has no field original_headers"))?;
        Ok(Self {
            headers,
            schemas,
            by_name,
            by_fingerprint,
            ids: RwLock::default(),
            released,
            by_released_fingerprint,
        })
    }

    /// Every compiled schema: name, self-contained JSON and fingerprint.
    pub fn schemas(&self) -> &[schemas::Compiled] {
        &self.schemas
    }

    fn ids(&self) -> RwLockReadGuard<'_, ids::IdTable> {
        self.ids.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn ids_mut(&self) -> RwLockWriteGuard<'_, ids::IdTable> {
        self.ids.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that registry schema `id` is the current schema named `name`, for decoding.
    pub fn register_confluent_id(&self, id: u32, name: &str) -> bool {
        match self.by_name.get(name) {
            Some(&i) => {
                self.ids_mut().insert(id, ids::Known::Current(i));
                true
            }
            None => false,
        }
    }

    /// Records that the current schema named `name` is registered as `id`: records written
    /// with `id` decode, and from now on what is encoded with that schema is framed in the
    /// Confluent wire format with `id`.
    pub fn set_registered_id(&self, name: &str, id: u32) -> bool {
        match self.by_name.get(name) {
            Some(&i) => {
                self.ids_mut().set_registered(i, id);
                true
            }
            None => false,
        }
    }

    /// The registry id of a Confluent-framed record that must be looked up before it can be
    /// decoded: one never seen, or one the registry lacked a while ago. `None` for every other
    /// record.
    pub fn id_to_look_up(&self, bytes: &[u8]) -> Option<u32> {
        match detect(bytes) {
            Some(Framing::Confluent(id)) if self.ids().needs_lookup(id, Instant::now()) => Some(id),
            _ => None,
        }
    }

    /// Learns what registry id `id` stands for, from the schema text the registry gave for it
    /// (`None`: the registry has no such id). Only records of a Rallypoint record name that
    /// the current schema can read (Avro resolution: new fields need defaults) become
    /// readable; anything else is remembered as unreadable, with the reason.
    pub fn learn_registry_schema(&self, id: u32, text: Option<&str>) -> Learnt {
        let (known, learnt) = match text {
            None => (ids::Known::Missing(Instant::now()), Learnt::Missing),
            Some(text) => match self.classify(id, text) {
                Ok(known) => {
                    let learnt = match &known {
                        ids::Known::Current(i) => Learnt::Current(self.schemas[*i].name),
                        ids::Known::Released(i) => Learnt::OtherVersion(self.released[*i].name),
                        ids::Known::Writer { writer, .. } => Learnt::OtherVersion(writer.name),
                        _ => Learnt::Missing,
                    };
                    (known, learnt)
                }
                Err(why) => (ids::Known::Unreadable(why.clone()), Learnt::Unreadable(why)),
            },
        };
        self.ids_mut().insert(id, known);
        learnt
    }

    /// How records written with registry schema `text` (id `id`) are read, or why they cannot be.
    fn classify(&self, id: u32, text: &str) -> Result<ids::Known, String> {
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let full = schemas::record_full_name(text)
            .ok_or_else(|| format!("registry schema id {id} is not an Avro record schema"))?;
        let &reader = full
            .strip_prefix(schemas::NAMESPACE)
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| self.by_name.get(n))
            .ok_or_else(|| format!("registry schema id {id} is {full}, not a Rallypoint schema"))?;
        let current = &self.schemas[reader];
        let writer = schemas::compile_writer(current.name, text)
            .map_err(|e| format!("registry schema id {id} ({full}) does not compile: {e}"))?;
        if writer.fingerprint == current.fingerprint {
            return Ok(ids::Known::Current(reader));
        }
        if let Some(&old) = self.by_released_fingerprint.get(&writer.fingerprint) {
            return Ok(ids::Known::Released(old));
        }
        SchemaCompatibility::can_read(&writer.expanded, &current.expanded).map_err(|e| {
            format!(
                "registry schema id {id} is a version of {full} that this version cannot read: {e}"
            )
        })?;
        Ok(ids::Known::Writer {
            writer: Box::new(writer),
            reader,
        })
    }

    #[cfg(test)]
    fn compiled(&self, name: &str) -> &schemas::Compiled {
        // Every name used below is one of schemas::files(); a miss is a bug, caught by tests.
        &self.schemas[self.by_name[name]]
    }

    /// Decodes an input record in any of the three framings.
    pub fn decode_event(&self, bytes: &[u8]) -> Result<Event, Rejection> {
        match detect(bytes) {
            Some(Framing::SingleObject) => {
                let print: [u8; 8] = bytes
                    .get(2..10)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| undecodable("single-object header is truncated"))?;
                if let Some(&i) = self.by_fingerprint.get(&print) {
                    return self.decode_body(i, &bytes[10..]);
                }
                let &old = self.by_released_fingerprint.get(&print).ok_or_else(|| {
                    Rejection::new(
                        RejectReason::UnknownSchema,
                        format!("no schema has fingerprint {}", hex(&print)),
                    )
                })?;
                self.decode_released(old, &bytes[10..])
            }
            Some(Framing::Confluent(id)) => {
                let (name, value) = self.read_confluent(id, &bytes[5..])?;
                event_from(name, &FromAvro(&value))
            }
            Some(Framing::Json) => decode_json(bytes),
            None => Err(undecodable(format!(
                "not Avro single-object, Confluent or JSON framing (first bytes {})",
                hex(&bytes[..bytes.len().min(8)])
            ))),
        }
    }

    fn decode_body(&self, i: usize, body: &[u8]) -> Result<Event, Rejection> {
        let compiled = &self.schemas[i];
        let value = read_with(compiled, body)?;
        event_from(compiled.name, &FromAvro(&value))
    }

    /// Reads a record written with released schema `old`, resolved to the current schema.
    fn decode_released(&self, old: usize, body: &[u8]) -> Result<Event, Rejection> {
        let (name, value) = self.read_released(old, body)?;
        event_from(name, &FromAvro(&value))
    }

    fn read_released(&self, old: usize, body: &[u8]) -> Result<(&'static str, Value), Rejection> {
        let writer = &self.released[old];
        let reader = self
            .by_name
            .get(writer.name)
            .ok_or_else(|| undecodable(format!("{} is no longer read", writer.name)))?;
        resolved(writer, &self.schemas[*reader], body, "released version")
    }

    /// Reads the body of a Confluent-framed record written with registry schema `id`, as the
    /// current schema of its record: (record name, value).
    fn read_confluent(&self, id: u32, body: &[u8]) -> Result<(&'static str, Value), Rejection> {
        let ids = self.ids();
        match ids.get(id) {
            Some(ids::Known::Current(i)) => {
                let compiled = &self.schemas[*i];
                Ok((compiled.name, read_with(compiled, body)?))
            }
            Some(ids::Known::Released(old)) => self.read_released(*old, body),
            Some(ids::Known::Writer { writer, reader }) => {
                resolved(writer, &self.schemas[*reader], body, "registry version")
            }
            Some(ids::Known::Unreadable(why)) => {
                Err(Rejection::new(RejectReason::UnknownSchema, why.clone()))
            }
            Some(ids::Known::Missing(_)) => Err(Rejection::new(
                RejectReason::UnknownSchema,
                format!("the schema registry has no schema with id {id}"),
            )),
            None => Err(Rejection::new(
                RejectReason::UnknownSchema,
                format!("schema registry id {id} is not known"),
            )),
        }
    }

    /// Avro single-object encoding of an event: what the journal carries.
    pub fn encode_event(&self, event: &Event) -> Vec<u8> {
        struct Encode<'a>(&'a Codec);
        impl Visit for Encode<'_> {
            type Out = Vec<u8>;
            fn visit<T: EventType>(self, record: &T) -> Vec<u8> {
                self.0.encode(T::NAME, record)
            }
        }
        event.visit(Encode(self))
    }

    /// A decision in the topic's format.
    pub fn encode_decision(&self, decision: &Decision, format: Format) -> Vec<u8> {
        match (format, decision) {
            (Format::Json, d) => decision_json(d),
            (Format::Avro, Decision::AssignmentProposed(d)) => self.encode("AssignmentProposed", d),
            (Format::Avro, Decision::AssignmentConfirmed(d)) => {
                self.encode("AssignmentConfirmed", d)
            }
            (Format::Avro, Decision::AssignmentCancelled(d)) => {
                self.encode("AssignmentCancelled", d)
            }
            (Format::Avro, Decision::AssistanceUnmet(d)) => self.encode("AssistanceUnmet", d),
        }
    }

    /// Decodes a decision written by [`Codec::encode_decision`] (for tests, replay and tools).
    pub fn decode_decision(&self, bytes: &[u8]) -> Result<Decision, Rejection> {
        if detect(bytes) == Some(Framing::Json) {
            let (kind, v) = json_with_type(bytes)?;
            return decision_from(&kind, &FromJson(&v));
        }
        let (name, value) = self.read_own(bytes)?;
        decision_from(name, &FromAvro(&value))
    }

    /// An input event as a JSON object with its `type`, as simple feeds send it.
    pub fn encode_event_json(&self, event: &Event) -> Vec<u8> {
        event_json(event)
    }

    /// A threat-picture record or campaign in the topic's format.
    pub fn encode_picture(&self, update: &PictureUpdate, format: Format) -> Vec<u8> {
        let name = update.type_name();
        match (format, update) {
            (Format::Avro, PictureUpdate::Picture(p)) => self.encode(name, p),
            (
                Format::Avro,
                PictureUpdate::CampaignDetected(c) | PictureUpdate::CampaignUpdated(c),
            ) => self.encode(
                name,
                &CampaignRecord {
                    campaign: c.clone(),
                },
            ),
            (Format::Json, PictureUpdate::Picture(p)) => typed_json(p, name),
            (
                Format::Json,
                PictureUpdate::CampaignDetected(c) | PictureUpdate::CampaignUpdated(c),
            ) => typed_json(
                &CampaignRecord {
                    campaign: c.clone(),
                },
                name,
            ),
        }
    }

    /// Decodes a record of the threat-picture topic (for tests, tools and the query API).
    pub fn decode_picture(&self, bytes: &[u8]) -> Result<PictureUpdate, Rejection> {
        if detect(bytes) == Some(Framing::Json) {
            let (kind, v) = json_with_type(bytes)?;
            return picture_from(&kind, &FromJson(&v));
        }
        let (name, value) = self.read_own(bytes)?;
        picture_from(name, &FromAvro(&value))
    }

    /// A hunt record in the topic's format (`HuntIndicatorPublished`, `HuntIndicatorRetired`);
    /// `None` for a removal, whose record is a tombstone: the key with no value.
    pub fn encode_hunt(&self, update: &HuntUpdate, format: Format) -> Option<Vec<u8>> {
        let (name, record) = hunt::HuntRecord::of(update)?;
        Some(match format {
            Format::Avro => self.encode(name, &record),
            Format::Json => typed_json(&record, name),
        })
    }

    /// Decodes the value of a hunt record written by [`Codec::encode_hunt`] (for tests and
    /// tools); a tombstone has no value to decode.
    pub fn decode_hunt(&self, bytes: &[u8]) -> Result<HuntUpdate, Rejection> {
        if detect(bytes) == Some(Framing::Json) {
            let (kind, v) = json_with_type(bytes)?;
            return hunt::hunt_from(&kind, &FromJson(&v));
        }
        let (name, value) = self.read_own(bytes)?;
        hunt::hunt_from(name, &FromAvro(&value))
    }

    pub fn encode_dead_letter(&self, dl: &DeadLetter) -> Vec<u8> {
        self.encode("DeadLetter", dl)
    }

    /// Kafka headers as the Avro binary of `array<rallypoint.Header>`, the type of
    /// `DeadLetter.original_headers`, without framing: an empty list is one byte (`00`); each
    /// header costs its key and value plus 3 to 4 bytes of lengths and union index.
    pub fn encode_headers(&self, headers: &[Header]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len) + 12)
                .sum::<usize>(),
        );
        avro_body(&self.headers, &headers, &mut out);
        out
    }

    /// Reads what [`Codec::encode_headers`] wrote; an error for anything else.
    pub fn decode_headers(&self, bytes: &[u8]) -> Result<Vec<Header>, Rejection> {
        let mut input = bytes;
        let value = apache_avro::from_avro_datum(&self.headers, &mut input, None)
            .map_err(|e| undecodable(format!("carried headers: {e}")))?;
        if !input.is_empty() {
            return Err(undecodable(format!(
                "carried headers: {} bytes after the list",
                input.len()
            )));
        }
        from_value(&value).map_err(|e| undecodable(format!("carried headers: {e}")))
    }

    pub fn decode_dead_letter(&self, bytes: &[u8]) -> Result<DeadLetter, Rejection> {
        let (name, value) = self.read_own(bytes)?;
        if name != "DeadLetter" {
            return Err(Rejection::new(
                RejectReason::UnknownSchema,
                format!("{name} is not a dead letter"),
            ));
        }
        from_value(&value).map_err(|e| undecodable(e.to_string()))
    }

    /// Reads one of Rallypoint's own Avro records (single-object or Confluent framing) as the
    /// current schema of its record: (record name, value).
    fn read_own(&self, bytes: &[u8]) -> Result<(&'static str, Value), Rejection> {
        match detect(bytes) {
            Some(Framing::Confluent(id)) => self.read_confluent(id, &bytes[5..]),
            Some(Framing::SingleObject) if bytes.len() >= 10 => {
                let print: [u8; 8] = bytes[2..10]
                    .try_into()
                    .map_err(|_| undecodable("short header"))?;
                if let Some(&i) = self.by_fingerprint.get(&print) {
                    let compiled = &self.schemas[i];
                    return Ok((compiled.name, read_with(compiled, &bytes[10..])?));
                }
                let &old = self
                    .by_released_fingerprint
                    .get(&print)
                    .ok_or_else(|| Rejection::new(RejectReason::UnknownSchema, hex(&print)))?;
                self.read_released(old, &bytes[10..])
            }
            _ => Err(undecodable(
                "not Avro single-object encoding or Confluent framing",
            )),
        }
    }

    /// The Avro record of `value` with schema `name`, framed with the schema's registry id
    /// once it is registered, else with single-object encoding.
    fn encode<T: Serialize>(&self, name: &str, value: &T) -> Vec<u8> {
        let i = self.by_name[name];
        let compiled = &self.schemas[i];
        let mut out = Vec::with_capacity(256);
        match self.ids().registered(i) {
            Some(id) => {
                out.push(CONFLUENT_MAGIC);
                out.extend_from_slice(&id.to_be_bytes());
            }
            None => {
                out.extend_from_slice(&SINGLE_OBJECT);
                out.extend_from_slice(&compiled.fingerprint);
            }
        }
        avro_body(&compiled.expanded, value, &mut out);
        out
    }
}
