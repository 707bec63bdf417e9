//! A blocking HTTP client of the Confluent Schema Registry API (what Confluent's registry,
//! Karapace and Apicurio's `ccompat` API serve).
//!
//! Blocking on purpose: the stages run on threads of their own, outside tokio, and look ids
//! up between two polls of their consumer. ureq brings no async runtime, so it cannot clash
//! with the tokio runtime that serves HTTP; it must not be called from an async task, where
//! it would hold up a worker thread (nothing does).

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::config::SchemaRegistryConfig;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/json";

/// Why a registry call failed, classified by what the caller must do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer, or an answer that says "not now" (5xx, 408, 429): wait and try again.
    #[error("schema registry at {url} is unavailable: {why}")]
    Unavailable { url: String, why: String },
    /// The registry said no: the request or Rallypoint's configuration must change (an
    /// incompatible schema, wrong credentials, a wrong URL).
    #[error("schema registry refused {what}: HTTP {status}: {message}")]
    Refused {
        what: String,
        status: u16,
        message: String,
    },
    /// Rallypoint's registry settings cannot be used (e.g. an unreadable CA file).
    #[error("schema registry settings: {0}")]
    Settings(String),
}

impl RegistryError {
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    /// The `Authorization` header value; never logged.
    auth: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("auth", &self.auth.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The `Authorization` value of HTTP basic authentication (RFC 7617).
pub fn basic_auth(username: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {token}")
}

impl Client {
    pub fn new(config: &SchemaRegistryConfig) -> Result<Self, RegistryError> {
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            .timeout_connect(Some(config.timeout.min(Duration::from_secs(5))))
            .user_agent(concat!("rallypoint/", env!("CARGO_PKG_VERSION")));
        if !config.ca_location.is_empty() {
            builder = builder.tls_config(tls_with_ca(&config.ca_location)?);
        }
        let auth =
            (!config.username.is_empty()).then(|| basic_auth(&config.username, &config.password.0));
        Ok(Self {
            agent: builder.build().new_agent(),
            base: config.url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Registers `schema` (self-contained Avro JSON) under `subject`; returns its id. The same
    /// schema registered again gets the same id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let what = format!("schema {subject}");
        let path = format!("/subjects/{}/versions", encode(subject));
        let v = self.post(&path, &json!({"schema": schema}), &what)?;
        id_of(&v, &what)
    }

    /// The id under which `schema` is registered in `subject`, if it is.
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let what = format!("the lookup of schema {subject}");
        let path = format!("/subjects/{}", encode(subject));
        match self.post(&path, &json!({"schema": schema}), &what) {
            Ok(v) => id_of(&v, &what).map(Some),
            Err(RegistryError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The schema text registered as `id`; `None` when the registry has no such id.
    pub fn schema_by_id(&self, id: u32) -> Result<Option<String>, RegistryError> {
        let what = format!("schema id {id}");
        let v = match self.call("GET", &format!("/schemas/ids/{id}"), None, &what) {
            Ok(v) => v,
            Err(RegistryError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let kind = v["schemaType"].as_str().unwrap_or("AVRO");
        match v["schema"].as_str() {
            // Not Avro (Protobuf, JSON Schema): it cannot be one of Rallypoint's schemas.
            Some(_) if kind != "AVRO" => Ok(Some(json!({"type": kind}).to_string())),
            Some(s) => Ok(Some(s.to_owned())),
            None => Err(RegistryError::Refused {
                what,
                status: 200,
                message: format!("the answer has no schema: {v}"),
            }),
        }
    }

    /// Sets the compatibility level (`BACKWARD`, `FULL_TRANSITIVE`, …) of `subject`.
    pub fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let what = format!("the compatibility of {subject}");
        let path = format!("/config/{}", encode(subject));
        self.call("PUT", &path, Some(&json!({"compatibility": level})), &what)
            .map(drop)
    }

    /// Whether the registry finds `schema` compatible with the latest version of `subject`,
    /// under the subject's compatibility level.
    pub fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        let what = format!("the compatibility check of {subject}");
        let path = format!(
            "/compatibility/subjects/{}/versions/latest",
            encode(subject)
        );
        let v = self.post(&path, &json!({"schema": schema}), &what)?;
        v["is_compatible"]
            .as_bool()
            .ok_or_else(|| RegistryError::Refused {
                what,
                status: 200,
                message: format!("the answer has no is_compatible: {v}"),
            })
    }

    fn post(&self, path: &str, body: &Value, what: &str) -> Result<Value, RegistryError> {
        self.call("POST", path, Some(body), what)
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, RegistryError> {
        let url = format!("{}{path}", self.base);
        let unavailable = |why: String| RegistryError::Unavailable {
            url: self.base.clone(),
            why,
        };
        let mut response = self
            .send(method, &url, body)
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| unavailable(format!("reading the answer: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            200..=299 => Ok(value),
            408 | 429 | 500..=599 => Err(unavailable(format!(
                "HTTP {status}: {}",
                message(&value, &text)
            ))),
            _ => Err(RegistryError::Refused {
                what: what.to_owned(),
                status,
                message: message(&value, &text),
            }),
        }
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        match (method, body) {
            ("GET", _) => self.with_headers(self.agent.get(url)).call(),
            ("PUT", Some(b)) => self
                .with_headers(self.agent.put(url))
                .header("Content-Type", CONTENT_TYPE)
                .send(b.to_string()),
            (_, b) => self
                .with_headers(self.agent.post(url))
                .header("Content-Type", CONTENT_TYPE)
                .send(b.map(Value::to_string).unwrap_or_default()),
        }
    }

    fn with_headers<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let r = r.header("Accept", ACCEPT);
        match &self.auth {
            Some(auth) => r.header("Authorization", auth),
            None => r,
        }
    }
}

/// The error message of a registry answer: its `message` field, else the start of the body.
fn message(v: &Value, text: &str) -> String {
    match v["message"].as_str() {
        Some(m) => m.to_owned(),
        None => text.chars().take(300).collect(),
    }
}

fn id_of(v: &Value, what: &str) -> Result<u32, RegistryError> {
    v["id"]
        .as_u64()
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| RegistryError::Refused {
            what: what.to_owned(),
            status: 200,
            message: format!("the answer has no schema id: {v}"),
        })
}

/// Percent-encodes a path segment (everything but RFC 3986's unreserved characters).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// TLS that trusts the CA certificates of a PEM file (and no others).
fn tls_with_ca(path: &str) -> Result<ureq::tls::TlsConfig, RegistryError> {
    use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
    let bad = |why: String| {
        RegistryError::Settings(format!("schema_registry.ca_location {path:?}: {why}"))
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_the_rfc_7617_encoding() {
        // The example of RFC 7617, section 2.
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn the_password_never_prints() {
        let config = SchemaRegistryConfig {
            url: "https://registry.example:8081/".into(),
            username: "rp".into(),
            password: crate::config::Secret("hunter2".into()),
            ca_location: String::new(),
            timeout: Duration::from_secs(1),
        };
        let client = Client::new(&config).unwrap();
        assert_eq!(client.url(), "https://registry.example:8081");
        let shown = format!("{client:?}");
        assert!(!shown.contains("hunter2") && !shown.contains(&basic_auth("rp", "hunter2")));
    }

    #[test]
    fn subjects_are_percent_encoded_in_paths() {
        assert_eq!(encode("rallypoint.Example_2"), "rallypoint.Example_2");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn an_unreachable_registry_is_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = SchemaRegistryConfig {
            url: format!("http://127.0.0.1:{port}"),
            timeout: Duration::from_secs(1),
            ..Default::default()
        };
        let err = Client::new(&config).unwrap().schema_by_id(1).unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
}
