//! Chaos: two processor instances work through a 100,000-event feed while the broker is stopped
//! and started again at random moments, cleanly (SIGTERM) and by SIGKILL, at least ten times,
//! and the active coordinator is frozen (SIGSTOP) and thawed (SIGCONT) twice. The test is the
//! processes' supervisor, as Kubernetes or compose would be: a process that exits is started
//! again, and the only exit allowed is the watchdog's (status 70).
//!
//! At the end exactly once holds (every input journaled once; every decision topic equal to
//! the pure fold of the journal), and no stage was ever silent — without a sign of life, as
//! `rallypoint_stage_silent_seconds` shows — for longer than the watchdog's bound.
//!
//! `RALLYPOINT_CHAOS_COUNT`, `RALLYPOINT_CHAOS_RESTARTS` and `RALLYPOINT_CHAOS_SEED` override
//! the feed's size (100,000), the broker restarts (10) and the seed of the moments (printed).
//!
//! It takes about 5 minutes (20 at most, then it fails); `scripts/chaos.sh` runs it alone.

use rallypoint_testkit as common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Harness, LocalService, Node};
use rallypoint_core::sample;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NATIONS: [&str; 4] = ["EST", "LVA", "POL", "DEU"];
/// The watchdog's exit status (`rallypoint::kafka::watchdog::EXIT_CODE`).
const WATCHDOG_EXIT: i32 = 70;
/// How long the whole test may take before it fails.
const LIMIT: Duration = Duration::from_secs(20 * 60);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The processes under the test's supervision, and what it saw of them.
struct Supervisor {
    nodes: Vec<Node>,
    /// Per node: how it exited, each time it did.
    exits: Vec<Vec<String>>,
    /// The longest silence seen per (node, stage), and the watchdog's bound.
    silent: BTreeMap<(String, String), f64>,
    bound: Option<f64>,
    /// A node frozen by the test: not scraped while frozen.
    frozen: Option<usize>,
    started: Instant,
}

impl Supervisor {
    /// One look at every node: restarts one that exited (failing the test unless the watchdog
    /// ended it), and records how long each stage has been silent.
    fn tend(&mut self) {
        assert!(
            self.started.elapsed() < LIMIT,
            "the chaos test did not end within {LIMIT:?}\n{}",
            self.logs()
        );
        for i in 0..self.nodes.len() {
            if let Some(status) = self.nodes[i].wait_exit(Duration::ZERO) {
                let log = self.nodes[i].log();
                assert_eq!(
                    status.code(),
                    Some(WATCHDOG_EXIT),
                    "{} exited with {status:?}, not by the watchdog\n{log}",
                    self.nodes[i].instance
                );
                let line = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("watchdog:"))
                    .unwrap_or("(no watchdog line)")
                    .to_owned();
                assert!(line.contains("has not returned"), "{log}");
                self.exits[i].push(line);
                self.nodes[i].start();
                continue;
            }
            if self.frozen == Some(i) {
                continue;
            }
            let Some((200, body)) = self.nodes[i].get("/metrics") else {
                continue;
            };
            for line in body.lines() {
                if let Some(v) = line.strip_prefix("rallypoint_watchdog_bound_seconds ") {
                    self.bound = v.trim().parse().ok();
                }
                let Some(rest) = line.strip_prefix("rallypoint_stage_silent_seconds{stage=\"")
                else {
                    continue;
                };
                let Some((stage, value)) = rest.split_once("\"}") else {
                    continue;
                };
                let seconds: f64 = value.trim().parse().unwrap_or(0.0);
                let key = (self.nodes[i].instance.clone(), stage.to_owned());
                let most = self.silent.entry(key).or_insert(0.0);
                *most = most.max(seconds);
            }
        }
    }

    /// Tends the nodes for `d`.
    fn for_a_while(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.tend();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node whose coordinator is active, waiting (and tending) until there is one.
    fn active(&mut self) -> usize {
        let since = Instant::now();
        loop {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.metric("rallypoint_stage_active{stage=\"coordinator\"}")
                    .is_some_and(|v| v == 1.0)
                {
                    return i;
                }
            }
            assert!(
                since.elapsed() < Duration::from_secs(180),
                "no coordinator became active\n{}",
                self.logs()
            );
            self.for_a_while(Duration::from_millis(200));
        }
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.nodes[i].pid().expect("running");
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("== {}\n{}", n.instance, n.log()))
            .collect()
    }
}

#[test]
fn exactly_once_and_never_silent_through_broker_restarts_and_frozen_coordinators() {
    let count = env_or("RALLYPOINT_CHAOS_COUNT", 100_000) as usize;
    let restarts = env_or("RALLYPOINT_CHAOS_RESTARTS", 10).max(1) as usize;
    let seed = env_or(
        "RALLYPOINT_CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    println!("chaos: {count} events, {restarts} broker restarts, 2 freezes, seed {seed} (RALLYPOINT_CHAOS_SEED={seed} repeats the moments)");
    let mut rng = StdRng::seed_from_u64(seed);
    let broker = LocalService::new("kafka-local.sh", "KAFKA", &[]);
    let bootstrap = broker.run(&["start"]);
    let kept = std::env::temp_dir().join(format!("rallypoint-chaos-{seed}"));
    let _keep = broker.keep_on_failure(kept.clone());
    let h = Harness::on_broker(
        &bootstrap,
        "chaos",
        &NATIONS,
        "",
        "[intake]\nmax_future = \"3650d\"\n",
    );
    let feed = sample::stream(&NATIONS, count, seed);
    let mut sup = Supervisor {
        nodes: vec![h.node("a"), h.node("b")],
        exits: vec![Vec::new(), Vec::new()],
        silent: BTreeMap::new(),
        bound: None,
        frozen: None,
        started: Instant::now(),
    };
    sup.nodes[0].start();
    assert!(
        sup.nodes[0]
            .wait_readyz("coordinator: active", Duration::from_secs(90))
            .is_some(),
        "a did not become active\n{}",
        sup.logs()
    );
    sup.nodes[1].start();

    // The plan: the broker restarts, alternating clean stops and SIGKILLs, with the two freezes
    // among them; before each fault the next slice of the feed, so that both stages have work.
    let mut plan: Vec<&str> = (0..restarts)
        .map(|i| if i % 2 == 0 { "kill" } else { "stop" })
        .collect();
    plan.insert(restarts / 3, "freeze");
    plan.insert(2 * restarts / 3 + 1, "freeze");
    let slice = count / (plan.len() + 1);
    let mut fed = 0;
    let mut broker_away = Vec::new();
    let mut freezes = Vec::new();
    for (step, fault) in plan.iter().enumerate() {
        for e in &feed[fed..fed + slice] {
            h.queue(e);
        }
        fed += slice;
        h.flush();
        // A random moment while that slice is worked on.
        sup.for_a_while(Duration::from_millis(rng.random_range(300..4000)));
        match *fault {
            "freeze" => {
                let i = sup.active();
                let away = Duration::from_millis(rng.random_range(8000..14000));
                sup.signal(i, "STOP");
                sup.frozen = Some(i);
                sup.for_a_while(away);
                sup.signal(i, "CONT");
                sup.frozen = None;
                freezes.push(format!(
                    "{} for {:.1} s",
                    sup.nodes[i].instance,
                    away.as_secs_f64()
                ));
                eprintln!(
                    "step {:>2}: froze the active coordinator ({}) for {:.1} s",
                    step + 1,
                    sup.nodes[i].instance,
                    away.as_secs_f64()
                );
            }
            how => {
                let away = Duration::from_millis(rng.random_range(500..12000));
                let stopped = Instant::now();
                broker.run(&[how]);
                sup.for_a_while(away);
                let again = broker.run(&["start"]);
                assert_eq!(again, bootstrap, "the broker came back on its address");
                broker_away.push(stopped.elapsed());
                eprintln!(
                    "step {:>2}: broker {} and away {:.1} s",
                    step + 1,
                    if how == "kill" {
                        "SIGKILLed"
                    } else {
                        "stopped"
                    },
                    stopped.elapsed().as_secs_f64()
                );
            }
        }
    }
    for e in &feed[fed..] {
        h.queue(e);
    }
    h.flush();

    // The rest of the feed, worked off under the test's supervision.
    let mut processed = common::Processed::new(&h, feed.len());
    while let Err(why) = processed.check() {
        assert!(
            sup.started.elapsed() < LIMIT && processed.stalled() < common::STALLED,
            "{why} after {:.0} s, nothing moved for {:.0} s\n{}",
            sup.started.elapsed().as_secs_f64(),
            processed.stalled().as_secs_f64(),
            sup.logs()
        );
        sup.tend();
    }
    let done = sup.started.elapsed();
    for n in sup.nodes.iter_mut() {
        n.kill();
    }
    // The processes' logs, kept for a look after the test, whatever its outcome.
    std::fs::create_dir_all(&kept).unwrap();
    for n in &sup.nodes {
        std::fs::write(kept.join(format!("{}.log", n.instance)), n.log()).unwrap();
    }
    eprintln!("chaos: the processes' logs are in {}", kept.display());
    let checked = common::assert_exactly_once(&h, &feed, &NATIONS);

    let bound = sup
        .bound
        .expect("the watchdog's bound was read from /metrics");
    println!(
        "chaos: {} events journaled once, {} decisions and {} dead letters equal to the fold, all processed {:.0} s after the start",
        checked.journaled,
        checked.decisions,
        checked.dead_letters,
        done.as_secs_f64()
    );
    println!(
        "broker restarts: {} (away {})",
        broker_away.len(),
        broker_away
            .iter()
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("freezes of the active coordinator: {}", freezes.join(", "));
    for (i, exits) in sup.exits.iter().enumerate() {
        println!(
            "{}: {} watchdog exits{}",
            sup.nodes[i].instance,
            exits.len(),
            exits
                .iter()
                .map(|l| format!("\n  | {l}"))
                .collect::<String>()
        );
    }
    for ((node, stage), s) in &sup.silent {
        println!("longest silence of {node}/{stage}: {s:.1} s (bound {bound:.0} s)");
    }
    assert_eq!(broker_away.len(), restarts);
    assert_eq!(freezes.len(), 2);
    assert!(
        !sup.silent.is_empty(),
        "no stage's silence was ever read from /metrics"
    );
    for ((node, stage), s) in &sup.silent {
        assert!(
            *s <= bound,
            "{node}/{stage} was silent for {s:.1} s, longer than the watchdog's bound of {bound:.0} s"
        );
    }
}
