//! A site's e-mailed reports and alerts in the admin pages, and the unsubscribe page their
//! messages link to (see [`crate::reports`]):
//! - `GET /api/sites/{domain}/mail`: the settings, whether mail can be sent, and the outbox
//!   (each message's state, attempts and the server's last answer);
//! - `PUT /api/sites/{domain}/mail`: replaces the settings;
//! - `POST /api/sites/{domain}/mail/send` `{"kind": "weekly" | "monthly"}`: the last whole
//!   period's report, now;
//! - `POST /api/sites/{domain}/mail/retry/{id}`: a waiting or given-up message, again now;
//! - `GET /unsubscribe?…` asks to confirm, `POST /unsubscribe?…` (the page's button, or a mail
//!   client's RFC 8058 one-click request) takes the address off the list. The signature in
//!   the link is its only credential.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Html;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{site, store_error};
use super::auth::{json_body, principal};
use super::{ApiError, AppState};
use crate::reports::content::esc;
use crate::reports::outbox::{self, Status};
use crate::reports::{self, List, MailKind, MailSettings, unsubscribe};

/// Messages of a site the settings list.
const LISTED: usize = 50;

async fn mail_json(state: &AppState, site: &crate::store::Site) -> Result<Value, ApiError> {
    let store = state.store.as_ref();
    let settings = reports::settings_of(store, site.id)
        .await
        .map_err(store_error)?;
    let outbox: Vec<Value> = outbox::all(store)
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|(_, d)| d.site_id == site.id)
        .take(LISTED)
        .map(|(id, d)| d.summary(&id))
        .collect();
    Ok(json!({
        "settings": settings,
        "unavailable": state.reports.ready().err(),
        "outbox": outbox,
    }))
}

/// `GET /api/sites/{domain}/mail` (admins).
pub async fn get_mail(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    principal(&state, &headers).await?.admin_reader()?;
    let site = site(&state, &domain).await?;
    Ok(Json(mail_json(&state, &site).await?))
}

/// `PUT /api/sites/{domain}/mail` (admins): the reports, alerts and their recipients.
pub async fn put_mail(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let site = site(&state, &domain).await?;
    let wanted: MailSettings = json_body(&headers, body).await?;
    let settings = wanted.validated().map_err(ApiError::BadRequest)?;
    let sends = settings.weekly
        || settings.monthly
        || settings.spike_threshold.is_some()
        || settings.drop_threshold.is_some();
    if sends && let Err(why) = state.reports.ready() {
        return Err(ApiError::Unprocessable(why));
    }
    reports::save_settings(state.store.as_ref(), site.id, &settings)
        .await
        .map_err(store_error)?;
    tracing::info!(site = %site.domain, by = %admin, "reports and alerts changed");
    Ok(Json(mail_json(&state, &site).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    kind: MailKind,
}

/// `POST /api/sites/{domain}/mail/send` (admins): queues the last whole week's or month's
/// report to every recipient and sends it at once; answers the outbox after the attempt.
pub async fn send_now(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = principal(&state, &headers).await?;
    who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let b: SendBody = json_body(&headers, body).await?;
    if !matches!(b.kind, MailKind::Weekly | MailKind::Monthly) {
        return Err(ApiError::BadRequest(
            "`kind` is `weekly` or `monthly`: alerts go when their threshold is crossed".into(),
        ));
    }
    let queued = state
        .reports
        .send_now(&site, b.kind)
        .await
        .map_err(ApiError::Unprocessable)?;
    let round = state.reports.send_due().await.map_err(store_error)?;
    let mut out = mail_json(&state, &site).await?;
    out["queued"] = json!(queued);
    out["sent"] = json!(round.sent);
    out["failed"] = json!(round.failed);
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// `POST /api/sites/{domain}/mail/retry/{id}` (admins): a message that waits for its next
/// attempt, or was given up, is tried again now, with its attempts counted afresh.
pub async fn retry(
    State(state): State<AppState>,
    Path((domain, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = principal(&state, &headers).await?;
    who.admin(&headers)?;
    let site = site(&state, &domain).await?;
    let store = state.store.as_ref();
    let mut d = outbox::get(store, &id)
        .await
        .map_err(store_error)?
        .filter(|d| d.site_id == site.id)
        .ok_or_else(|| ApiError::NotFound(format!("no message `{id}` of {}", site.domain)))?;
    if !matches!(d.status, Status::Pending | Status::Failed) {
        return Err(ApiError::BadRequest(
            "only a message waiting for its next attempt or given up can be sent again".into(),
        ));
    }
    d.status = Status::Pending;
    d.attempts = 0;
    d.next_at = state.clock.now().timestamp();
    outbox::put(store, &id, &d).await.map_err(store_error)?;
    state.reports.send_due().await.map_err(store_error)?;
    Ok(Json(mail_json(&state, &site).await?))
}

/// The unsubscribe link's parameters, checked.
struct Link {
    site: crate::store::Site,
    list: List,
    to: String,
}

async fn link(state: &AppState, params: &HashMap<String, String>) -> Result<Link, &'static str> {
    let bad = "This unsubscribe link is not valid. Use the link in the latest message, or ask the site's administrators.";
    let (Some(site), Some(list), Some(to), Some(sig)) = (
        params.get("site").and_then(|s| s.parse::<u32>().ok()),
        params.get("list").and_then(|l| List::parse(l)),
        params.get("to"),
        params.get("sig"),
    ) else {
        return Err(bad);
    };
    let store = state.store.as_ref();
    let key = unsubscribe::key(store)
        .await
        .map_err(|_| "The server cannot check this link now; try again later.")?;
    if !unsubscribe::verify(&key, site, list, to, sig) {
        return Err(bad);
    }
    let sites = store
        .meta()
        .sites()
        .await
        .map_err(|_| "The server cannot check this link now; try again later.")?;
    let Some(site) = sites.into_iter().find(|s| s.id == site) else {
        return Err("This site no longer exists: nothing more will be sent about it.");
    };
    Ok(Link {
        site,
        list,
        to: to.clone(),
    })
}

/// The page of a link that cannot be used, saying why.
fn refused(why: &str) -> (StatusCode, Html<String>) {
    page(
        StatusCode::BAD_REQUEST,
        "Unsubscribe",
        &format!("<p>{}</p>", esc(why)),
    )
}

fn page(status: StatusCode, title: &str, body: &str) -> (StatusCode, Html<String>) {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main class=\"narrow\"><h1>{t}</h1>{body}</main></body></html>",
            t = esc(title)
        )),
    )
}

/// `GET /unsubscribe?site=…&list=…&to=…&sig=…`: asks to confirm (link scanners that open
/// every link must not unsubscribe anyone).
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> (StatusCode, Html<String>) {
    let l = match link(&state, &params).await {
        Ok(l) => l,
        Err(why) => return refused(why),
    };
    let query: String = ["site", "list", "to", "sig"]
        .iter()
        .filter_map(|k| {
            params.get(*k).map(|v| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
        })
        .collect::<Vec<_>>()
        .join("&");
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop sending {} about <b>{}</b> to <b>{}</b>?</p><form method=\"post\" action=\"/unsubscribe?{}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\"><button type=\"submit\">Unsubscribe</button></form>",
            esc(l.list.as_str()),
            esc(&l.site.domain),
            esc(&l.to),
            esc(&query)
        ),
    )
}

/// `POST /unsubscribe?site=…&list=…&to=…&sig=…`: takes the address off the list and drops its
/// messages still waiting; the same answer when it was already off.
pub async fn unsubscribe(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> (StatusCode, Html<String>) {
    let l = match link(&state, &params).await {
        Ok(l) => l,
        Err(why) => return refused(why),
    };
    match remove(&state, &l).await {
        Ok(removed) => {
            if removed {
                tracing::info!(site = %l.site.domain, list = l.list.as_str(), "an address unsubscribed");
            }
            page(
                StatusCode::OK,
                "Unsubscribed",
                &format!(
                    "<p><b>{}</b> will get no more {} about <b>{}</b>.</p>",
                    esc(&l.to),
                    esc(l.list.as_str()),
                    esc(&l.site.domain)
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "unsubscribing failed in the store");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unsubscribe",
                "<p>The server cannot unsubscribe you now; try again later.</p>",
            )
        }
    }
}

async fn remove(state: &AppState, l: &Link) -> Result<bool, crate::store::StoreError> {
    let store = state.store.as_ref();
    let mut settings = reports::settings_of(store, l.site.id).await?;
    let removed = settings.remove(l.list, &l.to);
    if removed {
        reports::save_settings(store, l.site.id, &settings).await?;
    }
    for (id, d) in outbox::all(store).await? {
        if d.site_id == l.site.id
            && d.kind.list() == l.list
            && d.to == l.to
            && d.status == Status::Pending
        {
            store.meta().delete_record(outbox::KIND, &id).await?;
        }
    }
    Ok(removed)
}
