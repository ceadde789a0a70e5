//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// The store answers.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(std::time::Duration::from_secs(5), state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "store unreachable"),
    }
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    let sessions = &state.pipeline.sessions;
    text.push_str(&format!(
        "# HELP footfall_sessions_open Visits held open in memory.\n# TYPE footfall_sessions_open gauge\nfootfall_sessions_open {}\n\
         # HELP footfall_sessions_evicted_total Open visits evicted to stay within max_sessions.\n# TYPE footfall_sessions_evicted_total counter\nfootfall_sessions_evicted_total {}\n",
        sessions.len(),
        sessions.evicted()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
