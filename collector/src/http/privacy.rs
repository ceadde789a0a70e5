//! `GET /api/sites/{domain}/privacy-notice?lang=en|da&format=md|html&controller=…`: the
//! site's privacy notice, written from the running configuration (see [`crate::privacy`]),
//! for anyone who may read the site. `POST /api/sites/{domain}/subject` with `{"ip", "ua",
//! "erase"}`: a visitor's data-subject request (see [`crate::subject`]), for admins; a POST,
//! so the address and user-agent travel in the body, never in a URL a log could keep.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::admin::site;
use super::auth::{json_body, principal, readable_site};
use super::{ApiError, AppState};
use crate::privacy::{Facts, Format, Lang, notice};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectBody {
    ip: String,
    ua: String,
    #[serde(default)]
    erase: bool,
}

pub async fn subject_request(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let b: SubjectBody = json_body(&headers, body).await?;
    let subject = crate::subject::Subject::new(&b.ip, &b.ua, Some(site.domain.clone()))
        .map_err(ApiError::BadRequest)?;
    let store = state.store.as_ref();
    let answer = if b.erase {
        crate::subject::erase(store, &subject, state.clock.now()).await
    } else {
        crate::subject::find(store, &subject).await
    }
    .map_err(|e| match e {
        crate::subject::SubjectError::Invalid(m) => ApiError::BadRequest(m),
        crate::subject::SubjectError::Store(e) => super::admin::store_error(e),
    })?;
    Ok(Json(json!({
        "events": answer.events(),
        "erased": answer.erased,
        "text": answer.text(),
    })))
}

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
    let settings = crate::sites::settings_of(state.store.as_ref(), site.id)
        .await
        .map_err(super::admin::store_error)?;
    let facts = Facts {
        site: site.domain.clone(),
        ..(*state.notice).clone()
    }
    .for_site(&settings)
    .with_controller(params.controller.as_deref())
    .map_err(ApiError::BadRequest)?;
    Ok(Json(json!({"notice": notice(&facts, lang, format)})))
}
