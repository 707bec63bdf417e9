//! The simulated feed on the real broker (`rallypoint::simulate`, what the demo runs): its
//! incidents make hunt packages, every member's hunt topic receives them, and the nations'
//! simulated SIEMs answer them on their sightings topics with sightings that name the hunt
//! indicator they answer, which intake accepts.

use rallypoint_testkit as common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Harness;
use rallypoint::simulate;
use rallypoint_core::event::Event;
use rallypoint_core::hunt::{self, HuntUpdate};

const NATIONS: [&str; 4] = ["EST", "LVA", "LTU", "POL"];

/// A record's key and value.
type KeyValue = (Option<Vec<u8>>, Vec<u8>);

#[test]
fn the_simulated_siems_answer_what_the_hunt_topics_publish() {
    let mut h = Harness::new("simhunt", &NATIONS, "");
    h.start();
    assert!(h.wait_ready(Duration::from_secs(60)), "{}", h.log());
    let report = simulate::run(
        &h.load_config(),
        &simulate::Options {
            rate: 100.0,
            count: Some(1_500),
            duration: None,
            nations: NATIONS.map(str::to_owned).to_vec(),
            json_share: 0.2,
            accept_share: 0.85,
            seed: 7,
            progress: false,
        },
    )
    .expect("the feed ran");
    let hunting = &report.hunting;
    assert!(hunting.published > 0, "{hunting:?}\n{}", h.log());
    assert!(
        hunting.sightings + hunting.false_positives > 0,
        "{hunting:?}"
    );
    assert_eq!(hunting.skipped, 0, "{hunting:?}");

    // Every member's hunt topic holds at least what the SIEMs counted, and the same indicator
    // records; the summaries of what the SIEMs sighted reach some nations (those of each
    // campaign), answering a published indicator.
    let mut summaries = 0;
    let topics: Vec<Vec<KeyValue>> = NATIONS
        .iter()
        .map(|n| {
            h.read_all(&format!("rrc.out.{n}.hunt"))
                .into_iter()
                .filter(|r| match h.codec.decode_hunt(&r.value) {
                    Ok(HuntUpdate::Sightings { .. }) => {
                        summaries += 1;
                        false
                    }
                    _ => true,
                })
                .map(|r| (r.key, r.value))
                .collect()
        })
        .collect();
    assert!(summaries > 0, "no nation heard of the SIEMs' sightings");
    // The simulator counted those it read while it ran; the topics hold at least those.
    assert!(summaries >= hunting.summaries, "{summaries}; {hunting:?}");
    eprintln!("{}", hunting.describe());
    // As a SIEM counts them: a publication of a key it does not hunt for yet is new.
    let (mut live, mut new, mut published) = (BTreeSet::new(), 0, BTreeSet::new());
    for (_, value) in &topics[0] {
        match h.codec.decode_hunt(value) {
            Ok(HuntUpdate::Published(i)) => {
                new += live.insert(i.key()) as u64;
                published.insert(i.indicator_id);
            }
            Ok(HuntUpdate::Retired { indicator, .. }) => {
                live.remove(&indicator.key());
            }
            _ => {}
        }
    }
    assert!(
        new >= hunting.published,
        "{new} new on the topic; {hunting:?}"
    );
    for (n, records) in NATIONS.iter().zip(&topics) {
        // A topic read a moment later may hold more records, never other ones.
        let common = records.len().min(topics[0].len());
        assert_eq!(records[..common], topics[0][..common], "{n}'s hunt topic");
    }

    // The sightings topics hold exactly the sightings the SIEMs sent, each answering a
    // published indicator with its own value, and intake journaled them all.
    let mut sightings = 0;
    let mut ids = BTreeSet::new();
    for n in NATIONS {
        for r in h.read_all(&format!("rrc.in.{n}.sightings")) {
            let Ok(Event::IndicatorSighted(s)) = h.codec.decode_event(&r.value) else {
                panic!("{n}'s sightings topic holds a record that is not a sighting");
            };
            assert_eq!(s.envelope.nation, n);
            let hunt_id = s.hunt_id.expect("a hunt id");
            assert!(published.contains(&hunt_id), "{hunt_id} was not published");
            let pattern = hunt::pattern(s.indicator.kind, &s.indicator.value).expect("hunted");
            assert_eq!(hunt::indicator_id(&pattern), hunt_id, "{pattern}");
            assert!(s.first_seen <= s.last_seen && s.count >= 1);
            assert!(ids.insert(s.sighting_id.clone()), "{} twice", s.sighting_id);
            sightings += 1;
        }
    }
    assert_eq!(sightings, hunting.sightings + hunting.false_positives);
    let dead: Vec<String> = h
        .read_all("rrc.dlq")
        .iter()
        .flat_map(|r| &r.headers)
        .filter(|(k, _)| k == "source.topic")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .filter(|topic| topic.ends_with(".sightings"))
        .collect();
    assert!(dead.is_empty(), "sightings dead-lettered: {dead:?}");
}
