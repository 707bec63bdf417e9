//! The things worth telling about a stage's work, one struct each: telling one
//! ([`super::Metrics::tell`]) writes its log line, if it has one, and updates its metrics
//! together, so the two cannot disagree. What happens to a stage's clients and roles is told by
//! [`super::Lifecycle`] the same way.

use rallypoint_core::Rejection;

use super::Metrics;

/// Something worth telling.
pub trait Tell {
    fn tell(self, m: &Metrics);
}

/// A batch committed: its records consumed, and how long the commit took.
pub struct BatchCommitted<'a> {
    pub stage: &'a str,
    pub records: usize,
    pub seconds: f64,
}

impl Tell for BatchCommitted<'_> {
    fn tell(self, m: &Metrics) {
        m.commit_seconds
            .with_label_values(&[self.stage])
            .observe(self.seconds);
        m.records_in
            .with_label_values(&[self.stage])
            .inc_by(self.records as u64);
    }
}

/// A batch's transaction aborted; its input is read again from the batch's start.
pub struct BatchAborted<'a> {
    pub stage: &'a str,
    pub records: usize,
    pub why: &'a str,
}

impl Tell for BatchAborted<'_> {
    fn tell(self, m: &Metrics) {
        m.aborted.with_label_values(&[self.stage]).inc();
        tracing::warn!(stage = self.stage, why = %self.why, records = self.records, "transaction aborted; re-reading its input");
    }
}

/// A batch whose commit's outcome is in doubt: aborted if open, and the input read again from
/// the group's committed offsets, which say whether it committed.
pub struct ResumedFromCommitted<'a> {
    pub stage: &'a str,
    pub why: &'a dyn std::fmt::Display,
}

impl Tell for ResumedFromCommitted<'_> {
    fn tell(self, m: &Metrics) {
        m.aborted.with_label_values(&[self.stage]).inc();
        tracing::warn!(stage = self.stage, error = %self.why, "resuming from the committed offsets");
    }
}

/// What a stage produces, by kind (a bounded set).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Journal,
    DeadLetter,
    Decision,
    Picture,
    /// Records on the members' hunt topics (one per member nation for each hunt update).
    Hunt,
    Changelog,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Journal => "journal",
            Kind::DeadLetter => "dlq",
            Kind::Decision => "decision",
            Kind::Picture => "picture",
            Kind::Hunt => "hunt",
            Kind::Changelog => "changelog",
        }
    }
}

/// Records produced.
pub struct Sent<'a> {
    pub stage: &'a str,
    pub kind: Kind,
    pub count: u64,
}

impl Tell for Sent<'_> {
    fn tell(self, m: &Metrics) {
        m.records_out
            .with_label_values(&[self.stage, self.kind.as_str()])
            .inc_by(self.count);
    }
}

/// The coordinator's batch committed: the decisions it took, by type (once each, not per
/// audience), and for each input that caused one, the time from its timestamp to `at`.
pub struct DecisionsCommitted<'a> {
    pub types: &'a [&'static str],
    pub input_timestamps: &'a [i64],
    /// When the batch committed, in milliseconds since the epoch.
    pub at: i64,
}

impl Tell for DecisionsCommitted<'_> {
    fn tell(self, m: &Metrics) {
        for t in self.types {
            m.decisions.with_label_values(&[t]).inc();
        }
        for ts in self.input_timestamps {
            m.end_to_end_seconds
                .observe((self.at - ts).max(0) as f64 / 1000.0);
        }
    }
}

/// Changelog records applied to a stage's RocksDB (a restore, or a standby following).
pub struct ChangelogApplied<'a> {
    pub store: &'a str,
    pub records: u64,
}

impl Tell for ChangelogApplied<'_> {
    fn tell(self, m: &Metrics) {
        m.restored_records
            .with_label_values(&[self.store])
            .inc_by(self.records);
    }
}

/// A partition's lag, from librdkafka's statistics.
pub struct ConsumerLag<'a> {
    pub stage: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub lag: i64,
}

impl Tell for ConsumerLag<'_> {
    fn tell(self, m: &Metrics) {
        m.consumer_lag
            .with_label_values(&[self.stage, self.topic, &self.partition.to_string()])
            .set(self.lag);
    }
}

/// One record rejected to the dead-letter topic: counted by reason and logged with its origin.
pub struct Rejected<'a> {
    pub stage: &'a str,
    pub rejection: &'a Rejection,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl Tell for Rejected<'_> {
    fn tell(self, m: &Metrics) {
        let Self {
            stage,
            rejection: r,
            topic,
            partition,
            offset,
        } = self;
        m.dead_letters
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

/// A stage pauses: a record's schema id cannot be looked up now; the record is read again.
pub struct WaitingForRegistry<'a> {
    pub stage: &'a str,
    pub why: &'a str,
}

impl Tell for WaitingForRegistry<'_> {
    fn tell(self, m: &Metrics) {
        m.registry_unavailable
            .with_label_values(&[self.stage])
            .inc();
        tracing::warn!(
            stage = self.stage,
            error = self.why,
            "waiting for the schema registry; the record will be read again"
        );
    }
}
