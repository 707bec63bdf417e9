//! One sample record of every schema: fixtures for interoperability checks with other Avro
//! implementations (`rallypoint schemas --samples`, `scripts/check-avro-interop.sh`) and the codec's
//! tests, kept out of the codec itself.

use rallypoint_core::event::Pap;
use rallypoint_core::hunt::{
    indicator_id, Disposition, HuntIndicator, HuntReview, HuntUpdate, RetireReason,
    SightingSummary, SightingTally,
};

use super::{Codec, DeadLetter, Format, Header};

/// One sample record of every schema, single-object encoded, for interoperability checks
/// with other Avro implementations.
pub fn samples(codec: &Codec) -> Vec<(&'static str, Vec<u8>)> {
    use rallypoint_core::event::{
        Capability, Indicator, IndicatorKind, Priority, SightingKind, Tlp,
    };
    use rallypoint_core::sample::{self, Clock};
    let mut c = Clock::new(1_800_000_000_000, 1_000);
    let mut out = Vec::new();
    let offer = sample::offer_with(c.envelope("DEU"), "O1", Capability::IcsOt, 4, |o| {
        o.max_tlp = Tlp::Red;
        o.eligible_nations = vec!["EST".into()];
    });
    let events = vec![
        sample::incident(c.envelope("EST"), "I1", Tlp::AmberStrict, Priority::Severe),
        offer,
        sample::request(
            c.envelope("EST"),
            "R1",
            "I1",
            &[(Capability::IcsOt, 3), (Capability::Forensics, 1)],
        ),
        sample::incident_updated(c.envelope("EST"), "I1", Priority::Emergency),
        // Both report 203.0.113.7, as I1 did: a campaign of EST and LVA, which POL's SIEM
        // sights, then LTU joins.
        sample::incident(c.envelope("LVA"), "I2", Tlp::Green, Priority::High),
        sample::sighted(
            c.envelope("POL"),
            "S1",
            Indicator::new(IndicatorKind::Ipv4, "203.0.113.7".into()),
            SightingKind::TruePositive,
        ),
        sample::incident(c.envelope("LTU"), "I3", Tlp::Green, Priority::High),
        sample::accepted(c.envelope("DEU"), "A-00000001"),
        sample::offer_updated(c.envelope("DEU"), "O1", 2),
        sample::completed(c.envelope("DEU"), "A-00000001"),
        sample::declined(c.envelope("DEU"), "A-00000001"),
        sample::withdrawn(c.envelope("DEU"), "O1"),
        sample::closed(c.envelope("EST"), "I1"),
    ];
    let mut store = rallypoint_core::MemStore::new();
    for e in &events {
        out.push((e.type_name(), codec.encode_event(e)));
        let decided =
            rallypoint_core::apply(&mut store, &rallypoint_core::CoreConfig::default(), e);
        for o in decided.into_iter().flatten() {
            let (name, bytes) = match &o {
                rallypoint_core::Output::Decision(r) => (
                    r.decision.type_name(),
                    codec.encode_decision(&r.decision, Format::Avro),
                ),
                rallypoint_core::Output::Picture(u) => {
                    (u.type_name(), codec.encode_picture(u, Format::Avro))
                }
                rallypoint_core::Output::Hunt(u) => {
                    match (u.type_name(), codec.encode_hunt(u, Format::Avro)) {
                        (Some(name), Some(bytes)) => (name, bytes),
                        _ => continue,
                    }
                }
                rallypoint_core::Output::Rejected(_) => continue,
            };
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, bytes));
            }
        }
    }
    for update in hunt_samples() {
        if let (Some(name), Some(bytes)) =
            (update.type_name(), codec.encode_hunt(&update, Format::Avro))
        {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, bytes));
            }
        }
    }
    let dl = DeadLetter {
        reason: "spoofed_nation".into(),
        detail: "event declares nation LVA but arrived on EST's topic".into(),
        source_topic: "rrc.in.EST.incidents".into(),
        source_partition: 1,
        source_offset: 42,
        source_timestamp: Some(1_800_000_000_000),
        original_key: Some(b"I1".to_vec()),
        original_value: vec![0xC3, 0x01, 0xff],
        original_headers: vec![Header {
            key: "trace".into(),
            value: None,
        }],
    };
    out.push(("DeadLetter", codec.encode_dead_letter(&dl)));
    out
}

/// One hunt update of each kind: an indicator published, another retired, and the removal of
/// the retired one's key (a tombstone).
pub fn hunt_samples() -> Vec<HuntUpdate> {
    use rallypoint_core::event::{IndicatorKind, Sector, Tlp};
    use rallypoint_core::hunt::pattern;
    let indicator = |kind, value: &str, tlp, pap| {
        let pattern = pattern(kind, value).unwrap_or_default();
        HuntIndicator {
            campaign_id: "C-000001".into(),
            indicator_id: indicator_id(&pattern),
            kind,
            pattern,
            valid_from: 1_800_000_000_000,
            valid_until: 1_810_368_000_000,
            score: 80,
            confidence: 65,
            kill_chain_phases: vec!["command-and-control".into(), "initial-access".into()],
            tlp,
            pap,
            nation_count: 3,
            sectors: vec![Sector::Energy, Sector::Health],
            stream_time: 1_800_000_500_000,
        }
    };
    let retired = indicator(
        IndicatorKind::Url,
        "http://evil.example/a'b\\c",
        Tlp::Amber,
        Pap::Amber,
    );
    let key = retired.key();
    vec![
        HuntUpdate::Published(indicator(
            IndicatorKind::Domain,
            "c2.example.net",
            Tlp::Green,
            Pap::Green,
        )),
        HuntUpdate::Retired {
            indicator: retired,
            reason: RetireReason::FalsePositive,
        },
        HuntUpdate::Removed { key },
        HuntUpdate::Sightings {
            // Who a summary goes to is its topics', not part of its record.
            to: Vec::new(),
            summary: SightingSummary {
                campaign_id: "C-000001".into(),
                indicator_id: indicator_id("[domain-name:value = 'c2.example.net']"),
                pattern: "[domain-name:value = 'c2.example.net']".into(),
                sightings: 12,
                true_positives: 3,
                false_positives: 1,
                nations_sighting: 4,
                nations_false_positive: 1,
                named_nations: vec!["FIN".into()],
                stream_time: 1_800_000_600_000,
            },
        },
        HuntUpdate::Reviewed(HuntReview {
            campaign_id: "C-000001".into(),
            value: "domain:c2.example.net".into(),
            disposition: Disposition::Published {
                indicator_id: indicator_id("[domain-name:value = 'c2.example.net']"),
                tlp: Tlp::Green,
                inform: Some("inform/cloud-providers".into()),
            },
            tally: SightingTally {
                sighted_by: vec!["EST".into(), "FIN".into()],
                true_positive_by: vec!["EST".into()],
                false_positive_by: vec!["LVA".into()],
                named: vec!["FIN".into()],
                sightings: 12,
                true_positives: 3,
                false_positives: 1,
            },
            stream_time: 1_800_000_600_000,
        }),
    ]
}

/// A review of each disposition (for the codec's round trips).
pub fn review_samples() -> Vec<HuntUpdate> {
    use rallypoint_core::event::Tlp;
    let id = indicator_id("[domain-name:value = 'c2.example.net']");
    [
        Disposition::Published {
            indicator_id: id.clone(),
            tlp: Tlp::Amber,
            inform: None,
        },
        Disposition::Retired {
            indicator_id: id,
            reason: RetireReason::Expired,
        },
        Disposition::Withheld { overridden: 2 },
        Disposition::Blocked {
            list: "block/public-dns-resolvers".into(),
        },
        Disposition::Truncated,
        Disposition::NotHunted,
        Disposition::Deferred {
            until: 1_800_003_600_000,
        },
    ]
    .into_iter()
    .map(|disposition| {
        HuntUpdate::Reviewed(HuntReview {
            campaign_id: "C-000002".into(),
            value: "domain:c2.example.net".into(),
            disposition,
            tally: SightingTally::default(),
            stream_time: 1_800_000_700_000,
        })
    })
    .collect()
}
