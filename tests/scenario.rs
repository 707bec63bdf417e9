//! A realistic crisis on the real broker: a severe attack on Estonia's energy sector spills
//! over to Lithuania while Latvia has an incident of its own. Three requests compete for ICS/OT
//! experts offered by five nations; one provider declines, one lets its deadline pass, one
//! withdraws its team after accepting, and new capacity arrives. Every decision is checked, in
//! every nation's view and the coordination cell's, with what each may see under TLP.

use rallypoint_testkit as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Harness, Record};
use rallypoint::codec::Codec;
use rallypoint_core::decision::{CancelReason, Decision};
use rallypoint_core::event::{Capability, Event, Priority, Sector, Tlp};
use rallypoint_core::sample::{self, Clock};

const ICS: Capability = Capability::IcsOt;
const IR: Capability = Capability::IncidentResponse;
const NATIONS: [&str; 9] = [
    "EST", "LTU", "LVA", "DEU", "FRA", "POL", "FIN", "NLD", "ITA",
];
const WAIT: Duration = Duration::from_secs(60);

/// One decision as a nation or the cell sees it, order aside.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    kind: &'static str,
    request: String,
    provider: String,
    units: i32,
    reason: String,
}

fn seen(d: &Decision) -> Seen {
    let (units, reason) = match d {
        Decision::AssignmentProposed(p) => (p.units, String::new()),
        Decision::AssignmentConfirmed(c) => (c.units, String::new()),
        Decision::AssignmentCancelled(c) => (c.units, format!("{:?}", c.reason)),
        Decision::AssistanceUnmet(u) => (u.units_missing, String::new()),
    };
    Seen {
        kind: d.type_name(),
        request: d.subject().request_id.clone(),
        provider: d.provider().unwrap_or("-").to_owned(),
        units,
        reason,
    }
}

fn s(kind: &'static str, request: &str, provider: &str, units: i32, reason: &str) -> Seen {
    Seen {
        kind,
        request: request.into(),
        provider: provider.into(),
        units,
        reason: reason.into(),
    }
}

fn decode(codec: &Codec, records: &[Record]) -> Vec<Decision> {
    records
        .iter()
        .map(|r| codec.decode_decision(&r.value).expect("a decision"))
        .collect()
}

struct Crisis {
    h: Harness,
    clock: Clock,
    /// Every decision the cell should have seen so far.
    expected: Vec<Seen>,
}

impl Crisis {
    fn send(
        &mut self,
        nation: &str,
        build: impl FnOnce(rallypoint_core::event::Envelope) -> Event,
    ) {
        let e = build(self.clock.envelope(nation));
        self.h.send(&e);
    }

    /// Waits until the cell has every expected decision, then checks they are exactly those.
    fn expect(&mut self, step: &str, more: &[Seen]) -> Vec<Decision> {
        self.expected.extend_from_slice(more);
        let got = decode(
            &self.h.codec,
            &self
                .h
                .read("rrc.out.coalition.decisions", self.expected.len(), WAIT),
        );
        let mut have: Vec<Seen> = got.iter().map(seen).collect();
        let mut want = self.expected.clone();
        have.sort();
        want.sort();
        assert_eq!(have, want, "after {step}\n{}", self.h.log());
        got
    }

    fn assignment(&self, got: &[Decision], request: &str, provider: &str) -> String {
        got.iter()
            .find(|d| {
                d.type_name() == "AssignmentProposed"
                    && d.subject().request_id == request
                    && d.provider() == Some(provider)
            })
            .map(|d| d.key().to_owned())
            .unwrap_or_else(|| panic!("no proposal of {provider} for {request}"))
    }

    fn offer(&mut self, nation: &str, id: &str, cap: Capability, units: i32, max_tlp: Tlp) {
        self.send(nation, |env| {
            let mut e = sample::offer(env, id, cap, units);
            if let Event::AssetOffered(o) = &mut e {
                o.max_tlp = max_tlp;
                o.sector_expertise = vec![Sector::Energy];
            }
            e
        });
    }
}

#[test]
fn an_energy_crisis_with_three_competing_requests_and_five_offering_nations() {
    let mut h = Harness::with_sections(
        "crisis",
        &NATIONS,
        "",
        "[coordinator]\nacceptance_timeout = \"60s\"\n",
    );
    h.start();
    let mut c = Crisis {
        h,
        clock: Clock::new(rallypoint::kafka::now_ms() - 600_000, 10),
        expected: Vec::new(),
    };

    // Four nations offer teams before the attack.
    c.offer("DEU", "O-DEU", ICS, 1, Tlp::Amber);
    c.offer("FRA", "O-FRA", ICS, 1, Tlp::Green);
    c.offer("POL", "O-POL", ICS, 1, Tlp::Red);
    c.offer("FIN", "O-FIN", IR, 1, Tlp::Amber);
    assert_eq!(c.h.read("rrc.internal.journal", 4, WAIT).len(), 4);

    // Estonia's grid operator is hit: severe, AMBER, essential entity.
    let mut clock = c.clock.clone();
    c.h.ask_for_help(
        &mut clock,
        ("EST", "I-EST", "R-EST"),
        (Tlp::Amber, Priority::Severe),
        &[(ICS, 2), (IR, 1)],
    );
    c.clock = clock;
    // FRA's team is cleared only up to GREEN: DEU and POL take the ICS need, FIN the IR one.
    let got = c.expect(
        "Estonia's request",
        &[
            s("AssignmentProposed", "R-EST", "DEU", 1, ""),
            s("AssignmentProposed", "R-EST", "POL", 1, ""),
            s("AssignmentProposed", "R-EST", "FIN", 1, ""),
        ],
    );
    let est_deu = c.assignment(&got, "R-EST", "DEU");
    let est_pol = c.assignment(&got, "R-EST", "POL");
    let est_fin = c.assignment(&got, "R-EST", "FIN");

    // The spill-over reaches Lithuania (GREEN): FRA can help there.
    let mut clock = c.clock.clone();
    c.h.ask_for_help(
        &mut clock,
        ("LTU", "I-LTU", "R-LTU"),
        (Tlp::Green, Priority::High),
        &[(ICS, 1)],
    );
    c.clock = clock;
    let got = c.expect(
        "Lithuania's request",
        &[s("AssignmentProposed", "R-LTU", "FRA", 1, "")],
    );
    let ltu_fra = c.assignment(&got, "R-LTU", "FRA");

    // Latvia (AMBER_STRICT, medium) asks too: nothing is left.
    let mut clock = c.clock.clone();
    c.h.ask_for_help(
        &mut clock,
        ("LVA", "I-LVA", "R-LVA"),
        (Tlp::AmberStrict, Priority::Medium),
        &[(ICS, 1)],
    );
    c.clock = clock;
    c.expect(
        "Latvia's request",
        &[s("AssistanceUnmet", "R-LVA", "-", 1, "")],
    );

    // DEU and FIN accept; POL declines Estonia: its team goes to Latvia, and Estonia misses
    // one unit (POL is not proposed to Estonia again).
    c.send("DEU", |env| sample::accepted(env, &est_deu));
    c.send("FIN", |env| sample::accepted(env, &est_fin));
    c.expect(
        "two acceptances",
        &[
            s("AssignmentConfirmed", "R-EST", "DEU", 1, ""),
            s("AssignmentConfirmed", "R-EST", "FIN", 1, ""),
        ],
    );
    c.send("POL", |env| sample::declined(env, &est_pol));
    let got = c.expect(
        "POL's decline",
        &[
            s("AssignmentCancelled", "R-EST", "POL", 1, "Declined"),
            s("AssistanceUnmet", "R-EST", "-", 1, ""),
            s("AssignmentProposed", "R-LVA", "POL", 1, ""),
        ],
    );
    let lva_pol = c.assignment(&got, "R-LVA", "POL");
    c.send("POL", |env| sample::accepted(env, &lva_pol));
    c.expect(
        "POL helps Latvia",
        &[s("AssignmentConfirmed", "R-LVA", "POL", 1, "")],
    );

    // Germany recalls its team: Estonia now misses both ICS units.
    c.send("DEU", |env| sample::withdrawn(env, "O-DEU"));
    c.expect(
        "DEU's withdrawal",
        &[
            s("AssignmentCancelled", "R-EST", "DEU", 1, "OfferWithdrawn"),
            s("AssistanceUnmet", "R-EST", "-", 2, ""),
        ],
    );

    // The Netherlands offers two ICS experts: Estonia, best ranked, gets both.
    c.offer("NLD", "O-NLD", ICS, 2, Tlp::Amber);
    let got = c.expect(
        "NLD's offer",
        &[s("AssignmentProposed", "R-EST", "NLD", 2, "")],
    );
    let est_nld = c.assignment(&got, "R-EST", "NLD");
    c.send("NLD", |env| sample::accepted(env, &est_nld));
    c.expect(
        "NLD accepts",
        &[s("AssignmentConfirmed", "R-EST", "NLD", 2, "")],
    );

    // Two minutes later in stream time FIN reports its work done; FRA never answered, so its
    // proposal to Lithuania lapses, and nothing else can serve Lithuania.
    c.clock.now += 120_000;
    c.send("FIN", |env| sample::completed(env, &est_fin));
    let all = c.expect(
        "FRA's silence",
        &[
            s("AssignmentCancelled", "R-LTU", "FRA", 1, "TimedOut"),
            s("AssistanceUnmet", "R-LTU", "-", 1, ""),
        ],
    );
    let timed_out: Vec<&str> = all
        .iter()
        .filter_map(|d| match d {
            Decision::AssignmentCancelled(x) if x.reason == CancelReason::TimedOut => {
                Some(x.assignment_id.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(timed_out, vec![ltu_fra.as_str()]);

    check_every_view(&c);
}

/// Each nation's topic holds exactly the decisions that concern it (it asked, or it helps),
/// redacted to what the incident's TLP lets it see; a nation not involved hears nothing.
fn check_every_view(c: &Crisis) {
    let tlp_of: BTreeMap<&str, Tlp> = [
        ("R-EST", Tlp::Amber),
        ("R-LTU", Tlp::Green),
        ("R-LVA", Tlp::AmberStrict),
    ]
    .into();
    let requester_of = |r: &str| r.trim_start_matches("R-").to_owned();
    for nation in NATIONS {
        let mut want: Vec<Seen> = c
            .expected
            .iter()
            .filter(|d| requester_of(&d.request) == nation || d.provider == nation)
            .cloned()
            .collect();
        want.sort();
        let topic = format!("rrc.out.{nation}.decisions");
        let got = decode(
            &c.h.codec,
            &c.h.read(&topic, want.len() + 1, Duration::from_secs(2)),
        );
        let mut have: Vec<Seen> = got.iter().map(seen).collect();
        have.sort();
        assert_eq!(have, want, "{nation}'s view");
        for d in &got {
            let subject = d.subject();
            let requester = subject.requester_nation == nation;
            match (requester, tlp_of[subject.request_id.as_str()]) {
                (true, _) | (false, Tlp::Green | Tlp::Amber) => {
                    assert!(subject.details.is_some(), "{nation}: {d:?}");
                }
                (false, Tlp::AmberStrict) => {
                    assert!(
                        subject.details.is_none(),
                        "{nation} sees AMBER_STRICT details"
                    );
                    assert!(subject.sector.is_some() && subject.priority.is_some());
                    if let Decision::AssignmentProposed(p) = d {
                        assert!(p.rationale.is_none(), "{nation} sees the rationale");
                    }
                }
                (false, other) => panic!("unexpected TLP {other:?}"),
            }
        }
    }
    assert!(c
        .h
        .read("rrc.out.ITA.decisions", 1, Duration::from_secs(2))
        .is_empty());
}
