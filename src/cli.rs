//! The `rallypoint` command line: `run`, `topics create`, `simulate`, `watch`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use prometheus::Registry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;

use crate::codec::{self, Codec};
use crate::config::Config;
use crate::http::{self, AppState};
use crate::kafka::{admin, coordinator::Coordinator, intake::Intake, Topics};
use crate::registry::Schemas;
use crate::simulate;
use crate::status::StageStatus;
use crate::stop::Stop;
use crate::telemetry::{self, Metrics};

#[derive(Parser, Debug)]
#[command(
    name = "rallypoint",
    version,
    about = "Coordination processor of an allied rapid response cyber capability"
)]
pub struct Cli {
    /// TOML configuration file (RALLYPOINT__SECTION__KEY variables override it).
    #[arg(long, short, global = true, env = "RALLYPOINT_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the processor: intake, coordinator, and the HTTP endpoint.
    Run {
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Feed simulated national events; nations' SIEMs answer the hunt topics with sightings.
    Simulate {
        /// Events per second (0: as fast as possible).
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this long (e.g. 60s, 5m).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Nations to simulate (default: the configured nations).
        #[arg(long, value_delimiter = ',')]
        nations: Vec<String>,
        #[arg(long, default_value_t = 0.2)]
        json_share: f64,
        #[arg(long, default_value_t = 0.85)]
        accept_share: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Write every schema, self-contained, with its single-object fingerprint; with
    /// `--samples`, also a sample record of each, Avro single-object encoded.
    Schemas {
        /// Folder to write `<Name>.avsc` (and `<Name>.bin`) into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        samples: bool,
    },
    /// Audit: rebuild state from the journal in a fresh store and check that the decision
    /// topics hold exactly, byte for byte, what it implies. Exits 1 at the first divergence.
    Replay {
        /// Where to build the fresh store (default: a temporary folder, removed afterwards).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Print decisions as JSON lines, as a SIEM would read them (read_committed).
    Watch {
        /// A nation (its decisions topic) or `coalition`.
        #[arg(long, default_value = "coalition")]
        audience: String,
        /// Stop after this many decisions.
        #[arg(long)]
        count: Option<u64>,
        /// Stop when nothing arrives for this long.
        #[arg(long, value_parser = humantime::parse_duration)]
        idle: Option<Duration>,
        /// Start at the beginning of the topic instead of its end.
        #[arg(long)]
        from_beginning: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TopicsAction {
    /// Create every topic of the configured nations (idempotent).
    Create,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    All,
    Intake,
    Coordinator,
}

pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            std::process::exit(2);
        }
    };
    telemetry::init_logs(&config.log);
    match cli.command {
        Command::Run { role } => run(config, role),
        Command::Replay { state_dir } => replay(&config, state_dir),
        Command::Schemas { out, samples } => export_schemas(&out, samples),
        Command::Topics {
            action: TopicsAction::Create,
        } => topics_create(&config),
        Command::Simulate {
            rate,
            count,
            duration,
            nations,
            json_share,
            accept_share,
            seed,
            quiet,
        } => {
            let nations = if nations.is_empty() {
                config.nations.clone()
            } else {
                nations
            };
            let opts = simulate::Options {
                rate,
                count,
                duration,
                nations,
                json_share,
                accept_share,
                seed,
                progress: !quiet,
            };
            let r = simulate::run(&config, &opts)?;
            println!(
                "simulated {} events and {} responses in {:.1} s",
                r.events, r.responses, r.seconds
            );
            println!("{}", r.hunting.describe());
            Ok(())
        }
        Command::Watch {
            audience,
            count,
            idle,
            from_beginning,
        } => watch(&config, &audience, count, idle, from_beginning),
    }
}

fn export_schemas(out: &std::path::Path, samples: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let codec = Codec::new()?;
    for s in codec.schemas() {
        std::fs::write(out.join(format!("{}.avsc", s.name)), &s.json)?;
        // In the byte order of the single-object header (as fastavro prints it).
        let print: String = s.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
        println!("{} {print}", s.name);
    }
    if samples {
        for (name, bytes) in codec::samples(&codec) {
            std::fs::write(out.join(format!("{name}.bin")), bytes)?;
        }
    }
    Ok(())
}

fn replay(config: &Config, state_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = state_dir.unwrap_or_else(|| temp.path().join("replay"));
    let report = crate::replay::replay(config, dir)?;
    println!(
        "replayed {} journal events: {} decisions on {} topics recomputed",
        report.events, report.decisions, report.topics
    );
    match report.divergence {
        None => {
            println!("every decision matches the journal, byte for byte");
            Ok(())
        }
        Some(what) => {
            println!("first divergence: {what}");
            std::process::exit(1);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

fn topics_create(config: &Config) -> anyhow::Result<()> {
    let created = runtime()?.block_on(admin::create_topics(config))?;
    for (name, new) in &created {
        println!("{} {name}", if *new { "created" } else { "exists " });
    }
    Ok(())
}

/// Runs the stages on threads of their own and the HTTP server on tokio, until SIGINT/SIGTERM
/// or until a stage fails (then the process exits non-zero for its supervisor to restart it).
fn run(config: Config, role: Role) -> anyhow::Result<()> {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).context("registering the metrics")?;
    // CPU, memory, open files and start time, from /proc.
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    // With a registry, each stage registers the schemas before it is ready.
    let schemas = Arc::new(Schemas::new(&config)?);
    // Both listeners are bound, and the query API's certificate read, before any stage starts:
    // a port taken or a bad certificate stops the process at once.
    let rt = runtime()?;
    let metrics_listener = rt
        .block_on(tokio::net::TcpListener::bind(config.http_listen))
        .map_err(|e| anyhow::anyhow!("http.listen {}: {e}", config.http_listen))?;
    let query_listener = if config.query_api.enabled {
        let q = &config.query_api;
        let listener = std::net::TcpListener::bind(q.listen)
            .map_err(|e| anyhow::anyhow!("query_api.listen {}: {e}", q.listen))?;
        let tls = match &q.tls {
            Some(files) => Some(rt.block_on(http::query_tls(files))?),
            None => None,
        };
        Some((listener, tls))
    } else {
        None
    };
    let stop = Stop::new();
    let (failed_tx, failed_rx) = std::sync::mpsc::channel::<String>();
    crate::fault::announce();
    // A watchdog expiry of an earlier run is recorded in the state folder and counted now.
    let expiries = config.state_dir.join("watchdog-expiries");
    metrics
        .lifecycle()
        .watchdog_expired_before(&crate::kafka::watchdog::take_recorded_expiries(&expiries));
    if std::fs::create_dir_all(&config.state_dir).is_ok() {
        crate::kafka::watchdog::record_expiries_in(expiries);
    }
    let mut ready = Vec::new();
    let mut stages = Vec::new();
    if matches!(role, Role::All | Role::Intake) {
        let intake = Intake::new(config.clone(), schemas.clone(), metrics.clone());
        stages.push(spawn_stage(
            "intake",
            move |s, r| intake.run(s, r),
            &stop,
            &mut ready,
            failed_tx.clone(),
        )?);
    }
    let mut query_client = None;
    if matches!(role, Role::All | Role::Coordinator) {
        let (client, questions) = crate::query::channel();
        query_client = Some(client);
        let coordinator = Coordinator::new(config.clone(), schemas.clone(), metrics.clone())
            .with_queries(questions);
        stages.push(spawn_stage(
            "coordinator",
            move |s, r| coordinator.run(s, r),
            &stop,
            &mut ready,
            failed_tx.clone(),
        )?);
    }
    drop(failed_tx);
    let state = AppState {
        registry,
        stages: ready,
        metrics: metrics.clone(),
        watchdog_bound: crate::kafka::watchdog::bound(&config.kafka),
    };
    let stopped = |stop: Stop| async move { stop.stopped().await };
    let server = rt.spawn(http::serve(metrics_listener, state, stopped(stop.clone())));
    let query_server = query_listener.map(|(listener, tls)| {
        let state = http::QueryState {
            client: query_client,
            tokens: Arc::new(crate::auth::Tokens::new(&config.query_api.tokens)),
        };
        rt.spawn(http::serve_query(
            listener,
            tls,
            state,
            stopped(stop.clone()),
        ))
    });
    let failure = rt.block_on(async {
        tokio::select! {
            _ = shutdown_signal() => None,
            f = tokio::task::spawn_blocking(move || failed_rx.recv().ok()) => f.ok().flatten(),
        }
    });
    tracing::info!("stopping: finishing open transactions");
    stop.stop();
    for s in stages {
        let _ = s.join();
    }
    let _ = rt.block_on(server);
    if let Some(q) = query_server {
        if let Ok(Err(e)) = rt.block_on(q) {
            tracing::error!(error = format!("{e:#}"), "query API");
        }
    }
    match failure {
        Some(why) => anyhow::bail!("{why}"),
        None => Ok(()),
    }
}

type StageFn = dyn FnOnce(&Stop, &StageStatus) -> anyhow::Result<()> + Send;

/// Runs a stage on a thread named after it. A stage that fails tells `failed`, and the process
/// stops; one that ends with an error after the stop was asked for only logs it (it was cut
/// short while recovering, and the next start resumes from the last commit).
fn spawn_stage(
    name: &'static str,
    body: impl FnOnce(&Stop, &StageStatus) -> anyhow::Result<()> + Send + 'static,
    stop: &Stop,
    ready: &mut Vec<(&'static str, Arc<StageStatus>)>,
    failed: std::sync::mpsc::Sender<String>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let flag = Arc::new(StageStatus::default());
    ready.push((name, flag.clone()));
    let stop = stop.clone();
    let body: Box<StageFn> = Box::new(body);
    Ok(std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            crate::kafka::watchdog::enlist();
            let result = body(&stop, &flag);
            crate::kafka::watchdog::retire();
            match result {
                Err(e) if stop.is_stopped() => {
                    tracing::warn!(
                        stage = name,
                        error = format!("{e:#}"),
                        "stage stopped while recovering"
                    );
                }
                Err(e) => {
                    tracing::error!(stage = name, error = format!("{e:#}"), "stage failed");
                    let _ = failed.send(format!("{name} failed: {e:#}"));
                }
                Ok(()) => {}
            }
        })?)
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn watch(
    config: &Config,
    audience: &str,
    count: Option<u64>,
    idle: Option<Duration>,
    from_beginning: bool,
) -> anyhow::Result<()> {
    let topics = Topics::new(config);
    let topic = if audience == "coalition" {
        topics.coalition_decisions()
    } else {
        topics.decisions(audience)
    };
    let schemas = Schemas::connect(config)?;
    let codec = schemas.codec();
    let mut c = crate::kafka::client_config(config);
    c.set(
        "group.id",
        config.name(&format!("rallypoint-watch-{}", uuid::Uuid::new_v4())),
    )
    .set("isolation.level", "read_committed")
    .set("enable.auto.commit", "false")
    .set(
        "auto.offset.reset",
        if from_beginning { "earliest" } else { "latest" },
    );
    let consumer: BaseConsumer = c.create()?;
    consumer
        .subscribe(&[&topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    eprintln!("watching {topic} (read_committed)");
    let mut seen = 0u64;
    let mut last = std::time::Instant::now();
    while count.is_none_or(|c| seen < c) && idle.is_none_or(|i| last.elapsed() < i) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        last = std::time::Instant::now();
        seen += 1;
        let payload = m.payload().unwrap_or_default();
        schemas.prepare(payload)?;
        let line = match codec.decode_decision(payload) {
            Ok(d) => codec.encode_decision(&d, codec::Format::Json),
            Err(e) => format!("{{\"undecodable\":\"{e}\",\"offset\":{}}}", m.offset()).into_bytes(),
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the watch quietly.
        if out
            .write_all(&line)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}
