//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process answers),
//! `/readyz` (every stage is ready: active, or standing by; see [`crate::status`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
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
    /// 1 while a stage holds its input and processes it (0 when standing by).
    pub stage_active: IntGaugeVec,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
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
