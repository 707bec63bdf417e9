//! Kill points between the steps of a transaction, for the crash soak (`scripts/crash-soak.sh`);
//! Kafka client calls that hang and state writes that fail, for `tests/watchdog.rs`.
//!
//! Compiled in only with the `fault-injection` cargo feature, which is off by default and
//! never enabled by the release build the demo, the image and the Helm chart run. Without it
//! [`point`], [`hang`] and [`fail`] are empty inline functions.
//!
//! With the feature, `RALLYPOINT_FAULT=<point>@<n>` makes the process SIGKILL itself the
//! `n`-th time it reaches `<point>` (`n` defaults to 1). The points:
//!
//! | point | where |
//! |---|---|
//! | `intake.produced` | intake: journal records sent, transaction not yet committed |
//! | `coordinator.produced` | decisions and changelog sent, transaction not yet committed |
//! | `offsets_sent` | input offsets added to the transaction, commit not yet asked (either stage) |
//! | `coordinator.committed` | transaction committed, RocksDB not yet written |
//! | `coordinator.takeover` | producer initialised (others fenced), changelog not yet restored |
//! | `restore.chunk` | a chunk of the changelog restored into RocksDB, more to come |
//!
//! `RALLYPOINT_FAULT=hang.<call>@<n>` instead makes the `n`-th blocking Kafka client call of
//! that name (see [`crate::kafka::watchdog`]) never return, as a client that hangs would: the
//! watchdog must end the process.
//!
//! `RALLYPOINT_FAULT=fail.<write>@<n>` makes the `n`-th write of that name fail instead of
//! writing, as a full or broken disk would; `fail.<write>@<n>+` makes the `n`-th and every later
//! one fail. The writes:
//!
//! | write | what fails |
//! |---|---|
//! | `store_write` | a [`RocksStore::apply`](crate::store::RocksStore::apply), the one way RocksDB is written (a committed batch, a restored or followed chunk of the changelog): it returns a [`StoreError::Write`](rallypoint_core::store::StoreError::Write) and writes nothing |

/// Names every kill point (for the soak harness and the docs above).
pub const POINTS: &[&str] = &[
    "intake.produced",
    "coordinator.produced",
    "offsets_sent",
    "coordinator.committed",
    "coordinator.takeover",
    "restore.chunk",
];

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &'static str) {}

#[cfg(feature = "fault-injection")]
pub fn point(name: &'static str) {
    armed::reached(name);
}

/// Names every write that can be made to fail (`fail.<write>`).
pub const WRITES: &[&str] = &["store_write"];

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hang(_call: &str) {}

#[cfg(feature = "fault-injection")]
pub fn hang(call: &str) {
    armed::hang(call);
}

/// Whether this write must fail (`RALLYPOINT_FAULT=fail.<write>@<n>[+]`); always false without
/// the feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn fail(_write: &str) -> bool {
    false
}

#[cfg(feature = "fault-injection")]
pub fn fail(write: &str) -> bool {
    armed::fail(write)
}

/// Logs a warning at start when the binary carries kill points.
pub fn announce() {
    #[cfg(feature = "fault-injection")]
    tracing::warn!(
        armed = std::env::var("RALLYPOINT_FAULT").unwrap_or_default(),
        "built with fault injection: for crash tests only"
    );
}

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The armed point, its hit `n`, and whether every hit after the `n`-th fires too (`@n+`).
    static ARMED: OnceLock<Option<(String, u64, bool)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    fn armed() -> &'static Option<(String, u64, bool)> {
        ARMED.get_or_init(|| parse(&std::env::var("RALLYPOINT_FAULT").ok()?))
    }

    /// `<name>[@<n>[+]]`.
    pub(super) fn parse(spec: &str) -> Option<(String, u64, bool)> {
        let (name, n) = spec.split_once('@').unwrap_or((spec, "1"));
        let (n, later) = match n.strip_suffix('+') {
            Some(n) => (n, true),
            None => (n, false),
        };
        Some((name.to_owned(), n.parse::<u64>().unwrap_or(1).max(1), later))
    }

    pub fn reached(name: &'static str) {
        let Some((armed, n, _)) = armed() else { return };
        if armed != name || HITS.fetch_add(1, Ordering::SeqCst) + 1 < *n {
            return;
        }
        eprintln!("fault injection: SIGKILL at {name} (hit {n})");
        kill();
    }

    pub fn hang(call: &str) {
        let Some((armed, n, _)) = armed() else { return };
        if armed.strip_prefix("hang.") != Some(call) || HITS.fetch_add(1, Ordering::SeqCst) + 1 < *n
        {
            return;
        }
        eprintln!("fault injection: {call} hangs (hit {n})");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }

    pub fn fail(write: &str) -> bool {
        let Some((armed, n, later)) = armed() else {
            return false;
        };
        if armed.strip_prefix("fail.") != Some(write) {
            return false;
        }
        let hit = HITS.fetch_add(1, Ordering::SeqCst) + 1;
        if hit < *n || (hit > *n && !later) {
            return false;
        }
        eprintln!("fault injection: {write} fails (hit {hit})");
        true
    }

    fn kill() {
        // SIGKILL, as the kernel or a supervisor would: no destructor, flush or exit hook runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    #[test]
    fn specs_name_a_point_its_hit_and_whether_later_hits_fire() {
        let parse = super::armed::parse;
        assert_eq!(
            parse("fail.store_write@3"),
            Some(("fail.store_write".into(), 3, false))
        );
        assert_eq!(
            parse("fail.store_write@1+"),
            Some(("fail.store_write".into(), 1, true))
        );
        assert_eq!(
            parse("coordinator.committed"),
            Some(("coordinator.committed".into(), 1, false))
        );
        assert_eq!(
            parse("hang.commit_transaction@0"),
            Some(("hang.commit_transaction".into(), 1, false))
        );
    }
}
