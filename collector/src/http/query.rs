//! The Stats API, for API clients and the dashboard:
//! - `POST /api/v2/query`: the Plausible Stats API v2 query;
//! - `GET /api/v2/realtime?site_id=DOMAIN`: visitors of the last 5 minutes and their top pages.
//!
//! Authenticated by an API key, a dashboard login or a shared link (see [`super::auth`]); each
//! reads only the sites it may. Answers 401 without valid credentials, 404 for a site they
//! cannot read, 400 naming the mistake in a bad query, 413 for a body over 64 KiB.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query as UrlQuery, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::query::model::{self, DateRange, Dimension, Field, Metric, Property, Query};
use crate::query::run::{Policy, RunError, groups, run};
use crate::query::time::Span;
use crate::store::sqlite::READERS;
use crate::store::{Deadline, Site, StoreError};

/// Largest query body, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// The window of "current visitors", in seconds.
pub const REALTIME_SECS: i64 = 300;

/// Stats API questions (queries, exports, property lists) one collector answers at once;
/// more wait for a turn within their deadline. One fewer than the SQLite store's reading
/// connections, so the realtime route and the writer are never queued behind them.
pub const QUERY_SLOTS: usize = READERS - 1;

/// The cost bounds of questions: a deadline for each (`query_timeout_secs`) and a number
/// answered at once ([`QUERY_SLOTS`]).
pub struct QueryLimits {
    pub timeout: std::time::Duration,
    slots: tokio::sync::Semaphore,
}

impl QueryLimits {
    pub fn new(timeout: std::time::Duration) -> QueryLimits {
        QueryLimits {
            timeout,
            slots: tokio::sync::Semaphore::new(QUERY_SLOTS),
        }
    }

    /// The deadline of a question that arrives now.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(self.timeout)
    }

    /// A turn to run a question due at `deadline`; 503 when none comes before it.
    pub async fn turn(
        &self,
        deadline: Deadline,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        match tokio::time::timeout(deadline.remaining(), self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(ApiError::Unavailable),
            Err(_) => Err(run_error(RunError::Store(deadline.exceeded()))),
        }
    }
}

/// The site named by the `site_id` URL parameter, if the request's maker may read it.
pub(super) async fn authorize_param(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<Site, ApiError> {
    let site_id = params
        .get("site_id")
        .ok_or_else(|| ApiError::BadRequest("missing `site_id`".into()))?;
    authorize(state, headers, site_id).await
}

/// The site `site_id` names, if the request's maker may read it (see [`super::auth`]).
async fn authorize(state: &AppState, headers: &HeaderMap, site_id: &str) -> Result<Site, ApiError> {
    let who = super::auth::principal(state, headers).await?;
    super::auth::readable_site(state, &who, site_id).await
}

pub(super) fn run_error(e: RunError) -> ApiError {
    match e {
        RunError::Query(e) => ApiError::BadRequest(e.0),
        RunError::Purged(message) => ApiError::Unprocessable(message),
        RunError::Store(e @ StoreError::Timeout(_)) => {
            tracing::warn!(error = %e, "a query was stopped at its deadline");
            ApiError::QueryTimeout(e.to_string())
        }
        RunError::Store(e) => {
            tracing::error!(error = %e, "query failed in the store");
            ApiError::Unavailable
        }
    }
}

/// A question posted as JSON (a query or a funnel): who asks is checked before the body is
/// read or parsed, then the site it names.
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Site, Value), ApiError> {
    let who = super::auth::principal(state, headers).await?;
    let bytes = axum::body::to_bytes(body, MAX_QUERY_BYTES)
        .await
        .map_err(super::error::body_error)?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the question is not valid JSON: {e}")))?;
    let Some(site_id) = json.get("site_id").and_then(Value::as_str) else {
        return Err(ApiError::BadRequest(
            "missing `site_id` (the site's domain)".into(),
        ));
    };
    let site = super::auth::readable_site(state, &who, site_id).await?;
    Ok((site, json))
}

/// The planner's policy for a question about `site` due at `deadline` (the site's own raw
/// retention, when shorter than the server's).
pub(super) fn policy(
    state: &AppState,
    site: &Site,
    deadline: Deadline,
    sample_threshold: u64,
) -> Policy {
    Policy {
        now: state.clock.now(),
        raw_retention_days: state
            .pipeline
            .raw_retention_days(site.id, state.raw_retention_days),
        deadline,
        sample_threshold,
    }
}

/// `POST /api/v2/funnel`: a funnel of the site's goals (see [`crate::query::funnel`]), with
/// the same keys, sessions and shared links as the Stats API.
pub async fn post_funnel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (site, json) = posted(&state, &headers, body).await?;
    let funnel = crate::query::funnel::parse(&json).map_err(|e| ApiError::BadRequest(e.0))?;
    let deadline = state.queries.deadline();
    let _turn = state.queries.turn(deadline).await?;
    let policy = policy(&state, &site, deadline, state.sample_threshold);
    crate::query::funnel::run(state.store.as_ref(), &site, &funnel, &policy)
        .await
        .map(Json)
        .map_err(run_error)
}

pub async fn post_query(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let (site, json) = posted(&state, &headers, body).await?;
    let query = model::parse(&json).map_err(|e| ApiError::BadRequest(e.0))?;
    let deadline = state.queries.deadline();
    let _turn = state.queries.turn(deadline).await?;
    let policy = policy(&state, &site, deadline, state.sample_threshold);
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
    let site = authorize_param(&state, &headers, &params).await?;
    let tz: chrono_tz::Tz = site.timezone.parse().map_err(|_| ApiError::Unavailable)?;
    let now = state.clock.now();
    let today = now.with_timezone(&tz).date_naive();
    let span = Span {
        first_day: today,
        last_day: today,
        from: now.timestamp() - REALTIME_SECS,
        to: now.timestamp() + 1,
        partial: true,
    };
    let mut q = Query {
        limit: 10,
        ..Query::internal(&site.domain, vec![Metric::Visitors], DateRange::Day)
    };
    // Realtime takes no turn: it reads five minutes of events, and must answer while
    // long questions hold every turn.
    let deadline = state.queries.deadline();
    let store = state.store.as_ref();
    let total = groups(store, site.id, &q, tz, &span, deadline)
        .await
        .map_err(run_error)?;
    let visitors = total
        .values()
        .next()
        .and_then(|m| m[0].as_i64())
        .unwrap_or(0);
    q.dimensions = vec![Dimension::Field(Field::Column(Property::Page))];
    let mut pages: Vec<(String, i64)> = groups(store, site.id, &q, tz, &span, deadline)
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

/// `GET /api/v2/props?site_id=DOMAIN&name=EVENT&date_range=30d`: the custom property keys of
/// one event name in the range, most used first, so the dashboard can offer them as
/// `event:props:<key>` breakdowns. `date_range` is a Stats API name or `FROM,TO`.
pub async fn get_prop_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let name = params
        .get("name")
        .ok_or_else(|| ApiError::BadRequest("missing `name` (an event name)".into()))?;
    let site = authorize_param(&state, &headers, &params).await?;
    let range = params.get("date_range").map_or("30d", String::as_str);
    let range = super::export::date_range(range);
    let query =
        model::parse(&json!({"site_id": site.domain, "metrics": ["events"], "date_range": range}))
            .map_err(|e| ApiError::BadRequest(e.0))?;
    let tz: chrono_tz::Tz = site.timezone.parse().map_err(|_| ApiError::Unavailable)?;
    let span = crate::query::time::resolve(&query.date_range, tz, state.clock.now())
        .map_err(|e| ApiError::BadRequest(e.0))?;
    let statement =
        crate::query::sql::prop_keys(state.store.dialect(), site.id, span.from, span.to, name);
    let deadline = state.queries.deadline();
    let _turn = state.queries.turn(deadline).await?;
    let rows = state
        .store
        .run_statement(&statement, 1, 1, deadline)
        .await
        .map_err(|e| run_error(RunError::Store(e)))?;
    let props: Vec<Value> = rows
        .into_iter()
        .map(|(text, ints)| json!({"key": text.into_iter().next().unwrap_or_default(), "events": ints.first().copied().unwrap_or(0)}))
        .collect();
    Ok(Json(json!({ "props": props })))
}

/// `GET /api/docs/query/schema.json`: the JSON Schema of a query (open to anyone).
pub async fn get_schema() -> Json<Value> {
    Json(crate::query::schema::schema())
}
