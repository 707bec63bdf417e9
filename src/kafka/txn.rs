//! A transactional producer with a timeout on every call, and librdkafka's error classes
//! turned into what the loop must do (see librdkafka's "Transactional producer" API docs):
//!
//! - **retriable** (e.g. a timeout while a broker restarts): call the same step again, with a
//!   backoff, for up to [`PATIENCE`];
//! - **requires abort**: abort the transaction, rewind the input to the start of the batch and
//!   redo it ([`StageError::Abort`]);
//! - **fenced**: a newer producer with the same transactional id took over
//!   ([`StageError::Fenced`]); this one must never write again;
//! - **fatal**: the producer cannot go on ([`StageError::Fatal`]); the stage makes a new one,
//!   whose `init_transactions` aborts whatever the old one left open, and rewinds its input to
//!   the committed offsets.
//!
//! What each error makes the stage do is [`StageError::recovery`]'s to say.

use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, PurgeConfig};
use rdkafka::{ClientConfig, TopicPartitionList};

use super::context::{ProducerState, StageContext};
use super::stage::StageError;
use super::watchdog;
use crate::config::{Config, Guarantee};
use crate::stop::Stop;

/// How long a retriable error (a broker away, a coordinator moving) is retried before the
/// producer is given up as fatal. Long enough to ride out a broker restart.
pub const PATIENCE: Duration = Duration::from_secs(300);

/// The key of the tombstone a [`Transactional::seal`] writes, in a transaction it aborts.
pub const SEAL_KEY: &[u8] = b"rallypoint.seal";

/// Whether a record is a seal's tombstone (see [`Transactional::seal`]): the key
/// [`SEAL_KEY`] and no value. After a commit seal every reader sees one; the contract says to
/// skip it (docs/contracts.md), and Rallypoint's own readers do.
pub fn is_seal(key: Option<&[u8]>, payload: Option<&[u8]>) -> bool {
    key == Some(SEAL_KEY) && payload.is_none()
}
/// The header naming the journal offset a coordinator record follows from.
pub const HDR_JOURNAL_OFFSET: &str = "rp.journal_offset";

/// What librdkafka says to do about an error.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Retry,
    Abort,
    Fenced,
    Fatal,
}

fn class(e: &KafkaError) -> Class {
    match e {
        KafkaError::Transaction(t) if t.code() == RDKafkaErrorCode::Fenced => Class::Fenced,
        KafkaError::Transaction(t) if t.is_fatal() => Class::Fatal,
        KafkaError::Transaction(t) if t.txn_requires_abort() => Class::Abort,
        KafkaError::Transaction(t) if t.is_retriable() => Class::Retry,
        _ => Class::Abort,
    }
}

fn error(class: Class, e: &KafkaError) -> StageError {
    match class {
        Class::Fenced => StageError::Fenced(e.to_string()),
        Class::Fatal => StageError::Fatal(e.to_string()),
        Class::Retry | Class::Abort => StageError::Abort(e.to_string()),
    }
}

/// A stage's producer. Under `exactly_once_v2` every batch is one transaction; under
/// `at_least_once` the same calls send without one (an idempotent producer), and a commit
/// waits for every record's acknowledgement before the consumer commits the input offsets.
pub struct Transactional {
    /// Destroyed under the watchdog (see the `Drop` impl): librdkafka's destroy waits for its
    /// threads, and can wait as long as a hung call.
    producer: ManuallyDrop<BaseProducer<ProducerState>>,
    timeout: Duration,
    exactly_once: bool,
    open: bool,
    /// The journal offset the records sent now follow from, as its header carries it (see
    /// [`Transactional::stamp`]).
    journal_offset: Option<String>,
    /// Retries end once the process stops.
    stop: Stop,
}

/// How a seal ends the hanging transaction it finds (see [`Transactional::seal`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealOutcome {
    /// The transaction was not committed, or nobody can tell: its records are aborted.
    Abort,
    /// It was committed, and Kafka dropped some of its markers: its records are committed, and
    /// the group's offsets (topic, partition, next offset) are set to where it left them.
    Commit { offsets: Vec<(String, i32, i64)> },
}

impl Transactional {
    /// Creates the producer and initialises transactions, fencing any older instance with the
    /// same transactional id (and completing or aborting what it left open). Waits out a broker
    /// that is starting or away for up to [`PATIENCE`].
    pub fn new(
        config: &Config,
        transactional_id: &str,
        changelog_topic: String,
        stop: &Stop,
    ) -> Result<Self, StageError> {
        let timeout = config.kafka.transaction_timeout;
        let exactly_once = config.kafka.guarantee == Guarantee::ExactlyOnce;
        let mut c: ClientConfig = super::client_config(config);
        if exactly_once {
            c.set("transactional.id", config.name(transactional_id))
                .set("transaction.timeout.ms", timeout.as_millis().to_string());
        } else {
            c.set("enable.idempotence", "true")
                .set("message.timeout.ms", timeout.as_millis().to_string());
        }
        c.set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("queue.buffering.max.messages", "500000")
            // As large as the largest record of the journal or the dead-letter topic.
            .set(
                "message.max.bytes",
                super::admin::RecordLimits::of(config)
                    .producer()
                    .to_string(),
            );
        let producer: BaseProducer<ProducerState> = c
            .create_with_context(ProducerState::new(changelog_topic))
            .map_err(|e| StageError::Fatal(e.to_string()))?;
        let txn = Self {
            producer: ManuallyDrop::new(producer),
            timeout,
            exactly_once,
            open: false,
            journal_offset: None,
            stop: stop.clone(),
        };
        if !exactly_once {
            return Ok(txn);
        }
        // Any error but a fatal one (the broker starting, loading its transaction log, a
        // coordinator moving) is worth another try here.
        txn.retry_on(
            "init_transactions",
            &[Class::Retry, Class::Abort],
            |p, t| p.init_transactions(t),
        )?;
        Ok(txn)
    }

    pub fn state(&self) -> &ProducerState {
        self.producer.context()
    }

    /// Begins a transaction unless one is open.
    fn begin(&mut self) -> Result<(), StageError> {
        if !self.open {
            if self.exactly_once {
                watchdog::watch("begin_transaction", self.timeout, || {
                    self.producer.begin_transaction()
                })
                .map_err(|e| error(class(&e), &e))?;
            }
            self.state()
                .last_changelog_offset
                .store(-1, Ordering::SeqCst);
            self.state().failed.store(0, Ordering::SeqCst);
            self.open = true;
        }
        Ok(())
    }

    /// Commits a transaction that holds nothing but `offsets`, for the consumer's group. With
    /// at-least-once there are no transactions, and nothing is done.
    pub fn commit_offsets_only(
        &mut self,
        offsets: &TopicPartitionList,
        consumer: &BaseConsumer<StageContext>,
    ) -> Result<(), StageError> {
        if !self.exactly_once {
            return Ok(());
        }
        self.begin()?;
        self.commit(offsets, consumer)
    }

    /// Ends every hanging transaction of this producer id on `partitions` (see
    /// [`super::settled`]) with one `outcome`: a transaction of its own writes one tombstone
    /// under [`SEAL_KEY`] to each (a partition joins a transaction only with a record; after an
    /// abort `read_committed` readers never see it, after a commit they do, and skip it as the
    /// contract says; compaction removes it) and adds the group's offsets, and its markers end whatever this producer id left
    /// open there, the group's pending offsets too. For an abort the offsets sent are
    /// discarded with it; for a commit they are the journal position the commit stands for.
    /// Nothing is done without transactions.
    ///
    /// A commit seal sends the offsets first, before it touches `partitions`. The group can
    /// refuse them (its member unknown after a restart, say), and after that the transaction
    /// can only abort: an abort that also reached the hanging records would throw away a batch
    /// whose offsets the group already holds, and lose its records for good (the chaos test
    /// saw 186 input records lost this way). So a refused commit seal aborts what holds only
    /// the offsets and seals again without them.
    pub fn seal(
        &mut self,
        partitions: &[(String, i32)],
        consumer: &BaseConsumer<StageContext>,
        outcome: &SealOutcome,
    ) -> Result<(), StageError> {
        if !self.exactly_once {
            return Ok(());
        }
        self.stamp(None);
        self.begin()?;
        if let SealOutcome::Commit { .. } = outcome {
            if let Err(e) = self.seal_offsets(partitions, consumer, outcome) {
                tracing::info!(error = %e, "sealing: the group's offsets were refused; sealing without them");
                self.abort()?;
                self.begin()?;
            }
        }
        for (topic, partition) in partitions {
            let record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(topic).partition(*partition).key(SEAL_KEY);
            if let Err((e, _)) = self.producer.send(record) {
                return Err(error(class(&e), &e));
            }
        }
        if let SealOutcome::Abort = outcome {
            if let Err(e) = self.seal_offsets(partitions, consumer, outcome) {
                tracing::info!(error = %e, "sealing: the group's offsets were refused; the abort marker ends the transaction all the same");
            }
        }
        self.drain().map_err(|e| error(Class::Abort, &e))?;
        match outcome {
            SealOutcome::Abort => self.abort(),
            SealOutcome::Commit { .. } => {
                self.retry("commit_transaction", |p, t| p.commit_transaction(t))
                    .inspect_err(|_| {
                        let _ = self.abort();
                    })?;
                self.open = false;
                Ok(())
            }
        }
    }

    /// Adds the group's offsets to a seal: for an abort, any (they are discarded with it), so
    /// that its marker ends the group's pending offsets; for a commit, where it left them.
    fn seal_offsets(
        &mut self,
        partitions: &[(String, i32)],
        consumer: &BaseConsumer<StageContext>,
        outcome: &SealOutcome,
    ) -> Result<(), StageError> {
        // The group's pending offsets, if any, are this producer id's too: adding the group to
        // the transaction makes its marker end them.
        let Some(group) = consumer.group_metadata() else {
            return Ok(());
        };
        let mut offsets = TopicPartitionList::new();
        let added = match outcome {
            SealOutcome::Abort => partitions.iter().try_for_each(|(topic, partition)| {
                offsets.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(0))
            }),
            SealOutcome::Commit { offsets: at } => {
                at.iter().try_for_each(|(topic, partition, next)| {
                    offsets.add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*next))
                })
            }
        };
        added.map_err(|e| StageError::Abort(e.to_string()))?;
        watchdog::watch("send_offsets_to_transaction", self.timeout, || {
            self.producer
                .send_offsets_to_transaction(&offsets, &group, self.timeout)
        })
        .map_err(|e| error(Class::Abort, &e))
    }

    /// Stamps every record sent from now on with the journal offset it follows from (header
    /// `rp.journal_offset`), or stops stamping (`None`). The coordinator stamps what it sends
    /// for each journal record, so that a seal can tell from a hanging record whether the
    /// commit it belonged to stands (see `coordinator::seal_outcome`).
    pub fn stamp(&mut self, journal_offset: Option<i64>) {
        self.journal_offset = journal_offset.map(|o| o.to_string());
    }

    /// Queues one record in the current transaction, beginning it if needed.
    pub fn send(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), StageError> {
        self.begin()?;
        let headers = match &self.journal_offset {
            Some(offset) => Some(headers.unwrap_or_default().insert(Header {
                key: HDR_JOURNAL_OFFSET,
                value: Some(offset),
            })),
            None => headers,
        };
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        record.key = key;
        record.payload = payload;
        record.headers = headers;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(error(class(&e), &e)),
            }
        }
    }

    /// Serves delivery reports; call now and then while sending.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// True once every broker connection was lost since this producer last committed (a broker
    /// restart, a network cut). librdkafka may then keep a group coordinator that is gone and
    /// wait in `send_offsets_to_transaction` past its timeout, until the broker drops the idle
    /// connection ten minutes later (librdkafka #5456, #5511): the stages make a new producer
    /// between transactions instead.
    pub fn lost_all_brokers(&self) -> bool {
        // Serve the queued error events first; each poll serves one.
        for _ in 0..64 {
            self.producer.poll(Duration::ZERO);
        }
        self.state().brokers_lost.load(Ordering::SeqCst)
    }

    /// Adds the consumed offsets (next to read) and commits. Retriable errors are retried; on
    /// an abortable one the transaction is aborted before [`StageError::Abort`] is returned.
    pub fn commit(
        &mut self,
        offsets: &TopicPartitionList,
        consumer: &BaseConsumer<StageContext>,
    ) -> Result<(), StageError> {
        let result = if self.exactly_once {
            self.commit_steps(offsets, consumer)
        } else {
            self.acknowledge_and_commit(offsets, consumer)
        };
        match result {
            Ok(()) => {
                self.open = false;
                // This producer reaches the coordinators: a loss of every broker before now
                // (librdkafka reports one as it starts, too) needs no new producer.
                self.state().brokers_lost.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err(e @ (StageError::Abort(_) | StageError::InDoubt(_))) => {
                self.abort()?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    fn commit_steps(
        &self,
        offsets: &TopicPartitionList,
        consumer: &BaseConsumer<StageContext>,
    ) -> Result<(), StageError> {
        let group = consumer
            .group_metadata()
            .ok_or_else(|| StageError::Abort("no consumer group metadata yet".into()))?;
        self.delivered()?;
        self.retry("send_offsets_to_transaction", |p, t| {
            p.send_offsets_to_transaction(offsets, &group, t)
        })?;
        crate::fault::point("offsets_sent");
        // Until commit_transaction is asked, the transaction cannot have committed. Once it is,
        // an abortable error does not say that it did not: the broker may have written the
        // commit before the error (a coordinator lost mid-call, a retried EndTxn). Its outcome
        // is in doubt, and only the committed offsets tell.
        self.retry("commit_transaction", |p, t| p.commit_transaction(t))
            .map_err(|e| match e {
                StageError::Abort(why) => StageError::InDoubt(why),
                other => other,
            })
    }

    /// At least once: every record acknowledged, then the input offsets committed. A record
    /// that failed, or a commit that failed, makes the stage read the batch again.
    fn acknowledge_and_commit(
        &self,
        offsets: &TopicPartitionList,
        consumer: &BaseConsumer<StageContext>,
    ) -> Result<(), StageError> {
        self.delivered()?;
        watchdog::watch("commit_offsets", self.timeout, || {
            consumer.commit(offsets, CommitMode::Sync)
        })
        .map_err(|e| StageError::Abort(format!("committing the input offsets: {e}")))
    }

    /// Waits for every queued record; an error when one was not delivered.
    fn delivered(&self) -> Result<(), StageError> {
        self.drain().map_err(|e| error(Class::Abort, &e))?;
        if self.state().failed.load(Ordering::SeqCst) > 0 {
            return Err(StageError::Abort("a record was not delivered".into()));
        }
        Ok(())
    }

    /// Runs one transactional call, again while librdkafka calls its error retriable.
    fn retry(
        &self,
        what: &'static str,
        call: impl Fn(&BaseProducer<ProducerState>, Duration) -> KafkaResult<()>,
    ) -> Result<(), StageError> {
        self.retry_on(what, &[Class::Retry], call)
    }

    /// Runs one transactional call, again while its error is of one of the `again` classes.
    fn retry_on(
        &self,
        what: &'static str,
        again: &[Class],
        call: impl Fn(&BaseProducer<ProducerState>, Duration) -> KafkaResult<()>,
    ) -> Result<(), StageError> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match watchdog::watch(what, self.timeout, || call(&self.producer, self.timeout)) {
                Ok(()) => return Ok(()),
                Err(e) => match class(&e) {
                    c if again.contains(&c) && started.elapsed() < PATIENCE => {
                        tracing::warn!(error = %e, "{what}: retrying");
                        if self.stop.sleep(wait) {
                            return Err(StageError::Fatal(format!("{what}: stopping ({e})")));
                        }
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    c if again.contains(&c) => {
                        return Err(StageError::Fatal(format!(
                            "{what}: still failing after {PATIENCE:?}: {e}"
                        )))
                    }
                    other => return Err(error(other, &e)),
                },
            }
        }
    }

    /// Waits until every queued record is acknowledged and its report served.
    ///
    /// `commit_transaction` flushes by itself, but rust-rdkafka's flush polls in steps of up to
    /// 100 ms that always run to their end, which put a floor of 100 ms under every commit.
    /// While no broker answers, records fail once `transaction.timeout.ms` passes (librdkafka
    /// bounds `message.timeout.ms` by it), so this returns within about that time.
    fn drain(&self) -> KafkaResult<()> {
        let wait = self.timeout + Duration::from_secs(5);
        watchdog::watch("flush", wait, || self.drain_within(wait))
    }

    fn drain_within(&self, wait: Duration) -> KafkaResult<()> {
        let deadline = Instant::now() + wait;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            // Returns as soon as a delivery report is served: the timeout only bounds a
            // wait in which nothing arrives.
            self.producer.poll(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Aborts the open transaction, if any; retries while the broker is away.
    pub fn abort(&mut self) -> Result<(), StageError> {
        if !self.open {
            return Ok(());
        }
        if !self.exactly_once {
            // What was sent stays sent: the batch is read and sent again.
            self.open = false;
            return Ok(());
        }
        // librdkafka's abort waits until every outstanding record's delivery report is served,
        // and only this thread serves them: a batch that failed while sending still has its
        // records queued, and the abort would wait out its timeout again and again. Purge the
        // queued ones (as the abort itself does; those in flight are left to finish) and serve
        // the reports first.
        watchdog::watch("purge", self.timeout, || {
            self.producer.purge(PurgeConfig::default().queue())
        });
        if let Err(e) = self.drain() {
            tracing::warn!(error = %e, "serving the purged records' reports before the abort");
        }
        self.retry("abort_transaction", |p, t| p.abort_transaction(t))
            .map_err(|e| match e {
                StageError::Abort(why) => StageError::Fatal(format!("abort failed: {why}")),
                other => other,
            })?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Transactional {
    fn drop(&mut self) {
        watchdog::watch("producer_close", self.timeout, || {
            // SAFETY: the producer is dropped once, here, and never used after.
            unsafe { ManuallyDrop::drop(&mut self.producer) }
        });
    }
}
