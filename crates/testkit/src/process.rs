//! One `rallypoint` process of a benchmark's own: its config file, state folder and HTTP port
//! under a run folder, started in a role, stopped with SIGTERM, and read from outside the way
//! an operator would (`/readyz`, `/metrics`, `/proc`, the state folder's size).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rallypoint::config::Config;

use crate::broker_work::cpu_seconds;
use crate::{built_binary, free_port, try_http_get};

pub struct Processor {
    child: Option<Child>,
    config: PathBuf,
    state: PathBuf,
    port: u16,
}

impl Processor {
    /// A processor of `nations` on `bootstrap`, under `work/<namespace>/`, not started.
    pub fn new(
        work: &Path,
        bootstrap: &str,
        namespace: &str,
        guarantee: &str,
        nations: &[&str],
    ) -> Self {
        let port = free_port();
        let state = work.join(namespace).join("state");
        let config = work.join(namespace).join("rallypoint.toml");
        std::fs::create_dir_all(config.parent().expect("a folder")).expect("a run folder");
        let nations = nations
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "nations = [{nations}]\n\
                 [kafka]\nbootstrap_servers = \"{bootstrap}\"\nnamespace = \"{namespace}\"\n\
                 instance_id = \"bench\"\nprocessing_guarantee = \"{guarantee}\"\n\
                 [state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [log]\nlevel = \"warn\"\n",
                state.display()
            ),
        )
        .expect("the config file");
        Self {
            child: None,
            config,
            state,
            port,
        }
    }

    pub fn config(&self) -> Config {
        Config::load(Some(&self.config)).expect("the processor's config is valid")
    }

    /// `rallypoint --config <its config> <args>`. `RALLYPOINT_BIN` names another build to run
    /// (e.g. the one before a change); by default, the one cargo built with the caller.
    pub fn command(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("RALLYPOINT_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(built_binary);
        let mut c = Command::new(bin);
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    /// Starts the processor; returns how long it took to answer `/readyz`.
    pub fn start(&mut self) -> Duration {
        self.start_as("all")
    }

    /// Starts the processor in `role` (`all`, `intake`, `coordinator`), its log appended to
    /// `rallypoint.log` beside its config.
    pub fn start_as(&mut self, role: &str) -> Duration {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.config.with_extension("log"))
            .expect("a log file");
        let started = Instant::now();
        self.child = Some(
            self.command(&["run", "--role", role])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("the processor starts"),
        );
        while self.get("/readyz").is_none_or(|(status, _)| status != 200) {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "not ready after 2 minutes: see {}",
                self.config.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }

    /// SIGTERM, then waits for the process to end (SIGKILL after 30 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// GET `path` from its HTTP endpoint: (status, body), none while it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        try_http_get(self.port, path).ok()
    }

    /// The sum of every series of metric `name` whose labels contain `labels` (NaN while the
    /// endpoint does not answer).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let Some((_, body)) = self.get("/metrics") else {
            return f64::NAN;
        };
        crate::labelled_metric_value(&body, name, labels).unwrap_or(0.0)
    }

    /// The process's CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.child.as_ref().map_or(f64::NAN, |c| {
            cpu_seconds(&c.id().to_string()).unwrap_or(f64::NAN)
        })
    }

    /// Input events the coordinator has applied.
    pub fn applied(&self) -> f64 {
        self.metric("rallypoint_records_in_total", "stage=\"coordinator\"")
    }

    /// Samples `count` every 100 ms until it reaches `want` and has not moved for 2 s (or has
    /// not moved for 30 s); returns the rate from its first rise to its last, and the last
    /// value.
    pub fn rate_until(&self, want: f64, count: impl Fn(&Self) -> f64) -> (f64, f64) {
        let mut samples: Vec<(Instant, f64)> = Vec::new();
        let mut still = Instant::now();
        loop {
            let n = count(self);
            let at = Instant::now();
            if samples.last().is_none_or(|(_, last)| n > *last) {
                still = at;
                samples.push((at, n));
            }
            if n >= want && still.elapsed() > Duration::from_secs(2)
                || still.elapsed() > Duration::from_secs(30)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let first = samples
            .iter()
            .find(|(_, n)| *n > 0.0)
            .copied()
            .unwrap_or((Instant::now(), 0.0));
        let (last_at, last_n) = samples.last().copied().unwrap_or(first);
        let seconds = (last_at - first.0).as_secs_f64().max(1e-3);
        ((last_n - first.1) / seconds, last_n)
    }

    /// A `/proc/<pid>/status` figure in MiB (VmRSS, VmHWM).
    pub fn memory_mib(&self, field: &str) -> f64 {
        let Some(child) = &self.child else {
            return f64::NAN;
        };
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    /// The state folder's size on disk, in MiB.
    pub fn state_mib(&self) -> f64 {
        fn size(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => size(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        size(&self.state) as f64 / (1024.0 * 1024.0)
    }
}

impl Drop for Processor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
