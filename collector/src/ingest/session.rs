//! Sessions: a visit ends after 30 minutes without an event.
//!
//! A session remembers where the visit came from (its entry event's referrer, source,
//! channel and UTM parameters); every later event of the session carries those, so "visits
//! from Google" counts the whole visit, not only its landing pageview.
//!
//! Kept in memory, keyed by (site, visitor hash). At midnight the visitor hash changes with
//! the salt, so a lookup also tries the hash under yesterday's salt and carries an open
//! session over to the new hash: a session continues across midnight. Entries idle longer
//! than the timeout are swept, and the map holds at most `max_sessions` entries: past that,
//! the stalest hundredth are evicted (counted in /metrics), so a client that changes its
//! user-agent on every request cannot grow it without bound.
//!
//! Many visits arrive the same way (same source, campaign and landing page), so the map
//! shares one copy of each distinct [`Visit`] among its sessions: an open session costs its
//! map slot (40 bytes) rather than nine strings of its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Inactivity after which a session ends.
pub const SESSION_TIMEOUT: Duration = Duration::minutes(30);

use super::page::Utm;
use super::referrer::Source;

/// Where a visit came from: fixed by its first event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Visit {
    pub source: Source,
    pub utm: Utm,
    /// The path of the visit's first event.
    pub entry_page: String,
}

#[derive(Debug, Clone)]
struct Entry {
    session_id: u64,
    /// UTC seconds.
    last_seen: i64,
    visit: Arc<Visit>,
}

/// The open sessions, and one copy of each distinct visit they share.
#[derive(Debug, Default)]
struct Held {
    map: HashMap<(u32, u64), Entry>,
    visits: HashSet<Arc<Visit>>,
}

impl Held {
    /// The shared copy of `visit`.
    fn intern(&mut self, visit: Visit) -> Arc<Visit> {
        if let Some(shared) = self.visits.get(&visit) {
            return shared.clone();
        }
        let shared = Arc::new(visit);
        self.visits.insert(shared.clone());
        shared
    }

    /// Drops the sessions idle at `now`, and the visits no session holds any more.
    fn forget_idle(&mut self, now: i64) {
        self.map.retain(|_, e| now - e.last_seen <= TIMEOUT_SECS);
        self.forget_unused_visits();
    }

    fn forget_unused_visits(&mut self) {
        // Held only by the set: no session (nor a caller still writing its event) uses it.
        self.visits.retain(|v| Arc::strong_count(v) > 1);
    }
}

const TIMEOUT_SECS: i64 = SESSION_TIMEOUT.num_seconds();

/// Most open sessions kept by default.
pub const DEFAULT_MAX_SESSIONS: usize = 500_000;

/// The open sessions of this collector.
#[derive(Debug)]
pub struct Sessions {
    held: Mutex<Held>,
    max: usize,
    evicted: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MAX_SESSIONS)
    }
}

/// Whether an event may open a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Pageviews and custom events start a session when none is open.
    Allowed,
    /// Engagement events only extend an open session.
    ExistingOnly,
}

impl Sessions {
    /// Sessions that keep at most `max` entries.
    pub fn with_capacity(max: usize) -> Self {
        Sessions {
            held: Mutex::new(Held::default()),
            max: max.max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// Open sessions held now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Distinct visits the open sessions share.
    pub fn distinct_visits(&self) -> usize {
        self.lock().visits.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions evicted, still open, to stay within the cap.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes room for one more entry: drops the idle ones, then the stalest hundredth.
    fn make_room(&self, open: &mut Held, now: i64) {
        if open.map.len() < self.max {
            return;
        }
        open.forget_idle(now);
        if open.map.len() < self.max {
            return;
        }
        let evict = (self.max / 100).max(1).min(open.map.len());
        let mut ages: Vec<(i64, (u32, u64))> =
            open.map.iter().map(|(k, e)| (e.last_seen, *k)).collect();
        ages.select_nth_unstable_by_key(evict - 1, |(seen, _)| *seen);
        for (_, key) in &ages[..evict] {
            open.map.remove(key);
        }
        open.forget_unused_visits();
        self.evicted.fetch_add(evict as u64, Ordering::Relaxed);
    }

    /// The session of `visitor` at `now`, opened or continued, and where its visit came
    /// from: `visit` for a new session, the stored one for an open session.
    /// `previous_visitor` is the visitor's hash under yesterday's salt, if it is still held.
    /// `None` when `open` is [`Open::ExistingOnly`] and no session is open.
    pub fn touch(
        &self,
        site_id: u32,
        visitor: u64,
        previous_visitor: Option<u64>,
        now: DateTime<Utc>,
        open: Open,
        visit: Visit,
    ) -> Option<(u64, Arc<Visit>)> {
        let now = now.timestamp();
        let mut guard = self.lock();
        let open_now = &mut *guard;
        let alive =
            |e: &Entry| now - e.last_seen <= TIMEOUT_SECS && e.last_seen - now <= TIMEOUT_SECS;
        let mut current = open_now.map.get(&(site_id, visitor)).cloned().filter(alive);
        if current.is_none()
            && let Some(prev) = previous_visitor.filter(|p| *p != visitor)
        {
            current = open_now.map.remove(&(site_id, prev)).filter(alive);
        }
        let entry = match current {
            Some(e) => Entry {
                last_seen: e.last_seen.max(now),
                ..e
            },
            None if open == Open::ExistingOnly => return None,
            None => {
                self.make_room(open_now, now);
                Entry {
                    session_id: rand::random::<u64>().max(1),
                    last_seen: now,
                    visit: open_now.intern(visit),
                }
            }
        };
        let out = (entry.session_id, entry.visit.clone());
        open_now.map.insert((site_id, visitor), entry);
        Some(out)
    }

    /// Forgets sessions idle longer than the timeout; returns how many remain.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let mut open = self.lock();
        open.forget_idle(now.timestamp());
        open.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_028_800, 0).unwrap() + Duration::minutes(min)
    }

    /// The session id only.
    fn touch(
        s: &Sessions,
        site: u32,
        visitor: u64,
        prev: Option<u64>,
        at: DateTime<Utc>,
        open: Open,
    ) -> Option<u64> {
        s.touch(site, visitor, prev, at, open, Visit::default())
            .map(|(id, _)| id)
    }

    #[test]
    fn thirty_minutes_of_inactivity_end_a_session() {
        let s = Sessions::default();
        let a = touch(&s, 1, 42, None, t(0), Open::Allowed).unwrap();
        assert_eq!(touch(&s, 1, 42, None, t(29), Open::Allowed), Some(a));
        assert_eq!(touch(&s, 1, 42, None, t(59), Open::Allowed), Some(a));
        let b = touch(&s, 1, 42, None, t(90), Open::Allowed).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn sites_and_visitors_are_separate() {
        let s = Sessions::default();
        let a = touch(&s, 1, 42, None, t(0), Open::Allowed);
        assert_ne!(touch(&s, 2, 42, None, t(1), Open::Allowed), a);
        assert_ne!(touch(&s, 1, 43, None, t(1), Open::Allowed), a);
    }

    #[test]
    fn continues_across_midnight_under_the_new_hash() {
        let s = Sessions::default();
        let a = touch(&s, 1, 100, None, t(0), Open::Allowed).unwrap();
        // New day: new hash 200, previous hash 100.
        assert_eq!(touch(&s, 1, 200, Some(100), t(10), Open::Allowed), Some(a));
        assert_eq!(touch(&s, 1, 200, Some(100), t(20), Open::Allowed), Some(a));
    }

    #[test]
    fn engagement_does_not_open_sessions() {
        let s = Sessions::default();
        assert_eq!(touch(&s, 1, 5, None, t(0), Open::ExistingOnly), None);
        let a = touch(&s, 1, 5, None, t(1), Open::Allowed);
        assert_eq!(touch(&s, 1, 5, None, t(2), Open::ExistingOnly), a);
    }

    #[test]
    fn sweep_forgets_idle_sessions() {
        let s = Sessions::default();
        touch(&s, 1, 1, None, t(0), Open::Allowed);
        touch(&s, 1, 2, None, t(20), Open::Allowed);
        assert_eq!(s.sweep(t(40)), 1);
    }
}

#[cfg(test)]
mod visit_tests {
    use super::*;

    #[test]
    fn later_events_keep_the_entry_source() {
        let s = Sessions::default();
        let t0 = DateTime::from_timestamp(1_764_028_800, 0).unwrap();
        let google = Visit {
            source: Source {
                referrer: "google.com".into(),
                source: "Google".into(),
                channel: "Organic Search".into(),
            },
            utm: Utm::default(),
            entry_page: "/".into(),
        };
        let (a, v) = s
            .touch(1, 7, None, t0, Open::Allowed, google.clone())
            .unwrap();
        assert_eq!(*v, google);
        let (b, v) = s
            .touch(
                1,
                7,
                None,
                t0 + Duration::minutes(5),
                Open::Allowed,
                Visit::default(),
            )
            .unwrap();
        assert_eq!((a, &*v), (b, &google));
        let (_, v) = s
            .touch(
                1,
                7,
                None,
                t0 + Duration::hours(2),
                Open::Allowed,
                Visit::default(),
            )
            .unwrap();
        assert_eq!(*v, Visit::default(), "a new session takes its own source");
    }

    #[test]
    fn sessions_share_one_copy_of_each_visit_until_none_holds_it() {
        let t0 = DateTime::from_timestamp(1_764_028_800, 0).unwrap();
        let s = Sessions::default();
        let from = |page: &str| Visit {
            entry_page: page.into(),
            ..Visit::default()
        };
        let mut held = Vec::new();
        for v in 0..1000u64 {
            let page = if v % 2 == 0 { "/" } else { "/pricing" };
            let (_, visit) = s.touch(1, v, None, t0, Open::Allowed, from(page)).unwrap();
            held.push(visit);
        }
        assert_eq!((s.len(), s.distinct_visits()), (1000, 2));
        assert!(Arc::ptr_eq(&held[0], &held[2]));
        assert_eq!(*held[1], from("/pricing"));
        drop(held);
        // A later visitor on a third page, after the first ones went idle.
        let later = t0 + Duration::minutes(45);
        s.touch(1, 5000, None, later, Open::Allowed, from("/docs"));
        assert_eq!(s.sweep(later), 1);
        assert_eq!(s.distinct_visits(), 1, "idle sessions' visits are dropped");
        let (_, v) = s
            .touch(1, 5000, None, later, Open::Allowed, from("/"))
            .unwrap();
        assert_eq!(*v, from("/docs"), "the open session keeps its own visit");
    }

    #[test]
    fn the_map_is_capped_and_keeps_the_freshest() {
        let at =
            |min: i64| DateTime::from_timestamp(1_764_028_800, 0).unwrap() + Duration::minutes(min);
        let s = Sessions::with_capacity(100);
        for v in 0..250u64 {
            s.touch(
                1,
                v,
                None,
                at(0) + Duration::seconds(v as i64),
                Open::Allowed,
                Visit::default(),
            );
            assert!(s.len() <= 100, "{} sessions after {v}", s.len());
        }
        assert!(s.evicted() >= 150, "{}", s.evicted());
        // The latest visitors are still in their sessions; the first were evicted.
        let last = s.touch(1, 249, None, at(1), Open::ExistingOnly, Visit::default());
        assert!(last.is_some());
        let first = s.touch(1, 0, None, at(1), Open::ExistingOnly, Visit::default());
        assert!(first.is_none());
    }
}
