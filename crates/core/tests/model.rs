//! The full assignment model, scenario by scenario: offer updates, completion, re-ranking,
//! availability windows, preferences, the rationale, and optimality within a round.

mod common;

use common::*;
use rallypoint_core::decision::{CancelReason, Decision};
use rallypoint_core::event::{Capability, Delivery, Priority, Sector, Tlp};
use rallypoint_core::sample;
use rallypoint_core::{Event, Output, RejectReason};

const F: Capability = Capability::Forensics;

/// (assignment, reason) of each cancellation the cell sees.
fn cancellations(outputs: &[Output]) -> Vec<(String, CancelReason)> {
    decisions(outputs)
        .into_iter()
        .filter_map(|d| match d {
            Decision::AssignmentCancelled(c) => Some((c.assignment_id.clone(), c.reason)),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// (request, units missing) of each unmet announcement the cell sees.
fn unmet(outputs: &[Output]) -> Vec<(String, i32)> {
    decisions(outputs)
        .into_iter()
        .filter_map(|d| match d {
            Decision::AssistanceUnmet(u) => Some((u.subject.request_id.clone(), u.units_missing)),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn update(
    w: &mut World,
    nation: &str,
    id: &str,
    units: i32,
    edit: impl FnOnce(&mut Event),
) -> Vec<Output> {
    let e = w.env(nation);
    let mut ev = sample::offer_updated(e, id, units);
    edit(&mut ev);
    w.apply(&ev)
}

fn incident(
    w: &mut World,
    nation: &str,
    id: &str,
    p: Priority,
    cap: Capability,
    units: i32,
) -> Vec<Output> {
    let e = w.env(nation);
    assert!(w.apply(&sample::incident(e, id, Tlp::Green, p)).is_empty());
    let e = w.env(nation);
    w.apply(&sample::request(e, &format!("R-{id}"), id, &[(cap, units)]))
}

#[test]
fn an_offer_reduced_below_its_commitment_cancels_the_newest_proposal_and_rematches_it() {
    let mut w = World::new();
    w.offer("DEU", "O1", F, 3);
    w.hit("EST", "I1", Tlp::Green, F, 2); // A-00000001, 2 units
    w.hit("LVA", "I2", Tlp::Green, F, 1); // A-00000002, 1 unit
    let e = w.env("DEU");
    w.apply(&sample::accepted(e, "A-00000001"));
    w.offer("FRA", "O2", F, 1);
    let out = update(&mut w, "DEU", "O1", 2, |_| {});
    assert_eq!(
        cancellations(&out),
        vec![("A-00000002".to_string(), CancelReason::OfferReduced)]
    );
    assert_eq!(
        proposals(&out),
        vec![("A-00000003".to_string(), "O2".to_string(), 1)]
    );
    // The reduced offer is still fully used by the confirmed assignment: no more cancels.
    let out = update(&mut w, "DEU", "O1", 2, |_| {});
    assert!(cancellations(&out).is_empty(), "{out:?}");
}

#[test]
fn new_terms_that_exclude_the_requester_cancel_its_assignment() {
    let mut w = World::new();
    w.offer("DEU", "O1", F, 3);
    w.hit("EST", "I1", Tlp::Green, F, 1);
    let out = update(&mut w, "DEU", "O1", 3, |e| {
        if let Event::OfferUpdated(o) = e {
            o.excluded_nations = vec!["EST".into()];
        }
    });
    assert_eq!(
        cancellations(&out),
        vec![("A-00000001".to_string(), CancelReason::OfferReduced)]
    );
    assert_eq!(unmet(&out), vec![("R-I1".to_string(), 1)]);
}

#[test]
fn a_lowered_tlp_clearance_cancels_what_the_team_may_no_longer_see() {
    let mut w = World::new();
    let e = w.env("DEU");
    let mut offer = sample::offer(e, "O1", F, 2);
    if let Event::AssetOffered(o) = &mut offer {
        o.max_tlp = Tlp::Red;
    }
    w.apply(&offer);
    w.hit("EST", "I1", Tlp::AmberStrict, F, 1);
    w.hit("LVA", "I2", Tlp::Green, F, 1);
    let out = update(&mut w, "DEU", "O1", 2, |e| {
        if let Event::OfferUpdated(o) = e {
            o.max_tlp = Tlp::Amber;
        }
    });
    assert_eq!(
        cancellations(&out),
        vec![("A-00000001".to_string(), CancelReason::OfferReduced)]
    );
}

#[test]
fn more_capacity_serves_a_waiting_need() {
    let mut w = World::new();
    w.offer("DEU", "O1", F, 1);
    let out = w.hit("EST", "I1", Tlp::Green, F, 3);
    assert_eq!(unmet(&out), vec![("R-I1".to_string(), 2)]);
    let out = update(&mut w, "DEU", "O1", 3, |_| {});
    assert_eq!(
        proposals(&out),
        vec![("A-00000002".to_string(), "O1".to_string(), 2)]
    );
    assert!(unmet(&out).is_empty());
}

#[test]
fn only_the_offering_nation_may_update_its_offer() {
    let mut w = World::new();
    w.offer("DEU", "O1", F, 1);
    let out = update(&mut w, "FRA", "O1", 5, |_| {});
    assert_eq!(rejection(&out), Some(RejectReason::NotOwner));
    let out = update(&mut w, "FRA", "O404", 5, |_| {});
    assert_eq!(rejection(&out), Some(RejectReason::UnknownEntity));
}

#[test]
fn a_completed_assignment_frees_its_units_and_its_need_stays_covered() {
    let mut w = World::new();
    w.offer("DEU", "O1", F, 1);
    w.hit("EST", "I1", Tlp::Green, F, 1);
    w.hit("LVA", "I2", Tlp::Green, F, 1);
    let e = w.env("DEU");
    let early = w.apply(&sample::completed(e, "A-00000001"));
    assert_eq!(rejection(&early), Some(RejectReason::WrongState));
    let e = w.env("DEU");
    w.apply(&sample::accepted(e, "A-00000001"));
    let e = w.env("DEU");
    let out = w.apply(&sample::completed(e, "A-00000001"));
    assert_eq!(
        proposals(&out),
        vec![("A-00000002".to_string(), "O1".to_string(), 1)]
    );
    let e = w.env("EST");
    let out = w.apply(&sample::closed(e, "I1"));
    assert!(out.is_empty(), "completed help is not cancelled: {out:?}");
    let e = w.env("DEU");
    let again = w.apply(&sample::completed(e, "A-00000001"));
    // It existed and has ended: a state that does not allow the event, not an unknown id.
    assert_eq!(rejection(&again), Some(RejectReason::WrongState));
    let e = w.env("DEU");
    let never = w.apply(&sample::completed(e, "A-00000099"));
    assert_eq!(rejection(&never), Some(RejectReason::UnknownEntity));
}

/// Two requests wait; one offer arrives. Who gets it, with or without a re-assessment that
/// raises the first incident from Medium to Emergency?
fn winner_after(raise_first: bool) -> String {
    let mut w = World::new();
    incident(&mut w, "EST", "I1", Priority::Medium, F, 1);
    incident(&mut w, "LVA", "I2", Priority::High, F, 1);
    if raise_first {
        let e = w.env("EST");
        let out = w.apply(&sample::incident_updated(e, "I1", Priority::Emergency));
        assert!(out.is_empty(), "{out:?}");
    }
    let out = w.offer("DEU", "O1", F, 1);
    let winners: Vec<String> = decisions(&out)
        .into_iter()
        .filter_map(|d| match d {
            Decision::AssignmentProposed(p) => Some(p.subject.request_id.clone()),
            _ => None,
        })
        .collect();
    winners[0].clone()
}

#[test]
fn a_raised_priority_moves_a_waiting_request_ahead() {
    assert_eq!(winner_after(false), "R-I2");
    assert_eq!(winner_after(true), "R-I1");
}

#[test]
fn an_offer_whose_window_opens_later_is_proposed_once_stream_time_reaches_it() {
    let mut w = World::new();
    let e = w.env("DEU");
    let now = e.reported_at;
    let mut offer = sample::offer(e, "O1", F, 1);
    if let Event::AssetOffered(o) = &mut offer {
        o.available_from = now + 3 * 3_600_000; // opens in 3 h; answers in 1 h
        o.available_until = now + 48 * 3_600_000;
    }
    w.apply(&offer);
    let out = w.hit("EST", "I1", Tlp::Green, F, 1);
    let Decision::AssistanceUnmet(u) = decisions(&out)[0] else {
        panic!("{out:?}")
    };
    let excluded = &u.rationale.as_ref().unwrap().excluded;
    assert_eq!(excluded[0].rule, "outside_availability_window");
    // The team can be there within its window from 2 h on; an hour in, it still cannot.
    w.clock.now += 3_600_000;
    let out = w.offer("POL", "O9", Capability::Recovery, 1);
    assert!(proposals(&out).is_empty(), "{out:?}");
    w.clock.now += 3_600_000;
    let out = w.offer("POL", "O10", Capability::Recovery, 1);
    assert_eq!(
        proposals(&out),
        vec![("A-00000001".to_string(), "O1".to_string(), 1)]
    );
}

#[test]
fn a_round_moves_its_own_plan_to_serve_more_priority_weighted_units() {
    // POL's request holds both offers; when it closes, both come free in one round. EST
    // (Emergency) may use either, LVA (High) only O-A. Taking O-A for EST first, in rank
    // order, would leave LVA with nothing; the round moves EST onto O-B instead.
    let mut w = World::new();
    incident(&mut w, "POL", "I0", Priority::Emergency, F, 2);
    w.offer("DEU", "O-A", F, 1);
    let e = w.env("FRA");
    let mut only_est = sample::offer(e, "O-B", F, 1);
    if let Event::AssetOffered(o) = &mut only_est {
        o.excluded_nations = vec!["LVA".into()];
    }
    w.apply(&only_est);
    incident(&mut w, "EST", "I1", Priority::Emergency, F, 1);
    incident(&mut w, "LVA", "I2", Priority::High, F, 1);
    let e = w.env("POL");
    let out = w.apply(&sample::closed(e, "I0"));
    let mut served: Vec<(String, String)> = decisions(&out)
        .into_iter()
        .filter_map(|d| match d {
            Decision::AssignmentProposed(p) => {
                Some((p.subject.request_id.clone(), p.offer_id.clone()))
            }
            _ => None,
        })
        .collect();
    served.sort();
    served.dedup();
    assert_eq!(
        served,
        vec![
            ("R-I1".to_string(), "O-B".to_string()),
            ("R-I2".to_string(), "O-A".to_string())
        ]
    );
}

#[test]
fn a_team_that_works_as_asked_and_knows_the_sector_is_proposed_first() {
    let mut w = World::new();
    for (id, delivery, sectors, minutes) in [
        ("O1", Delivery::Remote, vec![Sector::Energy], 10),
        ("O2", Delivery::OnSite, vec![Sector::Health], 20),
        ("O3", Delivery::Either, vec![Sector::Energy], 30),
    ] {
        let e = w.env("DEU");
        let mut offer = sample::offer(e, id, F, 1);
        if let Event::AssetOffered(o) = &mut offer {
            o.delivery = delivery;
            o.sector_expertise = sectors;
            o.response_time_minutes = minutes;
        }
        w.apply(&offer);
    }
    let e = w.env("EST");
    w.apply(&sample::incident(e, "I1", Tlp::Green, Priority::High));
    let e = w.env("EST");
    let mut ask = sample::request(e, "R1", "I1", &[(F, 2)]);
    if let Event::AssistanceRequested(r) = &mut ask {
        r.needs[0].delivery = Delivery::OnSite;
    }
    let out = w.apply(&ask);
    // On site and energy (O3) first, then on site (O2); the fastest, remote-only, team last.
    let offers: Vec<String> = proposals(&out).into_iter().map(|p| p.1).collect();
    assert_eq!(offers, vec!["O3".to_string(), "O2".to_string()]);
}

#[test]
fn the_rationale_gives_the_score_its_criteria_and_each_rules_exclusions() {
    let mut w = World::new();
    w.offer("EST", "O-self", F, 1);
    let e = w.env("DEU");
    let mut excluding = sample::offer(e, "O-excl", F, 1);
    if let Event::AssetOffered(o) = &mut excluding {
        o.excluded_nations = vec!["EST".into()];
    }
    w.apply(&excluding);
    let e = w.env("FRA");
    let mut uncleared = sample::offer(e, "O-tlp", F, 1);
    if let Event::AssetOffered(o) = &mut uncleared {
        o.max_tlp = Tlp::Green;
    }
    w.apply(&uncleared);
    w.offer("POL", "O-ok", F, 1);
    let out = w.hit("EST", "I1", Tlp::Amber, F, 2);
    let p = decisions(&out)
        .into_iter()
        .find_map(|d| match d {
            Decision::AssignmentProposed(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a proposal");
    assert_eq!(p.offer_id, "O-ok");
    let r = p
        .rationale
        .expect("the requester and cell see the rationale");
    let excluded: Vec<(&str, i32)> = r
        .excluded
        .iter()
        .map(|c| (c.rule.as_str(), c.excluded))
        .collect();
    assert_eq!(
        excluded,
        vec![
            ("beneficiary_excluded", 1),
            ("self_help", 1),
            ("tlp_above_team_clearance", 1)
        ]
    );
    assert_eq!(r.candidates, 1);
    let criteria: Vec<(&str, i64)> = r
        .criteria
        .iter()
        .map(|c| (c.name.as_str(), c.value))
        .collect();
    // sample::incident: Severe, essential, not cross-border, impact (60+40+50)/3, measures 50.
    assert_eq!(
        criteria,
        vec![
            ("priority_weight", 16),
            ("essential_entity", 1),
            ("cross_border", 0),
            ("impact", 50),
            ("own_measures", 50)
        ]
    );
    assert_eq!(r.score, 16 * 1_000 + 300 + 50 * 2 + 50);
    assert_eq!(unmet(&out), vec![("R-I1".to_string(), 1)]);
}

/// The rationale of `out`'s first decision of type `kind` seen by the cell.
fn cell_rationale(out: &[Output], kind: &str) -> rallypoint_core::decision::Rationale {
    out.iter()
        .find_map(|o| match o {
            Output::Decision(r) if r.audience == rallypoint_core::decision::Audience::Coalition => {
                match &r.decision {
                    Decision::AssignmentProposed(p) if kind == "proposed" => p.rationale.clone(),
                    Decision::AssistanceUnmet(u) if kind == "unmet" => u.rationale.clone(),
                    _ => None,
                }
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind} rationale in {out:?}"))
}

fn documented_score(r: &rallypoint_core::decision::Rationale) -> i64 {
    let weight = |name: &str| match name {
        "priority_weight" => 1_000,
        "essential_entity" => 300,
        "cross_border" => 200,
        "impact" => 2,
        "own_measures" => 1,
        other => panic!("undocumented criterion {other}"),
    };
    r.criteria.iter().map(|c| c.value * weight(&c.name)).sum()
}

#[test]
fn a_rationale_score_is_the_weighted_sum_of_its_criteria_whatever_the_units() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 5);
    let out = w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 2);
    let proposed = cell_rationale(&out, "proposed");
    assert_eq!(proposed.score, documented_score(&proposed));
    // Two units missing, none offered: the announcement's score is the same sum.
    let out = w.hit("LVA", "I2", Tlp::Green, Capability::IcsOt, 2);
    let unmet = cell_rationale(&out, "unmet");
    assert_eq!(unmet.score, documented_score(&unmet));
    assert!(unmet.score > 0);
}

#[test]
fn a_full_offer_is_counted_as_excluded_by_no_remaining_capacity() {
    let mut w = World::new();
    w.offer("LVA", "O-full", Capability::Forensics, 1);
    w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 1);
    // O-full is now fully proposed; a second request of the same capability finds nothing.
    let out = w.hit("LTU", "I2", Tlp::Green, Capability::Forensics, 2);
    let unmet = cell_rationale(&out, "unmet");
    assert_eq!(unmet.candidates, 0);
    let counted: Vec<(&str, i32)> = unmet
        .excluded
        .iter()
        .map(|r| (r.rule.as_str(), r.excluded))
        .collect();
    assert_eq!(counted, vec![("no_remaining_capacity", 1)], "{unmet:?}");
    // New supply of another nation: the round considers only it, yet the rationale still
    // counts the full offer, and an offer of the requester's own nation as self-help.
    w.offer("LTU", "O-own", Capability::Forensics, 3);
    let out = w.offer("DEU", "O-new", Capability::Forensics, 1);
    let proposed = cell_rationale(&out, "proposed");
    let counted: Vec<(&str, i32)> = proposed
        .excluded
        .iter()
        .map(|r| (r.rule.as_str(), r.excluded))
        .collect();
    assert_eq!(
        counted,
        vec![("no_remaining_capacity", 1), ("self_help", 1)],
        "{proposed:?}"
    );
    assert_eq!(proposed.candidates, 1);
}

#[test]
fn a_nation_sees_another_nations_event_id_only_as_an_id_of_its_own() {
    let mut w = World::new();
    w.offer("DEU", "O1", Capability::Forensics, 1);
    w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 1);
    w.hit("LVA", "I2", Tlp::Green, Capability::Forensics, 1);
    // EST closes its incident: the freed unit goes to LVA. The cause is EST's event.
    let e = w.env("EST");
    let closing = e.event_id.clone();
    let out = w.apply(&sample::closed(e, "I1"));
    let mut seen = std::collections::BTreeMap::new();
    for o in &out {
        if let Output::Decision(r) = o {
            let h = r.decision.header();
            assert!(h.decision_id.starts_with(&format!("{}.", h.cause_event_id)));
            seen.entry(format!("{:?}", r.audience))
                .or_insert_with(Vec::new)
                .push(h.cause_event_id.clone());
        }
    }
    assert!(seen["Coalition"].iter().all(|c| *c == closing), "{seen:?}");
    assert!(
        seen[r#"Nation("EST")"#].iter().all(|c| *c == closing),
        "EST sent it"
    );
    for n in ["DEU", "LVA"] {
        let ids = &seen[&format!("Nation({n:?})")];
        assert!(
            ids.iter().all(|c| *c != closing),
            "{n} learns EST's event id: {seen:?}"
        );
        assert_eq!(ids[0], rallypoint_core::tlp::audience_cause_id(n, &closing));
    }
    assert_ne!(seen[r#"Nation("DEU")"#][0], seen[r#"Nation("LVA")"#][0]);
}
