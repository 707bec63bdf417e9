//! Brings RocksDB up to the end of the changelog: from the offset it records (warm restart),
//! or from the beginning when the state folder is new (cold rebuild). Run after
//! `init_transactions`, so no transaction of ours is still open and the end is stable.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Config;
use crate::store::RocksStore;
use crate::telemetry::Metrics;

const FLUSH_EVERY: usize = 10_000;
/// How long to wait for the changelog to have a leader before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// Returns how many changelog records were applied.
pub fn restore(
    config: &Config,
    topic: &str,
    store: &mut RocksStore,
    metrics: &Metrics,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let from = store.changelog_next()?;
    let mut c = super::client_config(config);
    c.set("group.id", config.name("rallypoint-restore"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer = c.create().context("creating the restore consumer")?;
    let (_, end) = super::with_patience(&format!("reading the end of {topic}"), PATIENCE, || {
        consumer.fetch_watermarks(topic, 0, Duration::from_secs(10))
    })?;
    if from >= end {
        tracing::info!(from, end, "state is up to date with the changelog");
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(from))?;
    consumer.assign(&tpl)?;
    let mut pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut applied = 0u64;
    let mut next = from;
    loop {
        match consumer.poll(Duration::from_secs(1)) {
            Some(Ok(m)) => {
                let Some(key) = m.key() else { continue };
                pending.push((key.to_vec(), m.payload().map(<[u8]>::to_vec)));
                next = m.offset() + 1;
                if pending.len() >= FLUSH_EVERY {
                    applied += pending.len() as u64;
                    store.apply(pending.drain(..), next)?;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => tracing::warn!(error = %e, "changelog restore: consumer error"),
            None if next >= end => break,
            None => {}
        }
    }
    applied += pending.len() as u64;
    // `end` may lie past our last record (transaction markers): resume from there next time.
    store.apply(pending, next.max(end))?;
    metrics
        .restored_records
        .with_label_values(&["coordinator"])
        .inc_by(applied);
    tracing::info!(
        from,
        end,
        applied,
        seconds = started.elapsed().as_secs_f64(),
        "state restored from the changelog"
    );
    Ok(applied)
}
