//! Brings RocksDB up to the end of the changelog: from the offset it records (warm restart),
//! or from the beginning when the state folder is new (cold rebuild). Run after
//! `init_transactions`, so no new transaction of ours can begin, and only after no transaction
//! is open on it (see [`super::settled`]).
//!
//! A standing-by coordinator also [`Follower`]s the changelog as the active one commits, so
//! that a takeover only has the last few records to restore.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::changelog::Change;
use crate::config::Config;
use crate::stop::Stop;
use crate::store::RocksStore;
use crate::telemetry::events::ChangelogApplied;
use crate::telemetry::Metrics;

pub const FLUSH_EVERY: usize = 10_000;
/// How often a restore hands control back to its caller.
const BETWEEN_EVERY: Duration = Duration::from_millis(200);
/// How long to wait for the changelog to have a leader before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

/// A consumer of committed changelog records, outside any group.
fn changelog_consumer(
    config: &Config,
    eof: bool,
) -> anyhow::Result<BaseConsumer<super::context::ReaderContext>> {
    let mut c = super::client_config(config);
    c.set("group.id", config.name("rallypoint-restore"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", if eof { "true" } else { "false" });
    c.create_with_context(super::context::ReaderContext)
        .context("creating the changelog consumer")
}

/// Restores up to `end`, the changelog's high watermark once no transaction is open on it (see
/// [`super::settled`]): a `read_committed` reader's end is the last stable offset, which stops
/// short of a transaction still open, and restoring only to there would miss a batch that
/// committed, and resume the journal before it. Returns how many state changes were
/// applied. `between` is called every
/// [`BETWEEN_EVERY`] while records are read, so the caller can keep its group membership alive
/// (poll its consumer) during a long rebuild.
pub fn restore(
    config: &Config,
    topic: &str,
    store: &mut RocksStore,
    metrics: &Metrics,
    end: i64,
    stop: &Stop,
    mut between: impl FnMut(),
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let from = store.changelog_next()?;
    let consumer = super::watchdog::Watched::new(
        changelog_consumer(config, true)?,
        "consumer_close",
        super::CALL_TIMEOUT,
    );
    if from >= end {
        tracing::info!(from, end, "state is up to date with the changelog");
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(from))?;
    consumer.assign(&tpl)?;
    let mut pending: Vec<Change> = Vec::new();
    let mut applied = 0u64;
    let mut next = from;
    let mut called = Instant::now();
    let mut progressed = Instant::now();
    loop {
        if called.elapsed() >= BETWEEN_EVERY {
            super::watchdog::beat();
            between();
            called = Instant::now();
            if stop.is_stopped() {
                anyhow::bail!("changelog restore: stopping at offset {next} of {end}");
            }
            if progressed.elapsed() >= PATIENCE {
                anyhow::bail!(
                    "changelog restore: nothing read for {PATIENCE:?} at offset {next} of {end}"
                );
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                progressed = Instant::now();
                let Some(key) = m.key() else { continue };
                super::changelog::unpack(key, m.payload(), &mut pending)?;
                next = m.offset() + 1;
                if pending.len() >= FLUSH_EVERY {
                    applied += pending.len() as u64;
                    let changes = derived(store, std::mem::take(&mut pending))?;
                    store
                        .apply(changes, next)
                        .context("writing restored changelog records to RocksDB")?;
                    crate::fault::point("restore.chunk");
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => tracing::warn!(error = %e, "changelog restore: consumer error"),
            None if next >= end => break,
            None => {}
        }
    }
    applied += pending.len() as u64;
    let changes = derived(store, pending)?;
    // `end` may lie past our last record (transaction markers): resume from there next time.
    store
        .apply(changes, next.max(end))
        .context("writing restored changelog records to RocksDB")?;
    metrics.tell(ChangelogApplied {
        store: "coordinator",
        records: applied,
    });
    tracing::info!(
        from,
        end,
        applied,
        seconds = started.elapsed().as_secs_f64(),
        "state restored from the changelog"
    );
    Ok(applied)
}

/// The changes read from the changelog with the keys they imply (see
/// [`rallypoint_core::derived`]), over the state before them.
fn derived(store: &RocksStore, pending: Vec<Change>) -> anyhow::Result<Vec<Change>> {
    rallypoint_core::derived::derive(store, pending)
        .context("deriving the index keys of restored changelog records")
}

/// How many changelog records before `end` [`last_committed`] reads first; it reads four
/// times as many each time it finds nothing.
const LOOK_BACK: i64 = 4096;

/// The value of the last committed record of `key` on partition 0 of `topic` before `end` (or
/// before the last stable offset, if that is lower), `None` if there is none. Reads the
/// committed records of a window before `end`, widening it until the key is found or the start
/// is reached. The latest record of a key is never compacted away, nor is a committed one
/// hidden by an abort, so this is what a rebuild from the start would leave for the key.
pub fn last_committed(
    config: &Config,
    topic: &str,
    key: &[u8],
    end: i64,
    stop: &Stop,
) -> anyhow::Result<Option<Vec<u8>>> {
    let consumer = super::watchdog::Watched::new(
        changelog_consumer(config, true)?,
        "consumer_close",
        super::CALL_TIMEOUT,
    );
    // A committed reader stops at the last stable offset: past it (a transaction still open
    // there) it would wait for records it is not given, and never see the partition's end.
    let mut window = LOOK_BACK;
    let mut to = end.min(super::settled::stable_end(&consumer, topic, 0, stop)?);
    while to > 0 {
        let from = (to - window).max(0);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(from))?;
        consumer.assign(&tpl)?;
        let mut found = None;
        let mut progressed = Instant::now();
        loop {
            super::watchdog::beat();
            if stop.is_stopped() {
                anyhow::bail!("reading the changelog back from {to}: stopping");
            }
            if progressed.elapsed() >= PATIENCE {
                anyhow::bail!(
                    "reading the changelog back from {to}: nothing read for {PATIENCE:?}"
                );
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) if m.offset() >= to => break,
                Some(Ok(m)) => {
                    progressed = Instant::now();
                    if m.key() == Some(key) {
                        found = Some(m.payload().map(<[u8]>::to_vec).unwrap_or_default());
                    }
                    if m.offset() + 1 >= to {
                        break;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading the changelog back: consumer error")
                }
                None => {}
            }
        }
        if found.is_some() {
            return Ok(found);
        }
        to = from;
        window = window.saturating_mul(4);
    }
    Ok(None)
}

/// Applies committed changelog records to RocksDB as they arrive, from the offset the store
/// records: what a standing-by coordinator does, so that its state stays close to the active
/// one's and a takeover restores only the tail.
pub struct Follower {
    consumer: super::watchdog::Watched<BaseConsumer<super::context::ReaderContext>>,
}

impl Follower {
    pub fn new(config: &Config, topic: &str, store: &RocksStore) -> anyhow::Result<Self> {
        let consumer = changelog_consumer(config, false)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(store.changelog_next()?))?;
        consumer.assign(&tpl)?;
        Ok(Self {
            consumer: super::watchdog::Watched::new(
                consumer,
                "consumer_close",
                super::CALL_TIMEOUT,
            ),
        })
    }

    /// Applies, in one batch, what arrives within `wait` (up to [`FLUSH_EVERY`] records);
    /// returns how many state changes were applied (a record of event ids counts one per id:
    /// see [`super::changelog`]).
    pub fn follow(&mut self, store: &mut RocksStore, wait: Duration) -> anyhow::Result<usize> {
        let mut pending: Vec<Change> = Vec::new();
        let mut next = None;
        let mut timeout = wait;
        while pending.len() < FLUSH_EVERY {
            match self.consumer.poll(timeout) {
                Some(Ok(m)) => {
                    next = Some(m.offset() + 1);
                    if let Some(key) = m.key() {
                        super::changelog::unpack(key, m.payload(), &mut pending)?;
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "changelog follower: consumer error"),
                None => break,
            }
            timeout = Duration::ZERO;
        }
        let Some(next) = next else { return Ok(0) };
        let applied = pending.len();
        let changes = derived(store, pending)?;
        store
            .apply(changes, next)
            .context("writing followed changelog records to RocksDB")?;
        Ok(applied)
    }
}
