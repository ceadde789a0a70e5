//! API keys: made by `footfall apikey create`, shown once, stored only as a hash.
//!
//! A Stats API key reads one site. A Sites API key (a [`SitesKey`]) has a scope instead:
//! `sites:read` lists and reads every site's settings, `sites:provision` also creates,
//! changes and deletes them (Plausible's Sites API).
//!
//! A key is `ff_` followed by 48 hex digits (192 random bits). Its first 8 hex digits are its
//! public id, used to list and revoke it. The store keeps `blake3(key)`; a request's bearer
//! token is hashed the same way and looked up.

use crate::store::{ApiKey, Store, StoreError};

const PREFIX: &str = "ff_";

/// A newly made key: the secret to hand to the user once, and the record to store.
pub struct NewKey {
    pub secret: String,
    pub record: ApiKey,
}

/// Makes a key for `site_id`.
pub fn generate(site_id: u32, now: u32) -> NewKey {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = format!("{PREFIX}{hex}");
    NewKey {
        record: ApiKey {
            id: hex[..8].to_string(),
            site_id,
            hash: hash(&secret),
            created_at: now,
            revoked: 0,
        },
        secret,
    }
}

/// The stored form of a key.
pub fn hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// Whether a bearer token has the shape of a key (checked before any store lookup).
pub fn well_formed(token: &str) -> bool {
    token
        .strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 48 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The live (not revoked) key whose hash matches `token`.
pub async fn verify(store: &dyn Store, token: &str) -> Result<Option<ApiKey>, StoreError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let wanted = hash(token);
    Ok(store
        .meta()
        .api_keys()
        .await?
        .into_iter()
        .find(|k| k.revoked == 0 && k.hash == wanted))
}

/// The record kind of Sites API keys (their id is the key's public id).
pub const SITES_KEY_KIND: &str = "sites_key";

/// What a Sites API key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Scope {
    /// List sites; read their goals, custom properties and guests.
    #[serde(rename = "sites:read")]
    SitesRead,
    /// All of that, and create, change and delete them.
    #[serde(rename = "sites:provision")]
    SitesProvision,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::SitesRead => "sites:read",
            Scope::SitesProvision => "sites:provision",
        }
    }

    /// `sites:read` or `sites:provision` (Plausible's `sites:provision:*` too).
    pub fn parse(s: &str) -> Option<Scope> {
        match s.trim().trim_end_matches(":*") {
            "sites:read" => Some(Scope::SitesRead),
            "sites:provision" => Some(Scope::SitesProvision),
            _ => None,
        }
    }

    /// Whether a key of this scope may do what `needed` names.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

/// A Sites API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SitesKey {
    pub id: String,
    /// Hex blake3 hash of the whole key.
    pub hash: String,
    pub scope: Scope,
    /// What the admin called it.
    pub label: String,
    /// Who made it (an admin's e-mail, or `cli`).
    pub created_by: String,
    /// UTC seconds.
    pub created_at: i64,
}

/// Longest label of a Sites API key, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// Makes and stores a Sites API key; returns the secret, to show once.
pub async fn create_sites_key(
    store: &dyn Store,
    scope: Scope,
    label: &str,
    created_by: &str,
    now: i64,
) -> Result<(String, SitesKey), StoreError> {
    let new = generate(0, 0);
    let label: String = label.trim().chars().take(MAX_LABEL_CHARS).collect();
    let key = SitesKey {
        id: new.record.id,
        hash: new.record.hash,
        scope,
        label,
        created_by: created_by.to_string(),
        created_at: now,
    };
    let body = serde_json::to_string(&key).map_err(|e| StoreError::Query(e.to_string()))?;
    store
        .meta()
        .put_record(SITES_KEY_KIND, &key.id, &body)
        .await?;
    Ok((new.secret, key))
}

/// Every Sites API key, oldest first.
pub async fn sites_keys(store: &dyn Store) -> Result<Vec<SitesKey>, StoreError> {
    let mut keys: Vec<SitesKey> = store
        .meta()
        .records(SITES_KEY_KIND)
        .await?
        .into_iter()
        .filter_map(|(_, body)| serde_json::from_str(&body).ok())
        .collect();
    keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(keys)
}

/// The Sites API key whose hash matches `token`.
pub async fn verify_sites_key(
    store: &dyn Store,
    token: &str,
) -> Result<Option<SitesKey>, StoreError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let wanted = hash(token);
    Ok(sites_keys(store)
        .await?
        .into_iter()
        .find(|k| crate::accounts::constant_time_eq(&k.hash, &wanted)))
}

/// Revokes (deletes) a Sites API key; false if there is none.
pub async fn revoke_sites_key(store: &dyn Store, id: &str) -> Result<bool, StoreError> {
    store.meta().delete_record(SITES_KEY_KIND, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_well_formed() {
        let a = generate(1, 0);
        let b = generate(1, 0);
        assert_ne!(a.secret, b.secret);
        assert!(well_formed(&a.secret));
        assert_eq!(a.record.id, &a.secret[3..11]);
        assert_eq!(a.record.hash, hash(&a.secret));
        assert!(!a.record.hash.contains(&a.secret[3..]));
        for bad in [
            "",
            "ff_",
            "ff_xyz",
            "Bearer x",
            &a.secret[..20],
            &format!("{}0", a.secret),
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn provisioning_includes_reading() {
        assert!(Scope::SitesProvision.allows(Scope::SitesRead));
        assert!(!Scope::SitesRead.allows(Scope::SitesProvision));
        assert_eq!(
            Scope::parse("sites:provision:*"),
            Some(Scope::SitesProvision)
        );
        assert_eq!(Scope::parse("stats:read:*"), None);
    }
}
