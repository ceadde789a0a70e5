//! Stats API keys: made by `footfall apikey create`, shown once, stored only as a hash.
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
}
