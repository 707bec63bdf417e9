//! Dead letters: a rejected record kept whole, whichever stage rejects it.
//!
//! Intake rejects records it consumed from a feed; the coordinator rejects events of the
//! journal, which intake wrote from a feed record. Both build their dead letter from an
//! [`Original`] with the one function [`dead_letter_record`]: intake's original is the
//! consumed record ([`Original::consumed`]), the coordinator's the feed record the journal
//! record carries ([`Original::carried`]).
//!
//! # What a journal record carries
//! The journal's value stays the event's Avro encoding; what a later dead letter needs of the
//! feed record travels in the journal record's headers, written by [`journal_headers`]:
//!
//! | header | value | written |
//! |---|---|---|
//! | `rp.source` | the feed record's `topic/partition/offset` | always |
//! | `rp.input_ts` | the feed record's timestamp, epoch milliseconds, as text | always |
//! | `rp.orig.headers` | the feed record's headers: the Avro binary of `array<rallypoint.Header>`, the type of `DeadLetter.original_headers` (1 byte, `00`, when it had none) | always; its presence marks a journal record that carries its original |
//! | `rp.orig.key` | the feed record's key; a null header value when it had none | only when the key differs from the journal key (the entity id) |
//! | `rp.orig.value` | the feed record's value | only when it differs byte for byte from the journal value |
//!
//! A feed that keys by entity id and writes the Avro framing the journal uses (single-object,
//! or Confluent with the ids Rallypoint registered) costs 18 bytes more per journal record,
//! plus its own headers; a JSON feed also carries its JSON.
//!
//! A journal record written before intake carried these (no `rp.orig.headers`) gives what it
//! has: the journal's key and value, no headers, and `rp.source`; the dead letter's detail
//! says so.

use rallypoint_core::Rejection;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use super::txn::Transactional;
use crate::codec::{self, Codec, DeadLetter};
use crate::telemetry::events::{Kind, Rejected, Sent};

/// Headers Rallypoint adds to journal records.
pub const HDR_SOURCE: &str = "rp.source";
pub const HDR_INPUT_TS: &str = "rp.input_ts";
pub const HDR_ORIG_HEADERS: &str = "rp.orig.headers";
pub const HDR_ORIG_KEY: &str = "rp.orig.key";
pub const HDR_ORIG_VALUE: &str = "rp.orig.value";

/// Longest `detail` a dead letter keeps (it is written twice: in the value and a header), so
/// that a dead letter is bounded by its original plus a small envelope.
pub const MAX_DETAIL_BYTES: usize = 4096;

/// The record a feed sent, as a dead letter must keep it.
#[derive(Debug, PartialEq, Eq)]
pub struct Original<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
    pub headers: Vec<codec::Header>,
    /// How this differs from what the feed sent, when it cannot be known exactly.
    pub caveat: Option<String>,
}

fn owned_headers<H: Headers>(hs: &H) -> Vec<codec::Header> {
    hs.iter()
        .map(|h| codec::Header {
            key: h.key.to_owned(),
            value: h.value.map(<[u8]>::to_vec),
        })
        .collect()
}

/// The value of the first header named `key`: `None` when there is none, `Some(None)` when
/// it has a null value.
fn header<'a, M: Message>(m: &'a M, key: &str) -> Option<Option<&'a [u8]>> {
    let hs = m.headers()?;
    hs.iter().find(|h| h.key == key).map(|h| h.value)
}

/// `topic/partition/offset` of an `rp.source` header (topic names cannot hold a `/`).
fn parse_source(text: &str) -> Option<(&str, i32, i64)> {
    let mut parts = text.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let topic = parts.next().filter(|t| !t.is_empty())?;
    Some((topic, partition, offset))
}

/// The input record (topic, partition, offset) a journal record (`rp.source`) or an intake
/// dead letter (`source.topic`, `source.partition`, `source.offset`) follows from, by its
/// headers.
pub fn source_of(headers: &[(String, Vec<u8>)]) -> Option<(String, i32, i64)> {
    let text = |key: &str| super::settled::header_text(headers, key);
    if let Some((topic, partition, offset)) = text(HDR_SOURCE).and_then(parse_source) {
        return Some((topic.to_owned(), partition, offset));
    }
    Some((
        text("source.topic")?.to_owned(),
        text("source.partition")?.parse().ok()?,
        text("source.offset")?.parse().ok()?,
    ))
}

impl<'a> Original<'a> {
    /// The consumed record itself (intake's rejections).
    pub fn consumed<M: Message>(m: &'a M) -> Self {
        Self {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis(),
            key: m.key(),
            value: m.payload().unwrap_or_default(),
            headers: m.headers().map(owned_headers).unwrap_or_default(),
            caveat: None,
        }
    }

    /// The feed record the journal record `m` carries (the coordinator's rejections); see the
    /// module's documentation. Whatever is missing or unreadable is taken from the journal
    /// record instead, and the caveat says what.
    pub fn carried<M: Message>(codec: &Codec, m: &'a M) -> Self {
        let mut caveats: Vec<String> = Vec::new();
        let (topic, partition, offset) = match header(m, HDR_SOURCE)
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(parse_source)
        {
            Some(source) => source,
            None => {
                caveats.push(format!(
                    "the journal record has no readable {HDR_SOURCE} header: the source is the journal record"
                ));
                (m.topic(), m.partition(), m.offset())
            }
        };
        let timestamp = header(m, HDR_INPUT_TS)
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .or_else(|| m.timestamp().to_millis());
        let journal_value = m.payload().unwrap_or_default();
        let (key, value, headers) = match header(m, HDR_ORIG_HEADERS) {
            None => {
                caveats.push(
                    "journal record written before intake carried the feed's record: \
                     original_key and original_value are the journal's (the event re-encoded), \
                     and the feed's headers are not known"
                        .to_owned(),
                );
                (m.key(), journal_value, Vec::new())
            }
            Some(carried) => {
                let headers = match codec.decode_headers(carried.unwrap_or_default()) {
                    Ok(hs) => hs,
                    Err(e) => {
                        caveats.push(format!("the feed's headers are not known: {}", e.detail));
                        Vec::new()
                    }
                };
                let key = header(m, HDR_ORIG_KEY).unwrap_or_else(|| m.key());
                let value = header(m, HDR_ORIG_VALUE)
                    .map(Option::unwrap_or_default)
                    .unwrap_or(journal_value);
                (key, value, headers)
            }
        };
        Self {
            topic,
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
            caveat: (!caveats.is_empty()).then(|| caveats.join("; ")),
        }
    }
}

/// The headers of the journal record that intake writes for the consumed record `m`, whose
/// journal key and value are `key` and `value`: its source, and what [`Original::carried`]
/// needs to give `m` back.
pub fn journal_headers<M: Message>(codec: &Codec, m: &M, key: &[u8], value: &[u8]) -> OwnedHeaders {
    let source = format!("{}/{}/{}", m.topic(), m.partition(), m.offset());
    let ts = m
        .timestamp()
        .to_millis()
        .unwrap_or_else(super::now_ms)
        .to_string();
    let carried = codec.encode_headers(&m.headers().map(owned_headers).unwrap_or_default());
    let mut headers = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: HDR_SOURCE,
            value: Some(&source),
        })
        .insert(Header {
            key: HDR_INPUT_TS,
            value: Some(&ts),
        })
        .insert(Header {
            key: HDR_ORIG_HEADERS,
            value: Some(&carried),
        });
    if m.key() != Some(key) {
        headers = headers.insert(Header {
            key: HDR_ORIG_KEY,
            value: m.key(),
        });
    }
    let original = m.payload().unwrap_or_default();
    if original != value {
        headers = headers.insert(Header {
            key: HDR_ORIG_VALUE,
            value: Some(original),
        });
    }
    headers
}

/// Sends the dead letter of `original` for `rejection` in the open transaction, keyed by the
/// original key, and counts and logs it.
pub fn send_dead_letter(
    stage: &'static str,
    codec: &Codec,
    dlq: &str,
    metrics: &crate::telemetry::Metrics,
    txn: &mut Transactional,
    original: &Original<'_>,
    rejection: &Rejection,
) -> Result<(), super::stage::StageError> {
    metrics.tell(Rejected {
        stage,
        rejection,
        topic: original.topic,
        partition: original.partition,
        offset: original.offset,
    });
    let (value, headers) = dead_letter_record(codec, original, rejection);
    txn.send(dlq, original.key, Some(&value), Some(headers))?;
    metrics.tell(Sent {
        stage,
        kind: Kind::DeadLetter,
        count: 1,
    });
    Ok(())
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn bounded(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The dead letter of `original` for `rejection`: its value (a `DeadLetter`) and Kafka
/// headers (`error.reason`, `error.detail`, `source.topic`, `source.partition`,
/// `source.offset`). The only place a dead letter is made.
pub fn dead_letter_record(
    codec: &Codec,
    original: &Original<'_>,
    rejection: &Rejection,
) -> (Vec<u8>, OwnedHeaders) {
    let detail = match &original.caveat {
        Some(caveat) => format!("{} ({caveat})", rejection.detail),
        None => rejection.detail.clone(),
    };
    let detail = bounded(&detail, MAX_DETAIL_BYTES);
    let dl = DeadLetter {
        reason: rejection.reason.as_str().to_owned(),
        detail: detail.to_owned(),
        source_topic: original.topic.to_owned(),
        source_partition: original.partition,
        source_offset: original.offset,
        source_timestamp: original.timestamp,
        original_key: original.key.map(<[u8]>::to_vec),
        original_value: original.value.to_vec(),
        original_headers: original.headers.clone(),
    };
    let partition = original.partition.to_string();
    let offset = original.offset.to_string();
    let headers = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: "error.reason",
            value: Some(rejection.reason.as_str()),
        })
        .insert(Header {
            key: "error.detail",
            value: Some(detail),
        })
        .insert(Header {
            key: "source.topic",
            value: Some(original.topic),
        })
        .insert(Header {
            key: "source.partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "source.offset",
            value: Some(&offset),
        });
    (codec.encode_dead_letter(&dl), headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rallypoint_core::event::Event;
    use rallypoint_core::RejectReason;
    use rdkafka::message::OwnedMessage;
    use rdkafka::Timestamp;

    const JOURNAL: &str = "rrc.internal.journal";

    fn headers(pairs: &[(&str, Option<&[u8]>)]) -> Option<OwnedHeaders> {
        Some(pairs.iter().fold(OwnedHeaders::new(), |hs, (k, v)| {
            hs.insert(Header { key: k, value: *v })
        }))
    }

    fn feed_record(key: Option<&[u8]>, value: &[u8], hs: &[(&str, Option<&[u8]>)]) -> OwnedMessage {
        OwnedMessage::new(
            Some(value.to_vec()),
            key.map(<[u8]>::to_vec),
            "rrc.in.LVA.offers".into(),
            Timestamp::CreateTime(1_800_000_000_123),
            1,
            4711,
            headers(hs),
        )
    }

    /// The journal record intake writes for `feed` (event `e`): key, value and headers.
    fn journal_record(codec: &Codec, feed: &OwnedMessage, e: &Event) -> OwnedMessage {
        let key = e.entity_id().as_bytes();
        let value = codec.encode_event(e);
        let hs = journal_headers(codec, feed, key, &value);
        OwnedMessage::new(
            Some(value),
            Some(key.to_vec()),
            JOURNAL.into(),
            Timestamp::CreateTime(1_800_000_009_999),
            0,
            99,
            Some(hs),
        )
    }

    fn offer() -> Event {
        use rallypoint_core::event::Capability;
        use rallypoint_core::sample::{self, Clock};
        sample::offer(
            Clock::new(1_800_000_000_000, 10).envelope("LVA"),
            "O-1",
            Capability::Forensics,
            2,
        )
    }

    fn names(m: &OwnedMessage) -> Vec<String> {
        m.headers()
            .map(|hs| hs.iter().map(|h| h.key.to_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_journal_gives_back_a_json_record_with_its_key_and_headers_byte_for_byte() {
        let codec = Codec::new().unwrap();
        let e = offer();
        let json = codec.encode_event_json(&e);
        let hs: &[(&str, Option<&[u8]>)] = &[
            ("trace-id", Some(b"4bf92f3577b34da6")),
            ("nothing", None),
            ("trace-id", Some(b"repeated")),
        ];
        let feed = feed_record(Some(b"retry-7"), &json, hs);
        let journal = journal_record(&codec, &feed, &e);
        assert_eq!(
            names(&journal),
            [
                HDR_SOURCE,
                HDR_INPUT_TS,
                HDR_ORIG_HEADERS,
                HDR_ORIG_KEY,
                HDR_ORIG_VALUE
            ]
        );
        let carried = Original::carried(&codec, &journal);
        assert_eq!(carried, Original::consumed(&feed));
        assert_eq!(carried.value, &json[..]);
        assert_eq!(carried.key, Some(&b"retry-7"[..]));
        assert_eq!(carried.headers.len(), 3);
        assert_eq!(carried.headers[1].value, None);
        // Whichever stage makes it, a record's dead letter is the same.
        let r = Rejection::new(RejectReason::NotOwner, "offer O-1 belongs to DEU");
        assert_eq!(
            dead_letter_record(&codec, &carried, &r).0,
            dead_letter_record(&codec, &Original::consumed(&feed), &r).0
        );
    }

    #[test]
    fn an_avro_record_keyed_by_its_entity_costs_the_journal_only_the_headers_marker() {
        let codec = Codec::new().unwrap();
        let e = offer();
        let avro = codec.encode_event(&e);
        let feed = feed_record(Some(e.entity_id().as_bytes()), &avro, &[]);
        let journal = journal_record(&codec, &feed, &e);
        assert_eq!(
            names(&journal),
            [HDR_SOURCE, HDR_INPUT_TS, HDR_ORIG_HEADERS]
        );
        assert_eq!(header(&journal, HDR_ORIG_HEADERS), Some(Some(&[0u8][..])));
        assert_eq!(
            Original::carried(&codec, &journal),
            Original::consumed(&feed)
        );
    }

    #[test]
    fn a_record_without_a_key_comes_back_without_one() {
        let codec = Codec::new().unwrap();
        let e = offer();
        let feed = feed_record(None, &codec.encode_event(&e), &[]);
        let journal = journal_record(&codec, &feed, &e);
        assert_eq!(header(&journal, HDR_ORIG_KEY), Some(None));
        let carried = Original::carried(&codec, &journal);
        assert_eq!(carried.key, None);
        assert_eq!(carried, Original::consumed(&feed));
    }

    #[test]
    fn a_journal_record_from_before_gives_what_it_has_and_says_so() {
        let codec = Codec::new().unwrap();
        let value = codec.encode_event(&offer());
        let old = OwnedMessage::new(
            Some(value.clone()),
            Some(b"O-1".to_vec()),
            JOURNAL.into(),
            Timestamp::CreateTime(5),
            0,
            12,
            headers(&[
                (HDR_SOURCE, Some(b"ns.rrc.in.LVA.offers/1/4711")),
                (HDR_INPUT_TS, Some(b"1800000000123")),
            ]),
        );
        let o = Original::carried(&codec, &old);
        assert_eq!(
            (o.topic, o.partition, o.offset, o.timestamp),
            ("ns.rrc.in.LVA.offers", 1, 4711, Some(1_800_000_000_123))
        );
        assert_eq!((o.key, o.value), (Some(&b"O-1"[..]), &value[..]));
        assert!(o.headers.is_empty());
        let caveat = o.caveat.clone().unwrap();
        assert!(caveat.contains("written before"), "{caveat}");
        let r = Rejection::new(RejectReason::WrongState, "closed");
        let (bytes, _) = dead_letter_record(&codec, &o, &r);
        let dl = codec.decode_dead_letter(&bytes).unwrap();
        assert!(dl
            .detail
            .starts_with("closed (journal record written before"));
    }

    #[test]
    fn unreadable_carried_headers_and_source_fall_back_without_panicking() {
        let codec = Codec::new().unwrap();
        let m = OwnedMessage::new(
            Some(b"v".to_vec()),
            None,
            JOURNAL.into(),
            Timestamp::NotAvailable,
            0,
            3,
            headers(&[
                (HDR_SOURCE, Some(b"no-slashes")),
                (HDR_ORIG_HEADERS, Some(&[0x07, 0xff, 0xff])),
                (HDR_ORIG_VALUE, None),
            ]),
        );
        let o = Original::carried(&codec, &m);
        assert_eq!((o.topic, o.partition, o.offset), (JOURNAL, 0, 3));
        assert_eq!(o.value, b"");
        assert!(o.headers.is_empty());
        let caveat = o.caveat.unwrap();
        assert!(caveat.contains("headers are not known"), "{caveat}");
        assert!(caveat.contains("source is the journal record"), "{caveat}");
        assert_eq!(parse_source("a.b/x/3"), None);
        assert_eq!(parse_source("/1/3"), None);
        assert_eq!(parse_source("t/1/3"), Some(("t", 1, 3)));
    }

    #[test]
    fn a_long_detail_is_cut_at_a_character_boundary() {
        let codec = Codec::new().unwrap();
        let feed = feed_record(None, b"x", &[]);
        let r = Rejection::new(RejectReason::Undecodable, "é".repeat(MAX_DETAIL_BYTES));
        let (bytes, hs) = dead_letter_record(&codec, &Original::consumed(&feed), &r);
        let dl = codec.decode_dead_letter(&bytes).unwrap();
        assert_eq!(dl.detail.len(), MAX_DETAIL_BYTES);
        assert_eq!(
            hs.iter().find(|h| h.key == "error.detail").unwrap().value,
            Some(dl.detail.as_bytes())
        );
        assert_eq!(bounded("abc", 2), "ab");
    }

    /// Bytes of one record in a Kafka v2 record batch (the batch's own 61 bytes aside), with
    /// one-byte timestamp and offset deltas.
    fn kafka_record_bytes(key: &[u8], value: &[u8], hs: &OwnedHeaders) -> usize {
        fn varint(n: i64) -> usize {
            let mut z = ((n << 1) ^ (n >> 63)) as u64;
            let mut len = 1;
            while z >= 0x80 {
                z >>= 7;
                len += 1;
            }
            len
        }
        let field = |b: &[u8]| varint(b.len() as i64) + b.len();
        let body = 1
            + 1
            + 1
            + field(key)
            + field(value)
            + varint(hs.count() as i64)
            + hs.iter()
                .map(|h| field(h.key.as_bytes()) + h.value.map_or(1, field))
                .sum::<usize>();
        varint(body as i64) + body
    }

    /// The journal's bytes per event for a feed of `events` framed by `frame`, with the feed's
    /// headers `hs`: (before this change, after it).
    fn journal_bytes(
        codec: &Codec,
        events: &[Event],
        frame: impl Fn(&Event) -> Vec<u8>,
        hs: &[(&str, Option<&[u8]>)],
    ) -> (f64, f64) {
        let (mut before, mut after) = (0, 0);
        for e in events {
            let feed = feed_record(Some(e.entity_id().as_bytes()), &frame(e), hs);
            let journal = journal_record(codec, &feed, e);
            let key = journal.key().unwrap_or_default();
            let value = journal.payload().unwrap_or_default();
            let all = journal.headers().unwrap().clone();
            // Before: the same record with `rp.source` and `rp.input_ts` only.
            let old = all
                .iter()
                .take(2)
                .fold(OwnedHeaders::new(), |o, h| o.insert(h));
            before += kafka_record_bytes(key, value, &old);
            after += kafka_record_bytes(key, value, &all);
        }
        let n = events.len() as f64;
        (before as f64 / n, after as f64 / n)
    }

    /// The cost of carrying the feed's record in the journal, per event, over a realistic mix
    /// of events (`sample::stream`). Run with `--nocapture` to see the figures.
    #[test]
    fn carrying_the_original_costs_avro_feeds_18_bytes_and_json_feeds_their_json() {
        let codec = Codec::new().unwrap();
        let events = rallypoint_core::sample::stream(&["EST", "LVA", "DEU", "POL"], 2_000, 7);
        let json_mean = events
            .iter()
            .map(|e| codec.encode_event_json(e).len())
            .sum::<usize>() as f64
            / events.len() as f64;
        let traced: &[(&str, Option<&[u8]>)] = &[
            (
                "traceparent",
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
            ("producer", Some(b"siem-est-01")),
        ];
        let mut rows = Vec::new();
        for (feed, hs) in [("no headers", &[][..]), ("2 headers", traced)] {
            let (a0, a1) = journal_bytes(&codec, &events, |e| codec.encode_event(e), hs);
            let (j0, j1) = journal_bytes(&codec, &events, |e| codec.encode_event_json(e), hs);
            let feed_headers: usize = hs
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len) + 3)
                .sum();
            // Avro single-object: the marker header (18 bytes) and the feed's headers (with
            // the list's count and end).
            assert!(a0 > 100.0, "{a0}");
            assert!(
                (a1 - a0 - 18.0 - feed_headers as f64).abs() <= 2.0,
                "{feed}: avro {a0} -> {a1}"
            );
            // JSON: as much again as the JSON itself, with about 16 bytes of header framing.
            assert_eq!(j0, a0, "{feed}: the journal value is the same Avro");
            let extra = j1 - a1 - json_mean;
            assert!((15.0..20.0).contains(&extra), "{feed}: json {j0} -> {j1}");
            rows.push(format!(
                "{feed}: avro single-object {a0:.1} -> {a1:.1} B/event (+{:.1}); \
                 json (mean {json_mean:.1} B) {j0:.1} -> {j1:.1} B/event (+{:.1})",
                a1 - a0,
                j1 - j0
            ));
        }
        println!(
            "journal bytes per event, uncompressed:\n{}",
            rows.join("\n")
        );
    }
}
