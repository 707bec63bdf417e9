//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process answers),
//! `/readyz` (every stage is ready: active, or standing by; see [`crate::status`]), and the
//! JSON query API under `/api/v1/` (see [`crate::query`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use axum::Router;
use prometheus::{Encoder, IntGaugeVec, Registry, TextEncoder};

use crate::status::{Phase, StageStatus};

#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    /// (stage name, what it is doing).
    pub stages: Vec<(&'static str, Arc<StageStatus>)>,
    /// Mirrors `/readyz` for Prometheus, which cannot read it.
    pub stage_ready: IntGaugeVec,
    /// The query API's line to the coordinator, when this process runs one.
    pub query: Option<crate::query::Client>,
    /// 1 while a stage holds its input and processes it (0 when standing by).
    pub stage_active: IntGaugeVec,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/picture", get(picture))
        .route("/api/v1/campaigns", get(campaigns))
        .route("/api/v1/requests", get(requests))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    for (stage, status) in &s.stages {
        let phase = status.get();
        s.stage_ready
            .with_label_values(&[stage])
            .set(i64::from(phase.is_ready()));
        s.stage_active
            .with_label_values(&[stage])
            .set(i64::from(phase == Phase::Active));
    }
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

async fn picture(State(s): State<AppState>, Query(p): Query<ScopeParam>) -> Response {
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

async fn campaigns(State(s): State<AppState>) -> Response {
    ask(&s, crate::query::Query::Campaigns).await
}

async fn requests(State(s): State<AppState>, Query(p): Query<NationParam>) -> Response {
    if let Some(n) = &p.nation {
        if !rallypoint_core::validate::is_nation(n) {
            return bad_request(format!("nation {n:?}: expected an ISO 3166-1 alpha-3 code"));
        }
    }
    ask(&s, crate::query::Query::Requests { nation: p.nation }).await
}

async fn ask(s: &AppState, q: crate::query::Query) -> Response {
    let Some(client) = &s.query else {
        return unavailable("no coordinator runs in this process".into());
    };
    match client.ask(q, PATIENCE).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => unavailable(e.to_string()),
    }
}

fn bad_request(why: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}

fn unavailable(why: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics at http://{}/metrics", listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
