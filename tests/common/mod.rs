//! Black-box harness: the `rallypoint` binary against the real local broker. Each test works
//! under a namespace of its own, so tests share one broker without seeing each other.

#![allow(dead_code)]

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

pub struct Harness {
    pub namespace: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub codec: Codec,
    /// The processor's HTTP port.
    pub http_port: u16,
    producer: BaseProducer,
    child: Option<Child>,
}

/// A consumed record: key, value, and headers as (key, value) pairs.
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
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
        let namespace = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rallypoint.toml");
        let listen = free_port();
        let nations = nations
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "nations = [{nations}]\n[kafka]\nbootstrap_servers = \"{}\"\nnamespace = \"{namespace}\"\n{extra}\n\
                 [state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{listen}\"\n[topics]\ninput_partitions = 2\n\
                 output_partitions = 1\n{sections}\n",
                bootstrap(),
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        let h = Self {
            namespace,
            dir,
            config,
            codec: Codec::new().unwrap(),
            http_port: listen,
            producer,
            child: None,
        };
        let out = h.command(&["topics", "create"]).output().unwrap();
        assert!(
            out.status.success(),
            "topics create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        h
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rallypoint"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn,rallypoint=info");
        c
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
        read_committed(&self.topic(base), want, timeout)
    }
}

impl Harness {
    /// GET `path` from the processor's HTTP endpoint: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.http_port, path)
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
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read_committed(topic: &str, want: usize, timeout: Duration) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let partitions = partitions_of(&consumer, topic);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < want && started.elapsed() < timeout {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            use rdkafka::message::Headers;
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                headers,
                offset: m.offset(),
            });
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
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
