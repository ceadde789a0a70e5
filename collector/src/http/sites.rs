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
use crate::sites::{Action, Limits, SiteError, SiteSettings};

/// The largest settings body: four lists of at most 500 entries.
const MAX_SETTINGS_BODY: usize = 512 * 1024;

pub(super) fn site_error(e: SiteError) -> ApiError {
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

/// `POST /api/sites/{domain}/reset` `{"confirm": domain}`: deletes every event, visit,
/// daily total and import.
pub async fn reset(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    act(&state, &domain, &headers, body, "reset").await
}

/// `DELETE /api/sites/{domain}` `{"confirm": domain}`: the site and everything of it.
pub async fn delete(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    act(&state, &domain, &headers, body, "delete").await
}

/// `POST /api/sites/{domain}/purge`: `{"path": "/admin/*", "from": "2026-01-01", "to": …}`.
pub async fn purge(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    act(&state, &domain, &headers, body, "purge").await
}

/// An admin's deletion of `kind` on the site: a purge names what to take, a reset or a
/// deletion names the site again.
async fn act(
    state: &AppState,
    domain: &str,
    headers: &HeaderMap,
    body: axum::body::Body,
    kind: &str,
) -> Result<Json<Value>, ApiError> {
    let who = principal(state, headers).await?;
    let admin = who.admin(headers)?.email.clone();
    let site = site(state, domain).await?;
    let action = match kind {
        "purge" => Action::Purge(json_body(headers, body).await?),
        _ => {
            let c: Confirm = json_body(headers, body).await?;
            confirmed(&site, &c)?;
            if kind == "delete" {
                Action::Delete
            } else {
                Action::Reset
            }
        }
    };
    let done = crate::sites::perform(state.store.as_ref(), &site, &action, state.clock.now())
        .await
        .map_err(site_error)?;
    tracing::info!(site = %site.domain, by = %admin, action = action.name(), "site data deleted");
    if action == Action::Delete {
        state
            .pipeline
            .set_sites(state.store.meta().sites().await.map_err(store_error)?);
    }
    Ok(Json(json!({"done": done, "text": done.text(&site.domain)})))
}
