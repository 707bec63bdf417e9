//! Intake: decode, validate, authorize (nation = topic), then append to the journal. Rejected
//! records go to the dead-letter topic. Journal records, dead letters and input offsets commit
//! in one transaction per batch. Stateless: instances share the input partitions.

use std::sync::Arc;

use anyhow::Context;
use rallypoint_core::validate::{self, Limits, Origin};
use rallypoint_core::{Event, RejectReason, Rejection};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message, OwnedHeaders};

use super::batch::{round, Round, Stage};
use super::context::StageContext;
use super::dead_letter::{self, Original};
use super::stage::{Recovery, Role, StageError};
use super::txn::Transactional;
use super::{Backoff, BatchOffsets, Handled, Topics};
use crate::config::Config;
use crate::registry::Schemas;
use crate::status::{Phase, StageStatus};
use crate::stop::Stop;
use crate::telemetry::events::{Kind, ResumedFromCommitted, Sent};
use crate::telemetry::{Metrics, Renewal};

const STAGE: &str = "intake";

pub struct Intake {
    config: Config,
    topics: Topics,
    schemas: Arc<Schemas>,
    metrics: Metrics,
    limits: Limits,
    /// The largest journal record the journal topic accepts.
    max_journal_bytes: usize,
}

impl Intake {
    pub fn new(config: Config, schemas: Arc<Schemas>, metrics: Metrics) -> Self {
        let limits = Limits {
            max_future_ms: config.intake.max_future.as_millis() as i64,
        };
        Self {
            topics: Topics::new(&config),
            max_journal_bytes: super::admin::RecordLimits::of(&config).journal,
            config,
            schemas,
            metrics,
            limits,
        }
    }

    /// Runs until `stop` is set; returns an error only when it cannot go on.
    pub fn run(&self, stop: &Stop, status: &StageStatus) -> anyhow::Result<()> {
        if !self.schemas.register_patiently(STAGE, stop)? {
            return Ok(());
        }
        super::run_again_when_consumer_lost(STAGE, stop, status, self.metrics.lifecycle(), || {
            self.serve(stop, status)
        })
    }

    fn serve(&self, stop: &Stop, status: &StageStatus) -> Result<(), StageError> {
        let consumer: BaseConsumer<StageContext> =
            super::consumer_config(&self.config, "rallypoint-intake")
                .create_with_context(StageContext::new(STAGE, self.metrics.clone()))
                .context("creating the intake consumer")?;
        // Closed under the watchdog when this function returns, however it returns.
        let consumer = super::watchdog::Watched::new(
            consumer,
            "consumer_close",
            self.config.kafka.session_timeout,
        );
        consumer
            .subscribe(&[&self.topics.input_pattern()])
            .context("subscribing to input topics")?;
        let mut txn = self.producer(&consumer, stop)?;
        status.set(Phase::Active);
        tracing::info!(pattern = %self.topics.input_pattern(), "intake running");
        let mut batch = BatchOffsets::default();
        let mut backoff = Backoff::default();
        let mut idle = std::time::Instant::now();
        while !stop.is_stopped() {
            super::watchdog::beat();
            self.check_idle(&mut idle, &mut txn, &consumer, stop);
            if !txn.is_open() && txn.lost_all_brokers() {
                txn = self.renew(
                    txn,
                    &consumer,
                    Renewal::BrokersLost,
                    &"every broker connection was lost",
                    stop,
                )?;
            }
            let mut this = self;
            match round(
                &mut this,
                &consumer,
                &mut txn,
                &mut batch,
                &mut backoff,
                stop,
            ) {
                Ok(Round::Committed(records)) if records > 0 => idle = std::time::Instant::now(),
                Ok(_) => {}
                Err(e) => match e.recovery(Role::Shared) {
                    Recovery::ResumeFromCommitted => {
                        self.metrics.tell(ResumedFromCommitted {
                            stage: STAGE,
                            why: &e,
                        });
                        self.resume_from_committed(&mut txn, &consumer, stop)?;
                    }
                    Recovery::RenewProducer => {
                        if let StageError::Fenced(_) = e {
                            self.metrics.lifecycle().fenced(STAGE, &e);
                        }
                        if stop.is_stopped() {
                            break;
                        }
                        txn = self.renew(txn, &consumer, e.renewal(), &e, stop)?;
                    }
                    _ => return Err(e),
                },
            }
        }
        txn.abort()?;
        Ok(())
    }

    /// A new producer in place of `old`: it aborts what the old one left open, and the input
    /// resumes from what was committed.
    fn renew(
        &self,
        old: Transactional,
        consumer: &BaseConsumer<StageContext>,
        reason: Renewal,
        why: &dyn std::fmt::Display,
        stop: &Stop,
    ) -> anyhow::Result<Transactional> {
        self.metrics
            .lifecycle()
            .producer_renewed(STAGE, reason, why);
        drop(old);
        let mut txn = self.producer(consumer, stop)?;
        self.resume_from_committed(&mut txn, consumer, stop)?;
        Ok(txn)
    }

    /// Seeks every partition the intake holds to the group's committed offset, settling the
    /// group with `txn` should the broker keep them unstable.
    fn resume_from_committed(
        &self,
        txn: &mut Transactional,
        consumer: &BaseConsumer<StageContext>,
        stop: &Stop,
    ) -> anyhow::Result<()> {
        let mut run = |waited| self.settle(txn, consumer, stop, waited);
        let settle = super::Settle {
            after: super::settle_after(&self.config.kafka),
            run: &mut run,
        };
        super::rewind_to_committed(consumer, stop, Some(settle))
    }

    /// Commits an offsets-only transaction for the intake's group (see
    /// [`super::rewind_to_committed`]): an offset on the journal, which this group never
    /// reads, so that no input position of the group is touched; the journal's end, so that
    /// lag tools see little lag.
    fn settle(
        &self,
        txn: &mut Transactional,
        consumer: &BaseConsumer<StageContext>,
        stop: &Stop,
        waited: std::time::Duration,
    ) -> anyhow::Result<()> {
        let journal = self.topics.journal();
        let wait = std::time::Duration::from_secs(10);
        let (_, end) = super::with_patience("reading the journal's end", wait, stop, || {
            consumer.fetch_watermarks(&journal, 0, wait)
        })?;
        let mut offsets = rdkafka::TopicPartitionList::new();
        offsets.add_partition_offset(&journal, 0, rdkafka::Offset::Offset(end))?;
        txn.commit_offsets_only(&offsets, consumer)?;
        self.metrics.lifecycle().group_settled(STAGE, waited);
        Ok(())
    }

    /// While the intake has partitions but reads nothing for [`super::settle_after`]: whether
    /// the broker answers for the group's committed offsets (librdkafka reads them, stable
    /// only, before it fetches a newly assigned partition); if not, the group is settled as in
    /// [`super::rewind_to_committed`].
    fn check_idle(
        &self,
        idle: &mut std::time::Instant,
        txn: &mut Transactional,
        consumer: &BaseConsumer<StageContext>,
        stop: &Stop,
    ) {
        let waited = idle.elapsed();
        if txn.is_open() || waited < super::settle_after(&self.config.kafka) {
            return;
        }
        *idle = std::time::Instant::now();
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            return;
        }
        let wait = std::time::Duration::from_secs(10);
        let probe =
            super::watchdog::watch("reading committed offsets", super::CALL_TIMEOUT, || {
                consumer.committed(wait)
            });
        if let Err(e) = probe {
            tracing::info!(stage = STAGE, error = %e, "idle, and the group's committed offsets cannot be read");
            if let Err(e) = self.settle(txn, consumer, stop, waited) {
                tracing::warn!(stage = STAGE, error = %e, "settling the group's offsets failed");
            }
        }
    }

    /// A new producer, once nothing it left open hangs where the intake writes (see
    /// [`super::settled`]).
    fn producer(
        &self,
        consumer: &BaseConsumer<StageContext>,
        stop: &Stop,
    ) -> anyhow::Result<Transactional> {
        let id = format!("rallypoint-intake-{}", self.config.kafka.instance_id);
        let lifecycle = self.metrics.lifecycle();
        let settled = super::settled::with_settled_producer(STAGE, lifecycle, stop, || {
            let mut txn = Transactional::new(&self.config, &id, self.topics.changelog(), stop)?;
            super::settled::settled(
                &self.config,
                &[self.topics.journal(), self.topics.dlq()],
                stop,
                &|| {},
                |hanging| {
                    let outcome = self.seal_outcome(hanging, consumer, stop)?;
                    lifecycle.sealed(STAGE, &super::settled::named(hanging), &outcome);
                    Ok(txn.seal(hanging, consumer, &outcome)?)
                },
            )?;
            Ok(txn)
        });
        Ok(settled?)
    }

    /// How to end the hanging transaction on `hanging`: every record intake writes names the
    /// input record it follows from, and the group's committed offsets say which inputs are
    /// done. When the first record without an outcome on each partition follows from an input
    /// before the committed offset of its partition, its batch committed (Kafka wrote the
    /// marker on the group's offsets and dropped it there), and the seal commits it; otherwise
    /// (the offsets unreadable, pending with the records, or before them) it aborts, and the
    /// batch is read again from the committed offsets (docs/operations.md, "Hanging
    /// transactions").
    fn seal_outcome(
        &self,
        hanging: &[(String, i32)],
        consumer: &BaseConsumer<StageContext>,
        stop: &Stop,
    ) -> anyhow::Result<super::txn::SealOutcome> {
        let sources: Vec<Option<(String, i32, i64)>> =
            super::settled::first_open_headers(&self.config, hanging, stop)?
                .iter()
                .map(|h| dead_letter::source_of(h.as_deref()?))
                .collect();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, partition, _) in sources.iter().flatten() {
            if tpl.find_partition(topic, *partition).is_none() {
                tpl.add_partition(topic, *partition);
            }
        }
        let wait = super::CALL_TIMEOUT;
        let committed = match super::watchdog::watch("committed_offsets", wait, || {
            consumer.committed_offsets(tpl, wait)
        }) {
            Ok(list) => Some(
                list.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        rdkafka::Offset::Offset(o) => {
                            Some((e.topic().to_owned(), e.partition(), o))
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                tracing::info!(stage = STAGE, error = %e, "sealing: the group's committed offsets cannot be read");
                None
            }
        };
        let outcome = seal_outcome(&sources, committed.as_deref());
        tracing::info!(
            stage = STAGE,
            ?sources,
            ?committed,
            ?outcome,
            "the hanging transaction's records and the group's committed offsets"
        );
        Ok(outcome)
    }

    /// Routes one input record to the journal or the dead-letter topic, or leaves it for later
    /// when its schema id cannot be looked up now.
    fn process(
        &self,
        m: &BorrowedMessage<'_>,
        txn: &mut Transactional,
    ) -> Result<Handled, StageError> {
        let payload = m.payload().unwrap_or_default();
        if payload.len() <= self.config.intake.max_record_bytes {
            if let Err(e) = self.schemas.prepare(payload) {
                return Ok(Handled::NotYet(e.to_string()));
            }
        }
        let codec = self.schemas.codec();
        let journaled = self.accept(m).and_then(|event| {
            let key = event.entity_id().as_bytes().to_vec();
            let value = codec.encode_event(&event);
            let headers = dead_letter::journal_headers(codec, m, &key, &value);
            // Only when the input topic accepts more than `topics create` sets: the journal
            // could not take it, and the batch would be refused over and over.
            let size = key.len() + value.len() + headers_size(&headers);
            if size > self.max_journal_bytes {
                return Err(Rejection::new(
                    RejectReason::Oversized,
                    format!(
                        "its journal record would be {size} bytes, at most {} allowed",
                        self.max_journal_bytes
                    ),
                ));
            }
            Ok((key, value, headers))
        });
        match journaled {
            Ok((key, value, headers)) => {
                txn.send(
                    &self.topics.journal(),
                    Some(&key),
                    Some(&value),
                    Some(headers),
                )?;
                self.metrics.tell(Sent {
                    stage: STAGE,
                    kind: Kind::Journal,
                    count: 1,
                });
            }
            Err(rejection) => {
                let dlq = self.topics.dlq();
                dead_letter::send_dead_letter(
                    STAGE,
                    codec,
                    &dlq,
                    &self.metrics,
                    txn,
                    &Original::consumed(m),
                    &rejection,
                )?;
            }
        }
        Ok(Handled::Done)
    }

    fn accept(&self, m: &BorrowedMessage<'_>) -> Result<Event, Rejection> {
        let origin = Origin::from_topic(self.topics.strip(m.topic())).ok_or_else(|| {
            Rejection::new(
                RejectReason::WrongTopic,
                format!("{} is not an input topic", m.topic()),
            )
        })?;
        let payload = m.payload().unwrap_or_default();
        if payload.len() > self.config.intake.max_record_bytes {
            return Err(Rejection::new(
                RejectReason::Oversized,
                format!(
                    "{} bytes, at most {} allowed",
                    payload.len(),
                    self.config.intake.max_record_bytes
                ),
            ));
        }
        let event = self.schemas.codec().decode_event(payload)?;
        validate::validate(&event, &origin, super::now_ms(), &self.limits)?;
        Ok(event)
    }
}

impl Stage for &Intake {
    const NAME: &'static str = STAGE;
    const ROLE: Role = Role::Shared;

    fn config(&self) -> &crate::config::KafkaConfig {
        &self.config.kafka
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn handle(
        &mut self,
        m: &BorrowedMessage<'_>,
        txn: &mut Transactional,
    ) -> Result<Handled, StageError> {
        self.process(m, txn)
    }

    fn commit(
        &mut self,
        consumer: &BaseConsumer<StageContext>,
        txn: &mut Transactional,
        batch: &BatchOffsets,
    ) -> Result<(), StageError> {
        crate::fault::point("intake.produced");
        super::commit_batch(STAGE, consumer, txn, batch, &self.metrics)
    }
}

/// About what `headers` take in a record: keys, values and their lengths.
fn headers_size(headers: &OwnedHeaders) -> usize {
    headers
        .iter()
        .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 10)
        .sum()
}

/// The outcome of a hanging intake transaction whose first open record on each partition
/// follows from the inputs `sources`, when the group has `committed` these offsets (`None`:
/// unreadable): commit when every source lies before its partition's committed offset.
fn seal_outcome(
    sources: &[Option<(String, i32, i64)>],
    committed: Option<&[(String, i32, i64)]>,
) -> super::txn::SealOutcome {
    use super::txn::SealOutcome;
    let Some(committed) = committed else {
        return SealOutcome::Abort;
    };
    let done = |source: &Option<(String, i32, i64)>| {
        source.as_ref().is_some_and(|(topic, partition, offset)| {
            committed
                .iter()
                .any(|(t, p, next)| t == topic && p == partition && offset < next)
        })
    };
    if !sources.is_empty() && sources.iter().all(done) {
        SealOutcome::Commit {
            offsets: committed.to_vec(),
        }
    } else {
        SealOutcome::Abort
    }
}

#[cfg(test)]
mod seal_tests {
    use super::seal_outcome;
    use crate::kafka::txn::SealOutcome;

    #[test]
    fn a_hanging_intake_transaction_is_committed_only_when_the_group_committed_past_its_inputs() {
        let src = |p: i32, o: i64| Some(("rrc.in.EST.incidents".to_owned(), p, o));
        let committed = vec![
            ("rrc.in.EST.incidents".to_owned(), 0, 100),
            ("rrc.in.EST.incidents".to_owned(), 1, 7),
        ];
        assert_eq!(
            seal_outcome(&[src(0, 99), src(1, 6)], Some(&committed)),
            SealOutcome::Commit {
                offsets: committed.clone()
            }
        );
        // An input at or past its committed offset: not done, read again.
        assert_eq!(
            seal_outcome(&[src(0, 99), src(1, 7)], Some(&committed)),
            SealOutcome::Abort
        );
        // A partition the group committed nothing for, a record naming no input, offsets that
        // cannot be read (pending with the records), or nothing read at all.
        assert_eq!(
            seal_outcome(&[src(2, 0)], Some(&committed)),
            SealOutcome::Abort
        );
        assert_eq!(
            seal_outcome(&[src(0, 1), None], Some(&committed)),
            SealOutcome::Abort
        );
        assert_eq!(seal_outcome(&[src(0, 1)], None), SealOutcome::Abort);
        assert_eq!(seal_outcome(&[], Some(&committed)), SealOutcome::Abort);
    }
}
