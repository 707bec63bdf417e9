//! The whole path on a real broker: feeds → intake → journal → coordinator → decisions.

use rallypoint_testkit as common;

use std::time::Duration;

use common::{Harness, Record};
use rallypoint::codec::Codec;
use rallypoint_core::decision::Decision;
use rallypoint_core::event::{Capability, Priority, Tlp};
use rallypoint_core::sample::{self, Clock};

const WAIT: Duration = Duration::from_secs(60);

fn decisions(codec: &Codec, records: &[Record]) -> Vec<Decision> {
    records
        .iter()
        .map(|r| {
            codec
                .decode_decision(&r.value)
                .expect("a decodable decision")
        })
        .collect()
}

/// (type, provider or "-") of each decision, sorted: what a nation saw, order aside.
fn summary(ds: &[Decision]) -> Vec<(String, String)> {
    let mut s: Vec<_> = ds
        .iter()
        .map(|d| {
            (
                d.type_name().to_owned(),
                d.provider().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    s.sort();
    s
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn three_nations_get_exactly_the_expected_decisions_each_once() {
    let mut h = Harness::new("spine", &["EST", "LVA", "DEU"], "");
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    h.send(&sample::offer(
        clock.envelope("DEU"),
        "O-DEU",
        Capability::Forensics,
        2,
    ));
    h.send(&sample::offer(
        clock.envelope("LVA"),
        "O-LVA",
        Capability::IncidentResponse,
        1,
    ));
    assert_eq!(
        h.read("rrc.internal.journal", 2, WAIT).len(),
        2,
        "offers journaled\n{}",
        h.log()
    );
    h.ask_for_help(
        &mut clock,
        ("EST", "I1", "R1"),
        (Tlp::Amber, Priority::Severe),
        &[
            (Capability::Forensics, 2),
            (Capability::IncidentResponse, 1),
        ],
    );
    let asked_at = rallypoint::kafka::now_ms();
    let proposals = h.read("rrc.out.coalition.decisions", 2, WAIT);
    // Each decision names when the input that led to it was written: the request, just now.
    for r in &proposals {
        let input_ts: i64 = r
            .headers
            .iter()
            .find(|(k, _)| k == "rp.input_ts")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
            .expect("an rp.input_ts header in epoch milliseconds");
        assert!(
            (asked_at - 10_000..=rallypoint::kafka::now_ms()).contains(&input_ts),
            "rp.input_ts {input_ts} is not the request's write time (about {asked_at})"
        );
    }
    let proposed = decisions(&h.codec, &proposals);
    assert_eq!(
        summary(&proposed),
        pairs(&[("AssignmentProposed", "DEU"), ("AssignmentProposed", "LVA")]),
        "\n{}",
        h.log()
    );
    let id_of = |nation: &str| {
        proposed
            .iter()
            .find(|d| d.provider() == Some(nation))
            .unwrap()
            .key()
            .to_owned()
    };
    h.send(&sample::accepted(clock.envelope("DEU"), &id_of("DEU")));
    h.send(&sample::declined(clock.envelope("LVA"), &id_of("LVA")));

    let coalition = decisions(
        &h.codec,
        &h.read("rrc.out.coalition.decisions", 6, Duration::from_secs(20)),
    );
    let expected_all = [
        ("AssignmentProposed", "DEU"),
        ("AssignmentProposed", "LVA"),
        ("AssignmentConfirmed", "DEU"),
        ("AssignmentCancelled", "LVA"),
        ("AssistanceUnmet", "-"),
    ];
    assert_eq!(summary(&coalition), pairs(&expected_all), "\n{}", h.log());
    let est = decisions(
        &h.codec,
        &h.read("rrc.out.EST.decisions", 6, Duration::from_secs(5)),
    );
    assert_eq!(summary(&est), pairs(&expected_all));
    let deu = decisions(
        &h.codec,
        &h.read("rrc.out.DEU.decisions", 3, Duration::from_secs(5)),
    );
    assert_eq!(
        summary(&deu),
        pairs(&[
            ("AssignmentProposed", "DEU"),
            ("AssignmentConfirmed", "DEU")
        ])
    );
    let lva = decisions(
        &h.codec,
        &h.read("rrc.out.LVA.decisions", 3, Duration::from_secs(5)),
    );
    assert_eq!(
        summary(&lva),
        pairs(&[
            ("AssignmentProposed", "LVA"),
            ("AssignmentCancelled", "LVA")
        ])
    );
    let unmet = coalition.iter().find_map(|d| match d {
        Decision::AssistanceUnmet(u) => Some(u),
        _ => None,
    });
    assert_eq!(
        unmet.map(|u| (u.subject.capability, u.units_missing)),
        Some((Capability::IncidentResponse, 1))
    );
}

#[test]
fn garbage_and_spoofed_records_go_to_the_dead_letter_topic_and_processing_goes_on() {
    let mut h = Harness::new("dlq", &["EST", "LVA", "DEU"], "");
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    h.send(&sample::offer(
        clock.envelope("DEU"),
        "O1",
        Capability::Forensics,
        1,
    ));
    assert_eq!(
        h.read("rrc.internal.journal", 1, WAIT).len(),
        1,
        "offer journaled\n{}",
        h.log()
    );
    let est_incidents = h.topic("rrc.in.EST.incidents");
    let garbage = b"\x01\x02 definitely not an event".to_vec();
    h.send_raw(&est_incidents, b"x", &garbage);
    // LVA's event, written to EST's topic: spoofing.
    let spoofed = sample::incident(clock.envelope("LVA"), "I-SPOOF", Tlp::Green, Priority::High);
    let spoofed_bytes = h.codec.encode_event(&spoofed);
    h.send_raw(&est_incidents, b"I-SPOOF", &spoofed_bytes);
    h.ask_for_help(
        &mut clock,
        ("EST", "I1", "R1"),
        (Tlp::Green, Priority::High),
        &[(Capability::Forensics, 1)],
    );

    let dlq = h.read("rrc.dlq", 2, WAIT);
    assert_eq!(dlq.len(), 2, "\n{}", h.log());
    let mut seen: Vec<(String, Vec<u8>)> = dlq
        .iter()
        .map(|r| {
            let reason = r
                .headers
                .iter()
                .find(|(k, _)| k == "error.reason")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            let dl = h.codec.decode_dead_letter(&r.value).unwrap();
            assert_eq!(reason.as_deref(), Some(dl.reason.as_str()));
            assert_eq!(dl.source_topic, est_incidents);
            assert!(!dl.detail.is_empty());
            (dl.reason, dl.original_value)
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("spoofed_nation".to_string(), spoofed_bytes),
            ("undecodable".to_string(), garbage)
        ]
    );
    let coalition = decisions(&h.codec, &h.read("rrc.out.coalition.decisions", 1, WAIT));
    assert_eq!(
        summary(&coalition),
        pairs(&[("AssignmentProposed", "DEU")]),
        "\n{}",
        h.log()
    );
    let journal = h.read("rrc.internal.journal", 10, Duration::from_secs(3));
    assert_eq!(
        journal.len(),
        3,
        "only the three valid events are journaled"
    );
}

#[test]
fn replay_finds_a_forged_decision() {
    let mut h = Harness::new("audit", &["EST", "LVA", "DEU"], "");
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    h.send(&sample::offer(
        clock.envelope("DEU"),
        "O-DEU",
        Capability::Forensics,
        2,
    ));
    assert_eq!(h.read("rrc.internal.journal", 1, WAIT).len(), 1);
    h.ask_for_help(
        &mut clock,
        ("EST", "I1", "R1"),
        (Tlp::Amber, Priority::Severe),
        &[(Capability::Forensics, 1)],
    );
    let est = h.read("rrc.out.EST.decisions", 1, WAIT);
    assert_eq!(est.len(), 1, "\n{}", h.log());
    // Let the coordinator's commit settle, then audit: all is well.
    std::thread::sleep(Duration::from_secs(1));
    let clean = h.command(&["replay"]).output().unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    // Someone with write access to EST's decision topic slips in a decision of their own.
    let mut forged = est[0].value.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    h.send_raw(
        &h.topic("rrc.out.EST.decisions"),
        est[0].key.as_deref().unwrap(),
        &forged,
    );
    let audit = h.command(&["replay"]).output().unwrap();
    let text = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.status.code(), Some(1), "{text}");
    assert!(
        text.contains("first divergence") && text.contains("rrc.out.EST.decisions"),
        "{text}"
    );
}

#[test]
fn the_metrics_endpoint_passes_promtool_and_counts_what_happened() {
    let mut h = Harness::new("metrics", &["EST", "LVA", "DEU"], "");
    h.start();
    assert!(h.wait_ready(WAIT), "not ready\n{}", h.log());
    assert_eq!(h.http_get("/healthz").0, 200);
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    h.send(&sample::offer(
        clock.envelope("DEU"),
        "O1",
        Capability::Forensics,
        1,
    ));
    h.send_raw(&h.topic("rrc.in.EST.incidents"), b"x", b"garbage");
    assert_eq!(h.read("rrc.dlq", 1, WAIT).len(), 1, "\n{}", h.log());
    assert_eq!(
        h.read("rrc.internal.journal", 1, WAIT).len(),
        1,
        "\n{}",
        h.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = h.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        body.contains("rallypoint_dead_letters_total{reason=\"undecodable\",stage=\"intake\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("rallypoint_records_in_total{stage=\"intake\"} 2"),
        "{body}"
    );
    assert!(
        body.contains("rallypoint_transaction_commit_seconds_bucket"),
        "{body}"
    );
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by scripts/install-deps.sh");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn at_least_once_works_without_transactions() {
    let mut h = Harness::new(
        "alos",
        &["EST", "DEU"],
        "processing_guarantee = \"at_least_once\"",
    );
    h.start();
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 10);
    h.send(&sample::offer(
        clock.envelope("DEU"),
        "O-DEU",
        Capability::Forensics,
        1,
    ));
    assert_eq!(
        h.read("rrc.internal.journal", 1, WAIT).len(),
        1,
        "the offer journaled first\n{}",
        h.log()
    );
    h.ask_for_help(
        &mut clock,
        ("EST", "I1", "R1"),
        (Tlp::Amber, Priority::Severe),
        &[(Capability::Forensics, 1)],
    );
    let proposed = decisions(&h.codec, &h.read("rrc.out.coalition.decisions", 1, WAIT));
    assert_eq!(
        summary(&proposed),
        pairs(&[("AssignmentProposed", "DEU")]),
        "\n{}",
        h.log()
    );
    // No transaction markers: the journal's offsets follow one another.
    let journal = h.read("rrc.internal.journal", 3, WAIT);
    let offsets: Vec<i64> = journal.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2], "\n{}", h.log());
    // The stages commit their input offsets with the consumer instead.
    let deadline = std::time::Instant::now() + WAIT;
    while h.coordinator_position() != Some(3) {
        assert!(
            std::time::Instant::now() < deadline,
            "the coordinator committed {:?}, not 3\n{}",
            h.coordinator_position(),
            h.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
