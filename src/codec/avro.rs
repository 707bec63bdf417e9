//! Avro bodies: read with a compiled writer schema (and resolved to the current reader), and
//! written straight through a schema from our own types.

use apache_avro::types::Value;
use apache_avro::{from_value, write_avro_datum_ref, Schema};
use rallypoint_core::event::Parse;
use rallypoint_core::Rejection;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::records::undecodable;
use super::schemas;

/// Largest single allocation (string, bytes, array) the Avro decoder may make.
pub(super) const MAX_ALLOCATION: usize = 16 * 1024 * 1024;

/// Reads a body written with `writer` and resolves it to the current schema `reader`.
pub(super) fn resolved(
    writer: &schemas::Compiled,
    reader: &schemas::Compiled,
    body: &[u8],
    what: &str,
) -> Result<(&'static str, Value), Rejection> {
    let value = read_with(writer, body)?
        .resolve(&reader.expanded)
        .map_err(|e| undecodable(format!("{} ({what}): {e}", writer.name)))?;
    Ok((reader.name, value))
}

/// Decodes an Avro body written with `compiled`; every byte must belong to the record.
pub(super) fn read_with(compiled: &schemas::Compiled, body: &[u8]) -> Result<Value, Rejection> {
    let header = compiled.header();
    let mut input = std::io::Read::chain(&header[..], body);
    let value = compiled
        .reader
        .read_value(&mut input)
        .map_err(|e| undecodable(format!("{}: {e}", compiled.name)))?;
    let rest = input.into_inner().1;
    if !rest.is_empty() {
        return Err(undecodable(format!(
            "{}: {} bytes after the record",
            compiled.name,
            rest.len()
        )));
    }
    Ok(value)
}

/// Appends the Avro binary of a value that matches its schema by construction (our own
/// types), serialized straight through the expanded schema.
pub(super) fn avro_body<T: Serialize>(expanded: &Schema, value: &T, out: &mut Vec<u8>) {
    // Our types and schemas are kept in step by the round-trip tests; a mismatch is a bug.
    if let Err(e) = write_avro_datum_ref(expanded, value, out) {
        panic!("Rust type does not match its Avro schema: {e}");
    }
}

/// A typed record read from an Avro value.
pub(super) struct FromAvro<'a>(pub(super) &'a Value);

impl Parse for FromAvro<'_> {
    fn parse<T: DeserializeOwned>(&self) -> Result<T, String> {
        from_value(self.0).map_err(|e| e.to_string())
    }
}
