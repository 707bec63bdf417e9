//! No transaction left without an outcome on the partitions a stage writes, before it writes.
//!
//! After `init_transactions` no transaction of the stage's own transactional id is open (the
//! broker ended the previous holder's), and every other producer's ends within the transaction
//! timeout. A partition whose last stable offset stays below the end it had when the stage
//! looked holds a **hanging transaction**: records without an outcome. Kafka leaves one when it
//! drops a transaction's markers; it does so for partitions that have no leader while it writes
//! them, as during the controlled shutdown of a partition's last replica
//! (docs/operations.md, "Hanging transactions"). The stage's next transaction would adopt such
//! records (a marker ends every open transaction of its producer id on the partition) and give
//! them its own outcome, and a batch whose offsets were aborted could see its records committed
//! (journaled twice), or the reverse (lost). So each stage checks here first, and ends a
//! hanging transaction of its own producer id with one outcome everywhere, records and the
//! group's pending offsets alike: commit when it can tell that the batch committed, else abort,
//! and the batch is read and done again (see [`super::txn::SealOutcome`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::stage::StageError;
use super::watchdog::Watched;
use crate::config::Config;
use crate::stop::Stop;

/// How long a call or a wait for a leader may take, besides the transaction timeout.
const PATIENCE: Duration = Duration::from_secs(60);
/// The timeout of one watermark or metadata request.
const WAIT: Duration = Duration::from_secs(10);

fn reader(config: &Config, isolation: &str) -> anyhow::Result<Watched<BaseConsumer>> {
    let mut c = super::client_config(config);
    c.set("group.id", config.name("rallypoint-settled"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation);
    let consumer: BaseConsumer = c.create().context("creating a watermark reader")?;
    Ok(Watched::new(
        consumer,
        "consumer_close",
        super::CALL_TIMEOUT,
    ))
}

/// The partitions of `topics` and their ends when looked at: what must become stable.
pub struct Ends(BTreeMap<(String, i32), i64>);

impl Ends {
    /// The end of `topic`/`partition` when looked at.
    pub fn of(&self, topic: &str, partition: i32) -> i64 {
        self.0
            .get(&(topic.to_owned(), partition))
            .copied()
            .unwrap_or(0)
    }
}

/// Reads the end (high watermark) of every partition of `topics`.
pub fn ends(config: &Config, topics: &[String], stop: &Stop) -> anyhow::Result<Ends> {
    let uncommitted = reader(config, "read_uncommitted")?;
    let mut ends = BTreeMap::new();
    for topic in topics {
        let metadata = super::with_patience(
            &format!("reading the partitions of {topic}"),
            PATIENCE,
            stop,
            || uncommitted.fetch_metadata(Some(topic), WAIT),
        )?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        for p in partitions {
            let (_, high) = super::retry::with_patience_between(
                &format!("reading the high watermark of {topic}/{p}"),
                PATIENCE,
                stop,
                || uncommitted.fetch_watermarks(topic, p, WAIT),
                || refresh_metadata(&uncommitted, topic),
            )?;
            ends.insert((topic.clone(), p), high);
        }
    }
    Ok(Ends(ends))
}

/// The last stable offset of `topic`/`partition`, as a `read_committed` reader sees it: below
/// it every record has an outcome.
pub fn stable_end<C: rdkafka::consumer::ConsumerContext>(
    committed: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    stop: &Stop,
) -> anyhow::Result<i64> {
    let (_, stable) = super::retry::with_patience_between(
        &format!("reading the stable end of {topic}/{partition}"),
        PATIENCE,
        stop,
        || committed.fetch_watermarks(topic, partition, WAIT),
        || refresh_metadata(committed, topic),
    )?;
    Ok(stable)
}

/// Asks the broker for `topic`'s partitions and leaders. A client that has cached the topic
/// without a leader for its partition, as it can just after a broker restart, answers
/// watermark queries with `UnknownPartition` from that cache (seen for a whole minute in the
/// chaos test) until something refreshes it.
fn refresh_metadata<C: rdkafka::consumer::ConsumerContext>(client: &BaseConsumer<C>, topic: &str) {
    let _ = super::watchdog::watch("fetch_metadata", super::CALL_TIMEOUT, || {
        client.fetch_metadata(Some(topic), WAIT)
    });
}

/// Waits, for up to `patience`, until every partition of `ends` is stable up to its end;
/// returns those still open then.
pub fn open_after(
    config: &Config,
    ends: &Ends,
    patience: Duration,
    stop: &Stop,
    keep_alive: &dyn Fn(),
) -> anyhow::Result<Vec<(String, i32)>> {
    let committed = reader(config, "read_committed")?;
    let started = Instant::now();
    let mut open: Vec<(String, i32)> = ends.0.keys().cloned().collect();
    let mut logged = false;
    loop {
        let mut still = Vec::new();
        for (topic, p) in open {
            if stable_end(&committed, &topic, p, stop)? < ends.of(&topic, p) {
                still.push((topic, p));
            }
        }
        if still.is_empty() || started.elapsed() >= patience {
            return Ok(still);
        }
        if !logged {
            tracing::info!(
                partitions = %named(&still),
                "a transaction is still open where this stage writes: waiting for its outcome"
            );
            logged = true;
        }
        super::watchdog::beat();
        keep_alive();
        if stop.sleep(Duration::from_millis(100)) {
            anyhow::bail!("stopping while a transaction is open on {}", named(&still));
        }
        open = still;
    }
}

/// A record's headers: (key, value) pairs, a missing value as empty.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// The headers of the first record without an outcome on each of `partitions` (at its last
/// stable offset), `None` where none could be read: what a stage reads to tell whether the
/// batch a hanging transaction belonged to committed (see [`super::txn::SealOutcome`]).
pub fn first_open_headers(
    config: &Config,
    partitions: &[(String, i32)],
    stop: &Stop,
) -> anyhow::Result<Vec<Option<HeaderList>>> {
    use rdkafka::message::{Headers, Message};
    let committed = reader(config, "read_committed")?;
    let uncommitted = reader(config, "read_uncommitted")?;
    let mut out = Vec::new();
    for (topic, p) in partitions {
        let stable = stable_end(&committed, topic, *p, stop)?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(topic, *p, rdkafka::Offset::Offset(stable))?;
        uncommitted.assign(&tpl)?;
        let started = Instant::now();
        let mut first = None;
        while started.elapsed() < WAIT && !stop.is_stopped() {
            super::watchdog::beat();
            match uncommitted.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    first = Some(
                        m.headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| {
                                        (h.key.to_owned(), h.value.unwrap_or_default().to_vec())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    );
                    break;
                }
                Some(Err(e)) => tracing::debug!(error = %e, "reading a record without an outcome"),
                None => {}
            }
        }
        out.push(first);
    }
    Ok(out)
}

/// The text value of header `key` among `headers`.
pub fn header_text<'a>(headers: &'a [(String, Vec<u8>)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

pub fn named(partitions: &[(String, i32)]) -> String {
    partitions
        .iter()
        .map(|(t, p)| format!("{t}/{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a stage's new producer could not settle where it writes.
#[derive(Debug, thiserror::Error)]
pub enum Unsettled {
    /// A call failed on the way (the broker away again while sealing, a refused abort): a new
    /// producer looks again ([`with_settled_producer`]).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// Another producer's transaction hangs there, which only it or an operator can end.
    #[error("{0}")]
    Foreign(String),
    /// Another instance made a producer with the same transactional id meanwhile: it holds the
    /// stage's work now, and a new producer here would only fence it back.
    #[error("producer fenced: {0}")]
    Fenced(String),
}

impl From<StageError> for Unsettled {
    fn from(e: StageError) -> Self {
        match e {
            StageError::Fenced(why) => Self::Fenced(why),
            other => Self::Failed(other.into()),
        }
    }
}

/// Makes every partition of `topics` stable up to the end it had when this was called, and
/// returns those ends. A partition still open once every transaction of another producer must
/// have ended (the transaction timeout, and the broker's sweep) holds a hanging transaction: it
/// is `seal`ed (a transaction of this stage's producer on it, see
/// [`super::txn::Transactional::seal`]; the caller decides its outcome, logs and counts it) and
/// waited for once more; one that stays open even then is not this producer's ([`Unsettled::Foreign`]).
/// `keep_alive` is called while it waits, which can take longer than the group allows between
/// two polls: a stage whose input is paused polls there to keep its membership.
pub fn settled(
    config: &Config,
    topics: &[String],
    stop: &Stop,
    keep_alive: &dyn Fn(),
    seal: impl FnOnce(&[(String, i32)]) -> Result<(), Unsettled>,
) -> Result<Ends, Unsettled> {
    let ends = ends(config, topics, stop)?;
    let patience = config.kafka.transaction_timeout + Duration::from_secs(15);
    let hanging = open_after(config, &ends, patience, stop, keep_alive)?;
    if hanging.is_empty() {
        return Ok(ends);
    }
    seal(&hanging)?;
    let still = open_after(config, &ends, PATIENCE, stop, keep_alive)?;
    if still.is_empty() {
        return Ok(ends);
    }
    Err(Unsettled::Foreign(format!(
        "a hanging transaction: {} stayed open for {patience:?} and after this stage aborted \
         its own producer's records there: another producer's, which only it or an operator can \
         end. The next transaction here would give them its own outcome, so the stage stops. \
         Find it with `kafka-transactions.sh --bootstrap-server <broker> find-hanging \
         --broker-id <leader>` and end it with `kafka-transactions.sh abort` \
         (docs/operations.md, \"Hanging transactions\"; docs/alerts.md, RallypointNotReady)",
        named(&still)
    )))
}

/// How many producers in a row a stage makes to settle where it writes before it stops.
pub const ATTEMPTS: usize = 3;

/// Runs `attempt` (make a producer, [`settled`] where it writes) until it succeeds: when a
/// call failed on the way, as when the broker went away again while a seal aborted, the old
/// producer is dropped and a new one looks again, after a pause, up to [`ATTEMPTS`] times in
/// all. Another producer's hanging transaction ([`StageError::Stop`]), a stop, or the last
/// failure ([`StageError::Other`]) end the stage; a fence ends the attempts with
/// [`StageError::Fenced`], for the stage's recovery policy to decide (a coordinator stands
/// by: another instance holds the journal).
pub fn with_settled_producer<T>(
    stage: &'static str,
    lifecycle: &crate::telemetry::Lifecycle,
    stop: &Stop,
    mut attempt: impl FnMut() -> Result<T, Unsettled>,
) -> Result<T, StageError> {
    let mut made = 1;
    loop {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(Unsettled::Foreign(why)) => return Err(StageError::Stop(why)),
            Err(Unsettled::Fenced(why)) => return Err(StageError::Fenced(why)),
            Err(Unsettled::Failed(e)) if made >= ATTEMPTS || stop.is_stopped() => {
                return Err(StageError::Other(e.context(format!(
                    "{stage}: {made} producers in a row could not settle where it writes"
                ))))
            }
            Err(Unsettled::Failed(e)) => {
                made += 1;
                lifecycle.producer_renewed(
                    stage,
                    crate::telemetry::Renewal::Failed,
                    &format!("{e:#}; settling where the stage writes with a new producer"),
                );
                stop.sleep(Duration::from_secs(1));
            }
        }
    }
}
