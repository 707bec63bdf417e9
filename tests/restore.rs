//! A state rebuilt from the changelog alone (a cold start: the state folder lost) knows every
//! event applied before: the changelog carries a batch's event ids in one record
//! (`E/<journal offset>`, docs/architecture.md "The changelog"), the restore unpacks them,
//! and an event sent again after the rebuild is a duplicate, not a second application. The
//! keys that follow from one entity each are not on the changelog: the restore derives them
//! again, the same as the lost state held them.

use rallypoint_testkit as common;

use std::time::Duration;

use common::Harness;
use rallypoint::store::RocksStore;
use rallypoint_core::derived;
use rallypoint_core::event::{Capability, Event, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};
use rallypoint_core::state::seen_key;
use rallypoint_core::store::Store;

const NATIONS: [&str; 2] = ["EST", "LVA"];

fn feed(clock: &mut Clock, rounds: usize) -> Vec<Event> {
    let mut out = Vec::new();
    for round in 0..rounds {
        for nation in NATIONS {
            out.push(sample::offer(
                clock.envelope(nation),
                &format!("O-{nation}-{round}"),
                Capability::Forensics,
                1 + (round % 2) as i32,
            ));
            out.push(sample::incident(
                clock.envelope(nation),
                &format!("I-{nation}-{round}"),
                Tlp::Green,
                Priority::High,
            ));
            out.push(sample::request(
                clock.envelope(nation),
                &format!("R-{nation}-{round}"),
                &format!("I-{nation}-{round}"),
                // Nobody offers ICS/OT: those needs wait (`w/`).
                if round % 2 == 1 {
                    &[(Capability::Forensics, 1), (Capability::IcsOt, 1)][..]
                } else {
                    &[(Capability::Forensics, 1)][..]
                },
            ));
        }
    }
    out
}

/// The state's keys that are derived from entities, with their values.
fn derived_entries(store: &RocksStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    derived::DERIVED
        .iter()
        .flat_map(|p| store.scan_prefix(p).unwrap())
        .collect()
}

#[test]
fn event_ids_travel_packed_and_a_cold_restore_still_knows_every_one() {
    let mut h = Harness::new("restore", &NATIONS, "max_batch = 10");
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 10);
    let sent = feed(&mut clock, 15);
    for e in &sent {
        h.send(e);
    }
    common::wait_until_processed(&h, sent.len(), &mut []);
    h.kill();

    // On the changelog: the ids in records of their own, one per batch, never one per event.
    let changelog = h.read_all("rrc.internal.changelog");
    let keys: Vec<&[u8]> = changelog.iter().filter_map(|r| r.key.as_deref()).collect();
    assert!(
        !keys.iter().any(|k| k.starts_with(b"e/")),
        "an event id on its own"
    );
    let packed = keys.iter().filter(|k| k.starts_with(b"E/")).count();
    assert!(
        packed >= 3 && packed < sent.len(),
        "{packed} records of ids for {} events in batches of at most 10",
        sent.len()
    );

    assert!(
        !keys.iter().any(|k| derived::is_derived(k)),
        "a derived key on the changelog"
    );

    // The state folder lost: the next start rebuilds it from the changelog alone.
    let state = h.dir.path().join("state").join("coordinator");
    let lost = derived_entries(&RocksStore::open(&state).unwrap());
    for prefix in derived::DERIVED {
        let n = lost.iter().filter(|(k, _)| k.starts_with(prefix)).count();
        assert!(
            n > 0,
            "the feed makes {} keys",
            String::from_utf8_lossy(prefix)
        );
    }
    std::fs::remove_dir_all(&state).unwrap();
    h.start();
    let again = &sent[..4];
    for e in again {
        h.send(e);
    }
    let dead = h.read("rrc.dlq", again.len(), Duration::from_secs(60));
    let reasons: Vec<String> = dead
        .iter()
        .map(|r| {
            let reason = r.headers.iter().find(|(k, _)| k == "error.reason");
            String::from_utf8_lossy(reason.map_or(&[][..], |(_, v)| v)).into_owned()
        })
        .collect();
    assert_eq!(
        reasons,
        vec!["duplicate_event_id"; again.len()],
        "{}",
        h.log()
    );
    assert!(
        h.log().contains("state restored from the changelog"),
        "{}",
        h.log()
    );
    h.kill();
    let store = RocksStore::open(&state).unwrap();
    assert_eq!(derived_entries(&store), lost, "derived again as they were");
    for e in &sent {
        let id = &e.envelope().event_id;
        assert!(store.get(&seen_key(id)).unwrap().is_some(), "{id} unknown");
    }
}
