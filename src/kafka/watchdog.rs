//! The watchdog over every blocking Kafka client call.
//!
//! librdkafka's own timeouts cannot be relied on for its transactional and group calls: a
//! call can outlive its timeout by minutes (librdkafka #3779, #3013, #4420, #5456). A stage
//! that sits inside such a call is silent, neither working nor failing. So each blocking call
//! (`init_transactions`, `begin_transaction`, `send_offsets_to_transaction`,
//! `commit_transaction`, `abort_transaction`, waiting for delivery reports, reading or seeking
//! to committed offsets) runs under [`watch`], with a bound derived from the configured
//! timeout it was given. A monitor thread checks the calls in flight a few times a second; a
//! call past its bound cannot be given up safely from outside (the client's state is then
//! unknown), so the process logs one line naming the call and exits at once with status
//! [`EXIT_CODE`], and its supervisor (Kubernetes, compose) starts it again. That is safe
//! anywhere: outputs, changelog and input offsets commit in one transaction, and a restart
//! resumes from the last commit (see docs/operations.md, "Restarts and failover").

use std::collections::BTreeMap;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The exit status when a client call outlived its bound (EX_SOFTWARE of sysexits.h).
pub const EXIT_CODE: i32 = 70;

/// How much longer than the timeout it was given a call may take before the watchdog fires.
pub const GRACE: Duration = Duration::from_secs(30);

/// How often the monitor looks at the calls in flight.
const TICK: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
struct InFlight {
    id: u64,
    thread: String,
    call: String,
    started: Instant,
    bound: Duration,
}

static IN_FLIGHT: Mutex<Vec<InFlight>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static MONITOR: OnceLock<()> = OnceLock::new();
/// Each stage thread's last sign of life (see [`beat`]).
static LIFE: Mutex<BTreeMap<String, Instant>> = Mutex::new(BTreeMap::new());
/// Where an expiry is recorded before the process exits (see [`record_expiries_in`]).
static RECORD: OnceLock<PathBuf> = OnceLock::new();

/// The longest a stage can sit in one client call before the watchdog ends the process: the
/// longest timeout any watched call is given (delivery reports wait `transaction_timeout` +
/// 5 s; a consumer closes within `session_timeout`; reads of offsets, seeks and metadata
/// within [`crate::kafka::CALL_TIMEOUT`]), plus [`GRACE`].
pub fn bound(config: &crate::config::KafkaConfig) -> Duration {
    config
        .transaction_timeout
        .saturating_add(Duration::from_secs(5))
        .max(config.session_timeout)
        .max(crate::kafka::CALL_TIMEOUT)
        .saturating_add(GRACE)
}

/// Marks the calling thread as a stage whose silence is measured (see [`silences`]), until
/// [`retire`]. The thread's name names the stage.
pub fn enlist() {
    life().insert(thread_name(), Instant::now());
}

/// The calling stage thread has ended: its silence is no longer measured.
pub fn retire() {
    life().remove(&thread_name());
}

/// A sign of life from the calling stage thread: its loop went round, a retry was made, a
/// client call began or returned. A thread that was not [`enlist`]ed is ignored.
pub fn beat() {
    let name = thread_name();
    if let Some(t) = life().get_mut(&name) {
        *t = Instant::now();
    }
}

/// How long each stage has been silent: since its last [`beat`]. Past [`bound`] a working
/// stage is stuck somewhere the watchdog does not see (for the metrics and their alert).
pub fn silences() -> Vec<(String, Duration)> {
    let now = Instant::now();
    life()
        .iter()
        .map(|(stage, t)| (stage.clone(), now.saturating_duration_since(*t)))
        .collect()
}

/// Makes an expiry leave a line (the call's name) in `path` before the process exits, for
/// the next start to count ([`take_recorded_expiries`]).
pub fn record_expiries_in(path: PathBuf) {
    let _ = RECORD.set(path);
}

/// The calls whose expiry ended earlier runs, as recorded in `path`; the record is removed.
pub fn take_recorded_expiries(path: &std::path::Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(path);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned()
}

fn life() -> std::sync::MutexGuard<'static, BTreeMap<String, Instant>> {
    LIFE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs the blocking client call `f`, named `call`, which was given `timeout`: if it has not
/// returned `timeout` + [`GRACE`] after it began, the process exits with [`EXIT_CODE`].
pub fn watch<T>(call: &str, timeout: Duration, f: impl FnOnce() -> T) -> T {
    start_monitor();
    beat();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let thread = thread_name();
    lock().push(InFlight {
        id,
        thread,
        call: call.to_owned(),
        started: Instant::now(),
        bound: timeout.saturating_add(GRACE),
    });
    let _done = Done(id);
    crate::fault::hang(call);
    f()
}

/// A Kafka client whose destruction runs under the watchdog: closing a consumer leaves its
/// group and commits nothing, but librdkafka waits for its threads, as long as a hung call.
pub struct Watched<T> {
    inner: ManuallyDrop<T>,
    call: &'static str,
    timeout: Duration,
}

impl<T> Watched<T> {
    /// `call` names the destruction in the watchdog's line, e.g. `consumer_close`; `timeout`
    /// is what the client was configured to wait for at most.
    pub fn new(inner: T, call: &'static str, timeout: Duration) -> Self {
        Self {
            inner: ManuallyDrop::new(inner),
            call,
            timeout,
        }
    }
}

impl<T> std::ops::Deref for Watched<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        watch(self.call, self.timeout, || {
            // SAFETY: dropped once, here, and never used after.
            unsafe { ManuallyDrop::drop(&mut self.inner) }
        });
    }
}

/// Takes the call off the list when it returns, or unwinds.
struct Done(u64);

impl Drop for Done {
    fn drop(&mut self) {
        lock().retain(|c| c.id != self.0);
        beat();
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<InFlight>> {
    IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The first call in `calls` that is past its bound at `now`.
fn overdue(calls: &[InFlight], now: Instant) -> Option<&InFlight> {
    calls
        .iter()
        .find(|c| now.saturating_duration_since(c.started) > c.bound)
}

/// The longest any call now in flight has been waiting, and its name: for the metrics.
pub fn longest_wait() -> Option<(String, Duration)> {
    let now = Instant::now();
    lock()
        .iter()
        .map(|c| (c.call.clone(), now.saturating_duration_since(c.started)))
        .max_by_key(|(_, d)| *d)
}

fn start_monitor() {
    MONITOR.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                let expired = overdue(&lock(), Instant::now()).cloned();
                if let Some(c) = expired {
                    expire(&c);
                }
            });
        if let Err(e) = spawned {
            // Without a monitor the calls still run, as they did before it existed.
            tracing::error!(error = %e, "cannot start the watchdog thread");
        }
    });
}

/// Logs the one line that names the call that hung, and exits without running destructors
/// or exit handlers (they could wait on the client that hangs).
fn expire(c: &InFlight) -> ! {
    let waited = c.started.elapsed().as_secs();
    tracing::error!(
        call = %c.call,
        thread = %c.thread,
        waited_s = waited,
        bound_s = c.bound.as_secs(),
        exit_code = EXIT_CODE,
        "watchdog: the Kafka client call {} has not returned after {waited} s (bound {} s); \
         exiting so that the supervisor restarts the process",
        c.call,
        c.bound.as_secs()
    );
    if let Some(path) = RECORD.get() {
        let line = format!("{}\n", c.call);
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
    let _ = std::io::stderr().flush();
    let _ = std::io::stdout().flush();
    // SAFETY: _exit ends the process at once; nothing after it runs.
    unsafe { libc::_exit(EXIT_CODE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, started: Instant, bound_s: u64) -> InFlight {
        InFlight {
            id: 1,
            thread: "t".into(),
            call: name.into(),
            started,
            bound: Duration::from_secs(bound_s),
        }
    }

    #[test]
    fn a_call_is_overdue_only_past_its_bound() {
        let t0 = Instant::now();
        let calls = vec![call("commit_transaction", t0, 40), call("abort", t0, 10)];
        assert!(overdue(&calls, t0 + Duration::from_secs(10)).is_none());
        assert_eq!(
            overdue(&calls, t0 + Duration::from_millis(10_001)).map(|c| c.call.as_str()),
            Some("abort")
        );
    }

    #[test]
    fn a_call_leaves_the_list_when_it_returns() {
        let got = watch("test_call", Duration::from_secs(5), || {
            assert!(lock().iter().any(|c| c.call == "test_call"));
            let (name, _) = longest_wait().expect("one call in flight");
            assert!(!name.is_empty());
            7
        });
        assert_eq!(got, 7);
        assert!(!lock().iter().any(|c| c.call == "test_call"));
    }

    #[test]
    fn an_enlisted_stage_is_silent_since_its_last_sign_of_life() {
        let t = std::thread::Builder::new()
            .name("silence-test-stage".into())
            .spawn(|| {
                let silent = || {
                    silences()
                        .into_iter()
                        .find(|(s, _)| s == "silence-test-stage")
                        .map(|(_, d)| d)
                };
                assert_eq!(silent(), None, "not measured before it enlists");
                enlist();
                std::thread::sleep(Duration::from_millis(60));
                assert!(silent().unwrap() >= Duration::from_millis(60));
                // A watched call is a sign of life, at its start and at its end.
                watch("silence_call", Duration::from_secs(5), || {
                    std::thread::sleep(Duration::from_millis(30))
                });
                assert!(silent().unwrap() < Duration::from_millis(30));
                retire();
                assert_eq!(silent(), None);
            })
            .unwrap();
        t.join().unwrap();
    }

    #[test]
    fn recorded_expiries_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("expiries");
        assert!(take_recorded_expiries(&path).is_empty());
        std::fs::write(&path, "commit_transaction\nflush\n").unwrap();
        assert_eq!(
            take_recorded_expiries(&path),
            vec!["commit_transaction".to_owned(), "flush".to_owned()]
        );
        assert!(take_recorded_expiries(&path).is_empty());
    }

    #[test]
    fn the_bound_is_the_longest_timeout_plus_the_grace() {
        let mut k = crate::config::Config::load_with_vars(None, [])
            .expect("the defaults load")
            .kafka;
        k.transaction_timeout = Duration::from_secs(10);
        k.session_timeout = Duration::from_secs(6);
        assert_eq!(bound(&k), crate::kafka::CALL_TIMEOUT + GRACE);
        k.transaction_timeout = Duration::from_secs(60);
        assert_eq!(bound(&k), Duration::from_secs(65) + GRACE);
    }
}
