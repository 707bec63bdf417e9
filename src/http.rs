//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process answers),
//! `/readyz` (every stage has started: broker reached, state restored).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, IntGaugeVec, Registry, TextEncoder};

#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    /// (stage name, ready flag).
    pub ready: Vec<(&'static str, Arc<AtomicBool>)>,
    /// Mirrors `ready` for Prometheus, which cannot read `/readyz`.
    pub stage_ready: IntGaugeVec,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    for (stage, ready) in &s.ready {
        s.stage_ready
            .with_label_values(&[stage])
            .set(i64::from(ready.load(Ordering::SeqCst)));
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

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let waiting: Vec<&str> = s
        .ready
        .iter()
        .filter(|(_, r)| !r.load(Ordering::SeqCst))
        .map(|(n, _)| *n)
        .collect();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("starting: {}\n", waiting.join(", ")),
        )
    }
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
