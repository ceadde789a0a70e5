//! Visitor identity without cookies: a daily salt and a keyed hash.
//!
//! `visitor_id = first 8 bytes of blake3::keyed_hash(salt[day], site ‖ 0 ‖ ip ‖ 0 ‖ ua)`.
//! Salts are per UTC day. The salt of a new day is derived from the previous one by a
//! forward-only ratchet (`salt[d+1] = blake3::derive_key(CONTEXT, salt[d])`), so every
//! collector that holds yesterday's salt computes the same one for today, and nobody can go
//! back. The previous day's salt is kept only to continue sessions across midnight; salts are
//! deleted 48 hours after their day began. Salts never appear in `Debug` output or logs.

use std::net::IpAddr;

use chrono::NaiveDate;

const RATCHET_CONTEXT: &str = "footfall 2026-11 daily visitor salt ratchet";

/// A 32-byte salt; its `Debug` does not show the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt(pub [u8; 32]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(<secret>)")
    }
}

impl Salt {
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        Salt(bytes)
    }

    /// The salt of the next day.
    pub fn ratchet(&self) -> Salt {
        Salt(blake3::derive_key(RATCHET_CONTEXT, &self.0))
    }
}

/// The salts a collector currently holds: today's, and yesterday's while it lives.
#[derive(Debug, Clone)]
pub struct Salts {
    pub today: (NaiveDate, Salt),
    pub yesterday: Option<(NaiveDate, Salt)>,
}

/// The visitor hash of `(site, ip, user_agent)` under `salt`.
pub fn visitor_id(salt: &Salt, site: &str, ip: IpAddr, user_agent: &str) -> u64 {
    let mut hasher = blake3::Hasher::new_keyed(&salt.0);
    hasher.update(site.as_bytes());
    hasher.update(&[0]);
    match super::ip::canonical(ip) {
        IpAddr::V4(v4) => hasher.update(&v4.octets()),
        IpAddr::V6(v6) => hasher.update(&v6.octets()),
    };
    hasher.update(&[0]);
    hasher.update(user_agent.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_hash_any_change_differs() {
        let salt = Salt([7; 32]);
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let base = visitor_id(&salt, "a.org", ip, "UA");
        assert_eq!(base, visitor_id(&salt, "a.org", ip, "UA"));
        assert_ne!(base, visitor_id(&salt, "b.org", ip, "UA"));
        assert_ne!(
            base,
            visitor_id(&salt, "a.org", "1.2.3.5".parse().unwrap(), "UA")
        );
        assert_ne!(base, visitor_id(&salt, "a.org", ip, "UB"));
        assert_ne!(base, visitor_id(&salt.ratchet(), "a.org", ip, "UA"));
        // The mapped IPv6 form of an IPv4 address is the same visitor.
        assert_eq!(
            base,
            visitor_id(&salt, "a.org", "::ffff:1.2.3.4".parse().unwrap(), "UA")
        );
    }

    #[test]
    fn ratchet_is_deterministic_and_moves() {
        let s = Salt::random();
        assert_eq!(s.ratchet(), s.ratchet());
        assert_ne!(s.ratchet(), s);
        assert_ne!(s.ratchet().ratchet(), s.ratchet());
    }

    #[test]
    fn debug_hides_the_salt() {
        let s = Salt([0xab; 32]);
        assert!(!format!("{s:?}").contains("171"));
        assert!(!format!("{s:?}").to_lowercase().contains("ab"));
    }
}
