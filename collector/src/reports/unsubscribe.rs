//! Signed one-click unsubscribe links: `PUBLIC_URL/unsubscribe?site=ID&list=reports&to=ADDRESS&sig=…`,
//! where `sig` is an HMAC-SHA256 of the site, list and address under a key kept in the store
//! (record kind [`KEY_KIND`], drawn at random on first use). A link works for as long as the
//! key does, takes the address off that one list, and needs no login; a changed parameter
//! breaks the signature.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use ring::hmac;

use super::List;
use crate::store::{Store, StoreError};

pub const KEY_KIND: &str = "server_key";
const KEY_ID: &str = "unsubscribe";

/// The signing key, drawn and stored on first use. Collectors that draw at once each read
/// back what the store kept, so they sign alike from then on.
pub async fn key(store: &dyn Store) -> Result<hmac::Key, StoreError> {
    server_key(store, KEY_ID).await
}

/// A server key for one purpose (`unsubscribe`, `shared-links`), drawn at random and stored
/// on first use.
pub async fn server_key(store: &dyn Store, purpose: &str) -> Result<hmac::Key, StoreError> {
    let hex = match store.meta().record(KEY_KIND, purpose).await? {
        Some(hex) => hex,
        None => {
            let bytes: [u8; 32] = rand::random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            store.meta().put_record(KEY_KIND, purpose, &hex).await?;
            store
                .meta()
                .record(KEY_KIND, purpose)
                .await?
                .ok_or_else(|| StoreError::Query(format!("the {purpose} key was not stored")))?
        }
    };
    Ok(hmac::Key::new(hmac::HMAC_SHA256, hex.as_bytes()))
}

fn message(site_id: u32, list: List, address: &str) -> String {
    format!("unsubscribe\n{site_id}\n{}\n{address}", list.as_str())
}

pub fn sign(key: &hmac::Key, site_id: u32, list: List, address: &str) -> String {
    hmac::sign(key, message(site_id, list, address).as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `sig` (hex) signs the site, list and address.
pub fn verify(key: &hmac::Key, site_id: u32, list: List, address: &str, sig: &str) -> bool {
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let bytes: Vec<u8> = (0..32)
        .filter_map(|i| u8::from_str_radix(&sig[2 * i..2 * i + 2], 16).ok())
        .collect();
    hmac::verify(key, message(site_id, list, address).as_bytes(), &bytes).is_ok()
}

/// The link for `address` on `list` of the site.
pub fn link(public_url: &str, key: &hmac::Key, site_id: u32, list: List, address: &str) -> String {
    format!(
        "{}/unsubscribe?site={site_id}&list={}&to={}&sig={}",
        public_url.trim_end_matches('/'),
        list.as_str(),
        utf8_percent_encode(address, NON_ALPHANUMERIC),
        sign(key, site_id, list, address)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_signed_per_site_list_and_address() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        let sig = sign(&key, 3, List::Reports, "ann@example.org");
        assert!(verify(&key, 3, List::Reports, "ann@example.org", &sig));
        assert!(!verify(&key, 4, List::Reports, "ann@example.org", &sig));
        assert!(!verify(&key, 3, List::Alerts, "ann@example.org", &sig));
        assert!(!verify(&key, 3, List::Reports, "bob@example.org", &sig));
        assert!(!verify(
            &key,
            3,
            List::Reports,
            "ann@example.org",
            &sig[..63]
        ));
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"other");
        assert!(!verify(&other, 3, List::Reports, "ann@example.org", &sig));
        assert_eq!(
            link(
                "https://s.example/",
                &key,
                3,
                List::Reports,
                "a+b@example.org"
            ),
            format!(
                "https://s.example/unsubscribe?site=3&list=reports&to=a%2Bb%40example%2Eorg&sig={sig2}",
                sig2 = sign(&key, 3, List::Reports, "a+b@example.org")
            )
        );
    }
}
