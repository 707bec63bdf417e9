//! Crash soak: a fixed, deterministic feed (`sample::stream`, 100,000 events by default) goes
//! through the processor while it is SIGKILLed again and again, and restarted each time:
//! - at `KILLS` random moments (seeded), from the harness;
//! - once at every kill point between the steps of a transaction (`src/fault.rs`; this test
//!   needs the `fault-injection` feature), the process killing itself there.
//!
//! Then the committed (`read_committed`) output must be exactly what the pure core derives from
//! the journal: every decision topic byte for byte and in order, the dead letters counted, and
//! every input event journaled exactly once. Two last restarts, warm and cold (state folder
//! removed), are timed to `/readyz` 200 and to the first new decision.
//!
//! `scripts/crash-soak.sh` runs it; `COUNT`, `KILLS` and `SEED` are read from
//! `RALLYPOINT_SOAK_COUNT`, `RALLYPOINT_SOAK_KILLS` and `RALLYPOINT_SOAK_SEED`.

use rallypoint_testkit as common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{Harness, Node};
use rallypoint::kafka::restore::FLUSH_EVERY;
use rallypoint_core::event::Event;
use rallypoint_core::sample::{self, Clock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NATIONS: [&str; 5] = ["EST", "LVA", "LTU", "POL", "DEU"];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One restart of the plan: how it ended and how long it took to get going.
struct Run {
    what: String,
    ready: Option<Duration>,
    first_decision: Option<Duration>,
    lived: Duration,
}

/// Watches a running node until `until` passes or it exits; records when `/readyz` first
/// answered 200 and when its first decision was committed.
fn watch(node: &mut Node, until: Option<Instant>, run: &mut Run) -> bool {
    let started = node.started.unwrap();
    loop {
        if until.is_some_and(|u| Instant::now() >= u) {
            return true;
        }
        if !node.is_running() {
            return false;
        }
        if run.ready.is_none() && node.get("/readyz").is_some_and(|(c, _)| c == 200) {
            run.ready = Some(started.elapsed());
        }
        if run.first_decision.is_none()
            && node
                .metric("rallypoint_decisions_total")
                .is_some_and(|v| v > 0.0)
        {
            run.first_decision = Some(started.elapsed());
        }
        if until.is_none() && run.first_decision.is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the processor until the changelog holds at least `records`, failing once it stops
/// growing for [`common::STALLED`] (it is not slow then, but stuck).
fn grow_changelog(h: &Harness, node: &mut Node, records: i64) {
    let mut end = h.end_offset("rrc.internal.changelog");
    if end >= records {
        return;
    }
    node.start();
    let mut moved = Instant::now();
    while end < records {
        assert!(
            node.is_running(),
            "the processor exited while the changelog grew\n{}",
            node.log()
        );
        assert!(
            moved.elapsed() < common::STALLED,
            "the changelog stayed at {end} records for {:?} (waiting for {records})\n{}",
            common::STALLED,
            node.log()
        );
        std::thread::sleep(Duration::from_millis(500));
        let now = h.end_offset("rrc.internal.changelog");
        if now > end {
            end = now;
            moved = Instant::now();
        }
    }
    node.kill();
}

/// An incident and its request from `nation`: whatever the state, the request gets a decision
/// (a proposal or an unmet notice), so it shows when processing has resumed.
fn probe(clock: &mut Clock, nation: &str, n: usize) -> Vec<Event> {
    use rallypoint_core::event::{Capability, Priority, Tlp};
    let incident = format!("PROBE-I-{n}");
    vec![
        sample::incident(
            clock.envelope(nation),
            &incident,
            Tlp::Amber,
            Priority::High,
        ),
        sample::request(
            clock.envelope(nation),
            &format!("PROBE-R-{n}"),
            &incident,
            &[(Capability::Forensics, 1)],
        ),
    ]
}

fn summary(label: &str, xs: &[Duration]) -> String {
    if xs.is_empty() {
        return format!("{label}: none");
    }
    let mut xs = xs.to_vec();
    xs.sort();
    format!(
        "{label}: min {:.2} s, median {:.2} s, max {:.2} s (n={})",
        xs[0].as_secs_f64(),
        xs[xs.len() / 2].as_secs_f64(),
        xs[xs.len() - 1].as_secs_f64(),
        xs.len()
    )
}

#[test]
fn the_processor_survives_kills_anywhere_without_losing_or_repeating_anything() {
    let count = env_or("RALLYPOINT_SOAK_COUNT", 100_000) as usize;
    let kills = env_or("RALLYPOINT_SOAK_KILLS", 10) as usize;
    let seed = env_or("RALLYPOINT_SOAK_SEED", 1);
    let soak_started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    // The feed runs on stream time from 2027; intake must not call it "from the future".
    // Small batches: more transactions, so more moments between their steps to be killed in.
    let h = Harness::with_sections(
        "soak",
        &NATIONS,
        "max_batch = 500",
        "[intake]\nmax_future = \"3650d\"\n",
    );
    let mut node = h.node("soak-0");
    let feed = sample::stream(&NATIONS, count, seed);
    let mut sent: Vec<&Event> = Vec::with_capacity(count + 8);

    // The plan: random kills with every kill point spread among them, each step feeding the
    // next slice of the stream so that every stage has work when it is killed.
    let points = rallypoint::fault::POINTS;
    let mut plan: Vec<Option<&str>> = Vec::new();
    for i in 0..kills.max(points.len()) {
        if i < kills {
            plan.push(None);
        }
        if let Some(point) = points.get(i) {
            plan.push(Some(point));
        }
    }
    let slice = count / (plan.len() + 1);
    let mut fed = 0;
    let mut runs: Vec<Run> = Vec::new();
    for (step, fault) in plan.iter().enumerate() {
        for e in &feed[fed..fed + slice] {
            h.queue(e);
            sent.push(e);
        }
        fed += slice;
        h.flush();
        let mut run = Run {
            what: String::new(),
            ready: None,
            first_decision: None,
            lived: Duration::ZERO,
        };
        match fault {
            None => {
                let after = Duration::from_millis(rng.random_range(200..4000));
                node.start();
                let alive = watch(&mut node, Some(Instant::now() + after), &mut run);
                assert!(alive, "the processor exited by itself\n{}", node.log());
                node.kill();
                run.what = format!("SIGKILL after {:.2} s", after.as_secs_f64());
            }
            Some(point) => {
                let hit = if matches!(*point, "coordinator.takeover" | "restore.chunk") {
                    1
                } else {
                    rng.random_range(1..=3)
                };
                if *point == "restore.chunk" {
                    // A cold rebuild, killed half-way: the next start resumes it. It needs
                    // more changelog than one chunk, whatever the feed's size and however
                    // early the random kills came: the processor runs until there is.
                    grow_changelog(&h, &mut node, 2 * FLUSH_EVERY as i64);
                    std::fs::remove_dir_all(&node.state).unwrap();
                }
                let spec = format!("{point}@{hit}");
                node.start_with(&[("RALLYPOINT_FAULT", &spec)]);
                watch(
                    &mut node,
                    Some(Instant::now() + Duration::from_secs(120)),
                    &mut run,
                );
                let status = node.wait_exit(Duration::from_secs(1));
                let log = node.log();
                assert!(
                    status.is_some_and(|s| s.signal() == Some(9))
                        && log.contains(&format!("fault injection: SIGKILL at {point}")),
                    "kill point {spec} was not reached within 120 s (step {step})\n{log}"
                );
                run.what = format!("kill point {spec}");
            }
        }
        run.lived = node.started.unwrap().elapsed();
        eprintln!(
            "step {:>2}: {:<40} ready after {:>6}, first decision after {:>6}",
            step + 1,
            run.what,
            run.ready
                .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            run.first_decision
                .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        );
        runs.push(run);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..500)));
    }

    // The rest of the feed, then a warm and a cold restart, each timed on a probe.
    for e in &feed[fed..] {
        h.queue(e);
        sent.push(e);
    }
    h.flush();
    node.start();
    let mut clock = Clock::new(1_900_000_000_000, 1000);
    let mut timed = Vec::new();
    let probes: Vec<Vec<Event>> = (0..2).map(|n| probe(&mut clock, "EST", n)).collect();
    for (n, kind) in ["warm", "cold"].iter().enumerate() {
        common::wait_until_processed(&h, sent.len(), &mut [&mut node]);
        node.kill();
        if *kind == "cold" {
            std::fs::remove_dir_all(&node.state).unwrap();
        }
        for e in &probes[n] {
            h.queue(e);
            sent.push(e);
        }
        h.flush();
        let mut run = Run {
            what: format!("{kind} restart"),
            ready: None,
            first_decision: None,
            lived: Duration::ZERO,
        };
        node.start();
        assert!(
            watch(&mut node, None, &mut run),
            "{kind} restart failed\n{}",
            node.log()
        );
        timed.push(run);
    }
    common::wait_until_processed(&h, sent.len(), &mut [&mut node]);
    node.kill();

    // Every input journaled exactly once; the committed output equals the pure fold of the
    // journal, topic by topic, byte for byte.
    let checked = common::assert_exactly_once(&h, &sent, &NATIONS);

    let random = runs
        .iter()
        .filter(|r| r.what.starts_with("SIGKILL"))
        .count();
    let ready: Vec<Duration> = runs.iter().filter_map(|r| r.ready).collect();
    let first: Vec<Duration> = runs.iter().filter_map(|r| r.first_decision).collect();
    println!("== crash soak (seed {seed})");
    println!(
        "feed: {} events, {} journaled once each; {} decisions on {} topics, {} threat-picture records and {} dead letters, equal to the fold",
        sent.len(),
        checked.journaled,
        checked.decisions,
        checked.topics,
        checked.pictures,
        checked.dead_letters
    );
    println!(
        "kills survived: {} ({} random SIGKILLs, {} kill points: {})",
        runs.len(),
        random,
        runs.len() - random,
        points.join(", ")
    );
    println!(
        "{}",
        summary("restart to /readyz 200 (between kills)", &ready)
    );
    println!(
        "{}",
        summary("restart to first decision (between kills)", &first)
    );
    println!(
        "changelog: {} records (offsets) at the end; the cold restart replays it all",
        h.end_offset("rrc.internal.changelog")
    );
    for r in &timed {
        println!(
            "{}: /readyz 200 after {:.2} s, first new decision after {:.2} s",
            r.what,
            r.ready.unwrap_or_default().as_secs_f64(),
            r.first_decision.unwrap_or_default().as_secs_f64()
        );
    }
    println!("total: {:.0} s", soak_started.elapsed().as_secs_f64());
}
