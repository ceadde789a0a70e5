//! `POST /api/v2/query`: the Stats API, for API clients and the dashboard.
//!
//! Authenticated by `Authorization: Bearer <key>` (see [`crate::apikey`]); a key reads only
//! its own site. Answers 401 without a valid key, 404 for a site the key cannot read, 400
//! naming the mistake in a bad query, 413 for a body over 64 KiB.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::{ApiError, AppState};
use crate::query::model;
use crate::query::run::{RunError, run};

/// Largest query body, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

pub async fn post_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::Unauthorized("missing API key: send `Authorization: Bearer <key>`".into())
        })?;
    let key = crate::apikey::verify(state.store.as_ref(), token)
        .await
        .map_err(|_| ApiError::Unavailable)?
        .ok_or_else(|| ApiError::Unauthorized("invalid or revoked API key".into()))?;
    let bytes = axum::body::to_bytes(body, MAX_QUERY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the query is not valid JSON: {e}")))?;
    let query = model::parse(&json).map_err(|e| ApiError::BadRequest(e.0))?;
    let sites = state
        .store
        .sites()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let site = sites
        .iter()
        .find(|s| s.domain == query.site_id && s.id == key.site_id)
        .ok_or_else(|| {
            ApiError::NotFound(format!("no site `{}` for this API key", query.site_id))
        })?;
    match run(state.store.as_ref(), site, &query, state.clock.now()).await {
        Ok(answer) => Ok(Json(answer)),
        Err(RunError::Query(e)) => Err(ApiError::BadRequest(e.0)),
        Err(RunError::Store(e)) => {
            tracing::error!(error = %e, "query failed in the store");
            Err(ApiError::Unavailable)
        }
    }
}
