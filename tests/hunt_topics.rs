//! Hunt packages on the real broker: a three-nation GREEN campaign gives every member's hunt
//! topic, a non-reporting member's too, exactly the shared values, byte for byte what the
//! journal implies; values whose only sources do not release them, and the reporting nations'
//! codes, never appear there; a withdrawn value is retired, then removed by a tombstone. A
//! sighting reaches the campaign's nations as a summary, not the others; the cell's topic
//! says what became of every value, and why.

use rallypoint_testkit as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Harness;
use rallypoint_core::event::{Event, HuntRelease, Indicator, IndicatorKind, Priority, Tlp};
use rallypoint_core::hunt::{self, HuntUpdate, RetireReason};
use rallypoint_core::sample::{self, Clock};

/// FIN reports nothing: it receives the package all the same.
const NATIONS: [&str; 5] = ["EST", "LVA", "POL", "LTU", "FIN"];
const DAY: i64 = 24 * 60 * 60 * 1000;

fn incident(
    clock: &mut Clock,
    nation: &str,
    id: &str,
    tlp: Tlp,
    release: HuntRelease,
    values: &[&str],
) -> Event {
    sample::incident_with(clock.envelope(nation), id, tlp, Priority::High, |r| {
        r.hunt_release = release;
        r.indicators = values
            .iter()
            .map(|v| Indicator::new(IndicatorKind::Domain, (*v).to_owned()))
            .collect();
    })
}

#[test]
fn every_member_gets_exactly_the_released_values_and_their_retirement() {
    let mut h = Harness::with_sections("hunt", &NATIONS, "", "[hunt]\ntombstone_after = \"1m\"\n");
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 1_000);
    let g = HuntRelease::Default;
    let mut sent = Vec::new();
    let phase = |h: &Harness, events: Vec<Event>, sent: &mut Vec<Event>| {
        for e in events {
            h.send(&e);
            sent.push(e);
        }
        let journal = h.read("rrc.internal.journal", sent.len(), Duration::from_secs(60));
        assert_eq!(journal.len(), sent.len(), "{}", h.log());
    };
    phase(
        &h,
        vec![
            incident(
                &mut clock,
                "EST",
                "I1",
                Tlp::Green,
                g,
                &["c2.hunt-golden.net", "drop.hunt-golden.net"],
            ),
            incident(
                &mut clock,
                "LVA",
                "I2",
                Tlp::Green,
                g,
                &["c2.hunt-golden.net", "google.com"],
            ),
            incident(
                &mut clock,
                "POL",
                "I3",
                Tlp::Green,
                g,
                &["c2.hunt-golden.net", "drop.hunt-golden.net"],
            ),
            // Shared, but only by sources that do not release it.
            incident(
                &mut clock,
                "LTU",
                "I4",
                Tlp::Amber,
                g,
                &["c2.hunt-golden.net", "amber.hunt-golden.net"],
            ),
            incident(
                &mut clock,
                "EST",
                "I5",
                Tlp::Red,
                HuntRelease::Alliance,
                &["drop.hunt-golden.net", "red.hunt-golden.net"],
            ),
            incident(
                &mut clock,
                "LVA",
                "I6",
                Tlp::AmberStrict,
                HuntRelease::Alliance,
                &["amber.hunt-golden.net"],
            ),
            // A second campaign, whose only releasing source closes.
            incident(
                &mut clock,
                "LTU",
                "I7",
                Tlp::Green,
                g,
                &["gone.hunt-golden.net"],
            ),
            incident(
                &mut clock,
                "POL",
                "I8",
                Tlp::Amber,
                g,
                &["gone.hunt-golden.net"],
            ),
        ],
        &mut sent,
    );
    // FIN's SIEM sights the first value three times, AMBER and anonymous: counted, not named.
    let c2 = Indicator::new(IndicatorKind::Domain, "c2.hunt-golden.net".into());
    phase(
        &h,
        vec![sample::sighted_with(
            clock.envelope("FIN"),
            "S-1",
            c2,
            rallypoint_core::event::SightingKind::Sighting,
            |s| (s.count, s.tlp, s.anonymous) = (3, Tlp::Amber, true),
        )],
        &mut sent,
    );
    phase(
        &h,
        vec![sample::closed(clock.envelope("LTU"), "I7")],
        &mut sent,
    );
    // Past the tombstone grace in stream time.
    clock.now += 2 * 60_000;
    phase(
        &h,
        vec![sample::offer(
            clock.envelope("FIN"),
            "O-1",
            rallypoint_core::event::Capability::Forensics,
            1,
        )],
        &mut sent,
    );
    let times: Vec<i64> = sent.iter().map(|e| e.envelope().reported_at).collect();
    let checked = common::assert_exactly_once(&h, &sent, &NATIONS);
    assert!(checked.hunts > 0, "no hunt record compared");

    // Every member's topic holds the same indicator records in the same order; the summary of
    // the sighting is on the topics of the campaign's nations only.
    let is_summary =
        |r: &common::Record| r.key.as_deref().is_some_and(|k| k.ends_with(b"/sightings"));
    let mut summaries = BTreeMap::new();
    let topics: Vec<Vec<common::Record>> = NATIONS
        .iter()
        .map(|n| {
            let (s, i): (Vec<common::Record>, Vec<common::Record>) = h
                .read_all(&format!("rrc.out.{n}.hunt"))
                .into_iter()
                .partition(is_summary);
            summaries.insert(*n, s);
            i
        })
        .collect();
    for n in ["EST", "LVA", "POL", "LTU"] {
        let s = &summaries[n];
        assert_eq!(s.len(), 1, "{n}: {} summaries", s.len());
        let Ok(HuntUpdate::Sightings { summary, .. }) = h.codec.decode_hunt(&s[0].value) else {
            panic!("{n}: not a summary");
        };
        assert_eq!(
            (
                summary.sightings,
                summary.nations_sighting,
                summary.named_nations.len()
            ),
            (3, 1, 0)
        );
        assert_eq!(
            summary.pattern,
            "[domain-name:value = 'c2.hunt-golden.net']"
        );
        assert_eq!(s[0].key.as_deref(), Some(summary.key().as_bytes()));
    }
    assert!(summaries["FIN"].is_empty(), "FIN has no incident in it");
    for (n, records) in NATIONS.iter().zip(&topics) {
        let strip = |rs: &[common::Record]| -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
            rs.iter()
                .map(|r| (r.key.clone(), r.value.clone()))
                .collect()
        };
        assert_eq!(
            strip(records),
            strip(&topics[0]),
            "{n}'s hunt topic differs from EST's"
        );
        for r in records {
            let text = String::from_utf8_lossy(&r.value);
            for secret in ["amber.hunt-golden.net", "red.hunt-golden.net", "google.com"] {
                assert!(!text.contains(secret), "{secret} on {n}'s hunt topic");
            }
            for code in NATIONS {
                assert!(!text.contains(code), "{code} on {n}'s hunt topic: {text}");
            }
        }
    }
    for (n, records) in &summaries {
        for r in records {
            let text = String::from_utf8_lossy(&r.value);
            for code in NATIONS {
                assert!(
                    !text.contains(code),
                    "{code} in a summary on {n}'s topic: {text}"
                );
            }
        }
    }

    // The cell's topic: the latest review of every value of the two campaigns; RED's value
    // is not among them.
    let mut reviews: BTreeMap<String, hunt::Disposition> = BTreeMap::new();
    for r in h.read_all("rrc.out.coalition.hunt") {
        if r.null_value {
            reviews.remove(
                &String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
            );
            continue;
        }
        let Ok(HuntUpdate::Reviewed(review)) = h.codec.decode_hunt(&r.value) else {
            panic!("not a review at offset {}", r.offset);
        };
        assert_eq!(r.key.as_deref(), Some(review.key().as_bytes()));
        reviews.insert(review.key(), review.disposition);
    }
    let by_value: BTreeMap<&str, &str> = reviews
        .iter()
        .map(|(k, d)| (k.split_once('/').unwrap().1, d.as_str()))
        .collect();
    assert_eq!(
        by_value,
        BTreeMap::from([
            ("domain:amber.hunt-golden.net", "WITHHELD"),
            ("domain:c2.hunt-golden.net", "PUBLISHED"),
            ("domain:drop.hunt-golden.net", "PUBLISHED"),
            ("domain:gone.hunt-golden.net", "RETIRED"),
            ("domain:google.com", "BLOCKED"),
        ]),
        "{reviews:?}"
    );
    assert!(reviews
        .values()
        .any(|d| *d == hunt::Disposition::Withheld { overridden: 1 }));

    // The latest record per key: the two shared values published; the withdrawn one removed
    // after its retirement.
    let mut latest: BTreeMap<Vec<u8>, Option<HuntUpdate>> = BTreeMap::new();
    let mut retirements = Vec::new();
    for r in &topics[0] {
        let update = (!r.null_value).then(|| h.codec.decode_hunt(&r.value).unwrap());
        if let Some(HuntUpdate::Retired { indicator, reason }) = &update {
            retirements.push((indicator.pattern.clone(), *reason));
        }
        latest.insert(r.key.clone().unwrap_or_default(), update);
    }
    assert_eq!(
        retirements,
        [(
            "[domain-name:value = 'gone.hunt-golden.net']".to_owned(),
            RetireReason::ReleaseWithdrawn
        )]
    );
    let mut live: Vec<(String, i64, i64, Tlp, u32)> = latest
        .values()
        .flatten()
        .map(|u| match u {
            HuntUpdate::Published(i) => {
                assert_eq!(i.indicator_id, hunt::indicator_id(&i.pattern));
                assert_eq!(
                    i.key().as_bytes(),
                    latest
                        .iter()
                        .find(|(_, v)| v.as_ref() == Some(u))
                        .unwrap()
                        .0
                        .as_slice()
                );
                (
                    i.pattern.clone(),
                    i.valid_from,
                    i.valid_until,
                    i.tlp,
                    i.nation_count,
                )
            }
            other => panic!("not a publication: {other:?}"),
        })
        .collect();
    live.sort();
    assert_eq!(live.len(), 2, "{live:?}");
    let patterns: Vec<&str> = live.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        patterns,
        [
            "[domain-name:value = 'c2.hunt-golden.net']",
            "[domain-name:value = 'drop.hunt-golden.net']"
        ]
    );
    assert_eq!((live[0].3, live[0].4), (Tlp::Green, 3));
    assert_eq!((live[1].3, live[1].4), (Tlp::Green, 2));
    for (pattern, from, until, _, _) in &live {
        // Refreshed by a report: a lifetime from the stream time of one of the events.
        assert!(
            times.contains(&(until - 120 * DAY)),
            "{pattern}: valid_until {until}"
        );
        assert!(
            times.contains(from) && *from <= until - 120 * DAY,
            "{pattern}: valid_from {from}"
        );
    }
    // A tombstone ended the withdrawn value's key.
    assert_eq!(
        latest.values().filter(|v| v.is_none()).count(),
        1,
        "{latest:?}"
    );
}
