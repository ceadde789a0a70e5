//! `GET /api/sites/{domain}/privacy-notice?lang=en|da&format=md|html&controller=…`: the
//! site's privacy notice, written from the running configuration (see [`crate::privacy`]),
//! for anyone who may read the site.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::auth::{principal, readable_site};
use super::{ApiError, AppState};
use crate::privacy::{Facts, Format, Lang, notice};

#[derive(Debug, serde::Deserialize)]
pub struct NoticeParams {
    lang: Option<String>,
    format: Option<String>,
    controller: Option<String>,
}

pub async fn privacy_notice(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    Query(params): Query<NoticeParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let site = readable_site(&state, &who, &domain).await?;
    let lang = match params.lang.as_deref() {
        None => Lang::En,
        Some(l) => Lang::parse(l)
            .ok_or_else(|| ApiError::BadRequest(format!("`lang` is en or da, not `{l}`")))?,
    };
    let format = match params.format.as_deref() {
        None => Format::Md,
        Some(f) => Format::parse(f)
            .ok_or_else(|| ApiError::BadRequest(format!("`format` is md or html, not `{f}`")))?,
    };
    let facts = Facts {
        site: site.domain.clone(),
        ..(*state.notice).clone()
    }
    .with_controller(params.controller.as_deref())
    .map_err(ApiError::BadRequest)?;
    Ok(Json(json!({"notice": notice(&facts, lang, format)})))
}
