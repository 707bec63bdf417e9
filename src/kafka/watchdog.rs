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
//! resumes from the last commit (see the README's "Restarts and failover").

use std::io::Write;
use std::mem::ManuallyDrop;
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

/// Runs the blocking client call `f`, named `call`, which was given `timeout`: if it has not
/// returned `timeout` + [`GRACE`] after it began, the process exits with [`EXIT_CODE`].
pub fn watch<T>(call: &str, timeout: Duration, f: impl FnOnce() -> T) -> T {
    start_monitor();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let thread = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned();
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
}
