//! What every stage shares: the one error type a round of a stage can end with, and the one
//! recovery policy that says what happens next ([`StageError::recovery`]); starting over when
//! the consumer is lost; bounding failed state writes; waiting for something to come back.
//!
//! Both stages run the same round ([`super::batch::round`]: poll a batch, hand each record to
//! the stage, commit). A retriable error is dealt with inside the client call that met it
//! ([`super::txn`]); an abortable one aborts the open transaction inside the round. Every
//! error but a retriable one leaves the round, and the stage does what
//! [`StageError::recovery`] says, for its [`Role`]. Nothing decides by looking inside an
//! `anyhow` error.

use crate::stop::Stop;

/// How one round of a stage, or the stage itself, failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The transaction must be (or was) aborted; its input is read again.
    #[error("transaction aborted: {0}")]
    Abort(String),
    /// The commit was asked and failed, and was aborted since: whether the broker committed
    /// it first is unknown. The batch must not be read again from its start (it may be
    /// committed); the input resumes from what the broker says is committed.
    #[error("transaction outcome in doubt: {0}")]
    InDoubt(String),
    /// Another producer with our transactional id took over: this one is a zombie.
    #[error("producer fenced: {0}")]
    Fenced(String),
    /// The producer cannot go on: make a new one.
    #[error("producer failed fatally: {0}")]
    Fatal(String),
    /// The state store could not be read or written; for a write after a commit, the changelog
    /// holds the batch, so the stage takes over again (restoring from the changelog).
    #[error("state write failed: {0}")]
    State(String),
    /// The consumer lost its group membership for good.
    #[error(transparent)]
    ConsumerLost(#[from] ConsumerLost),
    /// The stage cannot go on (e.g. its state writes keep failing): it stops with this error,
    /// and the process exits non-zero.
    #[error("{0}")]
    Stop(String),
    /// Anything else, met while starting or taking over (creating a client, opening RocksDB,
    /// restoring): the stage stops, and the process exits non-zero.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// How a stage holds its work, which decides how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every instance works at once, each with a producer of its own (intake).
    Shared,
    /// One instance is active and the others stand by, sharing one transactional id
    /// (the coordinator).
    Single,
}

/// What a stage does after a round ended in an error: the one recovery policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The same producer (the transaction was aborted); the input resumes from the committed
    /// offsets, which say whether the transaction in doubt committed. Not from the aborted
    /// batch's start: had the broker dropped the previous commit's markers, the abort ended
    /// its records too, and the committed offsets say so (docs/operations.md, "Hanging
    /// transactions"). (Retriable errors never get here: the call is made again.)
    ResumeFromCommitted,
    /// A new producer, whose `init_transactions` settles what the old one left open; the input
    /// resumes from the committed offsets.
    RenewProducer,
    /// Another instance took the role over: stand by for a session (a thawed zombie finds out
    /// in it that the journal is no longer its own), then take over only if still assigned.
    StandBy,
    /// Take over again at once: a new producer (which fences an old one), the changelog tail
    /// restored into the state, the input resumed from the state's position.
    TakeOverAgain,
    /// Start the stage over with a new consumer (bounded: see [`run_again_when_consumer_lost`]).
    NewConsumer,
    /// Stop the stage: the process exits non-zero and its supervisor restarts it.
    Exit,
}

impl StageError {
    /// What the stage does next, for a stage of `role`.
    pub fn recovery(&self, role: Role) -> Recovery {
        match (self, role) {
            (Self::Abort(_) | Self::InDoubt(_), Role::Shared) => Recovery::ResumeFromCommitted,
            // The coordinator's truth is its changelog: a takeover restores what committed,
            // and rebuilds a state that holds more.
            (Self::Abort(_) | Self::InDoubt(_), Role::Single) => Recovery::TakeOverAgain,
            (Self::Fenced(_), Role::Single) => Recovery::StandBy,
            (Self::Fatal(_) | Self::State(_), Role::Single) => Recovery::TakeOverAgain,
            (Self::Fenced(_) | Self::Fatal(_) | Self::State(_), Role::Shared) => {
                Recovery::RenewProducer
            }
            (Self::ConsumerLost(_), _) => Recovery::NewConsumer,
            (Self::Stop(_) | Self::Other(_), _) => Recovery::Exit,
        }
    }

    /// The renewal reason the lifecycle metric counts for a new producer after this error.
    pub fn renewal(&self) -> crate::telemetry::Renewal {
        match self {
            Self::Abort(_) => crate::telemetry::Renewal::Aborted,
            Self::Fenced(_) => crate::telemetry::Renewal::Fenced,
            Self::State(_) => crate::telemetry::Renewal::StateWrite,
            _ => crate::telemetry::Renewal::Failed,
        }
    }

    /// A client call that failed where the stage cannot go on without it.
    pub fn client(what: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        move |e| Self::Other(anyhow::Error::new(e).context(what))
    }
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
/// lost ([`Recovery::NewConsumer`]), unless that happens too often or the process is stopping.
pub fn run_again_when_consumer_lost(
    stage: &str,
    stop: &Stop,
    status: &crate::status::StageStatus,
    lifecycle: &crate::telemetry::Lifecycle,
    mut body: impl FnMut() -> Result<(), StageError>,
) -> anyhow::Result<()> {
    let mut lost: std::collections::VecDeque<std::time::Instant> = Default::default();
    loop {
        let e = match body() {
            Ok(()) => return Ok(()),
            Err(StageError::ConsumerLost(e)) => e,
            Err(StageError::Other(e)) => return Err(e),
            Err(e) => return Err(e.into()),
        };
        if stop.is_stopped() {
            return Ok(());
        }
        lifecycle.consumer_lost(stage, &e);
        if e.after_outage {
            status.set(crate::status::Phase::Starting);
            stop.sleep(std::time::Duration::from_secs(1));
            continue;
        }
        lost.retain(|t| t.elapsed() < LOST_WINDOW);
        if lost.len() >= LOST_LIMIT {
            return Err(anyhow::Error::new(e).context(format!(
                "{stage}: consumer lost {LOST_LIMIT} times in {LOST_WINDOW:?}; does another process run with the same kafka.instance_id?"
            )));
        }
        lost.push_back(std::time::Instant::now());
        status.set(crate::status::Phase::Starting);
        stop.sleep(std::time::Duration::from_secs(1));
    }
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
                metrics.tell(crate::telemetry::events::WaitingForRegistry { stage, why: &why });
                self.wait(stop);
            }
            None => self.reset(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        ConsumerLost, Recovery, Role, StageError, WriteFailures, WRITE_FAILURE_LIMIT,
        WRITE_FAILURE_WINDOW,
    };
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

    #[test]
    fn every_error_has_one_recovery_per_role() {
        let lost = || {
            StageError::ConsumerLost(ConsumerLost {
                why: "fenced instance".into(),
                after_outage: false,
            })
        };
        let cases = [
            (
                StageError::Abort("x".into()),
                Recovery::ResumeFromCommitted,
                Recovery::TakeOverAgain,
            ),
            (
                StageError::InDoubt("x".into()),
                Recovery::ResumeFromCommitted,
                Recovery::TakeOverAgain,
            ),
            (
                StageError::Fenced("x".into()),
                Recovery::RenewProducer,
                Recovery::StandBy,
            ),
            (
                StageError::Fatal("x".into()),
                Recovery::RenewProducer,
                Recovery::TakeOverAgain,
            ),
            (
                StageError::State("x".into()),
                Recovery::RenewProducer,
                Recovery::TakeOverAgain,
            ),
            (lost(), Recovery::NewConsumer, Recovery::NewConsumer),
            (StageError::Stop("x".into()), Recovery::Exit, Recovery::Exit),
            (
                StageError::Other(anyhow::anyhow!("x")),
                Recovery::Exit,
                Recovery::Exit,
            ),
        ];
        for (e, shared, single) in cases {
            assert_eq!(e.recovery(Role::Shared), shared, "{e:?} in a shared stage");
            assert_eq!(e.recovery(Role::Single), single, "{e:?} in a single stage");
        }
    }

    #[test]
    fn a_new_producer_is_counted_under_the_reason_of_its_error() {
        use crate::telemetry::Renewal;
        let reason = |e: StageError| e.renewal().as_str();
        assert_eq!(
            reason(StageError::Fenced("x".into())),
            Renewal::Fenced.as_str()
        );
        assert_eq!(
            reason(StageError::State("x".into())),
            Renewal::StateWrite.as_str()
        );
        assert_eq!(
            reason(StageError::Abort("x".into())),
            Renewal::Aborted.as_str()
        );
        assert_eq!(
            reason(StageError::Fatal("x".into())),
            Renewal::Failed.as_str()
        );
    }
}
