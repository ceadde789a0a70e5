//! A site's controls in the admin pages: its retention and exclusions, and deleting the
//! site, resetting its statistics or purging some of them (see [`crate::sites`]). Admins
//! only; a deletion names the site again in its body, as a confirmation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{site, store_error};
use super::auth::{json_body, json_body_up_to, principal};
use super::{ApiError, AppState};
use crate::sites::{Limits, Purge, SiteError, SiteSettings};

/// The largest settings body: four lists of at most 500 entries.
const MAX_SETTINGS_BODY: usize = 512 * 1024;

fn site_error(e: SiteError) -> ApiError {
    match e {
        SiteError::Invalid(m) => ApiError::BadRequest(m),
        SiteError::Store(e) => store_error(e),
    }
}

pub(super) fn limits(state: &AppState) -> Limits {
    Limits {
        raw_retention_days: state.raw_retention_days,
        aggregate_retention_days: state.aggregate_retention_days,
    }
}

/// The site's settings as the settings page shows them, with the days in force.
pub(super) fn settings_json(state: &AppState, s: &SiteSettings) -> Value {
    json!({
        "settings": s,
        "raw_days": s.raw_days(state.raw_retention_days),
        "aggregate_days": s.aggregate_days(state.aggregate_retention_days),
    })
}

/// `PUT /api/sites/{domain}/rules`: replaces the site's retention and exclusions; they apply
/// to the next request (on this collector; others read them within 10 s).
pub async fn put_rules(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let wanted: SiteSettings = json_body_up_to(&headers, body, MAX_SETTINGS_BODY).await?;
    let saved = crate::sites::save_settings(state.store.as_ref(), site.id, &wanted, limits(&state))
        .await
        .map_err(site_error)?;
    tracing::info!(site = %site.domain, by = %admin.email, "site retention and exclusions changed");
    state.pipeline.set_settings(
        crate::sites::all_settings(state.store.as_ref())
            .await
            .map_err(store_error)?,
    );
    Ok(Json(settings_json(&state, &saved)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// The site's domain, typed again.
    confirm: String,
}

fn confirmed(site: &crate::store::Site, c: &Confirm) -> Result<(), ApiError> {
    if c.confirm.trim() != site.domain {
        return Err(ApiError::BadRequest(format!(
            "type the site's domain ({}) in `confirm` to go ahead",
            site.domain
        )));
    }
    Ok(())
}

/// `POST /api/sites/{domain}/reset`: deletes every event, visit, daily total and import.
pub async fn reset(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let c: Confirm = json_body(&headers, body).await?;
    confirmed(&site, &c)?;
    let done = crate::sites::reset(state.store.as_ref(), &site)
        .await
        .map_err(site_error)?;
    tracing::info!(site = %site.domain, by = %admin.email, "site statistics reset");
    Ok(Json(json!({"done": done, "text": done.text(&site.domain)})))
}

/// `DELETE /api/sites/{domain}`: the site and everything of it.
pub async fn delete(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let c: Confirm = json_body(&headers, body).await?;
    confirmed(&site, &c)?;
    let done = crate::sites::delete(state.store.as_ref(), &site)
        .await
        .map_err(site_error)?;
    tracing::info!(site = %site.domain, by = %admin.email, "site deleted");
    state
        .pipeline
        .set_sites(state.store.meta().sites().await.map_err(store_error)?);
    Ok(Json(json!({"done": done, "text": done.text(&site.domain)})))
}

/// `POST /api/sites/{domain}/purge`: `{"path": "/admin/*", "from": "2026-01-01", "to": …}`.
pub async fn purge(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let p: Purge = json_body(&headers, body).await?;
    let done = crate::sites::purge(state.store.as_ref(), &site, &p, state.clock.now())
        .await
        .map_err(site_error)?;
    tracing::info!(site = %site.domain, by = %admin.email, "site events purged");
    Ok(Json(json!({"done": done, "text": done.text(&site.domain)})))
}
