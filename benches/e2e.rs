//! End to end against a real Kafka broker on this machine: `scripts/bench.sh e2e` (or
//! `cargo bench --bench e2e`, with the broker's jars already cached).
//!
//! For each processing guarantee (`exactly_once_v2`, then `at_least_once`) it runs the
//! processor as its own process on fresh topics and state, feeds it the simulated multi-nation
//! feed (`rallypoint simulate`, all Avro, offer desks answering proposals) and measures:
//!
//! - **the maximum**: a backlog of `E2E_BACKLOG` feed events (default 100,000) waits in the
//!   input topics when the processor starts; the events/s it journals and applies from its
//!   first to its last (the coordinator's `rallypoint_records_in_total`). Without a feed
//!   running at the same time, the processor has the machine to itself but for the broker;
//! - **fixed offered loads** (`E2E_LOADS`, shares of the exactly-once maximum, the same
//!   events/s for both guarantees): input events offered are the feed's and the offer desks'
//!   answers to decisions (about 1.2 per feed event), the unit of the maximum, so the feed
//!   runs at the share over that ratio. It measures the events/s applied, and the latency from each input
//!   record's timestamp to the moment a `read_committed` consumer of the coalition's decisions
//!   holds a decision it led to (the decision's `rp.input_ts` header), as p50, p99 and p99.9;
//! - **the broker's work per input event** in each maximum run: records (transaction markers
//!   included) and bytes written, by kind of topic (journal, changelog, decisions, picture,
//!   dead letters, transaction state and offsets), and the broker's and the processor's CPU;
//! - **side by side** (`E2E_PEER=0` skips it): a JSON backlog of the same size, journaled by
//!   the intake alone and then drained by the coordinator alone, and the same by a Kafka
//!   Streams application of the same two-stage shape (`benches/peer`, `scripts/peer.sh`):
//!   the events/s each drains its journal at, with CPU and broker work per event;
//! - peak RSS (VmHWM) of the processor and its state (keys, bytes on disk) after every run;
//! - **growth**: a backlog of `E2E_GROWTH_BASE` events (default 50,000; 0 skips this), then
//!   nine times as many more: peak RSS (VmHWM) when each is applied, the state ten times
//!   larger the second time;
//! - **warm restart**: SIGTERM, start again on the same state, time until `/readyz` answers.
//!
//! A first, unmeasured run warms the broker's JVM up. It writes `report.json` and `report.svg`
//! (a chart) to `E2E_OUT` (default `target/rallypoint-bench/e2e`; `scripts/bench.sh` passes
//! `benches/results`). `E2E_SECONDS` sets each run's feed time (default 20); `E2E_TRACE`, a
//! folder, receives each fixed load's latency samples as CSV.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rallypoint::config::Config;
use rallypoint::kafka::{now_ms, Topics};
use rallypoint::simulate;
use rallypoint_testkit::broker_work::{keys_by_prefix, BrokerWork};
use rallypoint_testkit::process::Processor;
use rallypoint_testkit::LocalService;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message};
use serde::Serialize;

const NATIONS: [&str; 8] = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];
/// Seconds of each feed not measured: the processor warming up.
const WARM_UP: f64 = 3.0;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The local broker (`scripts/kafka-local.sh`) in a folder of its own, removed on drop.
struct Broker {
    service: LocalService,
    bootstrap: String,
}

impl Broker {
    fn start() -> Self {
        let service = LocalService::new("kafka-local.sh", "KAFKA", &[]);
        let bootstrap = service.run(&["start"]);
        Self { service, bootstrap }
    }

    /// What the broker has written and spent so far.
    fn work(&self) -> BrokerWork {
        BrokerWork::read(&self.bootstrap, &self.service.folder()).expect("the broker's work")
    }
}

/// Reads the coalition's decision topic `read_committed` and keeps, per decision, the time
/// from its input's timestamp to its arrival here, in milliseconds. Every decision goes to the
/// coalition, and its copies to nations commit in the same transaction: reading the one topic
/// measures them all, at half the cost to the machine under test.
struct LatencyReader {
    stop: Arc<AtomicBool>,
    /// (input timestamp, milliseconds to arrival) of every decision read.
    samples: Arc<Mutex<Vec<(i64, u32)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LatencyReader {
    fn start(config: &Config) -> Self {
        let topics = Topics::new(config);
        let names = [topics.coalition_decisions()];
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.kafka.bootstrap_servers)
            .set(
                "group.id",
                format!("bench-latency-{}", uuid::Uuid::new_v4()),
            )
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5")
            .create()
            .expect("a consumer");
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).expect("subscribed");
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                let mut local = Vec::with_capacity(4096);
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                        let now = now_ms();
                        let input_ts = m.headers().and_then(|hs| {
                            let h = hs.iter().find(|h| h.key == "rp.input_ts")?;
                            std::str::from_utf8(h.value?).ok()?.parse::<i64>().ok()
                        });
                        if let Some(ts) = input_ts {
                            local.push((ts, (now - ts).clamp(0, u32::MAX as i64) as u32));
                        }
                    }
                    if local.len() >= 4096 {
                        samples.lock().expect("samples").append(&mut local);
                    }
                }
                samples.lock().expect("samples").append(&mut local);
            })
        };
        // Joined the group and assigned before the feed starts.
        std::thread::sleep(Duration::from_secs(4));
        Self {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<(i64, u32)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().expect("samples"))
    }
}

#[derive(Clone, Debug, Serialize)]
struct Latency {
    samples: usize,
    p50_ms: u32,
    p99_ms: u32,
    p999_ms: u32,
    max_ms: u32,
}

fn latency(mut ms: Vec<u32>) -> Option<Latency> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_unstable();
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    Some(Latency {
        samples: ms.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: *ms.last().expect("not empty"),
    })
}

#[derive(Clone, Debug, Serialize)]
struct Run {
    guarantee: &'static str,
    /// The feed's own rate, events/s; `None`: the maximum, from a backlog.
    feed_per_s: Option<f64>,
    /// Input events offered per second: the feed's and the offer desks' answers to the
    /// decisions (about 1.2 per feed event), in the unit of the maximum; `None`: the maximum.
    offered_per_s: Option<f64>,
    feed_seconds: f64,
    feed_events: u64,
    /// Input events (feed and offer desks' answers) the coordinator applied per second, once
    /// warm.
    applied_per_s: f64,
    /// Seconds the coordinator went on applying after the feed ended: about 0 when it kept up.
    behind_seconds: f64,
    latency: Option<Latency>,
    peak_rss_mib: f64,
    state_keys: f64,
    state_mib: f64,
    /// What the broker wrote and spent per input event (maximum runs).
    broker: Option<Amplification>,
}

/// The broker's work per input event in a maximum run, from a reading of every topic's end
/// offsets, segment sizes and the broker's CPU time before the processor starts and once it
/// has applied the backlog (`rallypoint_testkit::broker_work`).
#[derive(Clone, Debug, Serialize)]
struct Amplification {
    /// The input events the figures are divided by: the backlog the coordinator applied.
    input_events: f64,
    /// Records (transaction markers included) and bytes written per input event, by kind of
    /// topic: journal, changelog, decisions, threat picture, dead letters, and the broker's
    /// own transaction state and consumer offsets.
    by_topic: std::collections::BTreeMap<String, PerEvent>,
    records_per_event: f64,
    bytes_per_event: f64,
    broker_cpu_us_per_event: f64,
    processor_cpu_us_per_event: f64,
    /// Changelog records per input event by kind of state key (the key up to its first `/`;
    /// `E`: a batch's event ids).
    changelog_by_key: std::collections::BTreeMap<String, f64>,
}

/// The journal drained side by side by Rallypoint and the Kafka Streams peer
/// ([`Bench::side_by_side`]).
#[derive(Clone, Debug, Serialize)]
struct SideBySide {
    /// Feed events in the JSON backlog.
    events: u64,
    rallypoint: Drain,
    peer: Drain,
}

/// One processor's two stages, each alone on the backlog.
#[derive(Clone, Debug, Serialize)]
struct Drain {
    /// Events/s the first stage journaled.
    intake_per_s: f64,
    /// Events/s the second stage drained the journal at: the figure compared. Rallypoint's
    /// from its first applied event to its last; the peer's over the second half, once its
    /// JVM is warm (both the peer's figures are its second half's).
    drain_per_s: f64,
    /// Per journal event the second stage applied: its process's CPU (from its start), and
    /// the broker's CPU, records and bytes while it drained.
    cpu_us_per_event: f64,
    broker_cpu_us_per_event: f64,
    broker_records_per_event: f64,
    broker_bytes_per_event: f64,
}

impl Drain {
    fn of(intake_per_s: f64, drain_per_s: f64, cpu: f64, work: &BrokerWork, events: f64) -> Self {
        let events = events.max(1.0);
        let all = work.grouped(|_| Some(String::new()));
        let (records, bytes) = all.get("").copied().unwrap_or_default();
        Self {
            intake_per_s,
            drain_per_s,
            cpu_us_per_event: cpu * 1e6 / events,
            broker_cpu_us_per_event: work.cpu_seconds * 1e6 / events,
            broker_records_per_event: records as f64 / events,
            broker_bytes_per_event: bytes as f64 / events,
        }
    }
}

fn describe_side_by_side(s: &SideBySide) -> String {
    let row = |name: &str, d: &Drain| {
        format!(
            "  {name:<10} intake {:>7.0}/s, journal drained {:>7.0}/s; per event: {:>5.0} µs CPU, broker {:>5.0} µs, {:.2} records, {:.0} bytes",
            d.intake_per_s,
            d.drain_per_s,
            d.cpu_us_per_event,
            d.broker_cpu_us_per_event,
            d.broker_records_per_event,
            d.broker_bytes_per_event
        )
    };
    format!(
        "side by side, {} JSON feed events, exactly once:\n{}\n{}\n  drain ratio {:.2}",
        s.events,
        row("rallypoint", &s.rallypoint),
        row("peer", &s.peer),
        s.rallypoint.drain_per_s / s.peer.drain_per_s
    )
}

#[derive(Clone, Debug, Serialize)]
struct PerEvent {
    records: f64,
    bytes: f64,
}

impl Amplification {
    /// `work`: the broker's work over the run; `processor_cpu`: the processor's CPU seconds.
    fn of(
        work: &BrokerWork,
        by_key: &std::collections::BTreeMap<String, i64>,
        topics: &Topics,
        events: f64,
        processor_cpu: f64,
    ) -> Self {
        let (journal, changelog, dlq, picture) = (
            topics.journal(),
            topics.changelog(),
            topics.dlq(),
            topics.threat_picture(),
        );
        let decisions = topics.coalition_decisions();
        let out_prefix = decisions.trim_end_matches("coalition.decisions").to_owned();
        let kind = |t: &str| -> Option<String> {
            Some(
                match t {
                    _ if t == journal => "journal",
                    _ if t == changelog => "changelog",
                    _ if t == dlq => "dead letters",
                    _ if t == picture => "threat picture",
                    _ if t.starts_with(&out_prefix) && t.ends_with(".decisions") => "decisions",
                    "__transaction_state" | "__consumer_offsets" => "transactions and offsets",
                    _ => return None,
                }
                .to_owned(),
            )
        };
        let events = events.max(1.0);
        let by_topic: std::collections::BTreeMap<String, PerEvent> = work
            .grouped(kind)
            .into_iter()
            .map(|(k, (records, bytes))| {
                let per = PerEvent {
                    records: records as f64 / events,
                    bytes: bytes as f64 / events,
                };
                (k, per)
            })
            .collect();
        Self {
            input_events: events,
            records_per_event: by_topic.values().map(|p| p.records).sum(),
            bytes_per_event: by_topic.values().map(|p| p.bytes).sum(),
            by_topic,
            broker_cpu_us_per_event: work.cpu_seconds * 1e6 / events,
            processor_cpu_us_per_event: processor_cpu * 1e6 / events,
            changelog_by_key: by_key
                .iter()
                .map(|(k, n)| (k.clone(), *n as f64 / events))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
struct Growth {
    guarantee: &'static str,
    /// Feed events in all: a tenth first, then the rest.
    events: u64,
    seconds: f64,
    /// (state keys, peak RSS MiB) sampled every half second.
    samples: Vec<(f64, f64)>,
    keys_at_tenth: f64,
    peak_rss_mib_at_tenth: f64,
    keys_at_end: f64,
    peak_rss_mib_at_end: f64,
    /// Peak RSS at the end over peak RSS at a tenth of the state, minus one.
    growth_share: f64,
    state_mib_at_end: f64,
    memory_at_tenth: Memory,
    memory_at_end: Memory,
    warm_restart_seconds: f64,
}

/// Where the processor's memory goes, from its metrics, in MiB (index keys as a count).
#[derive(Clone, Debug, Serialize)]
struct Memory {
    rss_mib: f64,
    block_cache_mib: f64,
    memtables_mib: f64,
    table_readers_mib: f64,
    hot_cache_mib: f64,
    index_keys: f64,
}

impl Memory {
    fn of(p: &Processor) -> Self {
        let mib = |name: &str| p.metric(name, "") / (1024.0 * 1024.0);
        Self {
            rss_mib: p.memory_mib("VmRSS"),
            block_cache_mib: mib("rallypoint_rocksdb_block_cache_usage_bytes"),
            memtables_mib: mib("rallypoint_rocksdb_memtable_bytes"),
            table_readers_mib: mib("rallypoint_rocksdb_table_readers_bytes"),
            hot_cache_mib: mib("rallypoint_state_hot_cache_bytes"),
            index_keys: p.metric("rallypoint_state_index_keys", ""),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Machine,
    runs: Vec<Run>,
    growth: Option<Growth>,
    side_by_side: Option<SideBySide>,
    targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
    kernel: String,
    broker: String,
    date: String,
}

#[derive(Debug, Serialize)]
struct Target {
    name: &'static str,
    goal: String,
    measured: String,
    met: bool,
}

struct Bench {
    broker: Broker,
    work: tempfile::TempDir,
    seconds: f64,
    runs: usize,
}

impl Bench {
    /// A fresh processor on topics of its own, not started yet.
    fn processor(&mut self, guarantee: &'static str) -> Processor {
        self.runs += 1;
        let namespace = format!("b{}", self.runs);
        let p = Processor::new(
            self.work.path(),
            &self.broker.bootstrap,
            &namespace,
            guarantee,
            &NATIONS,
        );
        let created = p.command(&["topics", "create"]).output().expect("topics");
        assert!(created.status.success(), "topics create failed");
        p
    }

    /// The maximum: `backlog` feed events wait in the input topics; the processor starts and
    /// works through them.
    fn max(&mut self, guarantee: &'static str, backlog: u64) -> Run {
        let mut p = self.processor(guarantee);
        let opts = simulate::Options {
            count: Some(backlog),
            duration: None,
            ..options(0.0)
        };
        let fed = simulate::run(&p.config(), &opts).expect("the feed ran");
        let before = self.broker.work();
        p.start();
        let (applied_per_s, last_n) = p.rate_until(fed.events as f64, Processor::applied);
        let measured = Measured {
            feed_per_s: None,
            offered_per_s: None,
            applied_per_s,
            behind_seconds: 0.0,
            latency: None,
        };
        let work = self.broker.work().since(&before);
        let topics = Topics::new(&p.config());
        let by_key = keys_by_prefix(&self.broker.bootstrap, &topics.changelog())
            .expect("the changelog reads back");
        let amplification = Amplification::of(&work, &by_key, &topics, last_n, p.cpu_seconds());
        println!("{}", describe_amplification(&amplification));
        let mut run = finish(p, guarantee, &fed, measured);
        run.broker = Some(amplification);
        run
    }

    /// The journal drained side by side: the same JSON backlog of `backlog` feed events,
    /// journaled by Rallypoint's intake and then drained by its coordinator, each alone
    /// (`run --role`), then journaled and drained by the Kafka Streams peer's two stages
    /// (`benches/peer`, `scripts/peer.sh`), on the same broker, one after the other.
    fn side_by_side(&mut self, backlog: u64) -> SideBySide {
        let mut p = self.processor("exactly_once_v2");
        let opts = simulate::Options {
            count: Some(backlog),
            json_share: 1.0,
            ..options(0.0)
        };
        let fed = simulate::run(&p.config(), &opts).expect("the feed ran");
        let events = fed.events as f64;
        p.start_as("intake");
        let intake = |p: &Processor| p.metric("rallypoint_records_in_total", "stage=\"intake\"");
        let (intake_per_s, _) = p.rate_until(events, intake);
        p.stop();
        let before = self.broker.work();
        p.start_as("coordinator");
        let (drain_per_s, applied) = p.rate_until(events, Processor::applied);
        let work = self.broker.work().since(&before);
        let rallypoint = Drain::of(intake_per_s, drain_per_s, p.cpu_seconds(), &work, applied);
        p.stop();

        let namespace = p.config().kafka.namespace;
        let nations = NATIONS.join(",");
        let peer = |stage: &str| -> serde_json::Value {
            let out = Command::new("scripts/peer.sh")
                .args(["drain", "--bootstrap", &self.broker.bootstrap])
                .args(["--namespace", &namespace, "--nations", &nations])
                .args(["--stage", stage, "--expect", &fed.events.to_string()])
                .stderr(Stdio::inherit())
                .output()
                .expect("scripts/peer.sh runs");
            assert!(
                out.status.success(),
                "scripts/peer.sh drain --stage {stage} failed"
            );
            serde_json::from_slice(&out.stdout).expect("peer.sh prints one JSON line")
        };
        let figure = |v: &serde_json::Value, name: &str| v[name].as_f64().unwrap_or(f64::NAN);
        let peer_intake = peer("intake");
        let before = self.broker.work();
        let peer_fold = peer("fold");
        let work = self.broker.work().since(&before);
        // The peer's JVM compiles its hot paths during the drain: its warm rate (the second
        // half's) is the one compared, not counting the JIT against it.
        let peer = Drain::of(
            figure(&peer_intake, "steady_events_per_s"),
            figure(&peer_fold, "steady_events_per_s"),
            figure(&peer_fold, "cpu_seconds"),
            &work,
            events,
        );
        let result = SideBySide {
            events: fed.events,
            rallypoint,
            peer,
        };
        println!("{}", describe_side_by_side(&result));
        result
    }

    /// A fixed load: the feed at `rate` events/s for the run's seconds, the offer desks
    /// answering.
    fn run(&mut self, guarantee: &'static str, rate: f64) -> Run {
        let mut p = self.processor(guarantee);
        p.start();
        let config = p.config();
        let reader = LatencyReader::start(&config);
        let seconds = self.seconds;
        let feed = feed(config, rate, seconds);
        std::thread::sleep(Duration::from_secs_f64(WARM_UP));
        let warm_from_ms = now_ms();
        let (t0, n0) = (Instant::now(), p.applied());
        std::thread::sleep(Duration::from_secs_f64(seconds - WARM_UP));
        let (t1, n1) = (Instant::now(), p.applied());
        let report = feed.join().expect("the feed thread").expect("the feed ran");
        let ended = Instant::now();
        let applied_per_s = (n1 - n0) / (t1 - t0).as_secs_f64();
        // Let the decisions of what was fed arrive (at most 30 s more).
        let mut last = (Instant::now(), p.applied());
        while last.0.elapsed() < Duration::from_secs(1) && ended.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(200));
            let n = p.applied();
            if n != last.1 {
                last = (Instant::now(), n);
            }
        }
        let measured = Measured {
            feed_per_s: Some(rate),
            offered_per_s: Some((report.events + report.responses) as f64 / seconds),
            applied_per_s,
            behind_seconds: last.0.saturating_duration_since(ended).as_secs_f64(),
            // Decisions on inputs of the warm-up do not count, as its events do not.
            latency: latency(
                trace(reader.finish(), guarantee, rate)
                    .into_iter()
                    .filter(|(ts, _)| *ts >= warm_from_ms)
                    .map(|(_, ms)| ms)
                    .collect(),
            ),
        };
        finish(p, guarantee, &report, measured)
    }

    /// The state growing tenfold: a backlog of `base` events, then nine times as many more;
    /// peak RSS once each is applied. Then a warm restart on that state.
    fn growth(&mut self, base: u64) -> Growth {
        let guarantee = "exactly_once_v2";
        let mut p = self.processor(guarantee);
        let started = Instant::now();
        let fed = simulate::run(
            &p.config(),
            &simulate::Options {
                count: Some(base),
                ..options(0.0)
            },
        )
        .expect("the feed ran");
        p.start();
        let mut samples = Vec::new();
        let mut wait_for = |p: &Processor, events: f64| {
            let mut still = (Instant::now(), p.applied());
            while still.1 < events || still.0.elapsed() < Duration::from_secs(2) {
                let n = p.applied();
                if n != still.1 {
                    still = (Instant::now(), n);
                }
                samples.push((p.metric("rallypoint_state_keys", ""), p.memory_mib("VmHWM")));
                if still.0.elapsed() > Duration::from_secs(30) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            (
                p.metric("rallypoint_state_keys", ""),
                p.memory_mib("VmHWM"),
                still.1,
            )
        };
        let (keys_at_tenth, peak_at_tenth, applied) = wait_for(&p, fed.events as f64);
        let memory_at_tenth = Memory::of(&p);
        let more = simulate::run(
            &p.config(),
            &simulate::Options {
                count: Some(9 * base),
                seed: 8,
                ..options(0.0)
            },
        )
        .expect("the feed ran");
        let (keys_at_end, peak_at_end, _) = wait_for(&p, applied + more.events as f64);
        let memory_at_end = Memory::of(&p);
        p.stop();
        let warm_restart = p.start();
        p.stop();
        let g = Growth {
            guarantee,
            events: fed.events + more.events,
            seconds: started.elapsed().as_secs_f64(),
            samples,
            keys_at_tenth,
            peak_rss_mib_at_tenth: peak_at_tenth,
            keys_at_end,
            peak_rss_mib_at_end: peak_at_end,
            growth_share: peak_at_end / peak_at_tenth - 1.0,
            state_mib_at_end: p.state_mib(),
            memory_at_tenth,
            memory_at_end,
            warm_restart_seconds: warm_restart.as_secs_f64(),
        };
        println!(
            "growth: {:.0} → {:.0} state keys ({:.0} MiB on disk), peak RSS {:.0} → {:.0} MiB ({:+.0} %); warm restart ready in {:.2} s",
            g.keys_at_tenth,
            g.keys_at_end,
            g.state_mib_at_end,
            g.peak_rss_mib_at_tenth,
            g.peak_rss_mib_at_end,
            g.growth_share * 100.0,
            g.warm_restart_seconds
        );
        println!(
            "  memory at a tenth: {:?}\n  memory at the end: {:?}",
            g.memory_at_tenth, g.memory_at_end
        );
        g
    }
}

/// What a run measured while it ran.
struct Measured {
    feed_per_s: Option<f64>,
    offered_per_s: Option<f64>,
    applied_per_s: f64,
    behind_seconds: f64,
    latency: Option<Latency>,
}

/// The run's figures with the processor's memory and state at its end; stops the processor.
fn finish(mut p: Processor, guarantee: &'static str, fed: &simulate::Report, m: Measured) -> Run {
    let run = Run {
        guarantee,
        feed_per_s: m.feed_per_s,
        offered_per_s: m.offered_per_s,
        feed_seconds: fed.seconds,
        feed_events: fed.events,
        applied_per_s: m.applied_per_s,
        behind_seconds: m.behind_seconds,
        latency: m.latency,
        peak_rss_mib: p.memory_mib("VmHWM"),
        state_keys: p.metric("rallypoint_state_keys", ""),
        state_mib: p.state_mib(),
        broker: None,
    };
    p.stop();
    println!("{}", describe(&run));
    run
}

/// The simulated feed on a thread of its own.
fn feed(
    config: Config,
    rate: f64,
    seconds: f64,
) -> std::thread::JoinHandle<anyhow::Result<simulate::Report>> {
    let opts = simulate::Options {
        duration: Some(Duration::from_secs_f64(seconds)),
        ..options(rate)
    };
    std::thread::spawn(move || simulate::run(&config, &opts))
}

/// The feed: eight nations, all Avro, offer desks accepting 85 % of proposals.
fn options(rate: f64) -> simulate::Options {
    simulate::Options {
        rate,
        count: None,
        duration: None,
        nations: NATIONS.map(str::to_owned).to_vec(),
        json_share: 0.0,
        accept_share: 0.85,
        seed: 7,
        progress: false,
    }
}

fn describe_amplification(a: &Amplification) -> String {
    let mut out = format!(
        "  broker work per input event: {:.2} records, {:.0} bytes, broker CPU {:.0} µs (processor {:.0} µs)",
        a.records_per_event, a.bytes_per_event, a.broker_cpu_us_per_event, a.processor_cpu_us_per_event
    );
    for (kind, per) in &a.by_topic {
        let _ = write!(
            out,
            "\n    {kind:<26} {:>6.2} records {:>8.0} bytes",
            per.records, per.bytes
        );
    }
    let mut by_key: Vec<_> = a.changelog_by_key.iter().collect();
    by_key.sort_by(|x, y| y.1.total_cmp(x.1));
    let by_key: Vec<String> = by_key.iter().map(|(k, n)| format!("{k}/ {n:.2}")).collect();
    let _ = write!(out, "\n    changelog by key: {}", by_key.join(", "));
    out
}

fn describe(r: &Run) -> String {
    let offered = r
        .offered_per_s
        .map_or("max".to_owned(), |o| format!("{o:.0}/s"));
    let latency = r
        .latency
        .as_ref()
        .map_or("latency not measured".to_owned(), |l| {
            format!(
                "p50 {} ms, p99 {} ms, p99.9 {} ms ({} decisions)",
                l.p50_ms, l.p99_ms, l.p999_ms, l.samples
            )
        });
    format!(
        "{:<16} offered {:>9}: applied {:>8.0} events/s ({:.1} s behind at the end); {latency}; peak RSS {:.0} MiB; state {:.0} keys, {:.1} MiB",
        r.guarantee,
        offered,
        r.applied_per_s,
        r.behind_seconds,
        r.peak_rss_mib,
        r.state_keys,
        r.state_mib
    )
}

fn machine(broker: &Broker) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let version = std::fs::read_to_string(broker.service.folder().join("kafka-version"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "4.x".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib,
        kernel,
        broker: format!("Apache Kafka {version}, single node, same machine, loopback"),
        date,
    }
}

/// The mean of the maximum runs of `guarantee`.
fn maximum(runs: &[Run], guarantee: &str) -> f64 {
    let max: Vec<f64> = runs
        .iter()
        .filter(|r| r.guarantee == guarantee && r.offered_per_s.is_none())
        .map(|r| r.applied_per_s)
        .collect();
    max.iter().sum::<f64>() / max.len().max(1) as f64
}

fn targets(runs: &[Run], growth: Option<&Growth>, side: Option<&SideBySide>) -> Vec<Target> {
    let (eos, alos) = (
        maximum(runs, "exactly_once_v2"),
        maximum(runs, "at_least_once"),
    );
    let mut out = vec![
        Target {
            name: "end-to-end throughput, exactly once (mean of two maximum runs)",
            goal: "≥ 50,000 events/s".into(),
            measured: format!("{eos:.0} events/s"),
            met: eos >= 50_000.0,
        },
        Target {
            name: "exactly once vs at least once",
            goal: "≥ 85 %".into(),
            measured: format!(
                "{:.1} % ({eos:.0} / {alos:.0} events/s)",
                100.0 * eos / alos
            ),
            met: eos >= 0.85 * alos,
        },
    ];
    // The fixed load nearest half the exactly-once maximum.
    if let Some(half) = runs
        .iter()
        .filter(|r| r.guarantee == "exactly_once_v2" && r.offered_per_s.is_some())
        .min_by(|a, b| {
            let d = |r: &Run| (r.offered_per_s.unwrap_or(0.0) - eos / 2.0).abs();
            d(a).total_cmp(&d(b))
        })
    {
        let p99 = half.latency.as_ref().map_or(u32::MAX, |l| l.p99_ms);
        out.push(Target {
            name: "p99 latency at half the maximum load",
            goal: "≤ 250 ms".into(),
            measured: format!(
                "{p99} ms at {:.0} input events/s offered ({:.0} applied)",
                half.offered_per_s.unwrap_or(0.0),
                half.applied_per_s
            ),
            met: p99 <= 250,
        });
    }
    if let Some(s) = side {
        let ratio = s.rallypoint.drain_per_s / s.peer.drain_per_s;
        out.push(Target {
            name: "journal drained, exactly once, against the Kafka Streams peer",
            goal: "≥ 2×".into(),
            measured: format!(
                "{ratio:.2}× ({:.0} / {:.0} events/s)",
                s.rallypoint.drain_per_s, s.peer.drain_per_s
            ),
            met: ratio >= 2.0,
        });
    }
    if let Some(g) = growth {
        out.push(Target {
            name: "warm restart",
            goal: "≤ 5 s".into(),
            measured: format!("{:.2} s to ready", g.warm_restart_seconds),
            met: g.warm_restart_seconds <= 5.0,
        });
        out.push(Target {
            name: "peak RSS when the state grows tenfold",
            goal: "within 10 %".into(),
            measured: format!(
                "{:+.0} % ({:.0} → {:.0} MiB while keys grew {:.0} → {:.0})",
                g.growth_share * 100.0,
                g.peak_rss_mib_at_tenth,
                g.peak_rss_mib_at_end,
                g.keys_at_tenth,
                g.keys_at_end
            ),
            met: g.growth_share <= 0.10,
        });
    }
    out
}

/// Two panels: events/s applied against offered, and latency quantiles against offered.
fn chart(report: &Report) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 540.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="24" font-size="15" font-weight="bold">Rallypoint end to end: {} ({} cores), {}</text>
"##,
        report.machine.cpu, report.machine.cores, report.machine.date
    );
    let fixed: Vec<&Run> = report
        .runs
        .iter()
        .filter(|r| r.offered_per_s.is_some())
        .collect();
    let x_max = fixed
        .iter()
        .filter_map(|r| r.offered_per_s)
        .fold(1.0, f64::max)
        * 1.1;
    let y_max = report
        .runs
        .iter()
        .map(|r| r.applied_per_s)
        .fold(x_max, f64::max)
        * 1.05;
    let series = [
        ("exactly_once_v2", "#1f6fb4", "exactly once"),
        ("at_least_once", "#e07b00", "at least once"),
    ];
    // Left: throughput.
    let (lx, ly, pw, ph) = (70.0, 60.0, 380.0, 320.0);
    axes(&mut svg, lx, ly, pw, ph, x_max, y_max, false);
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">offered input events/s (feed and answers)</text>
<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">applied events/s</text>
<text x="{lx}" y="{}" font-weight="bold">Throughput (dashed: offered; flat lines: each maximum)</text>
<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 4"/>
"##,
        lx + pw / 2.0,
        ly + ph + 36.0,
        lx - 52.0,
        ly + ph / 2.0,
        lx - 52.0,
        ly + ph / 2.0,
        ly - 10.0,
        ly + ph,
        lx + pw * (y_max.min(x_max) / x_max),
        ly + ph - ph * (y_max.min(x_max) / y_max),
    );
    for (g, colour, _) in series {
        let points: Vec<(f64, f64)> = fixed
            .iter()
            .filter(|r| r.guarantee == g)
            .map(|r| (r.offered_per_s.unwrap_or(0.0), r.applied_per_s))
            .collect();
        line(&mut svg, &points, colour, |(x, y)| {
            (lx + pw * x / x_max, ly + ph - ph * y / y_max)
        });
        {
            let y = ly + ph - ph * maximum(&report.runs, g) / y_max;
            let _ = writeln!(
                svg,
                r##"<line x1="{lx}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{colour}" stroke-width="1" opacity="0.6"/>"##,
                lx + pw
            );
        }
    }
    // Right: latency, log scale.
    let (rx, ry) = (560.0, 60.0);
    let l_max = fixed
        .iter()
        .filter_map(|r| r.latency.as_ref().map(|l| l.p999_ms))
        .max()
        .unwrap_or(1000)
        .max(300) as f64
        * 1.5;
    axes(&mut svg, rx, ry, pw, ph, x_max, l_max, true);
    let log_y = |ms: f64| ry + ph - ph * (ms.max(1.0).log10() / l_max.log10());
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle">offered input events/s (feed and answers)</text>
<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">input → read_committed decision (ms)</text>
<text x="{rx}" y="{}" font-weight="bold">Latency p50 · p99 - - p99.9 ··· (red: 250 ms)</text>
<line x1="{rx}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#c00" stroke-dasharray="2 3"/>
"##,
        rx + pw / 2.0,
        ry + ph + 36.0,
        rx - 52.0,
        ry + ph / 2.0,
        rx - 52.0,
        ry + ph / 2.0,
        ry - 10.0,
        log_y(250.0),
        rx + pw,
        log_y(250.0),
    );
    for (g, colour, _) in series {
        for (q, dash) in [(0, ""), (1, "6 4"), (2, "2 3")] {
            let points: Vec<(f64, f64)> = fixed
                .iter()
                .filter(|r| r.guarantee == g)
                .filter_map(|r| {
                    let l = r.latency.as_ref()?;
                    let ms = [l.p50_ms, l.p99_ms, l.p999_ms][q] as f64;
                    Some((r.offered_per_s.unwrap_or(0.0), ms))
                })
                .collect();
            let mut path = String::new();
            line(&mut path, &points, colour, |(x, y)| {
                (rx + pw * x / x_max, log_y(y))
            });
            svg.push_str(&path.replace(
                "<polyline ",
                &format!("<polyline stroke-dasharray=\"{dash}\" "),
            ));
        }
    }
    // Legend and targets.
    let mut y = 440.0;
    for (i, (_, colour, name)) in series.iter().enumerate() {
        let x = 70.0 + 160.0 * i as f64;
        let _ = writeln!(
            svg,
            r##"<rect x="{x}" y="{}" width="14" height="4" fill="{colour}"/><text x="{}" y="{y}">{name}</text>"##,
            y - 5.0,
            x + 20.0
        );
    }
    for t in &report.targets {
        y += 16.0;
        let _ = writeln!(
            svg,
            r##"<text x="70" y="{y}" fill="{}">{} {}: {} (target {})</text>"##,
            if t.met { "#2a7d2a" } else { "#b00" },
            if t.met { "✓" } else { "✗" },
            escape(t.name),
            escape(&t.measured),
            escape(&t.goal)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[allow(clippy::too_many_arguments)]
fn axes(svg: &mut String, x: f64, y: f64, w: f64, h: f64, x_max: f64, y_max: f64, log: bool) {
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="none" stroke="#333"/>"##
    );
    for i in 0..=4 {
        let v = x_max * i as f64 / 4.0;
        let px = x + w * i as f64 / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y + h + 16.0,
            thousands(v)
        );
    }
    let ticks: Vec<f64> = if log {
        [1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0]
            .into_iter()
            .filter(|t| *t <= y_max)
            .collect()
    } else {
        (0..=4).map(|i| y_max * i as f64 / 4.0).collect()
    };
    for t in ticks {
        let py = if log {
            y + h - h * (t.log10() / y_max.log10())
        } else {
            y + h - h * t / y_max
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x + w,
            x - 4.0,
            py + 4.0,
            thousands(t)
        );
    }
}

fn line(
    svg: &mut String,
    points: &[(f64, f64)],
    colour: &str,
    at: impl Fn((f64, f64)) -> (f64, f64),
) {
    let coords: Vec<String> = points
        .iter()
        .map(|p| {
            let (x, y) = at(*p);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
        coords.join(" ")
    );
    for c in coords {
        let (x, y) = c.split_once(',').unwrap_or(("0", "0"));
        let _ = writeln!(
            svg,
            r##"<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>"##
        );
    }
}

fn thousands(v: f64) -> String {
    if v >= 1000.0 {
        let k = format!("{:.1}", v / 1000.0);
        format!("{}k", k.trim_end_matches(".0"))
    } else {
        format!("{v:.0}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names something else skips this harness.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args
        .iter()
        .any(|a| !a.starts_with('-') && !"e2e".contains(a.as_str()))
    {
        return;
    }
    let out = PathBuf::from(
        std::env::var("E2E_OUT").unwrap_or_else(|_| "target/rallypoint-bench/e2e".into()),
    );
    let seconds: f64 = env_or("E2E_SECONDS", 20.0_f64).max(WARM_UP + 2.0);
    let growth_base: u64 = env_or("E2E_GROWTH_BASE", 50_000);
    let loads: Vec<f64> = std::env::var("E2E_LOADS")
        .unwrap_or_else(|_| "0.05,0.1,0.25,0.5,1.0".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut bench = Bench {
        broker: Broker::start(),
        work: tempfile::tempdir().expect("a temporary folder"),
        seconds,
        runs: 0,
    };
    let backlog: u64 = env_or("E2E_BACKLOG", 100_000);
    // A new broker spends its first minute compiling its hot paths (the JVM's C2 compiler
    // takes most of a core): one unmeasured run first, so that the first measured one is not
    // the slower for it.
    println!("warming the broker up (not measured)");
    bench.max("exactly_once_v2", backlog);
    // Each maximum twice, in turns: one run each would compare two moments of the machine.
    let mut runs = Vec::new();
    for _ in 0..2 {
        for g in ["exactly_once_v2", "at_least_once"] {
            runs.push(bench.max(g, backlog));
        }
    }
    // E2E_PEER=0 leaves the Kafka Streams peer out.
    let side_by_side = (env_or("E2E_PEER", 1) != 0).then(|| bench.side_by_side(backlog));
    let eos_max = maximum(&runs, "exactly_once_v2");
    // A load is a share of the maximum in input events; the offer desks add their answers to
    // the feed's events. How many they add is learnt from the first, lightest load (a loaded
    // machine answers fewer in time); 1.2 answers per feed event until then.
    let mut inputs_per_feed_event = None;
    for share in &loads {
        let ratio = inputs_per_feed_event.unwrap_or(2.2);
        let rate = (eos_max * share / ratio).round().max(10.0);
        for g in ["exactly_once_v2", "at_least_once"] {
            let run = bench.run(g, rate);
            if let (None, Some(offered), Some(feed)) =
                (inputs_per_feed_event, run.offered_per_s, run.feed_per_s)
            {
                inputs_per_feed_event = Some(offered / feed);
            }
            runs.push(run);
        }
    }
    let growth = (growth_base > 0).then(|| bench.growth(growth_base));
    let report = Report {
        machine: machine(&bench.broker),
        targets: targets(&runs, growth.as_ref(), side_by_side.as_ref()),
        runs,
        growth,
        side_by_side,
    };
    for t in &report.targets {
        println!(
            "{} {}: {} (target {})",
            if t.met { "met    " } else { "NOT met" },
            t.name,
            t.measured,
            t.goal
        );
    }
    std::fs::create_dir_all(&out).expect("the report folder");
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(&report).expect("JSON"),
    )
    .expect("report.json");
    std::fs::write(out.join("report.svg"), chart(&report)).expect("report.svg");
    println!(
        "report: {}, chart: {}",
        out.join("report.json").display(),
        out.join("report.svg").display()
    );
}

/// With `E2E_TRACE` set to a folder, writes a run's latency samples there as CSV (input
/// timestamp in ms, latency in ms), to find when the slow ones came.
fn trace(samples: Vec<(i64, u32)>, guarantee: &str, feed_per_s: f64) -> Vec<(i64, u32)> {
    if let Ok(dir) = std::env::var("E2E_TRACE") {
        let mut csv = String::from("input_ts_ms,latency_ms\n");
        for (ts, ms) in &samples {
            let _ = writeln!(csv, "{ts},{ms}");
        }
        let path = Path::new(&dir).join(format!("latency-{guarantee}-{feed_per_s:.0}.csv"));
        if let Err(e) = std::fs::write(&path, csv) {
            eprintln!("E2E_TRACE: cannot write {}: {e}", path.display());
        }
    }
    samples
}
