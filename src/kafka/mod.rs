//! Kafka adapters: topic names and creation, client settings, the transactional producer, and
//! the two stages, intake and coordinator. Each stage runs its poll-process-commit loop on a
//! thread of its own with a `BaseConsumer`, so the consumer is polled no matter how slow the
//! work is, and rebalance callbacks run where the loop can see them.

pub mod admin;
pub mod context;
pub mod coordinator;
pub mod dead_letter;
pub mod intake;
pub mod restore;
pub mod txn;
pub mod watchdog;

use rdkafka::ClientConfig;

use crate::config::Config;
use crate::stop::Stop;

/// Names of every topic Rallypoint reads or writes, under the configured namespace.
#[derive(Clone, Debug)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(config: &Config) -> Self {
        let ns = &config.kafka.namespace;
        Self {
            prefix: if ns.is_empty() {
                String::new()
            } else {
                format!("{ns}.")
            },
        }
    }

    pub fn input(&self, nation: &str, stream: rallypoint_core::event::Stream) -> String {
        format!("{}rrc.in.{nation}.{}", self.prefix, stream.suffix())
    }

    /// librdkafka subscription regex for every nation's input topics.
    pub fn input_pattern(&self) -> String {
        format!(
            "^{}rrc\\.in\\.[A-Z]{{3}}\\.(incidents|offers|responses)$",
            self.prefix.replace('.', "\\.")
        )
    }

    /// The topic name without the namespace prefix (what the contract names).
    pub fn strip<'t>(&self, topic: &'t str) -> &'t str {
        topic.strip_prefix(&self.prefix).unwrap_or(topic)
    }

    pub fn journal(&self) -> String {
        format!("{}rrc.internal.journal", self.prefix)
    }

    pub fn changelog(&self) -> String {
        format!("{}rrc.internal.changelog", self.prefix)
    }

    pub fn dlq(&self) -> String {
        format!("{}rrc.dlq", self.prefix)
    }

    pub fn decisions(&self, nation: &str) -> String {
        format!("{}rrc.out.{nation}.decisions", self.prefix)
    }

    pub fn coalition_decisions(&self) -> String {
        format!("{}rrc.out.coalition.decisions", self.prefix)
    }

    /// Compacted: the latest record per scope-window or campaign is the current picture.
    pub fn threat_picture(&self) -> String {
        format!("{}rrc.out.coalition.threat-picture", self.prefix)
    }
}

/// Settings every client shares; only validated values from our config reach librdkafka.
pub fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set(
            "client.id",
            format!("rallypoint-{}", config.kafka.instance_id),
        )
        .set("broker.address.family", "v4")
        .set("reconnect.backoff.max.ms", "2000");
    let s = &config.kafka.security;
    c.set("security.protocol", &s.protocol);
    if s.protocol.starts_with("sasl") {
        c.set("sasl.mechanisms", &s.sasl_mechanism)
            .set("sasl.username", &s.sasl_username)
            .set("sasl.password", &s.sasl_password.0);
    }
    for (key, path) in [
        ("ssl.ca.location", &s.ssl_ca_location),
        ("ssl.certificate.location", &s.ssl_certificate_location),
        ("ssl.key.location", &s.ssl_key_location),
    ] {
        if !path.is_empty() {
            c.set(key, path);
        }
    }
    c
}

/// Settings of a stage's consumer: manual, transactional offsets; committed input only.
///
/// Membership is static (`group.instance.id` from `kafka.instance_id`): a restarted instance
/// rejoins under its old identity and gets its partitions back at once, instead of waiting
/// for its previous session to expire. The cooperative-sticky assignor leaves partitions where
/// they are when an instance joins, so a standing-by coordinator does not take the journal
/// from an active one. `kafka.session_timeout` bounds how long a crashed instance's
/// partitions wait before another instance takes them.
pub fn consumer_config(config: &Config, group: &str) -> ClientConfig {
    let mut c = client_config(config);
    let session = config.kafka.session_timeout;
    let heartbeat = (session / 3).min(std::time::Duration::from_secs(1));
    c.set("group.id", config.name(group))
        .set("group.instance.id", &config.kafka.instance_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("session.timeout.ms", session.as_millis().to_string())
        .set("heartbeat.interval.ms", heartbeat.as_millis().to_string())
        .set("max.poll.interval.ms", "60000")
        // A read_committed fetch that found only uncommitted records waits this long before the
        // broker answers again, even when the transaction commits meanwhile: keep it short.
        .set("fetch.wait.max.ms", "10")
        // What librdkafka fetches ahead into the consumer's queue (64 MiB by default):
        // bounded, so that a backlog in the input costs little memory.
        .set("queued.max.messages.kbytes", "4096");
    c
}

/// The stage's consumer failed fatally: librdkafka reports `FENCED_INSTANCE_ID` when another
/// member joined with our static `group.instance.id`. That is usually this very process: after
/// a broker outage longer than the session, librdkafka rejoins under the same identity and its
/// older membership is fenced. The stage then starts over with a new consumer
/// ([`run_again_when_consumer_lost`]).
#[derive(Debug, thiserror::Error)]
#[error("consumer lost its group membership for good: {why}")]
pub struct ConsumerLost {
    pub why: String,
    /// Every broker connection was down since the last loss: the outage explains the loss
    /// (the broker forgot the membership or fenced its older self), so it does not count
    /// toward [`LOST_LIMIT`].
    pub after_outage: bool,
}

/// How many times in [`LOST_WINDOW`] a stage starts over after [`ConsumerLost`] before it
/// gives up: more means another process runs with the same `kafka.instance_id`.
const LOST_LIMIT: usize = 3;
const LOST_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// How many failed state writes in [`WRITE_FAILURE_WINDOW`] a stage takes: each of the others
/// is repaired by taking over again (the changelog holds what the write lost), the last stops
/// the stage. A disk that is full or broken does not mend by itself.
pub const WRITE_FAILURE_LIMIT: usize = 3;
pub const WRITE_FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// The recent failed state writes of a stage, to bound how often it recovers from them.
#[derive(Debug, Default)]
pub struct WriteFailures {
    at: std::collections::VecDeque<std::time::Instant>,
}

impl WriteFailures {
    /// Counts a write that failed at `now`; true when it is the [`WRITE_FAILURE_LIMIT`]-th
    /// within [`WRITE_FAILURE_WINDOW`], and the stage must stop.
    pub fn failed(&mut self, now: std::time::Instant) -> bool {
        self.at
            .retain(|t| now.saturating_duration_since(*t) < WRITE_FAILURE_WINDOW);
        self.at.push_back(now);
        self.at.len() >= WRITE_FAILURE_LIMIT
    }
}

/// Runs `body` (a stage: consumer, producer, loop) and runs it again when its consumer was
/// lost, unless that happens too often or the process is stopping.
pub fn run_again_when_consumer_lost(
    stage: &str,
    stop: &Stop,
    status: &crate::status::StageStatus,
    lifecycle: &crate::telemetry::Lifecycle,
    mut body: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut lost: std::collections::VecDeque<std::time::Instant> = Default::default();
    loop {
        let e = match body() {
            Err(e) if e.is::<ConsumerLost>() => e,
            other => return other,
        };
        if stop.is_stopped() {
            return Ok(());
        }
        lifecycle.consumer_lost(stage, &e);
        if e.downcast_ref::<ConsumerLost>()
            .is_some_and(|l| l.after_outage)
        {
            status.set(crate::status::Phase::Starting);
            stop.sleep(std::time::Duration::from_secs(1));
            continue;
        }
        lost.retain(|t| t.elapsed() < LOST_WINDOW);
        if lost.len() >= LOST_LIMIT {
            return Err(e.context(format!(
                "{stage}: consumer lost {LOST_LIMIT} times in {LOST_WINDOW:?}; does another process run with the same kafka.instance_id?"
            )));
        }
        lost.push_back(std::time::Instant::now());
        status.set(crate::status::Phase::Starting);
        stop.sleep(std::time::Duration::from_secs(1));
    }
}

/// The longest timeout a stage gives one client call outside a transaction (reading offsets,
/// seeking, watermarks, metadata): the watchdog's bound for them follows from it.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a broker call until it succeeds or `patience` runs out, each try under the watchdog. Right after topics are created,
/// or while a broker restarts, calls fail with errors such as NotLeaderForPartition that go
/// away by themselves: a stage waits them out instead of failing.
pub fn with_patience<T>(
    what: &str,
    patience: std::time::Duration,
    stop: &Stop,
    mut call: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> anyhow::Result<T> {
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        match watchdog::watch(what, CALL_TIMEOUT, &mut call) {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() < patience => {
                tracing::info!(error = %e, "{what}: not yet, retrying");
                if stop.sleep(wait) {
                    anyhow::bail!("{what}: stopping ({e})");
                }
                wait = (wait * 2).min(std::time::Duration::from_secs(2));
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("{what} (gave up after {patience:?})"))
                )
            }
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

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

    /// Seeks the consumer back to the start of this batch in every partition it still holds,
    /// after an abort. A partition whose seek fails would be read on past the aborted records,
    /// so a failure is an error.
    pub fn rewind<C: rdkafka::consumer::ConsumerContext>(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<C>,
    ) -> rdkafka::error::KafkaResult<()> {
        use rdkafka::consumer::Consumer;
        let held = consumer.assignment()?;
        for ((topic, partition), (first, _)) in &self.parts {
            if held.find_partition(topic, *partition).is_none() {
                continue;
            }
            let wait = std::time::Duration::from_secs(10);
            watchdog::watch("seek", wait, || {
                consumer.seek(topic, *partition, rdkafka::Offset::Offset(*first), wait)
            })?;
        }
        Ok(())
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

/// The growing pause of a stage that waits for something to come back (the schema
/// registry): 200 ms, doubling up to 10 s, and back to 200 ms once it has answered.
pub struct Backoff {
    next: std::time::Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(200);
    const MOST: std::time::Duration = std::time::Duration::from_secs(10);

    /// Sleeps the next pause, returning early once `stop` is set.
    pub fn wait(&mut self, stop: &Stop) {
        stop.sleep(self.next);
        self.next = (self.next * 2).min(Self::MOST);
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// After a round: waits if a record could not be handled yet (counting why), and starts
    /// the pauses over once everything could.
    pub fn after_round(
        &mut self,
        not_yet: Option<String>,
        stage: &str,
        metrics: &crate::telemetry::Metrics,
        stop: &Stop,
    ) {
        match not_yet {
            Some(why) => {
                metrics.waiting_for_registry(stage, &why);
                self.wait(stop);
            }
            None => self.reset(),
        }
    }
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
    config: &crate::config::KafkaConfig,
    batch: &mut BatchOffsets,
    mut handle: impl FnMut(&rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<Handled>,
) -> anyhow::Result<Polled> {
    use rdkafka::consumer::Consumer;
    use rdkafka::Message;
    let deadline = std::time::Instant::now() + config.commit_interval;
    while batch.records < config.max_batch {
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
                    .map_err(|e| anyhow::anyhow!("seeking back to a record to retry: {e}"))?;
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
) -> Result<(), txn::TxnError> {
    let started = std::time::Instant::now();
    txn.commit(&batch.to_commit(), consumer)?;
    metrics
        .commit_seconds
        .with_label_values(&[stage])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .records_in
        .with_label_values(&[stage])
        .inc_by(batch.records as u64);
    rdkafka::consumer::Consumer::context(consumer).progress(batch);
    Ok(())
}

/// After an abortable error: aborts the transaction (if still open), counts it, and rewinds
/// the consumer to the start of the batch to read it again. An error when the abort or the
/// rewind cannot be done: the caller then recovers as from a fatal error.
pub fn abort_and_rewind(
    stage: &'static str,
    consumer: &rdkafka::consumer::BaseConsumer<context::StageContext>,
    txn: &mut txn::Transactional,
    batch: &BatchOffsets,
    metrics: &crate::telemetry::Metrics,
    why: &str,
) -> Result<(), txn::TxnError> {
    tracing::warn!(stage, %why, records = batch.records, "transaction aborted; re-reading its input");
    txn.abort()?;
    metrics.aborted.with_label_values(&[stage]).inc();
    batch
        .rewind(consumer)
        .map_err(|e| txn::TxnError::Fatal(format!("rewind after abort failed: {e}")))?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    Ok(())
}

/// Seeks every partition the consumer holds to its committed offset (the start when none is
/// committed): where a new producer must resume after a fatal error, when the outcome of the
/// last transaction is unknown. Reading `read_committed`, librdkafka asks the broker for
/// stable offsets only, so a transaction still in doubt is settled first.
///
/// The broker can keep a group's offsets unstable for good: after broker restarts, Kafka 4.3's
/// group coordinator was seen to hold a committed transaction's offsets as pending, answering
/// every stable read with `UNSTABLE_OFFSET_COMMIT` (librdkafka retries until its timeout),
/// until the same producer id committed offsets for the group again. So when reading keeps
/// failing for `settle.after` (longer than the transaction timeout, after which no genuine
/// transaction can still be open), `settle.run` commits such a transaction, and reading goes
/// on (a settlement that fails is logged and tried again after as long). Without `settle`, reading fails after
/// [`txn::PATIENCE`].
pub fn rewind_to_committed(
    consumer: &rdkafka::consumer::BaseConsumer<context::StageContext>,
    stop: &Stop,
    mut settle: Option<Settle<'_>>,
) -> anyhow::Result<()> {
    use rdkafka::consumer::Consumer;
    let what = "reading committed offsets";
    let wait = std::time::Duration::from_secs(10);
    let started = std::time::Instant::now();
    let mut failing_since: Option<std::time::Instant> = None;
    let mut pause = std::time::Duration::from_millis(100);
    let committed = loop {
        match watchdog::watch(what, CALL_TIMEOUT, || consumer.committed(wait)) {
            Ok(c) => break c,
            Err(e) if started.elapsed() >= txn::PATIENCE => {
                return Err(anyhow::Error::new(e)
                    .context(format!("{what} (gave up after {:?})", txn::PATIENCE)))
            }
            Err(e) => {
                tracing::info!(error = %e, "{what}: not yet, retrying");
                let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                if let Some(settle) = settle.as_mut() {
                    if since.elapsed() >= settle.after {
                        if let Err(e) = (settle.run)(since.elapsed()) {
                            tracing::warn!(error = %e, "settling the group's offsets failed");
                        }
                        failing_since = None;
                    }
                }
                if stop.sleep(pause) {
                    anyhow::bail!("{what}: stopping ({e})");
                }
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
        }
    };
    for e in committed.elements() {
        let offset = match e.offset() {
            rdkafka::Offset::Offset(o) => rdkafka::Offset::Offset(o),
            _ => rdkafka::Offset::Beginning,
        };
        with_patience(
            "seeking to the committed offset",
            txn::PATIENCE,
            stop,
            || consumer.seek(e.topic(), e.partition(), offset, wait),
        )?;
        tracing::info!(
            stage = consumer.context().stage,
            topic = e.topic(),
            partition = e.partition(),
            ?offset,
            "resuming from the committed offset"
        );
    }
    Ok(())
}

/// What [`rewind_to_committed`] does when the broker keeps the group's offsets unstable.
pub struct Settle<'a> {
    /// How long reading must have failed.
    pub after: std::time::Duration,
    /// Commits an offsets-only transaction with the stage's producer; given how long reading
    /// has failed.
    pub run: &'a mut dyn FnMut(std::time::Duration) -> anyhow::Result<()>,
}

/// How long a stage lets the broker keep its group's offsets unstable before it settles them:
/// past the transaction timeout, by when the broker has aborted any transaction still open,
/// plus its check for such transactions (every 10 s by default).
pub fn settle_after(config: &crate::config::KafkaConfig) -> std::time::Duration {
    config.transaction_timeout + std::time::Duration::from_secs(15)
}

pub use dead_letter::{HDR_INPUT_TS, HDR_SOURCE};

#[cfg(test)]
mod tests {
    use super::{WriteFailures, WRITE_FAILURE_LIMIT, WRITE_FAILURE_WINDOW};
    use std::time::{Duration, Instant};

    #[test]
    fn the_third_failed_write_within_the_window_stops_the_stage() {
        let mut failures = WriteFailures::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(!failures.failed(t0));
        assert!(!failures.failed(t0 + minute));
        assert!(failures.failed(t0 + 2 * minute), "3 within 10 minutes");
        assert_eq!(WRITE_FAILURE_LIMIT, 3);
        assert_eq!(WRITE_FAILURE_WINDOW, 10 * minute);
    }

    #[test]
    fn failed_writes_spread_over_more_than_the_window_are_each_recovered_from() {
        let mut failures = WriteFailures::default();
        let t0 = Instant::now();
        let apart = WRITE_FAILURE_WINDOW / 2 + Duration::from_secs(1);
        for i in 0..10 {
            assert!(!failures.failed(t0 + apart * i), "failure {i}");
        }
    }
}
