//! The watchdog over blocking Kafka client calls (`src/kafka/watchdog.rs`): a call that never
//! returns ends the process with its own exit status and one log line naming the call, within
//! the documented bound; a restart then loses and repeats nothing.
//!
//! Failed state writes: one RocksDB write that fails after its commit is repaired by the same
//! process, which takes over again and restores the batch from the changelog; writes that keep
//! failing stop the process with a non-zero status and a log line naming the write.
//!
//! Built with the `fault-injection` feature, which can make the n-th call of a name hang
//! (`RALLYPOINT_FAULT=hang.<call>@<n>`) and the n-th RocksDB write fail
//! (`RALLYPOINT_FAULT=fail.store_write@<n>`, and every later one with `@<n>+`);
//! `scripts/crash-soak.sh` runs it.

use rallypoint_testkit as common;

use std::time::{Duration, Instant};

use common::{assert_exactly_once, wait_until_processed, Harness};
use rallypoint::kafka::watchdog::{EXIT_CODE, GRACE};
use rallypoint_core::event::{Capability, Event, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};

#[test]
fn a_client_call_that_never_returns_ends_the_process_and_a_restart_loses_nothing() {
    let nations = ["EST", "LVA", "DEU"];
    let timeout = Duration::from_secs(2);
    let h = Harness::new(
        "watchdog",
        &nations,
        &format!("transaction_timeout = \"{}s\"", timeout.as_secs()),
    );
    let mut node = h.node("watchdog-0");
    node.start_with(&[("RALLYPOINT_FAULT", "hang.commit_transaction@6")]);
    let started = Instant::now();
    let sent = feed(&h, &nations, 20);
    let status = node
        .wait_exit(Duration::from_secs(180))
        .unwrap_or_else(|| panic!("the process still runs\n{}", node.log()));
    let waited = started.elapsed();
    let log = node.log();
    assert_eq!(status.code(), Some(EXIT_CODE), "{log}");
    assert!(
        log.contains("commit_transaction hangs"),
        "the fault fired: {log}"
    );
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("watchdog:")).collect();
    assert_eq!(lines.len(), 1, "one line names the call: {log}");
    assert!(
        lines[0].contains("commit_transaction") && lines[0].contains("ERROR"),
        "{}",
        lines[0]
    );
    // Not before its bound, and not long after.
    assert!(waited >= timeout + GRACE, "fired after {waited:?}");
    assert!(
        waited < timeout + GRACE + Duration::from_secs(60),
        "fired after {waited:?}"
    );

    // The supervisor's restart: what was sent is processed exactly once.
    node.start();
    wait_until_processed(&h, sent.len(), &mut [&mut node]);
    assert_exactly_once(&h, &sent, &nations);
}

/// Sends `rounds` rounds of an offer, an incident and a request per nation, 50 ms apart, so
/// that the coordinator commits them in many small batches; returns what was sent.
fn feed(h: &Harness, nations: &[&str], rounds: usize) -> Vec<Event> {
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 10);
    let mut sent = Vec::new();
    for round in 0..rounds {
        for nation in nations {
            let incident = format!("I-{nation}-{round}");
            for e in [
                sample::offer(
                    clock.envelope(nation),
                    &format!("O-{nation}-{round}"),
                    Capability::Forensics,
                    1,
                ),
                sample::incident(
                    clock.envelope(nation),
                    &incident,
                    Tlp::Green,
                    Priority::High,
                ),
                sample::request(
                    clock.envelope(nation),
                    &format!("R-{nation}-{round}"),
                    &incident,
                    &[(Capability::Forensics, 1)],
                ),
            ] {
                h.send(&e);
                sent.push(e);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sent
}

#[test]
fn a_failed_state_write_is_restored_from_the_changelog_by_the_same_process() {
    let nations = ["EST", "LVA", "DEU"];
    let h = Harness::new("store-write", &nations, "");
    let mut node = h.node("store-write-0");
    // The first RocksDB writes are the coordinator's committed batches (the changelog is
    // empty at start, so nothing is restored): the third batch's write fails.
    node.start_with(&[("RALLYPOINT_FAULT", "fail.store_write@3")]);
    node.wait_readyz("coordinator: active", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("not active\n{}", node.log()));
    let pid = node.pid();
    let sent = feed(&h, &nations, 20);
    wait_until_processed(&h, sent.len(), &mut [&mut node]);
    let log = node.log();
    assert!(
        log.contains("store_write fails (hit 3)"),
        "the fault fired: {log}"
    );
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("state write failed after the commit"))
        .collect();
    assert_eq!(failed.len(), 1, "one failed write logged: {log}");
    assert!(
        failed[0].contains("ERROR") && failed[0].contains("state store write failed"),
        "{}",
        failed[0]
    );
    assert_eq!(
        log.matches("coordinator running").count(),
        2,
        "it took over again once: {log}"
    );
    assert!(!log.contains("stage failed"), "{log}");
    assert!(node.is_running(), "the same process still runs: {log}");
    assert_eq!(node.pid(), pid);
    assert_exactly_once(&h, &sent, &nations);
}

#[test]
fn state_writes_that_keep_failing_stop_the_process_with_the_write_named() {
    let nations = ["EST", "LVA", "DEU"];
    let h = Harness::new("store-broken", &nations, "");
    let mut node = h.node("store-broken-0");
    node.start_with(&[("RALLYPOINT_FAULT", "fail.store_write@1+")]);
    node.wait_readyz("coordinator: active", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("not active\n{}", node.log()));
    let started = Instant::now();
    let sent = feed(&h, &nations, 5);
    let status = node
        .wait_exit(Duration::from_secs(120))
        .unwrap_or_else(|| panic!("the process still runs\n{}", node.log()));
    let log = node.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(log.contains("store_write fails (hit 1)"), "{log}");
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("stage failed")).collect();
    assert_eq!(failed.len(), 1, "one stage failed: {log}");
    assert!(
        failed[0].contains("coordinator")
            && failed[0].contains("RocksDB")
            && failed[0].contains("state store write failed"),
        "the line names the failed state write: {}",
        failed[0]
    );

    // Once the disk is mended, a restart processes everything exactly once.
    node.start();
    wait_until_processed(&h, sent.len(), &mut [&mut node]);
    assert_exactly_once(&h, &sent, &nations);
}
