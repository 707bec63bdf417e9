//! The Avro schemas of `schemas/`, compiled into the binary and made self-contained.
//!
//! Event files refer to shared named types of `schemas/common.avsc` by name. Avro's Parsing
//! Canonical Form (and so the single-object fingerprint) needs each named type defined at its
//! first use, so [`inline_named_types`] writes the definition in at the first reference and
//! leaves later references as names, exactly as a Java or Python writer would resolve them.

use std::collections::{BTreeMap, BTreeSet};

use apache_avro::headers::HeaderBuilder;
use apache_avro::GenericSingleObjectReader;
use apache_avro::Schema;
use rallypoint_core::event::Event;
use serde_json::Value as Json;

/// The namespace of every Rallypoint record.
pub const NAMESPACE: &str = "rallypoint";

const COMMON: &str = include_str!("../../schemas/common.avsc");

/// The records Rallypoint writes besides the journal's input events: (record name, schema text).
const OUTPUTS: &[(&str, &str)] = &[
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
    (
        "ThreatPicture",
        include_str!("../../schemas/threat_picture.avsc"),
    ),
    (
        "CampaignDetected",
        include_str!("../../schemas/campaign_detected.avsc"),
    ),
    (
        "CampaignUpdated",
        include_str!("../../schemas/campaign_updated.avsc"),
    ),
    (
        "HuntIndicatorPublished",
        include_str!("../../schemas/hunt_indicator_published.avsc"),
    ),
    (
        "HuntIndicatorRetired",
        include_str!("../../schemas/hunt_indicator_retired.avsc"),
    ),
    (
        "HuntSightingsSummarized",
        include_str!("../../schemas/hunt_sightings_summarized.avsc"),
    ),
    (
        "HuntValueReviewed",
        include_str!("../../schemas/hunt_value_reviewed.avsc"),
    ),
];

/// Every top-level record: (record name, schema text); the input events are those the
/// declaration in `rallypoint_core::event` lists.
pub fn files() -> impl Iterator<Item = (&'static str, &'static str)> {
    Event::TYPES
        .iter()
        .map(|t| (t.name, t.schema))
        .chain(OUTPUTS.iter().copied())
}

/// Every released version of the schemas (`schemas/released/v<N>/`), oldest first: records
/// written with any of them still decode (resolved to the current schema, new fields taking
/// their defaults), and a test checks that every current schema can read them. Each is
/// `(version, its common types, its records as (type name, schema))`: `build.rs` lists the
/// folders, so releasing the schemas is copying their files into a new one.
pub const RELEASES: &[Release] = include!(concat!(env!("OUT_DIR"), "/released.rs"));

/// A release's version folder, its common types, and its records.
pub type Release = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

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
    /// The record's full name, e.g. `rallypoint.DeadLetter`: its registry subject too.
    pub fn full_name(&self) -> String {
        format!("{NAMESPACE}.{}", self.name)
    }

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

impl SchemaError {
    pub(crate) fn new(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            detail: detail.into(),
        }
    }
}

/// Compiles every schema of [`files`].
pub fn compile_all() -> Result<Vec<Compiled>, SchemaError> {
    let library = library(COMMON)?;
    files()
        .map(|(name, text)| compile(name, text, &library))
        .collect()
}

/// Compiles every release ([`RELEASES`]), oldest first: `(version, its records)`.
pub fn compile_releases() -> Result<Vec<(&'static str, Vec<Compiled>)>, SchemaError> {
    RELEASES
        .iter()
        .map(|(version, common, records)| {
            let library = library(common)?;
            let compiled = records
                .iter()
                .map(|(name, text)| compile(name, text, &library))
                .collect::<Result<_, _>>()?;
            Ok((*version, compiled))
        })
        .collect()
}

/// Every schema of every release, once per distinct fingerprint.
pub fn compile_released() -> Result<Vec<Compiled>, SchemaError> {
    let mut seen = std::collections::HashSet::new();
    Ok(compile_releases()?
        .into_iter()
        .flat_map(|(_, records)| records)
        .filter(|c| seen.insert(c.fingerprint))
        .collect())
}

/// Compiles a schema a registry gave (self-contained JSON) as a writer schema of record `name`.
pub fn compile_writer(name: &'static str, text: &str) -> Result<Compiled, SchemaError> {
    compile(name, text, &BTreeMap::new())
}

/// The full name (`namespace.name`) of the record a schema text defines, if it defines one.
pub fn record_full_name(text: &str) -> Option<String> {
    let json: Json = serde_json::from_str(text).ok()?;
    if json.get("type")?.as_str()? != "record" {
        return None;
    }
    let name = json.get("name")?.as_str()?;
    let namespace = json.get("namespace").and_then(Json::as_str).unwrap_or("");
    Some(if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    })
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
    let full = inline_named_types(&raw, library);
    let json = full.to_string();
    let schema = Schema::parse_str(&json).map_err(|e| err(e.to_string()))?;
    // apache-avro's own canonical form keeps `{"type":"long"}` for logical types, which the
    // specification reduces to "long"; Java and Python writers fingerprint the latter.
    let bytes = {
        use apache_avro::rabin::Rabin as R;
        use digest::Digest;
        let mut d = R::new();
        d.update(canonical_form(&full, NAMESPACE).as_bytes());
        d.finalize().to_vec()
    };
    let fingerprint: [u8; 8] = bytes
        .try_into()
        .map_err(|_| err("fingerprint is not 8 bytes".into()))?;
    let expanded_json = expand(&full);
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
fn library(common: &str) -> Result<BTreeMap<String, Json>, SchemaError> {
    let err = |detail: String| SchemaError {
        name: "common".into(),
        detail,
    };
    let defs: Vec<Json> = serde_json::from_str(common).map_err(|e| err(e.to_string()))?;
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

/// Avro's Parsing Canonical Form: full names, only the attributes that matter for parsing, in
/// the order name, type, fields, symbols, items, values, size; primitives in their simple form;
/// no whitespace.
pub fn canonical_form(v: &Json, ns: &str) -> String {
    match v {
        Json::String(s) if PRIMITIVES.contains(&s.as_str()) => format!("\"{s}\""),
        Json::String(s) => Json::String(full_name(s, ns)).to_string(),
        Json::Array(union) => {
            let members: Vec<String> = union.iter().map(|m| canonical_form(m, ns)).collect();
            format!("[{}]", members.join(","))
        }
        Json::Object(obj) => {
            let kind = obj.get("type").cloned().unwrap_or(Json::Null);
            let kind_name = kind.as_str().unwrap_or_default();
            if !matches!(kind_name, "record" | "enum" | "fixed" | "array" | "map") {
                // A primitive with attributes (e.g. a logical type) is just the primitive.
                return canonical_form(&kind, ns);
            }
            let own_ns = obj
                .get("namespace")
                .and_then(Json::as_str)
                .unwrap_or(ns)
                .to_owned();
            let mut parts = Vec::new();
            if let Some(n) = obj.get("name").and_then(Json::as_str) {
                parts.push(format!("\"name\":{}", Json::String(full_name(n, &own_ns))));
            }
            parts.push(format!("\"type\":\"{kind_name}\""));
            if let Some(Json::Array(fields)) = obj.get("fields") {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| {
                        let name = Json::String(f["name"].as_str().unwrap_or_default().to_owned());
                        format!(
                            "{{\"name\":{name},\"type\":{}}}",
                            canonical_form(&f["type"], &own_ns)
                        )
                    })
                    .collect();
                parts.push(format!("\"fields\":[{}]", fields.join(",")));
            }
            if let Some(symbols) = obj.get("symbols") {
                parts.push(format!("\"symbols\":{symbols}"));
            }
            if let Some(items) = obj.get("items") {
                parts.push(format!("\"items\":{}", canonical_form(items, &own_ns)));
            }
            if let Some(values) = obj.get("values") {
                parts.push(format!("\"values\":{}", canonical_form(values, &own_ns)));
            }
            if let Some(size) = obj.get("size") {
                parts.push(format!("\"size\":{size}"));
            }
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// What a walk over a schema does at a named type's reference and at its definition.
trait Resolver {
    /// The definition to write in place of a reference to `full_name`, if any.
    fn reference(&mut self, full_name: &str) -> Option<Json>;
    /// Sees a definition (`original`, full name `full_name`) as it is copied into `out`.
    fn definition(
        &mut self,
        full_name: String,
        original: &Json,
        out: &mut serde_json::Map<String, Json>,
    );
}

/// Copies a schema, letting `r` replace references and see definitions.
fn walk(v: &Json, ns: &str, r: &mut impl Resolver) -> Json {
    match v {
        Json::String(s) if !PRIMITIVES.contains(&s.as_str()) => {
            match r.reference(&full_name(s, ns)) {
                Some(def) => {
                    let def_ns = def["namespace"].as_str().unwrap_or(ns).to_owned();
                    walk(&def, &def_ns, r)
                }
                None => v.clone(),
            }
        }
        Json::Array(union) => Json::Array(union.iter().map(|m| walk(m, ns, r)).collect()),
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
                    r.definition(full_name(n, &own_ns), v, &mut out);
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
                                    f["type"] = walk(t, &own_ns, r);
                                }
                                f
                            })
                            .collect();
                        out.insert("fields".into(), Json::Array(fields));
                    }
                }
                "array" => {
                    out.insert("items".into(), walk(&obj["items"], ns, r));
                }
                "map" => {
                    out.insert("values".into(), walk(&obj["values"], ns, r));
                }
                _ => {
                    if let Some(t @ (Json::Object(_) | Json::Array(_))) = obj.get("type") {
                        out.insert("type".into(), walk(t, ns, r));
                    }
                }
            }
            Json::Object(out)
        }
        _ => v.clone(),
    }
}

/// Writes each library type in at its first reference; later references stay names.
struct InlineFirst<'l> {
    lib: &'l BTreeMap<String, Json>,
    defined: BTreeSet<String>,
}

impl Resolver for InlineFirst<'_> {
    fn reference(&mut self, full_name: &str) -> Option<Json> {
        match self.lib.get(full_name) {
            Some(def) if self.defined.insert(full_name.to_owned()) => Some(def.clone()),
            _ => None,
        }
    }

    fn definition(&mut self, full_name: String, _: &Json, _: &mut serde_json::Map<String, Json>) {
        self.defined.insert(full_name);
    }
}

/// Writes every reference out in full, renaming each copy so that names stay unique.
#[derive(Default)]
struct ExpandAll {
    defs: BTreeMap<String, Json>,
    copies: usize,
}

impl Resolver for ExpandAll {
    fn reference(&mut self, full_name: &str) -> Option<Json> {
        self.defs.get(full_name).cloned()
    }

    fn definition(
        &mut self,
        full_name: String,
        original: &Json,
        out: &mut serde_json::Map<String, Json>,
    ) {
        let short = full_name
            .rsplit('.')
            .next()
            .unwrap_or(&full_name)
            .to_owned();
        self.defs.insert(full_name, original.clone());
        self.copies += 1;
        out.insert(
            "name".into(),
            Json::String(format!("{short}_{}", self.copies)),
        );
    }
}

/// Replaces the first reference to each library type by its definition.
pub fn inline_named_types(v: &Json, lib: &BTreeMap<String, Json>) -> Json {
    walk(
        v,
        NAMESPACE,
        &mut InlineFirst {
            lib,
            defined: BTreeSet::new(),
        },
    )
}

/// The same structure with every named type written out where it is used.
fn expand(v: &Json) -> Json {
    walk(v, NAMESPACE, &mut ExpandAll::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles_with_a_distinct_fingerprint() {
        let all = compile_all().unwrap();
        assert_eq!(all.len(), files().count());
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

#[cfg(test)]
mod compatibility_tests {
    use super::*;
    use apache_avro::schema_compatibility::SchemaCompatibility;

    /// Backward compatibility with every release: a consumer on the current schemas reads
    /// every record written with the released ones.
    #[test]
    fn every_current_schema_reads_what_the_last_release_wrote() {
        let current = compile_all().unwrap();
        for old in compile_released().unwrap() {
            let new = current
                .iter()
                .find(|c| c.name == old.name)
                .unwrap_or_else(|| panic!("{} was removed since the last release", old.name));
            if let Err(e) = SchemaCompatibility::can_read(&old.expanded, &new.expanded) {
                panic!("{} cannot read its released version: {e}", old.name);
            }
        }
    }

    #[test]
    fn a_field_added_without_a_default_is_caught() {
        let old = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        )
        .unwrap();
        let new = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#,
        )
        .unwrap();
        assert!(SchemaCompatibility::can_read(&old, &new).is_err());
    }
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    #[test]
    fn the_canonical_form_follows_the_specification() {
        let schema: Json = serde_json::from_str(
            r#"{"type":"record","name":"R","namespace":"n","doc":"x","fields":[
                {"name":"t","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"d"},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}},
                {"name":"u","type":["null","E"],"default":null},
                {"name":"a","type":{"type":"array","items":"int"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_form(&schema, ""),
            r#"{"name":"n.R","type":"record","fields":[{"name":"t","type":"long"},{"name":"e","type":{"name":"n.E","type":"enum","symbols":["A","B"]}},{"name":"u","type":["null","n.E"]},{"name":"a","type":{"type":"array","items":"int"}}]}"#
        );
    }

    #[test]
    fn the_fingerprint_of_int_is_the_one_the_specification_gives() {
        use apache_avro::rabin::Rabin;
        use digest::Digest;
        let mut d = Rabin::new();
        d.update(canonical_form(&Json::String("int".into()), "").as_bytes());
        // CRC-64-AVRO of "int" is 0x7275d51a3f395c8f, written little-endian.
        assert_eq!(
            d.finalize().to_vec(),
            vec![0x8f, 0x5c, 0x39, 0x3f, 0x1a, 0xd5, 0x75, 0x72]
        );
    }
}
