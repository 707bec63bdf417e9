//! A real Prometheus server scrapes the running processor every second, with the shipped alert
//! rules loaded. Its query API must give back exactly what was fed, every query of the shipped
//! dashboard must run on the live data, and the rules must evaluate cleanly without firing.

use rallypoint_testkit as common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, try_http_get, Harness};
use rallypoint_core::event::{Capability, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const NATIONS: [&str; 3] = ["EST", "LVA", "DEU"];

/// A Prometheus server of the test's own: loopback port, storage in a temporary folder. Killed
/// when dropped, so a failing test leaves no server behind.
struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target_port` every second as job "rallypoint" and evaluates `rules` every second.
    fn start(target_port: u16, rules: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: rallypoint\n    static_configs:\n      \
                 - targets: [\"127.0.0.1:{target_port}\"]\n",
                rules = rules.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `prometheus` ({e}): install the Debian package prometheus \
                     (scripts/install-deps.sh does)"
                )
            });
        Self { child, port, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GET an API path; `None` while the server does not answer or answers an error.
    fn api(&self, path: &str) -> Option<Value> {
        let (status, body) = try_http_get(self.port, path).ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["status"] == "success").then_some(v)
    }

    /// The samples a query answers; `None` when the query fails.
    fn query(&self, promql: &str) -> Option<Vec<Value>> {
        let v = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        v["data"]["result"].as_array().cloned()
    }

    /// The value of a query whose answer is one sample; `None` when it has none (yet).
    fn query_one(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql)?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls `promql` until it answers `want` or `WAIT` passes; returns the last answer.
    fn wait_for(&self, promql: &str, want: f64) -> Option<f64> {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < WAIT {
            last = self.query_one(promql);
            if last == Some(want) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends `offers` offers and `asks` report-and-ask pairs; returns how many events that is.
fn feed(h: &Harness, offers: usize, asks: usize) -> usize {
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    for i in 0..offers {
        let nation = NATIONS[i % NATIONS.len()];
        let id = format!("O-{nation}-{i}");
        h.send(&sample::offer(
            clock.envelope(nation),
            &id,
            Capability::Forensics,
            1,
        ));
    }
    for i in 0..asks {
        let nation = NATIONS[i % NATIONS.len()];
        let (incident, request) = (format!("I-{i}"), format!("R-{i}"));
        h.ask_for_help(
            &mut clock,
            (nation, &incident, &request),
            (Tlp::Green, Priority::High),
            &[(Capability::Forensics, 1)],
        );
    }
    offers + 2 * asks
}

#[test]
fn prometheus_scrapes_the_processor_and_counts_exactly_the_records_fed() {
    let mut h = Harness::new("prometheus", &NATIONS, "");
    h.start();
    assert!(h.wait_ready(WAIT), "not ready\n{}", h.log());
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
    let prom = Prometheus::start(h.http_port, &rules);
    let context = |h: &Harness, prom: &Prometheus| {
        format!(
            "\n--- processor log\n{}\n--- prometheus log\n{}",
            h.log(),
            prom.log()
        )
    };
    assert_eq!(
        prom.wait_for(r#"up{job="rallypoint"}"#, 1.0),
        Some(1.0),
        "Prometheus does not scrape the processor{}",
        context(&h, &prom)
    );

    let fed = feed(&h, 12, 4);
    assert_eq!(
        h.read("rrc.internal.journal", fed, WAIT).len(),
        fed,
        "events journaled{}",
        context(&h, &prom)
    );
    for stage in ["intake", "coordinator"] {
        let q = format!(r#"sum(rallypoint_records_in_total{{job="rallypoint", stage="{stage}"}})"#);
        assert_eq!(
            prom.wait_for(&q, fed as f64),
            Some(fed as f64),
            "{q}{}",
            context(&h, &prom)
        );
    }
    // Every input partition and the journal report their lag, and it drains to nothing.
    let partitions = r#"count(rallypoint_consumer_lag_records{job="rallypoint"})"#;
    // Each nation's input topics (one per stream, two partitions each) and the journal.
    let streams = rallypoint_core::event::Stream::ALL.len();
    let want = (NATIONS.len() * streams * 2 + 1) as f64;
    assert_eq!(prom.wait_for(partitions, want), Some(want), "{partitions}");
    let lag = r#"sum(rallypoint_consumer_lag_records{job="rallypoint"})"#;
    assert_eq!(prom.wait_for(lag, 0.0), Some(0.0), "{lag}");
    let ready = r#"min(rallypoint_stage_ready{job="rallypoint"})"#;
    assert_eq!(prom.query_one(ready), Some(1.0), "{ready}");
    // Every offer and incident, the requests, the open-need indexes, the changelog position.
    let keys = r#"rallypoint_state_keys{job="rallypoint", store="coordinator"}"#;
    let at_least = (fed + 1) as f64;
    assert!(
        prom.query_one(keys).is_some_and(|k| k >= at_least),
        "{keys}: {:?}, want at least {at_least}{}",
        prom.query_one(keys),
        context(&h, &prom)
    );
    for gauge in [
        "rallypoint_rocksdb_block_cache_usage_bytes",
        "rallypoint_rocksdb_pending_compaction_bytes",
        "rallypoint_rocksdb_live_sst_bytes",
        "rallypoint_rocksdb_write_stopped",
        "rallypoint_rocksdb_delayed_write_rate_bytes_per_second",
        "rallypoint_rocksdb_memtable_bytes",
        "rallypoint_rocksdb_table_readers_bytes",
        "rallypoint_state_index_keys",
        "rallypoint_state_hot_cache_bytes",
    ] {
        let q = format!(r#"{gauge}{{job="rallypoint", store="coordinator"}}"#);
        assert!(prom.query_one(&q).is_some(), "{q} is not scraped");
    }

    check_dashboard_queries(&prom);

    let rules = prom.api("/api/v1/rules").expect("the rules API answers");
    let alerts: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(alerts.len() >= 10, "the shipped rules are loaded: {rules}");
    for a in &alerts {
        assert_eq!(a["health"], "ok", "rule evaluates: {a}");
        assert_ne!(
            a["state"], "firing",
            "a healthy processor fires no alert: {a}"
        );
    }
}

/// Every query of the shipped dashboard runs on the live data, and the RocksDB panels show some.
fn check_dashboard_queries(prom: &Prometheus) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards/rallypoint.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let targets = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default());
    let mut rocksdb_queries = 0;
    for t in targets {
        let expr = t["expr"]
            .as_str()
            .unwrap()
            .replace("$job", "rallypoint")
            .replace("$instance", ".*");
        let samples = prom.query(&expr);
        assert!(samples.is_some(), "dashboard query fails: {expr}");
        if expr.contains("rallypoint_rocksdb_") {
            rocksdb_queries += 1;
            assert!(samples.is_some_and(|s| !s.is_empty()), "no data for {expr}");
        }
    }
    assert!(
        rocksdb_queries >= 3,
        "the dashboard shows the RocksDB figures"
    );
}
