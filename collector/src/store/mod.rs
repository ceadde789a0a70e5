//! Storage: the interfaces the rest of Footfall talks to, and their implementations.
//!
//! Role traits, so that a backend implements what it keeps and a caller asks only for what
//! it uses:
//! - [`EventWriter`]: batches in (the writer's store task needs nothing else);
//! - [`EventStore`]: raw events and daily rollups read, planned statements run, whole days
//!   dropped for retention;
//! - [`MetaStore`]: sites, API keys, account records and the daily salts that several
//!   collectors and the CLI share;
//! - [`Store`]: one backend's events, the metadata it keeps ([`Store::meta`]: itself, or the
//!   SQLite file beside the DuckDB events file), and the schema migrations of both.
//!
//! A store promises:
//! - `insert_events` is all-or-nothing for a batch, and an `Ok` means the rows are durable;
//! - `put_salt` never replaces an existing salt of that day, so collectors converge on the
//!   first one written; `delete_salts_before` removes the salt bytes from storage, not only
//!   from view;
//! - `purge_events_before` drops every raw event of the UTC days before the given one;
//! - `read_events` gives back exactly what was written, 64-bit ids included;
//! - a record written with `put_record` is read back by the next `record`/`records` call of
//!   any collector, and a deleted one is gone from both.
//!
//! Three implementations: [`duckdb`] (embedded, the default: events in DuckDB, the rest in
//! SQLite), [`sqlite`] (embedded, everything in SQLite) and [`clickhouse`].

pub mod clickhouse;
#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod files;
pub mod sqlite;
pub mod statement;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use statement::{Dialect, Statement};

/// Days since 1970-01-01: how the embedded stores keep a day.
pub(crate) fn day_number(day: NaiveDate) -> i64 {
    day.signed_duration_since(NaiveDate::default()).num_days()
}

/// The day [`day_number`] gave (1970-01-01 for a number before it).
pub(crate) fn date_of(day: i64) -> NaiveDate {
    NaiveDate::default()
        .checked_add_days(chrono::Days::new(u64::try_from(day).unwrap_or(0)))
        .unwrap_or_default()
}

/// The first UTC second of `day`.
pub(crate) fn day_start_ts(day: NaiveDate) -> i64 {
    day_number(day) * 86_400
}

/// [`day_start_ts`] as the stores' `u32` seconds (0 before 1970, the last second past 2106).
pub(crate) fn day_start_secs(day: NaiveDate) -> u32 {
    u32::try_from(day_start_ts(day).max(0)).unwrap_or(u32::MAX)
}

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
}

/// One stored raw event (a pageview, custom event or engagement event).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ::clickhouse::Row)]
#[clickhouse(crate = "::clickhouse")]
pub struct EventRow {
    pub site_id: u32,
    /// UTC seconds since the epoch.
    pub timestamp: u32,
    pub name: String,
    pub hostname: String,
    pub pathname: String,
    pub visitor_id: u64,
    pub session_id: u64,
    pub referrer: String,
    pub referrer_source: String,
    pub channel: String,
    pub utm_medium: String,
    pub utm_source: String,
    pub utm_campaign: String,
    pub utm_content: String,
    pub utm_term: String,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    pub country_code: String,
    pub region: String,
    pub city: String,
    pub screen_width: u16,
    pub props_keys: Vec<String>,
    pub props_values: Vec<String>,
    /// Millionths of `revenue_currency`; 0 without revenue.
    pub revenue_micros: i64,
    pub revenue_currency: String,
    pub interactive: u8,
    pub engagement_ms: u32,
    /// 0-100; 255 when not measured.
    pub scroll_depth: u8,
    /// The path of the visit's first event.
    pub entry_page: String,
    /// English names from the GeoIP database.
    pub country_name: String,
    pub region_name: String,
    /// The accepted batch (spool record) the event came in; lets a retry whose first
    /// attempt had an unknown outcome find out whether it was written. 0 when not spooled.
    pub batch_id: u64,
}

/// A site Footfall accepts events for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ::clickhouse::Row)]
#[clickhouse(crate = "::clickhouse")]
pub struct Site {
    pub id: u32,
    pub domain: String,
    /// IANA time zone name; days are cut in it.
    pub timezone: String,
}

/// A Stats API key as stored: never the key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ::clickhouse::Row)]
#[clickhouse(crate = "::clickhouse")]
pub struct ApiKey {
    /// The key's public prefix: shown in listings, used to revoke it.
    pub id: String,
    pub site_id: u32,
    /// Hex blake3 hash of the whole key.
    pub hash: String,
    /// UTC seconds.
    pub created_at: u32,
    pub revoked: u8,
}

/// One daily rollup row: a site's counts for one site-local day and one dimension value.
/// `dimension` is a Stats API dimension name (`visit:source`), or "" for the day's totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RollupRow {
    pub site_id: u32,
    pub day: NaiveDate,
    pub dimension: String,
    pub value: String,
    pub visitors: u64,
    pub visits: u64,
    pub pageviews: u64,
    pub events: u64,
    pub bounces: u64,
    pub duration: u64,
    /// Goal rows only: millionths of the goal's currency its completions carried, and how
    /// many of them carried revenue.
    pub revenue_micros: i64,
    pub revenue_events: u64,
}

/// When a query must be answered by: `query_timeout_secs` after it arrived. A store stops
/// the work past it (SQLite through its progress handler, ClickHouse with
/// `max_execution_time`) and answers [`StoreError::Timeout`]; waiting for a connection counts.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    /// The whole allowance this deadline was made with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// What is left of it; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The error a store answers when the deadline passes.
    pub fn exceeded(&self) -> StoreError {
        StoreError::Timeout(self.timeout.as_secs_f64())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The query ran past its [`Deadline`] and was stopped.
    #[error(
        "the query took longer than query_timeout_secs ({0} s) and was stopped; narrow the date range or the filters, or raise query_timeout_secs"
    )]
    Timeout(f64),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store query failed: {0}")]
    Query(String),
    #[error("site {0} already exists")]
    SiteExists(String),
    #[error("store file problem: {0}")]
    Io(String),
    #[error("migration {name} failed: {message}")]
    Migration { name: String, message: String },
}

impl StoreError {
    /// A statement's answer was larger than [`MAX_RESULT_ROWS`] (every store says it alike).
    pub fn too_many_rows() -> StoreError {
        StoreError::Query(format!(
            "the query's answer has more than {MAX_RESULT_ROWS} rows; narrow the date range or the filters"
        ))
    }
}

/// The most rows one planned statement may return (a store refuses more): pages are at most
/// 10,000 rows (the Stats API's limit), and the largest time series has a few thousand
/// buckets, but the per-group statements behind a page read every group of the range.
pub const MAX_RESULT_ROWS: usize = 1_000_000;

/// How long a store that appends versions keeps the marker of a deleted record, so that a
/// write racing the deletion cannot bring an older version back.
pub const RECORD_TOMBSTONE_SECS: u64 = 3600;

/// Which of a site's raw events a deletion takes: those with `from <= timestamp < to` (UTC
/// seconds); with `pathnames`, only the events on those paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventScope {
    pub from: u32,
    pub to: u32,
    pub pathnames: Option<Vec<String>>,
    /// The site-local days whose visit rows go too (without `pathnames`: the visits of a
    /// day whose events all go; with them, the caller writes the days' visit rows again).
    pub visit_days: Option<(NaiveDate, NaiveDate)>,
}

/// Which of a site's rollup rows a deletion takes: those of the days `from..=to`; with
/// `values`, only the rows of those dimensions whose value is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupScope {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub values: Option<(Vec<String>, Vec<String>)>,
}

impl RollupScope {
    /// Every day a store can hold (ClickHouse's `Date` ends in 2106).
    pub fn all() -> RollupScope {
        RollupScope {
            from: NaiveDate::default(),
            to: NaiveDate::from_ymd_opt(2105, 12, 31).unwrap_or_default(),
            values: None,
        }
    }
}

impl EventScope {
    /// Every event and visit row of a site.
    pub fn all() -> EventScope {
        let all = RollupScope::all();
        EventScope {
            from: 0,
            to: u32::MAX,
            pathnames: None,
            visit_days: Some((all.from, all.to)),
        }
    }
}

/// `values` in runs of at most `max_bytes` (and at least one value each): what fits in one
/// statement's text.
pub fn runs_by_bytes(values: &[String], max_bytes: usize) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, v) in values.iter().enumerate() {
        if i > start && bytes + v.len() + 4 > max_bytes {
            out.push(&values[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += v.len() + 4;
    }
    if start < values.len() {
        out.push(&values[start..]);
    }
    out
}

/// The most values one deleting statement lists (more go in several).
pub const DELETE_CHUNK: usize = 500;

/// Writing events: all a writer of batches needs.
#[async_trait]
pub trait EventWriter: Send + Sync + 'static {
    /// Writes a batch of events, all or nothing.
    async fn insert_events(&self, events: Arc<[EventRow]>) -> Result<(), StoreError>;
    /// Whether a write of `rows` (as [`EventWriter::insert_events`] was given them) is stored. Where
    /// an insert is all or nothing (SQLite, one ClickHouse node) finding the first row tells;
    /// on a cluster each shard takes its part, so every row is counted.
    async fn batch_written(&self, rows: &[EventRow]) -> Result<bool, StoreError>;
}

/// Raw events and their daily rollups: what the query planner, retention and the rollup
/// job read and drop.
#[async_trait]
pub trait EventStore: EventWriter {
    /// Drops the raw events of the UTC days before `day`; returns how many days were dropped.
    async fn purge_events_before(&self, day: NaiveDate) -> Result<usize, StoreError>;
    /// Raw events of a site with `from <= timestamp < to` (UTC seconds), at most `limit`,
    /// ordered by timestamp (events of the same second in no set order).
    async fn read_events(
        &self,
        site_id: u32,
        from: u32,
        to: u32,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// A visitor's raw events on a site with `from <= timestamp < to` (UTC seconds), oldest
    /// first: a data-subject request's answer.
    async fn visitor_events(
        &self,
        site_id: u32,
        visitor_id: u64,
        from: u32,
        to: u32,
    ) -> Result<Vec<EventRow>, StoreError>;
    /// Deletes those events and the visitor's visit rows, and returns once they are gone
    /// (ClickHouse deletes by a mutation, which this waits for); the rollups of their days are
    /// the caller's to compute again.
    async fn erase_visitor(
        &self,
        site_id: u32,
        visitor_id: u64,
        from: u32,
        to: u32,
    ) -> Result<(), StoreError>;
    /// Deletes the raw events of a site that `scope` names (and the visit rows it names),
    /// and returns once they are gone (ClickHouse deletes by mutations, which this waits
    /// for).
    async fn delete_events(&self, site_id: u32, scope: &EventScope) -> Result<(), StoreError>;
    /// Deletes the rollup rows of a site that `scope` names, and returns once they are gone.
    async fn delete_rollups(&self, site_id: u32, scope: &RollupScope) -> Result<(), StoreError>;
    /// The distinct page paths of a site's raw events (at most [`MAX_RESULT_ROWS`]).
    async fn event_pathnames(&self, site_id: u32) -> Result<Vec<String>, StoreError>;
    /// The time (UTC seconds) of a site's earliest raw event, if it has any. Cheaper than
    /// `read_events(…, 1)`: it reads one column.
    async fn earliest_event(&self, site_id: u32) -> Result<Option<u32>, StoreError>;
    /// The SQL dialect the query planner must produce for this store.
    fn dialect(&self) -> Dialect;
    /// Runs a planned statement whose rows are `text_columns` strings then `int_columns`
    /// integers (SQL NULL reads as 0). Past `deadline` the work stops and the answer is
    /// [`StoreError::Timeout`]; results are at most [`MAX_RESULT_ROWS`] rows.
    async fn run_statement(
        &self,
        statement: &Statement,
        text_columns: usize,
        int_columns: usize,
        deadline: Deadline,
    ) -> Result<Vec<(Vec<String>, Vec<i64>)>, StoreError>;
    /// Writes rollup rows, replacing rows of the same (site, day, dimension, value).
    async fn put_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError>;
    /// The days of a site that have rollups (a totals row), within `[from, to]`.
    async fn rollup_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError>;
    /// Rollup rows of one dimension ("" for totals) over `[from, to]`.
    async fn read_rollups(
        &self,
        site_id: u32,
        dimension: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RollupRow>, StoreError>;
    /// Deletes rollups of the days before `day` (ClickHouse: of the whole months before
    /// `day`'s month); returns how many days or months went.
    async fn purge_rollups_before(&self, day: NaiveDate) -> Result<usize, StoreError>;
    /// Deletes every rollup row of `site_id` (an import's rows, which live under an id of
    /// their own). ClickHouse deletes by a mutation, which finishes in the background.
    async fn delete_rollups_of(&self, site_id: u32) -> Result<(), StoreError>;
    /// Writes the visit rows of a site's local `day` with `insert` (the planner's statement
    /// over that day's raw events, rows tagged `version` where the store keeps versions),
    /// then records the day as written. Rows an earlier write left for the day no longer
    /// count. Visit rows go with the raw events they come from: `purge_events_before` drops
    /// them too.
    async fn put_visits(
        &self,
        site_id: u32,
        day: NaiveDate,
        version: u64,
        insert: &Statement,
    ) -> Result<(), StoreError>;
    /// The days of a site within `[from, to]` whose visit rows are written.
    async fn visit_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError>;
    /// Called once every site's visit rows of `days` are written: a store that keeps each
    /// write apart (ClickHouse parts) may merge a day's into one, so that a sample's range
    /// of hashes skips more of them.
    async fn visit_days_written(&self, _days: &[NaiveDate]) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Sites, API keys, accounts and salts: the small metadata several processes share.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn sites(&self) -> Result<Vec<Site>, StoreError>;
    async fn add_site(&self, domain: &str, timezone: &str) -> Result<Site, StoreError>;
    /// Replaces the domain and time zone of the site with `site.id`; its events stay.
    /// `SiteExists` when another site has that domain; `false` when there is no such site.
    async fn update_site(&self, site: &Site) -> Result<bool, StoreError>;
    /// Deletes the site with this id and its API keys (its events, rollups and records are
    /// the caller's to delete first); `false` when there is no such site. Its id is not given
    /// to a site added later.
    async fn delete_site(&self, id: u32) -> Result<bool, StoreError>;
    /// Every salt still stored, one per day (the first written wins).
    async fn salts(&self) -> Result<Vec<(NaiveDate, Salt)>, StoreError>;
    async fn put_salt(&self, day: NaiveDate, salt: &Salt) -> Result<(), StoreError>;
    /// Deletes the salts of the days before `day`.
    async fn delete_salts_before(&self, day: NaiveDate) -> Result<(), StoreError>;
    async fn add_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// Every API key, revoked ones included, in creation order.
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes the key with this id; `false` when there is no such key.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError>;
    /// Every record of `kind` (see [`crate::accounts`]), as (id, body), ordered by id.
    async fn records(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// The body of one record.
    async fn record(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError>;
    /// Writes a record, replacing any record of the same kind and id.
    async fn put_record(&self, kind: &str, id: &str, body: &str) -> Result<(), StoreError>;
    /// Deletes a record; `false` when there was none.
    async fn delete_record(&self, kind: &str, id: &str) -> Result<bool, StoreError>;
    /// Removes what earlier versions of records left behind (an old password hash, an ended
    /// session), and deletions older than [`RECORD_TOMBSTONE_SECS`]; returns how many stored
    /// rows go. A store that replaces records in place has nothing to do.
    async fn compact_records(&self) -> Result<usize, StoreError>;
}

/// A whole store: its events and rollups, the metadata it keeps (in itself, or beside it as
/// the DuckDB store keeps SQLite's), and the schema of both. See the module documentation for
/// what each call promises.
#[async_trait]
pub trait Store: EventStore {
    /// Applies the schema migrations not applied yet; returns the names applied now.
    async fn migrate(&self) -> Result<Vec<String>, StoreError>;
    /// Answers when the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Where this store keeps sites, keys, accounts and salts.
    fn meta(&self) -> &dyn MetaStore;
}
