//! One batch of a stage: the input positions it read, polling records into it, committing
//! it, and aborting it to read it again; and the one round both stages run over it
//! ([`round`]: poll → handle each record → commit).

use rdkafka::message::BorrowedMessage;

use super::stage::{Backoff, Role, StageError};
use super::txn::Transactional;
use super::{context, txn, watchdog};
use crate::stop::Stop;
use crate::telemetry::events::{BatchAborted, BatchCommitted};

/// Input positions of one open transaction: where it started (to rewind) and what to commit.
#[derive(Default)]
pub struct BatchOffsets {
    /// (topic, partition) → (first offset read, next offset to read).
    parts: std::collections::BTreeMap<(String, i32), (i64, i64)>,
    pub records: usize,
}

impl BatchOffsets {
    pub fn record(&mut self, topic: &str, partition: i32, offset: i64) {
        self.records += 1;
        self.parts
            .entry((topic.to_owned(), partition))
            .and_modify(|e| e.1 = offset + 1)
            .or_insert((offset, offset + 1));
    }

    /// Takes back the last record of a partition: it will be read again.
    pub fn unrecord(&mut self, topic: &str, partition: i32, offset: i64) {
        let key = (topic.to_owned(), partition);
        if let Some((first, next)) = self.parts.get_mut(&key) {
            self.records = self.records.saturating_sub(1);
            if *first >= offset {
                self.parts.remove(&key);
            } else {
                *next = offset;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Where the batch leaves the stage, for the progress line: `topic/partition@next` of up
    /// to three partitions, and how many more.
    pub fn position(&self) -> String {
        let mut parts: Vec<String> = self
            .parts
            .iter()
            .take(3)
            .map(|((t, p), (_, next))| format!("{t}/{p}@{next}"))
            .collect();
        if self.parts.len() > 3 {
            parts.push(format!("+{} more", self.parts.len() - 3));
        }
        parts.join(" ")
    }

    /// The next offset to read in one partition, if the batch read from it.
    pub fn next(&self, topic: &str, partition: i32) -> Option<i64> {
        self.parts
            .get(&(topic.to_owned(), partition))
            .map(|(_, next)| *next)
    }

    /// Next offsets to read: what `send_offsets_to_transaction` takes.
    pub fn to_commit(&self) -> rdkafka::TopicPartitionList {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for ((topic, partition), (_, next)) in &self.parts {
            // Adding a fresh partition to a list we own cannot fail.
            let _ = tpl.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*next));
        }
        tpl
    }

    pub fn clear(&mut self) {
        self.parts.clear();
        self.records = 0;
    }
}

/// What a stage did with one record.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Sent on (journal, decisions or dead-letter topic) in the open transaction.
    Done,
    /// Not handled, through no fault of the record: something it needs (the schema registry)
    /// does not answer. The record is read again later; nothing of it was sent.
    NotYet(String),
}

/// How one round of polling ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled {
    /// The batch is ready to commit (it may be empty).
    Ready,
    /// Partitions were revoked: the open transaction and the batch must be dropped.
    Revoked,
    /// A record could not be handled yet (why): the batch holds what came before it and is
    /// ready to commit; the consumer was sought back to that record. Wait before polling on.
    NotYet(String),
}

/// Polls records into `batch` and hands each to `handle`, until the batch holds `max_batch`
/// records, `commit_interval` has passed, or — once it holds something — nothing more is ready.
/// Committing as soon as the input is drained keeps latency low under light load; under heavy
/// load batches fill up and commits stay infrequent.
///
/// A record joins the batch before it is handled, so that a failure while handling it rewinds
/// to it too. A fatal consumer error ends the round with [`ConsumerLost`].
pub fn poll_batch(
    consumer: &rdkafka::consumer::BaseConsumer<context::StageContext>,
    (max_batch, commit_interval): (usize, std::time::Duration),
    batch: &mut BatchOffsets,
    mut handle: impl FnMut(&BorrowedMessage<'_>) -> Result<Handled, StageError>,
) -> Result<Polled, StageError> {
    use rdkafka::consumer::Consumer;
    use rdkafka::Message;
    context::StageContext::fatal(consumer)?;
    let deadline = std::time::Instant::now() + commit_interval;
    while batch.records < max_batch {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let wait = if batch.is_empty() {
            left
        } else {
            left.min(std::time::Duration::from_millis(2))
        };
        match consumer.poll(wait) {
            Some(Ok(m)) => {
                // In the batch before it is handled: a failure while handling it rewinds to it.
                batch.record(m.topic(), m.partition(), m.offset());
                if let Handled::NotYet(why) = handle(&m)? {
                    // Read it again next round; records queued behind it are dropped by the seek.
                    batch.unrecord(m.topic(), m.partition(), m.offset());
                    let wait = std::time::Duration::from_secs(5);
                    let at = rdkafka::Offset::Offset(m.offset());
                    watchdog::watch("seek", wait, || {
                        consumer.seek(m.topic(), m.partition(), at, wait)
                    })
                    .map_err(|e| {
                        StageError::Fatal(format!("seeking back to a record to retry: {e}"))
                    })?;
                    return Ok(Polled::NotYet(why));
                }
            }
            Some(Err(e @ rdkafka::error::KafkaError::MessageConsumptionFatal(_))) => {
                return Err(consumer.context().lost(&e).into())
            }
            Some(Err(e)) => consumer.context().consumer_error(&e),
            None if !batch.is_empty() => break,
            None => {}
        }
        if consumer.context().take_revoked() {
            return Ok(Polled::Revoked);
        }
    }
    Ok(Polled::Ready)
}

/// Commits the open transaction with the batch's input offsets, and counts it.
pub fn commit_batch(
    stage: &'static str,
    consumer: &rdkafka::consumer::BaseConsumer<context::StageContext>,
    txn: &mut txn::Transactional,
    batch: &BatchOffsets,
    metrics: &crate::telemetry::Metrics,
) -> Result<(), StageError> {
    let started = std::time::Instant::now();
    txn.commit(&batch.to_commit(), consumer)?;
    metrics.tell(BatchCommitted {
        stage,
        records: batch.records,
        seconds: started.elapsed().as_secs_f64(),
    });
    rdkafka::consumer::Consumer::context(consumer).progress(batch);
    Ok(())
}

/// After an abortable error: aborts the transaction (if still open) and counts it. Where the
/// input resumes is the stage's to decide ([`StageError::recovery`]): never simply the batch's
/// start, since the abort may also have ended the records of the previous commit, had the
/// broker dropped its markers (docs/operations.md, "Hanging transactions").
pub fn abort(
    stage: &'static str,
    txn: &mut txn::Transactional,
    batch: &BatchOffsets,
    metrics: &crate::telemetry::Metrics,
    why: &str,
) -> Result<(), StageError> {
    metrics.tell(BatchAborted {
        stage,
        records: batch.records,
        why,
    });
    txn.abort()
}

/// A stage's part in a [`round`]: what it does with one record, and how it commits.
pub trait Stage {
    const NAME: &'static str;
    const ROLE: Role;
    fn config(&self) -> &crate::config::KafkaConfig;
    fn metrics(&self) -> &crate::telemetry::Metrics;
    /// Sends what one record implies in the open transaction (beginning it if needed).
    fn handle(
        &mut self,
        m: &BorrowedMessage<'_>,
        txn: &mut Transactional,
    ) -> Result<Handled, StageError>;
    /// Commits the open transaction with the batch's offsets ([`commit_batch`]), with what
    /// the stage must add before and do after.
    fn commit(
        &mut self,
        consumer: &rdkafka::consumer::BaseConsumer<context::StageContext>,
        txn: &mut Transactional,
        batch: &BatchOffsets,
    ) -> Result<(), StageError>;
}

/// How a [`round`] ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    /// The batch committed (this many records).
    Committed(usize),
    /// The coordinator's journal was revoked: the open transaction was aborted, and it stands
    /// by. (A [`Role::Shared`] stage's revocation ends the round with [`StageError::Abort`].)
    Revoked,
}

/// One round of a stage, the same for both: polls a batch into `batch` ([`poll_batch`]), hands
/// each record to the stage, and commits. An abortable error (or a revocation of a shared
/// stage's partitions) aborts the open transaction here and is returned, and the stage does
/// what [`StageError::recovery`] says, as for every other error. Waits after a record that
/// could not be handled yet ([`Backoff`]).
pub fn round<S: Stage>(
    stage: &mut S,
    consumer: &rdkafka::consumer::BaseConsumer<context::StageContext>,
    txn: &mut Transactional,
    batch: &mut BatchOffsets,
    backoff: &mut Backoff,
    stop: &Stop,
) -> Result<Round, StageError> {
    batch.clear();
    let limits = (stage.config().max_batch, stage.config().commit_interval);
    let polled = poll_batch(consumer, limits, batch, |m| {
        let handled = stage.handle(m, txn)?;
        txn.poll();
        Ok(handled)
    });
    let mut not_yet = None;
    let outcome = match polled {
        Ok(Polled::Revoked) => {
            if !batch.is_empty() || txn.is_open() {
                abort(S::NAME, txn, batch, stage.metrics(), "partitions revoked")?;
            }
            return match S::ROLE {
                // Revoked partitions resume from their committed offsets wherever they go, and
                // so do those kept.
                Role::Shared => Err(StageError::Abort("partitions revoked".into())),
                // The stage stands by; a takeover seeks the input itself.
                Role::Single => Ok(Round::Revoked),
            };
        }
        Ok(polled) => {
            if let Polled::NotYet(why) = polled {
                // What came before the record that must wait is committed now.
                not_yet = Some(why);
            }
            if batch.is_empty() {
                Ok(())
            } else {
                stage.commit(consumer, txn, batch)
            }
        }
        Err(e) => Err(e),
    };
    backoff.after_round(not_yet, S::NAME, stage.metrics(), stop);
    match outcome {
        Ok(()) => Ok(Round::Committed(batch.records)),
        Err(e @ StageError::Abort(_)) => {
            abort(S::NAME, txn, batch, stage.metrics(), &e.to_string())?;
            std::thread::sleep(std::time::Duration::from_millis(200));
            Err(e)
        }
        Err(e) => Err(e),
    }
}
