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
        super::settled::with_settled_producer(STAGE, lifecycle, stop, || {
            let mut txn = Transactional::new(&self.config, &id, self.topics.changelog(), stop)?;
            super::settled::settled(
                &self.config,
                &[self.topics.journal(), self.topics.dlq()],
                stop,
                |hanging| {
                    let outcome = super::txn::SealOutcome::Abort;
                    lifecycle.sealed(STAGE, &super::settled::named(hanging), &outcome);
                    Ok(txn.seal(hanging, consumer, &outcome)?)
                },
            )?;
            Ok(txn)
        })
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
