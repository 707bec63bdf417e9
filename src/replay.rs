//! `rallypoint replay`: an auditor's check that the decisions on the output topics are exactly
//! what the journal implies. It folds the journal, up to the coordinator's committed position,
//! into a fresh RocksDB store with the same pure core, and compares every recomputed decision,
//! byte for byte, with what each decision topic holds ([`crate::implied`]: the one replay check
//! the tests use too). It reports the first divergence.
//!
//! Decisions are compared partition by partition: within a partition Kafka keeps the order
//! the coordinator sent in; records of different partitions have no order between them. The
//! threat picture and the hunt topics are not compared: they are compacted, so in time they
//! hold only the latest record of each key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Config;
use crate::implied::{self, Emitted, RocksFold};
use crate::kafka::context::ReaderContext;
use crate::kafka::Topics;
use crate::registry::Schemas;
use crate::stop::Stop;
use crate::store::RocksStore;

/// One record read back.
struct Read {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    /// `None`: a null value (a tombstone).
    value: Option<Vec<u8>>,
}

const PATIENCE: Duration = Duration::from_secs(60);
/// Events folded between two writes of the replay's RocksDB store.
const FLUSH_EVERY: usize = 50_000;

#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    pub decisions: u64,
    pub topics: usize,
    /// The first difference found, in journal order; `None` when every byte matches.
    pub divergence: Option<String>,
}

/// Replays into a fresh store in `state_dir` (which must not exist or be empty), and compares
/// every nation's decision topic and the coalition's with what the journal implies.
pub fn replay(config: &Config, state_dir: PathBuf) -> anyhow::Result<Report> {
    let topics = Topics::new(config);
    // The same ids the coordinator framed its decisions with: a registered schema keeps its id.
    let schemas = Schemas::connect(config)?;
    let codec = schemas.codec();
    let end = committed_journal_offset(config, &topics)?;
    let mut journal = Vec::new();
    for r in read_topic(config, &topics.journal(), Some(end))? {
        let value = r.value.as_deref().unwrap_or_default();
        schemas.prepare(value)?;
        // The coordinator dead-letters what it cannot decode: it implies no decision.
        if let Ok(event) = codec.decode_event(value) {
            journal.push((r.offset, event));
        }
    }
    let mut store = RocksStore::open(&state_dir).context("opening the replay store")?;
    let mut fold = RocksFold::new(&mut store, FLUSH_EVERY);
    let implied = implied::recompute(
        journal,
        &mut fold,
        &config.core(),
        codec,
        config.topics.decisions_format,
        &topics,
    )?;
    fold.flush()?;
    let names: Vec<String> = config
        .nations
        .iter()
        .map(|n| topics.decisions(n))
        .chain([topics.coalition_decisions()])
        .collect();
    let mut emitted = BTreeMap::new();
    for topic in &names {
        let records = read_topic(config, topic, None)?
            .into_iter()
            .map(|r| Emitted {
                partition: r.partition,
                key: r.key,
                value: r.value,
            })
            .collect();
        emitted.insert(topic.clone(), records);
    }
    Ok(Report {
        events: implied.events,
        decisions: implied.decision_count() as u64,
        topics: names.len(),
        divergence: implied::compare(&implied, &names, &emitted).err(),
    })
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
    match t.error() {
        // A nation's decision topic that was never created holds no decision.
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
        | Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
            return Ok(Vec::new())
        }
        Some(e) => anyhow::bail!("metadata for {topic}: {e:?}"),
        None => {}
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
                if crate::kafka::is_seal(m.key(), m.payload()) {
                    continue;
                }
                out.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().map(<[u8]>::to_vec),
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
