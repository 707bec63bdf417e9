//! Two listeners. The metrics listener (`http.listen`), open to whoever reaches it and holding
//! nothing restricted: `/metrics` (Prometheus text format), `/healthz` (the process answers),
//! `/readyz` (every stage is ready: active, or standing by; see [`crate::status`]). And, when
//! `query_api.enabled`, the query API's own listener (`query_api.listen`, over TLS with
//! `query_api.tls_cert`/`tls_key`): the JSON views under `/api/v1/` (see [`crate::query`]),
//! each request authenticated by a bearer token and answered as its audience may see it (see
//! [`crate::auth`]).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum::{Extension, Json};
use prometheus::{Encoder, Registry, TextEncoder};

use crate::auth::{role_for, Audience, Tokens, View};
use crate::status::{Phase, StageStatus};

#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    /// (stage name, what it is doing).
    pub stages: Vec<(&'static str, Arc<StageStatus>)>,
    /// Updated from the stages and the watchdog at each scrape (`/readyz` mirrored for
    /// Prometheus, which cannot read it).
    pub metrics: crate::telemetry::Metrics,
    /// The watchdog's bound for the configured timeouts.
    pub watchdog_bound: std::time::Duration,
}

/// What the query API's handlers share.
#[derive(Clone)]
pub struct QueryState {
    /// The line to the coordinator, when this process runs one.
    pub client: Option<crate::query::Client>,
    pub tokens: Arc<Tokens>,
}

/// The metrics listener's routes: nothing restricted.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The query API's routes, every one of them (unknown paths too) behind [`authenticate`].
pub fn query_router(state: QueryState) -> Router {
    Router::new()
        .route("/api/v1/picture", get(picture))
        .route("/api/v1/campaigns", get(campaigns))
        .route("/api/v1/requests", get(requests))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such view".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// 401 with `WWW-Authenticate: Bearer` unless the request carries a configured token; else the
/// token's [`Audience`] goes on to the handler.
async fn authenticate(State(s): State<QueryState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer);
    let Some(audience) = presented.and_then(|t| s.tokens.audience(t)).cloned() else {
        let (challenge, why) = if presented.is_some() {
            (
                "Bearer realm=\"rallypoint\", error=\"invalid_token\"",
                "the token is not valid",
            )
        } else {
            (
                "Bearer realm=\"rallypoint\"",
                "send Authorization: Bearer <token>",
            )
        };
        let mut r = error(StatusCode::UNAUTHORIZED, why.into());
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        return r;
    };
    req.extensions_mut().insert(audience);
    next.run(req).await
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    s.metrics.observe_scrape(&s.stages, s.watchdog_bound);
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&s.registry.gather(), &mut body) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string().into_bytes(),
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        body,
    )
}

/// 200 when every stage is ready (a standing-by coordinator is), else 503; the body has one
/// line per stage, e.g. `coordinator: standby`.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let phases: Vec<(&str, Phase)> = s.stages.iter().map(|(n, st)| (*n, st.get())).collect();
    let ready = phases.iter().all(|(_, p)| p.is_ready());
    let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
    for (name, phase) in phases {
        body.push_str(&format!("{name}: {}\n", phase.name()));
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

#[derive(serde::Deserialize)]
struct ScopeParam {
    scope: Option<String>,
}

#[derive(serde::Deserialize)]
struct NationParam {
    nation: Option<String>,
}

/// How long a query waits for the coordinator's answer.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

async fn picture(
    State(s): State<QueryState>,
    Extension(audience): Extension<Audience>,
    params: Result<Query<ScopeParam>, QueryRejection>,
) -> Response {
    if role_for(&audience, &View::Picture).is_none() {
        return forbidden(&audience, "the picture is the coordination cell's");
    }
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return bad_request(e.body_text()),
    };
    let scope = p.scope.unwrap_or_else(|| "alliance".into());
    let valid = scope.len() <= 64
        && (scope == "alliance"
            || scope.split_once(':').is_some_and(|(kind, name)| {
                ["nation", "sector", "rsit", "priority"].contains(&kind)
                    && !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }));
    if !valid {
        return bad_request(format!(
            "scope {scope:?}: expected alliance, nation:<ALPHA3>, sector:<sector>, rsit:<class> or priority:<Priority>"
        ));
    }
    ask(&s, crate::query::Query::Picture { scope }).await
}

async fn campaigns(
    State(s): State<QueryState>,
    Extension(audience): Extension<Audience>,
) -> Response {
    if role_for(&audience, &View::Campaigns).is_none() {
        return forbidden(&audience, "the campaigns are the coordination cell's");
    }
    ask(&s, crate::query::Query::Campaigns).await
}

async fn requests(
    State(s): State<QueryState>,
    Extension(audience): Extension<Audience>,
    params: Result<Query<NationParam>, QueryRejection>,
) -> Response {
    let nation = match params {
        Ok(Query(p)) => p.nation,
        Err(e) => return bad_request(e.body_text()),
    };
    let Some(viewer) = role_for(&audience, &View::Requests(nation.as_deref())) else {
        return forbidden(
            &audience,
            "a nation sees its own requests only: /api/v1/requests?nation=<its own>",
        );
    };
    if let Some(n) = &nation {
        if !rallypoint_core::validate::is_nation(n) {
            return bad_request(format!("nation {n:?}: expected an ISO 3166-1 alpha-3 code"));
        }
    }
    ask(&s, crate::query::Query::Requests { nation, viewer }).await
}

async fn ask(s: &QueryState, q: crate::query::Query) -> Response {
    let Some(client) = &s.client else {
        return unavailable("no coordinator runs in this process".into());
    };
    match client.ask(q, PATIENCE).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e.to_string()),
    }
}

fn error(code: StatusCode, why: String) -> Response {
    (code, Json(serde_json::json!({ "error": why }))).into_response()
}

fn forbidden(audience: &Audience, why: &str) -> Response {
    error(StatusCode::FORBIDDEN, format!("{audience}: {why}"))
}

fn bad_request(why: String) -> Response {
    error(StatusCode::BAD_REQUEST, why)
}

fn unavailable(why: String) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, why)
}

/// Serves the metrics listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "metrics at http://{}/metrics", listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// The query API's certificate and key, read as the server will use them.
pub async fn query_tls(
    tls: &crate::config::TlsFiles,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "query_api.tls_cert {:?} / tls_key {:?}: {e}",
                tls.cert,
                tls.key
            )
        })
}

/// Serves the query API on `listener` (over TLS with `tls`) until `shutdown` resolves.
pub async fn serve_query(
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    state: QueryState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%address, "query API at {scheme}://{address}/api/v1/");
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    let app = query_router(state).into_make_service();
    match tls {
        Some(config) => {
            axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .serve(app)
                .await?
        }
        None => {
            axum_server::from_tcp(listener)?
                .handle(handle)
                .serve(app)
                .await?
        }
    }
    Ok(())
}
