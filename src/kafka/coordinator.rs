//! Coordinator: folds the journal into state with the pure core and publishes what it decides.
//!
//! Per batch: apply each journal event into an in-memory overlay over RocksDB, produce the
//! decisions, dead letters and the overlay as changelog records, commit them with the journal
//! offset in one transaction, and only then write the overlay to RocksDB with the changelog
//! offset it reaches. An abort drops the overlay and rewinds the journal: RocksDB never holds
//! an uncommitted change.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rallypoint_core::decision::{Audience, Routed};
use rallypoint_core::store::Overlay;
use rallypoint_core::{apply, CoreConfig, Output};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};

use super::context::StageContext;
use super::txn::{Transactional, TxnError};
use super::{Backoff, BatchOffsets, Handled, Polled, Topics, HDR_INPUT_TS};
use crate::codec::Codec;
use crate::config::Config;
use crate::query::Asked;
use crate::registry::Schemas;
use crate::store::RocksStore;
use crate::telemetry::Metrics;

const STAGE: &str = "coordinator";
/// How often RocksDB's figures are read into the metrics: a few property reads, no data.
const FIGURES_EVERY: Duration = Duration::from_secs(1);

pub struct Coordinator {
    config: Config,
    core: CoreConfig,
    topics: Topics,
    schemas: Arc<Schemas>,
    metrics: Metrics,
    /// Questions of the query API, answered between batches.
    queries: Option<Receiver<Asked>>,
}

/// What one batch must do once its transaction has committed.
#[derive(Default)]
struct Pending {
    overlay: Overlay,
    input_timestamps: Vec<i64>,
    decisions: Vec<&'static str>,
}

impl Coordinator {
    pub fn new(config: Config, schemas: Arc<Schemas>, metrics: Metrics) -> Self {
        Self {
            core: config.core(),
            topics: Topics::new(&config),
            config,
            schemas,
            metrics,
            queries: None,
        }
    }

    /// Answers the query API from this coordinator's state.
    pub fn with_queries(mut self, queries: Receiver<Asked>) -> Self {
        self.queries = Some(queries);
        self
    }

    /// RocksDB's and the mission's figures into the metrics.
    fn observe(&self, store: &RocksStore) {
        self.metrics.store.observe(STAGE, &store.figures());
        if let Err(e) = self.metrics.mission.observe(store) {
            tracing::warn!(error = %e, "reading the mission figures failed");
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.config.state_dir.join("coordinator")
    }

    fn codec(&self) -> &Codec {
        self.schemas.codec()
    }

    pub fn run(&self, stop: &AtomicBool, ready: &AtomicBool) -> anyhow::Result<()> {
        if !self.schemas.register_patiently(STAGE, stop)? {
            return Ok(());
        }
        let mut txn = Transactional::new(
            &self.config,
            "rallypoint-coordinator",
            self.topics.changelog(),
        )?;
        let mut store =
            RocksStore::open(&self.state_path()).context("opening the RocksDB state")?;
        super::restore::restore(
            &self.config,
            &self.topics.changelog(),
            &mut store,
            &self.metrics,
        )?;
        let consumer: BaseConsumer<StageContext> =
            super::consumer_config(&self.config, "rallypoint-coordinator")
                .create_with_context(StageContext::new(STAGE, self.metrics.clone()))
                .context("creating the coordinator consumer")?;
        consumer
            .subscribe(&[&self.topics.journal()])
            .context("subscribing to the journal")?;
        self.observe(&store);
        let mut figures_read = Instant::now();
        ready.store(true, Ordering::SeqCst);
        tracing::info!(journal = %self.topics.journal(), "coordinator running");
        let mut batch = BatchOffsets::default();
        let mut pending = Pending::default();
        let mut backoff = Backoff::default();
        while !stop.load(Ordering::SeqCst) {
            if figures_read.elapsed() >= FIGURES_EVERY {
                self.observe(&store);
                figures_read = Instant::now();
            }
            if let Some(rx) = &self.queries {
                crate::query::answer_waiting(rx, &store, self.core.picture.top);
            }
            let polled = super::poll_batch(&consumer, &self.config.kafka, &mut batch, |m| {
                let handled = self.process(m, &store, &mut pending, &mut txn)?;
                txn.poll();
                Ok(handled)
            })?;
            if polled == Polled::Revoked {
                txn.abort()?;
                batch.clear();
                pending = Pending::default();
                continue;
            }
            if !batch.is_empty() {
                self.commit(
                    &consumer,
                    &mut txn,
                    &batch,
                    &mut store,
                    std::mem::take(&mut pending),
                )?;
                batch.clear();
            }
            match polled {
                Polled::NotYet(why) => {
                    self.metrics.waiting_for_registry(STAGE, &why);
                    backoff.wait(stop);
                }
                _ => backoff.reset(),
            }
        }
        if txn.is_open() {
            txn.abort()?;
        }
        Ok(())
    }

    fn process(
        &self,
        m: &BorrowedMessage<'_>,
        store: &RocksStore,
        pending: &mut Pending,
        txn: &mut Transactional,
    ) -> anyhow::Result<Handled> {
        let payload = m.payload().unwrap_or_default();
        // Journal records name their schema by registry id; after an upgrade, old ids are new
        // to this version and are looked up.
        if let Err(e) = self.schemas.prepare(payload) {
            return Ok(Handled::NotYet(e.to_string()));
        }
        let event = match self.codec().decode_event(payload) {
            Ok(e) => e,
            Err(rejection) => {
                self.dead_letter(m, &rejection, txn)?;
                return Ok(Handled::Done);
            }
        };
        let outputs = apply(&mut pending.overlay.over(store), &self.core, &event)?;
        let mut decided = false;
        for output in outputs {
            match output {
                Output::Decision(routed) => {
                    self.publish(&routed, txn)?;
                    if routed.audience == Audience::Coalition {
                        pending.decisions.push(routed.decision.type_name());
                    }
                    decided = true;
                }
                Output::Rejected(rejection) => self.dead_letter(m, &rejection, txn)?,
                Output::Picture(update) => self.publish_picture(&update, txn)?,
            }
        }
        if decided {
            if let Some(ts) = input_timestamp(m) {
                pending.input_timestamps.push(ts);
            }
        }
        Ok(Handled::Done)
    }

    fn publish(&self, routed: &Routed, txn: &mut Transactional) -> Result<(), TxnError> {
        let topic = match &routed.audience {
            Audience::Nation(n) => self.topics.decisions(n),
            Audience::Coalition => self.topics.coalition_decisions(),
        };
        let d = &routed.decision;
        let value = self
            .codec()
            .encode_decision(d, self.config.topics.decisions_format);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "rp.type",
                value: Some(d.type_name()),
            })
            .insert(Header {
                key: "rp.decision_id",
                value: Some(&d.header().decision_id),
            });
        txn.send(
            &topic,
            Some(d.key().as_bytes()),
            Some(&value),
            Some(headers),
        )?;
        self.metrics
            .records_out
            .with_label_values(&[STAGE, "decision"])
            .inc();
        Ok(())
    }

    fn publish_picture(
        &self,
        update: &rallypoint_core::picture::PictureUpdate,
        txn: &mut Transactional,
    ) -> Result<(), TxnError> {
        let value = self
            .codec()
            .encode_picture(update, self.config.topics.decisions_format);
        let headers = OwnedHeaders::new().insert(Header {
            key: "rp.type",
            value: Some(update.type_name()),
        });
        txn.send(
            &self.topics.threat_picture(),
            Some(update.key().as_bytes()),
            Some(&value),
            Some(headers),
        )?;
        self.metrics
            .records_out
            .with_label_values(&[STAGE, "picture"])
            .inc();
        Ok(())
    }

    fn dead_letter(
        &self,
        m: &BorrowedMessage<'_>,
        rejection: &rallypoint_core::Rejection,
        txn: &mut Transactional,
    ) -> Result<(), TxnError> {
        let dlq = self.topics.dlq();
        super::send_dead_letter(STAGE, self.codec(), &dlq, &self.metrics, txn, m, rejection)
    }

    fn commit(
        &self,
        consumer: &BaseConsumer<StageContext>,
        txn: &mut Transactional,
        batch: &BatchOffsets,
        store: &mut RocksStore,
        mut pending: Pending,
    ) -> anyhow::Result<()> {
        let changelog = self.topics.changelog();
        for (key, value) in pending.overlay.iter() {
            txn.send(&changelog, Some(key), value.as_deref(), None)?;
        }
        let changes = pending.overlay.len();
        if !super::commit_batch(STAGE, consumer, txn, batch, &self.metrics)? {
            return Ok(());
        }
        let committed_at = super::now_ms();
        let next = txn.state().last_changelog_offset.load(Ordering::SeqCst) + 1;
        store.apply(pending.overlay.drain(), next)?;
        self.metrics
            .records_out
            .with_label_values(&[STAGE, "changelog"])
            .inc_by(changes as u64);
        for t in pending.decisions {
            self.metrics.decisions.with_label_values(&[t]).inc();
        }
        for ts in pending.input_timestamps {
            self.metrics
                .end_to_end_seconds
                .observe((committed_at - ts).max(0) as f64 / 1000.0);
        }
        Ok(())
    }
}

fn input_timestamp(m: &BorrowedMessage<'_>) -> Option<i64> {
    let headers = m.headers()?;
    let h = headers.iter().find(|h| h.key == HDR_INPUT_TS)?;
    std::str::from_utf8(h.value?).ok()?.parse().ok()
}
