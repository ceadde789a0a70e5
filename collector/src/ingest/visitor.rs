//! Visitor identity without cookies: a daily salt and a keyed hash.
//!
//! `visitor_id = first 8 bytes of blake3::keyed_hash(salt[day], site ‖ 0 ‖ ip ‖ 0 ‖ ua)`.
//! Salts are per UTC day, each drawn at random on its own: no salt can be computed from
//! another, so a backup that holds one day's salt unmasks that day and no other. Each day's
//! salt is created ahead of its day (see `maintenance`), and collectors settle on the smallest
//! one stored for the day. An event is hashed with its own UTC day's salt or not at all; the
//! previous day's salt is kept only to continue sessions across midnight, and salts are
//! deleted 48 hours after their day began. Salts never appear in `Debug` output or logs.

use std::net::IpAddr;

use chrono::NaiveDate;

pub use crate::store::Salt;

/// The salts a collector currently holds, by UTC day: yesterday's while it lives, today's,
/// and tomorrow's once it has been drawn.
#[derive(Debug, Clone, Default)]
pub struct Salts {
    pub days: Vec<(NaiveDate, Salt)>,
}

impl Salts {
    /// The salt of `day`, if it is held.
    pub fn for_day(&self, day: NaiveDate) -> Option<&Salt> {
        self.days.iter().find(|(d, _)| *d == day).map(|(_, s)| s)
    }
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
        assert_ne!(base, visitor_id(&Salt([8; 32]), "a.org", ip, "UA"));
        // The mapped IPv6 form of an IPv4 address is the same visitor.
        assert_eq!(
            base,
            visitor_id(&salt, "a.org", "::ffff:1.2.3.4".parse().unwrap(), "UA")
        );
    }

    #[test]
    fn salts_are_random_and_found_by_day() {
        assert_ne!(Salt::random(), Salt::random());
        let day = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let salts = Salts {
            days: vec![(day, Salt([1; 32]))],
        };
        assert_eq!(salts.for_day(day), Some(&Salt([1; 32])));
        assert_eq!(salts.for_day(day.succ_opt().unwrap()), None);
    }

    #[test]
    fn debug_hides_the_salt() {
        let s = Salt([0xab; 32]);
        assert!(!format!("{s:?}").contains("171"));
        assert!(!format!("{s:?}").to_lowercase().contains("ab"));
    }
}
