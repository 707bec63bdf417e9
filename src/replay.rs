//! `rallypoint replay`: an auditor's check that the decisions on the output topics are exactly
//! what the journal implies. It folds the journal, up to the coordinator's committed position,
//! into a fresh RocksDB store with the same pure core, and compares every recomputed decision,
//! byte for byte, with what each decision topic holds. It reports the first divergence.
//!
//! Decisions are compared per topic and per Kafka key: a key's records share a partition, so
//! their order is Kafka's order; records of different keys have no order across partitions.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rallypoint_core::decision::Audience;
use rallypoint_core::store::Overlay;
use rallypoint_core::{apply, Output};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Config;
use crate::kafka::Topics;
use crate::registry::Schemas;
use crate::stop::Stop;
use crate::store::RocksStore;

/// One record read back: its key, value and offset.
struct Read {
    key: Vec<u8>,
    value: Vec<u8>,
}

const PATIENCE: Duration = Duration::from_secs(60);

/// Recomputed decisions of one topic and key, in order, with the journal offset that caused each.
type Expected = VecDeque<(i64, Vec<u8>)>;

#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub decisions: u64,
    pub topics: usize,
    /// The first difference found, in journal order; `None` when every byte matches.
    pub divergence: Option<String>,
}

/// Replays into a fresh store in `state_dir` (which must not exist or be empty).
pub fn replay(config: &Config, state_dir: PathBuf) -> anyhow::Result<Report> {
    let topics = Topics::new(config);
    // The same ids the coordinator framed its decisions with: a registered schema keeps its id.
    let schemas = Schemas::connect(config)?;
    let codec = schemas.codec();
    let end = committed_journal_offset(config, &topics)?;
    let journal = read_topic(config, &topics.journal(), Some(end))?;
    let mut store = RocksStore::open(&state_dir).context("opening the replay store")?;
    let core = config.core();
    let mut expected: BTreeMap<(String, Vec<u8>), Expected> = BTreeMap::new();
    let mut report = Report::default();
    let mut overlay = Overlay::new();
    for (i, r) in journal.iter().enumerate() {
        schemas.prepare(&r.value)?;
        let Ok(event) = codec.decode_event(&r.value) else {
            continue;
        };
        report.events += 1;
        for out in apply(&mut overlay.over(&store), &core, &event)? {
            let Output::Decision(routed) = out else {
                continue;
            };
            let topic = match &routed.audience {
                Audience::Nation(n) => topics.decisions(n),
                Audience::Coalition => topics.coalition_decisions(),
            };
            let value = codec.encode_decision(&routed.decision, config.topics.decisions_format);
            let key = routed.decision.key().as_bytes().to_vec();
            expected
                .entry((topic, key))
                .or_default()
                .push_back((i as i64, value));
            report.decisions += 1;
        }
        if overlay.len() > 50_000 {
            store.apply(overlay.drain(), 0)?;
        }
    }
    store.apply(overlay.drain(), 0)?;
    let wanted: BTreeMap<String, ()> = expected.keys().map(|(t, _)| (t.clone(), ())).collect();
    report.topics = wanted.len();
    let mut first: Option<(i64, String)> = None;
    let mut note = |at: i64, what: String| {
        if first.as_ref().is_none_or(|(f, _)| at < *f) {
            first = Some((at, what));
        }
    };
    for topic in wanted.keys() {
        let mut emitted: BTreeMap<Vec<u8>, VecDeque<Vec<u8>>> = BTreeMap::new();
        for r in read_topic(config, topic, None)? {
            emitted.entry(r.key).or_default().push_back(r.value);
        }
        for ((t, key), recomputed) in expected.range((topic.clone(), Vec::new())..) {
            if t != topic {
                break;
            }
            let got = emitted.remove(key).unwrap_or_default();
            let key_text = String::from_utf8_lossy(key);
            for (n, (at, want)) in recomputed.iter().enumerate() {
                match got.get(n) {
                    Some(v) if v == want => {}
                    Some(_) => note(*at, format!("{topic} key {key_text}: decision {n} differs from the one the journal implies (journal offset {at})")),
                    None => note(*at, format!("{topic} key {key_text}: decision {n} is missing (caused at journal offset {at})")),
                }
            }
            if got.len() > recomputed.len() {
                let at = recomputed.back().map_or(0, |(a, _)| *a);
                note(
                    at,
                    format!(
                        "{topic} key {key_text}: {} decision(s) more than the journal implies",
                        got.len() - recomputed.len()
                    ),
                );
            }
        }
        if let Some((key, extra)) = emitted.into_iter().next() {
            note(
                i64::MAX,
                format!(
                    "{topic} key {}: {} decision(s) the journal does not imply",
                    String::from_utf8_lossy(&key),
                    extra.len()
                ),
            );
        }
    }
    report.divergence = first.map(|(_, what)| what);
    Ok(report)
}

/// The next journal offset the coordinator will read: everything before it has its decisions.
fn committed_journal_offset(config: &Config, topics: &Topics) -> anyhow::Result<i64> {
    let mut c = crate::kafka::client_config(config);
    c.set("group.id", config.name("rallypoint-coordinator"))
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topics.journal(), 0);
    let committed = crate::kafka::with_patience(
        "reading the coordinator's journal offset",
        PATIENCE,
        &Stop::new(),
        || consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)),
    )?;
    Ok(match committed.elements().first().map(|e| e.offset()) {
        Some(Offset::Offset(o)) => o,
        _ => 0,
    })
}

/// The context of the consumer that reads a topic to its end. With `enable.partition.eof`,
/// librdkafka reports each partition's end as an error event, which rdkafka hands both to
/// `poll` (where [`read_topic`] counts it) and to the context's `error` (whose default logs
/// it at ERROR level): this context logs every error but that normal end.
struct ReaderContext;

/// Whether a client error is only the end of a partition reached.
fn is_partition_end(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
    )
}

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !is_partition_end(&error) {
            tracing::error!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// Every committed record of `topic` (all partitions), up to `end` on partition 0 if given,
/// else up to the current end.
fn read_topic(config: &Config, topic: &str, end: Option<i64>) -> anyhow::Result<Vec<Read>> {
    let mut c = crate::kafka::client_config(config);
    c.set("group.id", config.name("rallypoint-replay"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<ReaderContext> = c.create_with_context(ReaderContext)?;
    let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let Some(t) = meta.topics().first() else {
        anyhow::bail!("no metadata for {topic}")
    };
    if let Some(e) = t.error() {
        anyhow::bail!("metadata for {topic}: {e:?}");
    }
    let partitions = t.partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    let mut open = 0;
    for p in 0..partitions {
        let (low, high) = crate::kafka::with_patience(
            &format!("reading the ends of {topic}"),
            PATIENCE,
            &Stop::new(),
            || consumer.fetch_watermarks(topic, p, Duration::from_secs(10)),
        )?;
        let stop = end.filter(|_| p == 0).unwrap_or(high).min(high);
        if stop > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            open += 1;
        }
    }
    let mut out = Vec::new();
    if open == 0 {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let mut done = std::collections::BTreeSet::new();
    while done.len() < open {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(m)) => {
                if end.is_some_and(|e| m.partition() == 0 && m.offset() >= e) {
                    done.insert(m.partition());
                    continue;
                }
                out.push(Read {
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().unwrap_or_default().to_vec(),
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                done.insert(p);
            }
            Some(Err(e)) => return Err(e).with_context(|| format!("reading {topic}")),
            None => anyhow::bail!("reading {topic}: no answer from the broker for 5 s"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_partition_is_no_error_but_other_errors_are() {
        assert!(is_partition_end(&KafkaError::Global(
            RDKafkaErrorCode::PartitionEOF
        )));
        assert!(is_partition_end(&KafkaError::PartitionEOF(3)));
        assert!(!is_partition_end(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_partition_end(&KafkaError::Global(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
    }
}
