//! Metrics and logs. Metrics are registered into a [`Registry`] handed in from `main` (tests get
//! their own); names follow `rallypoint_<name>_<unit>` and label values are bounded sets
//! (stage, reject reason, decision type, topic and partition of our own topics, store).

mod lifecycle;
mod mission;
mod store;

pub use lifecycle::{Lifecycle, Renewal};
pub use mission::MissionGauges;
pub use store::StoreGauges;

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};
use rallypoint_core::Rejection;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

#[derive(Clone)]
pub struct Metrics {
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub decisions: IntCounterVec,
    pub commit_seconds: HistogramVec,
    pub aborted: IntCounterVec,
    pub end_to_end_seconds: Histogram,
    pub consumer_lag: IntGaugeVec,
    /// RocksDB's figures about each state store.
    pub store: StoreGauges,
    /// Open incidents, requests, capacity and the correlation, from the coordinator's state.
    pub mission: MissionGauges,
    /// 1 while a stage is ready (what `/readyz` answers), set when `/metrics` is scraped.
    pub stage_ready: IntGaugeVec,
    /// 1 while a stage holds its input and processes it; 0 while it stands by or starts.
    pub stage_active: IntGaugeVec,
    /// Read from the watchdog when `/metrics` is scraped.
    pub client_call_wait: prometheus::Gauge,
    pub restored_records: IntCounterVec,
    pub registry_unavailable: IntCounterVec,
    /// Fencings, new producers and consumers, take-overs, the watchdog.
    pub lifecycle: Lifecycle,
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    reg.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

impl Metrics {
    pub fn register(reg: &Registry) -> Self {
        let latency = exponential_buckets(0.001, 2.0, 16).expect("valid buckets");
        let commit_seconds = HistogramVec::new(
            HistogramOpts::new(
                "rallypoint_transaction_commit_seconds",
                "Time to commit one Kafka transaction.",
            )
            .buckets(latency.clone()),
            &["stage"],
        )
        .expect("valid metric");
        reg.register(Box::new(commit_seconds.clone()))
            .expect("registered once");
        let end_to_end_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "rallypoint_end_to_end_latency_seconds",
                "From an input record's timestamp to the commit of the decisions it caused.",
            )
            .buckets(latency),
        )
        .expect("valid metric");
        reg.register(Box::new(end_to_end_seconds.clone()))
            .expect("registered once");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "rallypoint_consumer_lag_records",
                "Records between the stage's position and the last stable offset of a partition.",
            ),
            &["stage", "topic", "partition"],
        )
        .expect("valid metric");
        reg.register(Box::new(consumer_lag.clone()))
            .expect("registered once");
        let stage_ready = IntGaugeVec::new(
            Opts::new(
                "rallypoint_stage_ready",
                "1 while the stage is ready: active, or standing by for another instance.",
            ),
            &["stage"],
        )
        .expect("valid metric");
        reg.register(Box::new(stage_ready.clone()))
            .expect("registered once");
        let stage_active = IntGaugeVec::new(
            Opts::new(
                "rallypoint_stage_active",
                "1 while the stage holds its input and processes it; 0 while it stands by.",
            ),
            &["stage"],
        )
        .expect("valid metric");
        reg.register(Box::new(stage_active.clone()))
            .expect("registered once");
        let client_call_wait = prometheus::Gauge::new(
            "rallypoint_kafka_client_call_wait_seconds",
            "How long the longest blocking Kafka client call now in flight has waited (0: none). \
             Past the call's bound (its timeout + 30 s) the watchdog ends the process with status 70.",
        )
        .expect("valid metric");
        reg.register(Box::new(client_call_wait.clone()))
            .expect("registered once");
        Self {
            client_call_wait,
            records_in: counter(
                reg,
                "rallypoint_records_in_total",
                "Records consumed, per stage.",
                &["stage"],
            ),
            records_out: counter(
                reg,
                "rallypoint_records_out_total",
                "Records produced, per stage and kind.",
                &["stage", "kind"],
            ),
            dead_letters: counter(
                reg,
                "rallypoint_dead_letters_total",
                "Records sent to the dead-letter topic, per reason.",
                &["stage", "reason"],
            ),
            decisions: counter(
                reg,
                "rallypoint_decisions_total",
                "Decisions taken, per type (counted once, not per audience).",
                &["type"],
            ),
            aborted: counter(
                reg,
                "rallypoint_transactions_aborted_total",
                "Transactions aborted and rewound.",
                &["stage"],
            ),
            restored_records: counter(
                reg,
                "rallypoint_changelog_restored_records_total",
                "Changelog records applied to RocksDB at start.",
                &["store"],
            ),
            registry_unavailable: counter(
                reg,
                "rallypoint_schema_registry_unavailable_total",
                "Times a stage paused because the schema registry could not tell what a record's schema id is; the record is read again, not dead-lettered.",
                &["stage"],
            ),
            commit_seconds,
            end_to_end_seconds,
            consumer_lag,
            store: StoreGauges::register(reg),
            mission: MissionGauges::register(reg),
            stage_ready,
            stage_active,
            lifecycle: Lifecycle::register(reg).expect("lifecycle metrics registered once"),
        }
    }

    /// One rejected record: counted by reason and logged with its origin.
    pub fn rejected(&self, stage: &str, r: &Rejection, topic: &str, partition: i32, offset: i64) {
        self.dead_letters
            .with_label_values(&[stage, r.reason.as_str()])
            .inc();
        // The detail may quote the record (an id, a field's value) and the record may be RED:
        // it goes to the dead-letter record, which only operators read, and to debug logs.
        tracing::warn!(
            stage,
            reason = r.reason.as_str(),
            topic,
            partition,
            offset,
            "record rejected to the dead-letter topic"
        );
        tracing::debug!(stage, detail = %r.detail, topic, partition, offset, "rejection detail");
    }
}

impl Metrics {
    /// A stage pauses: a record's schema id cannot be looked up now. Counted and logged.
    pub fn waiting_for_registry(&self, stage: &str, why: &str) {
        self.registry_unavailable.with_label_values(&[stage]).inc();
        tracing::warn!(
            stage,
            error = why,
            "waiting for the schema registry; the record will be read again"
        );
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
