//! Metrics and logs. Metrics are registered into a [`Registry`] handed in from `main` (tests get
//! their own); names follow `rallypoint_<name>_<unit>` and label values are bounded sets
//! (stage, reject reason, decision type, topic and partition of our own topics, store).

pub mod events;
mod lifecycle;
mod mission;
mod store;

pub use events::Tell;
pub use lifecycle::{Lifecycle, Renewal};
pub use mission::MissionGauges;
pub use store::StoreGauges;

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Every metric of the process, private: what changes them are the events of [`events`], each
/// told with [`Metrics::tell`], which write their log line and update their metrics together,
/// and the observers below, which read figures when `/metrics` is scraped.
#[derive(Clone)]
pub struct Metrics {
    records_in: IntCounterVec,
    records_out: IntCounterVec,
    dead_letters: IntCounterVec,
    decisions: IntCounterVec,
    commit_seconds: HistogramVec,
    aborted: IntCounterVec,
    end_to_end_seconds: Histogram,
    consumer_lag: IntGaugeVec,
    /// RocksDB's figures about each state store.
    store: StoreGauges,
    /// Open incidents, requests, capacity and the correlation, from the coordinator's state.
    mission: MissionGauges,
    /// 1 while a stage is ready (what `/readyz` answers), set when `/metrics` is scraped.
    stage_ready: IntGaugeVec,
    /// 1 while a stage holds its input and processes it; 0 while it stands by or starts.
    stage_active: IntGaugeVec,
    /// Read from the watchdog when `/metrics` is scraped.
    client_call_wait: prometheus::Gauge,
    restored_records: IntCounterVec,
    registry_unavailable: IntCounterVec,
    /// Fencings, new producers and consumers, take-overs, the watchdog.
    lifecycle: Lifecycle,
}

/// Registers `c` (once built) in `reg`.
pub(crate) fn register<C: prometheus::core::Collector + Clone + 'static>(
    reg: &Registry,
    c: prometheus::Result<C>,
) -> prometheus::Result<C> {
    let c = c?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    register(reg, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauges(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    register(reg, IntGaugeVec::new(Opts::new(name, help), labels))
}

impl Metrics {
    /// Registers every metric in `reg`; an error if one is malformed or registered twice.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        let latency = exponential_buckets(0.001, 2.0, 16)?;
        Ok(Self {
            commit_seconds: register(
                reg,
                HistogramVec::new(
                    HistogramOpts::new(
                        "rallypoint_transaction_commit_seconds",
                        "Time to commit one Kafka transaction.",
                    )
                    .buckets(latency.clone()),
                    &["stage"],
                ),
            )?,
            end_to_end_seconds: register(
                reg,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "rallypoint_end_to_end_latency_seconds",
                        "From an input record's timestamp to the commit of the decisions it caused.",
                    )
                    .buckets(latency),
                ),
            )?,
            consumer_lag: gauges(
                reg,
                "rallypoint_consumer_lag_records",
                "Records between the stage's position and the last stable offset of a partition.",
                &["stage", "topic", "partition"],
            )?,
            stage_ready: gauges(
                reg,
                "rallypoint_stage_ready",
                "1 while the stage is ready: active, or standing by for another instance.",
                &["stage"],
            )?,
            stage_active: gauges(
                reg,
                "rallypoint_stage_active",
                "1 while the stage holds its input and processes it; 0 while it stands by.",
                &["stage"],
            )?,
            client_call_wait: register(
                reg,
                prometheus::Gauge::new(
                    "rallypoint_kafka_client_call_wait_seconds",
                    "How long the longest blocking Kafka client call now in flight has waited (0: none). \
                     Past the call's bound (its timeout + 30 s) the watchdog ends the process with status 70.",
                ),
            )?,
            records_in: counter(
                reg,
                "rallypoint_records_in_total",
                "Records consumed, per stage.",
                &["stage"],
            )?,
            records_out: counter(
                reg,
                "rallypoint_records_out_total",
                "Records produced, per stage and kind.",
                &["stage", "kind"],
            )?,
            dead_letters: counter(
                reg,
                "rallypoint_dead_letters_total",
                "Records sent to the dead-letter topic, per reason.",
                &["stage", "reason"],
            )?,
            decisions: counter(
                reg,
                "rallypoint_decisions_total",
                "Decisions taken, per type (counted once, not per audience).",
                &["type"],
            )?,
            aborted: counter(
                reg,
                "rallypoint_transactions_aborted_total",
                "Transactions aborted and rewound.",
                &["stage"],
            )?,
            restored_records: counter(
                reg,
                "rallypoint_changelog_restored_records_total",
                "Changelog records applied to RocksDB at start.",
                &["store"],
            )?,
            registry_unavailable: counter(
                reg,
                "rallypoint_schema_registry_unavailable_total",
                "Times a stage paused because the schema registry could not tell what a record's schema id is; the record is read again, not dead-lettered.",
                &["stage"],
            )?,
            store: StoreGauges::register(reg)?,
            mission: MissionGauges::register(reg)?,
            lifecycle: Lifecycle::register(reg)?,
        })
    }

    /// Tells one event: its log line and its metrics.
    pub fn tell(&self, event: impl Tell) {
        event.tell(self);
    }

    /// Fencings, new producers and consumers, take-overs, seals, the watchdog.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// RocksDB's figures about a stage's store.
    pub fn observe_store(&self, stage: &str, figures: &crate::store::StoreFigures) {
        self.store.observe(stage, figures);
    }

    /// The mission figures, read from the coordinator's committed state.
    pub fn observe_mission<S: rallypoint_core::store::Store + ?Sized>(
        &self,
        store: &S,
    ) -> Result<(), rallypoint_core::store::StoreError> {
        self.mission.observe(store)
    }

    /// What is read when `/metrics` is scraped: each stage's phase, the longest client call in
    /// flight, and the watchdog's figures.
    pub fn observe_scrape(
        &self,
        stages: &[(&'static str, std::sync::Arc<crate::status::StageStatus>)],
        watchdog_bound: std::time::Duration,
    ) {
        for (stage, status) in stages {
            let phase = status.get();
            self.stage_ready
                .with_label_values(&[stage])
                .set(i64::from(phase.is_ready()));
            self.stage_active
                .with_label_values(&[stage])
                .set(i64::from(phase == crate::status::Phase::Active));
        }
        let waited = crate::kafka::watchdog::longest_wait().map_or(0.0, |(_, d)| d.as_secs_f64());
        self.client_call_wait.set(waited);
        self.lifecycle.observe_watchdog(watchdog_bound);
    }
}

/// Installs the log subscriber: human-readable by default, JSON lines on request.
pub fn init_logs(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.level));
    // Colours only for a person at a terminal: a log file or collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
