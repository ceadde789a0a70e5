//! The Stats API, for API clients and the dashboard:
//! - `POST /api/v2/query`: the Plausible Stats API v2 query;
//! - `GET /api/v2/realtime?site_id=DOMAIN`: visitors of the last 5 minutes and their top pages.
//!
//! Authenticated by `Authorization: Bearer <key>` (see [`crate::apikey`]); a key reads only
//! its own site. Answers 401 without a valid key, 404 for a site the key cannot read, 400
//! naming the mistake in a bad query, 413 for a body over 64 KiB.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::query::model::{self, DateRange, Dimension, Field, Metric, OrderKey, Property, Query};
use crate::query::run::{Policy, RunError, groups, run};
use crate::query::time::Span;
use crate::store::Site;

/// Largest query body, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// The window of "current visitors", in seconds.
pub const REALTIME_SECS: i64 = 300;

/// The site `site_id` names, if the request's key may read it.
async fn authorize(state: &AppState, headers: &HeaderMap, site_id: &str) -> Result<Site, ApiError> {
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
    let sites = state
        .store
        .sites()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    sites
        .into_iter()
        .find(|s| s.domain == site_id && s.id == key.site_id)
        .ok_or_else(|| ApiError::NotFound(format!("no site `{site_id}` for this API key")))
}

fn run_error(e: RunError) -> ApiError {
    match e {
        RunError::Query(e) => ApiError::BadRequest(e.0),
        RunError::Purged(message) => ApiError::Unprocessable(message),
        RunError::Store(e) => {
            tracing::error!(error = %e, "query failed in the store");
            ApiError::Unavailable
        }
    }
}

pub async fn post_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    // The key is checked before the body is read or parsed.
    if headers.get(header::AUTHORIZATION).is_none() {
        return Err(ApiError::Unauthorized(
            "missing API key: send `Authorization: Bearer <key>`".into(),
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_QUERY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the query is not valid JSON: {e}")))?;
    let Some(site_id) = json.get("site_id").and_then(Value::as_str) else {
        return Err(ApiError::BadRequest(
            "missing `site_id` (the site's domain)".into(),
        ));
    };
    let site = authorize(&state, &headers, site_id).await?;
    let query = model::parse(&json).map_err(|e| ApiError::BadRequest(e.0))?;
    let policy = Policy {
        now: state.clock.now(),
        raw_retention_days: state.raw_retention_days,
    };
    run(state.store.as_ref(), &site, &query, &policy)
        .await
        .map(Json)
        .map_err(run_error)
}

pub async fn get_realtime(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let site_id = params
        .get("site_id")
        .ok_or_else(|| ApiError::BadRequest("missing `site_id`".into()))?;
    let site = authorize(&state, &headers, site_id).await?;
    let tz: chrono_tz::Tz = site.timezone.parse().map_err(|_| ApiError::Unavailable)?;
    let now = state.clock.now();
    let today = now.with_timezone(&tz).date_naive();
    let span = Span {
        first_day: today,
        last_day: today,
        from: now.timestamp() - REALTIME_SECS,
        to: now.timestamp() + 1,
    };
    let mut q = Query {
        site_id: site.domain.clone(),
        metrics: vec![Metric::Visitors],
        date_range: DateRange::Day,
        dimensions: Vec::new(),
        filters: Vec::new(),
        order_by: vec![(OrderKey::Metric(Metric::Visitors), true)],
        limit: 10,
        offset: 0,
        total_rows: false,
        time_labels: false,
        comparison: None,
    };
    let store = state.store.as_ref();
    let total = groups(store, site.id, &q, tz, &span)
        .await
        .map_err(run_error)?;
    let visitors = total
        .values()
        .next()
        .and_then(|m| m[0].as_i64())
        .unwrap_or(0);
    q.dimensions = vec![Dimension::Field(Field::Column(Property::Page))];
    let mut pages: Vec<(String, i64)> = groups(store, site.id, &q, tz, &span)
        .await
        .map_err(run_error)?
        .into_iter()
        .map(|(k, m)| {
            (
                k.into_iter().next().unwrap_or_default(),
                m[0].as_i64().unwrap_or(0),
            )
        })
        .collect();
    pages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    pages.truncate(10);
    Ok(Json(json!({
        "visitors": visitors,
        "pages": pages.into_iter().map(|(page, v)| json!({"page": page, "visitors": v})).collect::<Vec<_>>(),
    })))
}
