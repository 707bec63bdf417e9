//! Hostile input on the real broker: every kind of bad record lands in the dead-letter topic
//! with its reason, and valid traffic keeps flowing around it.

use rallypoint_testkit as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Harness;
use rallypoint_core::decision::Decision;
use rallypoint_core::event::{Capability, Event, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn every_kind_of_bad_record_reaches_the_dead_letter_topic_with_its_reason() {
    let mut h = Harness::with_sections(
        "hostile",
        &["EST", "LVA", "DEU"],
        "",
        "[intake]\nmax_record_bytes = 4096\n",
    );
    h.start();
    let now = rallypoint::kafka::now_ms();
    let mut clock = Clock::new(now - 60_000, 10);
    let est = h.topic("rrc.in.EST.incidents");
    let valid = sample::incident(clock.envelope("EST"), "I-OK", Tlp::Green, Priority::High);
    let avro = h.codec.encode_event(&valid);
    let json: serde_json::Value =
        serde_json::from_slice(&h.codec.encode_event_json(&valid)).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = json.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let mut future = sample::incident(
        clock.envelope("EST"),
        "I-FUTURE",
        Tlp::Green,
        Priority::High,
    );
    if let Event::IncidentReported(i) = &mut future {
        i.envelope.reported_at = now + 24 * 3_600_000;
    }
    let mut bad_technique =
        sample::incident(clock.envelope("EST"), "I-BAD", Tlp::Green, Priority::High);
    if let Event::IncidentReported(i) = &mut bad_technique {
        i.techniques = vec!["X9999".into()];
    }
    let mut unknown_print = avro.clone();
    unknown_print[2..10].copy_from_slice(&[7; 8]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (avro[..avro.len() / 2].to_vec(), "undecodable"),
        (unknown_print, "unknown_schema"),
        (
            [
                vec![0u8],
                424242u32.to_be_bytes().to_vec(),
                avro[10..].to_vec(),
            ]
            .concat(),
            "unknown_schema",
        ),
        (vec![b'{'; 5000], "oversized"),
        (with(&|v| v["tlp"] = "PURPLE".into()), "undecodable"),
        (
            with(&|v| {
                v.as_object_mut().unwrap().remove("priority");
            }),
            "undecodable",
        ),
        (h.codec.encode_event(&future), "from_the_future"),
        (h.codec.encode_event(&bad_technique), "invalid_field"),
        (
            h.codec.encode_event(&sample::incident(
                clock.envelope("LVA"),
                "I-SPOOF",
                Tlp::Green,
                Priority::High,
            )),
            "spoofed_nation",
        ),
        (
            h.codec.encode_event(&sample::offer(
                clock.envelope("EST"),
                "O-WRONG",
                Capability::Forensics,
                1,
            )),
            "wrong_topic",
        ),
        (Vec::new(), "undecodable"),
    ];
    for (bytes, _) in &cases {
        h.send_raw(&est, b"k", bytes);
    }
    // The valid incident twice: the repeat is caught by the coordinator, which sees the total order.
    h.send(&valid);
    h.send(&valid);
    h.send(&sample::offer(
        clock.envelope("DEU"),
        "O1",
        Capability::Forensics,
        1,
    ));
    h.send(&sample::request(
        clock.envelope("EST"),
        "R1",
        "I-OK",
        &[(Capability::Forensics, 1)],
    ));

    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for (_, reason) in &cases {
        *expected.entry(reason.to_string()).or_default() += 1;
    }
    *expected.entry("duplicate_event_id".into()).or_default() += 1;
    let want: usize = expected.values().sum();
    assert_eq!(h.read("rrc.dlq", want, WAIT).len(), want, "\n{}", h.log());
    // Then nothing more arrives.
    let dlq = h.read("rrc.dlq", want + 1, Duration::from_secs(3));
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for r in &dlq {
        let dl = h.codec.decode_dead_letter(&r.value).unwrap();
        assert!(!dl.detail.is_empty(), "{dl:?}");
        *got.entry(dl.reason).or_default() += 1;
    }
    assert_eq!(got, expected, "\n{}", h.log());

    let decisions: Vec<Decision> = h
        .read("rrc.out.coalition.decisions", 1, WAIT)
        .iter()
        .map(|r| h.codec.decode_decision(&r.value).unwrap())
        .collect();
    assert!(
        decisions
            .iter()
            .any(|d| matches!(d, Decision::AssignmentProposed(p) if p.provider_nation == "DEU")),
        "valid traffic still flows: {decisions:?}\n{}",
        h.log()
    );
}
