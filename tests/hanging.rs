//! A hanging transaction where the coordinator writes: records of its own producer id that
//! Kafka left without an outcome. The processor must end it (abort) before its first
//! transaction, instead of giving those records the outcome of its own next commit.
//!
//! The test makes one the way Kafka does (docs/operations.md, "Hanging transactions"): a
//! transaction of the coordinator's transactional id is left open on a decision topic, the
//! broker stops without a controlled shutdown and stays away past the transaction timeout,
//! and on its restart the broker aborts the transaction while its partitions have no leader
//! yet, dropping the markers: the partition's committed readers stay held back.
//!
//! While the coordinator waits for that transaction's outcome, the test also fences its
//! consumer (another member joins under its static identity): the coordinator must start
//! over with a new consumer and take over, not stand by on a dead one.

use rallypoint_testkit as common;

use std::time::{Duration, Instant};

use common::{Harness, LocalService};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const NATIONS: [&str; 2] = ["EST", "LVA"];
/// Written by the stray transaction; `read_committed` readers must never see them.
const STRAY: usize = 50;

fn ends(bootstrap: &str, topic: &str) -> (i64, i64) {
    let reader = |isolation: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("isolation.level", isolation)
            .create()
            .unwrap()
    };
    let (_, stable) = watermarks(&reader("read_committed"), topic);
    let (_, high) = watermarks(&reader("read_uncommitted"), topic);
    (stable, high)
}

/// The partition's watermarks; just after the broker's restart the partition has no leader
/// for a moment (NotLeaderForPartition), which is waited out for up to 30 s.
fn watermarks(reader: &BaseConsumer, topic: &str) -> (i64, i64) {
    use rdkafka::types::RDKafkaErrorCode::{LeaderNotAvailable, NotLeaderForPartition};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match reader.fetch_watermarks(topic, 0, Duration::from_secs(10)) {
            Ok(w) => return w,
            Err(e)
                if Instant::now() < deadline
                    && matches!(
                        e.rdkafka_error_code(),
                        Some(NotLeaderForPartition | LeaderNotAvailable)
                    ) =>
            {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("watermarks of {topic}: {e}"),
        }
    }
}

#[test]
fn the_coordinator_aborts_a_hanging_transaction_of_its_own_before_writing() {
    let broker = LocalService::new("kafka-local.sh", "KAFKA", &[]);
    let bootstrap = broker.run(&["start"]);
    let _keep = broker.keep_on_failure(
        std::env::temp_dir().join(format!("rallypoint-hanging-{}", std::process::id())),
    );
    // Without a controlled shutdown, a restarted single broker keeps its old registration
    // until its session ends, and its partitions have no leader for a moment after that.
    broker.run(&["stop"]);
    let props = broker.folder().join("server.properties");
    let mut text = std::fs::read_to_string(&props).unwrap();
    text.push_str("\ncontrolled.shutdown.enable=false\n");
    std::fs::write(&props, text).unwrap();
    assert_eq!(broker.run(&["start"]), bootstrap);

    let h = Harness::on_broker(
        &bootstrap,
        "hanging",
        &NATIONS,
        "",
        "[intake]\nmax_future = \"3650d\"\n",
    );
    let topic = h.topic("rrc.out.coalition.decisions");
    let config = h.load_config();
    let stray: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", config.name("rallypoint-coordinator"))
        .set("transaction.timeout.ms", "10000")
        .create()
        .unwrap();
    stray.init_transactions(Duration::from_secs(30)).unwrap();
    stray.begin_transaction().unwrap();
    for i in 0..STRAY {
        let key = format!("stray-{i}");
        stray
            .send(
                BaseRecord::<str, str>::to(&topic)
                    .key(&key)
                    .payload("not a decision"),
            )
            .unwrap();
    }
    stray.flush(Duration::from_secs(30)).unwrap();
    // Away for longer than the transaction may last; the stray producer never comes back.
    broker.run(&["stop"]);
    drop(stray);
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(broker.run(&["start"]), bootstrap);

    // The broker aborts the timed-out transaction within a few seconds of its restart; with
    // its markers dropped, the stray records stay without an outcome, holding back every
    // committed reader of the partition.
    let restarted = Instant::now();
    while restarted.elapsed() < Duration::from_secs(40) {
        let (stable, high) = ends(&bootstrap, &topic);
        assert!(
            stable < high,
            "the broker ended the stray transaction itself (stable end {stable}, end {high}): \
             no hanging transaction to test with"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let producers = broker.output(&[
        "transactions",
        "describe-producers",
        "--topic",
        &topic,
        "--partition",
        "0",
    ]);
    println!("hanging for 40 s; kafka-transactions describe-producers:\n{producers}");

    let mut node = h.node("p");
    node.start();
    // While the coordinator waits for the hanging transaction's outcome, its journal paused,
    // another member joins its group under its static identity: the coordinator's consumer is
    // fenced for good, and the one poll that says so is one that only keeps the membership
    // alive. The stage must start over with a new consumer, not stand by on a dead one.
    let waiting = Instant::now();
    while !node
        .log()
        .lines()
        .any(|l| l.contains("waiting for its outcome") && l.contains(topic.as_str()))
    {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the coordinator never waited for the hanging transaction\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fence_coordinator_consumer(&bootstrap, &config.name("rallypoint-coordinator"), "p", &h);
    assert!(
        node.wait_readyz("coordinator: active", Duration::from_secs(120))
            .is_some(),
        "the coordinator did not take over\n{}",
        node.log()
    );
    let log = node.log();
    assert!(
        log.contains("a hanging transaction: records without an outcome"),
        "the seal is not in the log\n{log}"
    );
    assert_eq!(
        node.metric("rallypoint_hanging_transactions_sealed_total"),
        Some(1.0),
        "one seal, by the coordinator"
    );
    assert_eq!(
        common::labelled_metric_value(
            &node.get("/metrics").unwrap().1,
            "rallypoint_consumer_losses_total",
            "stage=\"coordinator\""
        ),
        Some(1.0),
        "the fenced consumer was replaced once\n{}",
        node.log()
    );
    let (stable, high) = ends(&bootstrap, &topic);
    assert_eq!(
        stable, high,
        "the decision topic is stable to its end again"
    );

    // The stray records were aborted, not adopted: a decision made now is the only record
    // a committed reader sees on the coalition topic.
    let feed = rallypoint_core::sample::stream(&NATIONS, 200, 7);
    for e in &feed {
        h.queue(e);
    }
    h.flush();
    common::wait_until_processed(&h, feed.len(), &mut [&mut node]);
    let committed = h.read_all("rrc.out.coalition.decisions");
    assert!(
        committed
            .iter()
            .all(|r| !r.key.as_deref().unwrap_or_default().starts_with(b"stray-")),
        "a stray record was committed"
    );
    let checked = common::assert_exactly_once(&h, &feed, &NATIONS);
    println!(
        "sealed: {STRAY} stray records aborted; then {} events journaled once and {} decisions equal to the fold",
        checked.journaled, checked.decisions
    );
}

/// Joins `group` as the static member `instance` until the broker hands it the journal, which
/// fences the member that held that identity before; then leaves the identity to be taken back.
fn fence_coordinator_consumer(bootstrap: &str, group: &str, instance: &str, h: &Harness) {
    let fencer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.instance.id", instance)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    fencer
        .subscribe(&[&h.topic("rrc.internal.journal")])
        .unwrap();
    let started = Instant::now();
    while fencer.assignment().unwrap().count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the fencing member was never assigned the journal"
        );
        let _ = fencer.poll(Duration::from_millis(100));
    }
    println!(
        "fenced the coordinator's consumer after {:?}",
        started.elapsed()
    );
}
