//! A site's goals in its settings: list, add and delete (`/api/sites/{domain}/goals`). The
//! list is also part of the settings (`GET /api/sites/{domain}/settings`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::admin::{site, store_error};
use super::auth::{json_body, principal, readable_site};
use super::{ApiError, AppState};
use crate::goals::{Goal, GoalError, NewGoal};

/// A goal as the settings show it.
pub fn goal_json(g: &Goal) -> Value {
    let mut v = serde_json::to_value(g).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("site_id");
    }
    v
}

/// The goals of `site_id`, as the settings list them.
pub async fn list(state: &AppState, site_id: u32) -> Result<Vec<Value>, ApiError> {
    Ok(crate::goals::goals_of(state.store.as_ref(), site_id)
        .await
        .map_err(store_error)?
        .iter()
        .map(goal_json)
        .collect())
}

/// `GET /api/sites/{domain}/goals`.
pub async fn get_goals(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let site = readable_site(&state, &who, &domain).await?;
    Ok(Json(json!({"goals": list(&state, site.id).await?})))
}

/// `POST /api/sites/{domain}/goals` with `{"type": "pageview", "path": …}` or `{"type":
/// "event", "name": …, "props"?: {…}}`, and `display_name`, `currency` if wanted.
pub async fn add_goal(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = site(&state, &domain).await?;
    let body: Value = json_body(&headers, body).await?;
    let new = NewGoal::from_json(&body).map_err(goal_error)?;
    let now = state.clock.now().timestamp();
    let goal = crate::goals::add(state.store.as_ref(), site.id, new, now)
        .await
        .map_err(goal_error)?;
    tracing::info!(site = %site.domain, goal = goal.id, by = %admin, "goal added");
    Ok((StatusCode::CREATED, Json(goal_json(&goal))))
}

/// `DELETE /api/sites/{domain}/goals/{id}`.
pub async fn delete_goal(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = site(&state, &domain).await?;
    let missing = || ApiError::NotFound(format!("no goal {id} for {domain}"));
    let number: u32 = id.parse().map_err(|_| missing())?;
    if !crate::goals::delete(state.store.as_ref(), site.id, number)
        .await
        .map_err(store_error)?
    {
        return Err(missing());
    }
    tracing::info!(site = %site.domain, goal = number, by = %admin, "goal deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn goal_error(e: GoalError) -> ApiError {
    match e {
        GoalError::Invalid(m) => ApiError::BadRequest(m),
        GoalError::Store(e) => store_error(e),
    }
}
