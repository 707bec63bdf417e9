//! The fold against the in-memory store: whole scenarios, event by event.

mod common;

use common::*;
use rallypoint_core::decision::{Audience, CancelReason, Decision};
use rallypoint_core::event::{Capability, Priority, Tlp};
use rallypoint_core::sample;
use rallypoint_core::{Event, Output, RejectReason};

#[test]
fn an_offer_arriving_after_a_request_is_proposed_to_requester_provider_and_cell() {
    let mut w = World::new();
    let out = w.hit("EST", "I1", Tlp::Amber, Capability::Forensics, 2);
    assert_eq!(
        seen_by(&out, &nation("EST")),
        vec![("AssistanceUnmet", "R-I1".to_string())]
    );
    let out = w.offer("DEU", "O1", Capability::Forensics, 5);
    let expected = vec![("AssignmentProposed", "A-00000001".to_string())];
    assert_eq!(seen_by(&out, &nation("EST")), expected);
    assert_eq!(seen_by(&out, &nation("DEU")), expected);
    assert_eq!(seen_by(&out, &Audience::Coalition), expected);
    assert_eq!(out.len(), 3);
}

#[test]
fn a_repeated_event_id_is_rejected_and_changes_nothing() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 5);
    let e = w.env("EST");
    let incident = sample::incident(e, "I1", Tlp::Green, Priority::High);
    assert!(w.apply(&incident).is_empty());
    let before = w.store.clone();
    let again = w.apply(&incident);
    assert_eq!(rejection(&again), Some(RejectReason::DuplicateEventId));
    assert_eq!(w.store, before);
}

#[test]
fn nobody_is_proposed_to_help_itself() {
    let mut w = World::new();
    w.offer("EST", "O1", Capability::Forensics, 5);
    let out = w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 1);
    assert_eq!(
        seen_by(&out, &nation("EST")),
        vec![("AssistanceUnmet", "R-I1".to_string())]
    );
    let Output::Decision(r) = &out[0] else {
        panic!()
    };
    let Decision::AssistanceUnmet(u) = &r.decision else {
        panic!()
    };
    let excluded = &u.rationale.as_ref().unwrap().excluded;
    assert_eq!(excluded[0].rule, "self_help");
    assert_eq!(excluded[0].excluded, 1);
}

#[test]
fn acceptance_confirms_and_a_decline_moves_the_need_to_the_next_offer() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 2);
    w.offer("FRA", "O2", Capability::Forensics, 2);
    let out = w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 2);
    assert_eq!(
        seen_by(&out, &nation("DEU")),
        vec![("AssignmentProposed", "A-00000001".to_string())]
    );
    let e = w.env("DEU");
    let out = w.apply(&sample::declined(e, "A-00000001"));
    assert_eq!(
        seen_by(&out, &nation("EST")),
        vec![
            ("AssignmentCancelled", "A-00000001".to_string()),
            ("AssignmentProposed", "A-00000002".to_string())
        ]
    );
    assert_eq!(
        seen_by(&out, &nation("FRA")),
        vec![("AssignmentProposed", "A-00000002".to_string())]
    );
    let e = w.env("FRA");
    let out = w.apply(&sample::accepted(e, "A-00000002"));
    assert_eq!(
        seen_by(&out, &Audience::Coalition),
        vec![("AssignmentConfirmed", "A-00000002".to_string())]
    );
}

#[test]
fn only_the_provider_may_answer_a_proposal() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 2);
    w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 1);
    let e = w.env("FRA");
    assert_eq!(
        rejection(&w.apply(&sample::accepted(e, "A-00000001"))),
        Some(RejectReason::NotOwner)
    );
    let e = w.env("DEU");
    assert!(rejection(&w.apply(&sample::accepted(e, "A-00000001"))).is_none());
    let e = w.env("DEU");
    assert_eq!(
        rejection(&w.apply(&sample::declined(e, "A-00000001"))),
        Some(RejectReason::WrongState)
    );
}

#[test]
fn a_proposal_not_answered_in_stream_time_is_cancelled_as_timed_out() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 2);
    w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 1);
    w.clock.now += 600_000; // the next event lands past the deadline
    let out = w.offer("POL", "O9", Capability::Recovery, 1);
    let cancelled: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Decision(r) => match &r.decision {
                Decision::AssignmentCancelled(c) => Some(c.reason),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, vec![CancelReason::TimedOut; 3]);
    assert_eq!(
        seen_by(&out, &nation("EST")),
        vec![
            ("AssignmentCancelled", "A-00000001".to_string()),
            ("AssistanceUnmet", "R-I1".to_string()),
        ]
    );
    // DEU accepts too late: the proposal has ended, which is a state, not an unknown id.
    let e = w.env("DEU");
    let late = w.apply(&sample::accepted(e, "A-00000001"));
    assert_eq!(rejection(&late), Some(RejectReason::WrongState), "{late:?}");
}

#[test]
fn a_withdrawn_offer_cancels_its_assignments_and_rematches() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 2);
    w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 2);
    w.offer("FRA", "O2", Capability::Forensics, 2);
    let e = w.env("DEU");
    let out = w.apply(&sample::withdrawn(e, "O1"));
    assert_eq!(
        seen_by(&out, &nation("EST")),
        vec![
            ("AssignmentCancelled", "A-00000001".to_string()),
            ("AssignmentProposed", "A-00000002".to_string())
        ]
    );
}

#[test]
fn a_closed_incident_releases_capacity_to_the_next_request() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 2);
    w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 2);
    let out = w.hit("LVA", "I2", Tlp::Green, Capability::Forensics, 2);
    assert_eq!(
        seen_by(&out, &nation("LVA")),
        vec![("AssistanceUnmet", "R-I2".to_string())]
    );
    let e = w.env("EST");
    let out = w.apply(&sample::closed(e, "I1"));
    assert_eq!(
        seen_by(&out, &nation("LVA")),
        vec![("AssignmentProposed", "A-00000002".to_string())]
    );
}

#[test]
fn a_red_incident_reaches_the_helper_and_the_cell_as_ids_and_capability_only() {
    let mut w = World::new();
    let e = w.env("DEU");
    let mut offer = sample::offer(e, "O1", Capability::Forensics, 2);
    if let Event::AssetOffered(o) = &mut offer {
        o.max_tlp = Tlp::Red;
    }
    w.apply(&offer);
    let out = w.hit("EST", "I1", Tlp::Red, Capability::Forensics, 1);
    for o in &out {
        let Output::Decision(r) = o else {
            panic!("{o:?}")
        };
        let s = r.decision.subject();
        let Decision::AssignmentProposed(p) = &r.decision else {
            panic!()
        };
        if r.audience == nation("EST") {
            assert!(s.details.is_some() && s.priority.is_some() && p.rationale.is_some());
        } else {
            assert!(
                s.details.is_none()
                    && s.priority.is_none()
                    && s.sector.is_none()
                    && p.rationale.is_none(),
                "{r:?}"
            );
        }
    }
}

#[test]
fn the_same_journal_gives_the_same_decisions() {
    let run = || {
        let mut w = World::new();
        let mut all = Vec::new();
        all.extend(w.offer("DEU", "O1", Capability::Forensics, 3));
        all.extend(w.hit("EST", "I1", Tlp::Amber, Capability::Forensics, 2));
        all.extend(w.hit("LVA", "I2", Tlp::Green, Capability::Forensics, 2));
        let e = w.env("DEU");
        all.extend(w.apply(&sample::declined(e, "A-00000001")));
        (all, w.store)
    };
    assert_eq!(run(), run());
}
