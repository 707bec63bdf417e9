//! `rallypoint simulate`: a feed of several nations. Each nation offers teams, reports incidents
//! with real ATT&CK techniques and exploited CVEs (from `data/`), asks for help, closes
//! incidents; a responder answers the proposals addressed to each nation, accepting most and
//! declining some, as national offer desks would.
//!
//! Each nation's SIEM reads its hunt topic (`rrc.out.<NATION>.hunt`) while the feed runs and
//! answers each newly published indicator as [`siem_answer`] decides from the seed: most it
//! ignores, some it sights (SIGHTING or TRUE_POSITIVE), a few it reports as FALSE_POSITIVE, on
//! its sightings topic with the indicator's id as `hunt_id`. So that campaigns have something
//! to hunt, incidents also report a domain under [`SIM_DOMAIN`] from a pool that slides as
//! the feed goes on (a value is shared by a few dozen incidents at most, below the fan-out
//! cap), some are CLEAR or GREEN, and some AMBER ones consent to ALLIANCE release.
//!
//! Like a real desk, a nation keeps its open work bounded however long the feed runs: past
//! [`OPEN_INCIDENTS`] open incidents it closes its oldest before anything else, and past
//! [`LIVE_OFFERS`] live offers it withdraws its oldest. So a long feed grows the history (closed
//! incidents, answered requests, event ids, indicators) while the open work stays about the
//! same, as an alliance's does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rallypoint_core::decision::Decision;
use rallypoint_core::event::*;
use rallypoint_core::hunt::{self, HuntIndicator, HuntUpdate};
use rallypoint_core::sample;
use rand::prelude::*;
use rand::rngs::StdRng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::codec;
use crate::config::Config;
use crate::kafka::{now_ms, Topics};
use crate::registry::Schemas;

/// Open incidents a nation holds at most before it closes its oldest.
pub const OPEN_INCIDENTS: usize = 40;
/// Live offers a nation holds at most before it withdraws its oldest.
pub const LIVE_OFFERS: usize = 16;

/// The registrable domain of the simulated adversaries' infrastructure: under a reserved
/// top-level domain (RFC 2606), so never a real one, and on no warninglist, so it is hunted.
pub const SIM_DOMAIN: &str = "kestrel-relay.example";
/// Incidents per step of the domain pool: every this many incidents, the pool moves on by one.
const DOMAIN_STEP: u64 = 24;
/// Domains in the pool at a time: an incident reports one of them.
const DOMAIN_WINDOW: u64 = 8;

/// Per thousand newly published indicators, how many a nation's SIEM sights, confirms as a
/// true positive, and reports as a false positive; it ignores the rest.
pub const SIGHTING_PER_MILLE: u32 = 150;
pub const TRUE_POSITIVE_PER_MILLE: u32 = 80;
pub const FALSE_POSITIVE_PER_MILLE: u32 = 25;

const TECHNIQUES: &str = include_str!("../data/attack-techniques.csv");
const KEV: &str = include_str!("../data/cisa-kev.csv");

#[derive(Clone, Debug)]
pub struct Options {
    /// Events per second (0: as fast as the producer takes them).
    pub rate: f64,
    /// Stop after this many feed events (responses not counted).
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub nations: Vec<String>,
    /// Share of records sent as JSON rather than Avro.
    pub json_share: f64,
    pub accept_share: f64,
    pub seed: u64,
    pub progress: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub events: u64,
    /// Events the offer desks sent: answers to proposals and completions.
    pub responses: u64,
    /// What the nations' SIEMs read on the hunt topics and sent back.
    pub hunting: Hunting,
    pub seconds: f64,
}

/// The hunt activity the simulated SIEMs saw and answered while the feed ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hunting {
    /// Indicators newly published on the hunt topics (every member's topic receives the same
    /// records; counted on the first simulated nation's).
    pub published: u64,
    /// Indicators retired, by reason (`RetireReason::as_str`), counted likewise.
    pub retired: BTreeMap<&'static str, u64>,
    /// SIGHTING and TRUE_POSITIVE sightings the SIEMs sent.
    pub sightings: u64,
    /// FALSE_POSITIVE reports the SIEMs sent.
    pub false_positives: u64,
    /// Sightings summaries the campaigns' nations received (on every simulated nation's topic).
    pub summaries: u64,
    /// Hunt records skipped: undecodable, or a pattern that gave no value back.
    pub skipped: u64,
}

impl Hunting {
    pub fn retired_total(&self) -> u64 {
        self.retired.values().sum()
    }

    /// One line for an exercise director: what the hunt topics carried and what the SIEMs
    /// answered.
    pub fn describe(&self) -> String {
        let reasons: Vec<String> = self
            .retired
            .iter()
            .map(|(reason, n)| format!("{n} {}", reason.to_ascii_lowercase().replace('_', " ")))
            .collect();
        let retired = if reasons.is_empty() {
            "0 retired".to_owned()
        } else {
            format!("{} retired ({})", self.retired_total(), reasons.join(", "))
        };
        let mut line = format!(
            "hunting: {} indicators published to every nation's hunt topic, {retired}; \
             the nations' SIEMs sent back {} sightings and {} false positives, and the \
             campaigns' nations received {} sightings summaries",
            self.published, self.sightings, self.false_positives, self.summaries
        );
        if self.skipped > 0 {
            line.push_str(&format!(" ({} hunt records skipped)", self.skipped));
        }
        line
    }
}

struct Feed {
    rng: StdRng,
    nations: Vec<String>,
    techniques: Vec<String>,
    cves: Vec<String>,
    open: BTreeMap<String, Vec<String>>,
    offers: BTreeMap<String, Vec<String>>,
    seq: u64,
    /// Incidents reported so far: where the domain pool is.
    incidents: u64,
    run: String,
}

impl Feed {
    fn new(nations: Vec<String>, seed: u64) -> Self {
        let techniques = column(TECHNIQUES)
            .into_iter()
            .filter(|t| rallypoint_core::validate::is_technique(t))
            .collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            nations,
            techniques,
            cves: column(KEV),
            open: BTreeMap::new(),
            offers: BTreeMap::new(),
            seq: 0,
            incidents: 0,
            run: format!("{:x}", now_ms() % 0xff_ffff),
        }
    }

    fn envelope(&mut self, nation: &str) -> Envelope {
        self.seq += 1;
        let now = now_ms();
        Envelope {
            event_id: uuid::Uuid::new_v4().to_string(),
            occurred_at: now - self.rng.random_range(60_000..3_600_000),
            reported_at: now,
            nation: nation.to_owned(),
            schema_version: 2,
        }
    }

    fn id(&mut self, kind: &str, nation: &str) -> String {
        format!("{nation}-{kind}-{}-{}", self.run, self.seq + 1)
    }

    fn nation(&mut self) -> String {
        self.nations
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_default()
    }

    fn offer(&mut self, nation: &str) -> Event {
        let id = self.id("O", nation);
        let env = self.envelope(nation);
        let capability = *Capability::ALL
            .choose(&mut self.rng)
            .unwrap_or(&Capability::IncidentResponse);
        let units = self.rng.random_range(2..8);
        let e = sample::offer_with(env, &id, capability, units, |o| {
            o.team = format!("{nation} {} team {}", capability.as_str(), self.seq % 10);
            o.max_tlp = *[Tlp::Amber, Tlp::AmberStrict, Tlp::Red]
                .choose(&mut self.rng)
                .unwrap_or(&Tlp::Amber);
            o.response_time_minutes = self.rng.random_range(30..720);
        });
        self.offers.entry(nation.to_owned()).or_default().push(id);
        e
    }

    /// An incident and, right after it on the same topic, its request for help.
    fn incident(&mut self, nation: &str) -> [Event; 2] {
        let id = self.id("I", nation);
        let env = self.envelope(nation);
        let priority = *[
            Priority::Medium,
            Priority::High,
            Priority::High,
            Priority::Severe,
            Priority::Emergency,
        ]
        .choose(&mut self.rng)
        .unwrap_or(&Priority::High);
        let tlp = *[
            Tlp::Clear,
            Tlp::Green,
            Tlp::Amber,
            Tlp::Amber,
            Tlp::AmberStrict,
            Tlp::Red,
        ]
        .choose(&mut self.rng)
        .unwrap_or(&Tlp::Amber);
        let domain =
            sim_domain(self.incidents / DOMAIN_STEP + self.rng.random_range(0..DOMAIN_WINDOW));
        self.incidents += 1;
        let incident = sample::incident_with(env, &id, tlp, priority, |i| {
            i.sector = *[
                Sector::Energy,
                Sector::Health,
                Sector::Transport,
                Sector::Defence,
                Sector::DigitalInfrastructure,
                Sector::PublicAdministration,
                Sector::Banking,
            ]
            .choose(&mut self.rng)
            .unwrap_or(&Sector::Energy);
            i.techniques = self
                .techniques
                .choose_multiple(&mut self.rng, 3)
                .cloned()
                .collect();
            let cve = self.cves.choose(&mut self.rng).cloned().unwrap_or_default();
            i.title = format!(
                "Exploitation of {cve} against {} operator",
                i.sector.as_str().replace('_', " ")
            );
            i.indicators = vec![
                Indicator::new(IndicatorKind::Cve, cve),
                Indicator::new(
                    IndicatorKind::Ipv4,
                    format!("198.51.100.{}", self.rng.random_range(1..255)),
                ),
                Indicator::new(IndicatorKind::Domain, domain),
            ];
            i.essential_entity = self.rng.random_bool(0.6);
            i.cross_border = self.rng.random_bool(0.3);
            i.pap = *[
                Pap::Clear,
                Pap::Green,
                Pap::Green,
                Pap::Amber,
                Pap::Amber,
                Pap::Red,
            ]
            .choose(&mut self.rng)
            .unwrap_or(&Pap::Amber);
            // Half the AMBER reports consent to the alliance's hunt; a few reports of any
            // marking refuse any release.
            i.hunt_release = if self.rng.random_bool(0.05) {
                HuntRelease::None
            } else if tlp == Tlp::Amber && self.rng.random_bool(0.5) {
                HuntRelease::Alliance
            } else {
                HuntRelease::Default
            };
        });
        let request_id = self.id("R", nation);
        let env = self.envelope(nation);
        let mut caps: Vec<Capability> = Capability::ALL
            .choose_multiple(&mut self.rng, 2)
            .cloned()
            .collect();
        caps.truncate(self.rng.random_range(1..=2));
        let needs: Vec<(Capability, i32)> = caps
            .into_iter()
            .map(|c| (c, 1 + (self.seq % 3) as i32))
            .collect();
        let request = sample::request(env, &request_id, &id, &needs);
        self.open.entry(nation.to_owned()).or_default().push(id);
        [incident, request]
    }

    fn close(&mut self, nation: &str) -> Option<Event> {
        let list = self.open.get_mut(nation)?;
        if list.len() < 4 {
            return None;
        }
        let id = list.remove(0);
        let env = self.envelope(nation);
        Some(sample::closed(env, &id))
    }

    fn withdraw(&mut self, nation: &str) -> Option<Event> {
        let list = self.offers.get_mut(nation)?;
        if list.len() < 3 {
            return None;
        }
        let id = list.remove(0);
        let env = self.envelope(nation);
        Some(sample::withdrawn(env, &id))
    }

    /// A re-assessment of one of the nation's open incidents, usually upwards.
    fn reassess(&mut self, nation: &str) -> Option<Event> {
        let id = self.open.get(nation)?.last()?.clone();
        let priority = *[Priority::High, Priority::Severe, Priority::Emergency]
            .choose(&mut self.rng)
            .unwrap_or(&Priority::High);
        let env = self.envelope(nation);
        Some(sample::incident_updated(env, &id, priority))
    }

    /// New capacity for one of the nation's offers: a team grows or shrinks.
    fn resize(&mut self, nation: &str) -> Option<Event> {
        let id = self.offers.get(nation)?.last()?.clone();
        let units = self.rng.random_range(1..8);
        let env = self.envelope(nation);
        Some(sample::offer_updated(env, &id, units))
    }

    /// The next few feed events.
    fn next(&mut self) -> Vec<Event> {
        let nation = self.nation();
        if self.open.get(&nation).map_or(0, Vec::len) >= OPEN_INCIDENTS {
            if let Some(e) = self.close(&nation) {
                return vec![e];
            }
        }
        if self.offers.get(&nation).map_or(0, Vec::len) >= LIVE_OFFERS {
            if let Some(e) = self.withdraw(&nation) {
                return vec![e];
            }
        }
        let roll = self.rng.random_range(0..100);
        let some = match roll {
            0..=54 => Some(self.incident(&nation).to_vec()),
            55..=59 => self.reassess(&nation).map(|e| vec![e]),
            60..=79 => self.close(&nation).map(|e| vec![e]),
            80..=91 => Some(vec![self.offer(&nation)]),
            92..=94 => self.resize(&nation).map(|e| vec![e]),
            _ => self.withdraw(&nation).map(|e| vec![e]),
        };
        some.unwrap_or_else(|| self.incident(&nation).to_vec())
    }
}

/// The `n`th domain of the simulated adversaries' pool, under [`SIM_DOMAIN`].
fn sim_domain(n: u64) -> String {
    const LABELS: [&str; 6] = ["update", "cdn", "sync", "login", "telemetry", "vpn"];
    let label = LABELS[(n % LABELS.len() as u64) as usize];
    format!("{label}-{n}.{SIM_DOMAIN}")
}

/// What a nation's SIEM reports about an indicator it hunted for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiemAnswer {
    pub kind: SightingKind,
    pub count: i32,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// What `nation`'s SIEM does with the newly published indicator `indicator_id`, at `now`: a
/// function of the seed, the nation and the indicator only, so the same run answers alike
/// whatever order the records arrive in. `None` (most often): it ignores it. Otherwise a
/// SIGHTING or TRUE_POSITIVE seen a few times in the last hours, or, rarely, a FALSE_POSITIVE
/// (per thousand: [`SIGHTING_PER_MILLE`], [`TRUE_POSITIVE_PER_MILLE`],
/// [`FALSE_POSITIVE_PER_MILLE`]).
pub fn siem_answer(seed: u64, nation: &str, indicator_id: &str, now: i64) -> Option<SiemAnswer> {
    // FNV-1a: a hash that stays the same across Rust versions, unlike std's.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed
        .to_le_bytes()
        .iter()
        .chain(nation.as_bytes())
        .chain(&[0])
        .chain(indicator_id.as_bytes())
    {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = StdRng::seed_from_u64(h);
    let roll = rng.random_range(0..1000);
    let (kind, most) = if roll < SIGHTING_PER_MILLE {
        (SightingKind::Sighting, 20)
    } else if roll < SIGHTING_PER_MILLE + TRUE_POSITIVE_PER_MILLE {
        (SightingKind::TruePositive, 5)
    } else if roll < SIGHTING_PER_MILLE + TRUE_POSITIVE_PER_MILLE + FALSE_POSITIVE_PER_MILLE {
        (SightingKind::FalsePositive, 3)
    } else {
        return None;
    };
    let last_seen = now - rng.random_range(0..15 * 60_000);
    Some(SiemAnswer {
        kind,
        count: rng.random_range(1..=most),
        first_seen: last_seen - rng.random_range(0..6 * 3_600_000),
        last_seen,
    })
}

fn column(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .map(str::to_owned)
        .collect()
}

struct Sender {
    producer: BaseProducer,
    topics: Topics,
    /// Frames events as the processor does: Confluent with a registry, else single-object.
    schemas: Arc<Schemas>,
    json_share: f64,
    rng: StdRng,
}

impl Sender {
    fn send(&mut self, e: &Event) -> anyhow::Result<()> {
        let env = e.envelope();
        let topic = self.topics.input(&env.nation, e.stream());
        let value = if self.rng.random_bool(self.json_share) {
            codec::event_json(e)
        } else {
            self.schemas.codec().encode_event(e)
        };
        let key = e.entity_id().to_owned();
        let mut record = BaseRecord::to(&topic).key(&key).payload(&value);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
}

fn producer(config: &Config) -> anyhow::Result<BaseProducer> {
    let mut c = crate::kafka::client_config(config);
    c.set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "lz4");
    Ok(c.create()?)
}

/// Runs the feed until the count or duration is reached.
pub fn run(config: &Config, opts: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        opts.nations.len() >= 2,
        "simulate needs at least two nations"
    );
    let schemas = Arc::new(Schemas::connect(config)?);
    let topics = Topics::new(config);
    // The SIEMs start reading where the hunt topics end now, before the first event is sent.
    let siems = siems(config, opts)?;
    let stop = Arc::new(AtomicBool::new(false));
    // However the feed ends, a failed send included, the responder and the SIEMs stop.
    let _stop = StopOnDrop(stop.clone());
    let responses = Arc::new(AtomicU64::new(0));
    let responder = {
        let (config, schemas, stop, responses, opts) = (
            config.clone(),
            schemas.clone(),
            stop.clone(),
            responses.clone(),
            opts.clone(),
        );
        std::thread::spawn(move || respond(&config, &schemas, &stop, &responses, &opts))
    };
    let hunting = Arc::new(Mutex::new(Hunting::default()));
    let hunters = {
        let (config, schemas, stop, hunting, opts) = (
            config.clone(),
            schemas.clone(),
            stop.clone(),
            hunting.clone(),
            opts.clone(),
        );
        std::thread::spawn(move || hunt(&config, &schemas, siems, &stop, &hunting, &opts))
    };
    let mut sender = Sender {
        producer: producer(config)?,
        topics,
        schemas,
        json_share: opts.json_share,
        rng: StdRng::seed_from_u64(opts.seed ^ 1),
    };
    let mut feed = Feed::new(opts.nations.clone(), opts.seed);
    let bar = progress(opts);
    let started = Instant::now();
    let mut sent = 0u64;
    for nation in opts.nations.clone() {
        for _ in 0..2 {
            sender.send(&feed.offer(&nation))?;
            sent += 1;
        }
    }
    while opts.count.is_none_or(|c| sent < c) && opts.duration.is_none_or(|d| started.elapsed() < d)
    {
        for e in feed.next() {
            sender.send(&e)?;
            sent += 1;
        }
        sender.producer.poll(Duration::ZERO);
        bar.set_position(sent);
        if opts.rate > 0.0 {
            let due = Duration::from_secs_f64(sent as f64 / opts.rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    sender
        .producer
        .flush(Duration::from_secs(30))
        .context("flushing the feed")?;
    // Give the responder and the SIEMs time to answer the last proposals and indicators.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let _ = responder.join();
    if let Ok(Err(e)) = hunters.join() {
        tracing::warn!(
            error = format!("{e:#}"),
            "the simulated SIEMs stopped early"
        );
    }
    bar.finish_and_clear();
    let hunting = tally(&hunting).clone();
    Ok(Report {
        events: sent,
        responses: responses.load(Ordering::SeqCst),
        hunting,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Raises its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The tally, whether or not a thread panicked while holding it.
fn tally(hunting: &Mutex<Hunting>) -> std::sync::MutexGuard<'_, Hunting> {
    hunting
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn progress(opts: &Options) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let bar = match opts.count {
        Some(c) => ProgressBar::new(c),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos} events ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Answers proposals as each providing nation's offer desk.
fn respond(
    config: &Config,
    schemas: &Arc<Schemas>,
    stop: &AtomicBool,
    answered: &AtomicU64,
    opts: &Options,
) -> anyhow::Result<()> {
    let topics = Topics::new(config);
    let mut c = crate::kafka::client_config(config);
    c.set(
        "group.id",
        config.name(&format!("rallypoint-simulator-{}", uuid::Uuid::new_v4())),
    )
    .set("isolation.level", "read_committed")
    .set("auto.offset.reset", "latest")
    .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create()?;
    consumer.subscribe(&[&topics.coalition_decisions()])?;
    let producer = producer(config)?;
    let mut sender = Sender {
        producer,
        topics,
        schemas: schemas.clone(),
        json_share: 0.5,
        rng: StdRng::seed_from_u64(opts.seed ^ 2),
    };
    let mut feed = Feed::new(opts.nations.clone(), opts.seed ^ 3);
    while !stop.load(Ordering::SeqCst) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let payload = m.payload().unwrap_or_default();
        schemas.prepare(payload)?;
        let p = match schemas.codec().decode_decision(payload) {
            Ok(Decision::AssignmentProposed(p)) => p,
            // Half of the confirmed work is reported done, which frees the team again.
            Ok(Decision::AssignmentConfirmed(c)) if feed.rng.random_bool(0.5) => {
                let env = feed.envelope(&c.provider_nation);
                sender.send(&sample::completed(env, &c.assignment_id))?;
                answered.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            _ => continue,
        };
        let env = feed.envelope(&p.provider_nation);
        let answer = if feed.rng.random_bool(opts.accept_share) {
            sample::accepted(env, &p.assignment_id)
        } else {
            sample::declined(env, &p.assignment_id)
        };
        sender.send(&answer)?;
        sender.producer.poll(Duration::ZERO);
        answered.fetch_add(1, Ordering::SeqCst);
    }
    sender.producer.flush(Duration::from_secs(10))?;
    Ok(())
}

/// The simulated nations' SIEMs: one consumer of every simulated nation's hunt topic, each
/// assigned at the topic's end when the feed begins, so that they answer only indicators
/// published while the simulator runs.
struct Siems {
    consumer: BaseConsumer,
    /// The nation each assigned hunt topic belongs to.
    nations: BTreeMap<String, String>,
    /// The topic whose records [`Hunting`] counts (the first simulated nation's that exists):
    /// every member's topic receives the same records.
    counted: Option<String>,
}

fn siems(config: &Config, opts: &Options) -> anyhow::Result<Siems> {
    let topics = Topics::new(config);
    let mut c = crate::kafka::client_config(config);
    c.set(
        "group.id",
        config.name(&format!(
            "rallypoint-simulator-siems-{}",
            uuid::Uuid::new_v4()
        )),
    )
    .set("isolation.level", "read_committed")
    .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = c.create()?;
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    let mut nations = BTreeMap::new();
    for nation in &opts.nations {
        let topic = topics.hunt(nation);
        let meta = consumer
            .fetch_metadata(Some(&topic), timeout)
            .with_context(|| format!("reading the metadata of {topic}"))?;
        let partitions: Vec<i32> = meta
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            tracing::warn!(%topic, "no such hunt topic: this nation's simulated SIEM hunts nothing");
            continue;
        }
        for p in partitions {
            let (_, end) = consumer
                .fetch_watermarks(&topic, p, timeout)
                .with_context(|| format!("reading the end of {topic}"))?;
            assignment.add_partition_offset(&topic, p, Offset::Offset(end))?;
        }
        nations.insert(topic, nation.clone());
    }
    consumer.assign(&assignment)?;
    let counted = opts
        .nations
        .iter()
        .map(|n| topics.hunt(n))
        .find(|t| nations.contains_key(t));
    Ok(Siems {
        consumer,
        nations,
        counted,
    })
}

/// Answers newly published hunt indicators as each nation's SIEM (see [`siem_answer`]), and
/// tallies what the hunt topics carried. A record that does not decode is skipped and counted.
fn hunt(
    config: &Config,
    schemas: &Arc<Schemas>,
    siems: Siems,
    stop: &AtomicBool,
    hunting: &Mutex<Hunting>,
    opts: &Options,
) -> anyhow::Result<()> {
    let mut sender = Sender {
        producer: producer(config)?,
        topics: Topics::new(config),
        schemas: schemas.clone(),
        json_share: opts.json_share,
        rng: StdRng::seed_from_u64(opts.seed ^ 4),
    };
    let mut feed = Feed::new(opts.nations.clone(), opts.seed ^ 5);
    // Per nation, the keys it hunts for now: a publication of another key is new to it.
    let mut live: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        let m = match siems.consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "reading the hunt topics");
                continue;
            }
            Some(Ok(m)) => m,
        };
        let Some(nation) = siems.nations.get(m.topic()) else {
            continue;
        };
        let counted = siems.counted.as_deref() == Some(m.topic());
        // A tombstone (a removed indicator, or a commit seal) holds nothing to answer.
        let Some(payload) = m.payload() else {
            continue;
        };
        let decoded = match schemas.prepare(payload) {
            Ok(()) => schemas
                .codec()
                .decode_hunt(payload)
                .map_err(|r| r.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let update = match decoded {
            Ok(u) => u,
            Err(why) => {
                tracing::warn!(topic = m.topic(), offset = m.offset(), %why, "skipping a hunt record that does not decode");
                tally(hunting).skipped += 1;
                continue;
            }
        };
        match update {
            HuntUpdate::Published(indicator) => {
                if !live.entry(nation).or_default().insert(indicator.key()) {
                    continue; // a refresh or a new score of one it hunts already
                }
                if counted {
                    tally(hunting).published += 1;
                }
                let Some(answer) =
                    siem_answer(opts.seed, nation, &indicator.indicator_id, now_ms())
                else {
                    continue;
                };
                let Some(e) = sighting(&mut feed, nation, &indicator, &answer) else {
                    tracing::warn!(topic = m.topic(), offset = m.offset(), pattern = %indicator.pattern, "skipping a hunt indicator whose pattern gives no value of its kind");
                    tally(hunting).skipped += 1;
                    continue;
                };
                sender.send(&e)?;
                sender.producer.poll(Duration::ZERO);
                let mut t = tally(hunting);
                match answer.kind {
                    SightingKind::FalsePositive => t.false_positives += 1,
                    _ => t.sightings += 1,
                }
            }
            HuntUpdate::Retired { indicator, reason } => {
                live.entry(nation).or_default().remove(&indicator.key());
                if counted {
                    *tally(hunting).retired.entry(reason.as_str()).or_default() += 1;
                }
            }
            // What the SIEMs sighted, told to the campaign's nations: nothing to answer.
            HuntUpdate::Sightings { .. } => tally(hunting).summaries += 1,
            // Removals, and the cell's reviews (not on a nation's topic).
            _ => {}
        }
    }
    sender.producer.flush(Duration::from_secs(10))?;
    Ok(())
}

/// The sighting `nation`'s SIEM sends of `indicator`, as `answer` says, under a fresh sighting
/// id and with the indicator's id as `hunt_id`; `None` when the pattern gives no value back of
/// the indicator's kind.
fn sighting(
    feed: &mut Feed,
    nation: &str,
    indicator: &HuntIndicator,
    answer: &SiemAnswer,
) -> Option<Event> {
    let (kind, value) =
        hunt::pattern_value(&indicator.pattern).filter(|(kind, _)| *kind == indicator.kind)?;
    let id = feed.id("S", nation);
    let env = feed.envelope(nation);
    let hunt_id =
        Some(indicator.indicator_id.clone()).filter(|id| rallypoint_core::validate::is_id(id));
    Some(sample::sighted_with(
        env,
        &id,
        Indicator::new(kind, value),
        answer.kind,
        |s| {
            s.hunt_id = hunt_id;
            s.count = answer.count;
            s.first_seen = answer.first_seen;
            s.last_seen = answer.last_seen;
            s.source = format!("{nation} national SIEM (simulated)");
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rallypoint_core::hunt::RetireReason;
    use rallypoint_core::store::MemStore;
    use rallypoint_core::validate::{self, Limits, Origin};
    use rallypoint_core::{apply, CoreConfig, Output};

    const NATIONS: [&str; 8] = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];

    fn id(i: usize) -> String {
        hunt::indicator_id(&format!("[domain-name:value = 'x{i}.{SIM_DOMAIN}']"))
    }

    #[test]
    fn a_siem_answers_alike_for_a_seed_and_within_its_rates() {
        let now = 1_800_000_000_000;
        let n = 20_000;
        let (mut sighting, mut confirmed, mut false_positive) = (0, 0, 0);
        let (mut other_seed, mut other_nation) = (0, 0);
        for i in 0..n {
            let indicator = id(i);
            let answer = siem_answer(7, "EST", &indicator, now);
            assert_eq!(
                answer,
                siem_answer(7, "EST", &indicator, now),
                "{indicator}"
            );
            other_seed += (answer != siem_answer(8, "EST", &indicator, now)) as u32;
            other_nation += (answer != siem_answer(7, "LVA", &indicator, now)) as u32;
            let Some(a) = answer else { continue };
            match a.kind {
                SightingKind::Sighting => sighting += 1,
                SightingKind::TruePositive => confirmed += 1,
                SightingKind::FalsePositive => false_positive += 1,
                SightingKind::Expiration => panic!("a SIEM never sends EXPIRATION"),
            }
            let most = if a.kind == SightingKind::Sighting {
                20
            } else {
                5
            };
            assert!((1..=most).contains(&a.count), "{a:?}");
            assert!(a.first_seen <= a.last_seen && a.last_seen <= now, "{a:?}");
            assert!(a.last_seen > now - 15 * 60_000, "{a:?}");
            assert!(a.first_seen > a.last_seen - 6 * 3_600_000, "{a:?}");
        }
        let per_mille = |k: u32| f64::from(k) * 1000.0 / n as f64;
        let near = |got: f64, want: u32| (got - f64::from(want)).abs() <= 0.2 * f64::from(want);
        assert!(near(per_mille(sighting), SIGHTING_PER_MILLE), "{sighting}");
        assert!(
            near(per_mille(confirmed), TRUE_POSITIVE_PER_MILLE),
            "{confirmed}"
        );
        assert!(
            near(per_mille(false_positive), FALSE_POSITIVE_PER_MILLE),
            "{false_positive}"
        );
        // Most indicators are ignored, and the answers depend on the seed and the nation.
        assert!(sighting + confirmed + false_positive < n as u32 / 3);
        assert!(per_mille(other_seed) > 300.0, "{other_seed}");
        assert!(per_mille(other_nation) > 300.0, "{other_nation}");
    }

    #[test]
    fn the_domain_pool_slides_and_stays_off_the_warninglists() {
        let lists = hunt::warninglist::builtin();
        for n in 0..200 {
            let d = sim_domain(n);
            assert!(
                lists.check(IndicatorKind::Domain, &d).is_none(),
                "{d} is on a warninglist"
            );
        }
        let mut feed = Feed::new(NATIONS.map(str::to_owned).to_vec(), 7);
        let mut domains = BTreeMap::<String, u32>::new();
        for _ in 0..2_000 {
            let [Event::IncidentReported(i), _] = feed.incident("EST") else {
                panic!("an incident and its request");
            };
            for v in i
                .indicators
                .iter()
                .filter(|v| v.kind == IndicatorKind::Domain)
            {
                *domains.entry(v.value.clone()).or_default() += 1;
            }
        }
        // A value is shared, and by fewer incidents than the fan-out cap (50).
        let most = domains.values().max().copied().unwrap_or(0);
        assert!(domains.len() > 50 && most > 1 && most < 50, "{domains:?}");
    }

    /// The feed, folded by the core with the default warninglists, publishes hunt indicators;
    /// the SIEMs' answers to them are valid sightings that the fold applies, and a false
    /// positive retires an indicator.
    #[test]
    fn the_simulated_feed_hunts_and_the_siems_answers_are_applied() {
        let nations = NATIONS.map(str::to_owned).to_vec();
        let mut feed = Feed::new(nations.clone(), 7);
        let mut siem = Feed::new(nations.clone(), 8);
        let (mut store, config) = (MemStore::new(), CoreConfig::default());
        let mut events: Vec<Event> = nations.iter().map(|n| feed.offer(n)).collect();
        while events.len() < 1_500 {
            events.extend(feed.next());
        }
        let valid = |e: &Event| {
            let env = e.envelope();
            let topic = format!("rrc.in.{}.{}", env.nation, e.stream().suffix());
            let origin = Origin::from_topic(&topic).expect("an input topic");
            validate::validate(e, &origin, now_ms(), &Limits::default())
        };
        let (mut published, mut answered) = (BTreeSet::new(), 0);
        let (mut false_positives, mut sim_domains) = (0, 0);
        let mut queue: std::collections::VecDeque<Event> = events.into();
        while let Some(e) = queue.pop_front() {
            assert_eq!(valid(&e), Ok(()), "{e:?}");
            let sighted = matches!(e.stream(), Stream::Sightings);
            for o in apply(&mut store, &config, &e).expect("the in-memory store") {
                match o {
                    Output::Rejected(r) => assert!(!sighted, "{r}: {e:?}"),
                    Output::Hunt(HuntUpdate::Published(i)) if published.insert(i.key()) => {
                        sim_domains += i.pattern.contains(SIM_DOMAIN) as usize;
                        for n in &nations {
                            let Some(a) = siem_answer(7, n, &i.indicator_id, now_ms()) else {
                                continue;
                            };
                            let s = sighting(&mut siem, n, &i, &a).expect("a pattern's value");
                            answered += 1;
                            queue.push_back(s);
                        }
                    }
                    Output::Hunt(HuntUpdate::Retired {
                        reason: RetireReason::FalsePositive,
                        ..
                    }) => false_positives += 1,
                    _ => {}
                }
            }
        }
        assert!(sim_domains >= 10, "{sim_domains} of {SIM_DOMAIN} published");
        assert!(answered > 0 && answered < published.len() * nations.len() / 2);
        assert!(
            false_positives > 0,
            "no false positive retired an indicator"
        );
    }

    #[test]
    fn the_report_line_names_what_was_hunted() {
        let h = Hunting {
            published: 12,
            retired: BTreeMap::from([("FALSE_POSITIVE", 1), ("RELEASE_WITHDRAWN", 3)]),
            sightings: 9,
            false_positives: 2,
            summaries: 5,
            skipped: 0,
        };
        assert_eq!(
            h.describe(),
            "hunting: 12 indicators published to every nation's hunt topic, 4 retired \
             (1 false positive, 3 release withdrawn); the nations' SIEMs sent back 9 sightings \
             and 2 false positives, and the campaigns' nations received 5 sightings summaries"
        );
    }
}
