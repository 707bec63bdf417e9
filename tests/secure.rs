//! A processor that reaches its broker over SASL_SSL (SCRAM-SHA-512, a CA made for the test),
//! end to end: topics created, an input journaled, a decision taken.

use rallypoint_testkit as common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::LocalService;

use rallypoint::codec::Codec;
use rallypoint_core::event::{Capability, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

/// A broker of its own with a SASL_SSL listener, stopped and removed on drop.
struct SecureBroker {
    service: LocalService,
    plaintext: String,
    sasl_ssl: String,
}

impl SecureBroker {
    fn start() -> Self {
        let service = LocalService::new("kafka-local.sh", "KAFKA", &[("KAFKA_SASL_SSL", "1")]);
        let plaintext = service.run(&["start"]);
        let sasl_ssl = std::fs::read_to_string(service.folder().join("sasl_ssl_bootstrap"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            service,
            plaintext,
            sasl_ssl,
        }
    }
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_processor_works_over_sasl_ssl_with_scram() {
    let broker = SecureBroker::start();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("rallypoint.toml");
    let ca = broker.service.folder().join("tls/ca.crt");
    std::fs::write(
        &config,
        format!(
            "nations = [\"EST\", \"DEU\"]\n[kafka]\nbootstrap_servers = \"{}\"\nsecurity_protocol = \"sasl_ssl\"\n\
             sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"rallypoint\"\nssl_ca_location = \"{}\"\n\
             [state]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[topics]\noutput_partitions = 1\n",
            broker.sasl_ssl,
            ca.display(),
            work.path().join("state").display()
        ),
    )
    .unwrap();
    let rallypoint = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rallypoint"));
        c.arg("--config")
            .arg(&config)
            .args(args)
            .env("RALLYPOINT__KAFKA__SASL_PASSWORD", "rallypoint-secret");
        c
    };
    let created = rallypoint(&["topics", "create"]).output().unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let log = work.path().join("run.log");
    let _run = Child(
        rallypoint(&["run"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // The feeds write over the plaintext listener of the same broker.
    let codec = Codec::new().unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.plaintext)
        .create()
        .unwrap();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    let events = [
        sample::offer(clock.envelope("DEU"), "O1", Capability::Forensics, 1),
        sample::incident(clock.envelope("EST"), "I1", Tlp::Green, Priority::High),
        sample::request(
            clock.envelope("EST"),
            "R1",
            "I1",
            &[(Capability::Forensics, 1)],
        ),
    ];
    for (i, e) in events.iter().enumerate() {
        let topic = format!("rrc.in.{}.{}", e.envelope().nation, e.stream().suffix());
        let value = codec.encode_event(e);
        producer
            .send(BaseRecord::to(&topic).key(e.entity_id()).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        if i == 0 {
            // The offer first, so that the request finds it.
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    std::env::set_var("RALLYPOINT_TEST_BOOTSTRAP", &broker.plaintext);
    let proposed =
        common::read_committed("rrc.out.coalition.decisions", 1, Duration::from_secs(90));
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(proposed.len(), 1, "no decision over SASL_SSL\n{log}");
    let d = codec.decode_decision(&proposed[0].value).unwrap();
    assert_eq!(
        (d.type_name(), d.provider()),
        ("AssignmentProposed", Some("DEU"))
    );
    assert!(
        !log.contains("rallypoint-secret"),
        "the password must never be logged"
    );
}
