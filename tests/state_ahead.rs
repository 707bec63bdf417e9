//! A coordinator state ahead of what the changelog committed: what a commit leaves in RocksDB
//! when Kafka dropped its markers and a later abort of the same producer ended it aborted
//! (docs/operations.md, "A commit that ended aborted"). The takeover must find it, rebuild the
//! state from the changelog, and decide the journal from where the changelog says: no
//! decision skipped, none repeated.

use rallypoint_testkit as common;

use common::Harness;
use rallypoint::kafka::coordinator::JOURNAL_NEXT;
use rallypoint::store::RocksStore;
use rallypoint_core::event::{Capability, Event, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};

const NATIONS: [&str; 3] = ["EST", "LVA", "DEU"];

fn rounds(clock: &mut Clock, from: usize, to: usize) -> Vec<Event> {
    let mut out = Vec::new();
    for round in from..to {
        for nation in NATIONS {
            let cap = [Capability::Forensics, Capability::IncidentResponse][round % 2];
            out.push(sample::offer(
                clock.envelope(nation),
                &format!("O-{nation}-{round}"),
                cap,
                1 + (round % 3) as i32,
            ));
            out.push(sample::incident(
                clock.envelope(nation),
                &format!("I-{nation}-{round}"),
                Tlp::Amber,
                Priority::High,
            ));
            out.push(sample::request(
                clock.envelope(nation),
                &format!("R-{nation}-{round}"),
                &format!("I-{nation}-{round}"),
                &[(cap, 2)],
            ));
        }
    }
    out
}

#[test]
fn a_state_ahead_of_the_changelog_is_rebuilt_and_no_decision_is_skipped() {
    let mut h = Harness::new("ahead", &NATIONS, "max_batch = 20");
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 10);
    let mut sent = rounds(&mut clock, 0, 10);
    for e in &sent {
        h.send(e);
    }
    common::wait_until_processed(&h, sent.len(), &mut []);
    h.kill();
    let position = h.coordinator_position().expect("a committed position");

    // RocksDB holds a batch the changelog does not: 30 journal records on, and an entity.
    let state = h.dir.path().join("state").join("coordinator");
    {
        let mut store = RocksStore::open(&state).unwrap();
        let at = store.changelog_next().unwrap();
        let ahead = position + 30;
        store
            .apply(
                [
                    (JOURNAL_NEXT.to_vec(), Some(ahead.to_be_bytes().to_vec())),
                    (b"o/O-NOT-COMMITTED".to_vec(), Some(b"{}".to_vec())),
                ],
                at,
            )
            .unwrap();
    }

    h.start();
    let more = rounds(&mut clock, 10, 20);
    for e in &more {
        h.send(e);
    }
    sent.extend(more);
    common::wait_until_processed(&h, sent.len(), &mut []);
    let log = h.log();
    assert_eq!(
        log.matches("the state is ahead of what the changelog committed")
            .count(),
        1,
        "one rebuild\n{log}"
    );
    assert_eq!(
        h.metric("rallypoint_state_rebuilds_total"),
        Some(1.0),
        "{log}"
    );
    let checked = common::assert_exactly_once(&h, &sent, &NATIONS);
    assert_eq!(checked.journaled, sent.len());
    assert!(checked.decisions > 0);
    // The entity only the state held is gone with the rebuild.
    h.kill();
    let store = RocksStore::open(&state).unwrap();
    use rallypoint_core::store::Store;
    assert_eq!(store.get(b"o/O-NOT-COMMITTED").unwrap(), None);
}
