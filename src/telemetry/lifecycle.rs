//! What happens to a stage's clients and roles: each event writes its log line and counts its
//! metric together, so the two cannot disagree. `docs/alerts.md` says which ones need an
//! operator.

use super::register;
use prometheus::{
    exponential_buckets, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec,
    Opts, Registry,
};

#[derive(Clone)]
pub struct Lifecycle {
    fenced: IntCounterVec,
    producer_renewals: IntCounterVec,
    consumer_losses: IntCounterVec,
    takeovers: IntCounter,
    group_settlements: IntCounterVec,
    seals: IntCounterVec,
    rebuilds: IntCounter,
    takeover_seconds: Histogram,
    watchdog_expiries: IntCounterVec,
    stage_silent: GaugeVec,
    watchdog_bound: Gauge,
}

/// Why a stage made a new transactional producer (a bounded label set).
#[derive(Clone, Copy, Debug)]
pub enum Renewal {
    /// The coordinator's transaction was aborted: it takes over again, which checks its state
    /// against the changelog.
    Aborted,
    /// librdkafka reported every broker connection lost since the last commit.
    BrokersLost,
    /// The producer failed fatally (or its last commit's outcome is unknown).
    Failed,
    /// Another producer with the same transactional id took over.
    Fenced,
    /// Writing the committed batch to RocksDB failed.
    StateWrite,
}

impl Renewal {
    pub fn as_str(self) -> &'static str {
        match self {
            Renewal::Aborted => "aborted",
            Renewal::BrokersLost => "brokers_lost",
            Renewal::Failed => "failed",
            Renewal::Fenced => "fenced",
            Renewal::StateWrite => "state_write",
        }
    }
}

impl Lifecycle {
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            fenced: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "rallypoint_producer_fenced_total",
                        "Times a stage's transactional producer was fenced by a newer one with the same transactional id.",
                    ),
                    &["stage"],
                ),
            )?,
            producer_renewals: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "rallypoint_producer_renewals_total",
                        "New transactional producers a stage made in place of a failed one, per reason.",
                    ),
                    &["stage", "reason"],
                ),
            )?,
            consumer_losses: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "rallypoint_consumer_losses_total",
                        "Times a stage's consumer lost its group membership for good and the stage started over with a new one.",
                    ),
                    &["stage"],
                ),
            )?,
            group_settlements: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "rallypoint_group_settlements_total",
                        "Times the broker kept a stage's committed offsets unstable past the transaction timeout and the stage committed an offsets-only transaction of its own producer to settle them.",
                    ),
                    &["stage"],
                ),
            )?,
            seals: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "rallypoint_hanging_transactions_sealed_total",
                        "Times a stage found records of its own producer id without an outcome (a hanging transaction) where it writes, and aborted them with a transaction of its own before writing.",
                    ),
                    &["stage"],
                ),
            )?,
            rebuilds: register(
                reg,
                IntCounter::new(
                    "rallypoint_state_rebuilds_total",
                    "Times the coordinator found its RocksDB state ahead of what the changelog committed (a commit whose markers the broker dropped, then aborted) and rebuilt it from the changelog.",
                ),
            )?,
            takeovers: register(
                reg,
                IntCounter::new(
                    "rallypoint_coordinator_takeovers_total",
                    "Times this instance took the coordinator role (at start, after a failover, or after its producer failed).",
                ),
            )?,
            takeover_seconds: register(
                reg,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "rallypoint_coordinator_takeover_seconds",
                        "From the journal assigned to this instance to its coordinator running: fencing, changelog restore, rewind.",
                    )
                    .buckets(exponential_buckets(0.05, 2.0, 12)?),
                ),
            )?,
            watchdog_expiries: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "rallypoint_watchdog_expiries_total",
                        "Kafka client calls that outlived their bound and made the watchdog end an earlier run of this process (recorded in the state folder, counted at the next start).",
                    ),
                    &["call"],
                ),
            )?,
            stage_silent: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "rallypoint_stage_silent_seconds",
                        "Seconds since the stage's last sign of life (its loop went round, a retry, a client call began or returned). Past rallypoint_watchdog_bound_seconds it is stuck.",
                    ),
                    &["stage"],
                ),
            )?,
            watchdog_bound: register(
                reg,
                Gauge::new(
                    "rallypoint_watchdog_bound_seconds",
                    "The longest a stage may wait in one Kafka client call before the watchdog ends the process with status 70.",
                ),
            )?,
        })
    }

    pub fn fenced(&self, stage: &str, why: &dyn std::fmt::Display) {
        self.fenced.with_label_values(&[stage]).inc();
        tracing::warn!(stage, %why, "producer fenced by a newer one with the same transactional id");
    }

    pub fn producer_renewed(&self, stage: &str, reason: Renewal, why: &dyn std::fmt::Display) {
        self.producer_renewals
            .with_label_values(&[stage, reason.as_str()])
            .inc();
        tracing::warn!(stage, reason = reason.as_str(), error = %why, "making a new transactional producer");
    }

    pub fn consumer_lost(&self, stage: &str, why: &dyn std::fmt::Display) {
        self.consumer_losses.with_label_values(&[stage]).inc();
        tracing::warn!(stage, error = %why, "starting the stage over with a new consumer");
    }

    pub fn group_settled(&self, stage: &str, waited: std::time::Duration) {
        self.group_settlements.with_label_values(&[stage]).inc();
        tracing::warn!(
            stage,
            waited_s = waited.as_secs(),
            "the broker kept the group's committed offsets unstable past the transaction timeout: committed an offsets-only transaction of this producer to settle them"
        );
    }

    pub fn sealed(&self, stage: &str, partitions: &str, outcome: &dyn std::fmt::Debug) {
        self.seals.with_label_values(&[stage]).inc();
        tracing::warn!(
            stage,
            partitions,
            ?outcome,
            "a hanging transaction: records without an outcome past the transaction timeout; ending them with a transaction of this stage's producer (docs/operations.md, \"Hanging transactions\")"
        );
    }

    /// The coordinator's state holds a batch the changelog does not (see
    /// `kafka::restore::last_committed`): it is rebuilt from the changelog's start.
    pub fn state_ahead(&self, state: Option<i64>, changelog: Option<i64>) {
        self.rebuilds.inc();
        tracing::warn!(
            stage = "coordinator",
            state_journal_next = ?state,
            changelog_journal_next = ?changelog,
            "the state is ahead of what the changelog committed (a commit whose transaction markers the broker dropped ended aborted): rebuilding it from the changelog (docs/operations.md, \"Hanging transactions\")"
        );
    }

    pub fn took_over(&self, seconds: f64) {
        self.takeovers.inc();
        self.takeover_seconds.observe(seconds);
    }

    /// Counts the expiries an earlier run recorded (see `watchdog::record_expiries_in`).
    pub fn watchdog_expired_before(&self, calls: &[String]) {
        for call in calls {
            self.watchdog_expiries.with_label_values(&[call]).inc();
            tracing::warn!(
                %call,
                "the previous run of this process was ended by the watchdog: this Kafka client call had not returned within its bound"
            );
        }
    }

    /// The watchdog's figures, read when `/metrics` is scraped.
    pub fn observe_watchdog(&self, bound: std::time::Duration) {
        self.watchdog_bound.set(bound.as_secs_f64());
        for (stage, silent) in crate::kafka::watchdog::silences() {
            self.stage_silent
                .with_label_values(&[&stage])
                .set(silent.as_secs_f64());
        }
    }
}
