//! The Avro schemas of `schemas/`, compiled into the binary and made self-contained.
//!
//! Event files refer to shared named types of `schemas/common.avsc` by name. Avro's Parsing
//! Canonical Form (and so the single-object fingerprint) needs each named type defined at its
//! first use, so [`inline_named_types`] writes the definition in at the first reference and
//! leaves later references as names, exactly as a Java or Python writer would resolve them.

use std::collections::{BTreeMap, BTreeSet};

use apache_avro::headers::HeaderBuilder;
use apache_avro::rabin::Rabin;
use apache_avro::GenericSingleObjectReader;
use apache_avro::Schema;
use serde_json::Value as Json;

const NAMESPACE: &str = "rallypoint";

const COMMON: &str = include_str!("../../schemas/common.avsc");

/// Every top-level record: (record name, schema text).
pub const FILES: &[(&str, &str)] = &[
    (
        "IncidentReported",
        include_str!("../../schemas/incident_reported.avsc"),
    ),
    (
        "AssistanceRequested",
        include_str!("../../schemas/assistance_requested.avsc"),
    ),
    (
        "IncidentClosed",
        include_str!("../../schemas/incident_closed.avsc"),
    ),
    (
        "AssetOffered",
        include_str!("../../schemas/asset_offered.avsc"),
    ),
    (
        "OfferWithdrawn",
        include_str!("../../schemas/offer_withdrawn.avsc"),
    ),
    (
        "AssignmentAccepted",
        include_str!("../../schemas/assignment_accepted.avsc"),
    ),
    (
        "AssignmentDeclined",
        include_str!("../../schemas/assignment_declined.avsc"),
    ),
    (
        "AssignmentProposed",
        include_str!("../../schemas/assignment_proposed.avsc"),
    ),
    (
        "AssignmentConfirmed",
        include_str!("../../schemas/assignment_confirmed.avsc"),
    ),
    (
        "AssignmentCancelled",
        include_str!("../../schemas/assignment_cancelled.avsc"),
    ),
    (
        "AssistanceUnmet",
        include_str!("../../schemas/assistance_unmet.avsc"),
    ),
    ("DeadLetter", include_str!("../../schemas/dead_letter.avsc")),
];

/// One compiled top-level schema.
pub struct Compiled {
    pub name: &'static str,
    pub schema: Schema,
    /// CRC-64-AVRO (Rabin) fingerprint of the canonical form, as single-object encoding writes it.
    pub fingerprint: [u8; 8],
    /// The self-contained schema JSON (what a registry would be given).
    pub json: String,
    /// The same structure with every named type written out where it is used (renamed so the
    /// names stay unique). Binary Avro does not depend on names, so this schema encodes the
    /// same bytes, and it needs no name table: serde can write through it directly.
    pub expanded: Schema,
    /// Decodes through the expanded schema with its name table resolved once.
    pub reader: GenericSingleObjectReader,
}

impl Compiled {
    /// The single-object header: `C3 01` and the fingerprint.
    pub fn header(&self) -> [u8; 10] {
        let mut h = [0u8; 10];
        h[..2].copy_from_slice(&[0xC3, 0x01]);
        h[2..].copy_from_slice(&self.fingerprint);
        h
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The canonical header, for a reader whose own (expanded) schema has another fingerprint.
struct CanonicalHeader([u8; 8]);

impl HeaderBuilder for CanonicalHeader {
    fn build_header(&self) -> Vec<u8> {
        [&[0xC3, 0x01][..], &self.0[..]].concat()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("schema {name}: {detail}")]
pub struct SchemaError {
    name: String,
    detail: String,
}

/// Compiles every schema of [`FILES`].
pub fn compile_all() -> Result<Vec<Compiled>, SchemaError> {
    let library = library()?;
    FILES
        .iter()
        .map(|(name, text)| compile(name, text, &library))
        .collect()
}

fn compile(
    name: &'static str,
    text: &str,
    library: &BTreeMap<String, Json>,
) -> Result<Compiled, SchemaError> {
    let err = |detail: String| SchemaError {
        name: name.into(),
        detail,
    };
    let raw: Json = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
    let full = inline_named_types(&raw, library, &mut BTreeSet::new(), NAMESPACE);
    let json = full.to_string();
    let schema = Schema::parse_str(&json).map_err(|e| err(e.to_string()))?;
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let fingerprint: [u8; 8] = bytes
        .try_into()
        .map_err(|_| err("fingerprint is not 8 bytes".into()))?;
    let mut counter = 0;
    let expanded_json = expand(&full, &mut BTreeMap::new(), &mut counter, NAMESPACE);
    let expanded =
        Schema::parse_str(&expanded_json.to_string()).map_err(|e| err(format!("expanded: {e}")))?;
    let reader = GenericSingleObjectReader::new_with_header_builder(
        expanded.clone(),
        CanonicalHeader(fingerprint),
    )
    .map_err(|e| err(format!("reader: {e}")))?;
    Ok(Compiled {
        name,
        schema,
        fingerprint,
        json,
        expanded,
        reader,
    })
}

/// The named types of `common.avsc`, by full name.
fn library() -> Result<BTreeMap<String, Json>, SchemaError> {
    let err = |detail: String| SchemaError {
        name: "common".into(),
        detail,
    };
    let defs: Vec<Json> = serde_json::from_str(COMMON).map_err(|e| err(e.to_string()))?;
    let mut lib = BTreeMap::new();
    for def in defs {
        let name = def["name"]
            .as_str()
            .ok_or_else(|| err("a type without a name".into()))?;
        let ns = def["namespace"].as_str().unwrap_or(NAMESPACE);
        lib.insert(full_name(name, ns), def);
    }
    Ok(lib)
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// Replaces the first reference to each library type by its definition.
pub fn inline_named_types(
    v: &Json,
    lib: &BTreeMap<String, Json>,
    defined: &mut BTreeSet<String>,
    ns: &str,
) -> Json {
    match v {
        Json::String(s) if !PRIMITIVES.contains(&s.as_str()) => {
            let name = full_name(s, ns);
            match lib.get(&name) {
                Some(def) if defined.insert(name.clone()) => {
                    let def_ns = def["namespace"].as_str().unwrap_or(ns).to_owned();
                    inline_named_types(def, lib, defined, &def_ns)
                }
                _ => v.clone(),
            }
        }
        Json::Array(union) => Json::Array(
            union
                .iter()
                .map(|m| inline_named_types(m, lib, defined, ns))
                .collect(),
        ),
        Json::Object(obj) => {
            let mut out = obj.clone();
            let kind = obj.get("type").and_then(Json::as_str).unwrap_or_default();
            let own_ns = obj
                .get("namespace")
                .and_then(Json::as_str)
                .unwrap_or(ns)
                .to_owned();
            if matches!(kind, "record" | "enum" | "fixed") {
                if let Some(n) = obj.get("name").and_then(Json::as_str) {
                    defined.insert(full_name(n, &own_ns));
                }
            }
            match kind {
                "record" => {
                    if let Some(Json::Array(fields)) = obj.get("fields") {
                        let fields = fields
                            .iter()
                            .map(|f| {
                                let mut f = f.clone();
                                if let Some(t) = f.get("type") {
                                    f["type"] = inline_named_types(t, lib, defined, &own_ns);
                                }
                                f
                            })
                            .collect();
                        out.insert("fields".into(), Json::Array(fields));
                    }
                }
                "array" => {
                    out.insert(
                        "items".into(),
                        inline_named_types(&obj["items"], lib, defined, ns),
                    );
                }
                "map" => {
                    out.insert(
                        "values".into(),
                        inline_named_types(&obj["values"], lib, defined, ns),
                    );
                }
                _ => {
                    if let Some(t @ (Json::Object(_) | Json::Array(_))) = obj.get("type") {
                        out.insert("type".into(), inline_named_types(t, lib, defined, ns));
                    }
                }
            }
            Json::Object(out)
        }
        _ => v.clone(),
    }
}

/// Writes every reference to a named type out in full, renaming each copy.
fn expand(v: &Json, defs: &mut BTreeMap<String, Json>, counter: &mut usize, ns: &str) -> Json {
    match v {
        Json::String(s) if !PRIMITIVES.contains(&s.as_str()) => {
            match defs.get(&full_name(s, ns)).cloned() {
                Some(def) => {
                    let def_ns = def["namespace"].as_str().unwrap_or(ns).to_owned();
                    expand(&def, defs, counter, &def_ns)
                }
                None => v.clone(),
            }
        }
        Json::Array(union) => {
            Json::Array(union.iter().map(|m| expand(m, defs, counter, ns)).collect())
        }
        Json::Object(obj) => {
            let kind = obj.get("type").and_then(Json::as_str).unwrap_or_default();
            let own_ns = obj
                .get("namespace")
                .and_then(Json::as_str)
                .unwrap_or(ns)
                .to_owned();
            let mut out = obj.clone();
            if matches!(kind, "record" | "enum" | "fixed") {
                if let Some(n) = obj.get("name").and_then(Json::as_str) {
                    defs.insert(full_name(n, &own_ns), v.clone());
                    *counter += 1;
                    let short = n.rsplit('.').next().unwrap_or(n);
                    out.insert("name".into(), Json::String(format!("{short}_{counter}")));
                }
            }
            match kind {
                "record" => {
                    if let Some(Json::Array(fields)) = obj.get("fields") {
                        let fields = fields
                            .iter()
                            .map(|f| {
                                let mut f = f.clone();
                                if let Some(t) = f.get("type") {
                                    f["type"] = expand(t, defs, counter, &own_ns);
                                }
                                f
                            })
                            .collect();
                        out.insert("fields".into(), Json::Array(fields));
                    }
                }
                "array" => {
                    out.insert("items".into(), expand(&obj["items"], defs, counter, ns));
                }
                "map" => {
                    out.insert("values".into(), expand(&obj["values"], defs, counter, ns));
                }
                _ => {
                    if let Some(t @ (Json::Object(_) | Json::Array(_))) = obj.get("type") {
                        out.insert("type".into(), expand(t, defs, counter, ns));
                    }
                }
            }
            Json::Object(out)
        }
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_with_a_distinct_fingerprint() {
        let all = compile_all().unwrap();
        assert_eq!(all.len(), FILES.len());
        let prints: BTreeSet<_> = all.iter().map(|c| c.fingerprint).collect();
        assert_eq!(prints.len(), all.len());
    }

    #[test]
    fn a_shared_type_is_defined_once_at_its_first_use() {
        let all = compile_all().unwrap();
        let proposed = all.iter().find(|c| c.name == "AssignmentProposed").unwrap();
        assert_eq!(
            proposed.json.matches("\"name\":\"Capability\"").count(),
            1,
            "{}",
            proposed.json
        );
        assert_eq!(
            proposed.json.matches("\"name\":\"DecisionHeader\"").count(),
            1
        );
    }
}
