//! SIGKILL mid-stream, restart: no decision lost, none repeated. The decisions on the
//! coalition topic must equal, in order and byte for byte, what the pure core derives from the
//! journal; and the journal must hold every input event exactly once.

use rallypoint_testkit as common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Harness;
use rallypoint::codec::Format;
use rallypoint_core::decision::Audience;
use rallypoint_core::event::{Capability, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use rallypoint_core::{apply, CoreConfig, MemStore, Output};

#[test]
fn a_killed_processor_restarts_without_losing_or_repeating_a_decision() {
    let nations = ["EST", "LVA", "DEU"];
    let mut h = Harness::new("crash", &nations, "max_batch = 50");
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 10);
    let mut sent = BTreeSet::new();
    let caps = [
        Capability::Forensics,
        Capability::IncidentResponse,
        Capability::MalwareAnalysis,
    ];
    for round in 0..60 {
        for (i, nation) in nations.iter().enumerate() {
            let cap = caps[(round + i) % caps.len()];
            let events = [
                sample::offer(
                    clock.envelope(nation),
                    &format!("O-{nation}-{round}"),
                    cap,
                    1 + (round % 3) as i32,
                ),
                sample::incident(
                    clock.envelope(nation),
                    &format!("I-{nation}-{round}"),
                    Tlp::Amber,
                    Priority::High,
                ),
                sample::request(
                    clock.envelope(nation),
                    &format!("R-{nation}-{round}"),
                    &format!("I-{nation}-{round}"),
                    &[(cap, 2)],
                ),
            ];
            for e in &events {
                h.send(e);
                sent.insert(e.envelope().event_id.clone());
            }
        }
        if round == 15 || round == 35 {
            std::thread::sleep(Duration::from_millis(300));
            h.kill();
            std::thread::sleep(Duration::from_millis(500));
            h.start();
        }
    }
    let journal = h.read("rrc.internal.journal", sent.len(), Duration::from_secs(120));
    let ids: Vec<String> = journal
        .iter()
        .map(|r| {
            h.codec
                .decode_event(&r.value)
                .unwrap()
                .envelope()
                .event_id
                .clone()
        })
        .collect();
    assert_eq!(
        ids.len(),
        sent.len(),
        "every input journaled once\n{}",
        h.log()
    );
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), sent);

    let mut store = MemStore::new();
    let core = CoreConfig {
        acceptance_timeout_ms: 30 * 60 * 1000,
        ..CoreConfig::default()
    };
    let mut expected = Vec::new();
    for r in &journal {
        let event = h.codec.decode_event(&r.value).unwrap();
        for o in apply(&mut store, &core, &event).unwrap() {
            if let Output::Decision(routed) = o {
                if routed.audience == Audience::Coalition {
                    expected.push(h.codec.encode_decision(&routed.decision, Format::Avro));
                }
            }
        }
    }
    assert!(expected.len() > 100, "the scenario produces decisions");
    let got = h.read(
        "rrc.out.coalition.decisions",
        expected.len() + 1,
        Duration::from_secs(60),
    );
    let got: Vec<Vec<u8>> = got.into_iter().map(|r| r.value).collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "no decision lost or repeated\n{}",
        h.log()
    );
    assert!(
        got == expected,
        "decisions differ from the fold of the journal"
    );
    assert!(
        h.log().matches("coordinator running").count() >= 3,
        "the processor was restarted twice"
    );
    // While they work, the stages say how far they are, every 5 s.
    let log = h.log();
    let progress: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("progress") && l.contains("committed="))
        .collect();
    assert!(!progress.is_empty(), "no progress line\n{log}");
    for field in ["rate_per_s=", "lag=", "position="] {
        assert!(progress[0].contains(field), "{}", progress[0]);
    }
    eprintln!("{}", progress[0]);
}
