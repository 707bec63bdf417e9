//! The broker goes away mid-stream, for longer than a transaction may last, and comes back:
//! the processor waits, recovers by itself (no restart: the same process throughout), and
//! nothing is lost or repeated. The test runs a broker of its own, which it stops and starts.

use rallypoint_testkit as common;

use std::time::{Duration, Instant};

use common::{Harness, LocalService};
use rallypoint_core::sample;

const NATIONS: [&str; 3] = ["EST", "LVA", "DEU"];

#[test]
fn the_processor_rides_out_a_broker_restart_without_losing_or_repeating_anything() {
    // A broker of its own, stopped and removed on drop.
    let broker = LocalService::new("kafka-local.sh", "KAFKA", &[]);
    let bootstrap = broker.run(&["start"]);
    let _keep = broker.keep_on_failure(
        std::env::temp_dir().join(format!("rallypoint-brokerfault-{}", std::process::id())),
    );
    let h = Harness::on_broker(
        &bootstrap,
        "brokerfault",
        &NATIONS,
        "",
        "[intake]\nmax_future = \"3650d\"\n",
    );
    let feed = sample::stream(&NATIONS, 12_000, 5);
    let (first, second) = feed.split_at(6_000);
    let mut node = h.node("p");
    node.start();
    assert!(
        node.wait_readyz("coordinator: active", Duration::from_secs(60))
            .is_some(),
        "not active\n{}",
        node.log()
    );
    for e in first {
        h.queue(e);
    }
    h.flush();
    // Stop the broker while the first half is being processed, and keep it away for longer
    // than kafka.transaction_timeout (10 s).
    std::thread::sleep(Duration::from_millis(700));
    let stopped = Instant::now();
    broker.run(&["stop"]);
    for e in second {
        h.queue(e);
    }
    std::thread::sleep(Duration::from_secs(15));
    assert!(node.is_running(), "the processor gave up\n{}", node.log());
    let away = stopped.elapsed();
    let again = broker.run(&["start"]);
    assert_eq!(again, bootstrap, "the broker came back on its address");
    let back = Instant::now();
    h.flush();
    common::wait_until_processed(&h, feed.len(), &mut [&mut node]);
    let recovered = back.elapsed();
    assert!(
        node.is_running(),
        "the processor exited after the broker came back\n{}",
        node.log()
    );
    let checked = common::assert_exactly_once(&h, &feed, &NATIONS);
    let log = node.log();
    // What the processor went through, for whoever reads the test's output.
    for line in log.lines().filter(|l| {
        l.contains("rallypoint::")
            && (l.contains("WARN") || l.contains("ERROR"))
            && !l.contains("consumer error")
            || l.contains("coordinator running")
            || l.contains("starting the stage over")
    }) {
        println!("  | {line}");
    }
    println!(
        "while the broker was away: {} transactions aborted and re-read, {} retried calls, {} new producers, {} new consumers",
        log.matches("transaction aborted; re-reading").count(),
        log.matches(": retrying").count(),
        log.matches("making a new transactional producer").count()
            + log.matches("producer failed: taking over again").count()
            + log.matches("fenced by another coordinator").count(),
        log.matches("starting the stage over with a new consumer").count(),
    );
    println!(
        "broker away {:.0} s: {} events journaled once, {} decisions and {} dead letters equal to the fold; all processed {:.1} s after the broker was back, by the same process",
        away.as_secs_f64(),
        checked.journaled,
        checked.decisions,
        checked.dead_letters,
        recovered.as_secs_f64()
    );
}
