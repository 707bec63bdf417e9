//! The threat picture on the real broker: the compacted topic's latest record per key equals
//! what a recomputation from the journal gives, and the query API and metrics agree with it.

use rallypoint_testkit as common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Harness;
use rallypoint::codec::Format;
use rallypoint_core::event::{Capability, Event, Indicator, IndicatorKind, Priority, Tlp};
use rallypoint_core::picture::{CampaignStatus, PictureUpdate};
use rallypoint_core::sample::{self, Clock};
use rallypoint_core::{apply, MemStore, Output};

const NATIONS: [&str; 5] = ["EST", "LVA", "LTU", "POL", "DEU"];

fn with_indicators(mut e: Event, values: &[&str]) -> Event {
    if let Event::IncidentReported(r) = &mut e {
        r.indicators = values
            .iter()
            .map(|v| Indicator::new(IndicatorKind::Domain, (*v).to_owned()))
            .collect();
    }
    e
}

#[test]
fn the_compacted_topic_holds_what_the_journal_implies_and_the_api_agrees() {
    let mut h = Harness::with_query_api(
        "picture",
        &NATIONS,
        "",
        "[picture]\nemit_interval = \"2s\"\nfanout_cap = 3\n",
        "",
    );
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 600_000, 700);
    let mut sent = Vec::new();
    let send = |h: &Harness, sent: &mut Vec<Event>, e: Event| {
        h.send(&e);
        sent.push(e);
    };
    // A campaign across EST, LVA and POL through shared infrastructure (POL through a second
    // value it shares with LVA); a RED incident of LTU shares it too; a CDN reported by four
    // incidents is past the cap of 3 and links nothing.
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
    for (nation, id, tlp, values) in &reports {
        let e = sample::incident(clock.envelope(nation), id, *tlp, Priority::Severe);
        send(&h, &mut sent, with_indicators(e, values));
    }
    send(
        &h,
        &mut sent,
        sample::offer(clock.envelope("DEU"), "O-1", Capability::IcsOt, 2),
    );
    send(
        &h,
        &mut sent,
        sample::request(
            clock.envelope("EST"),
            "R-est",
            "I-est",
            &[(Capability::IcsOt, 3)],
        ),
    );
    // An attack that happened two days ago, reported now: too late for its windows.
    let mut late = clock.envelope("LVA");
    late.occurred_at -= 2 * 86_400_000;
    send(
        &h,
        &mut sent,
        sample::incident(late, "I-old", Tlp::Green, Priority::Low),
    );
    send(
        &h,
        &mut sent,
        sample::closed(clock.envelope("POL"), "I-pol"),
    );
    // Stream time moves on past the publication interval, so throttled figures go out. The
    // intake journals the nations' topics in no fixed order between them: had this offer been
    // journaled first, stream time would already stand past the others and their figures would
    // wait for a later event. So it goes out once the journal holds the rest.
    let before = h.read("rrc.internal.journal", sent.len(), Duration::from_secs(60));
    assert_eq!(before.len(), sent.len(), "{}", h.log());
    clock.now += 5_000;
    send(
        &h,
        &mut sent,
        sample::offer(clock.envelope("LTU"), "O-2", Capability::Forensics, 1),
    );

    let journal = h.read("rrc.internal.journal", sent.len(), Duration::from_secs(60));
    assert_eq!(journal.len(), sent.len(), "{}", h.log());

    // Recompute from the journal with the processor's own settings.
    let core = h.load_config().core();
    let mut store = MemStore::new();
    let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut records = 0;
    for r in &journal {
        let event = h.codec.decode_event(&r.value).unwrap();
        for o in apply(&mut store, &core, &event).unwrap() {
            if let Output::Picture(u) = o {
                expected.insert(
                    u.key().into_bytes(),
                    h.codec.encode_picture(&u, Format::Avro),
                );
                records += 1;
            }
        }
    }
    let name = "rrc.out.coalition.threat-picture";
    let all = h.read(name, records, Duration::from_secs(60));
    assert_eq!(all.len(), records, "{}", h.log());
    // And nothing more.
    let topic = h.read(name, records + 1, Duration::from_secs(3));
    assert_eq!(topic.len(), records, "every record published once");
    let mut latest: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for r in topic {
        latest.insert(r.key.expect("keyed"), r.value);
    }
    assert_eq!(latest.len(), expected.len());
    for (key, value) in &expected {
        assert!(
            latest.get(key) == Some(value),
            "latest value of {} differs from the recomputation",
            String::from_utf8_lossy(key)
        );
    }

    // What the picture says, through the codec.
    let decode = |key: &str| h.codec.decode_picture(&latest[key.as_bytes()]).unwrap();
    let PictureUpdate::Picture(total) = decode("alliance/total") else {
        panic!("a picture record")
    };
    assert_eq!((total.open_incidents, total.late_events), (5, 1));
    // O-2 came less than the interval after the last publication: not on the topic yet.
    let offered: Vec<(Capability, i64)> = total
        .capacity
        .iter()
        .map(|c| (c.capability, c.offered))
        .collect();
    assert_eq!(offered, vec![(Capability::IcsOt, 2)]);
    let campaign = match decode("campaign/C-000001") {
        PictureUpdate::CampaignDetected(c) | PictureUpdate::CampaignUpdated(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(campaign.status, CampaignStatus::Active);
    assert_eq!(campaign.nations, vec!["EST", "LTU", "LVA", "POL"]);
    assert_eq!(campaign.incidents, vec!["I-est", "I-lva", "I-pol"]);
    assert_eq!(campaign.red_incidents, 1);
    assert_eq!(
        campaign.indicators,
        vec!["domain:c2.example.net", "domain:upd.example.org"]
    );

    // The query API answers the cell from the same state.
    let cell = Some("cell");
    let (status, campaigns) = h.api_get_ready("/api/v1/campaigns", cell, Duration::from_secs(30));
    assert_eq!(status, 200, "{campaigns}");
    let campaigns: serde_json::Value = serde_json::from_str(&campaigns).unwrap();
    assert_eq!(campaigns[0]["campaign_id"], "C-000001");
    let (status, _, body) = h.api_get("/api/v1/picture?scope=nation:EST", cell);
    assert_eq!(status, 200, "{body}");
    let est: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(est["total"]["open_requests"], 1);
    assert_eq!(est["total"]["unmet_needs"], 1, "3 units asked, 2 offered");
    // The API answers from the live state, O-2 included.
    let (_, _, body) = h.api_get("/api/v1/picture", cell);
    let alliance: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        alliance["total"]["capacity"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    let (_, _, body) = h.api_get("/api/v1/requests?nation=EST", cell);
    let requests: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(requests[0]["request_id"], "R-est");
    assert_eq!(requests[0]["needs"][0]["missing"], 1);
    let (status, _, _) = h.api_get("/api/v1/picture?scope=planet:earth", cell);
    assert_eq!(status, 400);

    // Metrics for ops, read from the coordinator's state every second.
    let started = Instant::now();
    while h.metric("rallypoint_campaigns_active") != Some(1.0) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "campaign gauge"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        h.metric("rallypoint_indicator_values"),
        Some(4.0),
        "3 domains and 203.0.113.7"
    );
    assert_eq!(h.metric("rallypoint_indicator_values_capped"), Some(1.0));
    assert_eq!(h.metric("rallypoint_late_events_total"), Some(1.0));
    assert_eq!(h.metric("rallypoint_open_incidents"), Some(5.0));
}
