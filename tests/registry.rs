//! Rallypoint with a real Schema Registry (scripts/schema-registry.sh: Apicurio Registry's
//! Confluent-compatible API) on the real broker:
//! - the registry itself takes every release in order and judges the current schemas backward
//!   compatible with the last, and refuses a schema that is not;
//! - feeds write the Confluent wire format with ids they get from the registry, and a SIEM
//!   reads the decisions by fetching each writer schema from the registry by its id;
//! - a record whose id cannot be looked up waits for the registry rather than being
//!   dead-lettered.

use rallypoint_testkit as common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use common::{Harness, LocalService, Record};
use rallypoint::codec::schemas::{compile_all, compile_released, compile_releases, Compiled};
use rallypoint::config::SchemaRegistryConfig;
use rallypoint::registry::{Client, RegistryError};
use rallypoint_core::event::{Capability, Event, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};

const WAIT: Duration = Duration::from_secs(60);

fn registry_url() -> String {
    std::env::var("RALLYPOINT_TEST_SCHEMA_REGISTRY").expect(
        "RALLYPOINT_TEST_SCHEMA_REGISTRY is not set: run the suite with scripts/test.sh, which starts a Schema Registry",
    )
}

fn client(url: &str) -> Client {
    Client::new(&SchemaRegistryConfig {
        url: url.to_owned(),
        timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .unwrap()
}

/// Subjects of a test's own, so that tests sharing the registry do not see each other.
fn subject(prefix: &str, schema: &Compiled) -> String {
    format!("{prefix}.{}", schema.full_name())
}

fn prefix(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// The upgrade path as a registry sees it: each subject takes every release in order as its
/// next version under BACKWARD compatibility, then the current schema.
#[test]
fn the_registry_finds_every_current_schema_backward_compatible_with_every_release() {
    let registry = client(&registry_url());
    let prefix = prefix("compat");
    let current = compile_all().unwrap();
    let releases = compile_releases().unwrap();
    assert!(releases.len() >= 2, "v1 and v2 are released");
    let mut subjects = BTreeMap::new();
    for (version, records) in &releases {
        for old in records {
            let subject = subject(&prefix, old);
            if subjects.insert(old.name, subject.clone()).is_none() {
                registry.set_compatibility(&subject, "BACKWARD").unwrap();
            } else {
                assert!(
                    registry.is_compatible(&subject, &old.json).unwrap(),
                    "the registry refuses {} of release {version} after the one before",
                    old.name
                );
            }
            registry.register(&subject, &old.json).unwrap();
        }
    }
    let mut refused = Vec::new();
    for (name, subject) in &subjects {
        let new = current
            .iter()
            .find(|c| c.name == *name)
            .unwrap_or_else(|| panic!("{name} was removed since it was released"));
        if !registry.is_compatible(subject, &new.json).unwrap() {
            refused.push(*name);
        }
    }
    assert!(
        refused.is_empty(),
        "the registry refuses these as BACKWARD incompatible with the last release: {refused:?}"
    );
    // And it takes them as the next version.
    for (name, subject) in &subjects {
        let new = current.iter().find(|c| c.name == *name).unwrap();
        registry.register(subject, &new.json).unwrap();
    }
}

#[test]
fn the_registry_refuses_a_new_field_without_a_default() {
    let registry = client(&registry_url());
    let prefix = prefix("refuse");
    let released = compile_released().unwrap();
    let old = released.iter().find(|c| c.name == "AssetOffered").unwrap();
    let subject = subject(&prefix, old);
    registry.set_compatibility(&subject, "BACKWARD").unwrap();
    registry.register(&subject, &old.json).unwrap();
    let with_field = |field: serde_json::Value| {
        let mut v: serde_json::Value = serde_json::from_str(&old.json).unwrap();
        v["fields"].as_array_mut().unwrap().push(field);
        v.to_string()
    };
    let without_default = with_field(serde_json::json!({"name": "clearance", "type": "string"}));
    assert!(!registry.is_compatible(&subject, &without_default).unwrap());
    match registry.register(&subject, &without_default) {
        Err(RegistryError::Refused { status: 409, .. }) => {}
        other => panic!("registering an incompatible schema: {other:?}"),
    }
    let with_default =
        with_field(serde_json::json!({"name": "clearance", "type": "string", "default": ""}));
    assert!(registry.is_compatible(&subject, &with_default).unwrap());
}

/// A record in the Confluent wire format: magic byte, schema id, Avro body.
fn confluent(id: u32, body: &[u8]) -> Vec<u8> {
    [&[0u8][..], &id.to_be_bytes(), body].concat()
}

/// What a SIEM does: take the id from the record, fetch the writer schema from the registry,
/// and read the record with it (apache-avro's generic reader, not Rallypoint's codec).
fn read_with_registry(registry: &Client, bytes: &[u8]) -> (String, BTreeMap<String, Value>) {
    assert_eq!(bytes[0], 0, "not the Confluent wire format: {bytes:?}");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
    let text = registry
        .schema_by_id(id)
        .unwrap()
        .unwrap_or_else(|| panic!("the registry has no schema {id}"));
    let schema = apache_avro::Schema::parse_str(&text).unwrap();
    let name = match &schema {
        apache_avro::Schema::Record(r) => r.name.name.clone(),
        other => panic!("{other:?}"),
    };
    let mut body = &bytes[5..];
    let value = apache_avro::from_avro_datum(&schema, &mut body, None).unwrap();
    assert!(body.is_empty(), "{} bytes after the record", body.len());
    let Value::Record(fields) = value else {
        panic!("{value:?}")
    };
    (name, fields.into_iter().collect())
}

fn string(fields: &BTreeMap<String, Value>, name: &str) -> String {
    match &fields[name] {
        Value::String(s) => s.clone(),
        Value::Enum(_, s) => s.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

/// What a feed does: ask the registry for the id of the schema it writes with (as a Confluent
/// serializer with `auto.register.schemas=false` does), then frame the Avro body with it.
struct Feed<'h> {
    h: &'h Harness,
    registry: Client,
    ids: BTreeMap<&'static str, u32>,
}

impl<'h> Feed<'h> {
    fn new(h: &'h Harness, url: &str) -> Self {
        Self {
            h,
            registry: client(url),
            ids: BTreeMap::new(),
        }
    }

    fn send(&mut self, e: &Event) {
        let name = e.type_name();
        let schema = self
            .h
            .codec
            .schemas()
            .iter()
            .find(|s| s.name == name)
            .unwrap();
        let id = *self.ids.entry(name).or_insert_with(|| {
            self.registry
                .lookup(&schema.full_name(), &schema.json)
                .unwrap()
                .unwrap_or_else(|| panic!("{name} is not registered"))
        });
        // The Avro body is the same whatever the framing: what follows the single-object header.
        let body = &self.h.codec.encode_event(e)[10..];
        let topic = self.h.topic(&format!(
            "rrc.in.{}.{}",
            e.envelope().nation,
            e.stream().suffix()
        ));
        self.h
            .send_raw(&topic, e.entity_id().as_bytes(), &confluent(id, body));
    }
}

fn with_registry(name: &str, url: &str) -> Harness {
    Harness::with_sections(
        name,
        &["EST", "LVA", "DEU"],
        "",
        &format!("[schema_registry]\nurl = \"{url}\"\n"),
    )
}

fn reason_of(r: &Record) -> String {
    r.headers
        .iter()
        .find(|(k, _)| k == "error.reason")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

#[test]
fn feeds_and_siems_speak_the_confluent_wire_format_with_ids_from_the_registry() {
    let url = registry_url();
    let mut h = with_registry("registry", &url);
    h.start();
    assert!(h.wait_ready(WAIT), "not ready\n{}", h.log());
    let mut feed = Feed::new(&h, &url);
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    feed.send(&sample::offer(
        clock.envelope("DEU"),
        "O-DEU",
        Capability::Forensics,
        2,
    ));
    let incident = sample::incident(clock.envelope("EST"), "I1", Tlp::Amber, Priority::Severe);
    feed.send(&incident);
    feed.send(&sample::request(
        clock.envelope("EST"),
        "R1",
        "I1",
        &[(Capability::Forensics, 2)],
    ));

    let registry = client(&url);
    let proposed = h.read("rrc.out.coalition.decisions", 1, WAIT);
    assert_eq!(proposed.len(), 1, "\n{}", h.log());
    let (name, fields) = read_with_registry(&registry, &proposed[0].value);
    assert_eq!(name, "AssignmentProposed");
    assert_eq!(string(&fields, "provider_nation"), "DEU");
    let assignment = string(&fields, "assignment_id");
    feed.send(&sample::accepted(clock.envelope("DEU"), &assignment));

    let est = h.read("rrc.out.EST.decisions", 2, WAIT);
    let seen: Vec<String> = est
        .iter()
        .map(|r| read_with_registry(&registry, &r.value).0)
        .collect();
    assert_eq!(
        seen,
        ["AssignmentProposed", "AssignmentConfirmed"],
        "\n{}",
        h.log()
    );
    // The tools read the same framing: `watch` as JSON lines, `replay` byte for byte.
    let watch = h
        .command(&[
            "watch",
            "--audience",
            "EST",
            "--from-beginning",
            "--count",
            "2",
            "--idle",
            "20s",
        ])
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&watch.stdout);
    assert_eq!(
        lines
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].clone())
            .collect::<Vec<_>>(),
        ["AssignmentProposed", "AssignmentConfirmed"],
        "{lines}{}",
        String::from_utf8_lossy(&watch.stderr)
    );
    std::thread::sleep(Duration::from_secs(1));
    let audit = h.command(&["replay"]).output().unwrap();
    assert!(
        audit.status.success(),
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
    // The journal, too, is in the Confluent wire format with the registered ids.
    let journal = h.read("rrc.internal.journal", 4, WAIT);
    let kinds: Vec<String> = journal
        .iter()
        .map(|r| read_with_registry(&registry, &r.value).0)
        .collect();
    assert_eq!(
        kinds,
        [
            "AssetOffered",
            "IncidentReported",
            "AssistanceRequested",
            "AssignmentAccepted"
        ]
    );

    // An id the registry has, of a schema that is not Rallypoint's; and one it does not have.
    let foreign = registry
        .register(
            &format!("{}.com.example.Invoice", prefix("foreign")),
            r#"{"type":"record","name":"Invoice","namespace":"com.example","fields":[{"name":"n","type":"int"}]}"#,
        )
        .unwrap();
    let topic = h.topic("rrc.in.EST.incidents");
    h.send_raw(&topic, b"x", &confluent(foreign, &[2]));
    h.send_raw(&topic, b"y", &confluent(987_654_321, &[2]));
    let dlq = h.read("rrc.dlq", 2, WAIT);
    assert_eq!(dlq.len(), 2, "\n{}", h.log());
    let letters: Vec<(String, String)> = dlq
        .iter()
        .map(|r| {
            let (name, fields) = read_with_registry(&registry, &r.value);
            assert_eq!(name, "DeadLetter");
            assert_eq!(reason_of(r), string(&fields, "reason"));
            (string(&fields, "reason"), string(&fields, "detail"))
        })
        .collect();
    assert!(letters.iter().all(|(reason, _)| reason == "unknown_schema"));
    for why in [
        "has no schema with id 987654321",
        "com.example.Invoice, not a Rallypoint schema",
    ] {
        assert!(
            letters.iter().any(|(_, detail)| detail.contains(why)),
            "{why} is not among {letters:?}"
        );
    }
}

/// A registry of the test's own, so that it can be stopped: stopped and removed on drop.
struct OwnRegistry {
    service: LocalService,
    url: String,
}

impl OwnRegistry {
    fn start() -> Self {
        let service = LocalService::new(
            "schema-registry.sh",
            "REGISTRY",
            &[("REGISTRY_BOOTSTRAP", &common::bootstrap())],
        );
        let url = service.run(&["start"]);
        Self { service, url }
    }

    fn script(&self, action: &str) -> String {
        self.service.run(&[action])
    }
}

fn metric(h: &Harness, line_start: &str) -> f64 {
    let (_, body) = h.http_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_record_whose_schema_id_cannot_be_looked_up_waits_for_the_registry_instead_of_the_dead_letter_topic(
) {
    let registry = OwnRegistry::start();
    let mut h = with_registry("registry-down", &registry.url);
    h.start();
    assert!(h.wait_ready(WAIT), "not ready\n{}", h.log());
    // A feed one version ahead: its AssetOffered has a field more, with a default. The
    // processor has not met that schema's id.
    let current = h
        .codec
        .schemas()
        .iter()
        .find(|s| s.name == "AssetOffered")
        .unwrap();
    let mut newer: serde_json::Value = serde_json::from_str(&current.json).unwrap();
    newer["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "note", "type": "string", "default": ""}));
    let id = client(&registry.url)
        .register(&current.full_name(), &newer.to_string())
        .unwrap();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    let offer = sample::offer(clock.envelope("DEU"), "O-DEU", Capability::Forensics, 2);
    let mut body = h.codec.encode_event(&offer)[10..].to_vec();
    body.extend([6, b'h', b'e', b'y']); // note = "hey"

    registry.script("stop");
    h.send_raw(
        &h.topic("rrc.in.DEU.offers"),
        b"O-DEU",
        &confluent(id, &body),
    );
    let started = Instant::now();
    while metric(
        &h,
        "rallypoint_schema_registry_unavailable_total{stage=\"intake\"}",
    ) < 2.0
    {
        assert!(
            started.elapsed() < WAIT,
            "intake never waited for the registry\n{}",
            h.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(h.read("rrc.dlq", 1, Duration::from_secs(2)).is_empty());
    assert!(h
        .read("rrc.internal.journal", 1, Duration::from_secs(1))
        .is_empty());

    registry.script("start");
    let journal = h.read("rrc.internal.journal", 1, WAIT);
    assert_eq!(journal.len(), 1, "\n{}", h.log());
    let (name, fields) = read_with_registry(&client(&registry.url), &journal[0].value);
    assert_eq!(
        (name.as_str(), string(&fields, "offer_id").as_str()),
        ("AssetOffered", "O-DEU")
    );
    assert!(h.read("rrc.dlq", 1, Duration::from_secs(2)).is_empty());
}
