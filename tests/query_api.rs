//! The query API on its own listener, against the real broker: a bearer token per audience
//! (401 without or with a wrong one, 403 for another audience's view), TLP 2.0 on what each
//! audience sees, the metrics listener open and without the API, and TLS with a certificate
//! made for the test.

use rallypoint_testkit as common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_request, try_http_get, Harness};
use rallypoint_core::event::{Capability, Priority, Tlp};
use rallypoint_core::sample::Clock;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// The open requests as `audience` sees them, once `want` of them are there.
fn requests(h: &Harness, path: &str, audience: &str, want: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (status, body) = h.api_get_ready(path, Some(audience), WAIT);
        assert_eq!(status, 200, "{body}");
        let list: Vec<Value> = serde_json::from_str(&body).unwrap();
        if list.len() >= want {
            return list;
        }
        assert!(started.elapsed() < WAIT, "{body}\n{}", h.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn by_id<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|r| r["request_id"] == id)
        .unwrap_or_else(|| panic!("{id} missing from {list:?}"))
}

/// The keys of a JSON object whose value is not null.
fn shown(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.as_str())
        .collect();
    keys.sort();
    keys
}

#[test]
fn each_audience_sees_what_it_may_on_a_listener_of_its_own() {
    let mut h = Harness::with_query_api("query-api", &["EST", "LVA", "LTU"], "", "", "");
    h.start();
    assert!(h.wait_ready(WAIT), "{}", h.log());
    let mut clock = Clock::new(rallypoint::kafka::now_ms() - 60_000, 500);
    h.ask_for_help(
        &mut clock,
        ("EST", "I-red", "R-red"),
        (Tlp::Red, Priority::Severe),
        &[(Capability::Forensics, 1)],
    );
    h.ask_for_help(
        &mut clock,
        ("LVA", "I-strict", "R-strict"),
        (Tlp::AmberStrict, Priority::High),
        &[(Capability::IcsOt, 2)],
    );

    // The cell: every nation's requests, RED ones with ids and capability only; AMBER_STRICT
    // in full (the cell may see it).
    let cell = requests(&h, "/api/v1/requests", "cell", 2);
    let red = by_id(&cell, "R-red");
    assert_eq!(
        shown(red),
        vec![
            "assignments",
            "incident_id",
            "nation",
            "needs",
            "request_id",
            "requested_at",
            "tlp"
        ],
        "RED, as the cell sees it: {red}"
    );
    assert_eq!(red["tlp"], "RED");
    assert_eq!(red["needs"][0]["capability"], "forensics", "{red}");
    let strict = by_id(&cell, "R-strict");
    assert_eq!(strict["priority"], "High", "{strict}");
    assert!(!strict["sector"].is_null(), "{strict}");

    // A nation: its own requests in full, RED included.
    let own = requests(&h, "/api/v1/requests?nation=EST", "EST", 1);
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["request_id"], "R-red");
    assert_eq!(own[0]["priority"], "Severe", "{own:?}");
    assert!(!own[0]["sector"].is_null(), "{own:?}");
    let own = requests(&h, "/api/v1/requests?nation=LVA", "LVA", 1);
    assert_eq!(own[0]["request_id"], "R-strict");

    // 403 for another audience's view.
    for path in [
        "/api/v1/requests?nation=LVA",
        "/api/v1/requests",
        "/api/v1/picture",
        "/api/v1/picture?scope=nation:EST",
        "/api/v1/campaigns",
    ] {
        let (status, _, body) = h.api_get(path, Some("EST"));
        assert_eq!(status, 403, "EST on {path}: {body}");
        assert!(
            !body.contains("R-strict") && !body.contains("R-red"),
            "{body}"
        );
    }
    // The cell's own views.
    for path in ["/api/v1/picture", "/api/v1/campaigns"] {
        let (status, body) = h.api_get_ready(path, Some("cell"), WAIT);
        assert_eq!(status, 200, "cell on {path}: {body}");
    }

    // 401, with a Bearer challenge, without a token, with a wrong one or another scheme; an
    // unknown path too, so that nothing is learnt without a token.
    let wrong = format!("Bearer {}", "x".repeat(40));
    let almost = format!("Bearer {}x", h.token("cell"));
    let basic = format!("Basic {}", h.token("cell"));
    for path in ["/api/v1/requests", "/api/v1/picture", "/api/v1/nothing"] {
        for auth in [None, Some(wrong.as_str()), Some(&almost), Some(&basic)] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
            let (status, head, body) = http_request(h.query_port, path, &headers).unwrap();
            assert_eq!(status, 401, "{path} with {auth:?}: {body}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("\r\nwww-authenticate: bearer"),
                "{head}"
            );
            assert!(!body.contains("R-red"), "{body}");
        }
    }
    let (status, _, _) = h.api_get("/api/v1/nothing", Some("cell"));
    assert_eq!(status, 404);
    let (status, _, _) = h.api_get("/metrics", Some("cell"));
    assert_eq!(status, 404, "metrics are not on the query API's listener");

    // The metrics listener: open, and without the API.
    let (status, body) = h.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("rallypoint_stage_ready"), "{body}");
    assert_eq!(h.http_get("/healthz").0, 200);
    assert_eq!(h.http_get("/readyz").0, 200);
    for path in [
        "/api/v1/requests",
        "/api/v1/requests?nation=EST",
        "/api/v1/picture",
        "/api/v1/campaigns",
    ] {
        let (status, body) = h.http_get(path);
        assert_eq!(status, 404, "{path} on the metrics listener: {body}");
        let auth = format!("Bearer {}", h.token("cell"));
        let (status, _, body) =
            http_request(h.http_port, path, &[("Authorization", &auth)]).unwrap();
        assert_eq!(status, 404, "{path} on the metrics listener: {body}");
    }
    let log = h.log();
    for (_, token) in &h.tokens {
        assert!(!log.contains(token.as_str()), "a token in the log:\n{log}");
    }
}

/// An agent that trusts `cert` (DER) alone.
fn agent_trusting(cert: &[u8]) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&[
                    Certificate::from_der(cert).to_owned()
                ]))
                .build(),
        )
        .build()
        .into()
}

#[test]
fn the_query_api_serves_tls_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut h = Harness::with_query_api(
        "query-tls",
        &["EST"],
        "",
        "",
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    h.start();
    assert!(h.wait_ready(WAIT), "{}", h.log());
    let url = format!("https://127.0.0.1:{}/api/v1/campaigns", h.query_port);
    let agent = agent_trusting(made.cert.der());
    let started = Instant::now();
    loop {
        let answer = agent
            .get(&url)
            .header("Authorization", format!("Bearer {}", h.token("cell")))
            .call();
        match answer {
            Ok(mut r) if r.status() == 200 => {
                let body = r.body_mut().read_to_string().unwrap();
                assert!(body.starts_with('['), "{body}");
                break;
            }
            other => assert!(
                started.elapsed() < WAIT,
                "{:?}\n{}",
                other.map(|r| r.status()),
                h.log()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = agent.get(&url).call().unwrap();
    assert_eq!(r.status(), 401, "no token over TLS either");
    let r = agent
        .get(&url)
        .header("Authorization", format!("Bearer {}", h.token("EST")))
        .call()
        .unwrap();
    assert_eq!(r.status(), 403);
    // A client that does not trust the certificate gets no answer; nor does plain HTTP.
    let stranger: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    assert!(
        stranger.get(&url).call().is_err(),
        "an untrusted certificate"
    );
    let plain = http_request(
        h.query_port,
        "/api/v1/campaigns",
        &[("Authorization", &format!("Bearer {}", h.token("cell")))],
    );
    assert!(
        !matches!(plain, Ok((200, _, _))),
        "plain HTTP on the TLS port: {plain:?}"
    );
    // The metrics listener stays plain HTTP.
    assert_eq!(try_http_get(h.http_port, "/healthz").unwrap().0, 200);
}

/// No broker needed: the configuration is refused before anything connects.
#[test]
fn a_plain_query_api_off_loopback_beside_kafka_tls_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rallypoint.toml");
    let port = free_port();
    let write = |listen: &str| {
        std::fs::write(
            &config,
            format!(
                "nations = [\"EST\"]\n[kafka]\nbootstrap_servers = \"127.0.0.1:1\"\nsecurity_protocol = \"ssl\"\n\
                 [http]\nlisten = \"127.0.0.1:{}\"\n[query_api]\nenabled = true\nlisten = \"{listen}\"\n\
                 [state]\ndir = \"{}\"\n",
                free_port(),
                dir.path().join("state").display()
            ),
        )
        .unwrap()
    };
    write(&format!("0.0.0.0:{port}"));
    let token = format!("cell-{}", uuid::Uuid::new_v4().simple());
    let out = Command::new(env!("CARGO_BIN_EXE_rallypoint"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("RALLYPOINT__QUERY_API__TOKENS__CELL", &token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("in clear while Kafka uses TLS"), "{stderr}");
    assert!(!stderr.contains(&token), "the token printed:\n{stderr}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens"
    );
}
