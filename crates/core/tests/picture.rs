//! The threat picture and campaign correlation, through the fold.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use rallypoint_core::event::{
    Capability, Envelope, Event, Indicator, IndicatorKind, Priority, SightingKind, Tlp,
};
use rallypoint_core::picture::{
    Campaign, CampaignStatus, PictureConfig, PictureUpdate, ThreatPicture,
};
use rallypoint_core::sample;
use rallypoint_core::state::{membership_key, CampaignState, PictureStats, PICTURE_STATS};
use rallypoint_core::store::Store;
use rallypoint_core::tlp::Role;
use rallypoint_core::{CoreConfig, Output};

const H: i64 = 3_600_000;
/// A whole hour, so that windows line up with round numbers in the tests.
const T0: i64 = 500_000 * H;

fn world(picture: PictureConfig) -> World {
    let mut w = World::new();
    w.config = CoreConfig {
        acceptance_timeout_ms: 600_000,
        picture,
        ..CoreConfig::default()
    };
    w.clock = sample::Clock::new(T0, 1_000);
    w
}

fn hourly() -> PictureConfig {
    PictureConfig {
        windows_ms: vec![H],
        allowed_lateness_ms: 10 * 60_000,
        emit_interval_ms: 0,
        fanout_cap: 3,
        top: 5,
    }
}

fn pictures(out: &[Output]) -> Vec<ThreatPicture> {
    out.iter()
        .filter_map(|o| match o {
            Output::Picture(PictureUpdate::Picture(p)) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn campaigns(out: &[Output]) -> Vec<(&'static str, Campaign)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Picture(
                u @ (PictureUpdate::CampaignDetected(c) | PictureUpdate::CampaignUpdated(c)),
            ) => Some((u.type_name(), c.clone())),
            _ => None,
        })
        .collect()
}

fn find<'a>(ps: &'a [ThreatPicture], key: &str) -> &'a ThreatPicture {
    ps.iter().find(|p| p.key == key).unwrap_or_else(|| {
        panic!(
            "no {key} in {:?}",
            ps.iter().map(|p| &p.key).collect::<Vec<_>>()
        )
    })
}

/// An incident whose attack happened at `occurred`, reported now, with `indicators`.
fn report(
    w: &mut World,
    nation: &str,
    id: &str,
    tlp: Tlp,
    occurred: i64,
    indicators: &[&str],
) -> Vec<Output> {
    let mut env: Envelope = w.env(nation);
    env.occurred_at = occurred;
    let mut e = sample::incident(env, id, tlp, Priority::High);
    if let Event::IncidentReported(r) = &mut e {
        r.indicators = indicators
            .iter()
            .map(|d| Indicator::new(IndicatorKind::Domain, (*d).to_owned()))
            .collect();
    }
    w.apply_all(&e)
}

fn stats(w: &World) -> PictureStats {
    rallypoint_core::state::read(&w.store, PICTURE_STATS)
        .unwrap()
        .unwrap_or_default()
}

#[test]
fn an_incident_counts_in_its_five_scopes_and_in_the_window_of_its_event_time() {
    let mut w = world(hourly());
    let out = report(&mut w, "EST", "I1", Tlp::Amber, T0 + H - 1, &[]);
    let ps = pictures(&out);
    // The last millisecond of the first hour belongs to it; the next one would not.
    for scope in [
        "alliance",
        "nation:EST",
        "sector:energy",
        "rsit:malicious_code",
        "priority:High",
    ] {
        let win = find(&ps, &format!("{scope}/{H}/{T0}"));
        assert_eq!(
            (win.incidents_opened, win.window_ms, win.window_start),
            (1, H, T0)
        );
        assert_eq!(find(&ps, &format!("{scope}/total")).open_incidents, 1);
    }
    let win = find(&ps, &format!("alliance/{H}/{T0}"));
    let techniques: Vec<&str> = win.top_techniques.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(techniques, vec!["T1059.001", "T1486"]);
    assert!(
        win.top_tactics.iter().any(|c| c.name == "execution"),
        "{:?}",
        win.top_tactics
    );
    let out = report(&mut w, "LVA", "I2", Tlp::Green, T0 + H, &[]);
    assert!(pictures(&out)
        .iter()
        .any(|p| p.key == format!("alliance/{H}/{}", T0 + H)));
}

#[test]
fn a_late_event_within_the_lateness_updates_its_window_and_a_later_one_is_counted_as_late() {
    let mut w = world(hourly());
    w.clock.now = T0 + H + 5 * 60_000; // stream time 5 min into the second hour
    let out = report(&mut w, "EST", "I1", Tlp::Green, T0 + 30 * 60_000, &[]);
    let ps = pictures(&out);
    assert_eq!(find(&ps, &format!("alliance/{H}/{T0}")).incidents_opened, 1);
    assert_eq!(find(&ps, "alliance/total").late_events, 0);
    w.clock.now = T0 + H + 10 * 60_000; // the first hour's lateness is over
    let out = report(&mut w, "EST", "I2", Tlp::Green, T0 + 31 * 60_000, &[]);
    let ps = pictures(&out);
    assert!(
        ps.iter().all(|p| p.key != format!("alliance/{H}/{T0}")),
        "the closed window changed"
    );
    let total = find(&ps, "alliance/total");
    assert_eq!((total.late_events, total.open_incidents), (1, 2));
    assert_eq!(stats(&w).late_events, 1);
}

#[test]
fn a_closed_window_leaves_the_state() {
    let mut w = world(hourly());
    report(&mut w, "EST", "I1", Tlp::Green, T0 + 1, &[]);
    let windows = |w: &World| w.store.scan_prefix(b"p/alliance/w/").unwrap().len();
    assert_eq!(windows(&w), 1);
    w.clock.now = T0 + H + 10 * 60_000;
    w.offer("DEU", "O1", Capability::Forensics, 1);
    assert_eq!(windows(&w), 0);
    assert!(w.store.scan_prefix(b"z/").unwrap().is_empty());
}

#[test]
fn figures_are_published_at_most_once_per_interval_and_the_rest_when_it_has_passed() {
    let mut w = world(PictureConfig {
        emit_interval_ms: 10_000,
        ..hourly()
    });
    let first = report(&mut w, "EST", "I1", Tlp::Green, T0, &[]);
    assert_eq!(find(&pictures(&first), "alliance/total").open_incidents, 1);
    // One second later: changed, but not published yet.
    let second = report(&mut w, "EST", "I2", Tlp::Green, T0, &[]);
    assert!(pictures(&second).iter().all(|p| p.key != "alliance/total"));
    // Still inside the interval (stream time T0 + 10 s): nothing.
    w.clock.now += 7_000;
    let e = w.env("DEU");
    let early = w.apply_all(&sample::offer(e, "O1", Capability::Forensics, 1));
    assert!(pictures(&early).iter().all(|p| p.key != "alliance/total"));
    // The interval has passed: the scheduled publication carries both incidents and O1;
    // O2 arrives in this event, after it, and waits for the next interval.
    let e = w.env("DEU");
    let out = w.apply_all(&sample::offer(e, "O2", Capability::Forensics, 1));
    let total = find(&pictures(&out), "alliance/total").clone();
    assert_eq!(total.open_incidents, 2);
    assert_eq!(total.capacity[0].offered, 1);
    assert_eq!(
        pictures(&out)
            .iter()
            .filter(|p| p.key == "alliance/total")
            .count(),
        1
    );
}

#[test]
fn capacity_offered_and_committed_follow_offers_proposals_and_cancellations() {
    let mut w = world(hourly());
    w.offer("DEU", "O1", Capability::Forensics, 3);
    w.hit("EST", "I1", Tlp::Green, Capability::Forensics, 2);
    let e = w.env("DEU");
    let out = w.apply_all(&sample::declined(e, "A-00000001"));
    let ps = pictures(&out);
    let deu = find(&ps, "nation:DEU/total");
    assert_eq!((deu.capacity[0].offered, deu.capacity[0].committed), (3, 0));
    let est = find(&ps, "nation:EST/total");
    assert_eq!((est.open_requests, est.unmet_needs), (1, 1));
}

#[test]
fn shared_indicators_link_incidents_of_two_nations_into_one_campaign() {
    let mut w = world(hourly());
    let out = report(
        &mut w,
        "EST",
        "I-b",
        Tlp::Green,
        T0,
        &["c2.example.net", "only-b.example"],
    );
    assert!(campaigns(&out).is_empty());
    let out = report(&mut w, "EST", "I-c", Tlp::Green, T0, &["C2.Example.NET."]);
    // Same nation: linked, but not a cross-nation campaign yet.
    assert!(campaigns(&out).is_empty());
    let out = report(&mut w, "LVA", "I-a", Tlp::Amber, T0, &["c2.example.net"]);
    let cs = campaigns(&out);
    assert_eq!(cs.len(), 1, "{cs:?}");
    let (kind, c) = &cs[0];
    assert_eq!(*kind, "CampaignDetected");
    assert_eq!(
        c.campaign_id, "C-000001",
        "numbered in order of detection, never named after an incident"
    );
    assert_eq!(c.nations, vec!["EST", "LVA"]);
    assert_eq!(c.incidents, vec!["I-a", "I-b", "I-c"]);
    assert_eq!(c.indicators, vec!["domain:c2.example.net"]);
    assert_eq!(stats(&w).active_campaigns, 1);
}

#[test]
fn a_value_past_the_fanout_cap_links_nothing_and_the_campaign_it_made_dissolves() {
    let mut w = world(hourly()); // cap 3
    report(&mut w, "EST", "I1", Tlp::Green, T0, &["cdn.example"]);
    let out = report(&mut w, "LVA", "I2", Tlp::Green, T0, &["cdn.example"]);
    assert_eq!(campaigns(&out)[0].0, "CampaignDetected");
    report(&mut w, "LTU", "I3", Tlp::Green, T0, &["cdn.example"]);
    let out = report(&mut w, "POL", "I4", Tlp::Green, T0, &["cdn.example"]);
    let cs = campaigns(&out);
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(
        (cs[0].0, cs[0].1.status),
        ("CampaignUpdated", CampaignStatus::Dissolved)
    );
    let s = stats(&w);
    assert_eq!(
        (s.capped_values, s.active_campaigns, s.indicator_values),
        (1, 0, 1)
    );
    // A fifth incident is counted but stored nowhere else.
    report(&mut w, "DEU", "I5", Tlp::Green, T0, &["cdn.example"]);
    let posting: rallypoint_core::state::Posting =
        rallypoint_core::state::read(&w.store, b"x/domain:cdn.example")
            .unwrap()
            .unwrap();
    assert!(posting.capped && posting.incidents.is_empty());
    assert_eq!(posting.seen, 5);
}

#[test]
fn a_red_incident_is_counted_but_none_of_its_details_appear() {
    let mut w = world(hourly());
    let out = report(
        &mut w,
        "EST",
        "I-red",
        Tlp::Red,
        T0,
        &["c2.example.net", "red-only.example"],
    );
    let ps = pictures(&out);
    let win = find(&ps, &format!("alliance/{H}/{T0}"));
    assert_eq!(win.incidents_opened, 1);
    assert!(win.top_techniques.is_empty() && win.top_tactics.is_empty());
    report(&mut w, "LVA", "I-x", Tlp::Green, T0, &["c2.example.net"]);
    let out = report(
        &mut w,
        "LTU",
        "I-y",
        Tlp::Green,
        T0,
        &["red-only.example", "c2.example.net"],
    );
    let (_, c) = campaigns(&out).pop().expect("a campaign");
    assert_eq!(c.incident_count, 3);
    assert_eq!(c.red_incidents, 1);
    assert_eq!(c.incidents, vec!["I-x", "I-y"]);
    assert_eq!(
        c.indicators,
        vec!["domain:c2.example.net"],
        "red-only.example links only via RED"
    );
}

/// Incidents of a few nations reporting values from a small pool, in some order.
fn scenario() -> Vec<(String, String, Vec<String>)> {
    let nations = ["EST", "LVA", "LTU", "POL"];
    (0..14)
        .map(|i| {
            let values = (0..3)
                .map(|k| format!("v{}.example", (i * 7 + k * 5) % 11))
                .take(1 + i % 3)
                .collect();
            (format!("I{i:02}"), nations[i % 4].to_owned(), values)
        })
        .collect()
}

/// The correlation's end state: each campaign's members, and the latest active record per key.
fn end_state(
    order: &[usize],
) -> (
    Vec<(String, CampaignState)>,
    BTreeMap<String, Campaign>,
    u64,
) {
    let mut w = world(hourly()); // cap 3: one value of the scenario is reported 4 times
    let all = scenario();
    let mut latest: BTreeMap<String, Campaign> = BTreeMap::new();
    for &i in order {
        let (id, nation, values) = &all[i];
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        for (_, mut c) in campaigns(&report(&mut w, nation, id, Tlp::Green, T0, &refs)) {
            c.stream_time = 0;
            latest.insert(c.campaign_id.clone(), c);
        }
    }
    // Public ids number campaigns in order of detection, which depends on arrival order:
    // what must not is which incidents form which campaign, and its figures.
    let latest = latest
        .into_values()
        .filter(|c| c.status == CampaignStatus::Active)
        .map(|mut c| {
            assert!(c.campaign_id.starts_with("C-"), "{c:?}");
            c.campaign_id.clear();
            (c.incidents.join(","), c)
        })
        .collect();
    let state = w
        .store
        .scan_prefix(b"k/")
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let mut state: CampaignState = rallypoint_core::state::decode(&k, &v).unwrap();
            assert!(state.public.is_some() || !state.active, "{state:?}");
            state.public = None;
            // The internal key is one of its members, which one depends on arrival order
            // (the largest part's); every member points to it.
            let key = String::from_utf8(k[2..].to_vec()).unwrap();
            assert!(state.members.contains(&key), "{key}: {state:?}");
            for m in &state.members {
                let mk = membership_key(m);
                let at = w.store.get(&mk).unwrap().expect("a member's campaign");
                let at: String = rallypoint_core::state::decode(&mk, &at).unwrap();
                assert_eq!(at, key, "{m}'s campaign");
            }
            (state.members.join(","), state)
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    (state, latest, stats(&w).capped_values)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn campaigns_do_not_depend_on_arrival_order(order in Just((0..14).collect::<Vec<usize>>()).prop_shuffle()) {
        let reference = end_state(&(0..14).collect::<Vec<_>>());
        prop_assert!(!reference.1.is_empty(), "the scenario forms campaigns");
        prop_assert!(reference.2 > 0, "and caps a value, which splits what it linked");
        prop_assert_eq!(end_state(&order), reference);
    }
}

#[test]
fn the_query_views_show_open_requests_campaigns_and_a_scope_as_the_cell_may_see_them() {
    use rallypoint_core::query;
    let mut w = world(hourly());
    w.hit("EST", "I1", Tlp::Red, Capability::Forensics, 2);
    w.hit("LVA", "I2", Tlp::Green, Capability::IcsOt, 1);
    w.hit("LTU", "I3", Tlp::Green, Capability::IcsOt, 1);
    let e = w.env("LTU");
    w.apply(&sample::closed(e, "I3"));
    let open = query::open_requests(&w.store, None, Role::Cell).unwrap();
    let ids: Vec<&str> = open.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, vec!["R-I1", "R-I2"]);
    assert_eq!(open[0].priority, None, "RED: ids and capability only");
    assert_eq!(open[0].sector, None, "RED: ids and capability only");
    assert_eq!(open[0].needs[0].capability, Capability::Forensics);
    assert!(open[1].priority.is_some() && open[1].sector.is_some());
    assert_eq!(open[1].needs[0].missing, 1);
    assert_eq!(
        query::open_requests(&w.store, Some("LVA"), Role::Cell)
            .unwrap()
            .len(),
        1
    );
    // The requester sees its own RED request in full.
    let own = query::open_requests(&w.store, Some("EST"), Role::Requester).unwrap();
    assert_eq!(own.len(), 1);
    assert!(own[0].priority.is_some() && own[0].sector.is_some());
    report(&mut w, "EST", "I4", Tlp::Green, T0, &["c2.example.net"]);
    report(&mut w, "POL", "I5", Tlp::Green, T0, &["c2.example.net"]);
    // sample::incident reports 203.0.113.7 for I1-I3 too: that is a campaign of its own.
    let campaigns = query::active_campaigns(&w.store).unwrap();
    let seen: Vec<(Vec<String>, Vec<String>, i64)> = campaigns
        .into_iter()
        .map(|c| (c.nations, c.incidents, c.red_incidents))
        .collect();
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        vec![
            (v(&["EST", "LTU", "LVA"]), v(&["I2", "I3"]), 1),
            (v(&["EST", "POL"]), v(&["I4", "I5"]), 0)
        ]
    );
    let scope = query::scope_picture(&w.store, "nation:EST", 5).unwrap();
    let total = scope.total.expect("a running total");
    assert_eq!((total.open_incidents, total.open_requests), (2, 1));
    // I1 happened a minute before T0, I4 at T0: two hourly windows.
    assert_eq!(scope.windows.len(), 2);
}

#[test]
fn a_campaign_held_by_two_values_survives_a_third_being_capped_in_any_order() {
    let reports: [(&str, &str, Tlp, &[&str]); 5] = [
        (
            "EST",
            "I-est",
            Tlp::Amber,
            &["c2.example.net", "cdn.example"],
        ),
        (
            "LVA",
            "I-lva",
            Tlp::Green,
            &["C2.example.NET", "cdn.example", "upd.example.org"],
        ),
        ("LTU", "I-ltu", Tlp::Red, &["c2.example.net"]),
        (
            "POL",
            "I-pol",
            Tlp::Green,
            &["upd.example.org", "cdn.example"],
        ),
        ("DEU", "I-deu", Tlp::Green, &["cdn.example"]),
    ];
    let mut orders = vec![vec![0, 1, 2, 3, 4], vec![1, 2, 0, 3, 4]];
    for a in 0..5 {
        for b in 0..5 {
            let mut o: Vec<usize> = (0..5).collect();
            o.swap(a, b);
            o.rotate_left(a);
            orders.push(o);
        }
    }
    for order in orders {
        let mut w = world(hourly());
        let mut last: BTreeMap<String, Campaign> = BTreeMap::new();
        for &i in &order {
            let (n, id, tlp, values) = reports[i];
            for (_, c) in campaigns(&report(&mut w, n, id, tlp, T0, values)) {
                last.insert(c.campaign_id.clone(), c);
            }
        }
        let holding: Vec<&Campaign> = last
            .values()
            .filter(|c| c.status == CampaignStatus::Active)
            .filter(|c| c.incidents.iter().any(|i| i == "I-est"))
            .collect();
        assert_eq!(holding.len(), 1, "order {order:?}: {last:?}");
        assert_eq!(
            holding[0].incidents,
            vec!["I-est", "I-lva", "I-pol"],
            "order {order:?}"
        );
    }
}

#[test]
fn a_shared_cve_links_nothing_because_unrelated_actors_exploit_the_same_flaw() {
    let mut w = world(hourly());
    for (nation, id) in [("EST", "I1"), ("LVA", "I2")] {
        let e = w.env(nation);
        let mut ev = sample::incident(e, id, Tlp::Green, Priority::High);
        if let Event::IncidentReported(r) = &mut ev {
            r.indicators = vec![Indicator::new(IndicatorKind::Cve, "CVE-2024-3400".into())];
        }
        assert!(campaigns(&w.apply_all(&ev)).is_empty());
    }
    assert_eq!(stats(&w).indicator_values, 0);
}

#[test]
fn joining_a_larger_campaign_keeps_the_older_id_and_merges_only_the_other() {
    let mut w = world(PictureConfig {
        fanout_cap: 10,
        ..hourly()
    });
    report(&mut w, "EST", "I-a", Tlp::Green, T0, &["x.example"]);
    report(&mut w, "LVA", "I-b", Tlp::Green, T0, &["x.example"]);
    for (nation, id) in [("POL", "I-m"), ("LTU", "I-n"), ("DEU", "I-o")] {
        report(&mut w, nation, id, Tlp::Green, T0, &["y.example"]);
    }
    let out = report(
        &mut w,
        "FIN",
        "I-z",
        Tlp::Green,
        T0,
        &["x.example", "y.example"],
    );
    let seen: Vec<(&str, String, CampaignStatus, Option<String>, i64)> = campaigns(&out)
        .into_iter()
        .map(|(kind, c)| {
            (
                kind,
                c.campaign_id,
                c.status,
                c.merged_into,
                c.incident_count,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "CampaignUpdated",
                "C-000002".to_string(),
                CampaignStatus::Merged,
                Some("C-000001".to_string()),
                3
            ),
            (
                "CampaignUpdated",
                "C-000001".to_string(),
                CampaignStatus::Active,
                None,
                6
            ),
        ]
    );
    assert_eq!(stats(&w).active_campaigns, 1);
}

/// Every campaign record of `out`, checked: its id, its key and what it merged into name no
/// incident, and no RED incident is listed.
fn published(out: &[Output], red: &[&str]) -> Vec<(&'static str, String, CampaignStatus)> {
    let mut seen = Vec::new();
    for o in out {
        let Output::Picture(p) = o else { continue };
        if let PictureUpdate::CampaignDetected(c) | PictureUpdate::CampaignUpdated(c) = p {
            assert!(c.campaign_id.starts_with("C-"), "{c:?}");
            assert_eq!(p.key(), format!("campaign/{}", c.campaign_id));
            assert!(c.merged_into.as_deref().is_none_or(|m| m.starts_with("C-")));
            for r in red {
                assert!(!c.incidents.iter().any(|i| i == r), "{r} listed: {c:?}");
            }
            seen.push((p.type_name(), c.campaign_id.clone(), c.status));
        }
    }
    seen
}

#[test]
fn a_red_incident_with_the_smallest_id_never_names_a_campaign() {
    let mut w = world(hourly());
    report(&mut w, "EST", "I-a-red", Tlp::Red, T0, &["c2.example.net"]);
    let out = report(&mut w, "LVA", "I-b", Tlp::Green, T0, &["c2.example.net"]);
    assert_eq!(
        published(&out, &["I-a-red"]),
        vec![(
            "CampaignDetected",
            "C-000001".into(),
            CampaignStatus::Active
        )]
    );
    // Only RED incidents of two nations: published, and named after none of them.
    let mut w = world(hourly());
    report(&mut w, "EST", "I-r1", Tlp::Red, T0, &["x.example"]);
    let out = report(&mut w, "LVA", "I-r2", Tlp::Red, T0, &["x.example"]);
    let seen = published(&out, &["I-r1", "I-r2"]);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (_, c) = campaigns(&out).pop().unwrap();
    assert_eq!((c.incident_count, c.red_incidents), (2, 2));
    assert!(c.incidents.is_empty() && c.indicators.is_empty());
}

#[test]
fn a_red_bridge_with_a_smaller_id_joins_a_campaign_without_merging_or_renaming_it() {
    let mut w = world(PictureConfig {
        fanout_cap: 10,
        ..hourly()
    });
    report(&mut w, "EST", "I-m", Tlp::Green, T0, &["x.example"]);
    let out = report(&mut w, "LVA", "I-n", Tlp::Green, T0, &["x.example"]);
    assert_eq!(published(&out, &[])[0].1, "C-000001");
    // A later RED incident with a smaller id joins: the campaign is updated, not merged into
    // a campaign named after it, nor detected again.
    let out = report(&mut w, "LTU", "I-a", Tlp::Red, T0, &["x.example"]);
    assert_eq!(
        published(&out, &["I-a"]),
        vec![("CampaignUpdated", "C-000001".into(), CampaignStatus::Active)]
    );
    // So does a non-RED one with a smaller id.
    let out = report(&mut w, "POL", "I-0", Tlp::Green, T0, &["x.example"]);
    assert_eq!(
        published(&out, &["I-a"]),
        vec![("CampaignUpdated", "C-000001".into(), CampaignStatus::Active)]
    );
    assert_eq!(stats(&w).active_campaigns, 1);
}

#[test]
fn a_campaign_split_by_the_fanout_cap_dissolves_under_its_own_id_not_a_red_one() {
    let mut w = world(hourly()); // cap 3
    report(&mut w, "EST", "I1-red", Tlp::Red, T0, &["cdn.example"]);
    let out = report(&mut w, "LVA", "I2", Tlp::Green, T0, &["cdn.example"]);
    assert_eq!(published(&out, &["I1-red"])[0].1, "C-000001");
    report(&mut w, "LTU", "I3", Tlp::Green, T0, &["cdn.example"]);
    let out = report(&mut w, "POL", "I4", Tlp::Green, T0, &["cdn.example"]);
    assert_eq!(
        published(&out, &["I1-red"]),
        vec![(
            "CampaignUpdated",
            "C-000001".into(),
            CampaignStatus::Dissolved
        )]
    );
}

/// A sighting of the domain `value` by `nation`.
fn sight(w: &mut World, nation: &str, id: &str, value: &str, kind: SightingKind) -> Vec<Output> {
    let env = w.env(nation);
    let indicator = Indicator::new(IndicatorKind::Domain, value.to_owned());
    w.apply_all(&sample::sighted(env, id, indicator, kind))
}

#[test]
fn a_nation_that_sights_a_campaign_value_is_named_among_those_it_was_sighted_in() {
    let mut w = world(hourly());
    report(&mut w, "EST", "I1", Tlp::Green, T0, &["c2.example.net"]);
    let out = report(&mut w, "LVA", "I2", Tlp::Amber, T0, &["C2.Example.NET"]);
    assert_eq!(campaigns(&out)[0].1.sighted_in, Vec::<String>::new());
    // POL has no incident in it: its sighting (of the value as written differently) names it.
    let out = sight(
        &mut w,
        "POL",
        "S1",
        "c2.example.net.",
        SightingKind::Sighting,
    );
    let found = campaigns(&out);
    assert_eq!(found.len(), 1, "{out:?}");
    assert_eq!(found[0].0, "CampaignUpdated");
    assert_eq!(found[0].1.sighted_in, vec!["POL"]);
    assert_eq!(found[0].1.nations, vec!["EST", "LVA"]);
    // Once per nation and value; a member nation's sighting, a false positive and an
    // expiration change nothing.
    assert!(campaigns(&sight(
        &mut w,
        "POL",
        "S2",
        "c2.example.net",
        SightingKind::TruePositive
    ))
    .is_empty());
    assert!(campaigns(&sight(
        &mut w,
        "EST",
        "S3",
        "c2.example.net",
        SightingKind::Sighting
    ))
    .is_empty());
    assert!(campaigns(&sight(
        &mut w,
        "DEU",
        "S4",
        "c2.example.net",
        SightingKind::FalsePositive
    ))
    .is_empty());
    assert!(campaigns(&sight(
        &mut w,
        "DEU",
        "S5",
        "c2.example.net",
        SightingKind::Expiration
    ))
    .is_empty());
    // A value no incident reported: recorded, no campaign to name.
    assert!(campaigns(&sight(
        &mut w,
        "DEU",
        "S6",
        "other.example",
        SightingKind::Sighting
    ))
    .is_empty());
    let out = sight(
        &mut w,
        "DEU",
        "S7",
        "c2.example.net",
        SightingKind::TruePositive,
    );
    assert_eq!(campaigns(&out)[0].1.sighted_in, vec!["DEU", "POL"]);
    // The query API answers from the same state.
    let api = rallypoint_core::query::active_campaigns(&w.store).unwrap();
    assert_eq!(api[0].sighted_in, vec!["DEU", "POL"]);
}

#[test]
fn a_sighting_before_the_campaign_counts_when_it_forms_and_a_nation_that_joins_leaves_the_list() {
    let mut w = world(hourly());
    report(&mut w, "EST", "I1", Tlp::Green, T0, &["c2.example.net"]);
    sight(
        &mut w,
        "POL",
        "S1",
        "c2.example.net",
        SightingKind::Sighting,
    );
    let out = report(&mut w, "LVA", "I2", Tlp::Green, T0, &["c2.example.net"]);
    let found = campaigns(&out);
    assert_eq!(found[0].0, "CampaignDetected");
    assert_eq!(found[0].1.sighted_in, vec!["POL"]);
    // POL reports an incident of its own in it: a member now, no longer only a sighter.
    let out = report(&mut w, "POL", "I3", Tlp::Green, T0, &["c2.example.net"]);
    let found = campaigns(&out);
    assert_eq!(found[0].1.nations, vec!["EST", "LVA", "POL"]);
    assert!(found[0].1.sighted_in.is_empty());
}

#[test]
fn a_value_only_a_red_member_reported_is_not_the_campaign_s_to_be_sighted() {
    let mut w = world(hourly());
    report(
        &mut w,
        "EST",
        "I1",
        Tlp::Green,
        T0,
        &["shared.example", "red-only.example"],
    );
    report(&mut w, "LVA", "I2", Tlp::Green, T0, &["shared.example"]);
    report(
        &mut w,
        "LTU",
        "I3",
        Tlp::Red,
        T0,
        &["shared.example", "secret.example"],
    );
    assert!(campaigns(&sight(
        &mut w,
        "POL",
        "S1",
        "secret.example",
        SightingKind::Sighting
    ))
    .is_empty());
    let out = sight(
        &mut w,
        "POL",
        "S2",
        "red-only.example",
        SightingKind::Sighting,
    );
    assert_eq!(
        campaigns(&out)[0].1.sighted_in,
        vec!["POL"],
        "EST reported it, not only LTU"
    );
}
