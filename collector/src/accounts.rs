//! Dashboard accounts: users, their login sessions, and shared links.
//!
//! All three are small JSON records in the store (see [`Store::records`]), so every collector
//! of a deployment sees the same ones. Nothing secret is stored in a readable form:
//! - a password is kept as an argon2id PHC string;
//! - a login session is stored under `blake3(token)`; the token itself lives only in the
//!   visitor's HttpOnly cookie;
//! - a shared link keeps `blake3(token)`; the token is shown once, when the link is made.
//!
//! Roles: an admin reads every site and manages sites, users, keys and links; a viewer reads
//! the sites granted to them and changes nothing but their own password.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

const USER: &str = "user";
const SESSION: &str = "session";
const SHARE: &str = "share";
const TWO_FACTOR: &str = "two_factor";
const SERVER: &str = "server_settings";
const EMAIL_TOKEN: &str = "email_token";

/// How long a link sent by e-mail (an invitation, a password reset) works.
pub const EMAIL_LINK_SECS: i64 = 3600;

/// How long a login lasts.
pub const SESSION_SECS: i64 = 14 * 86_400;
/// How long an unlocked password-protected shared link lasts in a browser.
pub const SHARE_SESSION_SECS: i64 = 86_400;
/// Shortest and longest password, in characters and bytes.
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored {0} record is unreadable")]
    Corrupt(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Lower-case; the user's id.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub role: Role,
    /// Site ids a viewer may read (an admin reads all).
    pub sites: Vec<u32>,
    pub created_at: i64,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn can_read(&self, site_id: u32) -> bool {
        self.is_admin() || self.sites.contains(&site_id)
    }
}

/// A browser's login (for a user) or its unlock of a password-protected shared link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The user's e-mail, for a login.
    pub user: Option<String>,
    /// The shared link's id, for an unlocked link.
    pub share: Option<String>,
    /// The token every state-changing request of this session must carry.
    pub csrf: String,
    /// UTC seconds.
    pub expires_at: i64,
    /// UTC seconds (0 for sessions started before it was kept).
    #[serde(default)]
    pub created_at: i64,
}

/// A user's two-factor login (a record of its own, beside the user's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TwoFactor {
    /// The TOTP secret (base32) once set up and confirmed with a code.
    pub secret: Option<String>,
    /// A secret being set up: shown, not yet confirmed.
    pub pending: Option<String>,
    /// blake3 hashes of the recovery codes not used yet.
    pub recovery: Vec<String>,
    /// The last step whose code was taken (a code is taken once).
    pub last_step: i64,
    /// UTC seconds.
    pub enabled_at: i64,
}

impl TwoFactor {
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// Takes a TOTP code or an unused recovery code at `now`; `true` when it matched (the
    /// caller stores `self` then: the step or the recovery code is used up).
    pub fn take(&mut self, code: &str, now: i64) -> bool {
        let Some(secret) = &self.secret else {
            return false;
        };
        if let Some(step) = crate::totp::verify(secret, code, now, self.last_step) {
            self.last_step = step;
            return true;
        }
        let hash = crate::totp::recovery_hash(code);
        if code.chars().filter(char::is_ascii_alphanumeric).count() == 10
            && let Some(i) = self
                .recovery
                .iter()
                .position(|h| constant_time_eq(h, &hash))
        {
            self.recovery.remove(i);
            return true;
        }
        false
    }
}

/// Settings of the whole server that admins change in the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Every user must log in with a second factor (those without one set it up first).
    pub require_two_factor: bool,
}

pub async fn two_factor(store: &dyn Store, email: &str) -> Result<TwoFactor, AccountError> {
    Ok(get(store, TWO_FACTOR, email).await?.unwrap_or_default())
}

pub async fn put_two_factor(
    store: &dyn Store,
    email: &str,
    tf: &TwoFactor,
) -> Result<(), AccountError> {
    put(store, TWO_FACTOR, email, tf).await
}

pub async fn server_settings(store: &dyn Store) -> Result<ServerSettings, AccountError> {
    Ok(get(store, SERVER, "auth").await?.unwrap_or_default())
}

pub async fn put_server_settings(
    store: &dyn Store,
    s: &ServerSettings,
) -> Result<(), AccountError> {
    put(store, SERVER, "auth", s).await
}

/// The live login sessions of a user, as (id, session), soonest to expire first.
pub async fn sessions_of(
    store: &dyn Store,
    email: &str,
    now: i64,
) -> Result<Vec<(String, Session)>, AccountError> {
    let mut out: Vec<(String, Session)> = all::<Session>(store, SESSION)
        .await?
        .into_iter()
        .filter(|(_, s)| s.user.as_deref() == Some(email) && s.expires_at > now)
        .collect();
    out.sort_by_key(|(_, s)| s.expires_at);
    Ok(out)
}

/// What a link sent by e-mail may do, once, before it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailToken {
    /// `invite` or `reset`.
    pub purpose: String,
    pub email: String,
    /// An invitation's role and sites.
    pub role: Option<Role>,
    #[serde(default)]
    pub sites: Vec<u32>,
    /// UTC seconds.
    pub expires_at: i64,
}

/// Stores a link's token (its hash only) and returns the token, for the link.
pub async fn issue_email_token(
    store: &dyn Store,
    token: &EmailToken,
) -> Result<String, AccountError> {
    let secret = random_hex(32);
    put(store, EMAIL_TOKEN, &token_hash(&secret), token).await?;
    Ok(secret)
}

/// Invitations neither accepted nor expired at `now`, with their record ids.
pub async fn pending_invitations(
    store: &dyn Store,
    now: i64,
) -> Result<Vec<(String, EmailToken)>, AccountError> {
    Ok(all::<EmailToken>(store, EMAIL_TOKEN)
        .await?
        .into_iter()
        .filter(|(_, t)| t.purpose == "invite" && t.expires_at > now)
        .collect())
}

/// Changes the sites of a pending invitation (its record id), or drops it when none is left.
pub async fn set_invitation_sites(
    store: &dyn Store,
    id: &str,
    mut token: EmailToken,
    sites: Vec<u32>,
) -> Result<(), AccountError> {
    if sites.is_empty() {
        store.meta().delete_record(EMAIL_TOKEN, id).await?;
        return Ok(());
    }
    token.sites = sites;
    put(store, EMAIL_TOKEN, id, &token).await
}

/// Uses up a link's token: what it may do, when it is one of `purpose` and has not expired.
/// A token is gone once tried, whatever the answer.
pub async fn take_email_token(
    store: &dyn Store,
    secret: &str,
    purpose: &str,
    now: i64,
) -> Result<Option<EmailToken>, AccountError> {
    if !session_token_shape(secret) {
        return Ok(None);
    }
    let id = token_hash(secret);
    let Some(token) = get::<EmailToken>(store, EMAIL_TOKEN, &id).await? else {
        return Ok(None);
    };
    store.meta().delete_record(EMAIL_TOKEN, &id).await?;
    Ok((token.purpose == purpose && token.expires_at > now).then_some(token))
}

/// A read-only public dashboard of one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLink {
    /// The token's first 8 hex digits: listed, used to revoke.
    pub id: String,
    pub site_id: u32,
    pub token_hash: String,
    /// argon2id PHC string, when the link asks for a password.
    pub password_hash: Option<String>,
    pub label: String,
    pub created_at: i64,
    /// The origins (`https://blog.example.com`) whose pages may show the link in a frame;
    /// none: no page may.
    #[serde(default)]
    pub embed_origins: Vec<String>,
    /// For a link made through the Sites API: what its token is derived from (an HMAC under
    /// a server key), so that asking for the same link again gives the same address, as
    /// Plausible's API does. Links made in the dashboard have none and are shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_nonce: Option<String>,
}

/// Origins a shared link may be embedded in, at most.
pub const MAX_EMBED_ORIGINS: usize = 20;

/// The origins a link may be embedded in, each written as its origin (`scheme://host[:port]`),
/// or what is wrong with one.
pub fn embed_origins(wanted: &[String]) -> Result<Vec<String>, AccountError> {
    if wanted.len() > MAX_EMBED_ORIGINS {
        return Err(AccountError::Invalid(format!(
            "a link may be embedded in at most {MAX_EMBED_ORIGINS} origins"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in wanted {
        let bad = || {
            AccountError::Invalid(format!(
                "`{}` is not an origin such as https://blog.example.com (a scheme and a host, no path)",
                raw.chars().take(80).collect::<String>()
            ))
        };
        let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
        if !matches!(url.scheme(), "https" | "http")
            || url.host_str().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad());
        }
        let origin = url.origin().ascii_serialization();
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Whether two strings are equal, in a time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A trimmed, lower-cased e-mail address, or why it is not one.
pub fn validate_email(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim().to_lowercase();
    let bad = |why: &str| Err(AccountError::Invalid(format!("`{email}` is {why}")));
    if email.is_empty() {
        return Err(AccountError::Invalid("the e-mail address is empty".into()));
    }
    if email.len() > MAX_EMAIL_BYTES {
        return bad("longer than 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("not an e-mail address (it has spaces or control characters)");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email)
        }
        _ => bad("not an e-mail address (expected name@domain)"),
    }
}

/// Checks a new password's length.
pub fn validate_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::Invalid(format!(
            "the password must have at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id and a random salt (CPU-heavy: call off the async runtime).
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    validate_password(password)?;
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches a stored hash (CPU-heavy: call off the async runtime).
/// Without a hash, a fixed one is checked so an unknown user takes as long as a known one.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"no such user, no such password")
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    let known = hash.is_some();
    let Ok(parsed) = PasswordHash::new(hash.unwrap_or(dummy)) else {
        return false;
    };
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && known
}

async fn get<T: for<'de> Deserialize<'de>>(
    store: &dyn Store,
    kind: &'static str,
    id: &str,
) -> Result<Option<T>, AccountError> {
    match store.meta().record(kind, id).await? {
        Some(body) => serde_json::from_str(&body)
            .map(Some)
            .map_err(|_| AccountError::Corrupt(kind)),
        None => Ok(None),
    }
}

async fn all<T: for<'de> Deserialize<'de>>(
    store: &dyn Store,
    kind: &'static str,
) -> Result<Vec<(String, T)>, AccountError> {
    store
        .meta()
        .records(kind)
        .await?
        .into_iter()
        .map(|(id, body)| {
            serde_json::from_str(&body)
                .map(|v| (id, v))
                .map_err(|_| AccountError::Corrupt(kind))
        })
        .collect()
}

async fn put<T: Serialize>(
    store: &dyn Store,
    kind: &'static str,
    id: &str,
    value: &T,
) -> Result<(), AccountError> {
    let body = serde_json::to_string(value).map_err(|_| AccountError::Corrupt(kind))?;
    Ok(store.meta().put_record(kind, id, &body).await?)
}

pub async fn user(store: &dyn Store, email: &str) -> Result<Option<User>, AccountError> {
    get(store, USER, &email.to_lowercase()).await
}

pub async fn users(store: &dyn Store) -> Result<Vec<User>, AccountError> {
    Ok(all(store, USER)
        .await?
        .into_iter()
        .map(|(_, u)| u)
        .collect())
}

/// Writes a user, replacing the one with the same e-mail.
pub async fn put_user(store: &dyn Store, user: &User) -> Result<(), AccountError> {
    put(store, USER, &user.email, user).await
}

/// Deletes a user and ends their sessions; `false` when there was no such user.
pub async fn delete_user(store: &dyn Store, email: &str) -> Result<bool, AccountError> {
    let gone = store.meta().delete_record(USER, email).await?;
    store.meta().delete_record(TWO_FACTOR, email).await?;
    end_sessions(store, |s| s.user.as_deref() == Some(email), None).await?;
    Ok(gone)
}

/// Starts a session; returns the cookie token and the session.
pub async fn start_session(
    store: &dyn Store,
    user: Option<&str>,
    share: Option<&str>,
    now: i64,
    lifetime: i64,
) -> Result<(String, Session), AccountError> {
    let token = random_hex(32);
    let session = Session {
        user: user.map(str::to_string),
        share: share.map(str::to_string),
        csrf: random_hex(24),
        expires_at: now + lifetime,
        created_at: now,
    };
    put(store, SESSION, &token_hash(&token), &session).await?;
    Ok((token, session))
}

/// Whether a cookie value has the shape of a session token (checked before any lookup).
fn session_token_shape(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The live session of a cookie token; an expired one is deleted.
pub async fn session(
    store: &dyn Store,
    token: &str,
    now: i64,
) -> Result<Option<(String, Session)>, AccountError> {
    if !session_token_shape(token) {
        return Ok(None);
    }
    let id = token_hash(token);
    match get::<Session>(store, SESSION, &id).await? {
        Some(s) if s.expires_at > now => Ok(Some((id, s))),
        Some(_) => {
            store.meta().delete_record(SESSION, &id).await?;
            Ok(None)
        }
        None => Ok(None),
    }
}

/// Ends one session by its id (the token's hash).
pub async fn end_session(store: &dyn Store, id: &str) -> Result<(), AccountError> {
    store.meta().delete_record(SESSION, id).await?;
    Ok(())
}

/// Ends every session that `which` selects, but `keep`; returns how many.
pub async fn end_sessions(
    store: &dyn Store,
    which: impl Fn(&Session) -> bool,
    keep: Option<&str>,
) -> Result<usize, AccountError> {
    let mut ended = 0;
    for (id, s) in all::<Session>(store, SESSION).await? {
        if which(&s) && Some(id.as_str()) != keep {
            store.meta().delete_record(SESSION, &id).await?;
            ended += 1;
        }
    }
    Ok(ended)
}

/// Makes a shared link; returns its token (shown once) and the stored link.
pub async fn create_share(
    store: &dyn Store,
    site_id: u32,
    label: &str,
    password_hash: Option<String>,
    now: i64,
) -> Result<(String, SharedLink), AccountError> {
    create_embeddable_share(store, site_id, label, password_hash, Vec::new(), now).await
}

/// A shared link that the pages of `embed_origins` (checked by [`embed_origins`]) may frame.
pub async fn create_embeddable_share(
    store: &dyn Store,
    site_id: u32,
    label: &str,
    password_hash: Option<String>,
    embed_origins: Vec<String>,
    now: i64,
) -> Result<(String, SharedLink), AccountError> {
    let token = random_hex(24);
    let link = SharedLink {
        id: token[..8].to_string(),
        site_id,
        token_hash: token_hash(&token),
        password_hash,
        label: label.to_string(),
        created_at: now,
        embed_origins,
        api_nonce: None,
    };
    put(store, SHARE, &link.id, &link).await?;
    Ok((token, link))
}

/// The token of a Sites API link: 48 hex digits of an HMAC of its nonce.
pub fn api_share_token(key: &ring::hmac::Key, nonce: &str) -> String {
    let tag = ring::hmac::sign(key, format!("shared-link:{nonce}").as_bytes());
    tag.as_ref()[..24]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Sites API's shared link of `site_id` named `label`, made when there is none (a new
/// nonce, so a revoked link's address never comes back); returns its token.
pub async fn api_share(
    store: &dyn Store,
    key: &ring::hmac::Key,
    site_id: u32,
    label: &str,
    now: i64,
) -> Result<String, AccountError> {
    if let Some(nonce) = shares(store)
        .await?
        .into_iter()
        .filter(|l| l.site_id == site_id && l.label == label)
        .find_map(|l| l.api_nonce)
    {
        return Ok(api_share_token(key, &nonce));
    }
    let nonce = random_hex(16);
    let token = api_share_token(key, &nonce);
    let link = SharedLink {
        id: token[..8].to_string(),
        site_id,
        token_hash: token_hash(&token),
        password_hash: None,
        label: label.to_string(),
        created_at: now,
        embed_origins: Vec::new(),
        api_nonce: Some(nonce),
    };
    put(store, SHARE, &link.id, &link).await?;
    Ok(token)
}

/// The live shared link a token opens.
pub async fn share_by_token(
    store: &dyn Store,
    token: &str,
) -> Result<Option<SharedLink>, AccountError> {
    if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let link: Option<SharedLink> = get(store, SHARE, &token[..8]).await?;
    Ok(link.filter(|l| constant_time_eq(&l.token_hash, &token_hash(token))))
}

pub async fn shares(store: &dyn Store) -> Result<Vec<SharedLink>, AccountError> {
    Ok(all(store, SHARE)
        .await?
        .into_iter()
        .map(|(_, l)| l)
        .collect())
}

/// Revokes a link and ends the browsers' unlocks of it; `false` when there was none.
pub async fn revoke_share(store: &dyn Store, id: &str) -> Result<bool, AccountError> {
    let gone = store.meta().delete_record(SHARE, id).await?;
    end_sessions(store, |s| s.share.as_deref() == Some(id), None).await?;
    Ok(gone)
}

/// Revokes the shared links of a site and takes it from the viewers granted it (a deleted
/// site); returns how many links and grants went.
pub async fn forget_site(store: &dyn Store, site_id: u32) -> Result<(u64, u64), AccountError> {
    let mut links = 0;
    for link in shares(store).await? {
        if link.site_id == site_id && revoke_share(store, &link.id).await? {
            links += 1;
        }
    }
    let mut grants = 0;
    for mut user in users(store).await? {
        if user.sites.contains(&site_id) {
            user.sites.retain(|s| *s != site_id);
            put_user(store, &user).await?;
            grants += 1;
        }
    }
    Ok((links, grants))
}

/// Browsers that may hold one shared link unlocked at once; the unlock that finds the link at
/// the cap ends the sessions closest to expiry to make room.
pub const MAX_SHARE_SESSIONS: usize = 100;

/// Ends a link's unlock sessions that expire first, so that one more stays within
/// [`MAX_SHARE_SESSIONS`]; returns how many ended.
pub async fn make_room_for_share_session(
    store: &dyn Store,
    link_id: &str,
) -> Result<usize, AccountError> {
    let mut open: Vec<(i64, String)> = all::<Session>(store, SESSION)
        .await?
        .into_iter()
        .filter(|(_, s)| s.share.as_deref() == Some(link_id))
        .map(|(id, s)| (s.expires_at, id))
        .collect();
    if open.len() < MAX_SHARE_SESSIONS {
        return Ok(0);
    }
    open.sort();
    let excess = open.len() + 1 - MAX_SHARE_SESSIONS;
    for (_, id) in &open[..excess] {
        store.meta().delete_record(SESSION, id).await?;
    }
    Ok(excess)
}

/// Deletes expired sessions; returns how many.
pub async fn purge_expired_sessions(store: &dyn Store, now: i64) -> Result<usize, AccountError> {
    let mut ended = end_sessions(store, |s| s.expires_at <= now, None).await?;
    // And links sent by e-mail that were never used.
    for (id, token) in all::<EmailToken>(store, EMAIL_TOKEN).await? {
        if token.expires_at <= now {
            store.meta().delete_record(EMAIL_TOKEN, &id).await?;
            ended += 1;
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            validate_email("  Ann@Example.ORG ").unwrap(),
            "ann@example.org"
        );
        for bad in [
            "",
            "ann",
            "@example.org",
            "ann@",
            "a b@c.d",
            "a@b@c",
            "a\u{0}@b.c",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
        assert!(validate_email(&format!("{}@b.c", "a".repeat(260))).is_err());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        assert!(hash_password("short").is_err());
        assert!(hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct"));
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("correct horse batterY", Some(&hash)));
        assert!(!verify_password("correct horse battery", None));
        assert!(!verify_password("correct horse battery", Some("garbage")));
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
