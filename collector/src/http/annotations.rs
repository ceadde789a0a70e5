//! `GET|POST /api/sites/{domain}/annotations`, `DELETE /api/sites/{domain}/annotations/{id}`:
//! the chart's dated notes (see [`crate::annotations`]). Whoever reads the site reads its
//! site-wide notes; admins write and delete them.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::store_error;
use super::auth::{Principal, json_body, principal, readable_site};
use super::{ApiError, AppState};
use crate::annotations;

fn day(
    params: &HashMap<String, String>,
    name: &str,
    default: NaiveDate,
) -> Result<NaiveDate, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
            ApiError::BadRequest(format!(
                "`{name}` is a day as YYYY-MM-DD, not `{}`",
                d.chars().take(30).collect::<String>()
            ))
        }),
    }
}

/// `GET …/annotations?from=&to=`: the notes of those days (all when not given), by date.
pub async fn list(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let site = readable_site(&state, &who, &domain).await?;
    let from = day(&params, "from", NaiveDate::MIN)?;
    let to = day(&params, "to", NaiveDate::MAX)?;
    let reader = match &who {
        Principal::User { user, .. } => Some(user.email.as_str()),
        _ => None,
    };
    let notes = annotations::list(state.store.as_ref(), site.id, from, to, reader)
        .await
        .map_err(store_error)?;
    let notes: Vec<Value> = notes
        .iter()
        .map(|a| json!({"id": a.id, "date": a.date, "text": a.text, "personal": a.personal, "author": a.author}))
        .collect();
    Ok(Json(json!({"annotations": notes})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    date: String,
    text: String,
    #[serde(default)]
    personal: bool,
}

/// `POST …/annotations` `{"date", "text", "personal"}` (admins)
pub async fn add(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = super::admin::site(&state, &domain).await?;
    let b: NewNote = json_body(&headers, body).await?;
    let note = annotations::add(
        state.store.as_ref(),
        site.id,
        &b.date,
        &b.text,
        b.personal,
        &admin,
        state.clock.now().timestamp(),
    )
    .await
    .map_err(store_error)?
    .map_err(ApiError::BadRequest)?;
    tracing::info!(site = %site.domain, by = %admin, personal = note.personal, "note added");
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": note.id, "date": note.date, "text": note.text, "personal": note.personal, "author": note.author}),
        ),
    ))
}

/// `DELETE …/annotations/{id}` (admins; a personal note, its author only)
pub async fn delete(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = super::admin::site(&state, &domain).await?;
    if !annotations::delete(state.store.as_ref(), site.id, &id, &admin)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::NotFound(format!("no note {id} on {domain}")));
    }
    tracing::info!(site = %site.domain, by = %admin, "note deleted");
    Ok(StatusCode::NO_CONTENT)
}
