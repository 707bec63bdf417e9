//! `rallypoint simulate`: a feed of several nations. Each nation offers teams, reports incidents
//! with real ATT&CK techniques and exploited CVEs (from `data/`), asks for help, closes
//! incidents; a responder answers the proposals addressed to each nation, accepting most and
//! declining some, as national offer desks would.
//!
//! So that campaigns have something to hunt, incidents also report a domain under
//! [`SIM_DOMAIN`] from a pool that slides as the feed goes on (a value is shared by a few dozen
//! incidents at most, below the fan-out cap), some are CLEAR or GREEN, and some AMBER ones
//! consent to ALLIANCE release.
//!
//! Like a real desk, a nation keeps its open work bounded however long the feed runs: past
//! [`OPEN_INCIDENTS`] open incidents it closes its oldest before anything else, and past
//! [`LIVE_OFFERS`] live offers it withdraws its oldest. So a long feed grows the history (closed
//! incidents, answered requests, event ids, indicators) while the open work stays about the
//! same, as an alliance's does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rallypoint_core::decision::Decision;
use rallypoint_core::event::*;
use rallypoint_core::sample;
use rand::prelude::*;
use rand::rngs::StdRng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

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
    pub seconds: f64,
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
    let stop = Arc::new(AtomicBool::new(false));
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
    // Give the responder time to answer the last proposals.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let _ = responder.join();
    bar.finish_and_clear();
    Ok(Report {
        events: sent,
        responses: responses.load(Ordering::SeqCst),
        seconds: started.elapsed().as_secs_f64(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    const NATIONS: [&str; 8] = ["EST", "LVA", "LTU", "POL", "DEU", "FRA", "NLD", "FIN"];

    #[test]
    fn the_domain_pool_slides_and_stays_off_the_warninglists() {
        let lists = rallypoint_core::hunt::warninglist::builtin();
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
}
