//! Rallypoint's test harness: the `rallypoint` binary as a black box against a real broker
//! (each test under a namespace of its own, so tests share one broker without seeing each
//! other), more processor instances ([`Node`]), services of a test's own ([`LocalService`]:
//! a broker, a schema registry), and the exactly-once check ([`assert_exactly_once`]), which
//! compares the committed topics with the pure fold of the journal (`rallypoint::implied`),
//! what a broker wrote and spent in a run ([`broker_work`]), and a benchmark's own processor
//! process ([`process::Processor`]). The load generator is the product's own simulated feed
//! (`rallypoint::simulate`, `rallypoint simulate`).

pub mod broker_work;
pub mod process;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rallypoint::codec::Codec;
use rallypoint_core::event::Event;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub fn bootstrap() -> String {
    std::env::var("RALLYPOINT_TEST_BOOTSTRAP").expect(
        "RALLYPOINT_TEST_BOOTSTRAP is not set: run the suite with scripts/test.sh, which starts a local Kafka broker",
    )
}

/// The `rallypoint` binary cargo built with the test that runs: tests and benchmarks run from
/// `<target>/<profile>/deps/`, the binary is `<target>/<profile>/rallypoint` (what
/// `CARGO_BIN_EXE_rallypoint` names in the package's own tests).
pub fn built_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("a test runs from <target>/<profile>/deps");
    let bin = profile.join("rallypoint");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo builds it with the package's tests)",
        bin.display()
    );
    bin
}

/// Links the binary cargo built for this test run into `dir`, so that the test runs it even
/// if a later build (of another checkout sharing the target folder) replaces
/// `target/release/rallypoint` meanwhile: cargo replaces that file, it does not rewrite it, so
/// the link keeps the original. A copy where a link cannot be made.
fn pin_binary(dir: &std::path::Path) -> PathBuf {
    let built = built_binary();
    let built = built.as_path();
    let pinned = dir.join("rallypoint");
    if std::fs::hard_link(built, &pinned).is_err() {
        std::fs::copy(built, &pinned).unwrap();
    }
    pinned
}

pub struct Harness {
    pub namespace: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub codec: Codec,
    /// The processor's HTTP port (metrics, health).
    pub http_port: u16,
    /// The query API's port, and (audience, token) of each audience, when the harness enables
    /// the API (see [`Harness::with_query_api`]).
    pub query_port: u16,
    pub tokens: Vec<(String, String)>,
    /// The broker this harness works on.
    pub bootstrap: String,
    /// The binary under test, pinned (see [`pin_binary`]).
    pub bin: PathBuf,
    producer: BaseProducer,
    child: Option<Child>,
    nations: Vec<String>,
    extra: String,
    sections: String,
}

/// One more processor instance on the harness's topics: its own `kafka.instance_id`, state
/// folder, HTTP port and log.
pub struct Node {
    pub instance: String,
    bin: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub http_port: u16,
    log: PathBuf,
    child: Option<Child>,
    /// When the running process was started.
    pub started: Option<Instant>,
}

/// A consumed record: key, value, and headers as (key, value) pairs.
pub struct Record {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    /// The value; empty for a record without one (see `null_value`).
    pub value: Vec<u8>,
    /// The record had a null value (a tombstone), not an empty one.
    pub null_value: bool,
    pub headers: Vec<(String, Vec<u8>)>,
    pub offset: i64,
}

impl Harness {
    /// `extra`: more lines for the `[kafka]` section.
    pub fn new(name: &str, nations: &[&str], extra: &str) -> Self {
        Self::with_sections(name, nations, extra, "")
    }

    /// As [`Harness::new`], with more TOML tables (other than kafka, state, http, topics)
    /// appended to the configuration.
    pub fn with_sections(name: &str, nations: &[&str], extra: &str, sections: &str) -> Self {
        Self::on_broker(&bootstrap(), name, nations, extra, sections)
    }

    /// As [`Harness::with_sections`], with the query API enabled on a port of its own and a
    /// token for the cell and each nation, given to every command through the environment;
    /// `query_api`: more lines for the `[query_api]` section (e.g. TLS files).
    pub fn with_query_api(
        name: &str,
        nations: &[&str],
        extra: &str,
        sections: &str,
        query_api: &str,
    ) -> Self {
        let tokens = std::iter::once("cell")
            .chain(nations.iter().copied())
            .map(|a| {
                (
                    a.to_owned(),
                    format!("{a}-{}", uuid::Uuid::new_v4().simple()),
                )
            })
            .collect();
        Self::build(
            &bootstrap(),
            name,
            nations,
            extra,
            sections,
            Some((query_api, tokens)),
        )
    }

    /// As [`Harness::with_sections`], on the broker at `bootstrap`.
    pub fn on_broker(
        bootstrap: &str,
        name: &str,
        nations: &[&str],
        extra: &str,
        sections: &str,
    ) -> Self {
        Self::build(bootstrap, name, nations, extra, sections, None)
    }

    fn build(
        bootstrap: &str,
        name: &str,
        nations: &[&str],
        extra: &str,
        sections: &str,
        query_api: Option<(&str, Vec<(String, String)>)>,
    ) -> Self {
        let namespace = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rallypoint.toml");
        let listen = free_port();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .unwrap();
        let bin = pin_binary(dir.path());
        let query_port = free_port();
        let (sections, tokens) = match query_api {
            Some((lines, tokens)) => (
                format!(
                    "{sections}\n[query_api]\nenabled = true\nlisten = \"127.0.0.1:{query_port}\"\n{lines}\n"
                ),
                tokens,
            ),
            None => (sections.to_owned(), Vec::new()),
        };
        let h = Self {
            namespace,
            config,
            codec: Codec::new().unwrap(),
            http_port: listen,
            query_port,
            tokens,
            bootstrap: bootstrap.to_owned(),
            bin,
            producer,
            child: None,
            nations: nations.iter().map(|n| n.to_string()).collect(),
            extra: extra.to_owned(),
            sections,
            dir,
        };
        h.write_config(&h.config, None, &h.dir.path().join("state"), listen);
        let out = h.command(&["topics", "create"]).output().unwrap();
        assert!(
            out.status.success(),
            "topics create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        h
    }

    /// Writes a configuration for this harness's topics; `instance`: a `kafka.instance_id`
    /// other than the default.
    fn write_config(
        &self,
        path: &std::path::Path,
        instance: Option<&str>,
        state: &std::path::Path,
        port: u16,
    ) {
        let nations = self
            .nations
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let instance = instance
            .map(|i| format!("instance_id = \"{i}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            path,
            format!(
                "nations = [{nations}]\n[kafka]\nbootstrap_servers = \"{}\"\nnamespace = \"{}\"\n{instance}{}\n\
                 [state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[topics]\ninput_partitions = 2\n\
                 output_partitions = 1\n{}\n",
                self.bootstrap,
                self.namespace,
                self.extra,
                state.display(),
                self.sections,
            ),
        )
        .unwrap();
    }

    /// Another processor instance on the same topics, not yet started.
    pub fn node(&self, instance: &str) -> Node {
        let config = self.dir.path().join(format!("rallypoint-{instance}.toml"));
        let state = self.dir.path().join(format!("state-{instance}"));
        let port = free_port();
        self.write_config(&config, Some(instance), &state, port);
        Node {
            instance: instance.to_owned(),
            bin: self.bin.clone(),
            config,
            state,
            http_port: port,
            log: self.dir.path().join(format!("run-{instance}.log")),
            child: None,
            started: None,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn,rallypoint=info");
        for (audience, token) in &self.tokens {
            c.env(
                format!(
                    "RALLYPOINT__QUERY_API__TOKENS__{}",
                    audience.to_ascii_uppercase()
                ),
                token,
            );
        }
        c
    }

    /// The configuration the processor runs with, tokens included.
    pub fn load_config(&self) -> rallypoint::config::Config {
        rallypoint::config::Config::load_with_vars(
            Some(&self.config),
            self.tokens.iter().map(|(audience, token)| {
                (
                    format!(
                        "RALLYPOINT__QUERY_API__TOKENS__{}",
                        audience.to_ascii_uppercase()
                    ),
                    token.clone(),
                )
            }),
        )
        .unwrap()
    }

    /// The token of `audience` (`cell` or a nation), with [`Harness::with_query_api`].
    pub fn token(&self, audience: &str) -> &str {
        &self
            .tokens
            .iter()
            .find(|(a, _)| a == audience)
            .unwrap_or_else(|| panic!("no token for {audience}"))
            .1
    }

    /// GET `path` from the query API's plain-HTTP listener with `audience`'s bearer token (or
    /// none): (status code, response head, body).
    pub fn api_get(&self, path: &str, audience: Option<&str>) -> (u16, String, String) {
        let auth = audience.map(|a| format!("Bearer {}", self.token(a)));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|v| vec![("Authorization", v)])
            .unwrap_or_default();
        http_request(self.query_port, path, &headers).unwrap()
    }

    /// As [`Harness::api_get`], retried until the answer is not 503 (the coordinator is still
    /// starting) or `timeout` passes.
    pub fn api_get_ready(
        &self,
        path: &str,
        audience: Option<&str>,
        timeout: Duration,
    ) -> (u16, String) {
        let started = Instant::now();
        loop {
            let answer = http_request(
                self.query_port,
                path,
                &audience
                    .map(|a| ("Authorization", format!("Bearer {}", self.token(a))))
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect::<Vec<_>>(),
            );
            if let Ok((status, _, body)) = answer {
                if status != 503 || started.elapsed() > timeout {
                    return (status, body);
                }
            }
            assert!(
                started.elapsed() < timeout,
                "the query API does not answer\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Queues `e` on its input topic without waiting; [`Harness::flush`] waits for all.
    pub fn queue(&self, e: &Event) {
        let topic = self.topic(&format!(
            "rrc.in.{}.{}",
            e.envelope().nation,
            e.stream().suffix()
        ));
        let value = self.codec.encode_event(e);
        let mut record = BaseRecord::to(&topic)
            .key(e.entity_id().as_bytes())
            .payload(&value);
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("queueing an input event: {e}"),
            }
        }
    }

    pub fn flush(&self) {
        self.producer.flush(Duration::from_secs(300)).unwrap();
    }

    pub fn topic(&self, base: &str) -> String {
        format!("{}.{base}", self.namespace)
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("run.log"))
            .unwrap();
        let child = self
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown hook, no last commit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run.log")).unwrap_or_default()
    }

    pub fn send(&self, e: &Event) {
        let topic = self.topic(&format!(
            "rrc.in.{}.{}",
            e.envelope().nation,
            e.stream().suffix()
        ));
        self.send_raw(
            &topic,
            e.entity_id().as_bytes(),
            &self.codec.encode_event(e),
        );
    }

    /// `nation` reports `incident` and asks for `needs` in `request`: the two events a CERT
    /// sends when it is hit.
    pub fn ask_for_help(
        &self,
        clock: &mut rallypoint_core::sample::Clock,
        (nation, incident, request): (&str, &str, &str),
        (tlp, priority): (
            rallypoint_core::event::Tlp,
            rallypoint_core::event::Priority,
        ),
        needs: &[(rallypoint_core::event::Capability, i32)],
    ) {
        use rallypoint_core::sample;
        self.send(&sample::incident(
            clock.envelope(nation),
            incident,
            tlp,
            priority,
        ));
        self.send(&sample::request(
            clock.envelope(nation),
            request,
            incident,
            needs,
        ));
    }

    pub fn send_raw(&self, topic: &str, key: &[u8], value: &[u8]) {
        self.producer
            .send(BaseRecord::to(topic).key(key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
        self.producer.flush(Duration::from_secs(10)).unwrap();
    }

    /// Every committed record of partition 0..partitions of `topic`, read until `want` arrive or
    /// `timeout` passes.
    pub fn read(&self, base: &str, want: usize, timeout: Duration) -> Vec<Record> {
        read_committed_at(&self.bootstrap, &self.topic(base), want, timeout)
    }

    /// Every committed record of `base` up to its end (all partitions).
    pub fn read_all(&self, base: &str) -> Vec<Record> {
        read_to_end(&self.bootstrap, &self.topic(base))
    }

    /// As [`Harness::read_all`], a commit seal's tombstones included.
    pub fn read_all_with_seals(&self, base: &str) -> Vec<Record> {
        read_to_end_seals(&self.bootstrap, &self.topic(base), true)
    }

    /// The next offset the coordinator will read from the journal, as its committed state
    /// says (the last `p/journal_next` on the changelog); `None` before its first commit. Not
    /// the group's committed offset: the broker can keep that unreadable (see
    /// `rallypoint::kafka::rewind_to_committed`).
    pub fn coordinator_position(&self) -> Option<i64> {
        read_to_end(&self.bootstrap, &self.topic("rrc.internal.changelog"))
            .iter()
            .filter_map(journal_next)
            .next_back()
    }

    /// The end of partition 0 of `base` (its high watermark).
    pub fn end_offset(&self, base: &str) -> i64 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        consumer
            .fetch_watermarks(&self.topic(base), 0, Duration::from_secs(30))
            .unwrap()
            .1
    }
}

impl Harness {
    /// GET `path` from the processor's HTTP endpoint: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.http_port, path)
    }

    /// The value of metric `name` on the processor's `/metrics`, summed over its series.
    pub fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.http_get("/metrics").1, name)
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if std::net::TcpStream::connect(("127.0.0.1", self.http_port)).is_ok()
                && self.http_get("/readyz").0 == 200
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for Harness {
    /// Kills the processor; when the test failed, keeps its folder (configuration, state,
    /// `run.log`) and says where, for a look after the fact.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let dir = std::mem::replace(&mut self.dir, tempfile::TempDir::new().unwrap());
            eprintln!(
                "the processor's folder (run.log, state, configuration) is kept in {}",
                dir.keep().display()
            );
        }
    }
}

impl Node {
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts the processor with more environment variables (e.g. `RALLYPOINT_FAULT`).
    pub fn start_with(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("RUST_LOG", "warn,rallypoint=info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            c.env(k, v);
        }
        self.started = Some(Instant::now());
        self.child = Some(c.spawn().unwrap());
    }

    /// SIGKILL: no shutdown hook, no last commit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running (it has not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// The process's exit status once it has ended, waiting up to `timeout` (zero: looks
    /// once).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait().unwrap() {
                    self.child = None;
                    return Some(status);
                }
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// (status, body) of `path`, or None while the server does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        try_http_get(self.http_port, path).ok()
    }

    /// Waits until `/readyz` answers 200 with a body containing `want`; the time waited.
    pub fn wait_readyz(&self, want: &str, timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some((200, body)) = self.get("/readyz") {
                if body.contains(want) {
                    return Some(started.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The value of metric `name` on `/metrics`, summed over its series.
    pub fn metric(&self, name: &str) -> Option<f64> {
        metric_value(&self.get("/metrics")?.1, name)
    }
}

/// The value of metric `name` in a Prometheus text exposition, summed over its series; `None`
/// when it has none.
pub fn metric_value(body: &str, name: &str) -> Option<f64> {
    labelled_metric_value(body, name, "")
}

/// As [`metric_value`], over the series whose line contains `labels` (e.g. `stage="intake"`).
pub fn labelled_metric_value(body: &str, name: &str, labels: &str) -> Option<f64> {
    let values: Vec<f64> = body
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
                && l.contains(labels)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read_committed(topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    read_committed_at(&bootstrap(), topic, want, timeout)
}

/// Every committed record of every partition of `topic`, up to each partition's end; a commit
/// seal's tombstone is skipped, as the contract asks of every consumer.
pub fn read_to_end(bootstrap: &str, topic: &str) -> Vec<Record> {
    read_to_end_seals(bootstrap, topic, false)
}

/// As [`read_to_end`]; with `seals`, a commit seal's tombstones are kept (for the tests of
/// the seal itself).
pub fn read_to_end_seals(bootstrap: &str, topic: &str, seals: bool) -> Vec<Record> {
    let (consumer, partitions) = reader_from_start(bootstrap, topic, true);
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let started = Instant::now();
    while at_end.len() < partitions as usize {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{topic}: not at its end after 5 minutes"
        );
        match consumer.poll(Duration::from_millis(200)) {
            // A commit seal's tombstone: the contract tells every consumer to skip it.
            Some(Ok(m)) if !seals && rallypoint::kafka::is_seal(m.key(), m.payload()) => {}
            Some(Ok(m)) => out.push(record(&m)),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    out
}

/// A `read_committed` consumer of every partition of `topic` from its start, and how many
/// partitions it has; `eof`: partition ends are reported.
fn reader_from_start(bootstrap: &str, topic: &str, eof: bool) -> (BaseConsumer, i32) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", eof.to_string())
        .create()
        .unwrap();
    let partitions = partitions_of(&consumer, topic);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    (consumer, partitions)
}

fn record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    use rdkafka::message::Headers;
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    Record {
        partition: m.partition(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().unwrap_or_default().to_vec(),
        null_value: m.payload().is_none(),
        headers,
        offset: m.offset(),
    }
}

pub fn read_committed_at(
    bootstrap: &str,
    topic: &str,
    want: usize,
    timeout: Duration,
) -> Vec<Record> {
    let (consumer, _) = reader_from_start(bootstrap, topic, false);
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < want && started.elapsed() < timeout {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            if !rallypoint::kafka::is_seal(m.key(), m.payload()) {
                out.push(record(&m));
            }
        }
    }
    out
}

/// The partition count of `topic`. Right after creation, metadata may list the topic with an
/// error and no partitions yet: ask again until it answers in full.
fn partitions_of(consumer: &BaseConsumer, topic: &str) -> i32 {
    let started = Instant::now();
    loop {
        let meta = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let t = &meta.topics()[0];
        if t.error().is_none()
            && !t.partitions().is_empty()
            && t.partitions().iter().all(|p| p.leader() >= 0)
        {
            return t.partitions().len() as i32;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{topic} has no partitions with leaders after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GET `path` from an HTTP server on a loopback port: (status code, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    try_http_get(port, path).unwrap()
}

/// As [`http_get`], with an error while the server does not answer.
pub fn try_http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, path, &[]).map(|(status, _, body)| (status, body))
}

/// GET `path` over plain HTTP/1.0 with `headers`: (status, response head, body).
pub fn http_request(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or((text.clone(), String::new()));
    Ok((status, head, body))
}

/// A service of the test's own, run by a script of `scripts/` (`kafka-local.sh`,
/// `schema-registry.sh`) in a temporary folder: `<PREFIX>_LOCAL_DIR` names the folder, and
/// `<PREFIX>_PORT` is cleared so that a free port is taken. Stopped and removed on drop.
pub struct LocalService {
    script: &'static str,
    prefix: &'static str,
    env: Vec<(&'static str, String)>,
    dir: tempfile::TempDir,
}

impl LocalService {
    /// `env`: more variables for every call of the script.
    pub fn new(script: &'static str, prefix: &'static str, env: &[(&'static str, &str)]) -> Self {
        Self {
            script,
            prefix,
            env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The service's working folder.
    pub fn folder(&self) -> PathBuf {
        self.dir.path().join(self.prefix.to_lowercase())
    }

    /// Runs `script <args>`; returns the last line it prints (the address, after `start`).
    pub fn run(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "{} {args:?} failed", self.script);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Runs `script <args>`, whatever its outcome; its stdout and stderr.
    pub fn output(&self, args: &[&str]) -> String {
        match self.command(args).output() {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("{} {args:?}: {e}", self.script),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(format!("scripts/{}", self.script));
        c.args(args)
            .env(format!("{}_LOCAL_DIR", self.prefix), self.folder())
            .env_remove(format!("{}_PORT", self.prefix))
            .envs(self.env.iter().map(|(k, v)| (*k, v)));
        c
    }
    /// A guard that, if the test fails while it lives, prints the open transactions Kafka's
    /// own tool finds on this broker and copies the broker's folder into `kept` (next to any
    /// logs the test keeps there), for a look at the topics themselves.
    pub fn keep_on_failure(&self, kept: PathBuf) -> KeepOnFailure<'_> {
        KeepOnFailure { broker: self, kept }
    }
}

/// See [`LocalService::keep_on_failure`].
pub struct KeepOnFailure<'a> {
    broker: &'a LocalService,
    kept: PathBuf,
}

impl Drop for KeepOnFailure<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for args in [&["list"][..], &["find-hanging", "--broker-id", "1"][..]] {
            let mut all = vec!["transactions"];
            all.extend_from_slice(args);
            let out = self.broker.output(&all);
            eprintln!("kafka-transactions {}:\n{out}", args.join(" "));
        }
        let _ = std::fs::create_dir_all(&self.kept);
        self.broker.run(&["stop"]);
        let data = self.kept.join("kafka");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(self.broker.folder())
            .arg(&data)
            .status();
        eprintln!(
            "the broker's folder is copied to {} ({copied:?})",
            data.display()
        );
    }
}

impl Drop for LocalService {
    fn drop(&mut self) {
        let _ = self.command(&["stop", "--clean"]).output();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What [`assert_exactly_once`] found.
pub struct Checked {
    pub journaled: usize,
    pub decisions: usize,
    /// Decision topics compared: each nation's and the coalition's.
    pub topics: usize,
    pub pictures: usize,
    /// Hunt records compared, over the hunt topics of `nations`.
    pub hunts: usize,
    pub dead_letters: usize,
}

/// Asserts that every event of `sent` was journaled exactly once, and that the committed
/// decision topics of `nations` and the coalition, and the hunt topics of `nations`, hold
/// exactly, in order and byte for byte (a tombstone where the fold removed a hunt record),
/// what the pure core derives from the journal; and the dead-letter topic as many records as
/// the fold rejects (`sent` holds valid events only, so intake rejects none).
pub fn assert_exactly_once(
    h: &Harness,
    sent: &[impl std::borrow::Borrow<Event>],
    nations: &[&str],
) -> Checked {
    use rallypoint::codec::Format;
    use rallypoint::implied::{self, Emitted};
    use std::collections::{BTreeMap, BTreeSet};
    let journal = h.read_all("rrc.internal.journal");
    let events: Vec<(i64, Event)> = journal
        .iter()
        .map(|r| (r.offset, h.codec.decode_event(&r.value).unwrap()))
        .collect();
    let ids: Vec<&str> = events
        .iter()
        .map(|(_, e)| e.envelope().event_id.as_str())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    let want: BTreeSet<&str> = sent
        .iter()
        .map(|e| e.borrow().envelope().event_id.as_str())
        .collect();
    assert_eq!(
        ids.len(),
        unique.len(),
        "an input was journaled twice\n{}",
        journaled_twice(&journal, &ids)
    );
    assert_eq!(unique.len(), want.len(), "every input journaled once");
    assert!(unique == want, "the journal holds exactly the inputs sent");

    // The one replay check (`rallypoint::implied`): recompute what the journal implies, then
    // compare every decision topic and the threat picture with it.
    let config = h.load_config();
    let topics = rallypoint::kafka::Topics::new(&config);
    let implied = implied::recompute(
        events,
        &mut rallypoint_core::MemStore::new(),
        &config.core(),
        &h.codec,
        Format::Avro,
        &topics,
    )
    .unwrap();
    let names: Vec<String> = nations
        .iter()
        .map(|n| topics.decisions(n))
        .chain([topics.coalition_decisions()])
        .collect();
    let hunts: Vec<String> = nations
        .iter()
        .map(|n| topics.hunt(n))
        .chain([topics.coalition_hunt()])
        .collect();
    let mut emitted = BTreeMap::new();
    for topic in names.iter().chain([&implied.picture_topic]).chain(&hunts) {
        let records = h
            .read_all(topics.strip(topic))
            .into_iter()
            .map(|r| Emitted {
                partition: r.partition,
                key: r.key.unwrap_or_default(),
                value: (!r.null_value).then_some(r.value),
            })
            .collect();
        emitted.insert(topic.clone(), records);
    }
    let agreed = implied::compare(&implied, &names, &emitted)
        .unwrap_or_else(|e| panic!("the output differs from the fold of the journal: {e}"));
    let dead_letters = h.read_all("rrc.dlq").len();
    assert_eq!(
        dead_letters as u64, implied.rejections,
        "dead letters: none lost or repeated"
    );
    Checked {
        journaled: implied.events as usize,
        decisions: agreed.decisions,
        topics: agreed.topics,
        pictures: agreed.pictures,
        hunts: agreed.hunts,
        dead_letters,
    }
}

/// The first inputs journaled more than once: each copy's journal offset and its `rp.source`
/// (the feed record it came from), to tell a re-read input from one sent twice.
fn journaled_twice(journal: &[Record], ids: &[&str]) -> String {
    use std::collections::BTreeMap;
    let mut at: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        at.entry(id).or_default().push(i);
    }
    let mut twice: Vec<&Vec<usize>> = at.values().filter(|v| v.len() > 1).collect();
    twice.sort();
    let source = |i: usize| {
        journal[i]
            .headers
            .iter()
            .find(|(k, _)| k == "rp.source")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let mut out = format!(
        "{} inputs journaled more than once; the first:\n",
        twice.len()
    );
    for copies in twice.iter().take(10) {
        let line: Vec<String> = copies
            .iter()
            .map(|&i| format!("journal offset {} from {}", journal[i].offset, source(i)))
            .collect();
        out.push_str(&format!("  {}\n", line.join(", ")));
    }
    if let Some(last) = twice.last() {
        out.push_str(&format!(
            "  ... the last: {}\n",
            last.iter()
                .map(|&i| format!("journal offset {} from {}", journal[i].offset, source(i)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// Waits until the journal holds `events` records and the coordinator has committed its
/// position past the last of them. Fails at once if one of `running` exits, and once nothing
/// has moved (no record journaled, no position committed) for [`STALLED`]; with the nodes'
/// logs. The deadline follows the work: a large feed may take as long as it needs while it
/// moves.
pub fn wait_until_processed(h: &Harness, events: usize, running: &mut [&mut Node]) {
    let mut log = || {
        let mut text = String::new();
        for n in running.iter_mut() {
            assert!(
                n.is_running(),
                "{} exited while the feed was processed\n{}",
                n.instance,
                n.log()
            );
            text.push_str(&format!("== {}\n{}", n.instance, n.log()));
        }
        text
    };
    let started = Instant::now();
    let mut processed = Processed::new(h, events);
    let mut checked = Instant::now();
    loop {
        if checked.elapsed() > Duration::from_secs(1) {
            log();
            checked = Instant::now();
        }
        match processed.check() {
            Ok(()) => return,
            Err(why) => assert!(
                processed.stalled() < STALLED,
                "{why}, and nothing moved for {STALLED:?} ({:.0} s in all)\n{}",
                started.elapsed().as_secs_f64(),
                log()
            ),
        }
    }
}

/// How long [`wait_until_processed`] waits without any progress before it fails: longer than
/// any recovery the processor makes by itself (a take-over, a producer renewed after a
/// broker outage, the watchdog's bound and a restart).
pub const STALLED: Duration = Duration::from_secs(180);

/// Whether the coordinator has processed a feed of `events` events: the journal holds them
/// all, and the coordinator's committed position is past the last. Checked a step at a time,
/// so that a test can tend its processes in between.
pub struct Processed {
    consumer: BaseConsumer,
    /// Tails the changelog for the coordinator's committed position.
    changelog: BaseConsumer,
    events: usize,
    journaled: usize,
    last: i64,
    /// The coordinator's last committed position seen, and when anything last moved.
    position: Option<i64>,
    moved: Instant,
}

impl Processed {
    pub fn new(h: &Harness, events: usize) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &h.bootstrap)
            .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&h.topic("rrc.internal.journal"), 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let (changelog, _) =
            reader_from_start(&h.bootstrap, &h.topic("rrc.internal.changelog"), false);
        Self {
            consumer,
            changelog,
            events,
            journaled: 0,
            last: -1,
            position: None,
            moved: Instant::now(),
        }
    }

    /// How long nothing has moved: no record journaled, no new position committed.
    pub fn stalled(&self) -> Duration {
        self.moved.elapsed()
    }

    /// One step (about 100 ms): `Ok` once processed; `Err` says how far it is.
    pub fn check(&mut self) -> Result<(), String> {
        if self.journaled < self.events {
            let step = Instant::now() + Duration::from_millis(100);
            while self.journaled < self.events && Instant::now() < step {
                if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(20)) {
                    self.journaled += 1;
                    self.last = m.offset();
                    self.moved = Instant::now();
                }
            }
            return Err(format!(
                "the journal holds {} of {} events",
                self.journaled, self.events
            ));
        }
        let mut position = self.position;
        let step = Instant::now() + Duration::from_millis(100);
        while Instant::now() < step {
            match self.changelog.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    if let Some(at) = journal_next(&record(&m)) {
                        position = Some(at);
                    }
                }
                _ => break,
            }
        }
        if position.is_some() && position != self.position {
            self.position = position;
            self.moved = Instant::now();
        }
        if position.is_some_and(|at| at > self.last) {
            return Ok(());
        }
        Err("the coordinator did not reach the end of the journal".into())
    }
}

/// The coordinator's position in a changelog record, if it is one.
fn journal_next(r: &Record) -> Option<i64> {
    if r.key.as_deref() != Some(rallypoint::kafka::coordinator::JOURNAL_NEXT) {
        return None;
    }
    let bytes: [u8; 8] = r.value.as_slice().try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}
