//! Configuration in layers: embedded defaults < TOML file < `RALLYPOINT__SECTION__KEY`
//! environment variables. Every key is read on its own so that *every* bad value is reported,
//! not just the first serde meets; unknown keys are errors too (a typo must not pass silently).
//!
//! librdkafka settings are never passed through: only the options below reach the client, so no
//! configuration can name a library or plugin path for it to load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config as Layers, Environment, File, FileFormat};
use serde::de::DeserializeOwned;

use crate::codec::Format;

pub const DEFAULTS: &str = include_str!("../config/defaults.toml");

#[derive(Clone, Debug)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub nations: Vec<String>,
    pub state_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub query_api: QueryApiConfig,
    pub topics: TopicsConfig,
    pub intake: IntakeConfig,
    pub coordinator: CoordinatorConfig,
    pub picture: PictureSettings,
    pub schema_registry: SchemaRegistryConfig,
    pub log: LogConfig,
}

/// A Confluent-compatible Schema Registry. With no URL, Rallypoint uses none: records are
/// framed with Avro single-object encoding.
#[derive(Clone, Debug, Default)]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `https://registry.example:8081`; empty for none.
    pub url: String,
    /// HTTP basic authentication; both empty for none.
    pub username: String,
    pub password: Secret,
    /// PEM file of the CA that signed the registry's certificate; empty: the bundled
    /// Mozilla roots.
    pub ca_location: String,
    /// Time limit of one request.
    pub timeout: Duration,
}

impl SchemaRegistryConfig {
    pub fn is_configured(&self) -> bool {
        !self.url.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    /// Prefix of every topic, group and transactional id (e.g. `exercise`); empty for none.
    pub namespace: String,
    pub instance_id: String,
    pub transaction_timeout: Duration,
    /// How long one transaction may collect records before it commits.
    pub commit_interval: Duration,
    pub max_batch: usize,
    /// How long the group waits for a silent member before handing its partitions to another
    /// instance: the failover time after a crash. A restart of the same instance takes its
    /// partitions back at once (static membership), whatever this is.
    pub session_timeout: Duration,
    pub guarantee: Guarantee,
    pub security: KafkaSecurity,
}

/// What survives a crash, named as in Kafka Streams' `processing.guarantee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// Outputs, changelog and input offsets commit in one transaction: each input counts once.
    ExactlyOnce,
    /// Outputs are acknowledged before the input offsets commit: a crash may repeat a batch.
    AtLeastOnce,
}

/// How clients authenticate to the brokers and protect the connection.
#[derive(Clone, Debug, Default)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: String,
    /// `SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN`, for the `sasl_*` protocols.
    pub sasl_mechanism: String,
    pub sasl_username: String,
    pub sasl_password: Secret,
    /// PEM files; empty for none (the CA then comes from the system store).
    pub ssl_ca_location: String,
    pub ssl_certificate_location: String,
    pub ssl_key_location: String,
}

/// The query API (`/api/v1/*`): off unless enabled, on a listener of its own, each request
/// authenticated by the bearer token of its audience (see [`crate::auth`]).
#[derive(Clone, Debug)]
pub struct QueryApiConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// PEM certificate chain and key; both set: served over TLS (rustls).
    pub tls: Option<TlsFiles>,
    /// One token per audience, from the environment only
    /// (`RALLYPOINT__QUERY_API__TOKENS__CELL`, `RALLYPOINT__QUERY_API__TOKENS__EST`, ...).
    pub tokens: Vec<(crate::auth::Audience, Secret)>,
}

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Shortest bearer token accepted: 32 characters, e.g. `openssl rand -hex 32` gives 64.
pub const MIN_TOKEN_LEN: usize = 32;

/// A value that never appears in logs or debug output.
#[derive(Clone, Default, serde::Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

#[derive(Clone, Debug)]
pub struct TopicsConfig {
    pub input_partitions: i32,
    pub output_partitions: i32,
    pub replication_factor: i32,
    pub decisions_format: Format,
}

#[derive(Clone, Debug)]
pub struct IntakeConfig {
    pub max_record_bytes: usize,
    pub max_future: Duration,
}

#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    pub acceptance_timeout: Duration,
}

/// The threat picture's windows, lateness, publication interval and fan-out cap.
#[derive(Clone, Debug)]
pub struct PictureSettings {
    pub windows: Vec<Duration>,
    pub allowed_lateness: Duration,
    pub emit_interval: Duration,
    pub fanout_cap: u32,
    pub top: usize,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

const KEYS: &[&str] = &[
    "kafka.bootstrap_servers",
    "kafka.namespace",
    "kafka.instance_id",
    "kafka.transaction_timeout",
    "kafka.commit_interval",
    "kafka.max_batch",
    "kafka.session_timeout",
    "kafka.processing_guarantee",
    "kafka.security_protocol",
    "kafka.sasl_mechanism",
    "kafka.sasl_username",
    "kafka.sasl_password",
    "kafka.ssl_ca_location",
    "kafka.ssl_certificate_location",
    "kafka.ssl_key_location",
    "nations",
    "state.dir",
    "http.listen",
    "query_api.enabled",
    "query_api.listen",
    "query_api.tls_cert",
    "query_api.tls_key",
    "topics.input_partitions",
    "topics.output_partitions",
    "topics.replication_factor",
    "topics.decisions_format",
    "intake.max_record_bytes",
    "intake.max_future",
    "coordinator.acceptance_timeout",
    "picture.windows",
    "picture.allowed_lateness",
    "picture.emit_interval",
    "picture.fanout_cap",
    "picture.top",
    "schema_registry.url",
    "schema_registry.username",
    "schema_registry.password",
    "schema_registry.ca_location",
    "schema_registry.timeout",
    "log.format",
    "log.level",
];

impl Config {
    /// Loads defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigErrors> {
        Self::load_with_env(file, Environment::with_prefix("RALLYPOINT"))
    }

    /// As [`Config::load`], with `vars` (`RALLYPOINT__SECTION__KEY` = value) in place of the
    /// process's environment: for tools and tests that hold a configuration's secrets
    /// themselves.
    pub fn load_with_vars(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let env = Environment::with_prefix("RALLYPOINT").source(Some(vars.into_iter().collect()));
        Self::load_with_env(file, env)
    }

    fn load_with_env(file: Option<&Path>, env: Environment) -> Result<Config, ConfigErrors> {
        let mut builder = Layers::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        // Tokens are secrets: from the environment only, never from a file that is shared,
        // rendered into a ConfigMap or checked in.
        let tokens_in_file = builder
            .build_cloned()
            .ok()
            .and_then(|files| files.get_table("query_api.tokens").ok())
            .is_some_and(|t| !t.is_empty());
        let env = env
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("nations")
            .try_parsing(true);
        let layers = builder
            .add_source(env)
            .build()
            .map_err(|e| ConfigErrors(vec![e.to_string()]))?;
        let mut reader = Reader::new(layers);
        if tokens_in_file {
            reader.errors.push("query_api.tokens: set the tokens through the environment (RALLYPOINT__QUERY_API__TOKENS__CELL, RALLYPOINT__QUERY_API__TOKENS__<NATION>), not in a file".into());
        }
        reader.finish()
    }
}

/// Reads keys one by one, collecting errors.
struct Reader {
    layers: Layers,
    errors: Vec<String>,
}

impl Reader {
    fn new(layers: Layers) -> Self {
        Self {
            layers,
            errors: Vec::new(),
        }
    }

    fn get<T: DeserializeOwned + Default>(&mut self, key: &str) -> T {
        match self.layers.get::<T>(key) {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(format!("{key}: {e}"));
                T::default()
            }
        }
    }

    fn duration(&mut self, key: &str) -> Duration {
        let text: String = self.get(key);
        match humantime::parse_duration(&text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => self.fail(key, "must be more than zero"),
            Err(e) => self.fail(
                key,
                &format!("{text:?} is not a duration like 100ms or 30m ({e})"),
            ),
        }
    }

    /// A non-empty list of window sizes, each a whole number of seconds.
    fn windows(&mut self, key: &str) -> Vec<Duration> {
        let texts: Vec<String> = self.get(key);
        if texts.is_empty() {
            return self.fail(key, "name at least one window size, e.g. [\"1h\", \"24h\"]");
        }
        let mut sizes = Vec::new();
        for text in texts {
            match humantime::parse_duration(&text) {
                Ok(d) if d.as_secs() > 0 && d.subsec_nanos() == 0 => sizes.push(d),
                _ => self.errors.push(format!(
                    "{key}: {text:?} is not a window size in whole seconds like 1h or 24h"
                )),
            }
        }
        sizes
    }

    fn fail<T: Default>(&mut self, key: &str, why: &str) -> T {
        self.errors.push(format!("{key}: {why}"));
        T::default()
    }

    fn positive(&mut self, key: &str) -> i64 {
        let v: i64 = self.get(key);
        if v <= 0 {
            return self.fail(key, &format!("{v} must be at least 1"));
        }
        v
    }

    fn unknown_keys(&mut self) {
        let Ok(table) = self.layers.cache.clone().into_table() else {
            return;
        };
        let mut found = Vec::new();
        flatten("", table, &mut found);
        for key in found {
            // One token per audience; the audiences are checked with the nations.
            if key.starts_with("query_api.tokens.") {
                continue;
            }
            if !KEYS.contains(&key.as_str()) {
                self.errors.push(format!("{key}: unknown setting"));
            }
        }
    }

    fn finish(mut self) -> Result<Config, ConfigErrors> {
        self.unknown_keys();
        let kafka = KafkaConfig {
            bootstrap_servers: self.get("kafka.bootstrap_servers"),
            namespace: self.get("kafka.namespace"),
            instance_id: self.get("kafka.instance_id"),
            transaction_timeout: self.duration("kafka.transaction_timeout"),
            commit_interval: self.duration("kafka.commit_interval"),
            max_batch: self.positive("kafka.max_batch") as usize,
            session_timeout: self.duration("kafka.session_timeout"),
            guarantee: self.guarantee(),
            security: KafkaSecurity {
                protocol: self.get("kafka.security_protocol"),
                sasl_mechanism: self.get("kafka.sasl_mechanism"),
                sasl_username: self.get("kafka.sasl_username"),
                sasl_password: Secret(self.get("kafka.sasl_password")),
                ssl_ca_location: self.get("kafka.ssl_ca_location"),
                ssl_certificate_location: self.get("kafka.ssl_certificate_location"),
                ssl_key_location: self.get("kafka.ssl_key_location"),
            },
        };
        let config = Config {
            nations: self.get("nations"),
            state_dir: self.get::<String>("state.dir").into(),
            http_listen: self.listen_addr("http.listen"),
            query_api: self.query_api(),
            topics: TopicsConfig {
                input_partitions: self.positive("topics.input_partitions") as i32,
                output_partitions: self.positive("topics.output_partitions") as i32,
                replication_factor: self.positive("topics.replication_factor") as i32,
                decisions_format: self.format("topics.decisions_format"),
            },
            intake: IntakeConfig {
                max_record_bytes: self.positive("intake.max_record_bytes") as usize,
                max_future: self.duration("intake.max_future"),
            },
            coordinator: CoordinatorConfig {
                acceptance_timeout: self.duration("coordinator.acceptance_timeout"),
            },
            picture: PictureSettings {
                windows: self.windows("picture.windows"),
                allowed_lateness: self.duration("picture.allowed_lateness"),
                emit_interval: self.duration("picture.emit_interval"),
                fanout_cap: self.positive("picture.fanout_cap") as u32,
                top: self.positive("picture.top") as usize,
            },
            schema_registry: SchemaRegistryConfig {
                url: self.get::<String>("schema_registry.url").trim().to_owned(),
                username: self.get("schema_registry.username"),
                password: Secret(self.get("schema_registry.password")),
                ca_location: self.get("schema_registry.ca_location"),
                timeout: self.duration("schema_registry.timeout"),
            },
            log: LogConfig {
                format: self.log_format(),
                level: self.get("log.level"),
            },
            kafka,
        };
        self.cross_checks(&config);
        if self.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    fn listen_addr(&mut self, key: &str) -> SocketAddr {
        let text: String = self.get(key);
        let fallback = SocketAddr::from(([127, 0, 0, 1], 0));
        text.parse().unwrap_or_else(|_| {
            self.fail_with(
                key,
                &format!("{text:?} is not an address like 127.0.0.1:9464"),
                fallback,
            )
        })
    }

    fn query_api(&mut self) -> QueryApiConfig {
        let cert: String = self.get("query_api.tls_cert");
        let key: String = self.get("query_api.tls_key");
        let tls = match (cert.is_empty(), key.is_empty()) {
            (true, true) => None,
            (false, false) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            _ => {
                self.errors
                    .push("query_api.tls_cert and query_api.tls_key go together".into());
                for (key, path) in [("query_api.tls_cert", &cert), ("query_api.tls_key", &key)] {
                    if !path.is_empty() && !Path::new(path).is_file() {
                        self.errors
                            .push(format!("{key}: {path:?} is not a readable file"));
                    }
                }
                None
            }
        };
        // Absent unless the environment sets one: the defaults hold no table.
        let tokens: std::collections::BTreeMap<String, String> =
            match self.layers.get("query_api.tokens") {
                Ok(t) => t,
                Err(config::ConfigError::NotFound(_)) => Default::default(),
                Err(e) => self.fail_with(
                    "query_api.tokens",
                    &format!(
                    "{e}: set one variable per audience, e.g. RALLYPOINT__QUERY_API__TOKENS__CELL"
                ),
                    Default::default(),
                ),
            };
        QueryApiConfig {
            enabled: self.get("query_api.enabled"),
            listen: self.listen_addr("query_api.listen"),
            tls,
            // An empty variable is no token (as compose passes an unset one).
            tokens: tokens
                .into_iter()
                .filter(|(_, token)| !token.is_empty())
                .map(|(audience, token)| {
                    let audience = if audience.eq_ignore_ascii_case("cell") {
                        crate::auth::Audience::Cell
                    } else {
                        crate::auth::Audience::Nation(audience.to_ascii_uppercase())
                    };
                    (audience, Secret(token))
                })
                .collect(),
        }
    }

    fn format(&mut self, key: &str) -> Format {
        match self.get::<String>(key).as_str() {
            "avro" => Format::Avro,
            "json" => Format::Json,
            other => self.fail_with(key, &format!("{other:?} is not avro or json"), Format::Avro),
        }
    }

    fn guarantee(&mut self) -> Guarantee {
        let key = "kafka.processing_guarantee";
        match self.get::<String>(key).as_str() {
            "exactly_once_v2" => Guarantee::ExactlyOnce,
            "at_least_once" => Guarantee::AtLeastOnce,
            other => self.fail_with(
                key,
                &format!("{other:?} is not exactly_once_v2 or at_least_once"),
                Guarantee::ExactlyOnce,
            ),
        }
    }

    fn log_format(&mut self) -> LogFormat {
        match self.get::<String>("log.format").as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => self.fail_with(
                "log.format",
                &format!("{other:?} is not human or json"),
                LogFormat::Human,
            ),
        }
    }

    fn fail_with<T>(&mut self, key: &str, why: &str, fallback: T) -> T {
        self.errors.push(format!("{key}: {why}"));
        fallback
    }

    fn cross_checks(&mut self, c: &Config) {
        if c.kafka.bootstrap_servers.trim().is_empty() {
            self.errors
                .push("kafka.bootstrap_servers: must name at least one broker".into());
        }
        let ns = &c.kafka.namespace;
        if !ns
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            self.errors.push(format!(
                "kafka.namespace: {ns:?} may hold only letters, digits, - and _"
            ));
        }
        if c.kafka.instance_id.is_empty() || !rallypoint_core::validate::is_id(&c.kafka.instance_id)
        {
            self.errors.push(format!(
                "kafka.instance_id: {:?} must be 1-64 of A-Z a-z 0-9 . _ : -",
                c.kafka.instance_id
            ));
        }
        let session = c.kafka.session_timeout;
        if session < Duration::from_secs(1) || session > Duration::from_secs(300) {
            self.errors.push(format!(
                "kafka.session_timeout: {session:?} must be between 1s and 5m (brokers allow 6s to 5m by default)"
            ));
        }
        if c.kafka.commit_interval >= c.kafka.transaction_timeout {
            self.errors.push(
                "kafka.commit_interval must be shorter than kafka.transaction_timeout".into(),
            );
        }
        self.security_checks(&c.kafka.security);
        self.registry_checks(&c.schema_registry);
        self.query_api_checks(c);
        if c.nations.is_empty() {
            self.errors
                .push("nations: list at least one member nation".into());
        }
        for n in &c.nations {
            if !rallypoint_core::validate::is_nation(n) {
                self.errors.push(format!(
                    "nations: {n:?} is not an ISO 3166-1 alpha-3 code in upper case"
                ));
            }
        }
    }
}

impl Reader {
    fn security_checks(&mut self, s: &KafkaSecurity) {
        let protocols = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
        if !protocols.contains(&s.protocol.as_str()) {
            self.errors.push(format!(
                "kafka.security_protocol: {:?} is not one of {}",
                s.protocol,
                protocols.join(", ")
            ));
        }
        if s.protocol.starts_with("sasl") {
            let mechanisms = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];
            if !mechanisms.contains(&s.sasl_mechanism.as_str()) {
                self.errors.push(format!(
                    "kafka.sasl_mechanism: {:?} is not one of {}",
                    s.sasl_mechanism,
                    mechanisms.join(", ")
                ));
            }
            if s.sasl_username.is_empty() || s.sasl_password.0.is_empty() {
                self.errors.push("kafka.sasl_username and kafka.sasl_password are required with a sasl_* protocol (set the password through RALLYPOINT__KAFKA__SASL_PASSWORD)".into());
            }
        }
        let files = [
            ("kafka.ssl_ca_location", &s.ssl_ca_location),
            (
                "kafka.ssl_certificate_location",
                &s.ssl_certificate_location,
            ),
            ("kafka.ssl_key_location", &s.ssl_key_location),
        ];
        for (key, path) in files {
            if !path.is_empty() && !std::path::Path::new(path).is_file() {
                self.errors
                    .push(format!("{key}: {path:?} is not a readable file"));
            }
        }
        if s.ssl_certificate_location.is_empty() != s.ssl_key_location.is_empty() {
            self.errors.push(
                "kafka.ssl_certificate_location and kafka.ssl_key_location go together".into(),
            );
        }
    }
}

impl Reader {
    fn query_api_checks(&mut self, c: &Config) {
        let q = &c.query_api;
        let mut seen: Vec<(&crate::auth::Audience, &str)> = Vec::new();
        for (audience, token) in &q.tokens {
            let name = audience.to_string();
            if let crate::auth::Audience::Nation(n) = audience {
                if !c.nations.contains(n) {
                    self.errors.push(format!(
                        "query_api.tokens.{name}: an audience is cell or one of the nations ({})",
                        c.nations.join(", ")
                    ));
                }
            }
            let t = token.0.as_str();
            if t.len() < MIN_TOKEN_LEN || !t.bytes().all(is_token68) {
                self.errors.push(format!(
                    "query_api.tokens.{name}: a token is at least {MIN_TOKEN_LEN} of A-Z a-z 0-9 - . _ ~ + / = (e.g. openssl rand -hex 32)"
                ));
            }
            if let Some((other, _)) = seen.iter().find(|(_, s)| *s == t) {
                self.errors.push(format!(
                    "query_api.tokens.{name}: the same token as {other}'s; each audience needs its own"
                ));
            }
            seen.push((audience, t));
        }
        if let Some(tls) = &q.tls {
            check_pem(&mut self.errors, tls);
        }
        if !q.enabled {
            return;
        }
        if q.tokens.is_empty() {
            self.errors.push("query_api.enabled: the query API needs at least one token: RALLYPOINT__QUERY_API__TOKENS__CELL for the coordination cell, RALLYPOINT__QUERY_API__TOKENS__<NATION> for a nation".into());
        }
        let (a, b) = (q.listen, c.http_listen);
        if a.port() != 0
            && a.port() == b.port()
            && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        {
            self.errors.push(format!(
                "query_api.listen: {a} is the metrics listener's (http.listen {b}); the query API needs a port of its own"
            ));
        }
        let kafka_tls = matches!(c.kafka.security.protocol.as_str(), "ssl" | "sasl_ssl");
        if kafka_tls && q.tls.is_none() && !a.ip().is_loopback() {
            self.errors.push(format!(
                "query_api.listen: {a} would carry the query API's tokens in clear while Kafka uses TLS (kafka.security_protocol = {}): set query_api.tls_cert and query_api.tls_key, or listen on a loopback address",
                c.kafka.security.protocol
            ));
        }
    }
}

/// The characters of a bearer token (RFC 6750 `b64token`).
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

/// Reads the query API's certificate chain and key, as the server will: every problem listed.
fn check_pem(errors: &mut Vec<String>, tls: &TlsFiles) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    match CertificateDer::pem_file_iter(&tls.cert) {
        Err(e) => errors.push(format!("query_api.tls_cert: {:?}: {e}", tls.cert)),
        Ok(certs) => match certs.collect::<Result<Vec<_>, _>>() {
            Ok(chain) if !chain.is_empty() => {}
            Ok(_) => errors.push(format!(
                "query_api.tls_cert: {:?} holds no PEM certificate",
                tls.cert
            )),
            Err(e) => errors.push(format!("query_api.tls_cert: {:?}: {e}", tls.cert)),
        },
    }
    if let Err(e) = PrivateKeyDer::from_pem_file(&tls.key) {
        errors.push(format!(
            "query_api.tls_key: {:?} holds no readable PEM private key ({e})",
            tls.key
        ));
    }
}

impl Reader {
    fn registry_checks(&mut self, r: &SchemaRegistryConfig) {
        let has_credentials = !r.username.is_empty() || !r.password.0.is_empty();
        if r.url.is_empty() {
            if has_credentials || !r.ca_location.is_empty() {
                self.errors.push(
                    "schema_registry.username, password and ca_location need a schema_registry.url"
                        .into(),
                );
            }
            return;
        }
        match registry_url(&r.url) {
            Err(why) => self.errors.push(format!("schema_registry.url: {why}")),
            Ok((https, loopback)) => {
                if has_credentials && !https && !loopback {
                    self.errors.push("schema_registry.password would cross the network in clear: use an https:// schema_registry.url".into());
                }
                if !r.ca_location.is_empty() && !https {
                    self.errors.push(
                        "schema_registry.ca_location is only used with an https:// schema_registry.url"
                            .into(),
                    );
                }
            }
        }
        if r.username.is_empty() != r.password.0.is_empty() {
            self.errors.push("schema_registry.username and schema_registry.password go together (set the password through RALLYPOINT__SCHEMA_REGISTRY__PASSWORD)".into());
        }
        if !r.ca_location.is_empty() && !Path::new(&r.ca_location).is_file() {
            self.errors.push(format!(
                "schema_registry.ca_location: {:?} is not a readable file",
                r.ca_location
            ));
        }
    }
}

/// Checks a registry URL: (is it https, is its host a loopback address), or what is wrong.
/// The URL is logged, so it must not carry credentials.
fn registry_url(url: &str) -> Result<(bool, bool), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url:?} must start with http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} names no host"))?;
    if authority.as_str().contains('@') {
        return Err("credentials do not belong in the URL, which is logged: set schema_registry.username and RALLYPOINT__SCHEMA_REGISTRY__PASSWORD".into());
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} must have no query or fragment"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok((https, loopback))
}

fn flatten(prefix: &str, table: config::Map<String, config::Value>, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v.clone().into_table() {
            Ok(inner) if key != "nations" => flatten(&key, inner, out),
            _ => out.push(key),
        }
    }
}

impl Config {
    /// A topic or id name under the configured namespace.
    pub fn name(&self, base: &str) -> String {
        if self.kafka.namespace.is_empty() {
            base.to_owned()
        } else {
            format!("{}.{base}", self.kafka.namespace)
        }
    }

    /// The core's parameters.
    pub fn core(&self) -> rallypoint_core::CoreConfig {
        let p = &self.picture;
        rallypoint_core::CoreConfig {
            acceptance_timeout_ms: self.coordinator.acceptance_timeout.as_millis() as i64,
            picture: rallypoint_core::picture::PictureConfig {
                windows_ms: p.windows.iter().map(|w| w.as_millis() as i64).collect(),
                allowed_lateness_ms: p.allowed_lateness.as_millis() as i64,
                emit_interval_ms: p.emit_interval.as_millis() as i64,
                fanout_cap: p.fanout_cap,
                top: p.top,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(toml: &str) -> Result<Config, ConfigErrors> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        Config::load_with_env(
            Some(f.path()),
            Environment::with_prefix("RALLYPOINT_TEST_NONE"),
        )
    }

    #[test]
    fn the_embedded_defaults_are_valid() {
        let c = load("").unwrap();
        assert_eq!(c.topics.decisions_format, Format::Avro);
        assert_eq!(c.kafka.guarantee, Guarantee::ExactlyOnce);
        assert!(!c.nations.is_empty());
    }

    #[test]
    fn every_bad_value_is_listed_at_once() {
        let err = load(
            "nations = [\"est\"]\n[kafka]\ncommit_interval = \"soon\"\nmax_batch = 0\nsession_timeout = \"100ms\"\nprocessing_guarantee = \"exactly_once\"\n[http]\nlisten = \"nowhere\"\n[topics]\ndecisions_format = \"xml\"\ncolour = 3\n",
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "\"est\"",
            "kafka.commit_interval",
            "kafka.max_batch",
            "kafka.session_timeout",
            "kafka.processing_guarantee",
            "http.listen",
            "xml",
            "topics.colour: unknown setting",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(err.0.len() >= 6, "{text}");
    }

    #[test]
    fn sasl_needs_a_mechanism_and_credentials_and_the_password_never_prints() {
        let err = load("[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"GSSAPI\"\nssl_ca_location = \"/nonexistent/ca.pem\"\n").unwrap_err();
        let text = err.to_string();
        for needle in [
            "kafka.sasl_mechanism",
            "kafka.sasl_username and kafka.sasl_password",
            "/nonexistent/ca.pem",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        let ok = load("[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"est-feed\"\nsasl_password = \"hunter2\"\n").unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
        assert_eq!(ok.kafka.security.sasl_password.0, "hunter2");
    }

    #[test]
    fn no_registry_is_the_default() {
        let c = load("").unwrap();
        assert!(!c.schema_registry.is_configured());
        assert_eq!(c.schema_registry.timeout, Duration::from_secs(5));
    }

    #[test]
    fn every_bad_registry_setting_is_listed_and_the_password_never_prints() {
        let err = load("[schema_registry]\nurl = \"ftp://registry\"\nusername = \"rp\"\nca_location = \"/nonexistent/ca.pem\"\ntimeout = \"0s\"\n").unwrap_err();
        let text = err.to_string();
        for needle in [
            "schema_registry.url: \"ftp://registry\" must start with http:// or https://",
            "schema_registry.username and schema_registry.password go together",
            "/nonexistent/ca.pem",
            "schema_registry.timeout",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        let leaky =
            load("[schema_registry]\nurl = \"https://rp:hunter2@registry:8081\"\n").unwrap_err();
        assert!(leaky
            .to_string()
            .contains("credentials do not belong in the URL"));
        let clear = load("[schema_registry]\nurl = \"http://registry.example:8081\"\nusername = \"rp\"\npassword = \"hunter2\"\n").unwrap_err();
        assert!(clear.to_string().contains("in clear"), "{clear}");
        let orphan =
            load("[schema_registry]\nusername = \"rp\"\npassword = \"hunter2\"\n").unwrap_err();
        assert!(orphan.to_string().contains("need a schema_registry.url"));
        let ok = load("[schema_registry]\nurl = \"https://registry.example:8081/apis/ccompat/v7\"\nusername = \"rp\"\npassword = \"hunter2\"\n").unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
        assert_eq!(ok.schema_registry.password.0, "hunter2");
        let local = load("[schema_registry]\nurl = \"http://127.0.0.1:8081\"\nusername = \"rp\"\npassword = \"hunter2\"\n");
        assert!(local.is_ok(), "loopback may go without TLS");
    }

    #[test]
    fn the_registry_settings_come_from_the_environment_too() {
        let env = Environment::with_prefix("RPTEST").source(Some(
            [
                (
                    "RPTEST__SCHEMA_REGISTRY__URL",
                    "https://registry.example:8081",
                ),
                ("RPTEST__SCHEMA_REGISTRY__USERNAME", "rallypoint"),
                ("RPTEST__SCHEMA_REGISTRY__PASSWORD", "12345"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ));
        let c = Config::load_with_env(None, env).unwrap();
        assert_eq!(c.schema_registry.url, "https://registry.example:8081");
        assert_eq!(c.schema_registry.username, "rallypoint");
        assert_eq!(c.schema_registry.password.0, "12345");
    }

    /// As `load`, with `vars` (without the prefix) as the environment.
    fn load_env(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        let env = Environment::with_prefix("RPTEST").source(Some(
            vars.iter()
                .map(|(k, v)| (format!("RPTEST__{k}"), v.to_string()))
                .collect(),
        ));
        Config::load_with_env(Some(f.path()), env)
    }

    const CELL: &str = "cell-0123456789abcdef0123456789abcdef";
    const EST: &str = "est-0123456789abcdef0123456789abcdef";

    #[test]
    fn the_query_api_is_off_by_default_on_a_loopback_port_of_its_own() {
        let c = load("").unwrap();
        assert!(!c.query_api.enabled);
        assert_eq!(c.query_api.listen, "127.0.0.1:9465".parse().unwrap());
        assert_ne!(c.query_api.listen, c.http_listen);
        assert!(c.query_api.tls.is_none() && c.query_api.tokens.is_empty());
    }

    #[test]
    fn the_query_api_tokens_come_from_the_environment_per_audience_and_never_print() {
        let c = load_env(
            "[query_api]\nenabled = true\n",
            &[
                ("QUERY_API__TOKENS__CELL", CELL),
                ("QUERY_API__TOKENS__EST", EST),
            ],
        )
        .unwrap();
        assert!(c.query_api.enabled);
        let mut tokens: Vec<(String, String)> = c
            .query_api
            .tokens
            .iter()
            .map(|(a, t)| (a.to_string(), t.0.clone()))
            .collect();
        tokens.sort();
        assert_eq!(
            tokens,
            vec![("EST".into(), EST.into()), ("cell".into(), CELL.into())]
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains(CELL) && !debug.contains(EST), "{debug}");
    }

    #[test]
    fn every_query_api_error_is_listed_at_once() {
        let err = load_env(
            "[kafka]\nsecurity_protocol = \"ssl\"\n[http]\nlisten = \"0.0.0.0:9464\"\n\
             [query_api]\nenabled = true\nlisten = \"0.0.0.0:9464\"\ntls_cert = \"/nonexistent/api.crt\"\n",
            &[
                ("QUERY_API__TOKENS__CELL", "short"),
                ("QUERY_API__TOKENS__XYZ", EST),
                ("QUERY_API__TOKENS__EST", EST),
                ("QUERY_API__TOKENS__LVA", "has spaces in it, which a bearer token cannot"),
            ],
        )
        .unwrap_err();
        let text = err.to_string();
        for needle in [
            "query_api.tls_cert and query_api.tls_key go together",
            "/nonexistent/api.crt",
            "query_api.listen: 0.0.0.0:9464 is the metrics listener's",
            "in clear while Kafka uses TLS",
            "query_api.tokens.cell: a token is at least 32",
            "query_api.tokens.LVA: a token is at least 32",
            "query_api.tokens.XYZ: an audience is cell or one of the nations",
            "the same token as",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(!text.contains(EST), "a token printed:\n{text}");
        assert!(err.0.len() >= 8, "{text}");
    }

    #[test]
    fn an_enabled_query_api_needs_a_token_and_tokens_never_come_from_a_file() {
        let none = load("[query_api]\nenabled = true\n").unwrap_err();
        assert!(
            none.to_string().contains("needs at least one token"),
            "{none}"
        );
        let file = load(&format!(
            "[query_api]\nenabled = true\n[query_api.tokens]\ncell = \"{CELL}\"\n"
        ))
        .unwrap_err();
        let text = file.to_string();
        assert!(
            text.contains("query_api.tokens: set the tokens through the environment"),
            "{text}"
        );
        assert!(!text.contains(CELL), "{text}");
    }

    #[test]
    fn beside_kafka_tls_the_query_api_needs_tls_off_loopback() {
        let kafka_tls = "[kafka]\nsecurity_protocol = \"sasl_ssl\"\nsasl_username = \"rp\"\nsasl_password = \"pw\"\n";
        let env = [("QUERY_API__TOKENS__CELL", CELL)];
        let loopback = load_env(
            &format!("{kafka_tls}[query_api]\nenabled = true\nlisten = \"127.0.0.1:9465\"\n"),
            &env,
        );
        assert!(
            loopback.is_ok(),
            "loopback may go without TLS: {loopback:?}"
        );
        let open = format!("{kafka_tls}[query_api]\nenabled = true\nlisten = \"0.0.0.0:9465\"\n");
        let err = load_env(&open, &env).unwrap_err();
        assert!(
            err.to_string().contains("in clear while Kafka uses TLS"),
            "{err}"
        );
        // Plain Kafka: a plain API is the deployer's choice.
        assert!(load_env(
            "[query_api]\nenabled = true\nlisten = \"0.0.0.0:9465\"\n",
            &env
        )
        .is_ok());

        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (dir.path().join("api.crt"), dir.path().join("api.key"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let tls = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        );
        let c = load_env(&format!("{open}{tls}"), &env).unwrap();
        assert!(c.query_api.tls.is_some());
        // A key where the certificate goes, and the other way round: both listed.
        let swapped = format!(
            "{open}tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            key.display(),
            cert.display()
        );
        let err = load_env(&swapped, &env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("query_api.tls_cert:"), "{text}");
        assert!(text.contains("query_api.tls_key:"), "{text}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"[kafka]\nbootstrap_servers = \"file:9092\"\n")
            .unwrap();
        let env = Environment::with_prefix("RPTEST").source(Some(
            [
                (
                    "RPTEST__KAFKA__BOOTSTRAP_SERVERS".to_string(),
                    "env:9092".to_string(),
                ),
                ("RPTEST__NATIONS".to_string(), "EST,LVA".to_string()),
            ]
            .into_iter()
            .collect(),
        ));
        let c = Config::load_with_env(Some(f.path()), env).unwrap();
        assert_eq!(c.kafka.bootstrap_servers, "env:9092");
        assert_eq!(c.nations, vec!["EST", "LVA"]);
    }
}
