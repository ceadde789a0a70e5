//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

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
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(want) = state.metrics_token {
        // Compared as blake3 hashes: `Hash`'s equality takes the same time for any input.
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| blake3::hash(t.trim().as_bytes()));
        if given != Some(want) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics_token: send Authorization: Bearer <token>",
            )
                .into_response();
        }
    }
    let mut text = state.metrics.render();
    let sessions = &state.pipeline.sessions;
    text.push_str(&format!(
        "# HELP footfall_sessions_open Visits held open in memory.\n# TYPE footfall_sessions_open gauge\nfootfall_sessions_open {}\n\
         # HELP footfall_sessions_evicted_total Open visits evicted to stay within max_sessions.\n# TYPE footfall_sessions_evicted_total counter\nfootfall_sessions_evicted_total {}\n",
        sessions.len(),
        sessions.evicted()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
