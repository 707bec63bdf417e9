//! Hunt packages through the fold: what a campaign publishes to every member's hunt topic,
//! and when it retires (docs/architecture.md, "Hunt packages").

mod common;

use common::World;
use rallypoint_core::event::{
    HuntRelease, Indicator, IndicatorKind, Pap, Priority, SightingKind, Tlp,
};
use rallypoint_core::hunt::{
    self, Disposition, HuntIndicator, HuntReview, HuntUpdate, RetireReason, SightingSummary,
};
use rallypoint_core::{sample, Output};

const DAY: i64 = 24 * 60 * 60 * 1000;

/// An incident of `nation` with the given domains, marking and release.
fn report(
    w: &mut World,
    nation: &str,
    id: &str,
    tlp: Tlp,
    release: HuntRelease,
    domains: &[&str],
) -> Vec<Output> {
    let env = w.env(nation);
    let e = sample::incident_with(env, id, tlp, Priority::High, |r| {
        r.hunt_release = release;
        r.pap = Pap::Green;
        r.indicators = domains
            .iter()
            .map(|d| Indicator::new(IndicatorKind::Domain, (*d).to_owned()))
            .collect();
    });
    w.apply_all(&e)
}

/// The indicator records (published, retired, removed) among the outputs: what every
/// member's hunt topic receives alike.
fn hunts(out: &[Output]) -> Vec<HuntUpdate> {
    out.iter()
        .filter_map(|o| match o {
            Output::Hunt(
                h @ (HuntUpdate::Published(_)
                | HuntUpdate::Retired { .. }
                | HuntUpdate::Removed { .. }),
            ) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

/// The sighting summaries among the outputs, with the nations they go to.
fn summaries(out: &[Output]) -> Vec<(Vec<String>, SightingSummary)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Hunt(HuntUpdate::Sightings { to, summary }) => {
                Some((to.clone(), summary.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The coordination cell's reviews among the outputs.
fn reviews(out: &[Output]) -> Vec<HuntReview> {
    out.iter()
        .filter_map(|o| match o {
            Output::Hunt(HuntUpdate::Reviewed(r)) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn published(out: &[Output]) -> Vec<HuntIndicator> {
    hunts(out)
        .into_iter()
        .filter_map(|h| match h {
            HuntUpdate::Published(i) => Some(i),
            _ => None,
        })
        .collect()
}

fn retired(out: &[Output]) -> Vec<(String, RetireReason)> {
    hunts(out)
        .into_iter()
        .filter_map(|h| match h {
            HuntUpdate::Retired { indicator, reason } => Some((indicator.pattern, reason)),
            _ => None,
        })
        .collect()
}

fn domain(value: &str) -> String {
    format!("[domain-name:value = '{value}']")
}

/// An event at stream time `t` (a sighting of an unrelated value moves it).
fn at(w: &mut World, t: i64) -> Vec<Output> {
    w.clock.now = t - w.clock.step_ms;
    let env = w.env("FRA");
    let indicator = Indicator::new(IndicatorKind::Domain, "unrelated.example.org".into());
    w.apply_all(&sample::sighted(
        env,
        &format!("S-{t}"),
        indicator,
        rallypoint_core::event::SightingKind::Sighting,
    ))
}

#[test]
fn a_green_campaign_of_three_nations_publishes_its_values_once_naming_no_nation() {
    let mut w = World::new();
    let g = HuntRelease::Default;
    assert!(hunts(&report(
        &mut w,
        "EST",
        "I1",
        Tlp::Green,
        g,
        &["c2.example.net"]
    ))
    .is_empty());
    let out = report(
        &mut w,
        "LVA",
        "I2",
        Tlp::Green,
        g,
        &["c2.example.net", "drop.example.net"],
    );
    let t = w.clock.now;
    let got = published(&out);
    let patterns: Vec<&str> = got.iter().map(|i| i.pattern.as_str()).collect();
    // The value two nations reported first, then the other.
    assert_eq!(
        patterns,
        [domain("c2.example.net"), domain("drop.example.net")]
    );
    let c2 = &got[0];
    assert_eq!(c2.campaign_id, "C-000001");
    assert_eq!(c2.indicator_id, hunt::indicator_id(&c2.pattern));
    assert_eq!(c2.tlp, Tlp::Green);
    assert_eq!(c2.pap, Pap::Green);
    assert_eq!((c2.valid_from, c2.valid_until), (t, t + 120 * DAY));
    assert_eq!((c2.nation_count, c2.confidence, c2.score), (2, 65, 65));
    assert_eq!(got[1].nation_count, 1);
    assert_eq!(c2.kill_chain_phases, ["execution", "impact"]);

    // A third nation reporting the value an hour later (no score step due yet) refreshes it:
    // one more nation, a higher confidence, a lifetime from now.
    w.clock.now += DAY / 24;
    let out = report(&mut w, "POL", "I3", Tlp::Green, g, &["c2.example.net"]);
    let t3 = w.clock.now;
    let got = published(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].nation_count, got[0].confidence), (3, 80));
    assert_eq!((got[0].valid_from, got[0].valid_until), (t, t3 + 120 * DAY));

    // Nothing names a nation.
    let text = format!("{:?}", hunts(&out));
    for n in ["EST", "LVA", "POL"] {
        assert!(!text.contains(n), "{n} in {text}");
    }
}

#[test]
fn only_clear_green_and_consented_amber_leave_the_cell_and_red_never_whatever_it_says() {
    let mut w = World::new();
    report(
        &mut w,
        "EST",
        "I1",
        Tlp::Amber,
        HuntRelease::Default,
        &["a.example.net"],
    );
    let out = report(
        &mut w,
        "LVA",
        "I2",
        Tlp::Red,
        HuntRelease::Alliance,
        &["a.example.net", "red.example.net"],
    );
    assert!(hunts(&out).is_empty(), "{:?}", hunts(&out));
    let out = report(
        &mut w,
        "POL",
        "I3",
        Tlp::AmberStrict,
        HuntRelease::Alliance,
        &["a.example.net"],
    );
    assert!(hunts(&out).is_empty(), "{:?}", hunts(&out));
    // AMBER with the source's permission goes, as AMBER; the RED member's value never does.
    let out = report(
        &mut w,
        "DEU",
        "I4",
        Tlp::Amber,
        HuntRelease::Alliance,
        &["a.example.net"],
    );
    let got = published(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].pattern.as_str(), got[0].tlp),
        (domain("a.example.net").as_str(), Tlp::Amber)
    );
    assert_eq!(got[0].nation_count, 1, "only the releasing incident counts");
    let stats: rallypoint_core::state::PictureStats =
        rallypoint_core::state::read(&w.store, rallypoint_core::state::PICTURE_STATS)
            .unwrap()
            .unwrap();
    assert_eq!(
        stats.hunt_overridden, 2,
        "the RED and AMBER_STRICT ALLIANCE flags"
    );
    // A GREEN source lets it go as GREEN.
    let out = report(
        &mut w,
        "FRA",
        "I5",
        Tlp::Green,
        HuntRelease::Default,
        &["a.example.net"],
    );
    assert_eq!(published(&out)[0].tlp, Tlp::Green);
    let all = format!("{:?}", hunts(&out));
    assert!(!all.contains("red.example.net"));
}

#[test]
fn closing_the_last_releasing_incident_withdraws_the_value() {
    let mut w = World::new();
    report(
        &mut w,
        "EST",
        "I1",
        Tlp::Green,
        HuntRelease::Default,
        &["x.example.net"],
    );
    report(
        &mut w,
        "LVA",
        "I2",
        Tlp::Amber,
        HuntRelease::Default,
        &["x.example.net"],
    );
    let env = w.env("LVA");
    assert!(
        hunts(&w.apply_all(&sample::closed(env, "I2"))).is_empty(),
        "I2 released nothing"
    );
    let env = w.env("EST");
    let out = w.apply_all(&sample::closed(env, "I1"));
    assert_eq!(
        retired(&out),
        [(domain("x.example.net"), RetireReason::ReleaseWithdrawn)]
    );
}

#[test]
fn a_warninglisted_value_is_never_published_and_the_cap_truncates_the_rest() {
    let mut w = World::new();
    w.config.hunt.max_indicators = 2;
    let g = HuntRelease::Default;
    let values = [
        "google.com",
        "p.example.net",
        "q.example.net",
        "r.example.net",
    ];
    report(&mut w, "EST", "I1", Tlp::Green, g, &values);
    let out = report(&mut w, "LVA", "I2", Tlp::Green, g, &values);
    let got: Vec<String> = published(&out).into_iter().map(|i| i.pattern).collect();
    assert_eq!(got, [domain("p.example.net"), domain("q.example.net")]);
    // Another incident: the published ones keep their place; nothing new passes the cap.
    let out = report(&mut w, "POL", "I3", Tlp::Green, g, &["r.example.net"]);
    let got: Vec<String> = published(&out).into_iter().map(|i| i.pattern).collect();
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn an_indicator_decays_in_steps_expires_and_its_record_is_removed_after_the_grace() {
    let mut w = World::new();
    report(
        &mut w,
        "EST",
        "I1",
        Tlp::Green,
        HuntRelease::Default,
        &["d.example.net"],
    );
    let out = report(
        &mut w,
        "LVA",
        "I2",
        Tlp::Green,
        HuntRelease::Default,
        &["d.example.net"],
    );
    let first = published(&out).remove(0);
    assert_eq!(first.score, 65);
    let model = hunt::decay::Model::for_kind(IndicatorKind::Domain);
    let step = model.next_step(65, first.valid_from, 65).unwrap();
    // Just before the step: nothing; at it: the score as the model gives it, below 60.
    let out = at(&mut w, step - 1);
    assert!(hunts(&out).is_empty(), "{:?}", hunts(&out));
    let out = at(&mut w, step);
    let got = published(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].score,
        model.score(65, w.clock.now - first.valid_from)
    );
    assert!(got[0].score <= 60 && got[0].score > 50, "{}", got[0].score);
    assert_eq!(got[0].valid_until, first.valid_until);
    // Past valid_until: retired as expired, after any steps still due.
    let out = at(&mut w, first.valid_until);
    assert_eq!(
        retired(&out),
        [(domain("d.example.net"), RetireReason::Expired)]
    );
    let gone = first.valid_until + w.config.hunt.tombstone_after_ms;
    let out = at(&mut w, gone);
    assert_eq!(hunts(&out), [HuntUpdate::Removed { key: first.key() }]);
    let out = at(&mut w, gone + 365 * DAY);
    assert!(hunts(&out).is_empty());
}

#[test]
fn a_merged_campaign_retires_its_indicators_before_the_surviving_one_publishes_them() {
    let mut w = World::new();
    let g = HuntRelease::Default;
    report(&mut w, "EST", "I1", Tlp::Green, g, &["one.example.net"]);
    report(&mut w, "LVA", "I2", Tlp::Green, g, &["one.example.net"]);
    report(&mut w, "POL", "I3", Tlp::Green, g, &["two.example.net"]);
    report(&mut w, "DEU", "I4", Tlp::Green, g, &["two.example.net"]);
    let out = report(
        &mut w,
        "FRA",
        "I5",
        Tlp::Green,
        g,
        &["one.example.net", "two.example.net"],
    );
    let updates = hunts(&out);
    let retired_at = updates
        .iter()
        .position(|h| {
            matches!(
                h,
                HuntUpdate::Retired {
                    reason: RetireReason::CampaignDissolved,
                    ..
                }
            )
        })
        .expect("the merged campaign's indicator retires");
    let HuntUpdate::Retired { indicator, .. } = &updates[retired_at] else {
        unreachable!()
    };
    assert_eq!(indicator.campaign_id, "C-000002");
    let republished = updates
        .iter()
        .position(|h| matches!(h, HuntUpdate::Published(i) if i.campaign_id == "C-000001" && i.pattern == indicator.pattern))
        .expect("the surviving campaign publishes it");
    assert!(retired_at < republished, "{updates:?}");
}

#[test]
fn a_replay_gives_the_same_hunt_updates() {
    let run = || {
        let mut w = World::new();
        let mut out = Vec::new();
        for e in sample::stream(&["EST", "LVA", "POL"], 400, 11) {
            out.extend(hunts(&w.apply_all(&e)));
        }
        out
    };
    let (a, b) = (run(), run());
    assert!(!a.is_empty(), "the sample stream hunts nothing");
    assert_eq!(a, b);
}

/// A sighting of the domain `value` by `nation`.
fn sight(w: &mut World, nation: &str, value: &str, kind: SightingKind) -> Vec<Output> {
    let env = w.env(nation);
    let id = format!("S-{nation}-{}", env.event_id);
    let indicator = Indicator::new(IndicatorKind::Domain, value.to_owned());
    w.apply_all(&sample::sighted(env, &id, indicator, kind))
}

#[test]
fn a_false_positive_from_a_reporting_nation_retires_at_once_and_for_good() {
    let mut w = World::new();
    let g = HuntRelease::Default;
    report(&mut w, "EST", "I1", Tlp::Green, g, &["fp.example.net"]);
    report(&mut w, "LVA", "I2", Tlp::Green, g, &["fp.example.net"]);
    let out = sight(&mut w, "LVA", "fp.example.net", SightingKind::FalsePositive);
    assert_eq!(
        retired(&out),
        [(domain("fp.example.net"), RetireReason::FalsePositive)]
    );
    // A further report does not bring it back to this campaign.
    let out = report(&mut w, "POL", "I3", Tlp::Green, g, &["fp.example.net"]);
    assert!(published(&out).is_empty(), "{:?}", hunts(&out));
}

#[test]
fn false_positives_from_others_retire_once_max_2_or_half_the_sighting_nations_say_so() {
    let mut w = World::new();
    let g = HuntRelease::Default;
    report(&mut w, "EST", "I1", Tlp::Green, g, &["h.example.net"]);
    report(&mut w, "LVA", "I2", Tlp::Green, g, &["h.example.net"]);
    for n in ["DEU", "FRA", "POL", "ITA", "ESP", "NLD"] {
        sight(&mut w, n, "h.example.net", SightingKind::Sighting);
    }
    // Six nations sighted it: three false positives are needed.
    for (n, retires) in [
        ("DEU", false),
        ("DEU", false),
        ("FRA", false),
        ("POL", true),
    ] {
        let out = sight(&mut w, n, "h.example.net", SightingKind::FalsePositive);
        assert_eq!(!retired(&out).is_empty(), retires, "{n}: {:?}", hunts(&out));
    }
}

#[test]
fn a_sighting_refreshes_an_indicator_once_its_score_fell_a_step() {
    let mut w = World::new();
    let g = HuntRelease::Default;
    report(&mut w, "EST", "I1", Tlp::Green, g, &["s.example.net"]);
    let out = report(&mut w, "LVA", "I2", Tlp::Green, g, &["s.example.net"]);
    let first = published(&out).remove(0);
    // At full score a sighting changes nothing.
    let out = sight(&mut w, "POL", "s.example.net", SightingKind::Sighting);
    assert!(hunts(&out).is_empty(), "{:?}", hunts(&out));
    // Past the first step, a sighting brings it back to its base, a lifetime ahead.
    w.clock.now = first.valid_from + 30 * DAY;
    let out = sight(&mut w, "DEU", "s.example.net", SightingKind::TruePositive);
    let got = published(&out);
    let t = w.clock.now;
    let last = got.last().expect("refreshed");
    assert_eq!((last.score, last.valid_until), (65, t + 120 * DAY));
}

/// One step of a generated scenario.
#[derive(Clone, Debug)]
enum Step {
    /// Nation index, marking, release, values (indexes into the pool).
    Report(usize, Tlp, HuntRelease, Vec<usize>),
    /// Closes the n-th report made so far, if any.
    Close(usize),
    /// Nation index, value, kind, whether it may be named (CLEAR or GREEN, not anonymous).
    Sight(usize, usize, SightingKind, bool),
}

const NATIONS: [&str; 5] = ["EST", "LVA", "LTU", "POL", "FIN"];

fn step() -> impl Strategy<Value = Step> {
    let tlp = prop_oneof![
        Just(Tlp::Clear),
        Just(Tlp::Green),
        Just(Tlp::Amber),
        Just(Tlp::AmberStrict),
        Just(Tlp::Red)
    ];
    let release = prop_oneof![
        Just(HuntRelease::Default),
        Just(HuntRelease::Alliance),
        Just(HuntRelease::None)
    ];
    let kind = prop_oneof![
        Just(SightingKind::Sighting),
        Just(SightingKind::FalsePositive),
        Just(SightingKind::TruePositive),
        Just(SightingKind::Expiration)
    ];
    prop_oneof![
        4 => (0..5usize, tlp, release, proptest::collection::vec(0..6usize, 1..4))
            .prop_map(|(n, t, r, v)| Step::Report(n, t, r, v)),
        1 => (0..20usize).prop_map(Step::Close),
        2 => (0..5usize, 0..6usize, kind, any::<bool>())
            .prop_map(|(n, v, k, named)| Step::Sight(n, v, k, named)),
    ]
}

use proptest::prelude::*;
use rallypoint_core::state::{decode, read, CampaignState, PictureStats, PICTURE_STATS};
use rallypoint_core::store::Store;
use std::collections::BTreeMap;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// The canary property of the hunt topics: a value is published only while an open
    /// incident that reported it releases it (CLEAR, GREEN, or AMBER with ALLIANCE; never
    /// AMBER_STRICT or RED), under the least restrictive TLP among those; a value no source
    /// ever released never appears in any hunt record; every value of an active campaign that
    /// an open incident releases is published; and no hunt record holds a nation's code.
    #[test]
    fn hunt_records_carry_only_released_values_and_no_nation(
        steps in proptest::collection::vec(step(), 1..16)
    ) {
        let pool: Vec<String> = (0..6).map(|i| format!("v{i}.canary-hunt.net")).collect();
        let mut w = World::new();
        let mut reports: Vec<(String, Tlp, HuntRelease, Vec<usize>, bool)> = Vec::new();
        let mut ever_released = [false; 6];
        let mut false_positive = [false; 6];
        let mut live: BTreeMap<(String, String), bool> = BTreeMap::new();
        // Nations that may be named for each value: one of their sightings was GREEN and not
        // anonymous.
        let mut consented: Vec<std::collections::BTreeSet<&str>> = vec![Default::default(); 6];
        for (i, s) in steps.iter().enumerate() {
            let out = match s {
                Step::Report(n, tlp, release, values) => {
                    let id = format!("I{i}");
                    let domains: Vec<&str> = values.iter().map(|v| pool[*v].as_str()).collect();
                    let out = report(&mut w, NATIONS[*n], &id, *tlp, *release, &domains);
                    reports.push((id, *tlp, *release, values.clone(), true));
                    out
                }
                Step::Close(k) => {
                    let Some(r) = reports.get_mut(*k).filter(|r| r.4) else { continue };
                    r.4 = false;
                    let nation = NATIONS[steps.iter().filter_map(|s| match s {
                        Step::Report(n, ..) => Some(*n),
                        _ => None,
                    }).nth(*k).unwrap()];
                    let env = w.env(nation);
                    w.apply_all(&sample::closed(env, &reports[*k].0))
                }
                Step::Sight(n, v, kind, named) => {
                    if *named && *kind != SightingKind::Expiration {
                        consented[*v].insert(NATIONS[*n]);
                    }
                    let env = w.env(NATIONS[*n]);
                    let id = format!("S-{i}");
                    let indicator = Indicator::new(IndicatorKind::Domain, pool[*v].clone());
                    w.apply_all(&sample::sighted_with(env, &id, indicator, *kind, |s| {
                        (s.tlp, s.anonymous) = if *named {
                            (Tlp::Green, false)
                        } else {
                            (Tlp::Amber, true)
                        };
                    }))
                }
            };
            for (v, value) in pool.iter().enumerate() {
                let open_releasing: Vec<Tlp> = reports
                    .iter()
                    .filter(|r| r.4 && r.3.contains(&v))
                    .filter_map(|r| match hunt::release(r.1, r.2) {
                        hunt::Release::Shared(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                ever_released[v] |= !open_releasing.is_empty();
                for h in published(&out).iter().filter(|h| h.pattern == domain(value)) {
                    prop_assert!(!open_releasing.is_empty(), "{value} published without a releasing source: {h:?}");
                    prop_assert_eq!(Some(h.tlp), open_releasing.iter().min().copied());
                }
            }
            for h in hunts(&out) {
                match h {
                    HuntUpdate::Published(i) => live.insert((i.campaign_id, i.pattern), true),
                    HuntUpdate::Retired { indicator: i, .. } => {
                        live.insert((i.campaign_id, i.pattern), false)
                    }
                    _ => None,
                };
            }
            if let Step::Sight(_, v, SightingKind::FalsePositive, _) = s {
                false_positive[*v] = true;
            }
            // And complete: every value of an active campaign that an open incident releases
            // is published (unless a false positive may have retired it).
            for (key, bytes) in w.store.scan_prefix(b"k/").unwrap() {
                let campaign: CampaignState = decode(&key, &bytes).unwrap();
                let Some(public) = campaign.public.filter(|_| campaign.active) else { continue };
                for value in campaign.counts.keys() {
                    let Some(v) = pool.iter().position(|p| format!("domain:{p}") == *value) else { continue };
                    let releasing = reports.iter().any(|r| {
                        r.4 && r.3.contains(&v)
                            && matches!(hunt::release(r.1, r.2), hunt::Release::Shared(_))
                    });
                    if releasing && !false_positive[v] {
                        prop_assert_eq!(
                            live.get(&(public.clone(), domain(&pool[v]))),
                            Some(&true),
                            "{} of {} not published", value, public
                        );
                    }
                }
            }
            let stats: PictureStats = read(&w.store, PICTURE_STATS).unwrap().unwrap_or_default();
            prop_assert_eq!(
                stats.hunt_indicators,
                live.values().filter(|l| **l).count() as i64,
                "the gauge of live hunt indicators"
            );
            let text = format!("{:?}", hunts(&out));
            for n in NATIONS {
                prop_assert!(!text.contains(n), "{} in {}", n, text);
            }
            for (v, value) in pool.iter().enumerate() {
                prop_assert!(ever_released[v] || !text.contains(value.as_str()), "{} leaked: {}", value, text);
            }
            // Sighting summaries: to the campaign's nations only, about a published indicator,
            // naming only nations that consented for that value.
            for (to, summary) in summaries(&out) {
                let campaign = w.store.scan_prefix(b"k/").unwrap().into_iter().find_map(|(k, b)| {
                    let c: CampaignState = decode(&k, &b).unwrap();
                    (c.public.as_deref() == Some(summary.campaign_id.as_str())).then_some(c)
                });
                let campaign = campaign.expect("a summary of a known campaign");
                prop_assert_eq!(&to, &campaign.nations.keys().cloned().collect::<Vec<_>>());
                let (_, value) = hunt::pattern_value(&summary.pattern).expect("a pattern");
                let v = pool.iter().position(|p| *p == value).expect("a pool value");
                prop_assert!(ever_released[v], "a summary of {} never released", value);
                for n in &summary.named_nations {
                    prop_assert!(consented[v].contains(n.as_str()), "{} named for {}", n, value);
                }
                let text = format!("{:?}", SightingSummary { named_nations: vec![], ..summary });
                for n in NATIONS {
                    prop_assert!(!text.contains(n), "{} in {}", n, text);
                }
            }
            // The cell's reviews: values of campaigns reported by a non-RED incident.
            for r in reviews(&out) {
                let v = pool.iter().position(|p| format!("domain:{p}") == r.value).expect("a pool value");
                prop_assert!(
                    reports.iter().any(|rep| rep.3.contains(&v) && rep.1 != Tlp::Red),
                    "{:?} reviewed with only RED sources", r
                );
            }
        }
    }
}

/// A sighting of the domain `value` by `nation`, `count` times, under `tlp`, anonymous or not.
fn sight_as(
    w: &mut World,
    nation: &str,
    value: &str,
    kind: SightingKind,
    (count, tlp, anonymous): (i32, Tlp, bool),
) -> Vec<Output> {
    let env = w.env(nation);
    let id = format!("S-{nation}-{}", env.event_id);
    let indicator = Indicator::new(IndicatorKind::Domain, value.to_owned());
    w.apply_all(&sample::sighted_with(env, &id, indicator, kind, |s| {
        (s.count, s.tlp, s.anonymous) = (count, tlp, anonymous);
    }))
}

#[test]
fn the_campaigns_nations_hear_of_sightings_naming_only_those_that_allow_it_and_not_each_time() {
    let mut w = World::new();
    let g = HuntRelease::Default;
    let v = "seen.example.net";
    report(&mut w, "EST", "I1", Tlp::Green, g, &[v]);
    let out = report(&mut w, "LVA", "I2", Tlp::Green, g, &[v]);
    let indicator = published(&out).remove(0);
    let figures = |s: &SightingSummary| {
        (
            s.sightings,
            s.true_positives,
            s.false_positives,
            s.nations_sighting,
            s.nations_false_positive,
        )
    };
    // A GREEN sighting, not anonymous: its nation may be named.
    let out = sight_as(
        &mut w,
        "DEU",
        v,
        SightingKind::Sighting,
        (1, Tlp::Green, false),
    );
    let got = summaries(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    let (to, s) = &got[0];
    assert_eq!(to, &["EST", "LVA"], "to the campaign's nations only");
    assert_eq!(s.key(), format!("{}/sightings", indicator.key()));
    assert_eq!(
        (s.indicator_id.as_str(), s.pattern.as_str()),
        (indicator.indicator_id.as_str(), indicator.pattern.as_str())
    );
    assert_eq!(figures(s), (1, 0, 0, 1, 0));
    assert_eq!(s.named_nations, ["DEU"]);
    // An AMBER, anonymous true positive seen 5 times: counted, never named.
    let out = sight_as(
        &mut w,
        "FRA",
        v,
        SightingKind::TruePositive,
        (5, Tlp::Amber, true),
    );
    let (_, s) = summaries(&out).remove(0);
    assert_eq!(figures(&s), (6, 5, 0, 2, 0));
    assert_eq!(s.named_nations, ["DEU"]);
    // GREEN but anonymous: not named either.
    let out = sight_as(
        &mut w,
        "POL",
        v,
        SightingKind::Sighting,
        (1, Tlp::Green, true),
    );
    let (_, s) = summaries(&out).remove(0);
    assert_eq!((figures(&s), s.named_nations.len()), ((7, 5, 0, 3, 0), 1));
    // A known nation's sighting is told when a sum reaches a higher power of two (8), and
    // not while it stays below the next (9 < 16).
    let out = sight_as(
        &mut w,
        "DEU",
        v,
        SightingKind::Sighting,
        (1, Tlp::Green, false),
    );
    let (_, s) = summaries(&out).remove(0);
    assert_eq!(figures(&s), (8, 5, 0, 3, 0));
    let out = sight_as(
        &mut w,
        "DEU",
        v,
        SightingKind::Sighting,
        (1, Tlp::Green, false),
    );
    assert!(summaries(&out).is_empty(), "9 is below 16");
    // A false positive from a nation that did not report it: told, not retired yet.
    let out = sight_as(
        &mut w,
        "ITA",
        v,
        SightingKind::FalsePositive,
        (1, Tlp::Amber, true),
    );
    let (_, s) = summaries(&out).remove(0);
    assert_eq!(figures(&s), (9, 5, 1, 3, 1));
    assert!(retired(&out).is_empty());
    // The cell's review names every nation, whatever the sightings allowed.
    let r = reviews(&out).remove(0);
    assert_eq!(r.tally.sighted_by, ["DEU", "FRA", "POL"]);
    assert_eq!(r.tally.true_positive_by, ["FRA"]);
    assert_eq!(r.tally.false_positive_by, ["ITA"]);
}

#[test]
fn the_cell_sees_what_became_of_every_value_and_why() {
    let mut w = World::new();
    w.config.hunt.max_indicators = 1;
    let g = HuntRelease::Default;
    let a = HuntRelease::Alliance;
    // A campaign detected first, C-000001.
    report(&mut w, "POL", "I0", Tlp::Green, g, &["x.example.net"]);
    report(&mut w, "DEU", "I00", Tlp::Green, g, &["x.example.net"]);
    // Shared: a.example.net and b.example.net (GREEN), google.com is blocked; amber.example.net
    // only AMBER without consent, strict.example.net AMBER_STRICT with an ALLIANCE flag.
    report(
        &mut w,
        "EST",
        "I1",
        Tlp::Green,
        g,
        &["a.example.net", "b.example.net", "google.com"],
    );
    report(&mut w, "EST", "I2", Tlp::Amber, g, &["amber.example.net"]);
    report(
        &mut w,
        "EST",
        "I3",
        Tlp::AmberStrict,
        a,
        &["strict.example.net"],
    );
    let out = report(
        &mut w,
        "LVA",
        "I4",
        Tlp::Amber,
        g,
        &[
            "a.example.net",
            "b.example.net",
            "google.com",
            "amber.example.net",
            "strict.example.net",
        ],
    );
    let by_value: BTreeMap<String, Disposition> = reviews(&out)
        .into_iter()
        .map(|r| (r.value, r.disposition))
        .collect();
    let published = published(&out).remove(0);
    assert_eq!(
        by_value,
        BTreeMap::from([
            (
                "domain:a.example.net".to_owned(),
                Disposition::Published {
                    indicator_id: published.indicator_id.clone(),
                    tlp: Tlp::Green,
                    inform: None
                }
            ),
            ("domain:b.example.net".to_owned(), Disposition::Truncated),
            (
                "domain:google.com".to_owned(),
                Disposition::Blocked {
                    list: by_value_list(&out, "domain:google.com")
                }
            ),
            (
                "domain:amber.example.net".to_owned(),
                Disposition::Withheld { overridden: 0 }
            ),
            (
                "domain:strict.example.net".to_owned(),
                Disposition::Withheld { overridden: 1 }
            ),
        ])
    );
    assert!(published.pattern.contains("a.example.net"));
    // Reworked without a change: nothing told again.
    let out = sight(
        &mut w,
        "DEU",
        "unrelated.example.org",
        SightingKind::Sighting,
    );
    assert!(reviews(&out).is_empty());
    // A false positive from the reporting nation retires it: the review says why.
    let out = sight(&mut w, "EST", "a.example.net", SightingKind::FalsePositive);
    let r = reviews(&out).pop().expect("reviewed");
    assert_eq!(
        r.disposition,
        Disposition::Retired {
            indicator_id: published.indicator_id.clone(),
            reason: RetireReason::FalsePositive
        }
    );
    // The campaign is merged into one detected before it: every review is removed.
    let x = "x.example.net";
    let out = report(&mut w, "FRA", "I5", Tlp::Green, g, &[x, "a.example.net"]);
    let mut removed: Vec<String> = out
        .iter()
        .filter_map(|o| match o {
            Output::Hunt(HuntUpdate::ReviewRemoved { key }) => Some(key.clone()),
            _ => None,
        })
        .collect();
    removed.sort();
    let want: Vec<String> = [
        "a.example.net",
        "amber.example.net",
        "b.example.net",
        "google.com",
        "strict.example.net",
    ]
    .iter()
    .map(|v| hunt::review_key(&published.campaign_id, &format!("domain:{v}")))
    .collect();
    assert_eq!(removed, want);
}

/// The blocking list a review of `value` names (the list's name is the data's, not the test's).
fn by_value_list(out: &[Output], value: &str) -> String {
    reviews(out)
        .into_iter()
        .find_map(|r| match r.disposition {
            Disposition::Blocked { list } if r.value == value => Some(list),
            _ => None,
        })
        .expect("blocked")
}

#[test]
fn past_the_hours_publish_rate_values_wait_for_the_next_hour() {
    let mut w = World::new();
    w.config.hunt.max_new_per_hour = 2;
    let g = HuntRelease::Default;
    let values = ["r1.example.net", "r2.example.net", "r3.example.net"];
    report(&mut w, "EST", "I1", Tlp::Green, g, &values);
    let out = report(&mut w, "LVA", "I2", Tlp::Green, g, &values);
    let got: Vec<String> = published(&out).into_iter().map(|i| i.pattern).collect();
    assert_eq!(got, [domain("r1.example.net"), domain("r2.example.net")]);
    let hour = hunt::RATE_WINDOW_MS;
    let until = (w.clock.now / hour + 1) * hour;
    let deferred: Vec<(String, Disposition)> = reviews(&out)
        .into_iter()
        .filter(|r| matches!(r.disposition, Disposition::Deferred { .. }))
        .map(|r| (r.value, r.disposition))
        .collect();
    assert_eq!(
        deferred,
        [(
            "domain:r3.example.net".to_owned(),
            Disposition::Deferred { until }
        )]
    );
    // A refresh within the hour is not a new publication: the rate does not hold it back.
    let out = report(&mut w, "POL", "I3", Tlp::Green, g, &["r1.example.net"]);
    assert_eq!(published(&out).len(), 1, "{:?}", hunts(&out));
    // Still within the hour: nothing more.
    let out = at(&mut w, until - 1);
    assert!(published(&out).is_empty(), "{:?}", hunts(&out));
    // The next hour: the deferred value goes out, and its review says so.
    let out = at(&mut w, until);
    let got: Vec<String> = published(&out).into_iter().map(|i| i.pattern).collect();
    assert_eq!(got, [domain("r3.example.net")]);
    assert!(reviews(&out)
        .iter()
        .any(|r| matches!(r.disposition, Disposition::Published { .. })));
}

#[test]
fn the_confidence_starts_from_what_a_releasing_source_stated_and_grows_with_corroboration() {
    let mut w = World::new();
    let stated = |w: &mut World, nation: &str, id: &str, tlp: Tlp, value: &str, c: Option<i32>| {
        let env = w.env(nation);
        let e = sample::incident_with(env, id, tlp, Priority::High, |r| {
            r.pap = Pap::Green;
            let mut i = Indicator::new(IndicatorKind::Domain, value.to_owned());
            i.confidence = c;
            r.indicators = vec![i];
        });
        w.apply_all(&e)
    };
    let confidence = |out: &[Output]| published(out).last().map(|i| (i.confidence, i.score));
    // Two nations, one stating 30: 30 + 15.
    stated(&mut w, "EST", "I1", Tlp::Green, "low.example.net", Some(30));
    let out = stated(&mut w, "LVA", "I2", Tlp::Green, "low.example.net", None);
    assert_eq!(confidence(&out), Some((45, 45)));
    // A third nation stating 90: the highest stated, 90 + 30, at most 95.
    let out = stated(&mut w, "POL", "I3", Tlp::Green, "low.example.net", Some(90));
    assert_eq!(confidence(&out), Some((95, 95)));
    // What a source that does not release the value stated does not count.
    stated(&mut w, "EST", "I4", Tlp::Green, "red.example.net", None);
    stated(&mut w, "FIN", "I5", Tlp::Red, "red.example.net", Some(100));
    let out = stated(&mut w, "LVA", "I6", Tlp::Green, "red.example.net", None);
    assert_eq!(confidence(&out), Some((65, 65)));
}
