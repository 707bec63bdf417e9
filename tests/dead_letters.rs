//! Dead letters on the real broker keep the feed's record byte for byte, whichever stage
//! rejects it: one record per reason, in each framing that applies (Avro single-object,
//! JSON, and the Confluent wire format when `RALLYPOINT_TEST_SCHEMA_REGISTRY` names a
//! registry), each with a key and headers of its own, compared with what the broker
//! acknowledged: key, value, headers, topic, partition, offset and timestamp, in the
//! `DeadLetter` value and in the dead letter's Kafka key and headers.
//!
//! The oversized records are larger than the broker's default `max.message.bytes` (1 MiB):
//! they reach intake only because `topics create` gives the input topics room above
//! `intake.max_record_bytes`.

use rallypoint_testkit as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Harness, Record};
use rallypoint::codec::{DeadLetter, Header};
use rallypoint_core::event::{Capability, Event, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const WAIT: Duration = Duration::from_secs(120);
/// Over the 1 MiB default of `intake.max_record_bytes`, and over the broker's default limit.
const OVERSIZED: usize = 1_500_000;

/// One record sent, as the broker acknowledged it, and the reason it must be rejected for
/// (`None`: it must be accepted).
struct Sent {
    reason: Option<&'static str>,
    framing: &'static str,
    topic: String,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<Header>,
}

/// A feed: a producer that waits for each record's acknowledgement.
struct Feed<'h> {
    h: &'h Harness,
    producer: FutureProducer,
    runtime: tokio::runtime::Runtime,
    sent: Vec<Sent>,
}

impl<'h> Feed<'h> {
    fn new(h: &'h Harness) -> Self {
        Self {
            h,
            producer: ClientConfig::new()
                .set("bootstrap.servers", &h.bootstrap)
                .set("message.max.bytes", "4000000")
                .create()
                .unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
            sent: Vec::new(),
        }
    }

    /// Sends `value` to `base` (an input topic without the namespace) with a distinctive key
    /// and three headers (one binary, one null); `partition` when it must be that one.
    fn send(
        &mut self,
        framing: &'static str,
        reason: Option<&'static str>,
        base: &str,
        partition: Option<i32>,
        value: Vec<u8>,
    ) {
        let n = self.sent.len();
        let what = reason.unwrap_or("accepted");
        let mut key = format!("feed-key/{framing}/{what}/{n}/").into_bytes();
        key.extend_from_slice(&[0xfe, 0x00, 0x7f]);
        let headers = vec![
            Header {
                key: "trace-id".into(),
                value: Some(format!("{framing}-{what}-{n:04}").into_bytes()),
            },
            Header {
                key: "feed.binary".into(),
                value: Some(vec![0x00, 0xc3, 0x01, 0xff, n as u8]),
            },
            Header {
                key: "feed.null".into(),
                value: None,
            },
        ];
        let kafka_headers = headers.iter().fold(OwnedHeaders::new(), |hs, h| {
            hs.insert(rdkafka::message::Header {
                key: &h.key,
                value: h.value.as_deref(),
            })
        });
        let topic = self.h.topic(base);
        let mut record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&value)
            .headers(kafka_headers);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let delivered = self
            .runtime
            .block_on(self.producer.send(record, Duration::from_secs(30)))
            .unwrap_or_else(|(e, _)| panic!("sending a {framing} record for {what}: {e}"));
        self.sent.push(Sent {
            reason,
            framing,
            topic,
            partition: delivered.partition,
            offset: delivered.offset,
            timestamp: delivered.timestamp.to_millis(),
            key,
            value,
            headers,
        });
    }

    fn accepted(&self) -> usize {
        self.sent.iter().filter(|s| s.reason.is_none()).count()
    }
}

/// Writes an event's bytes in a framing.
type Encode<'a> = Box<dyn Fn(&Event) -> Vec<u8> + 'a>;

/// How a framing writes an event, and its prefix for entity ids.
struct Framing<'a> {
    name: &'static str,
    prefix: &'static str,
    encode: Encode<'a>,
}

fn incidents(nation: &str) -> String {
    format!("rrc.in.{nation}.incidents")
}

/// The records every framing starts with, all on one partition so that intake journals them
/// in order: incident `<p>-I1` (open) and `<p>-I2` (closed) of EST. Returns I1's event.
fn setup(feed: &mut Feed<'_>, f: &Framing<'_>, clock: &mut Clock) -> Event {
    let p = f.prefix;
    let i1 = sample::incident(
        clock.envelope("EST"),
        &format!("{p}-I1"),
        Tlp::Green,
        Priority::High,
    );
    let i2 = sample::incident(
        clock.envelope("EST"),
        &format!("{p}-I2"),
        Tlp::Green,
        Priority::High,
    );
    let closed = sample::closed(clock.envelope("EST"), &format!("{p}-I2"));
    for e in [&i1, &i2, &closed] {
        feed.send(f.name, None, &incidents("EST"), Some(0), (f.encode)(e));
    }
    i1
}

/// One record for each reason intake rejects for.
fn intake_cases(feed: &mut Feed<'_>, f: &Framing<'_>, clock: &mut Clock, oversized: Vec<u8>) {
    let p = f.prefix;
    let est = incidents("EST");
    let now = rallypoint::kafka::now_ms();
    let mut future = sample::incident(
        clock.envelope("EST"),
        &format!("{p}-FUTURE"),
        Tlp::Green,
        Priority::High,
    );
    if let Event::IncidentReported(i) = &mut future {
        i.envelope.reported_at = now + 24 * 3_600_000;
    }
    let mut invalid = sample::incident(
        clock.envelope("EST"),
        &format!("{p}-BAD"),
        Tlp::Green,
        Priority::High,
    );
    if let Event::IncidentReported(i) = &mut invalid {
        i.techniques = vec!["X9999".into()];
    }
    let spoofed = sample::incident(
        clock.envelope("LVA"),
        &format!("{p}-SPOOF"),
        Tlp::Green,
        Priority::High,
    );
    let offer = sample::offer(
        clock.envelope("EST"),
        &format!("{p}-O-WRONG"),
        Capability::Forensics,
        1,
    );
    let valid = (f.encode)(&sample::incident(
        clock.envelope("EST"),
        &format!("{p}-X"),
        Tlp::Green,
        Priority::High,
    ));
    let (undecodable, unknown_schema) = match f.name {
        "json" => {
            let mut v: serde_json::Value = serde_json::from_slice(&valid).unwrap();
            v["tlp"] = "PURPLE".into();
            let bad = serde_json::to_vec(&v).unwrap();
            v["type"] = "NoSuchEvent".into();
            (bad, serde_json::to_vec(&v).unwrap())
        }
        "avro" => {
            let mut unknown = valid.clone();
            unknown[2..10].copy_from_slice(&[7; 8]);
            (valid[..valid.len() / 2].to_vec(), unknown)
        }
        _ => {
            let mut unknown = valid.clone();
            unknown[1..5].copy_from_slice(&987_654_321u32.to_be_bytes());
            (valid[..valid.len() / 2].to_vec(), unknown)
        }
    };
    let name = f.name;
    feed.send(name, Some("undecodable"), &est, None, undecodable);
    feed.send(name, Some("unknown_schema"), &est, None, unknown_schema);
    feed.send(name, Some("oversized"), &est, None, oversized);
    feed.send(
        name,
        Some("invalid_field"),
        &est,
        None,
        (f.encode)(&invalid),
    );
    feed.send(
        name,
        Some("spoofed_nation"),
        &est,
        None,
        (f.encode)(&spoofed),
    );
    feed.send(name, Some("wrong_topic"), &est, None, (f.encode)(&offer));
    feed.send(
        name,
        Some("from_the_future"),
        &est,
        None,
        (f.encode)(&future),
    );
}

/// One record for each reason the coordinator rejects for, after [`setup`] was processed.
fn coordinator_cases(feed: &mut Feed<'_>, f: &Framing<'_>, clock: &mut Clock, i1: &Event) {
    let p = f.prefix;
    let est = incidents("EST");
    let name = f.name;
    let needs = [(Capability::Forensics, 1)];
    // The very record again: same event id.
    feed.send(name, Some("duplicate_event_id"), &est, None, (f.encode)(i1));
    let again = sample::incident(
        clock.envelope("EST"),
        &format!("{p}-I1"),
        Tlp::Green,
        Priority::High,
    );
    feed.send(
        name,
        Some("duplicate_entity"),
        &est,
        None,
        (f.encode)(&again),
    );
    let nowhere = sample::request(
        clock.envelope("EST"),
        &format!("{p}-R-NOPE"),
        &format!("{p}-NOPE"),
        &needs,
    );
    feed.send(
        name,
        Some("unknown_entity"),
        &est,
        None,
        (f.encode)(&nowhere),
    );
    let foreign = sample::closed(clock.envelope("LVA"), &format!("{p}-I1"));
    let lva = incidents("LVA");
    feed.send(name, Some("not_owner"), &lva, None, (f.encode)(&foreign));
    let late = sample::request(
        clock.envelope("EST"),
        &format!("{p}-R-LATE"),
        &format!("{p}-I2"),
        &needs,
    );
    feed.send(name, Some("wrong_state"), &est, None, (f.encode)(&late));
}

fn header<'r>(r: &'r Record, key: &str) -> &'r [u8] {
    r.headers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| &v[..])
        .unwrap_or_else(|| panic!("no {key} header"))
}

/// Asserts that the dead-letter topic holds exactly one dead letter for each rejected record
/// sent, and that it gives the record back byte for byte.
fn assert_dead_letters_keep_the_records(h: &Harness, sent: &[Sent]) {
    let rejected: Vec<&Sent> = sent.iter().filter(|s| s.reason.is_some()).collect();
    let records = h.read("rrc.dlq", rejected.len(), WAIT);
    assert_eq!(records.len(), rejected.len(), "dead letters\n{}", h.log());
    // Then nothing more arrives (the accepted records have none).
    assert_eq!(
        h.read("rrc.dlq", rejected.len() + 1, Duration::from_secs(3))
            .len(),
        rejected.len()
    );
    let mut by_source: BTreeMap<(String, i32, i64), (DeadLetter, &Record)> = BTreeMap::new();
    for r in &records {
        let dl = h.codec.decode_dead_letter(&r.value).unwrap();
        let source = (
            dl.source_topic.clone(),
            dl.source_partition,
            dl.source_offset,
        );
        assert!(
            by_source.insert(source.clone(), (dl, r)).is_none(),
            "two dead letters of {source:?}"
        );
    }
    let mut reasons: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for s in &rejected {
        let reason = s.reason.unwrap_or_default();
        let what = format!("{} {reason}", s.framing);
        let Some((dl, r)) = by_source.get(&(s.topic.clone(), s.partition, s.offset)) else {
            panic!(
                "{what}: no dead letter of {}/{}/{}; dead letters: {:?}\n{}",
                s.topic,
                s.partition,
                s.offset,
                by_source
                    .values()
                    .map(|(d, _)| (&d.reason, &d.source_topic, d.source_offset, &d.detail))
                    .collect::<Vec<_>>(),
                h.log()
            )
        };
        assert_eq!(dl.reason, reason, "{what}: {}", dl.detail);
        assert!(
            dl.original_value == s.value,
            "{what}: original_value differs: {} bytes, sent {} ({})",
            dl.original_value.len(),
            s.value.len(),
            dl.detail
        );
        assert_eq!(
            dl.original_key.as_deref(),
            Some(&s.key[..]),
            "{what}: original_key"
        );
        assert_eq!(dl.original_headers, s.headers, "{what}: original_headers");
        assert_eq!(dl.source_timestamp, s.timestamp, "{what}: source_timestamp");
        assert!(
            !dl.detail.contains("written before"),
            "{what}: {}",
            dl.detail
        );
        // The Kafka record: key and headers.
        assert_eq!(r.key.as_deref(), Some(&s.key[..]), "{what}: Kafka key");
        assert_eq!(header(r, "error.reason"), reason.as_bytes(), "{what}");
        assert_eq!(header(r, "error.detail"), dl.detail.as_bytes(), "{what}");
        assert_eq!(header(r, "source.topic"), s.topic.as_bytes(), "{what}");
        assert_eq!(
            header(r, "source.partition"),
            s.partition.to_string().as_bytes(),
            "{what}"
        );
        assert_eq!(
            header(r, "source.offset"),
            s.offset.to_string().as_bytes(),
            "{what}"
        );
        *reasons.entry((s.framing, reason)).or_default() += 1;
    }
    assert!(reasons.values().all(|&n| n == 1), "{reasons:?}");
}

/// Sends every case of `framings` and checks the dead letters.
fn run(h: &Harness, framings: &[Framing<'_>]) {
    let mut feed = Feed::new(h);
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 10);
    let firsts: Vec<Event> = framings
        .iter()
        .map(|f| setup(&mut feed, f, &mut clock))
        .collect();
    // The setup is journaled and folded before the records that depend on it are sent.
    common::wait_until_processed(h, feed.accepted(), &mut []);
    for (f, i1) in framings.iter().zip(&firsts) {
        let oversized = match f.name {
            "json" => {
                let mut v: serde_json::Value = serde_json::from_slice(&(f.encode)(i1)).unwrap();
                v["padding"] = "x".repeat(OVERSIZED).into();
                serde_json::to_vec(&v).unwrap()
            }
            // The framing's header, then more body than allowed.
            _ => {
                let mut v = (f.encode)(i1);
                v.resize(OVERSIZED, 0x02);
                v
            }
        };
        intake_cases(&mut feed, f, &mut clock, oversized);
        coordinator_cases(&mut feed, f, &mut clock, i1);
    }
    assert_dead_letters_keep_the_records(h, &feed.sent);
    assert_journal_carries_values_only_when_they_differ(h, &feed.sent);
}

/// The journal carries a feed record's value only when its own differs: for a JSON record,
/// not for an Avro one in the framing the journal itself writes.
fn assert_journal_carries_values_only_when_they_differ(h: &Harness, sent: &[Sent]) {
    let journal = h.read_all("rrc.internal.journal");
    let mut checked = 0;
    for s in sent {
        let source = format!("{}/{}/{}", s.topic, s.partition, s.offset);
        let Some(r) = journal.iter().find(|r| {
            r.headers
                .iter()
                .any(|(k, v)| k == "rp.source" && v == source.as_bytes())
        }) else {
            continue;
        };
        let carried = r.headers.iter().any(|(k, _)| k == "rp.orig.value");
        assert_eq!(carried, s.framing == "json", "{} {source}", s.framing);
        assert_eq!(carried, r.value != s.value, "{} {source}", s.framing);
        checked += 1;
    }
    // The setup records and the coordinator's cases are journaled.
    assert!(checked >= 8, "{checked} journal records checked");
}

#[test]
fn dead_letters_of_intake_and_coordinator_keep_the_feed_record_byte_for_byte() {
    let mut h = Harness::new("deadletters", &["EST", "LVA", "DEU"], "");
    h.start();
    let codec = &h.codec;
    let framings = [
        Framing {
            name: "avro",
            prefix: "A",
            encode: Box::new(|e: &Event| codec.encode_event(e)),
        },
        Framing {
            name: "json",
            prefix: "J",
            encode: Box::new(|e: &Event| codec.encode_event_json(e)),
        },
    ];
    run(&h, &framings);

    // The audit reads each topic to its end: a normal end is no error.
    std::thread::sleep(Duration::from_secs(1));
    let audit = h.command(&["replay"]).output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr),
    );
    assert!(audit.status.success(), "{out}\n{err}");
    assert!(
        !err.contains("PartitionEOF") && !err.contains("ERROR"),
        "replay logged an error for a normal end:\n{err}"
    );
}

/// The Confluent wire format with ids from a real registry: the journal then carries the
/// same framing, so its value is the feed's. Only where a registry is configured.
#[test]
fn dead_letters_of_confluent_framed_records_keep_them_byte_for_byte() {
    let Ok(url) = std::env::var("RALLYPOINT_TEST_SCHEMA_REGISTRY") else {
        eprintln!("RALLYPOINT_TEST_SCHEMA_REGISTRY is not set: no Confluent-framed cases");
        return;
    };
    let mut h = Harness::with_sections(
        "deadletters-cf",
        &["EST", "LVA", "DEU"],
        "",
        &format!("[schema_registry]\nurl = \"{url}\"\n"),
    );
    h.start();
    assert!(h.wait_ready(WAIT), "not ready\n{}", h.log());
    let registry = rallypoint::registry::Client::new(&rallypoint::config::SchemaRegistryConfig {
        url: url.clone(),
        timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .unwrap();
    let codec = &h.codec;
    let ids: BTreeMap<&str, u32> = codec
        .schemas()
        .iter()
        .filter_map(|s| {
            let id = registry.lookup(&s.full_name(), &s.json).ok()??;
            Some((s.name, id))
        })
        .collect();
    // The dead letters are framed with the registry's id of DeadLetter too.
    for (name, id) in &ids {
        assert!(codec.register_confluent_id(*id, name));
    }
    assert!(ids.contains_key("DeadLetter"), "{ids:?}");
    let framings = [Framing {
        name: "confluent",
        prefix: "C",
        encode: Box::new(move |e: &Event| {
            let id = ids[e.type_name()];
            // The Avro body is the same whatever the framing.
            [&[0u8][..], &id.to_be_bytes(), &codec.encode_event(e)[10..]].concat()
        }),
    }];
    run(&h, &framings);
}
