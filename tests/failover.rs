//! Two instances on the same topics: both run intake over their share of the input
//! partitions; one coordinator is active, the other stands by. Freezing the active one
//! (SIGSTOP) and later killing the new active one (SIGKILL) must each hand the coordinator role
//! over within 10 seconds; the frozen one, thawed, is a zombie whose producer is fenced and
//! which stands by again. The committed output is then exactly what the journal implies.

use rallypoint_testkit as common;

use std::time::{Duration, Instant};

use common::{Harness, Node};
use rallypoint_core::sample;

const NATIONS: [&str; 4] = ["EST", "LVA", "POL", "DEU"];
const TAKEOVER_LIMIT: Duration = Duration::from_secs(10);

fn signal(node: &Node, sig: &str) {
    let pid = node.pid().expect("running");
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// From `since`: (time until `node` says its coordinator is active, time until it commits a
/// decision beyond the `before` it had taken).
fn takeover(node: &Node, since: Instant, before: f64) -> (Duration, Duration) {
    let active = node
        .wait_readyz("coordinator: active", Duration::from_secs(60))
        .map(|_| since.elapsed())
        .unwrap_or_else(|| panic!("{} did not take over\n{}", node.instance, node.log()));
    while node.metric("rallypoint_decisions_total").unwrap_or(0.0) <= before {
        assert!(
            since.elapsed() < Duration::from_secs(120),
            "{} took no decision\n{}",
            node.instance,
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (active, since.elapsed())
}

#[test]
fn a_standby_coordinator_takes_over_within_ten_seconds_and_nothing_is_lost_or_repeated() {
    let h = Harness::with_sections(
        "failover",
        &NATIONS,
        "",
        "[intake]\nmax_future = \"3650d\"\n",
    );
    let feed = sample::stream(&NATIONS, 30_000, 11);
    let slices: Vec<&[rallypoint_core::Event]> = feed.chunks(10_000).collect();
    let mut a = h.node("a");
    let mut b = h.node("b");
    a.start();
    assert!(
        a.wait_readyz("coordinator: active", Duration::from_secs(60))
            .is_some(),
        "a did not become active\n{}",
        a.log()
    );
    b.start();
    assert!(
        b.wait_readyz("coordinator: standby", Duration::from_secs(60))
            .is_some(),
        "b did not stand by\n{}",
        b.log()
    );
    let (code, body) = b.get("/readyz").unwrap();
    assert_eq!(code, 200, "a standby is ready: {body}");
    assert!(body.contains("intake: active"), "{body}");
    assert_eq!(
        b.metric("rallypoint_stage_active{stage=\"coordinator\"}"),
        Some(0.0)
    );

    let mut sent = Vec::new();
    let feed_slice = |n: usize, sent: &mut Vec<rallypoint_core::Event>| {
        for e in slices[n] {
            h.queue(e);
            sent.push(e.clone());
        }
        h.flush();
    };
    feed_slice(0, &mut sent);
    std::thread::sleep(Duration::from_secs(2));

    // Freeze the active one mid-stream: b takes over once a's session expires.
    feed_slice(1, &mut sent);
    let frozen = Instant::now();
    signal(&a, "STOP");
    let (frozen_active, frozen_decision) = takeover(&b, frozen, 0.0);
    // Thawed, a is a zombie: fenced, its membership gone; it must stand by, not write.
    std::thread::sleep(Duration::from_secs(2));
    signal(&a, "CONT");
    assert!(
        a.wait_readyz("coordinator: standby", Duration::from_secs(60))
            .is_some(),
        "the thawed zombie did not stand by\n{}",
        a.log()
    );
    assert!(a.is_running(), "the zombie exited\n{}", a.log());

    // Kill the new active one mid-stream: a takes over.
    wait_b_busy(&b);
    feed_slice(2, &mut sent);
    let before = a.metric("rallypoint_decisions_total").unwrap_or(0.0);
    let killed = Instant::now();
    b.kill();
    let (killed_active, killed_decision) = takeover(&a, killed, before);

    common::wait_until_processed(&h, sent.len(), &mut [&mut a]);
    let all_decided = killed.elapsed();
    let checked = common::assert_exactly_once(&h, &sent, &NATIONS);
    println!(
        "failover: {} events journaled once, {} decisions and {} dead letters equal to the fold",
        checked.journaled, checked.decisions, checked.dead_letters
    );
    println!(
        "active frozen (SIGSTOP): standby active after {:.2} s, first decision after {:.2} s",
        frozen_active.as_secs_f64(),
        frozen_decision.as_secs_f64()
    );
    println!(
        "active killed (SIGKILL): standby active after {:.2} s, first decision after {:.2} s",
        killed_active.as_secs_f64(),
        killed_decision.as_secs_f64()
    );
    println!(
        "after the kill, the whole feed was decided {:.1} s later",
        all_decided.as_secs_f64()
    );
    assert!(
        frozen_active <= TAKEOVER_LIMIT,
        "takeover after a freeze: {frozen_active:?}"
    );
    assert!(
        killed_active <= TAKEOVER_LIMIT,
        "takeover after a kill: {killed_active:?}"
    );
}

/// Waits until `b` has committed a decision of its own (it is working when killed).
fn wait_b_busy(b: &Node) {
    let started = Instant::now();
    while b.metric("rallypoint_decisions_total").unwrap_or(0.0) <= 0.0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "b idle\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
