//! Configuration in layers: embedded defaults < TOML file < `RALLYPOINT__SECTION__KEY`
//! environment variables. Every key is typed once, as a field of [`Raw`]'s sections (durations,
//! addresses, counts and names parsed there); a value its type refuses is that key's error and
//! the reading goes on, so *every* bad value is reported, not just the first; unknown keys are
//! errors too (a typo must not pass silently). Then one validation ([`Reader::cross_checks`]
//! and the checks beside it) adds what no single key can say.
//!
//! librdkafka settings are never passed through: only the options below reach the client, so no
//! configuration can name a library or plugin path for it to load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config as Layers, Environment, File, FileFormat};
use serde::de::DeserializeOwned;
use serde::Deserialize;

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
    pub hunt: HuntSettings,
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Guarantee {
    /// Outputs, changelog and input offsets commit in one transaction: each input counts once.
    #[default]
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

/// How campaigns' hunt packages are published on the members' hunt topics.
#[derive(Clone, Debug)]
pub struct HuntSettings {
    /// At most this many indicators of one campaign are published; the rest are truncated.
    pub max_indicators: usize,
    /// How long, in stream time, a retired indicator's record stays on the hunt topics before
    /// a tombstone removes it.
    pub tombstone_after: Duration,
    /// At most this many indicators are newly published per hour of stream time.
    pub max_new_per_hour: u32,
}

/// The longest `hunt.tombstone_after` accepted: ten years, far below where stream time plus it
/// would overflow.
const MAX_TOMBSTONE_AFTER: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Every problem found, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

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

    /// The value of a field, or its error under `key` (and `T`'s default, so that reading
    /// goes on and every other error is found too).
    fn take<T: Default>(&mut self, key: &str, field: Checked<T>) -> T {
        match field {
            Checked::Ok(v) => v,
            Checked::Bad(why) => self.fail(key, &why),
        }
    }

    fn fail<T: Default>(&mut self, key: &str, why: &str) -> T {
        self.errors.push(format!("{key}: {why}"));
        T::default()
    }

    /// A non-empty list of window sizes, each a whole number of seconds.
    fn windows(&mut self, key: &str, texts: Vec<String>) -> Vec<Duration> {
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

    /// Reads the layers into their typed shape ([`Raw`]), every unknown key an error.
    fn raw(&mut self) -> Option<Raw> {
        let mut unknown = Vec::new();
        let raw = serde_ignored::deserialize(self.layers.cache.clone(), |path| {
            unknown.push(path.to_string())
        });
        for key in unknown {
            self.errors.push(format!("{key}: unknown setting"));
        }
        match raw {
            Ok(raw) => Some(raw),
            Err(e) => {
                self.errors.push(e.to_string());
                None
            }
        }
    }

    fn finish(mut self) -> Result<Config, ConfigErrors> {
        let Some(raw) = self.raw() else {
            return Err(ConfigErrors(self.errors));
        };
        // Each key is named once, by its field's path in `Raw`.
        macro_rules! take {
            ($($key:ident).+) => {
                self.take(stringify!($($key).+), raw.$($key).+)
            };
        }
        let kafka = KafkaConfig {
            bootstrap_servers: take!(kafka.bootstrap_servers),
            namespace: take!(kafka.namespace),
            instance_id: take!(kafka.instance_id),
            transaction_timeout: take!(kafka.transaction_timeout).0,
            commit_interval: take!(kafka.commit_interval).0,
            max_batch: take!(kafka.max_batch).0 as usize,
            session_timeout: take!(kafka.session_timeout).0,
            guarantee: take!(kafka.processing_guarantee),
            security: KafkaSecurity {
                protocol: take!(kafka.security_protocol),
                sasl_mechanism: take!(kafka.sasl_mechanism),
                sasl_username: take!(kafka.sasl_username),
                sasl_password: take!(kafka.sasl_password),
                ssl_ca_location: take!(kafka.ssl_ca_location),
                ssl_certificate_location: take!(kafka.ssl_certificate_location),
                ssl_key_location: take!(kafka.ssl_key_location),
            },
        };
        let windows = take!(picture.windows);
        let tls_cert = take!(query_api.tls_cert);
        let tls_key = take!(query_api.tls_key);
        let tokens = take!(query_api.tokens);
        let query_api = QueryApiConfig {
            enabled: take!(query_api.enabled),
            listen: take!(query_api.listen).0,
            tls: self.tls(tls_cert, tls_key),
            tokens: tokens_by_audience(tokens),
        };
        let config = Config {
            nations: take!(nations),
            state_dir: take!(state.dir).into(),
            http_listen: take!(http.listen).0,
            query_api,
            topics: TopicsConfig {
                input_partitions: take!(topics.input_partitions).0 as i32,
                output_partitions: take!(topics.output_partitions).0 as i32,
                replication_factor: take!(topics.replication_factor).0 as i32,
                decisions_format: take!(topics.decisions_format).0,
            },
            intake: IntakeConfig {
                max_record_bytes: take!(intake.max_record_bytes).0 as usize,
                max_future: take!(intake.max_future).0,
            },
            coordinator: CoordinatorConfig {
                acceptance_timeout: take!(coordinator.acceptance_timeout).0,
            },
            picture: PictureSettings {
                windows: self.windows("picture.windows", windows),
                allowed_lateness: take!(picture.allowed_lateness).0,
                emit_interval: take!(picture.emit_interval).0,
                fanout_cap: take!(picture.fanout_cap).0 as u32,
                top: take!(picture.top).0 as usize,
            },
            hunt: HuntSettings {
                max_indicators: take!(hunt.max_indicators).0 as usize,
                tombstone_after: take!(hunt.tombstone_after).0,
                max_new_per_hour: u32::try_from(take!(hunt.max_new_per_hour).0).unwrap_or(u32::MAX),
            },
            schema_registry: SchemaRegistryConfig {
                url: take!(schema_registry.url).trim().to_owned(),
                username: take!(schema_registry.username),
                password: take!(schema_registry.password),
                ca_location: take!(schema_registry.ca_location),
                timeout: take!(schema_registry.timeout).0,
            },
            log: LogConfig {
                format: take!(log.format),
                level: take!(log.level),
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

    /// Both TLS files or neither.
    fn tls(&mut self, cert: String, key: String) -> Option<TlsFiles> {
        match (cert.is_empty(), key.is_empty()) {
            (true, true) => None,
            (false, false) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            _ => {
                self.errors
                    .push("query_api.tls_cert and query_api.tls_key go together".into());
                for (name, path) in [("query_api.tls_cert", &cert), ("query_api.tls_key", &key)] {
                    if !path.is_empty() && !Path::new(path).is_file() {
                        self.errors
                            .push(format!("{name}: {path:?} is not a readable file"));
                    }
                }
                None
            }
        }
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
        if c.hunt.tombstone_after > MAX_TOMBSTONE_AFTER {
            self.errors.push(format!(
                "hunt.tombstone_after: {} must be at most 10 years",
                humantime::format_duration(c.hunt.tombstone_after)
            ));
        }
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

/// The query API's tokens by audience. An empty variable is no token (as compose passes an
/// unset one).
fn tokens_by_audience(
    tokens: std::collections::BTreeMap<String, String>,
) -> Vec<(crate::auth::Audience, Secret)> {
    tokens
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
        .collect()
}

/// **Every configuration key, typed once**: the sections of `config/defaults.toml` (which gives
/// each key its default) as the layers are read into them. A key not here is an unknown setting;
/// a value its type refuses is that key's error ([`Checked`]), and the reading goes on, so a bad
/// file lists all its errors at once.
#[derive(Deserialize)]
struct Raw {
    nations: Checked<Vec<String>>,
    kafka: RawKafka,
    state: RawState,
    http: RawHttp,
    query_api: RawQueryApi,
    topics: RawTopics,
    intake: RawIntake,
    coordinator: RawCoordinator,
    picture: RawPicture,
    hunt: RawHunt,
    log: RawLog,
    schema_registry: RawSchemaRegistry,
}

#[derive(Deserialize)]
struct RawKafka {
    bootstrap_servers: Checked<String>,
    namespace: Checked<String>,
    instance_id: Checked<String>,
    transaction_timeout: Checked<Span>,
    commit_interval: Checked<Span>,
    max_batch: Checked<AtLeastOne>,
    session_timeout: Checked<Span>,
    processing_guarantee: Checked<Guarantee>,
    security_protocol: Checked<String>,
    sasl_mechanism: Checked<String>,
    sasl_username: Checked<String>,
    sasl_password: Checked<Secret>,
    ssl_ca_location: Checked<String>,
    ssl_certificate_location: Checked<String>,
    ssl_key_location: Checked<String>,
}

#[derive(Deserialize)]
struct RawState {
    dir: Checked<String>,
}

#[derive(Deserialize)]
struct RawHttp {
    listen: Checked<Listen>,
}

#[derive(Deserialize)]
struct RawQueryApi {
    enabled: Checked<bool>,
    listen: Checked<Listen>,
    tls_cert: Checked<String>,
    tls_key: Checked<String>,
    /// From the environment only: the defaults hold none.
    #[serde(default)]
    tokens: Checked<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RawTopics {
    input_partitions: Checked<AtLeastOne>,
    output_partitions: Checked<AtLeastOne>,
    replication_factor: Checked<AtLeastOne>,
    decisions_format: Checked<FormatName>,
}

#[derive(Deserialize)]
struct RawIntake {
    max_record_bytes: Checked<AtLeastOne>,
    max_future: Checked<Span>,
}

#[derive(Deserialize)]
struct RawCoordinator {
    acceptance_timeout: Checked<Span>,
}

#[derive(Deserialize)]
struct RawPicture {
    windows: Checked<Vec<String>>,
    allowed_lateness: Checked<Span>,
    emit_interval: Checked<Span>,
    fanout_cap: Checked<AtLeastOne>,
    top: Checked<AtLeastOne>,
}

#[derive(Deserialize)]
struct RawHunt {
    max_indicators: Checked<AtLeastOne>,
    tombstone_after: Checked<Span>,
    max_new_per_hour: Checked<AtLeastOne>,
}

#[derive(Deserialize)]
struct RawLog {
    format: Checked<LogFormat>,
    level: Checked<String>,
}

#[derive(Deserialize)]
struct RawSchemaRegistry {
    url: Checked<String>,
    username: Checked<String>,
    password: Checked<Secret>,
    ca_location: Checked<String>,
    timeout: Checked<Span>,
}

/// A value, or why its key's type refused it: reading one never fails, so that every key is
/// read and every error found.
enum Checked<T> {
    Ok(T),
    Bad(String),
}

impl<T: Default> Default for Checked<T> {
    fn default() -> Self {
        Checked::Ok(T::default())
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = config::Value::deserialize(d)?;
        Ok(match value.try_deserialize::<T>() {
            Ok(v) => Checked::Ok(v),
            Err(e) => Checked::Bad(e.to_string()),
        })
    }
}

/// A duration like `100ms` or `30m`, more than zero.
#[derive(Default)]
struct Span(Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            Ok(d) if !d.is_zero() => Ok(Span(d)),
            Ok(_) => Err(serde::de::Error::custom("must be more than zero")),
            Err(e) => Err(serde::de::Error::custom(format!(
                "{text:?} is not a duration like 100ms or 30m ({e})"
            ))),
        }
    }
}

/// A whole number, at least 1.
#[derive(Default)]
struct AtLeastOne(i64);

impl<'de> Deserialize<'de> for AtLeastOne {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v < 1 {
            return Err(serde::de::Error::custom(format!("{v} must be at least 1")));
        }
        Ok(AtLeastOne(v))
    }
}

/// A listening address like `127.0.0.1:9464`.
struct Listen(SocketAddr);

impl Default for Listen {
    fn default() -> Self {
        Listen(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Listen).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not an address like 127.0.0.1:9464"))
        })
    }
}

/// A unit enum read from one of its `names`, with an error that lists them.
fn one_of<'de, D: serde::Deserializer<'de>, T: Copy>(
    d: D,
    names: &[(&str, T)],
) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    names
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            serde::de::Error::custom(format!("{text:?} is not {}", all.join(" or ")))
        })
}

impl<'de> Deserialize<'de> for Guarantee {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_of(
            d,
            &[
                ("exactly_once_v2", Guarantee::ExactlyOnce),
                ("at_least_once", Guarantee::AtLeastOnce),
            ],
        )
    }
}

/// A topic's output encoding, by name.
#[derive(Default)]
struct FormatName(Format);

impl<'de> Deserialize<'de> for FormatName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_of(d, &[("avro", Format::Avro), ("json", Format::Json)]).map(FormatName)
    }
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_of(d, &[("human", LogFormat::Human), ("json", LogFormat::Json)])
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
            hunt: rallypoint_core::hunt::HuntConfig {
                max_indicators: self.hunt.max_indicators,
                lists: rallypoint_core::hunt::warninglist::builtin(),
                // At most ten years (checked when read), so the milliseconds fit.
                tombstone_after_ms: i64::try_from(self.hunt.tombstone_after.as_millis())
                    .unwrap_or(i64::MAX),
                max_new_per_hour: self.hunt.max_new_per_hour,
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
    fn the_hunt_settings_default_and_reach_the_core() {
        let c = load("").unwrap();
        assert_eq!(c.hunt.max_indicators, 500);
        assert_eq!(
            c.hunt.tombstone_after,
            Duration::from_secs(7 * 24 * 60 * 60)
        );
        let core = c.core();
        assert_eq!(core.hunt, rallypoint_core::hunt::HuntConfig::default());
        let c =
            load("[hunt]\nmax_indicators = 20\ntombstone_after = \"36h\"\nmax_new_per_hour = 50\n")
                .unwrap();
        let core = c.core();
        assert_eq!(core.hunt.max_indicators, 20);
        assert_eq!(core.hunt.tombstone_after_ms, 36 * 60 * 60 * 1000);
        assert_eq!(core.hunt.max_new_per_hour, 50);
        assert!(!core.hunt.lists.lists().is_empty(), "the built-in lists");
    }

    #[test]
    fn every_bad_hunt_setting_is_listed_at_once() {
        let err = load("[hunt]\nmax_indicators = 0\ntombstone_after = \"0s\"\nmax_age = 3\n")
            .unwrap_err();
        let text = err.to_string();
        for needle in [
            "hunt.max_indicators: 0 must be at least 1",
            "hunt.tombstone_after: must be more than zero",
            "hunt.max_age: unknown setting",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(err.0.len(), 3, "{text}");
        for bad in ["\"soon\"", "\"-1d\"", "7"] {
            let err = load(&format!("[hunt]\ntombstone_after = {bad}\n")).unwrap_err();
            assert!(
                err.to_string().contains("hunt.tombstone_after"),
                "{bad}: {err}"
            );
        }
        let err = load("[hunt]\ntombstone_after = \"20years\"\n").unwrap_err();
        assert!(err.to_string().contains("at most 10 years"), "{err}");
        let err = load("[hunt]\nmax_indicators = \"many\"\n").unwrap_err();
        assert!(err.to_string().contains("hunt.max_indicators"), "{err}");
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
