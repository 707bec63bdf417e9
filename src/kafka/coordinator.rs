//! Coordinator: folds the journal into state with the pure core and publishes what it decides.
//!
//! Per batch: apply each journal event into an in-memory overlay over RocksDB (the batch's
//! entities and picture tallies held typed until the batch ends, then written into it: the
//! working set, `rallypoint_core::working`), produce the
//! decisions, dead letters and the overlay as changelog records, commit them with the journal
//! offset in one transaction, and only then write the overlay to RocksDB with the changelog
//! offset it reaches. An abort drops the overlay and rewinds the journal: RocksDB never holds
//! an uncommitted change.
//!
//! # Active and standing by
//! Every coordinator instance joins one consumer group on the journal, which has a single
//! partition, so exactly one holds it: that one is *active*. The others *stand by*: they
//! follow the changelog into their own RocksDB and have no producer. When the group hands the
//! journal to an instance (at start, or when the active one's session expires), it takes
//! over: it pauses the journal, initialises the shared transactional id (which fences the
//! previous holder, zombie or not, and aborts its open transaction), restores the changelog
//! tail, and resumes from the journal offset committed with that changelog. A fenced or
//! failed producer takes the same path, so every recovery ends in the same known state.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rallypoint_core::decision::Audience;
use rallypoint_core::store::{Overlay, StoreMut};
use rallypoint_core::Working;
use rallypoint_core::{apply_with, CoreConfig, Output};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};

use super::batch::{round, Round, Stage};
use super::context::StageContext;
use super::dead_letter::{self, Original};
use super::restore::Follower;
use super::stage::{Recovery, Role, StageError};
use super::txn::{SealOutcome, Transactional};
use super::{Backoff, BatchOffsets, Handled, Topics, HDR_INPUT_TS};
use crate::codec::Codec;
use crate::config::Config;
use crate::query::Asked;
use crate::registry::Schemas;
use crate::status::{Phase, StageStatus};
use crate::stop::Stop;
use crate::store::RocksStore;
use crate::telemetry::events::{ChangelogApplied, DecisionsCommitted, Kind, Sent};
use crate::telemetry::{Metrics, Renewal};

const STAGE: &str = "coordinator";

/// The state key of the next journal offset to read, written with every batch's changelog
/// records, so that it commits in the same transaction as the decisions. A take-over resumes
/// the journal from it, and needs nothing from the consumer group: the group's committed offset
/// is written too (for lag tools), but a broker can leave it unreadable. A transaction whose
/// offset commit never got its marker (seen after broker SIGKILLs) makes every `read_committed`
/// offset fetch of the group fail with UNSTABLE_OFFSET_COMMIT for good. The changelog is the
/// truth; the group's offset is read only when the state holds no position yet (a state written
/// before this key existed).
pub const JOURNAL_NEXT: &[u8] = b"p/journal_next";
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
    /// RocksDB writes that failed after a commit, to bound the takeovers that repair them.
    write_failures: std::sync::Mutex<super::WriteFailures>,
    /// This process applied commits of its own to the state since it last checked it against
    /// the changelog (true at start: see [`Coordinator::verify_state`]).
    unverified: std::sync::atomic::AtomicBool,
}

/// What one batch must do once its transaction has committed.
#[derive(Default)]
struct Pending {
    overlay: Overlay,
    /// The batch's working set (its entities and picture tallies, typed); into the overlay
    /// before the commit.
    working: Working,
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
            write_failures: Default::default(),
            unverified: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Answers the query API from this coordinator's state.
    pub fn with_queries(mut self, queries: Receiver<Asked>) -> Self {
        self.queries = Some(queries);
        self
    }

    /// RocksDB's and the mission's figures into the metrics.
    fn observe(&self, store: &RocksStore) {
        self.metrics.observe_store(STAGE, &store.figures());
        if let Err(e) = self.metrics.observe_mission(store) {
            tracing::warn!(error = %e, "reading the mission figures failed");
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.config.state_dir.join("coordinator")
    }

    fn codec(&self) -> &Codec {
        self.schemas.codec()
    }

    pub fn run(&self, stop: &Stop, status: &StageStatus) -> anyhow::Result<()> {
        if !self.schemas.register_patiently(STAGE, stop)? {
            return Ok(());
        }
        super::run_again_when_consumer_lost(STAGE, stop, status, self.metrics.lifecycle(), || {
            self.serve(stop, status)
        })
    }

    fn serve(&self, stop: &Stop, status: &StageStatus) -> Result<(), StageError> {
        status.set(Phase::Starting);
        let mut store =
            RocksStore::open(&self.state_path()).context("opening the RocksDB state")?;
        let consumer: BaseConsumer<StageContext> =
            super::consumer_config(&self.config, "rallypoint-coordinator")
                .create_with_context(
                    StageContext::new(STAGE, self.metrics.clone())
                        .positions_own(self.topics.journal()),
                )
                .context("creating the coordinator consumer")?;
        // Closed under the watchdog when this function returns, however it returns.
        let consumer = super::watchdog::Watched::new(
            consumer,
            "consumer_close",
            self.config.kafka.session_timeout,
        );
        consumer
            .subscribe(&[&self.topics.journal()])
            .context("subscribing to the journal")?;
        self.observe(&store);
        let mut figures_read = Instant::now();
        let mut mode = Mode::Standby {
            follower: None,
            since_fenced: None,
        };
        let mut backoff = Backoff::default();
        while !stop.is_stopped() {
            super::watchdog::beat();
            StageContext::fatal(&consumer)?;
            if figures_read.elapsed() >= FIGURES_EVERY {
                self.observe(&store);
                figures_read = Instant::now();
            }
            if let Some(rx) = &self.queries {
                crate::query::answer_waiting(rx, &store, self.core.picture.top);
            }
            mode = match mode {
                Mode::Standby {
                    follower,
                    since_fenced,
                } => self.stand_by(&consumer, &mut store, status, follower, since_fenced, stop)?,
                Mode::Active(active) => {
                    self.work(&consumer, &mut store, active, &mut backoff, stop)?
                }
            };
        }
        if let Mode::Active(mut active) = mode {
            active.txn.abort()?;
        }
        Ok(())
    }

    /// One round of standing by: keeps the group membership alive and the state close to the
    /// changelog's end, and takes over once the group hands this instance the journal.
    fn stand_by(
        &self,
        consumer: &BaseConsumer<StageContext>,
        store: &mut RocksStore,
        status: &StageStatus,
        follower: Option<Follower>,
        since_fenced: Option<Instant>,
        stop: &Stop,
    ) -> Result<Mode, StageError> {
        // A record here means the journal was assigned; it is read again after the takeover.
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
            if let rdkafka::error::KafkaError::MessageConsumptionFatal(_) = e {
                return Err(consumer.context().lost(&e).into());
            }
            consumer.context().consumer_error(&e);
        }
        consumer.context().take_revoked();
        // After being fenced, a holder that still thinks it owns the journal may be the zombie:
        // it waits one session, in which a stale membership is found out, before taking over.
        let patient = since_fenced.is_none_or(|t| t.elapsed() >= self.config.kafka.session_timeout);
        if self.holds_journal(consumer)? && patient {
            drop(follower);
            return self.take_over(consumer, store, status, stop);
        }
        if consumer.context().has_joined() {
            status.set(Phase::Standby);
        }
        let mut follower = match follower {
            Some(f) => f,
            None => Follower::new(&self.config, &self.topics.changelog(), store)?,
        };
        let applied = follower.follow(store, Duration::from_millis(50))?;
        self.metrics.tell(ChangelogApplied {
            store: STAGE,
            records: applied as u64,
        });
        Ok(Mode::Standby {
            follower: Some(follower),
            since_fenced,
        })
    }

    fn holds_journal(&self, consumer: &BaseConsumer<StageContext>) -> anyhow::Result<bool> {
        let held = consumer.assignment()?;
        Ok(held.find_partition(&self.topics.journal(), 0).is_some())
    }

    /// Fences the previous holder, restores the changelog tail, and resumes the journal from
    /// its committed offset. Back to standing by if the journal is revoked meanwhile.
    fn take_over(
        &self,
        consumer: &BaseConsumer<StageContext>,
        store: &mut RocksStore,
        status: &StageStatus,
        stop: &Stop,
    ) -> Result<Mode, StageError> {
        let started = Instant::now();
        status.set(Phase::Restoring);
        tracing::info!(stage = STAGE, "journal assigned: taking over");
        let held = consumer
            .assignment()
            .map_err(StageError::client("reading the assignment"))?;
        consumer
            .pause(&held)
            .map_err(StageError::client("pausing the journal"))?;
        let changelog = self.topics.changelog();
        let lifecycle = self.metrics.lifecycle();
        // Settling can outlast the group's poll interval: the journal is paused, so polling
        // returns nothing, and keeps the membership (a lapsed one hands the journal to the
        // other instance, whose takeover this one's producers would fence back).
        let keep_alive = || {
            let _ = consumer.poll(Duration::ZERO);
        };
        let settled = super::settled::with_settled_producer(STAGE, lifecycle, stop, || {
            let mut txn = Transactional::new(
                &self.config,
                "rallypoint-coordinator",
                self.topics.changelog(),
                stop,
            )?;
            crate::fault::point("coordinator.takeover");
            let outputs = self.outputs();
            let ends =
                super::settled::settled(&self.config, &outputs, stop, &keep_alive, |hanging| {
                    let outcome = self.seal_outcome(hanging, store, stop)?;
                    lifecycle.sealed(STAGE, &super::settled::named(hanging), &outcome);
                    Ok(txn.seal(hanging, consumer, &outcome)?)
                })?;
            Ok((txn, ends))
        });
        let (txn, ends) = match settled {
            Ok(settled) => settled,
            // Another instance took the journal over meanwhile: it is the active one.
            Err(StageError::Fenced(why)) => {
                tracing::info!(stage = STAGE, why, "fenced while taking over: standing by");
                return Ok(Mode::Standby {
                    follower: None,
                    since_fenced: Some(Instant::now()),
                });
            }
            Err(e) => return Err(e),
        };
        if self.unverified.load(Ordering::SeqCst) {
            self.verify_state(store, stop)?;
            self.unverified.store(false, Ordering::SeqCst);
        }
        let restored = super::restore::restore(
            &self.config,
            &changelog,
            store,
            &self.metrics,
            ends.of(&changelog, 0),
            stop,
            || {
                // Keep the membership alive; the journal is paused, so nothing is returned.
                let _ = consumer.poll(Duration::ZERO);
            },
        )?;
        // A keep-alive poll above may have been the one that carried a fatal consumer error.
        StageContext::fatal(consumer)?;
        if consumer.context().take_revoked() || !self.holds_journal(consumer)? {
            tracing::info!(
                stage = STAGE,
                "journal revoked while taking over: standing by"
            );
            return Ok(Mode::Standby {
                follower: None,
                since_fenced: None,
            });
        }
        self.resume_journal(consumer, store, stop)?;
        status.set(Phase::Active);
        self.metrics
            .lifecycle()
            .took_over(started.elapsed().as_secs_f64());
        tracing::info!(
            stage = STAGE,
            restored,
            seconds = started.elapsed().as_secs_f64(),
            journal = %self.topics.journal(),
            "coordinator running"
        );
        Ok(Mode::Active(Active {
            txn,
            batch: BatchOffsets::default(),
        }))
    }

    /// Clears the state when it holds a batch the changelog does not: a commit this
    /// coordinator saw acknowledged, applied, and which then ended aborted because Kafka
    /// dropped its markers (by a seal, or by the abort of the producer's next transaction).
    /// The state records up to which changelog offset it reflects; the last journal position
    /// committed on the changelog before that offset must be the one it holds. Only this
    /// process's own commits can make it differ, so it is checked at the first takeover and
    /// after the process was active (docs/operations.md, "A commit that ended aborted").
    fn verify_state(&self, store: &mut RocksStore, stop: &Stop) -> anyhow::Result<()> {
        let covered = store.changelog_next()?;
        let on_changelog = super::restore::last_committed(
            &self.config,
            &self.topics.changelog(),
            JOURNAL_NEXT,
            covered,
            stop,
        )?
        .map(|v| position(&v))
        .transpose()?;
        let in_state = journal_next(store)?;
        if in_state != on_changelog {
            self.metrics.lifecycle().state_ahead(in_state, on_changelog);
            store.clear().context("clearing the state to rebuild it")?;
        }
        Ok(())
    }

    /// How to end the hanging transaction on `hanging`. Every record the coordinator writes
    /// names the journal offset it follows from (`rp.journal_offset`). A commit stands when it
    /// is on the changelog: so the first record without an outcome on each partition belongs
    /// to a commit that stands when its journal offset lies before the changelog's committed
    /// position, and the seal commits it. Otherwise (an open transaction the broker aborted,
    /// or a commit whose changelog records hang too) it aborts, and the batch is done again
    /// (docs/operations.md, "Hanging transactions").
    ///
    /// Only the changelog decides, never this instance's own state, even when the state
    /// applied the batch (Kafka acknowledged its commit): two instances taking over one after
    /// the other can each seal part of the same hanging transaction, and they must end it
    /// alike. The chaos test saw one abort a batch on one partition and the next, whose state
    /// held the batch, commit it on the others. An instance whose state holds a batch a seal
    /// aborted rebuilds it ([`Coordinator::verify_state`]).
    fn seal_outcome(
        &self,
        hanging: &[(String, i32)],
        store: &RocksStore,
        stop: &Stop,
    ) -> anyhow::Result<SealOutcome> {
        let changelog = self.topics.changelog();
        let end = super::settled::ends(&self.config, std::slice::from_ref(&changelog), stop)?
            .of(&changelog, 0);
        let on_changelog =
            super::restore::last_committed(&self.config, &changelog, JOURNAL_NEXT, end, stop)?
                .map(|v| position(&v))
                .transpose()?;
        // Logged for the operator; not evidence (see above).
        let in_state = journal_next(store)?;
        let known = on_changelog;
        let stamps: Vec<Option<i64>> =
            super::settled::first_open_headers(&self.config, hanging, stop)?
                .iter()
                .map(|h| {
                    super::settled::header_text(h.as_deref()?, super::txn::HDR_JOURNAL_OFFSET)?
                        .parse()
                        .ok()
                })
                .collect();
        let outcome = seal_outcome(known, &stamps, self.topics.journal());
        tracing::info!(
            stage = STAGE,
            ?stamps,
            ?on_changelog,
            ?in_state,
            ?outcome,
            "the hanging transaction's records and the journal positions known to be committed"
        );
        Ok(outcome)
    }

    /// Every topic this stage writes: the changelog first.
    fn outputs(&self) -> Vec<String> {
        let t = &self.topics;
        let mut all = vec![
            t.changelog(),
            t.coalition_decisions(),
            t.threat_picture(),
            t.dlq(),
        ];
        all.extend(self.config.nations.iter().map(|n| t.decisions(n)));
        all
    }

    /// Seeks the journal to the position the restored state holds (or, for a state without
    /// one, to the group's committed offset), and resumes it.
    fn resume_journal(
        &self,
        consumer: &BaseConsumer<StageContext>,
        store: &RocksStore,
        stop: &Stop,
    ) -> anyhow::Result<()> {
        let journal = self.topics.journal();
        let held = consumer.assignment()?;
        consumer.resume(&held)?;
        let Some(next) = journal_next(store)? else {
            return super::rewind_to_committed(consumer, stop, None);
        };
        let wait = Duration::from_secs(10);
        super::with_patience(
            "seeking the journal to the state's position",
            super::txn::PATIENCE,
            stop,
            || consumer.seek(&journal, 0, rdkafka::Offset::Offset(next), wait),
        )?;
        tracing::info!(
            stage = STAGE,
            topic = %journal,
            offset = next,
            "resuming the journal from the state's position"
        );
        Ok(())
    }

    /// One batch as the active coordinator: poll, apply, commit, then write RocksDB.
    fn work(
        &self,
        consumer: &BaseConsumer<StageContext>,
        store: &mut RocksStore,
        mut active: Active,
        backoff: &mut Backoff,
        stop: &Stop,
    ) -> Result<Mode, StageError> {
        if !active.txn.is_open() && active.txn.lost_all_brokers() {
            // A new producer (see `Transactional::lost_all_brokers`), as after being fenced: a
            // new producer fences the holder, so a thawed zombie must first find out in one
            // session that the journal is no longer its own.
            self.metrics.lifecycle().producer_renewed(
                STAGE,
                Renewal::BrokersLost,
                &"every broker connection was lost: taking over again",
            );
            return Ok(Mode::Standby {
                follower: None,
                since_fenced: Some(Instant::now()),
            });
        }
        let mut this = Batch {
            coordinator: self,
            store,
            pending: Pending::default(),
        };
        match round(
            &mut this,
            consumer,
            &mut active.txn,
            &mut active.batch,
            backoff,
            stop,
        ) {
            Ok(Round::Revoked) => {
                tracing::info!(stage = STAGE, "journal revoked: standing by");
                Ok(standby())
            }
            Ok(Round::Committed(_)) => Ok(Mode::Active(active)),
            Err(e) => match e.recovery(Role::Single) {
                Recovery::StandBy => {
                    self.metrics.lifecycle().fenced(STAGE, &e);
                    tracing::warn!(stage = STAGE, "fenced by another coordinator: standing by");
                    Ok(Mode::Standby {
                        follower: None,
                        since_fenced: Some(Instant::now()),
                    })
                }
                Recovery::TakeOverAgain => {
                    // The producer is lost and the last commit's outcome unknown, or a commit
                    // is not in RocksDB: taking over again (new producer, restore, the state's
                    // position) settles both.
                    self.metrics
                        .lifecycle()
                        .producer_renewed(STAGE, e.renewal(), &e);
                    tracing::warn!(stage = STAGE, error = %e, "taking over again");
                    Ok(standby())
                }
                _ => Err(e),
            },
        }
    }

    fn process(
        &self,
        m: &BorrowedMessage<'_>,
        store: &RocksStore,
        pending: &mut Pending,
        txn: &mut Transactional,
    ) -> Result<Handled, StageError> {
        if super::txn::is_seal(m.key(), m.payload()) {
            return Ok(Handled::Done); // a commit seal's tombstone on the journal: no input
        }
        txn.stamp(Some(m.offset()));
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
        let outputs = apply_with(
            &mut pending.overlay.over(store),
            &mut pending.working,
            &self.core,
            &event,
        )
        .map_err(|e| self.state_failed("reading RocksDB", e))?;
        let input_ts = input_timestamp(m);
        let stamp = input_ts.map(|ts| ts.to_string());
        let mut decided = false;
        for output in outputs {
            if let Output::Rejected(rejection) = &output {
                self.dead_letter(m, rejection, txn)?;
                continue;
            }
            let records = crate::gate::record(
                &output,
                self.codec(),
                self.config.topics.decisions_format,
                &self.topics,
                stamp.as_deref(),
            );
            for record in &records {
                self.send(record, txn)?;
            }
            let count = records.len() as u64;
            match output {
                Output::Decision(routed) => {
                    self.metrics.tell(Sent {
                        stage: STAGE,
                        kind: Kind::Decision,
                        count,
                    });
                    if routed.audience == Audience::Coalition {
                        pending.decisions.push(routed.decision.type_name());
                    }
                    decided = true;
                }
                Output::Picture(_) => self.metrics.tell(Sent {
                    stage: STAGE,
                    kind: Kind::Picture,
                    count,
                }),
                Output::Hunt(_) => self.metrics.tell(Sent {
                    stage: STAGE,
                    kind: Kind::Hunt,
                    count,
                }),
                Output::Rejected(_) => {}
            }
        }
        if decided {
            if let Some(ts) = input_ts {
                pending.input_timestamps.push(ts);
            }
        }
        Ok(Handled::Done)
    }

    /// Sends a record the audience gate made; one without a value is a tombstone, sent with a
    /// null payload.
    fn send(
        &self,
        record: &crate::gate::OutRecord,
        txn: &mut Transactional,
    ) -> Result<(), StageError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        txn.send(
            &record.topic,
            Some(record.key.as_bytes()),
            record.value.as_deref(),
            Some(headers),
        )
    }

    fn dead_letter(
        &self,
        m: &BorrowedMessage<'_>,
        rejection: &rallypoint_core::Rejection,
        txn: &mut Transactional,
    ) -> Result<(), StageError> {
        let dlq = self.topics.dlq();
        let original = Original::carried(self.codec(), m);
        dead_letter::send_dead_letter(
            STAGE,
            self.codec(),
            &dlq,
            &self.metrics,
            txn,
            &original,
            rejection,
        )
    }

    fn commit(
        &self,
        consumer: &BaseConsumer<StageContext>,
        txn: &mut Transactional,
        batch: &BatchOffsets,
        store: &mut RocksStore,
        mut pending: Pending,
    ) -> Result<(), StageError> {
        let changelog = self.topics.changelog();
        pending.working.flush(&mut pending.overlay.over(store));
        if let Some(next) = batch.next(&self.topics.journal(), 0) {
            pending
                .overlay
                .over(store)
                .put(JOURNAL_NEXT, next.to_be_bytes().to_vec());
        }
        let last_offset = batch.next(&self.topics.journal(), 0).map(|next| next - 1);
        txn.stamp(last_offset);
        let records = super::changelog::pack(pending.overlay.iter(), last_offset.unwrap_or(-1));
        for (key, value) in &records {
            txn.send(&changelog, Some(key), value.as_deref(), None)?;
        }
        let changes = records.len();
        drop(records);
        crate::fault::point("coordinator.produced");
        super::commit_batch(STAGE, consumer, txn, batch, &self.metrics)?;
        crate::fault::point("coordinator.committed");
        let committed_at = super::now_ms();
        let last = txn.state().last_changelog_offset.load(Ordering::SeqCst);
        // A batch without state changes leaves the store's changelog position where it was.
        let next = if last >= 0 {
            last + 1
        } else {
            store
                .changelog_next()
                .map_err(|e| store_failed(AFTER_COMMIT, e))?
        };
        self.unverified.store(true, Ordering::SeqCst);
        store
            .apply(pending.overlay.drain(), next)
            .map_err(|e| self.state_failed(AFTER_COMMIT, e))?;
        self.metrics.tell(Sent {
            stage: STAGE,
            kind: Kind::Changelog,
            count: changes as u64,
        });
        self.metrics.tell(DecisionsCommitted {
            types: &pending.decisions,
            input_timestamps: &pending.input_timestamps,
            at: committed_at,
        });
        Ok(())
    }
}

/// A RocksDB read or write that failed: the changelog holds every committed batch, so taking
/// over again (restore from the changelog) puts the store right, if the disk allows.
fn store_failed(what: &str, e: rallypoint_core::store::StoreError) -> StageError {
    StageError::State(format!("{what}: {e}"))
}

const AFTER_COMMIT: &str = "writing RocksDB after the commit";

impl Coordinator {
    /// A RocksDB read failed, or a committed batch's write did (nothing of it was written):
    /// take over again, which restores the batch from the changelog; the
    /// [`super::WRITE_FAILURE_LIMIT`]-th such failure within [`super::WRITE_FAILURE_WINDOW`]
    /// stops the stage instead.
    fn state_failed(&self, what: &str, e: rallypoint_core::store::StoreError) -> StageError {
        let stop = self
            .write_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .failed(Instant::now());
        if stop {
            return StageError::Stop(format!(
                "{what}: {e}; {} state reads or writes failed within {} s: is the disk of {} \
                 full or broken?",
                super::WRITE_FAILURE_LIMIT,
                super::WRITE_FAILURE_WINDOW.as_secs(),
                self.state_path().display()
            ));
        }
        let line = if what == AFTER_COMMIT {
            "state write failed after the commit: restoring it from the changelog"
        } else {
            "state read failed: restoring the state from the changelog"
        };
        tracing::error!(stage = STAGE, error = %e, "{line}");
        store_failed(what, e)
    }
}

/// One batch of the active coordinator: the store it folds into and what the batch must do
/// once committed.
struct Batch<'a> {
    coordinator: &'a Coordinator,
    store: &'a mut RocksStore,
    pending: Pending,
}

impl Stage for Batch<'_> {
    const NAME: &'static str = STAGE;
    const ROLE: Role = Role::Single;

    fn config(&self) -> &crate::config::KafkaConfig {
        &self.coordinator.config.kafka
    }

    fn metrics(&self) -> &Metrics {
        &self.coordinator.metrics
    }

    fn handle(
        &mut self,
        m: &BorrowedMessage<'_>,
        txn: &mut Transactional,
    ) -> Result<Handled, StageError> {
        self.coordinator
            .process(m, self.store, &mut self.pending, txn)
    }

    /// Adds the changelog records, commits, then writes RocksDB.
    fn commit(
        &mut self,
        consumer: &BaseConsumer<StageContext>,
        txn: &mut Transactional,
        batch: &BatchOffsets,
    ) -> Result<(), StageError> {
        let pending = std::mem::take(&mut self.pending);
        self.coordinator
            .commit(consumer, txn, batch, self.store, pending)
    }
}

fn standby() -> Mode {
    Mode::Standby {
        follower: None,
        since_fenced: None,
    }
}

/// What the coordinator is doing between two rounds of its loop.
enum Mode {
    /// Another instance holds the journal (or none yet): follow the changelog.
    Standby {
        follower: Option<Follower>,
        /// When this instance was last fenced, if it was.
        since_fenced: Option<Instant>,
    },
    /// This instance holds the journal and a producer with the coordinator's transactional id.
    Active(Active),
}

struct Active {
    txn: Transactional,
    batch: BatchOffsets,
}

/// The next journal offset the state holds ([`JOURNAL_NEXT`]), if any.
pub fn journal_next<S: rallypoint_core::store::Store + ?Sized>(
    store: &S,
) -> anyhow::Result<Option<i64>> {
    let Some(bytes) = store.get(JOURNAL_NEXT)? else {
        return Ok(None);
    };
    position(&bytes).map(Some)
}

/// The outcome of a hanging transaction whose first open record on each partition follows from
/// the journal offsets `stamps`, when the journal position `known` is known to be committed:
/// commit when every one lies before it, else abort (see [`Coordinator::seal_outcome`]).
fn seal_outcome(known: Option<i64>, stamps: &[Option<i64>], journal: String) -> SealOutcome {
    match known {
        Some(next) if stamps.iter().all(|s| s.is_some_and(|o| o < next)) => SealOutcome::Commit {
            offsets: vec![(journal, 0, next)],
        },
        _ => SealOutcome::Abort,
    }
}

/// A journal position as the state and the changelog hold it (`JOURNAL_NEXT`'s value).
fn position(bytes: &[u8]) -> anyhow::Result<i64> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("a journal position is {} bytes, not 8", bytes.len()))?;
    Ok(i64::from_be_bytes(bytes))
}

fn input_timestamp(m: &BorrowedMessage<'_>) -> Option<i64> {
    let headers = m.headers()?;
    let h = headers.iter().find(|h| h.key == HDR_INPUT_TS)?;
    std::str::from_utf8(h.value?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{seal_outcome, SealOutcome};

    #[test]
    fn a_hanging_transaction_is_committed_only_when_its_batch_is_known_to_have_committed() {
        let j = || "journal".to_owned();
        let commit = SealOutcome::Commit {
            offsets: vec![(j(), 0, 40)],
        };
        // Records of a batch before position 40, which the changelog or the state holds.
        assert_eq!(seal_outcome(Some(40), &[Some(31), Some(39)], j()), commit);
        // A batch at or past it: the broker aborted it, or nobody saw its commit.
        assert_eq!(seal_outcome(Some(40), &[Some(40)], j()), SealOutcome::Abort);
        assert_eq!(
            seal_outcome(Some(40), &[Some(12), Some(41)], j()),
            SealOutcome::Abort
        );
        // A record that names no journal offset (not the coordinator's batch), or nothing known.
        assert_eq!(
            seal_outcome(Some(40), &[Some(12), None], j()),
            SealOutcome::Abort
        );
        assert_eq!(seal_outcome(None, &[Some(0)], j()), SealOutcome::Abort);
    }
}
