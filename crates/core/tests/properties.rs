//! Invariants of the fold over generated streams: thousands of scenarios, including answers
//! to the proposals the fold makes (accept, decline, silence until the deadline passes).

use proptest::prelude::*;
use rallypoint_core::decision::{Audience, Decision};
use rallypoint_core::event::Tlp;
use rallypoint_core::rules::{self, NeedContext};
use rallypoint_core::sample;
use rallypoint_core::state::{
    incident_key, read, Incident, Offer, Request, OPEN_REQUESTS, REQUESTS, WAITING,
};
use rallypoint_core::store::Store;
use rallypoint_core::{apply_with, CoreConfig, MemStore, Output, Working};

const NATIONS: [&str; 5] = ["EST", "LVA", "LTU", "POL", "DEU"];

/// Runs a stream, answering each proposal by `answer % 4`: accept, decline, stay silent, or
/// accept and later report the work completed.
fn run(seed: u64, n: usize, answers: &[u8]) -> (MemStore, Vec<Output>) {
    let mut store = MemStore::new();
    let config = CoreConfig {
        acceptance_timeout_ms: 20_000,
        ..CoreConfig::default()
    };
    let events = sample::stream(&NATIONS, n, seed);
    let (_, outputs) = sample::fold_with_answers(&mut store, &config, events, |k| {
        answers.get(k % answers.len().max(1)).copied().unwrap_or(0)
    })
    .unwrap();
    (store, outputs)
}

fn entities<T: serde::de::DeserializeOwned>(store: &MemStore, prefix: &[u8]) -> Vec<T> {
    store
        .scan_prefix(prefix)
        .unwrap()
        .into_iter()
        .map(|(k, v)| rallypoint_core::state::decode(&k, &v).unwrap())
        .collect()
}

proptest! {
    // Thousands of generated scenarios, each of up to 200 events with answers.
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn no_field_of_a_restricted_incident_reaches_a_nation_not_entitled_to_it(
        seed in any::<u64>(), n in 20usize..200, answers in proptest::collection::vec(any::<u8>(), 1..8)
    ) {
        let (_, outputs) = run(seed, n, &answers);
        for o in &outputs {
            let Output::Decision(r) = o else { continue };
            let s = r.decision.subject();
            match &r.audience {
                Audience::Nation(n) if *n == s.requester_nation => {
                    prop_assert!(s.details.is_some() && s.sector.is_some() && s.priority.is_some());
                }
                Audience::Nation(n) => {
                    // Only the helper named in the decision hears of it at all.
                    prop_assert_eq!(r.decision.provider(), Some(n.as_str()));
                    if s.tlp >= Tlp::AmberStrict {
                        prop_assert!(s.details.is_none(), "details to helper {} under {:?}", n, s.tlp);
                    }
                    if s.tlp == Tlp::Red {
                        prop_assert!(s.sector.is_none() && s.priority.is_none());
                    }
                }
                Audience::Coalition => {
                    if s.tlp == Tlp::Red {
                        prop_assert!(s.details.is_none() && s.sector.is_none() && s.priority.is_none());
                    }
                }
            }
            if let Decision::AssignmentProposed(p) = &r.decision {
                prop_assert!(p.provider_nation != s.requester_nation, "self-help proposed");
                let helper = r.audience == Audience::Nation(p.provider_nation.clone());
                if (helper && s.tlp >= Tlp::AmberStrict) || (r.audience == Audience::Coalition && s.tlp == Tlp::Red) {
                    prop_assert!(p.rationale.is_none(), "rationale of a {:?} incident to {:?}", s.tlp, r.audience);
                }
            }
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn capacity_and_coverage_are_never_exceeded_and_stay_consistent(
        seed in any::<u64>(), n in 20usize..200, answers in proptest::collection::vec(any::<u8>(), 1..8)
    ) {
        let (store, _) = run(seed, n, &answers);
        for o in entities::<Offer>(&store, b"o/") {
            prop_assert!(o.committed >= 0 && o.committed <= o.capacity, "{:?}", o);
        }
        for r in entities::<Request>(&store, b"r/") {
            for need in &r.needs {
                prop_assert!(need.covered >= 0 && need.covered <= need.units, "{:?}", r);
            }
        }
    }

    /// The waiting needs and open requests the fold keeps are exactly those its requests and
    /// incidents imply, so that a restore can derive them (`derived::request_keys`).
    #[test]
    fn the_waiting_and_open_request_keys_are_those_the_requests_imply(
        seed in any::<u64>(), n in 20usize..200, answers in proptest::collection::vec(any::<u8>(), 1..8)
    ) {
        let (store, _) = run(seed, n, &answers);
        let mut kept = Vec::new();
        for prefix in [WAITING, OPEN_REQUESTS] {
            kept.extend(store.scan_prefix(prefix).unwrap().into_iter().map(|(k, _)| k));
        }
        let mut implied = Vec::new();
        for r in entities::<Request>(&store, REQUESTS) {
            let incident: Incident = read(&store, &incident_key(&r.incident_id)).unwrap().unwrap();
            implied.extend(rallypoint_core::derived::request_keys(&incident, &r));
        }
        kept.sort();
        implied.sort();
        prop_assert!(!implied.is_empty() || n < 40, "no request implies a key");
        prop_assert_eq!(kept, implied);
    }

    /// The matcher leaves nothing on the table: no need that still misses units has an
    /// eligible offer with free capacity.
    #[test]
    fn no_waiting_need_has_an_eligible_offer_with_free_capacity(
        seed in any::<u64>(), n in 20usize..200, answers in proptest::collection::vec(any::<u8>(), 1..8)
    ) {
        let (store, _) = run(seed, n, &answers);
        let offers = entities::<Offer>(&store, b"o/");
        let requests = entities::<Request>(&store, b"r/");
        let now = rallypoint_core::state::stream_time(&store).unwrap();
        for r in &requests {
            let key = rallypoint_core::state::incident_key(&r.incident_id);
            let incident: Incident = rallypoint_core::state::read(&store, &key).unwrap().unwrap();
            if !incident.open {
                continue;
            }
            for need in r.needs.iter().filter(|n| n.missing() > 0) {
                let ctx = NeedContext {
                    requester: &r.nation,
                    capability: need.capability,
                    tlp: incident.tlp,
                    refused_offers: &need.excluded_offers,
                    stream_time: now,
                };
                for o in &offers {
                    prop_assert!(rules::check(o, &ctx).is_err(), "{:?} could serve {:?}", o, r);
                }
            }
        }
    }

    /// The coordinator folds a transaction's events with one [`Working`] set (entities and
    /// tallies held typed) and flushes it before the commit: the same state and outputs as
    /// flushing after every event.
    #[test]
    fn batches_sharing_their_working_set_give_the_same_state_and_outputs(
        seed in any::<u64>(),
        n in 20usize..150,
        batch in 1usize..80,
    ) {
        // Short windows and interval (the sample events happen a minute before they are
        // reported): windows close and publications wait.
        let config = CoreConfig {
            acceptance_timeout_ms: 20_000,
            picture: rallypoint_core::picture::PictureConfig {
                windows_ms: vec![5_000, 20_000],
                allowed_lateness_ms: 62_000,
                emit_interval_ms: 3_000,
                ..Default::default()
            },
            ..CoreConfig::default()
        };
        let mut one_by_one = MemStore::new();
        let (journal, expected) = sample::fold_with_answers(
            &mut one_by_one,
            &config,
            sample::stream(&NATIONS, n, seed),
            |k| (k % 4) as u8,
        )
        .unwrap();
        let mut batched = MemStore::new();
        let mut working = Working::default();
        let mut outputs = Vec::new();
        for events in journal.chunks(batch) {
            for e in events {
                outputs.extend(apply_with(&mut batched, &mut working, &config, e).unwrap());
            }
            working.flush(&mut batched);
        }
        prop_assert_eq!(outputs, expected);
        prop_assert!(one_by_one.iter().eq(batched.iter()), "the states differ");
    }

    #[test]
    fn the_same_stream_gives_byte_identical_state_and_decisions(seed in any::<u64>(), n in 20usize..120) {
        let answers = [0u8, 1, 2, 3];
        prop_assert_eq!(run(seed, n, &answers), run(seed, n, &answers));
    }
}

#[test]
fn generated_streams_exercise_every_kind_of_decision() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..20 {
        for o in run(seed, 200, &[0, 1, 2, 2, 3]).1 {
            if let Output::Decision(r) = o {
                seen.insert(match &r.decision {
                    Decision::AssignmentCancelled(c) => format!("Cancelled:{:?}", c.reason),
                    d => d.type_name().to_owned(),
                });
            }
        }
    }
    for kind in [
        "AssignmentProposed",
        "AssignmentConfirmed",
        "AssistanceUnmet",
        "Cancelled:Declined",
        "Cancelled:TimedOut",
        "Cancelled:IncidentClosed",
        "Cancelled:OfferWithdrawn",
        "Cancelled:OfferReduced",
    ] {
        assert!(seen.contains(kind), "{kind} never happens: {seen:?}");
    }
}
