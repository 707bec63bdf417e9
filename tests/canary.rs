//! The canary sweep: generated streams plant unique canary strings in every field of RED and
//! AMBER_STRICT incidents (incident and request ids, titles, indicators, techniques, the
//! closing note, the ids of the events that concern them), fold them with answers to every
//! proposal, and look for each canary in every byte that leaves for an audience:
//! - every record the audience gate makes (topic, key, value and headers), in Avro and JSON;
//! - the query API's answers as the cell and as each nation see them;
//! - `/metrics` and the log lines at info and above.
//!
//! What an audience may see of an incident of nation N (see `crates/core/src/tlp.rs`):
//! - N itself: everything;
//! - the cell's decisions: everything of AMBER_STRICT; ids and the ids of N's events of RED;
//! - a helper named in a decision about the incident: its ids;
//! - the cell's view of open requests: as the cell's decisions;
//! - the threat picture and campaigns (topic and query views): everything of AMBER_STRICT but
//!   event ids, nothing of RED;
//! - any other nation, `/metrics` and logs: nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::Encoder;
use proptest::prelude::*;
use rallypoint::codec::{Codec, Format};
use rallypoint::gate;
use rallypoint::kafka::Topics;
use rallypoint::telemetry::events::Rejected;
use rallypoint::telemetry::Metrics;
use rallypoint_core::decision::{Audience, Decision};
use rallypoint_core::event::{Event, Indicator, IndicatorKind, Tlp};
use rallypoint_core::tlp::Role;
use rallypoint_core::{query, sample, CoreConfig, MemStore, Output};

const NATIONS: [&str; 5] = ["EST", "LVA", "LTU", "POL", "DEU"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Incident and request ids.
    Id,
    /// Titles, indicators, techniques, the closing note.
    Content,
    /// Ids of the events that concern the incident.
    EventId,
}

/// Whose canary a string is.
#[derive(Clone, Debug)]
struct Owner {
    incident: String,
    nation: String,
    tlp: Tlp,
    kind: Kind,
}

/// A stream with canaries planted, and who owns each canary.
struct Planted {
    events: Vec<Event>,
    canaries: BTreeMap<String, Owner>,
}

/// Length of a planted canary: `cnry`, a two-letter tag, six digits and `q`.
const PLANTED: usize = 13;

fn canary(n: &mut usize, tag: &str) -> String {
    *n += 1;
    format!("cnry{tag}{:06}q", *n)
}

type Renamed = BTreeMap<String, (String, String, Tlp)>;

/// Records `text` as a canary of the incident first reported as `id`.
fn mark(renamed: &Renamed, c: &mut BTreeMap<String, Owner>, id: &str, text: &str, kind: Kind) {
    let (incident, nation, tlp) = &renamed[id];
    // What the sweep looks for (see [`tokens`]): the planted part of a field, or the event id.
    let token = text.find("cnry").map_or(text, |i| &text[i..i + PLANTED]);
    c.insert(
        token.to_owned(),
        Owner {
            incident: incident.clone(),
            nation: nation.clone(),
            tlp: *tlp,
            kind,
        },
    );
}

/// The incident a later event is about: a request, an update or a closure.
fn incident_of(e: &mut Event) -> Option<&mut String> {
    match e {
        Event::AssistanceRequested(r) => Some(&mut r.incident_id),
        Event::IncidentUpdated(u) => Some(&mut u.incident_id),
        Event::IncidentClosed(c) => Some(&mut c.incident_id),
        _ => None,
    }
}

/// Renames every restricted incident and its request to canary ids, and plants canaries in
/// each of its text fields and indicators.
fn plant(events: Vec<Event>) -> Planted {
    let mut n = 0;
    let mut canaries = BTreeMap::new();
    let mut renamed: Renamed = BTreeMap::new();
    let mut out = Vec::with_capacity(events.len());
    for mut e in events {
        if let Event::IncidentReported(r) = &mut e {
            if r.tlp >= Tlp::AmberStrict {
                // Half of them sort before every other incident id, half after: a campaign
                // then often has a restricted incident as its smallest member.
                let first = if n % 2 == 0 { "!" } else { "~" };
                let id = format!("I-{first}{}", canary(&mut n, "id"));
                renamed.insert(
                    r.incident_id.clone(),
                    (id.clone(), r.envelope.nation.clone(), r.tlp),
                );
                let old = std::mem::replace(&mut r.incident_id, id.clone());
                r.title = format!("title {}", canary(&mut n, "ti"));
                let technique = format!("T1{}", canary(&mut n, "te"));
                r.techniques.push(technique.clone());
                let domain = format!("{}.example", canary(&mut n, "do"));
                r.indicators
                    .push(Indicator::new(IndicatorKind::Domain, domain.clone()));
                // Half of them ask for their indicators to be shared with the alliance, which
                // their marking overrides.
                if n % 2 == 0 {
                    r.hunt_release = rallypoint_core::event::HuntRelease::Alliance;
                }
                for (text, kind) in [
                    (id, Kind::Id),
                    (r.title.clone(), Kind::Content),
                    (technique, Kind::Content),
                    (domain, Kind::Content),
                    (r.envelope.event_id.clone(), Kind::EventId),
                ] {
                    mark(&renamed, &mut canaries, &old, &text, kind);
                }
            }
        } else if let Some(id) = incident_of(&mut e) {
            // A later event about a restricted incident: renamed, its id a canary.
            if let Some((new_id, _, _)) = renamed.get(id.as_str()) {
                let old = std::mem::replace(id, new_id.clone());
                let event_id = e.envelope().event_id.clone();
                mark(&renamed, &mut canaries, &old, &event_id, Kind::EventId);
                let (text, kind) = match &mut e {
                    Event::AssistanceRequested(r) => {
                        r.request_id = format!("R-{}", canary(&mut n, "rq"));
                        (r.request_id.clone(), Kind::Id)
                    }
                    Event::IncidentUpdated(u) => {
                        let domain = format!("{}.example", canary(&mut n, "up"));
                        u.indicators
                            .push(Indicator::new(IndicatorKind::Domain, domain.clone()));
                        (domain, Kind::Content)
                    }
                    Event::IncidentClosed(c) => {
                        c.resolution = format!("resolved {}", canary(&mut n, "re"));
                        (c.resolution.clone(), Kind::Content)
                    }
                    _ => unreachable!("incident_of names these three"),
                };
                mark(&renamed, &mut canaries, &old, &text, kind);
            }
        }
        let sighting = sighting_after(&e, n + out.len());
        out.push(e);
        out.extend(sighting);
    }
    Planted {
        events: out,
        canaries,
    }
}

/// A sighting, by another nation, of the first indicator of a shared (CLEAR to AMBER) report:
/// so that sightings summaries reach nations and reviews reach the cell in the sweep. Every
/// third one may name its nation, every fifth is a false positive.
fn sighting_after(e: &Event, k: usize) -> Option<Event> {
    let Event::IncidentReported(r) = e else {
        return None;
    };
    let indicator = r.indicators.first().filter(|_| r.tlp < Tlp::AmberStrict)?;
    let at = NATIONS.iter().position(|n| *n == r.envelope.nation)?;
    let mut env = r.envelope.clone();
    env.nation = NATIONS[(at + 1 + k % 3) % NATIONS.len()].to_owned();
    env.event_id = format!("{}-sighted", r.envelope.event_id);
    let kind = if k.is_multiple_of(5) {
        rallypoint_core::event::SightingKind::FalsePositive
    } else {
        rallypoint_core::event::SightingKind::Sighting
    };
    let id = format!("S-{k}");
    Some(sample::sighted_with(
        env,
        &id,
        indicator.clone(),
        kind,
        |s| {
            (s.tlp, s.anonymous) = if k.is_multiple_of(3) {
                (Tlp::Green, false)
            } else {
                (Tlp::Amber, true)
            };
        },
    ))
}

/// Who reads a channel.
#[derive(Clone, Debug)]
enum Reader {
    /// A nation's decision topic; `helper_of` is the incident a decision names it helper of.
    Nation {
        nation: String,
        helper_of: Option<String>,
    },
    CellDecisions,
    /// The threat picture and campaigns, on their topic and in the query API.
    Picture,
    /// A member nation's hunt topic: the indicator records, the same for all, and the
    /// sightings summaries of its campaigns.
    Hunt,
    /// `/metrics` and logs.
    Nobody,
}

fn entitled(reader: &Reader, o: &Owner) -> bool {
    match reader {
        Reader::Nation { nation, helper_of } => {
            *nation == o.nation
                || (o.kind == Kind::Id && helper_of.as_deref() == Some(o.incident.as_str()))
        }
        Reader::CellDecisions => o.tlp == Tlp::AmberStrict || o.kind != Kind::Content,
        Reader::Picture => o.tlp == Tlp::AmberStrict && o.kind != Kind::EventId,
        // AMBER_STRICT and RED incidents never release a value to the hunt, and nothing
        // else of theirs belongs there.
        Reader::Hunt | Reader::Nobody => false,
    }
}

/// The first canary in `bytes` that `reader` may not see.
fn leak<'a>(
    canaries: &'a BTreeMap<String, Owner>,
    reader: &Reader,
    bytes: &[u8],
) -> Option<(&'a String, &'a Owner)> {
    tokens(bytes)
        .filter_map(|t| std::str::from_utf8(t).ok())
        .filter_map(|t| canaries.get_key_value(t))
        .find(|(_, o)| !entitled(reader, o))
}

/// Every place in `bytes` that may hold a canary: `cnry` and the 9 bytes after it (every
/// planted string has that shape), and each UUID-shaped run of 36 bytes (event ids).
fn tokens(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    const UUID: usize = 36;
    (0..bytes.len()).filter_map(move |i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"cnry") && rest.len() >= PLANTED {
            return Some(&rest[..PLANTED]);
        }
        let uuid = rest.len() >= UUID
            && [8, 13, 18, 23].iter().all(|&d| rest[d] == b'-')
            && (i == 0 || !bytes[i - 1].is_ascii_hexdigit());
        uuid.then(|| &rest[..UUID])
    })
}

fn record_bytes(r: &gate::OutRecord) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(r.topic.as_bytes());
    b.push(0);
    b.extend_from_slice(r.key.as_bytes());
    b.push(0);
    b.extend_from_slice(r.value.as_deref().unwrap_or_default());
    for (k, v) in &r.headers {
        b.push(0);
        b.extend_from_slice(k.as_bytes());
        b.push(0);
        b.extend_from_slice(v.as_deref().unwrap_or_default().as_bytes());
    }
    b
}

/// What the log lines at info and above said, from every scenario of this process.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Fixture {
    codec: Codec,
    topics: Topics,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        codec: Codec::new().expect("the schemas compile"),
        topics: Topics::new(&rallypoint::config::Config::load(None).expect("defaults load")),
    })
}

/// Runs one scenario and returns the first leak, described.
fn sweep(seed: u64, n: usize, answers: &[u8], format: Format) -> Result<usize, String> {
    let f = fixture();
    let logs = logs();
    let planted = plant(sample::stream(&NATIONS, n, seed));
    let canaries = &planted.canaries;
    let config = CoreConfig {
        acceptance_timeout_ms: 20_000,
        ..CoreConfig::default()
    };
    let mut store = MemStore::new();
    let (_, outputs) = sample::fold_with_answers(&mut store, &config, planted.events, |k| {
        answers.get(k % answers.len()).copied().unwrap_or(0)
    })
    .map_err(|e| e.to_string())?;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let mut checked = 0;
    for o in &outputs {
        let reader = match o {
            Output::Decision(r) => match &r.audience {
                Audience::Coalition => Reader::CellDecisions,
                Audience::Nation(nation) => Reader::Nation {
                    nation: nation.clone(),
                    helper_of: (r.decision.provider() == Some(nation.as_str()))
                        .then(|| r.decision.subject().incident_id.clone()),
                },
            },
            Output::Picture(_) => Reader::Picture,
            // The cell's reviews of values: its view of the campaigns, as the picture's.
            Output::Hunt(
                rallypoint_core::hunt::HuntUpdate::Reviewed(_)
                | rallypoint_core::hunt::HuntUpdate::ReviewRemoved { .. },
            ) => Reader::Picture,
            Output::Hunt(_) => Reader::Hunt,
            Output::Rejected(r) => {
                metrics.tell(Rejected {
                    stage: "coordinator",
                    rejection: r,
                    topic: "rrc.internal.journal",
                    partition: 0,
                    offset: 0,
                });
                continue;
            }
        };
        let records = gate::record(o, &f.codec, format, &f.topics, Some("1800000000000"));
        if records.is_empty() {
            return Err(format!("no record from {}", describe(o)));
        }
        for record in &records {
            if let Some((c, owner)) = leak(canaries, &reader, &record_bytes(record)) {
                return Err(format!(
                    "{c} ({owner:?}) reached {reader:?} in {record:?} from {}",
                    describe(o)
                ));
            }
            checked += 1;
        }
    }
    metrics.observe_mission(&store).map_err(|e| e.to_string())?;
    let mut views: Vec<(Reader, Vec<u8>)> = vec![
        (
            Reader::Picture,
            json(&query::active_campaigns(&store).unwrap()),
        ),
        (
            Reader::CellDecisions,
            json(&query::open_requests(&store, None, Role::Cell).unwrap()),
        ),
        (
            Reader::Picture,
            json(&query::scope_picture(&store, "alliance", 10).unwrap()),
        ),
    ];
    for nation in NATIONS {
        let scope = format!("nation:{nation}");
        views.push((
            Reader::Picture,
            json(&query::scope_picture(&store, &scope, 10).unwrap()),
        ));
        views.push((
            Reader::Nation {
                nation: nation.into(),
                helper_of: None,
            },
            json(&query::open_requests(&store, Some(nation), Role::Requester).unwrap()),
        ));
    }
    let mut text = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .map_err(|e| e.to_string())?;
    views.push((Reader::Nobody, text));
    views.push((Reader::Nobody, std::mem::take(&mut *logs.lock().unwrap())));
    for (reader, bytes) in views {
        if let Some((c, owner)) = leak(canaries, &reader, &bytes) {
            return Err(format!(
                "{c} ({owner:?}) reached {reader:?}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
    }
    Ok(checked)
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn describe(o: &Output) -> String {
    match o {
        Output::Decision(r) => format!("{} to {:?}", r.decision.type_name(), r.audience),
        Output::Picture(p) => format!("{} {}", p.type_name(), p.key()),
        Output::Hunt(h) => format!("{:?} {}", h.type_name(), h.key()),
        Output::Rejected(r) => format!("{r:?}"),
    }
}

proptest! {
    // Ten thousand generated scenarios of up to 120 events each, with their answers.
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn no_canary_reaches_an_audience_not_entitled_to_it(
        seed in any::<u64>(),
        n in 20usize..120,
        answers in proptest::collection::vec(any::<u8>(), 1..8),
        json_out in any::<bool>(),
    ) {
        let format = if json_out { Format::Json } else { Format::Avro };
        if let Err(leak) = sweep(seed, n, &answers, format) {
            prop_assert!(false, "{}", leak);
        }
    }
}

/// The sweep can fail: a canary planted where an audience may not see it is found.
#[test]
fn the_sweep_finds_a_canary_where_it_does_not_belong() {
    let mut canaries = BTreeMap::new();
    canaries.insert(
        "cnryti000001q".to_owned(),
        Owner {
            incident: "I-x".into(),
            nation: "EST".into(),
            tlp: Tlp::Red,
            kind: Kind::Content,
        },
    );
    let record = b"rrc.out.coalition.decisions\0A-1\0... title cnryti000001q ...";
    assert_eq!(tokens(record).count(), 1);
    assert!(leak(&canaries, &Reader::CellDecisions, record).is_some());
    assert!(leak(&canaries, &Reader::Picture, record).is_some());
    let est = Reader::Nation {
        nation: "EST".into(),
        helper_of: None,
    };
    assert!(leak(&canaries, &est, record).is_none(), "the requester may");
    let helper = Reader::Nation {
        nation: "LVA".into(),
        helper_of: Some("I-x".into()),
    };
    assert!(leak(&canaries, &helper, record).is_some(), "not the helper");
}

/// The generated streams reach the cases the sweep is for: restricted incidents in
/// campaigns, proposals to helpers for them, and decisions caused by another nation's event.
#[test]
fn the_scenarios_reach_restricted_campaigns_and_helpers() {
    let (mut red_campaign_members, mut helper_decisions, mut derived_ids) = (0, 0, 0);
    let (mut hunt_published, mut summaries, mut reviews) = (0, 0, 0);
    for seed in 0..200 {
        let planted = plant(sample::stream(&NATIONS, 120, seed));
        let red: BTreeSet<&str> = planted
            .canaries
            .values()
            .filter(|o| o.tlp == Tlp::Red)
            .map(|o| o.incident.as_str())
            .collect();
        let config = CoreConfig {
            acceptance_timeout_ms: 20_000,
            ..CoreConfig::default()
        };
        let mut store = MemStore::new();
        let (_, outputs) =
            sample::fold_with_answers(&mut store, &config, planted.events, |k| (k % 4) as u8)
                .unwrap();
        for o in &outputs {
            match o {
                Output::Picture(rallypoint_core::picture::PictureUpdate::CampaignUpdated(c))
                | Output::Picture(rallypoint_core::picture::PictureUpdate::CampaignDetected(c)) => {
                    red_campaign_members += c.red_incidents;
                    assert!(c.campaign_id.starts_with("C-"), "{c:?}");
                }
                Output::Decision(r) => {
                    let s = r.decision.subject();
                    if let Audience::Nation(n) = &r.audience {
                        if red.contains(s.incident_id.as_str()) && *n != s.requester_nation {
                            helper_decisions += 1;
                        }
                        let h = r.decision.header();
                        if !h.decision_id.starts_with(&h.cause_event_id) {
                            panic!("{h:?}");
                        }
                        if matches!(r.decision, Decision::AssignmentProposed(_))
                            && !h.cause_event_id.is_empty()
                            && h.cause_event_id.as_bytes()[14] == b'8'
                        {
                            derived_ids += 1;
                        }
                    }
                }
                Output::Hunt(rallypoint_core::hunt::HuntUpdate::Published(_)) => {
                    hunt_published += 1
                }
                Output::Hunt(rallypoint_core::hunt::HuntUpdate::Sightings { .. }) => summaries += 1,
                Output::Hunt(rallypoint_core::hunt::HuntUpdate::Reviewed(_)) => reviews += 1,
                _ => {}
            }
        }
    }
    assert!(
        red_campaign_members > 0,
        "no RED incident joined a campaign"
    );
    assert!(hunt_published > 0, "no hunt indicator was published");
    assert!(summaries > 0, "no nation heard of sightings");
    assert!(reviews > 0, "the cell reviewed no value");
    assert!(helper_decisions > 0, "no helper heard of a RED incident");
    assert!(derived_ids > 0, "no nation saw a derived cause id");
}
