//! Who is asking, and what they may do.
//!
//! A request to the Stats API or the dashboard's API is made by one [`Principal`]:
//! - an API key (`Authorization: Bearer ff_…`): reads its one site;
//! - a logged-in user (the `ff_session` cookie): reads the sites their role allows; changes
//!   things only with the session's CSRF token in `X-CSRF-Token`;
//! - a shared link (`X-Footfall-Share: <token>`, plus the `ff_share` cookie when the link has
//!   a password): reads its one site, and can never change anything.
//!
//! Routes: `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`,
//! `POST /api/auth/password`, `POST /api/share/unlock`. Failed logins are limited per client
//! IP and per e-mail address (in memory; the IP is never written anywhere).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::accounts::{self, AccountError, SharedLink, User};
use crate::ingest::ip::client_ip;
use crate::store::{ApiKey, Site};

pub const SESSION_COOKIE: &str = "ff_session";
pub const SHARE_COOKIE: &str = "ff_share";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const SHARE_HEADER: &str = "x-footfall-share";
/// Largest body of an account request, in bytes.
pub const MAX_AUTH_BODY: usize = 16 * 1024;

/// The maker of a request.
pub enum Principal {
    Key(ApiKey),
    User {
        user: User,
        session_id: String,
        csrf: String,
    },
    Share(SharedLink),
}

impl Principal {
    pub fn can_read(&self, site: &Site) -> bool {
        match self {
            Principal::Key(k) => k.site_id == site.id,
            Principal::User { user, .. } => user.can_read(site.id),
            Principal::Share(l) => l.site_id == site.id,
        }
    }

    /// The logged-in user allowed to make a change: never a key or a shared link, and only
    /// with the session's CSRF token.
    pub fn editor(&self, headers: &HeaderMap) -> Result<&User, ApiError> {
        match self {
            Principal::Key(_) => Err(ApiError::Forbidden(
                "API keys only read statistics; log in to change anything".into(),
            )),
            Principal::Share(_) => Err(ApiError::Forbidden("a shared link is read-only".into())),
            Principal::User { user, csrf, .. } => {
                let sent = headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if accounts::constant_time_eq(sent, csrf) {
                    Ok(user)
                } else {
                    Err(ApiError::Forbidden(
                        "missing or wrong CSRF token: send the session's token in X-CSRF-Token"
                            .into(),
                    ))
                }
            }
        }
    }

    /// A logged-in admin, for reading what only admins see (no change, so no CSRF token).
    pub fn admin_reader(&self) -> Result<&User, ApiError> {
        match self {
            Principal::User { user, .. } if user.is_admin() => Ok(user),
            _ => Err(ApiError::Forbidden("only an admin may see this".into())),
        }
    }

    /// An admin allowed to make a change.
    pub fn admin(&self, headers: &HeaderMap) -> Result<&User, ApiError> {
        let user = self.editor(headers)?;
        if user.is_admin() {
            Ok(user)
        } else {
            Err(ApiError::Forbidden("only an admin may do this".into()))
        }
    }
}

pub fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(m) => ApiError::BadRequest(m),
        other => {
            tracing::error!(error = %other, "account store failed");
            ApiError::Unavailable
        }
    }
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over HTTPS (through a TLS-terminating proxy).
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure over HTTPS; `max_age` 0 deletes it.
fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if https(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn now(state: &AppState) -> i64 {
    state.clock.now().timestamp()
}

/// The logged-in user of a session cookie, if any.
pub async fn session_user(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(User, String, String)>, ApiError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let store = state.store.as_ref();
    let Some((id, session)) = accounts::session(store, token, now(state))
        .await
        .map_err(account_error)?
    else {
        return Ok(None);
    };
    let Some(email) = session.user else {
        return Ok(None);
    };
    Ok(accounts::user(store, &email)
        .await
        .map_err(account_error)?
        .map(|u| (u, id, session.csrf)))
}

/// Who made the request: 401 when no one valid.
pub async fn principal(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let who = principal_enrolling(state, headers).await?;
    if let Principal::User { user, .. } = &who
        && super::two_factor::required(state).await?
        && !accounts::two_factor(state.store.as_ref(), &user.email)
            .await
            .map_err(account_error)?
            .enabled()
    {
        return Err(ApiError::Forbidden(
            "this server requires two-factor login: set it up in your account first".into(),
        ));
    }
    Ok(who)
}

/// [`principal`], without the server's two-factor requirement: for the calls that set it up.
pub async fn principal_enrolling(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let store = state.store.as_ref();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("send `Authorization: Bearer <key>`".into()))?;
        let key = crate::apikey::verify(store, token)
            .await
            .map_err(|_| ApiError::Unavailable)?
            .ok_or_else(|| ApiError::Unauthorized("invalid or revoked API key".into()))?;
        return Ok(Principal::Key(key));
    }
    if let Some(token) = headers.get(SHARE_HEADER) {
        let token = token.to_str().unwrap_or("");
        let link = accounts::share_by_token(store, token)
            .await
            .map_err(account_error)?
            .ok_or_else(|| {
                ApiError::Unauthorized("this shared link is invalid or revoked".into())
            })?;
        if link.password_hash.is_some() && !share_unlocked(state, headers, &link).await? {
            return Err(ApiError::Unauthorized(
                "this shared link needs its password".into(),
            ));
        }
        return Ok(Principal::Share(link));
    }
    match session_user(state, headers).await? {
        Some((user, session_id, csrf)) => Ok(Principal::User {
            user,
            session_id,
            csrf,
        }),
        None => Err(ApiError::Unauthorized(
            "log in, or send an API key as `Authorization: Bearer <key>`".into(),
        )),
    }
}

async fn share_unlocked(
    state: &AppState,
    headers: &HeaderMap,
    link: &SharedLink,
) -> Result<bool, ApiError> {
    let Some(token) = cookie(headers, SHARE_COOKIE) else {
        return Ok(false);
    };
    Ok(accounts::session(state.store.as_ref(), token, now(state))
        .await
        .map_err(account_error)?
        .is_some_and(|(_, s)| s.share.as_deref() == Some(link.id.as_str())))
}

/// The site named `domain` if the principal may read it; 404 otherwise, so a site's existence
/// is not revealed to those who may not read it.
pub async fn readable_site(
    state: &AppState,
    principal: &Principal,
    domain: &str,
) -> Result<Site, ApiError> {
    state
        .store
        .meta()
        .sites()
        .await
        .map_err(|_| ApiError::Unavailable)?
        .into_iter()
        .find(|s| s.domain == domain && principal.can_read(s))
        .ok_or_else(|| ApiError::NotFound(format!("no site `{domain}` for this account")))
}

/// Reads a JSON body of at most [`MAX_AUTH_BODY`] bytes sent as `application/json` (a
/// cross-site form cannot send that type without the browser asking first).
pub async fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<T, ApiError> {
    json_body_up_to(headers, body, MAX_AUTH_BODY).await
}

/// [`json_body`] for a body of at most `limit` bytes.
pub async fn json_body_up_to<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::BadRequest(
            "send the body as application/json".into(),
        ));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(super::error::body_error)?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("bad body: {e}")))
}

/// Runs CPU-heavy password work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Unavailable)
}

/// Password attempts per client address and per e-mail (or shared link), over a sliding
/// window, and a cap on password checks at once.
///
/// An attempt is recorded *before* its password is checked, so a burst of concurrent wrong
/// logins cannot all get through the check; a login that succeeds takes its attempt back.
/// Keys are blake3 hashes (no e-mail address is held in memory), IPv6 addresses count by
/// their /64, and the map is bounded: past [`Self::MAX_KEYS`] the keys idle longest are
/// evicted, never the whole map. Each argon2 check takes about 19 MiB: at most one per core
/// runs at once, and a check that finds no free slot within half a second is answered 429.
pub struct LoginLimiter {
    attempts: Mutex<HashMap<[u8; 16], Vec<i64>>>,
    /// (account or link, address) pairs that succeeded, by hash, with the time of the last
    /// success: such an address is held by its own limit only, not by the account's.
    known: Mutex<HashMap<[u8; 16], i64>>,
    checks: std::sync::Arc<tokio::sync::Semaphore>,
    permits: usize,
    /// Password checks run, and the most at once (for /metrics and tests).
    pub checked: std::sync::atomic::AtomicU64,
    pub most_at_once: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        let permits = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoginLimiter {
            attempts: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            checks: std::sync::Arc::new(tokio::sync::Semaphore::new(permits)),
            permits,
            checked: Default::default(),
            most_at_once: Default::default(),
            running: Default::default(),
        }
    }
}

/// How long a password check waits for a free slot before it is answered 429.
const CHECK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The limiter's key for a client address: IPv6 by its /64.
pub fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        v4 => format!("ip:{v4}"),
    }
}

impl LoginLimiter {
    pub const WINDOW_SECS: i64 = 15 * 60;
    pub const MAX_FAILURES: usize = 10;
    /// Most keys remembered; beyond it the keys idle longest are evicted.
    const MAX_KEYS: usize = 100_000;

    fn key(k: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        out.copy_from_slice(&blake3::hash(k.as_bytes()).as_bytes()[..16]);
        out
    }

    /// Checks that none of `keys` has used up its attempts and records one for each, at once.
    /// `Err(seconds)` to wait when one has.
    pub fn attempt(&self, keys: &[String], now: i64) -> Result<(), u32> {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wait) = Self::wait(&map, keys, now) {
            return Err(wait);
        }
        Self::make_room(&mut map, now);
        for key in keys {
            let times = map.entry(Self::key(key)).or_default();
            times.retain(|t| now - t < Self::WINDOW_SECS);
            times.push(now);
        }
        Ok(())
    }

    /// Seconds to wait when any of `keys` has used up its attempts (recording nothing).
    pub fn blocked(&self, keys: &[String], now: i64) -> Option<u32> {
        let map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        Self::wait(&map, keys, now)
    }

    /// Seconds until the first of `keys` that has used up its attempts has one again.
    fn wait(map: &HashMap<[u8; 16], Vec<i64>>, keys: &[String], now: i64) -> Option<u32> {
        keys.iter()
            .filter_map(|k| map.get(&Self::key(k)))
            .filter_map(|times| {
                let recent: Vec<i64> = times
                    .iter()
                    .copied()
                    .filter(|t| now - t < Self::WINDOW_SECS)
                    .collect();
                (recent.len() >= Self::MAX_FAILURES).then(|| {
                    let oldest = recent.iter().min().copied().unwrap_or(now);
                    u32::try_from(oldest + Self::WINDOW_SECS - now)
                        .unwrap_or(1)
                        .max(1)
                })
            })
            .max()
    }

    /// How long an address stays known to an account after a success there.
    pub const KNOWN_SECS: i64 = 30 * 86_400;

    fn pair(account: &str, address: &str) -> [u8; 16] {
        Self::key(&format!("{account}\n{address}"))
    }

    /// The keys a login attempt is counted against: its address, and the account unless
    /// the account has logged in from this address within [`Self::KNOWN_SECS`]. So failures
    /// from elsewhere can delay logins from new places, but never lock the owner out where
    /// they have logged in before.
    pub fn keys_for(&self, account: &str, address: &str, now: i64) -> Vec<String> {
        let known = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Self::pair(account, address))
            .is_some_and(|at| now - at < Self::KNOWN_SECS);
        if known {
            vec![address.to_string()]
        } else {
            vec![address.to_string(), account.to_string()]
        }
    }

    /// A success of `account` from `address`: the pair is known from now on.
    pub fn remember(&self, account: &str, address: &str, now: i64) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= Self::MAX_KEYS {
            known.retain(|_, at| now - *at < Self::KNOWN_SECS);
        }
        if known.len() >= Self::MAX_KEYS {
            let evict = Self::MAX_KEYS / 100;
            let mut oldest: Vec<(i64, [u8; 16])> = known.iter().map(|(k, at)| (*at, *k)).collect();
            oldest.select_nth_unstable_by_key(evict, |(at, _)| *at);
            for (_, key) in &oldest[..evict] {
                known.remove(key);
            }
        }
        known.insert(Self::pair(account, address), now);
    }

    /// A success: forgets `key`'s attempts.
    pub fn clear(&self, key: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Self::key(key));
    }

    /// A success: takes back the attempt recorded at `at` for `key`.
    pub fn take_back(&self, key: &str, at: i64) {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(times) = map.get_mut(&Self::key(key))
            && let Some(i) = times.iter().rposition(|t| *t == at)
        {
            times.remove(i);
        }
    }

    /// Drops idle keys, then the keys idle longest, to stay below [`Self::MAX_KEYS`].
    fn make_room(map: &mut HashMap<[u8; 16], Vec<i64>>, now: i64) {
        if map.len() < Self::MAX_KEYS {
            return;
        }
        map.retain(|_, times| times.iter().any(|t| now - t < Self::WINDOW_SECS));
        if map.len() < Self::MAX_KEYS {
            return;
        }
        let evict = Self::MAX_KEYS / 100;
        let mut idle: Vec<(i64, [u8; 16])> = map
            .iter()
            .map(|(k, times)| (times.iter().max().copied().unwrap_or(0), *k))
            .collect();
        idle.select_nth_unstable_by_key(evict, |(last, _)| *last);
        for (_, key) in &idle[..evict] {
            map.remove(key);
        }
    }

    /// Checks `password` against `hash` off the async threads, at most one check per core at
    /// once; 429 when every slot is taken.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        use std::sync::atomic::Ordering;
        // A moment's wait smooths two people logging in at once; a flood is refused.
        let slot = tokio::time::timeout(CHECK_WAIT, self.checks.clone().acquire_owned()).await;
        let Ok(Ok(permit)) = slot else {
            return Err(ApiError::RateLimited {
                retry_after_secs: 1,
            });
        };
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(running, Ordering::SeqCst);
        self.checked.fetch_add(1, Ordering::Relaxed);
        let checked = blocking(move || {
            let ok = accounts::verify_password(&password, hash.as_deref());
            (ok, permit)
        })
        .await;
        // The slot is given back only after the count of checks running has dropped.
        self.running.fetch_sub(1, Ordering::SeqCst);
        checked.map(|(ok, _permit)| ok)
    }

    /// Password checks allowed at once.
    pub fn permits(&self) -> usize {
        self.permits
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    /// The code from an authenticator app, or a recovery code, for a user with two-factor
    /// login.
    #[serde(default)]
    code: Option<String>,
}

fn me_json(user: &User, csrf: &str, two_factor: Value) -> Value {
    json!({
        "email": user.email,
        "role": user.role,
        "sites": user.sites,
        "csrf": csrf,
        "two_factor": two_factor,
    })
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body: LoginBody = json_body(&headers, body).await?;
    let email = body.email.trim().to_lowercase();
    let ip = client_ip(peer.ip(), &headers, &state.proxies);
    let (address, account) = (address_key(ip), format!("email:{email}"));
    let t = now(&state);
    let keys = state.login_limiter.keys_for(&account, &address, t);
    // Recorded before the check, so concurrent attempts cannot all pass it.
    if let Err(retry_after_secs) = state.login_limiter.attempt(&keys, t) {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let store = state.store.as_ref();
    let user = if email.len() <= accounts::MAX_EMAIL_BYTES {
        accounts::user(store, &email).await.map_err(account_error)?
    } else {
        None
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = state.login_limiter.verify(body.password, hash).await?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::Unauthorized("wrong e-mail or password".into()));
    };
    // The second factor, when the user has one: a code from the app or a recovery code.
    let mut tf = accounts::two_factor(store, &user.email)
        .await
        .map_err(account_error)?;
    if tf.enabled() {
        let Some(code) = body.code.as_deref().filter(|c| !c.trim().is_empty()) else {
            // The password was right: asking for the code is not a failed attempt.
            state.login_limiter.take_back(&address, t);
            state.login_limiter.take_back(&account, t);
            return Err(ApiError::TwoFactorRequired);
        };
        if code.len() > 64 || !tf.take(code, t) {
            return Err(ApiError::Unauthorized(
                "wrong code: enter the current code from your authenticator app, or a recovery code".into(),
            ));
        }
        accounts::put_two_factor(store, &user.email, &tf)
            .await
            .map_err(account_error)?;
    }
    state.login_limiter.clear(&account);
    state.login_limiter.take_back(&address, t);
    state.login_limiter.remember(&account, &address, t);
    tracing::info!(user = %user.email, "dashboard login");
    logged_in(&state, &headers, &user).await
}

/// Starts a login session for `user`: the cookie, and what `/api/auth/me` answers.
pub async fn logged_in(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
) -> Result<Response, ApiError> {
    let t = now(state);
    let (token, session) = accounts::start_session(
        state.store.as_ref(),
        Some(&user.email),
        None,
        t,
        accounts::SESSION_SECS,
    )
    .await
    .map_err(account_error)?;
    let cookie = set_cookie(headers, SESSION_COOKIE, &token, accounts::SESSION_SECS);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(me_json(
            user,
            &session.csrf,
            super::two_factor::status(state, &user.email).await?,
        )),
    )
        .into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = principal(&state, &headers).await?;
    who.editor(&headers)?;
    if let Principal::User { session_id, .. } = &who {
        accounts::end_session(state.store.as_ref(), session_id)
            .await
            .map_err(account_error)?;
    }
    let cookie = set_cookie(&headers, SESSION_COOKIE, "", 0);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

pub async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    match session_user(&state, &headers).await? {
        Some((user, _, csrf)) => {
            let tf = super::two_factor::status(&state, &user.email).await?;
            Ok(Json(me_json(&user, &csrf, tf)))
        }
        None => Err(ApiError::Unauthorized("not logged in".into())),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current: String,
    new: String,
}

/// Changes the user's own password and ends their other sessions.
pub async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<StatusCode, ApiError> {
    let who = principal(&state, &headers).await?;
    let user = who.editor(&headers)?.clone();
    let Principal::User { session_id, .. } = &who else {
        return Err(ApiError::Forbidden("log in to change a password".into()));
    };
    let body: PasswordBody = json_body(&headers, body).await?;
    let old_hash = user.password_hash.clone();
    let ok = state
        .login_limiter
        .verify(body.current, Some(old_hash))
        .await?;
    if !ok {
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    }
    let new = body.new;
    let new_hash = blocking(move || accounts::hash_password(&new))
        .await?
        .map_err(account_error)?;
    let store = state.store.as_ref();
    let email = user.email.clone();
    // Read the user again after the slow checks: an admin may have deleted or demoted them
    // meanwhile, and the record read at the start must not be written back.
    let current = accounts::user(store, &email)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::Unauthorized("this account no longer exists".into()))?;
    accounts::put_user(
        store,
        &User {
            password_hash: new_hash,
            ..current
        },
    )
    .await
    .map_err(account_error)?;
    accounts::end_sessions(
        store,
        |s| s.user.as_deref() == Some(&email),
        Some(session_id),
    )
    .await
    .map_err(account_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockBody {
    token: String,
    password: String,
}

/// Opens a password-protected shared link in this browser for a day.
pub async fn unlock_share(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body: UnlockBody = json_body(&headers, body).await?;
    let ip = client_ip(peer.ip(), &headers, &state.proxies);
    // Limited per address and per link (its token, hashed like every key), with the
    // logins' rule: an address that unlocked this link before is held by its own limit only.
    let (address, link_key) = (address_key(ip), format!("share:{}", body.token));
    let t = now(&state);
    let keys = state.login_limiter.keys_for(&link_key, &address, t);
    if let Err(retry_after_secs) = state.login_limiter.attempt(&keys, t) {
        return Err(ApiError::RateLimited { retry_after_secs });
    }
    let store = state.store.as_ref();
    let link = accounts::share_by_token(store, &body.token)
        .await
        .map_err(account_error)?
        .ok_or_else(|| ApiError::Unauthorized("this shared link is invalid or revoked".into()))?;
    let Some(hash) = link.password_hash.clone() else {
        // A link without a password is open as it is: nothing to unlock, nothing stored.
        state.login_limiter.take_back(&address, t);
        state.login_limiter.take_back(&link_key, t);
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if !state
        .login_limiter
        .verify(body.password, Some(hash))
        .await?
    {
        return Err(ApiError::Unauthorized("wrong password".into()));
    }
    state.login_limiter.take_back(&address, t);
    state.login_limiter.take_back(&link_key, t);
    state.login_limiter.remember(&link_key, &address, t);
    accounts::make_room_for_share_session(store, &link.id)
        .await
        .map_err(account_error)?;
    let (token, _) =
        accounts::start_session(store, None, Some(&link.id), t, accounts::SHARE_SESSION_SECS)
            .await
            .map_err(account_error)?;
    let cookie = set_cookie(&headers, SHARE_COOKIE, &token, accounts::SHARE_SESSION_SECS);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_after_ten_failures_in_the_window() {
        let l = LoginLimiter::default();
        let keys = ["ip:192.0.2.1".to_string(), "email:a@b.c".to_string()];
        for i in 0..9 {
            l.attempt(&keys, 1000 + i).unwrap();
        }
        assert_eq!(l.blocked(&keys, 1010), None);
        l.attempt(&keys, 1010).unwrap();
        let wait = l.blocked(&keys, 1010).unwrap();
        assert_eq!(wait, 900 - 10);
        assert!(l.blocked(&["ip:192.0.2.2".to_string()], 1010).is_none());
        assert_eq!(l.blocked(&keys, 1000 + 900 + 9), None);
        l.clear("email:a@b.c");
        assert!(l.blocked(&keys[1..], 1011).is_none());
        assert!(l.blocked(&keys[..1], 1011).is_some());
    }

    #[test]
    fn attempts_are_recorded_before_the_check_and_successes_take_theirs_back() {
        let l = LoginLimiter::default();
        let keys = [
            address_key("192.0.2.1".parse().unwrap()),
            "email:a@b.c".to_string(),
        ];
        for i in 0..10 {
            assert!(l.attempt(&keys, 1000 + i).is_ok(), "attempt {i}");
        }
        assert!(
            l.attempt(&keys, 1010).is_err(),
            "the eleventh is refused before any check"
        );
        // A success takes back its attempt for the address and clears the account.
        let other = [
            address_key("192.0.2.2".parse().unwrap()),
            "email:x@y.z".to_string(),
        ];
        l.attempt(&other, 1000).unwrap();
        l.take_back(&other[0], 1000);
        l.clear(&other[1]);
        assert!(l.blocked(&other, 1000).is_none());
        // IPv6 addresses count by their /64.
        assert_eq!(
            address_key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            address_key("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_ne!(
            address_key("2001:db8:1:2::1".parse().unwrap()),
            address_key("2001:db8:1:3::1".parse().unwrap())
        );
        // Keys are hashed: no e-mail address is held.
        let map = l.attempts.lock().unwrap();
        assert!(
            map.keys()
                .all(|k| !String::from_utf8_lossy(k).contains("a@b.c"))
        );
    }

    #[test]
    fn a_full_limiter_evicts_the_idlest_and_keeps_the_attacked_account() {
        let l = LoginLimiter::default();
        let victim = ["email:admin@example.org".to_string()];
        for i in 0..9 {
            l.attempt(&victim, 10_000 + i).unwrap();
        }
        // A flood of other keys, each seen once, fills the map past its bound.
        for i in 0..(LoginLimiter::MAX_KEYS as i64 + 5_000) {
            l.attempt(&[format!("ip:flood-{i}")], 10_000 + (i % 10))
                .unwrap();
        }
        assert!(l.attempts.lock().unwrap().len() <= LoginLimiter::MAX_KEYS);
        l.attempt(&victim, 10_020).unwrap();
        assert!(
            l.blocked(&victim, 10_021).is_some(),
            "the attacked account is still counted"
        );
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ff_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let v = set_cookie(&h, SESSION_COOKIE, "x", 60);
        assert_eq!(
            v.to_str().unwrap(),
            "ff_session=x; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(
            set_cookie(&h, SESSION_COOKIE, "x", 60)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }
}
