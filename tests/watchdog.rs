//! The watchdog over blocking Kafka client calls (`src/kafka/watchdog.rs`): a call that never
//! returns ends the process with its own exit status and one log line naming the call, within
//! the documented bound; a restart then loses and repeats nothing.
//!
//! Built with the `fault-injection` feature, which can make the n-th call of a name hang
//! (`RALLYPOINT_FAULT=hang.<call>@<n>`); `scripts/crash-soak.sh` runs it.

mod common;

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
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 10);
    let mut sent: Vec<Event> = Vec::new();
    for round in 0..20 {
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
