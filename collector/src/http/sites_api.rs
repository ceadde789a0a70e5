//! Plausible's Sites API (`/api/v1/sites…`), so provisioning scripts written for Plausible
//! manage Footfall's sites, goals, custom properties, shared links and guests unchanged.
//!
//! - **Keys.** A Sites API key (`footfall apikey create --scope sites:provision`) with the
//!   `sites:read` scope reads, with `sites:provision` also changes. A Stats API key, which
//!   reads one site, may use the reading routes for that site (Plausible lets every key read).
//! - **Parameters** come from the query string, a JSON body, a form or `multipart/form-data`
//!   (Plausible's documented `curl -F` examples); a body value wins over the query string, the
//!   path over both. `site_id` is the site's domain.
//! - **Answers** are Plausible's: 200 with its shapes, `{"error": …}` with its texts and
//!   status codes where a client might match on them, and lists paged by opaque cursors
//!   (`after`, `before`, `limit` up to 100) with `meta`.
//! - **Guests** are Footfall's viewers: a user who may read the site. There is no editor
//!   role. A new address is invited by e-mail (SMTP and `public_url` must be set).

use std::collections::HashSet;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value, json};

use super::admin::{base_url, reload_sites, store_error};
use super::auth::account_error;
use super::{ApiError, AppState};
use crate::accounts::{self, Role};
use crate::apikey::{self, Scope};
use crate::goals::{self, Goal, NewGoal, Rule};
use crate::store::Site;

pub const MISSING_KEY: &str =
    "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
pub const INVALID_KEY: &str = "Invalid API key. Please make sure you're using a valid API key with access to the resource you've requested.";
pub const MISSING_SITE: &str =
    "Missing site ID. Please provide the required site_id parameter with your request.";
const NO_SITE: &str = "Site could not be found";
const NO_GOAL: &str = "Goal could not be found";
/// Plausible's page size, and its largest.
pub const PAGE_LIMIT: usize = 100;
/// Largest body of a Sites API request.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most fields in one request.
const MAX_FIELDS: usize = 50;

/// Who calls.
enum Caller {
    /// A Sites API key.
    Key(apikey::SitesKey),
    /// A Stats API key, which reads its one site.
    Site(u32),
}

impl Caller {
    fn reads(&self, site: &Site) -> bool {
        match self {
            Caller::Key(_) => true,
            Caller::Site(id) => *id == site.id,
        }
    }

    /// How the caller is named in logs and invitations.
    fn name(&self) -> String {
        match self {
            Caller::Key(k) => format!("{} (Sites API key {})", k.created_by, k.id),
            Caller::Site(id) => format!("a Stats API key of site {id}"),
        }
    }
}

/// The key of the request, allowed to do what `needed` names.
async fn caller(state: &AppState, headers: &HeaderMap, needed: Scope) -> Result<Caller, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized(MISSING_KEY.into()))?;
    let store = state.store.as_ref();
    if let Some(key) = apikey::verify_sites_key(store, token)
        .await
        .map_err(store_error)?
    {
        if key.scope.allows(needed) {
            return Ok(Caller::Key(key));
        }
        return Err(ApiError::Unauthorized(INVALID_KEY.into()));
    }
    if needed == Scope::SitesRead
        && let Some(key) = apikey::verify(store, token).await.map_err(store_error)?
    {
        return Ok(Caller::Site(key.site_id));
    }
    Err(ApiError::Unauthorized(INVALID_KEY.into()))
}

/// A request's parameters: query string, then the body (JSON, form or multipart), then the
/// path's.
struct Params(Map<String, Value>);

impl Params {
    async fn read(req: Request) -> Result<Params, ApiError> {
        let mut out = Map::new();
        if let Some(q) = req.uri().query() {
            let pairs: Vec<(String, String)> =
                axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
                    .map_err(|e| {
                        ApiError::BadRequest(format!("the query string `{q}` is not a form: {e}"))
                    })?
                    .0;
            for (k, v) in pairs {
                out.insert(k, Value::String(v));
            }
        }
        let kind = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if kind.starts_with("multipart/form-data") {
            let mut form = Multipart::from_request(req, &())
                .await
                .map_err(|e| ApiError::BadRequest(format!("the multipart body: {e}")))?;
            let mut bytes = 0;
            while let Some(field) = form
                .next_field()
                .await
                .map_err(|e| ApiError::BadRequest(format!("the multipart body: {e}")))?
            {
                let name = field.name().unwrap_or("").to_string();
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::BadRequest(format!("field `{name}`: {e}")))?;
                bytes += name.len() + text.len();
                if bytes > MAX_BODY_BYTES || out.len() >= MAX_FIELDS {
                    return Err(ApiError::TooLarge);
                }
                out.insert(name, Value::String(text));
            }
            return Ok(Params(out));
        }
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(super::error::body_error)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params(out));
        }
        if kind.starts_with("application/x-www-form-urlencoded") {
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if pairs.len() > MAX_FIELDS {
                return Err(ApiError::TooLarge);
            }
            for (k, v) in pairs {
                out.insert(k, Value::String(v));
            }
            return Ok(Params(out));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) if o.len() <= MAX_FIELDS => {
                out.extend(o);
                Ok(Params(out))
            }
            Ok(Value::Object(_)) => Err(ApiError::TooLarge),
            Ok(_) => Err(ApiError::BadRequest(
                "the body must be a JSON object of parameters".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(format!(
                "send the parameters as JSON, a form or multipart/form-data: {e}"
            ))),
        }
    }

    fn with(mut self, name: &str, value: String) -> Params {
        self.0.insert(name.into(), Value::String(value));
        self
    }

    /// A text parameter; numbers are taken as written, other types are not text.
    fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A text parameter without which Plausible refuses `what` (its words).
    fn required(&self, name: &str, what: &str) -> Result<String, ApiError> {
        self.text(name).ok_or_else(|| {
            ApiError::BadRequest(format!("Parameter `{name}` is required to {what}"))
        })
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// The site `site_id` names, for a caller that may read it. A missing `site_id` is named
/// before the key is looked at, as Plausible does.
async fn site_for(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    needed: Scope,
) -> Result<(Caller, Site), ApiError> {
    let Some(site_id) = params.text("site_id").filter(|s| !s.trim().is_empty()) else {
        return Err(ApiError::BadRequest(MISSING_SITE.into()));
    };
    let who = caller(state, headers, needed).await?;
    let wanted = site_id.trim().to_ascii_lowercase();
    let site = state
        .store
        .meta()
        .sites()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|s| s.domain == wanted)
        .ok_or_else(|| ApiError::NotFound(NO_SITE.into()))?;
    if !who.reads(&site) {
        return Err(ApiError::Unauthorized(INVALID_KEY.into()));
    }
    Ok((who, site))
}

/// One page of `items` (in list order, with keys ascending in that order) as `after`,
/// `before` and `limit` ask, and its `meta`. Cursors are the keys, hex-encoded.
fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    params: &Params,
) -> Result<(Vec<T>, Value), ApiError> {
    let limit = match params.text("limit") {
        None => PAGE_LIMIT,
        // Plausible takes 1 to 100 and uses 100 for any other number.
        Some(l) => match l.trim().parse::<i64>() {
            Ok(n) if (1..=PAGE_LIMIT as i64).contains(&n) => n as usize,
            Ok(_) => PAGE_LIMIT,
            Err(_) => {
                return Err(ApiError::BadRequest(format!(
                    "`limit` is a number of items, 1 to {PAGE_LIMIT}, not `{}`",
                    l.chars().take(20).collect::<String>()
                )));
            }
        },
    };
    let cursor = |name: &str| -> Result<Option<String>, ApiError> {
        let Some(c) = params.text(name).filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let bytes = (c.len() % 2 == 0 && c.len() <= 2048)
            .then(|| {
                (0..c.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&c[i..i + 2], 16).ok())
                    .collect::<Option<Vec<u8>>>()
            })
            .flatten()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`{name}` is not a cursor this API gave (pass `meta.{name}` back as it came)"
                ))
            })?;
        Ok(Some(bytes))
    };
    let hex = |k: String| -> String { k.bytes().map(|b| format!("{b:02x}")).collect() };
    let keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
    let (after, before) = (cursor("after")?, cursor("before")?);
    let (chosen, more_after, more_before): (Vec<(String, T)>, bool, bool) = match (after, before) {
        (Some(a), _) => {
            let rest: Vec<_> = keyed.into_iter().filter(|(k, _)| *k > a).collect();
            let more = rest.len() > limit;
            (rest.into_iter().take(limit).collect(), more, true)
        }
        (None, Some(b)) => {
            let mut rest: Vec<_> = keyed.into_iter().filter(|(k, _)| *k < b).collect();
            let more = rest.len() > limit;
            let skip = rest.len().saturating_sub(limit);
            (rest.drain(skip..).collect(), true, more)
        }
        (None, None) => {
            let more = keyed.len() > limit;
            (keyed.into_iter().take(limit).collect(), more, false)
        }
    };
    let first = chosen.first().map(|(k, _)| k.clone());
    let last = chosen.last().map(|(k, _)| k.clone());
    let meta = json!({
        "after": if more_after { last.map(hex) } else { None },
        "before": if more_before { first.map(hex) } else { None },
        "limit": limit,
    });
    Ok((chosen.into_iter().map(|(_, t)| t).collect(), meta))
}

/// Sites newest first.
fn site_key(s: &Site) -> String {
    format!("{:010}", u32::MAX - s.id)
}

async fn site_answer(state: &AppState, site: &Site) -> Result<Value, ApiError> {
    let props = crate::sites::custom_props(state.store.as_ref(), site.id)
        .await
        .map_err(store_error)?;
    Ok(json!({"domain": site.domain, "timezone": site.timezone, "custom_properties": props}))
}

/// `GET /api/v1/sites`
pub async fn list_sites(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let who = caller(&state, &headers, Scope::SitesRead).await?;
    let mut sites: Vec<Site> = state
        .store
        .meta()
        .sites()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|s| who.reads(s))
        .collect();
    sites.sort_by_key(site_key);
    let (sites, meta) = page(sites, site_key, &params)?;
    let sites: Vec<Value> = sites
        .iter()
        .map(|s| json!({"domain": s.domain, "timezone": s.timezone}))
        .collect();
    Ok(Json(json!({"sites": sites, "meta": meta})))
}

/// `GET /api/v1/sites/teams`: one server, one team.
pub async fn list_teams(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    caller(&state, &headers, Scope::SitesRead).await?;
    let teams =
        vec![json!({"id": "footfall", "name": "This Footfall server", "api_available": true})];
    let (teams, meta) = page(teams, |_| String::from("0"), &params)?;
    Ok(Json(json!({"teams": teams, "meta": meta})))
}

/// A domain as Plausible cleans it (case, spaces, scheme, slashes), then checked as
/// Footfall's domains are.
fn clean_domain(raw: &str) -> Result<String, ApiError> {
    let d = raw.trim().to_ascii_lowercase();
    let d = d
        .strip_prefix("https://")
        .or_else(|| d.strip_prefix("http://"))
        .unwrap_or(&d)
        .trim_matches('/');
    if d.is_empty() {
        return Err(ApiError::BadRequest("domain: can't be blank".into()));
    }
    crate::cli::site::validate_domain(d).map_err(|e| ApiError::BadRequest(format!("domain: {e}")))
}

fn taken(domain: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "domain: This domain cannot be registered. A site {domain} exists on this server already."
    ))
}

/// `POST /api/v1/sites` `{domain, timezone}`
pub async fn create_site(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let who = caller(&state, &headers, Scope::SitesProvision).await?;
    let domain = clean_domain(&params.text("domain").unwrap_or_default())?;
    let timezone = match params.text("timezone").filter(|t| !t.trim().is_empty()) {
        None => "Etc/UTC".to_string(),
        Some(t) => crate::cli::site::validate_timezone(t.trim())
            .map_err(|_| ApiError::BadRequest("timezone: is invalid".into()))?,
    };
    if params.has("tracker_script_configuration") {
        return Err(no_tracker_configuration());
    }
    let site = match state.store.meta().add_site(&domain, &timezone).await {
        Ok(site) => site,
        Err(crate::store::StoreError::SiteExists(d)) => return Err(taken(&d)),
        Err(e) => return Err(store_error(e)),
    };
    reload_sites(&state).await?;
    tracing::info!(site = %site.domain, by = %who.name(), "site added through the Sites API");
    Ok(Json(site_answer(&state, &site).await?))
}

fn no_tracker_configuration() -> ApiError {
    ApiError::BadRequest(
        "tracker_script_configuration: Footfall keeps no per-site script configuration; a page turns features on with the script's name (script.outbound-links.js) or plausible.init({…})".into(),
    )
}

/// `GET /api/v1/sites/{site_id}`
pub async fn get_site(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?.with("site_id", site_id);
    let (_, site) = site_for(&state, &headers, &params, Scope::SitesRead).await?;
    Ok(Json(site_answer(&state, &site).await?))
}

/// `PUT /api/v1/sites/{site_id}` `{domain}`: a new domain; the statistics stay with the site.
pub async fn update_site(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?.with("site_id", site_id);
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    if !params.has("domain") && !params.has("tracker_script_configuration") {
        return Err(ApiError::BadRequest(
            "Payload must contain at least one of the parameters 'domain', 'tracker_script_configuration'".into(),
        ));
    }
    if params.has("tracker_script_configuration") {
        return Err(no_tracker_configuration());
    }
    let Some(raw) = params.text("domain") else {
        return Err(ApiError::BadRequest("domain: is invalid".into()));
    };
    let domain = clean_domain(&raw)?;
    if domain == site.domain {
        return Err(ApiError::BadRequest(
            "domain: New domain must be different than the current one".into(),
        ));
    }
    let renamed = Site {
        domain: domain.clone(),
        ..site.clone()
    };
    match state.store.meta().update_site(&renamed).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::NotFound(NO_SITE.into())),
        Err(crate::store::StoreError::SiteExists(d)) => return Err(taken(&d)),
        Err(e) => return Err(store_error(e)),
    }
    reload_sites(&state).await?;
    tracing::info!(from = %site.domain, to = %domain, by = %who.name(), "site renamed through the Sites API");
    Ok(Json(site_answer(&state, &renamed).await?))
}

/// `DELETE /api/v1/sites/{site_id}`: the site and all its data.
pub async fn delete_site(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?.with("site_id", site_id);
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    crate::sites::perform(
        state.store.as_ref(),
        &site,
        &crate::sites::Action::Delete,
        state.clock.now(),
    )
    .await
    .map_err(super::sites::site_error)?;
    reload_sites(&state).await?;
    tracing::info!(site = %site.domain, by = %who.name(), "site deleted through the Sites API");
    Ok(Json(json!({"deleted": true})))
}

/// `PUT /api/v1/sites/shared-links` `{site_id, name}`: the link of that name, made when
/// there is none; asking again gives the same address.
pub async fn shared_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    let name = params
        .required("name", "create a shared link")?
        .trim()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::BadRequest("can't be blank".into()));
    }
    if name.chars().count() > super::admin::MAX_LABEL_CHARS {
        return Err(ApiError::BadRequest(format!(
            "name: should be at most {} character(s)",
            super::admin::MAX_LABEL_CHARS
        )));
    }
    let store = state.store.as_ref();
    let key = crate::reports::unsubscribe::server_key(store, "shared-links")
        .await
        .map_err(store_error)?;
    let token = accounts::api_share(store, &key, site.id, &name, state.clock.now().timestamp())
        .await
        .map_err(account_error)?;
    let base = state
        .public_url
        .clone()
        .unwrap_or_else(|| base_url(&headers));
    tracing::info!(site = %site.domain, by = %who.name(), "shared link asked for through the Sites API");
    Ok(Json(
        json!({"name": name, "url": format!("{}/share/{token}", base.trim_end_matches('/'))}),
    ))
}

fn goal_json(g: &Goal) -> Value {
    let (kind, event, page, props) = match &g.rule {
        Rule::Event { name, props } => ("event", Some(name.as_str()), None, props.clone()),
        Rule::Pageview { path, props } => ("page", None, Some(path.as_str()), props.clone()),
        Rule::Scroll { path, .. } => ("scroll", None, Some(path.as_str()), Default::default()),
    };
    json!({"id": g.id, "display_name": g.display_name, "goal_type": kind,
        "event_name": event, "page_path": page, "custom_props": props})
}

/// Goals newest first.
fn goal_key(g: &Goal) -> String {
    format!("{:020}{:010}", i64::MAX - g.created_at, u32::MAX - g.id)
}

/// `GET /api/v1/sites/goals?site_id=`
pub async fn list_goals(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (_, site) = site_for(&state, &headers, &params, Scope::SitesRead).await?;
    let mut all = goals::goals_of(state.store.as_ref(), site.id)
        .await
        .map_err(store_error)?;
    all.sort_by_key(goal_key);
    let (chosen, meta) = page(all, goal_key, &params)?;
    let list: Vec<Value> = chosen.iter().map(goal_json).collect();
    Ok(Json(json!({"goals": list, "meta": meta})))
}

/// `PUT /api/v1/sites/goals` `{site_id, goal_type, event_name | page_path, display_name?,
/// custom_props?, currency?}`: the goal counting that event or page, made when there is none.
pub async fn put_goal(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    let props = match params.0.get("custom_props") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(ApiError::BadRequest(
                    "custom_props: must be a map with string keys and string values".into(),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "custom_props: must be a map with string keys and string values".into(),
            ));
        }
    };
    let goal = "create a goal";
    let rule = match params.required("goal_type", goal)?.as_str() {
        "event" => Rule::Event {
            name: params.required("event_name", goal)?.trim().to_string(),
            props,
        },
        "page" => {
            let path = params.required("page_path", goal)?;
            let path = path.trim();
            Rule::Pageview {
                path: if path.starts_with('/') {
                    path.to_string()
                } else {
                    format!("/{path}")
                },
                props,
            }
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "Parameter `goal_type` is `event` or `page`, not `{}`",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    let store = state.store.as_ref();
    let existing = goals::goals_of(store, site.id).await.map_err(store_error)?;
    // Plausible finds the goal by its event name or page path alone.
    if let Some(found) = existing.iter().find(|g| match (&g.rule, &rule) {
        (Rule::Event { name: a, .. }, Rule::Event { name: b, .. }) => a == b,
        (Rule::Pageview { path: a, .. }, Rule::Pageview { path: b, .. }) => a == b,
        _ => false,
    }) {
        let mut answer = goal_json(found);
        answer["domain"] = json!(site.domain);
        return Ok(Json(answer));
    }
    let currency = match (&rule, params.text("currency")) {
        (Rule::Event { .. }, Some(c)) if !c.trim().is_empty() => Some(c.trim().to_string()),
        _ => None,
    };
    let new = NewGoal {
        rule,
        display_name: params.text("display_name").filter(|n| !n.trim().is_empty()),
        currency,
    };
    let goal = goals::add(store, site.id, new, state.clock.now().timestamp())
        .await
        .map_err(|e| match e {
            goals::GoalError::Invalid(m) => ApiError::BadRequest(m),
            goals::GoalError::Store(e) => store_error(e),
        })?;
    tracing::info!(site = %site.domain, goal = %goal.display_name, by = %who.name(), "goal added through the Sites API");
    let mut answer = goal_json(&goal);
    answer["domain"] = json!(site.domain);
    Ok(Json(answer))
}

/// `DELETE /api/v1/sites/goals/{goal_id}` `{site_id}`
pub async fn delete_goal(
    State(state): State<AppState>,
    Path(goal_id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    let Ok(id) = goal_id.trim().parse::<u32>() else {
        return Err(ApiError::NotFound(NO_GOAL.into()));
    };
    if !goals::delete(state.store.as_ref(), site.id, id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::NotFound(NO_GOAL.into()));
    }
    tracing::info!(site = %site.domain, goal = id, by = %who.name(), "goal deleted through the Sites API");
    Ok(Json(json!({"deleted": true})))
}

/// `GET /api/v1/sites/custom-props?site_id=`: alphabetical, not paged.
pub async fn list_props(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (_, site) = site_for(&state, &headers, &params, Scope::SitesRead).await?;
    let mut props = crate::sites::custom_props(state.store.as_ref(), site.id)
        .await
        .map_err(store_error)?;
    props.sort();
    let list: Vec<Value> = props.iter().map(|p| json!({"property": p})).collect();
    Ok(Json(json!({"custom_properties": list})))
}

/// `PUT /api/v1/sites/custom-props` `{site_id, property}`
pub async fn put_prop(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    let property = params
        .required("property", "create a custom property")?
        .trim()
        .to_string();
    let chars = property.chars().count();
    if chars == 0 || chars > crate::sites::MAX_CUSTOM_PROP_CHARS {
        return Err(ApiError::BadRequest(
            "Parameter `property` is too long".into(),
        ));
    }
    let store = state.store.as_ref();
    let mut props = crate::sites::custom_props(store, site.id)
        .await
        .map_err(store_error)?;
    if !props.contains(&property) {
        if props.len() >= crate::sites::MAX_CUSTOM_PROPS {
            return Err(ApiError::BadRequest(
                "Can't add any more custom properties".into(),
            ));
        }
        props.insert(0, property.clone());
        crate::sites::put_custom_props(store, site.id, &props)
            .await
            .map_err(store_error)?;
        tracing::info!(site = %site.domain, by = %who.name(), "custom property added through the Sites API");
    }
    Ok(Json(json!({"created": true})))
}

/// `DELETE /api/v1/sites/custom-props/{*property}` `{site_id}`: the name may hold slashes.
pub async fn delete_prop(
    State(state): State<AppState>,
    Path(property): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    let store = state.store.as_ref();
    let mut props = crate::sites::custom_props(store, site.id)
        .await
        .map_err(store_error)?;
    let before = props.len();
    props.retain(|p| *p != property);
    if props.len() != before {
        crate::sites::put_custom_props(store, site.id, &props)
            .await
            .map_err(store_error)?;
        tracing::info!(site = %site.domain, by = %who.name(), "custom property removed through the Sites API");
    }
    Ok(Json(json!({"deleted": true})))
}

/// A guest of a site: a viewer who may read it, or an invitation to be one.
struct Guest {
    email: String,
    accepted: bool,
    /// Accepted guests newest first, then invitations oldest first (Plausible's order).
    key: String,
}

async fn guests_of(state: &AppState, site: &Site) -> Result<Vec<Guest>, ApiError> {
    let store = state.store.as_ref();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for u in accounts::users(store).await.map_err(account_error)? {
        if u.role == Role::Viewer && u.sites.contains(&site.id) && seen.insert(u.email.clone()) {
            out.push(Guest {
                key: format!("0{:020}{}", i64::MAX - u.created_at, u.email),
                email: u.email,
                accepted: true,
            });
        }
    }
    let now = state.clock.now().timestamp();
    for (_, t) in accounts::pending_invitations(store, now)
        .await
        .map_err(account_error)?
    {
        if t.sites.contains(&site.id) && seen.insert(t.email.clone()) {
            out.push(Guest {
                key: format!("1{:020}{}", t.expires_at.max(0), t.email),
                email: t.email,
                accepted: false,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn guest_json(email: &str, accepted: bool) -> Value {
    json!({"email": email, "role": "viewer", "status": if accepted { "accepted" } else { "invited" }})
}

/// `GET /api/v1/sites/guests?site_id=`
pub async fn list_guests(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (_, site) = site_for(&state, &headers, &params, Scope::SitesRead).await?;
    let all = guests_of(&state, &site).await?;
    let (chosen, meta) = page(all, |g| g.key.clone(), &params)?;
    let list: Vec<Value> = chosen
        .iter()
        .map(|g| guest_json(&g.email, g.accepted))
        .collect();
    Ok(Json(json!({"guests": list, "meta": meta})))
}

/// `PUT /api/v1/sites/guests` `{site_id, email, role}`: a viewer who exists is given the site
/// at once; a new address is invited by e-mail; either, asked again, is answered unchanged.
pub async fn put_guest(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    match params.text("role").as_deref() {
        Some("viewer") => {}
        Some("editor") => {
            return Err(ApiError::BadRequest(
                "Footfall has no editor role: a guest is a `viewer`, and an admin of the server changes settings".into(),
            ));
        }
        _ => {
            return Err(ApiError::BadRequest(
                "Parameter `role` is required to create guest. Possible values: `viewer` or `editor`".into(),
            ));
        }
    }
    let raw = params.required("email", "create guest")?;
    let email = accounts::validate_email(&raw).map_err(account_error)?;
    let store = state.store.as_ref();
    if let Some(mut user) = accounts::user(store, &email).await.map_err(account_error)? {
        if user.is_admin() {
            return Err(ApiError::BadRequest(format!(
                "{email} is an admin of this server and reads every site already"
            )));
        }
        if !user.sites.contains(&site.id) {
            user.sites.push(site.id);
            accounts::put_user(store, &user)
                .await
                .map_err(account_error)?;
            tracing::info!(site = %site.domain, by = %who.name(), "viewer given a site through the Sites API");
        }
        return Ok(Json(guest_json(&email, true)));
    }
    let now = state.clock.now().timestamp();
    if let Some((id, token)) = accounts::pending_invitations(store, now)
        .await
        .map_err(account_error)?
        .into_iter()
        .find(|(_, t)| t.email == email)
    {
        if !token.sites.contains(&site.id) {
            let mut sites = token.sites.clone();
            sites.push(site.id);
            accounts::set_invitation_sites(store, &id, token, sites)
                .await
                .map_err(account_error)?;
        }
        return Ok(Json(guest_json(&email, false)));
    }
    super::email_links::send_invitation(&state, &who.name(), &email, Role::Viewer, vec![site.id])
        .await?;
    Ok(Json(guest_json(&email, false)))
}

/// `DELETE /api/v1/sites/guests/{email}` `{site_id}`: takes the site from the viewer or the
/// invitation; the account stays.
pub async fn delete_guest(
    State(state): State<AppState>,
    Path(email): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let params = Params::read(req).await?;
    let (who, site) = site_for(&state, &headers, &params, Scope::SitesProvision).await?;
    let email = email.trim().to_ascii_lowercase();
    let store = state.store.as_ref();
    if let Some(mut user) = accounts::user(store, &email).await.map_err(account_error)?
        && user.role == Role::Viewer
        && user.sites.contains(&site.id)
    {
        user.sites.retain(|s| *s != site.id);
        accounts::put_user(store, &user)
            .await
            .map_err(account_error)?;
        tracing::info!(site = %site.domain, by = %who.name(), "site taken from a viewer through the Sites API");
    }
    let now = state.clock.now().timestamp();
    for (id, token) in accounts::pending_invitations(store, now)
        .await
        .map_err(account_error)?
    {
        if token.email == email && token.sites.contains(&site.id) {
            let sites = token
                .sites
                .iter()
                .copied()
                .filter(|s| *s != site.id)
                .collect();
            accounts::set_invitation_sites(store, &id, token, sites)
                .await
                .map_err(account_error)?;
        }
    }
    Ok(Json(json!({"deleted": true})))
}

/// `GET /api/server/keys` (admins): the Sites API keys, never the keys themselves.
pub async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    super::auth::principal(&state, &headers)
        .await?
        .admin_reader()?;
    let keys: Vec<Value> = apikey::sites_keys(state.store.as_ref())
        .await
        .map_err(store_error)?
        .iter()
        .map(|k| json!({"id": k.id, "scope": k.scope.name(), "label": k.label, "created_by": k.created_by, "created_at": k.created_at}))
        .collect();
    Ok(Json(json!({"keys": keys})))
}

/// `POST /api/server/keys` `{"scope": "sites:read"|"sites:provision", "label"}` (admins):
/// a Sites API key, shown once.
pub async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewKey {
        scope: String,
        #[serde(default)]
        label: String,
    }
    let who = super::auth::principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    let b: NewKey = super::auth::json_body(&headers, body).await?;
    let scope = Scope::parse(&b.scope).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "`scope` is sites:read or sites:provision, not `{}`",
            b.scope.chars().take(40).collect::<String>()
        ))
    })?;
    if b.label.chars().count() > apikey::MAX_LABEL_CHARS {
        return Err(ApiError::BadRequest(format!(
            "a key's label is at most {} characters",
            apikey::MAX_LABEL_CHARS
        )));
    }
    let (secret, key) = apikey::create_sites_key(
        state.store.as_ref(),
        scope,
        &b.label,
        &admin,
        state.clock.now().timestamp(),
    )
    .await
    .map_err(store_error)?;
    tracing::info!(key = %key.id, scope = scope.name(), by = %admin, "Sites API key made");
    Ok(Json(
        json!({"id": key.id, "scope": scope.name(), "label": key.label, "key": secret}),
    ))
}

/// `DELETE /api/server/keys/{id}` (admins)
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<axum::http::StatusCode, ApiError> {
    let who = super::auth::principal(&state, &headers).await?;
    let admin = who.admin(&headers)?.email.clone();
    if !apikey::revoke_sites_key(state.store.as_ref(), &id)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::NotFound(format!("no Sites API key {id}")));
    }
    tracing::info!(key = %id, by = %admin, "Sites API key revoked");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    }

    #[test]
    fn pages_walk_forward_and_back_without_gaps_or_repeats() {
        let items: Vec<u32> = (0..7).collect();
        let key = |n: &u32| format!("{n:03}");
        let (first, meta) = page(items.clone(), key, &params(&[("limit", "3")])).unwrap();
        assert_eq!(first, [0, 1, 2]);
        assert_eq!(meta["before"], Value::Null);
        let after = meta["after"].as_str().unwrap().to_string();
        let (second, meta) = page(
            items.clone(),
            key,
            &params(&[("limit", "3"), ("after", &after)]),
        )
        .unwrap();
        assert_eq!(second, [3, 4, 5]);
        let next = meta["after"].as_str().unwrap().to_string();
        let back = meta["before"].as_str().unwrap().to_string();
        let (third, meta) = page(
            items.clone(),
            key,
            &params(&[("limit", "3"), ("after", &next)]),
        )
        .unwrap();
        assert_eq!(third, [6]);
        assert_eq!(meta["after"], Value::Null);
        let (again, meta) = page(
            items.clone(),
            key,
            &params(&[("limit", "3"), ("before", &back)]),
        )
        .unwrap();
        assert_eq!(again, [0, 1, 2]);
        assert_eq!(meta["before"], Value::Null);
        // Plausible's limits: above 100 is 100; words are refused, as are strange cursors.
        let (_, meta) = page(items.clone(), key, &params(&[("limit", "1000")])).unwrap();
        assert_eq!(meta["limit"], 100);
        assert!(page(items.clone(), key, &params(&[("limit", "ten")])).is_err());
        assert!(page(items, key, &params(&[("after", "zz")])).is_err());
    }

    #[test]
    fn domains_are_cleaned_as_plausible_cleans_them() {
        assert_eq!(
            clean_domain(" HTTPS://www.Example.com/ ").unwrap(),
            "example.com"
        );
        let blank = clean_domain("  ").unwrap_err().to_string();
        assert_eq!(blank, "domain: can't be blank");
        assert!(clean_domain("exa mple.com").is_err());
    }
}
