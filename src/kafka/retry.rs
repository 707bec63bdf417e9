//! Broker calls retried while their errors go away by themselves.

use super::watchdog;
use crate::stop::Stop;

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
    call: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> anyhow::Result<T> {
    with_patience_between(what, patience, stop, call, || {})
}

/// As [`with_patience`], running `between` after each failed try, before the pause (outside
/// the watchdog's watch of the call).
pub fn with_patience_between<T>(
    what: &str,
    patience: std::time::Duration,
    stop: &Stop,
    mut call: impl FnMut() -> rdkafka::error::KafkaResult<T>,
    mut between: impl FnMut(),
) -> anyhow::Result<T> {
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        match watchdog::watch(what, CALL_TIMEOUT, &mut call) {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() < patience => {
                tracing::info!(error = %e, "{what}: not yet, retrying");
                between();
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
