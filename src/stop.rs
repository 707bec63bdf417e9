//! Stopping by signal: one [`Stop`] for the process, set once by SIGTERM/SIGINT (or by a stage
//! that failed), seen at once by every stage thread and every async server.
//!
//! Stage threads do not poll a flag in slices: every wait of theirs (a backoff, a retry's
//! pause, waiting for the schema registry) is [`Stop::sleep`], which returns as soon as the
//! stop is set; the async servers await [`Stop::stopped`]. So stopping is prompt wherever a
//! stage is, and the same everywhere.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Stop(Arc<Inner>);

struct Inner {
    set: Mutex<bool>,
    changed: Condvar,
    watch: tokio::sync::watch::Sender<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    pub fn new() -> Self {
        let (watch, _) = tokio::sync::watch::channel(false);
        Self(Arc::new(Inner {
            set: Mutex::new(false),
            changed: Condvar::new(),
            watch,
        }))
    }

    /// Sets the stop and wakes every waiter, blocking or async. Idempotent.
    pub fn stop(&self) {
        *self.0.set.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.changed.notify_all();
        self.0.watch.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits `wait`, or less once the stop is set. True if stopped.
    pub fn sleep(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut set = self.0.set.lock().unwrap_or_else(PoisonError::into_inner);
        while !*set {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            set = self
                .0
                .changed
                .wait_timeout(set, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Resolves once the stop is set.
    pub async fn stopped(&self) {
        let mut rx = self.0.watch.subscribe();
        // Err only when the sender is gone, which it is not while `self` lives.
        let _ = rx.wait_for(|set| *set).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_ends_as_soon_as_the_stop_is_set() {
        let stop = Stop::new();
        assert!(!stop.sleep(Duration::from_millis(20)), "not stopped yet");
        let other = stop.clone();
        let t = std::thread::spawn(move || {
            let started = Instant::now();
            let stopped = other.sleep(Duration::from_secs(30));
            (stopped, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        stop.stop();
        let (stopped, waited) = t.join().unwrap();
        assert!(stopped);
        assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
        assert!(stop.sleep(Duration::from_secs(30)), "stays stopped");
    }

    #[test]
    fn async_waiters_see_the_stop() {
        let stop = Stop::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let other = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.stop();
        });
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), stop.stopped())
                .await
                .expect("resolved once stopped");
        });
    }
}
