//! Kill points between the steps of a transaction, for the crash soak (`scripts/crash-soak.sh`).
//!
//! Compiled in only with the `fault-injection` cargo feature, which is off by default and
//! never enabled by the release build the demo, the image and the Helm chart run. Without it
//! [`point`] is an empty inline function.
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

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hang(_call: &str) {}

#[cfg(feature = "fault-injection")]
pub fn hang(call: &str) {
    armed::hang(call);
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

    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    fn armed() -> &'static Option<(String, u64)> {
        ARMED.get_or_init(|| {
            let spec = std::env::var("RALLYPOINT_FAULT").ok()?;
            let (name, n) = match spec.split_once('@') {
                Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some((name, n.max(1)))
        })
    }

    pub fn reached(name: &'static str) {
        let Some((armed, n)) = armed() else { return };
        if armed != name || HITS.fetch_add(1, Ordering::SeqCst) + 1 < *n {
            return;
        }
        eprintln!("fault injection: SIGKILL at {name} (hit {n})");
        kill();
    }

    pub fn hang(call: &str) {
        let Some((armed, n)) = armed() else { return };
        if armed.strip_prefix("hang.") != Some(call) || HITS.fetch_add(1, Ordering::SeqCst) + 1 < *n
        {
            return;
        }
        eprintln!("fault injection: {call} hangs (hit {n})");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }

    fn kill() {
        // SIGKILL, as the kernel or a supervisor would: no destructor, flush or exit hook runs.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
