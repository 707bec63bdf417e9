//! librdkafka callbacks: consumer lag from statistics, rebalance notices, delivery reports.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Statistics};
use rdkafka::{Offset, TopicPartitionList};

use crate::telemetry::events::ConsumerLag;
use crate::telemetry::Metrics;

/// Context of a stage's consumer.
pub struct StageContext {
    pub stage: &'static str,
    pub metrics: Metrics,
    /// Set when partitions are revoked: the loop must drop its open transaction.
    pub revoked: AtomicBool,
    /// Set at the first assignment, even an empty one: the consumer has joined its group.
    pub joined: AtomicBool,
    /// When (ms since the epoch) the next consumer error may be logged.
    next_error_log: AtomicI64,
    /// Records between the stage's position and the end of its input, summed over the
    /// partitions it holds (from the last statistics).
    lag: AtomicI64,
    progress: std::sync::Mutex<Progress>,
    /// Set when librdkafka reports every broker connection down; taken by [`Self::lost`].
    brokers_lost: AtomicBool,
    /// A topic whose partitions are assigned at their end, not at the group's committed
    /// offset: the stage seeks them itself (see [`Self::positions_own`]).
    own_positions: Option<String>,
}

/// What a stage committed since its last progress line.
struct Progress {
    since: std::time::Instant,
    records: u64,
    total: u64,
}

/// How often a working stage logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl StageContext {
    pub fn new(stage: &'static str, metrics: Metrics) -> Self {
        Self {
            stage,
            metrics,
            revoked: AtomicBool::new(false),
            joined: AtomicBool::new(false),
            next_error_log: AtomicI64::new(0),
            lag: AtomicI64::new(0),
            progress: std::sync::Mutex::new(Progress {
                since: std::time::Instant::now(),
                records: 0,
                total: 0,
            }),
            brokers_lost: AtomicBool::new(false),
            own_positions: None,
        }
    }

    /// The stage keeps its own position in `topic` (the coordinator, in its state): when the
    /// group assigns `topic`'s partitions, they start at the end, and the group's committed
    /// offset is never fetched, so a broker that cannot answer it (see
    /// `coordinator::JOURNAL_NEXT`) does not hold the stage up. The stage seeks before it reads.
    pub fn positions_own(mut self, topic: String) -> Self {
        self.own_positions = Some(topic);
        self
    }

    /// The consumer lost its membership for good (see [`super::ConsumerLost`]); whether every
    /// broker connection was down since the last loss, which explains it.
    pub fn lost(&self, e: &KafkaError) -> super::ConsumerLost {
        super::ConsumerLost {
            why: format!("{}: {e}", self.stage),
            after_outage: self.brokers_lost.swap(false, Ordering::SeqCst),
        }
    }

    /// The consumer's fatal error, if it has one. librdkafka hands a fatal consumer error
    /// (`FENCED_INSTANCE_ID`) to one poll only, and then the consumer does nothing more: a poll
    /// whose result is not looked at (one that only keeps the membership alive while a takeover
    /// waits) would leave the stage silent for good. The client keeps the error, so every
    /// stage round asks it here.
    pub fn fatal(consumer: &BaseConsumer<StageContext>) -> Result<(), super::ConsumerLost> {
        match consumer.client().fatal_error() {
            None => Ok(()),
            Some((code, reason)) => {
                let e = KafkaError::MessageConsumptionFatal(code);
                let mut lost = consumer.context().lost(&e);
                lost.why = format!("{} ({reason})", lost.why);
                Err(lost)
            }
        }
    }

    /// Counts a committed batch; every [`PROGRESS_EVERY`] while the stage works, logs one
    /// line at info with its position, rate and lag, so that a slow stage can be told from a
    /// stuck one.
    pub fn progress(&self, batch: &super::BatchOffsets) {
        let mut p = self
            .progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.records += batch.records as u64;
        p.total += batch.records as u64;
        let elapsed = p.since.elapsed();
        if elapsed < PROGRESS_EVERY {
            return;
        }
        let rate = (p.records as f64 / elapsed.as_secs_f64()).round() as u64;
        tracing::info!(
            stage = self.stage,
            committed = p.total,
            rate_per_s = rate,
            lag = self.lag.load(Ordering::Relaxed),
            position = %batch.position(),
            "progress"
        );
        p.records = 0;
        p.since = std::time::Instant::now();
    }

    pub fn take_revoked(&self) -> bool {
        self.revoked.swap(false, Ordering::SeqCst)
    }

    /// Logs a consumer error, at most one every 5 s: while a broker is away, every poll
    /// reports one.
    pub fn consumer_error(&self, e: &rdkafka::error::KafkaError) {
        let now = super::now_ms();
        let due = self.next_error_log.load(Ordering::SeqCst);
        if now >= due
            && self
                .next_error_log
                .compare_exchange(due, now + 5000, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            tracing::warn!(stage = self.stage, error = %e, "consumer error (repeats within 5 s not logged)");
        }
    }

    pub fn has_joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }
}

impl ClientContext for StageContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if let KafkaError::Global(RDKafkaErrorCode::AllBrokersDown) = error {
            self.brokers_lost.store(true, Ordering::SeqCst);
        }
        tracing::debug!(stage = self.stage, reason, "librdkafka client error");
        self.consumer_error(&error);
    }

    fn stats(&self, stats: Statistics) {
        let mut total = 0;
        for (topic, t) in stats.topics {
            for (partition, p) in t.partitions {
                // A partition this consumer no longer holds (another instance took it, or this
                // one stands by) is not its lag: 0, rather than the last figure it had.
                let lag = if p.desired { lag(&p) } else { Some(0) };
                if let Some(lag) = lag.filter(|_| partition >= 0) {
                    total += lag;
                    self.metrics.tell(ConsumerLag {
                        stage: self.stage,
                        topic: &topic,
                        partition,
                        lag,
                    });
                }
            }
        }
        self.lag.store(total, Ordering::Relaxed);
    }
}

/// Records between where the stage stands in a partition and the partition's last stable
/// offset (its end for a `read_committed` reader); `None` when librdkafka does not know both.
///
/// librdkafka's own `consumer_lag` counts from the offset *this consumer* committed, but the
/// stages commit their offsets through the producer's transaction, which the consumer never
/// learns of: that figure is -1 for a new group and stays frozen at the start position after a
/// restart. So the position is the offset after the last record handed to the stage
/// (`app_offset`), else the committed offset fetched at assignment, else, for a new group
/// reading from the earliest offset, the partition's start.
fn lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    let position = [p.app_offset, p.committed_offset]
        .into_iter()
        .find(|o| *o >= 0)
        .or((p.desired && p.lo_offset >= 0).then_some(p.lo_offset))?;
    (p.ls_offset >= 0).then(|| (p.ls_offset - position).max(0))
}

impl ConsumerContext for StageContext {
    /// As rust-rdkafka's own, but a topic whose positions the stage keeps is assigned at its
    /// end (see [`StageContext::positions_own`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if assign {
            if let Some(topic) = &self.own_positions {
                let partitions: Vec<i32> = tpl
                    .elements_for_topic(topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                for p in partitions {
                    // A partition the list holds: cannot fail.
                    let _ = tpl.set_partition_offset(topic, p, Offset::End);
                }
            }
        }
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let done = match (assign, cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        if let Err(e) = done {
            tracing::error!(stage = self.stage, error = %e, "applying a rebalance failed");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(
                stage = self.stage,
                partitions = tpl.count(),
                "partitions revoked"
            );
            self.revoked.store(true, Ordering::SeqCst);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(
                stage = self.stage,
                partitions = tpl.count(),
                "partitions assigned"
            );
            self.joined.store(true, Ordering::SeqCst);
        }
    }
}

/// Context of a transactional producer: tracks the changelog offsets it wrote, failures, and
/// whether it ever lost every broker connection.
pub struct ProducerState {
    pub changelog_topic: String,
    pub last_changelog_offset: AtomicI64,
    pub failed: AtomicU64,
    pub brokers_lost: AtomicBool,
    /// When (ms since the epoch) the next client error may be logged, and how many were
    /// not logged since the last one.
    next_error_log: AtomicI64,
    unlogged_errors: AtomicU64,
}

impl ProducerState {
    pub fn new(changelog_topic: String) -> Self {
        Self {
            changelog_topic,
            last_changelog_offset: AtomicI64::new(-1),
            failed: AtomicU64::new(0),
            brokers_lost: AtomicBool::new(false),
            next_error_log: AtomicI64::new(0),
            unlogged_errors: AtomicU64::new(0),
        }
    }
}

impl ClientContext for ProducerState {
    fn error(&self, error: KafkaError, reason: &str) {
        if let KafkaError::Global(RDKafkaErrorCode::AllBrokersDown) = error {
            self.brokers_lost.store(true, Ordering::SeqCst);
        }
        // While a broker is away librdkafka reports the same error for every connection
        // attempt: one line every 5 s, with how many were left out.
        let now = super::now_ms();
        let due = self.next_error_log.load(Ordering::SeqCst);
        if now >= due
            && self
                .next_error_log
                .compare_exchange(due, now + 5000, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            let unlogged = self.unlogged_errors.swap(0, Ordering::SeqCst);
            tracing::error!(unlogged, "librdkafka: {error}: {reason}");
        } else {
            self.unlogged_errors.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl ProducerContext for ProducerState {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) if m.topic() == self.changelog_topic => {
                self.last_changelog_offset
                    .fetch_max(m.offset(), Ordering::SeqCst);
            }
            Ok(_) => {}
            Err((e, m)) => {
                // Once per transaction: when a broker is away, every queued record fails alike.
                if self.failed.fetch_add(1, Ordering::SeqCst) == 0 {
                    tracing::warn!(topic = m.topic(), error = %e, "record not delivered; the transaction will abort");
                }
            }
        }
    }
}

/// The context of the consumer that reads a topic to its end. With `enable.partition.eof`,
/// librdkafka reports each partition's end as an error event, which rdkafka hands both to
/// `poll` (where the reader counts it) and to the context's `error` (whose default logs
/// it at ERROR level): this context logs every error but that normal end.
pub struct ReaderContext;

/// Whether a client error is only the end of a partition reached.
pub fn is_partition_end(error: &KafkaError) -> bool {
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
