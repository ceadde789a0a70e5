//! The embedded store (the default): events and rollups in a DuckDB file
//! (`events.duckdb`), columnar, so a dashboard's `GROUP BY` over a month reads only the
//! columns it names; sites, keys, accounts and the daily salts in the SQLite file beside it
//! ([`SqliteStore`], `footfall.db`), which other `footfall` processes (the CLI) may open
//! while `serve` runs.
//!
//! DuckDB lets one process open its file for writing. Within the process every
//! [`DuckDbStore`] on the same directory shares one database, and the file is opened the
//! first time events or rollups are asked for, so commands that touch only sites, keys and
//! accounts never open it. Batches go in through DuckDB's appender in one transaction each;
//! the spool in front of the writer stays the durability boundary. Retention deletes whole
//! UTC days. Statements run on a small pool of connections and are interrupted at their
//! deadline.

mod moving;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use ::duckdb::arrow::array::{
    ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder, UInt8Array, UInt16Array,
    UInt32Array, UInt64Array,
};
use ::duckdb::arrow::record_batch::RecordBatch;
use ::duckdb::types::Value;
use ::duckdb::{Config as DuckConfig, Connection, params};
use async_trait::async_trait;
use chrono::{NaiveDate, Utc};

use super::sqlite::SqliteStore;
use super::statement::{Bind, Dialect, Statement};
use super::{
    DELETE_CHUNK, Deadline, EventRow, EventScope, EventStore, EventWriter, MAX_RESULT_ROWS,
    MetaStore, RollupRow, RollupScope, Store, StoreError, date_of, day_number, day_start_ts,
};

/// The file of events and rollups inside the data directory.
pub const EVENTS_FILE: &str = "events.duckdb";

/// The schema migrations of the events file, in order: (version, name, SQL).
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../../schema/duckdb/0001_init.sql"),
    ),
    (
        2,
        "0002_visits",
        include_str!("../../../../schema/duckdb/0002_visits.sql"),
    ),
    (
        3,
        "0003_goal_rollups",
        include_str!("../../../../schema/duckdb/0003_goal_rollups.sql"),
    ),
];

/// Connections for the Stats API's statements (DuckDB runs each on all cores; readers see
/// a snapshot and block neither the writer nor each other).
pub const READERS: usize = 4;

/// How much memory DuckDB's buffer pool may hold while it answers, rolls up or purges; past
/// it, large aggregations spill to `<data_dir>/duckdb.tmp`.
pub const MEMORY_LIMIT: &str = "512MB";

/// DuckDB's memory limit while it only takes appends. Its checkpoints rewrite the newest row
/// groups within it (spilling to `duckdb.tmp` past it), so that resident memory under a
/// steady ingest stays small; any other statement raises the limit to [`MEMORY_LIMIT`] while
/// it runs (BENCHMARKS.md, "Memory under load").
pub const INGEST_MEMORY_LIMIT: &str = "48MB";

const EVENT_COLUMNS: &str = "site_id, timestamp, name, hostname, pathname, visitor_id, session_id, referrer, referrer_source, channel, utm_medium, utm_source, utm_campaign, utm_content, utm_term, browser, browser_version, os, os_version, device, country_code, region, city, screen_width, props_keys, props_values, revenue_micros, revenue_currency, interactive, engagement_ms, scroll_depth, entry_page, country_name, region_name, batch_id";

pub struct DuckDbStore {
    meta: SqliteStore,
    data_dir: PathBuf,
    db: Mutex<Option<Arc<Db>>>,
}

/// One open events file: the writing connection and the readers' pool.
struct Db {
    writer: Mutex<Connection>,
    free: Mutex<Vec<Connection>>,
    slots: Arc<tokio::sync::Semaphore>,
    /// Who needs DuckDB's larger memory limit, and since when nobody has.
    room: Mutex<RoomState>,
}

/// How long DuckDB keeps its larger memory limit (and the blocks it cached under it) after
/// the last question: the questions of one dashboard, or of a visitor's next clicks, find the
/// data still in memory. After migrations, rollups and purges it is lowered at once.
pub const ROOM_KEPT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct RoomState {
    /// Statements running now with the larger limit.
    running: usize,
    /// Whether the limit is [`MEMORY_LIMIT`] now.
    raised: bool,
    /// Until when the last question keeps it raised.
    until: Option<std::time::Instant>,
    /// [`ROOM_KEPT`], other values in tests.
    kept: Duration,
}

/// While it lives, DuckDB's memory limit is [`MEMORY_LIMIT`]; [`Room::settle`] lowers it
/// back to [`INGEST_MEMORY_LIMIT`] when none lives (and, after a question, [`ROOM_KEPT`] has
/// passed).
struct Room<'a> {
    db: &'a Db,
    /// A question: the limit stays raised for [`ROOM_KEPT`] after it.
    question: bool,
}

impl<'a> Room<'a> {
    fn take(db: &'a Db, conn: &Connection, question: bool) -> Room<'a> {
        let mut room = lock(&db.room);
        if !room.raised {
            room.raised = set_memory_limit(conn, MEMORY_LIMIT);
        }
        room.running += 1;
        Room { db, question }
    }

    /// Before an append: lowers the limit if no statement needs more now.
    fn settle(db: &Db, conn: &Connection) {
        let mut room = lock(&db.room);
        let kept = room
            .until
            .is_some_and(|until| std::time::Instant::now() < until);
        if room.raised && room.running == 0 && !kept {
            room.raised = !set_memory_limit(conn, INGEST_MEMORY_LIMIT);
        }
    }
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        let mut room = lock(&self.db.room);
        room.running = room.running.saturating_sub(1);
        if self.question {
            room.until = Some(std::time::Instant::now() + room.kept);
        }
    }
}

/// Whether DuckDB refused a statement for want of memory under its limit.
fn out_of_memory(error: &str) -> bool {
    error.contains("Out of Memory") || error.contains("could not allocate block")
}

/// Sets DuckDB's (database-wide) memory limit. Lowering it evicts cached blocks; when they
/// cannot all go yet, DuckDB refuses and the higher limit stays until the next change.
/// Whether it was set.
fn set_memory_limit(conn: &Connection, limit: &str) -> bool {
    match conn.execute_batch(&format!("SET memory_limit = '{limit}'")) {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, limit, "DuckDB kept its memory limit");
            false
        }
    }
}

/// The events files this process has open, so that every store on a directory shares one
/// database (DuckDB refuses a second writer, even in the same process).
fn open_files() -> &'static Mutex<HashMap<PathBuf, Weak<Db>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Db>>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn query_err(e: ::duckdb::Error) -> StoreError {
    StoreError::Query(e.to_string())
}

impl Db {
    fn open(path: &Path) -> Result<Db, StoreError> {
        let tmp = path.with_file_name("duckdb.tmp");
        let config = DuckConfig::default()
            .max_memory(INGEST_MEMORY_LIMIT)
            .and_then(|c| c.with("temp_directory", tmp.to_string_lossy()))
            // No extension is downloaded or loaded: the bundled engine has what we use.
            .and_then(|c| c.enable_autoload_extension(false))
            .and_then(|c| c.with("autoinstall_known_extensions", "false"))
            .map_err(query_err)?;
        let writer = Connection::open_with_flags(path, config).map_err(|e| {
            StoreError::Io(format!(
                "cannot open {}: {e}; only one footfall process may use the events file (stop `footfall serve`, or run the command through it)",
                path.display()
            ))
        })?;
        for file in [path.to_path_buf(), wal_path(path)] {
            super::files::make_private(&file)
                .map_err(|e| StoreError::Io(format!("cannot restrict {}: {e}", file.display())))?;
        }
        let readers = (0..READERS)
            .map(|_| writer.try_clone().map_err(query_err))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Db {
            writer: Mutex::new(writer),
            free: Mutex::new(readers),
            slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
            room: Mutex::new(RoomState {
                running: 0,
                raised: false,
                until: None,
                kept: ROOM_KEPT,
            }),
        })
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = lock(&self.free).pop() {
            return Ok(conn);
        }
        // A statement that panicked took its connection with it: make another.
        lock(&self.writer).try_clone().map_err(query_err)
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push(".wal");
    PathBuf::from(wal)
}

impl DuckDbStore {
    /// Opens the store in `data_dir`: the SQLite file now, the events file when first used.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let meta = SqliteStore::open(data_dir)?;
        Ok(Self {
            meta,
            data_dir: data_dir.to_path_buf(),
            db: Mutex::new(None),
        })
    }

    /// The events file.
    pub fn path(&self) -> PathBuf {
        self.data_dir.join(EVENTS_FILE)
    }

    /// The metadata store beside it.
    pub fn meta(&self) -> &SqliteStore {
        &self.meta
    }

    /// Lets go of the events file (it closes once no call of this process uses it); the
    /// next call that needs it opens it again.
    pub fn release(&self) {
        *lock(&self.db) = None;
    }

    fn db(&self) -> Result<Arc<Db>, StoreError> {
        let mut mine = lock(&self.db);
        if let Some(db) = mine.as_ref() {
            return Ok(db.clone());
        }
        let path = self.path();
        let mut open = lock(open_files());
        let db = match open.get(&path).and_then(Weak::upgrade) {
            Some(db) => db,
            None => {
                let db = Arc::new(Db::open(&path)?);
                open.retain(|_, d| d.strong_count() > 0);
                open.insert(path, Arc::downgrade(&db));
                db
            }
        };
        *mine = Some(db.clone());
        Ok(db)
    }

    /// Runs `f` with the open events file and its writing connection on the blocking pool.
    async fn on_writer<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Db, &Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db()?;
        tokio::task::spawn_blocking(move || f(&db, &lock(&db.writer)))
            .await
            .map_err(|e| StoreError::Query(format!("store task failed: {e}")))?
    }

    /// Runs `f` with the writing connection, with room for a large statement
    /// ([`MEMORY_LIMIT`]).
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_writer(move |db, conn| {
            let _room = Room::take(db, conn, false);
            f(conn)
        })
        .await
    }

    /// Runs `f` with the writing connection, within the ingest memory limit once no other
    /// statement has needed more for [`ROOM_KEPT`]: for appends and the small lookups that
    /// run all the time (health checks, the rollup scheduler's).
    async fn with_small<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.on_writer(move |db, conn| {
            Room::settle(db, conn);
            f(conn)
        })
        .await
    }

    /// Runs `f` with a reading connection on the blocking pool, interrupted at `deadline`
    /// (waiting for a connection counts).
    async fn read<T, F>(&self, deadline: Deadline, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let db = self.db()?;
        let permit = tokio::time::timeout(deadline.remaining(), db.slots.clone().acquire_owned())
            .await
            .map_err(|_| deadline.exceeded())?
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let conn = db.take_reader()?;
        let interrupt = conn.interrupt_handle();
        // Past the deadline the watchdog interrupts the connection until the statement is
        // over: DuckDB clears the flag when a statement starts, so an interrupt that came
        // before the blocking task got going would otherwise be lost. Setting `over` and
        // interrupting take the same lock.
        let over = Arc::new(Mutex::new(false));
        let watchdog = {
            let over = over.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(deadline.at().into()).await;
                loop {
                    if *lock(&over) {
                        break;
                    }
                    interrupt.interrupt();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let result = if deadline.passed() {
                Err(deadline.exceeded())
            } else {
                let _room = Room::take(&db, &conn, true);
                f(&conn)
            };
            let result = result.map_err(|e| match e {
                StoreError::Query(_) if deadline.passed() => deadline.exceeded(),
                e => e,
            });
            *lock(&over) = true;
            lock(&db.free).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Query(format!("store task failed: {e}")));
        watchdog.abort();
        result?
    }
}

/// Runs `f` inside a transaction of `conn`, rolled back when it fails.
fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN TRANSACTION").map_err(query_err)?;
    match f(conn) {
        Ok(v) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                // DuckDB has already ended a transaction whose commit failed; this makes sure.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(query_err(e))
            }
        },
        Err(e) => {
            if let Err(rollback) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %rollback, "rolling back a failed write");
            }
            Err(e)
        }
    }
}

/// The events as one Arrow batch in the table's column order and types.
fn record_batch(events: &[EventRow]) -> Result<RecordBatch, StoreError> {
    fn text<'a>(events: &'a [EventRow], f: impl Fn(&'a EventRow) -> &'a str) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(events.iter().map(f)))
    }
    fn list(events: &[EventRow], f: impl Fn(&EventRow) -> &[String]) -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for e in events {
            for v in f(e) {
                b.values().append_value(v);
            }
            b.append(true);
        }
        Arc::new(b.finish())
    }
    let u32s = |f: fn(&EventRow) -> u32| -> ArrayRef {
        Arc::new(UInt32Array::from_iter_values(events.iter().map(f)))
    };
    let u64s = |f: fn(&EventRow) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from_iter_values(events.iter().map(f)))
    };
    let u8s = |f: fn(&EventRow) -> u8| -> ArrayRef {
        Arc::new(UInt8Array::from_iter_values(events.iter().map(f)))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("site_id", u32s(|e| e.site_id)),
        ("timestamp", u32s(|e| e.timestamp)),
        ("name", text(events, |e| &e.name)),
        ("hostname", text(events, |e| &e.hostname)),
        ("pathname", text(events, |e| &e.pathname)),
        ("visitor_id", u64s(|e| e.visitor_id)),
        ("session_id", u64s(|e| e.session_id)),
        ("referrer", text(events, |e| &e.referrer)),
        ("referrer_source", text(events, |e| &e.referrer_source)),
        ("channel", text(events, |e| &e.channel)),
        ("utm_medium", text(events, |e| &e.utm_medium)),
        ("utm_source", text(events, |e| &e.utm_source)),
        ("utm_campaign", text(events, |e| &e.utm_campaign)),
        ("utm_content", text(events, |e| &e.utm_content)),
        ("utm_term", text(events, |e| &e.utm_term)),
        ("browser", text(events, |e| &e.browser)),
        ("browser_version", text(events, |e| &e.browser_version)),
        ("os", text(events, |e| &e.os)),
        ("os_version", text(events, |e| &e.os_version)),
        ("device", text(events, |e| &e.device)),
        ("country_code", text(events, |e| &e.country_code)),
        ("region", text(events, |e| &e.region)),
        ("city", text(events, |e| &e.city)),
        (
            "screen_width",
            Arc::new(UInt16Array::from_iter_values(
                events.iter().map(|e| e.screen_width),
            )),
        ),
        ("props_keys", list(events, |e| &e.props_keys)),
        ("props_values", list(events, |e| &e.props_values)),
        (
            "revenue_micros",
            Arc::new(Int64Array::from_iter_values(
                events.iter().map(|e| e.revenue_micros),
            )),
        ),
        ("revenue_currency", text(events, |e| &e.revenue_currency)),
        ("interactive", u8s(|e| e.interactive)),
        ("engagement_ms", u32s(|e| e.engagement_ms)),
        ("scroll_depth", u8s(|e| e.scroll_depth)),
        ("entry_page", text(events, |e| &e.entry_page)),
        ("country_name", text(events, |e| &e.country_name)),
        ("region_name", text(events, |e| &e.region_name)),
        ("batch_id", u64s(|e| e.batch_id)),
    ];
    RecordBatch::try_from_iter(columns).map_err(|e| StoreError::Query(e.to_string()))
}

/// Appends `events` through the appender (inside the caller's transaction, if any).
fn append(conn: &Connection, events: &[EventRow]) -> Result<(), StoreError> {
    let mut appender = conn.appender("events").map_err(query_err)?;
    // The appender takes at most one vector per call; larger batches are sliced by it.
    appender
        .append_record_batch(record_batch(events)?)
        .map_err(query_err)?;
    appender.flush().map_err(query_err)
}

fn strings(v: Value) -> Vec<String> {
    match v {
        Value::List(items) | Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Text(s) => s,
                _ => String::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn read_row(r: &::duckdb::Row<'_>) -> ::duckdb::Result<EventRow> {
    Ok(EventRow {
        site_id: r.get(0)?,
        timestamp: r.get(1)?,
        name: r.get(2)?,
        hostname: r.get(3)?,
        pathname: r.get(4)?,
        visitor_id: r.get(5)?,
        session_id: r.get(6)?,
        referrer: r.get(7)?,
        referrer_source: r.get(8)?,
        channel: r.get(9)?,
        utm_medium: r.get(10)?,
        utm_source: r.get(11)?,
        utm_campaign: r.get(12)?,
        utm_content: r.get(13)?,
        utm_term: r.get(14)?,
        browser: r.get(15)?,
        browser_version: r.get(16)?,
        os: r.get(17)?,
        os_version: r.get(18)?,
        device: r.get(19)?,
        country_code: r.get(20)?,
        region: r.get(21)?,
        city: r.get(22)?,
        screen_width: r.get(23)?,
        props_keys: strings(r.get(24)?),
        props_values: strings(r.get(25)?),
        revenue_micros: r.get(26)?,
        revenue_currency: r.get(27)?,
        interactive: r.get(28)?,
        engagement_ms: r.get(29)?,
        scroll_depth: r.get(30)?,
        entry_page: r.get(31)?,
        country_name: r.get(32)?,
        region_name: r.get(33)?,
        batch_id: r.get(34)?,
    })
}

fn migrate_events_file(conn: &Connection) -> Result<Vec<String>, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS footfall_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .map_err(query_err)?;
    let mut ran = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let applied: i64 = conn
            .query_row(
                "SELECT count(*) FROM footfall_migrations WHERE version = ?",
                params![version],
                |r| r.get(0),
            )
            .map_err(query_err)?;
        if applied > 0 {
            continue;
        }
        in_transaction(conn, |conn| {
            conn.execute_batch(sql).map_err(|e| StoreError::Migration {
                name: format!("duckdb/{name}"),
                message: e.to_string(),
            })?;
            conn.execute(
                "INSERT INTO footfall_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                params![version, name, Utc::now().timestamp()],
            )
            .map_err(query_err)?;
            Ok(())
        })?;
        ran.push(format!("duckdb/{name}"));
    }
    Ok(ran)
}

impl DuckDbStore {
    /// The days `sql` lists for a site within `[from, to]` (`rollup_days`, `visit_days`);
    /// within the small memory limit, as the rollup scheduler asks every 10 s.
    async fn days_listed(
        &self,
        sql: &'static str,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.with_small(move |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(query_err)?;
            let rows = stmt
                .query_map(params![site_id, day_number(from), day_number(to)], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(query_err)?;
            rows.map(|d| d.map(date_of).map_err(query_err)).collect()
        })
        .await
    }
}

/// A statement's binds as DuckDB values.
fn values(statement: &Statement) -> Vec<Value> {
    statement
        .binds
        .iter()
        .map(|b| match b {
            Bind::Int(n) => Value::BigInt(*n),
            Bind::Text(s) => Value::Text(s.clone()),
        })
        .collect()
}

#[async_trait]
impl Store for DuckDbStore {
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut ran = self.meta.migrate().await?;
        ran.extend(self.with(migrate_events_file).await?);
        let sqlite = self.meta.path().to_path_buf();
        let moved = self
            .with(move |conn| moving::move_sqlite_events(&sqlite, conn))
            .await?;
        if moved > 0 {
            ran.push(format!("moved {moved} events from footfall.db"));
        }
        Ok(ran)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.meta.ping().await?;
        self.with_small(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(query_err)
        })
        .await
    }
    fn meta(&self) -> &dyn MetaStore {
        &self.meta
    }
}

#[async_trait]
impl EventWriter for DuckDbStore {
    async fn insert_events(&self, events: Arc<[EventRow]>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.on_writer(move |db, conn| {
            Room::settle(db, conn);
            match in_transaction(conn, |conn| append(conn, &events)) {
                // Nothing of the batch was kept: it gets the larger limit, and the next
                // append lowers it again.
                Err(StoreError::Query(error)) if out_of_memory(&error) => {
                    tracing::info!(%error, rows = events.len(), "an append needed more than DuckDB's ingest memory limit; retrying it with more");
                    let _room = Room::take(db, conn, false);
                    in_transaction(conn, |conn| append(conn, &events))
                }
                other => other,
            }
        })
        .await
    }
    async fn batch_written(&self, rows: &[EventRow]) -> Result<bool, StoreError> {
        let Some(probe) = rows.first() else {
            return Ok(true);
        };
        let (site, ts, batch) = (probe.site_id, probe.timestamp, probe.batch_id);
        self.with_small(move |conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE site_id = ? AND timestamp = ? AND batch_id = ?)",
                params![site, ts, batch],
                |r| r.get::<_, bool>(0),
            )
            .map_err(query_err)
        })
        .await
    }
}

#[async_trait]
impl EventStore for DuckDbStore {
    async fn purge_events_before(&self, day: NaiveDate) -> Result<usize, StoreError> {
        let cutoff = day_start_ts(day);
        self.with(move |conn| {
            let days: i64 = conn
                .query_row(
                    "SELECT count(DISTINCT timestamp // 86400) FROM events WHERE timestamp < ?",
                    params![cutoff],
                    |r| r.get(0),
                )
                .map_err(query_err)?;
            // Visit rows go with the raw events they come from.
            for sql in [
                "DELETE FROM visits WHERE day < ?",
                "DELETE FROM visit_days WHERE day < ?",
            ] {
                conn.execute(sql, params![cutoff / 86_400])
                    .map_err(query_err)?;
            }
            if days > 0 {
                conn.execute("DELETE FROM events WHERE timestamp < ?", params![cutoff])
                    .map_err(query_err)?;
                // Row groups left empty are dropped from the file at a checkpoint.
                conn.execute_batch("CHECKPOINT").map_err(query_err)?;
            }
            Ok(usize::try_from(days).unwrap_or(0))
        })
        .await
    }
    async fn read_events(
        &self,
        site_id: u32,
        from: u32,
        to: u32,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.with(move |conn| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE site_id = ? AND timestamp >= ? AND timestamp < ? ORDER BY timestamp LIMIT ?"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(query_err)?;
            let rows = stmt
                .query_map(params![site_id, from, to, limit], read_row)
                .map_err(query_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_err)
        })
        .await
    }
    async fn visitor_events(
        &self,
        site_id: u32,
        visitor_id: u64,
        from: u32,
        to: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.with(move |conn| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE site_id = ? AND visitor_id = ? AND timestamp >= ? AND timestamp < ? ORDER BY timestamp"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(query_err)?;
            let rows = stmt
                .query_map(params![site_id, visitor_id, from, to], read_row)
                .map_err(query_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_err)
        })
        .await
    }
    async fn erase_visitor(
        &self,
        site_id: u32,
        visitor_id: u64,
        from: u32,
        to: u32,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            in_transaction(conn, |conn| {
                conn.execute(
                    "DELETE FROM events WHERE site_id = ? AND visitor_id = ? AND timestamp >= ? AND timestamp < ?",
                    params![site_id, visitor_id, from, to],
                )
                .map_err(query_err)?;
                conn.execute(
                    "DELETE FROM visits WHERE site_id = ? AND visitor_id = ?",
                    params![site_id, visitor_id],
                )
                .map_err(query_err)?;
                Ok(())
            })
        })
        .await
    }
    async fn delete_events(&self, site_id: u32, scope: &EventScope) -> Result<(), StoreError> {
        let scope = scope.clone();
        self.with(move |conn| {
            in_transaction(conn, |conn| {
                let head = || {
                    vec![
                        Value::UInt(site_id),
                        Value::UInt(scope.from),
                        Value::UInt(scope.to),
                    ]
                };
                match &scope.pathnames {
                    None => {
                        conn.execute(
                            "DELETE FROM events WHERE site_id = ? AND timestamp >= ? AND timestamp < ?",
                            ::duckdb::params_from_iter(head()),
                        )
                        .map_err(query_err)?;
                    }
                    Some(paths) => {
                        for chunk in paths.chunks(DELETE_CHUNK) {
                            let sql = format!(
                                "DELETE FROM events WHERE site_id = ? AND timestamp >= ? AND timestamp < ? AND pathname IN ({})",
                                vec!["?"; chunk.len()].join(", ")
                            );
                            let mut binds = head();
                            binds.extend(chunk.iter().map(|p| Value::Text(p.clone())));
                            conn.execute(&sql, ::duckdb::params_from_iter(binds))
                                .map_err(query_err)?;
                        }
                    }
                }
                if let Some((first, last)) = scope.visit_days {
                    conn.execute(
                        "DELETE FROM visits WHERE site_id = ? AND day >= ? AND day <= ?",
                        params![site_id, day_number(first), day_number(last)],
                    )
                    .map_err(query_err)?;
                }
                Ok(())
            })
        })
        .await
    }
    async fn delete_rollups(&self, site_id: u32, scope: &RollupScope) -> Result<(), StoreError> {
        let scope = scope.clone();
        self.with(move |conn| {
            let (from, to) = (day_number(scope.from), day_number(scope.to));
            in_transaction(conn, |conn| {
                match &scope.values {
                    None => {
                        conn.execute(
                            "DELETE FROM rollups WHERE site_id = ? AND day >= ? AND day <= ?",
                            params![site_id, from, to],
                        )
                        .map_err(query_err)?;
                    }
                    Some((dimensions, values)) => {
                        for dimension in dimensions {
                            for chunk in values.chunks(DELETE_CHUNK) {
                                let sql = format!(
                                    "DELETE FROM rollups WHERE site_id = ? AND day >= ? AND day <= ? AND dimension = ? AND value IN ({})",
                                    vec!["?"; chunk.len()].join(", ")
                                );
                                let mut binds = vec![
                                    Value::UInt(site_id),
                                    Value::BigInt(from),
                                    Value::BigInt(to),
                                    Value::Text(dimension.clone()),
                                ];
                                binds.extend(chunk.iter().map(|v| Value::Text(v.clone())));
                                conn.execute(&sql, ::duckdb::params_from_iter(binds))
                                    .map_err(query_err)?;
                            }
                        }
                    }
                }
                Ok(())
            })
        })
        .await
    }
    async fn event_pathnames(&self, site_id: u32) -> Result<Vec<String>, StoreError> {
        self.with_small(move |conn| {
            let mut stmt = conn
                .prepare("SELECT DISTINCT pathname FROM events WHERE site_id = ? LIMIT ?")
                .map_err(query_err)?;
            let rows = stmt
                .query_map(params![site_id, MAX_RESULT_ROWS as i64 + 1], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(query_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(query_err)?;
            if rows.len() > MAX_RESULT_ROWS {
                return Err(StoreError::too_many_rows());
            }
            Ok(rows)
        })
        .await
    }
    async fn earliest_event(&self, site_id: u32) -> Result<Option<u32>, StoreError> {
        self.with_small(move |conn| {
            conn.query_row(
                "SELECT min(timestamp) FROM events WHERE site_id = ?",
                params![site_id],
                |row| row.get::<_, Option<u32>>(0),
            )
            .map_err(query_err)
        })
        .await
    }
    fn dialect(&self) -> Dialect {
        Dialect::DuckDb
    }
    async fn run_statement(
        &self,
        statement: &Statement,
        text_columns: usize,
        int_columns: usize,
        deadline: Deadline,
    ) -> Result<Vec<(Vec<String>, Vec<i64>)>, StoreError> {
        let statement = statement.clone();
        self.read(deadline, move |conn| {
            let mut stmt = conn.prepare_cached(&statement.sql).map_err(query_err)?;
            let mut rows = stmt
                .query(::duckdb::params_from_iter(values(&statement)))
                .map_err(query_err)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(query_err)? {
                if out.len() == MAX_RESULT_ROWS {
                    return Err(StoreError::too_many_rows());
                }
                let texts = (0..text_columns)
                    .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(query_err)?;
                let ints = (text_columns..text_columns + int_columns)
                    .map(|i| r.get::<_, Option<i64>>(i).map(Option::unwrap_or_default))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(query_err)?;
                out.push((texts, ints));
            }
            Ok(out)
        })
        .await
    }
    async fn put_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.with(move |conn| {
            in_transaction(conn, |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO rollups (site_id, day, dimension, value, visitors, visits, pageviews, events, bounces, duration, revenue_micros, revenue_events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .map_err(query_err)?;
                for r in &rows {
                    stmt.execute(params![
                        r.site_id,
                        day_number(r.day),
                        r.dimension,
                        r.value,
                        r.visitors,
                        r.visits,
                        r.pageviews,
                        r.events,
                        r.bounces,
                        r.duration,
                        r.revenue_micros,
                        r.revenue_events,
                    ])
                    .map_err(query_err)?;
                }
                Ok(())
            })
        })
        .await
    }
    async fn rollup_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.days_listed("SELECT day FROM rollups WHERE site_id = ? AND dimension = '' AND day >= ? AND day <= ? ORDER BY day", site_id, from, to)
            .await
    }
    async fn read_rollups(
        &self,
        site_id: u32,
        dimension: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let dimension = dimension.to_string();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT day, value, visitors, visits, pageviews, events, bounces, duration, COALESCE(revenue_micros, 0), COALESCE(revenue_events, 0) FROM rollups WHERE site_id = ? AND dimension = ? AND day >= ? AND day <= ?",
                )
                .map_err(query_err)?;
            let rows = stmt
                .query_map(params![site_id, dimension, day_number(from), day_number(to)], |r| {
                    Ok(RollupRow {
                        site_id,
                        day: date_of(r.get(0)?),
                        dimension: dimension.clone(),
                        value: r.get(1)?,
                        visitors: r.get(2)?,
                        visits: r.get(3)?,
                        pageviews: r.get(4)?,
                        events: r.get(5)?,
                        bounces: r.get(6)?,
                        duration: r.get(7)?,
                        revenue_micros: r.get(8)?,
                        revenue_events: r.get(9)?,
                    })
                })
                .map_err(query_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_err)
        })
        .await
    }
    async fn purge_rollups_before(&self, day: NaiveDate) -> Result<usize, StoreError> {
        self.with(move |conn| {
            let days: i64 = conn
                .query_row(
                    "SELECT count(DISTINCT day) FROM rollups WHERE day < ?",
                    params![day_number(day)],
                    |r| r.get(0),
                )
                .map_err(query_err)?;
            conn.execute(
                "DELETE FROM rollups WHERE day < ?",
                params![day_number(day)],
            )
            .map_err(query_err)?;
            Ok(usize::try_from(days).unwrap_or(0))
        })
        .await
    }
    async fn delete_rollups_of(&self, site_id: u32) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute("DELETE FROM rollups WHERE site_id = ?", params![site_id])
                .map_err(query_err)?;
            Ok(())
        })
        .await
    }
    async fn put_visits(
        &self,
        site_id: u32,
        day: NaiveDate,
        _version: u64,
        insert: &Statement,
    ) -> Result<(), StoreError> {
        let insert = insert.clone();
        let day = day_number(day);
        self.with(move |conn| {
            in_transaction(conn, |conn| {
                conn.execute(
                    "DELETE FROM visits WHERE site_id = ? AND day = ?",
                    params![site_id, day],
                )
                .map_err(query_err)?;
                conn.execute(&insert.sql, ::duckdb::params_from_iter(values(&insert)))
                    .map_err(query_err)?;
                conn.execute(
                    "INSERT OR REPLACE INTO visit_days (site_id, day) VALUES (?, ?)",
                    params![site_id, day],
                )
                .map_err(query_err)?;
                Ok(())
            })
        })
        .await
    }
    async fn visit_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.days_listed(
            "SELECT day FROM visit_days WHERE site_id = ? AND day >= ? AND day <= ? ORDER BY day",
            site_id,
            from,
            to,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes in one of DuckDB's memory settings, as it prints them ("45.7 MiB").
    fn bytes(setting: &str) -> f64 {
        let (number, unit) = setting.split_once(' ').expect("a number and a unit");
        let scale = match unit {
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            other => panic!("unit {other}"),
        };
        number.parse::<f64>().expect("a number") * scale
    }

    fn memory_limit(conn: &Connection) -> Result<f64, StoreError> {
        conn.query_row("SELECT current_setting('memory_limit')", [], |r| {
            r.get::<_, String>(0)
        })
        .map(|s| bytes(&s))
        .map_err(query_err)
    }

    #[tokio::test]
    async fn memory_stays_small_for_appends_and_grows_while_any_other_statement_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(DuckDbStore::open(dir.path()).unwrap());
        store.migrate().await.unwrap();
        let (small, large) = (48e6, 512e6);
        let room = |kept: Duration| lock(&store.db().unwrap().room).kept = kept;
        room(Duration::from_secs(3600));
        let appending = store.with_small(memory_limit).await.unwrap();
        assert!((appending - small).abs() < 1e6, "{appending}");
        let rolling_up = store.with(memory_limit).await.unwrap();
        assert!((rolling_up - large).abs() < 1e6, "{rolling_up}");
        let after_rollups = store.with_small(memory_limit).await.unwrap();
        assert!(
            (after_rollups - small).abs() < 1e6,
            "at once: {after_rollups}"
        );
        let deadline = || Deadline::after(Duration::from_secs(30));
        store.read(deadline(), |_| Ok(())).await.unwrap();
        let soon_after = store.with_small(memory_limit).await.unwrap();
        assert!(
            (soon_after - large).abs() < 1e6,
            "kept a while: {soon_after}"
        );
        room(Duration::ZERO);
        store.read(deadline(), |_| Ok(())).await.unwrap();
        let later = store.with_small(memory_limit).await.unwrap();
        assert!((later - small).abs() < 1e6, "then lowered: {later}");

        // Two reads overlap: while one still runs, an append does not lower the limit.
        let (second_in, second_in_rx) = std::sync::mpsc::channel::<()>();
        let (first_done, first_done_rx) = std::sync::mpsc::channel::<()>();
        let second = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .read(deadline(), move |conn| {
                        second_in.send(()).unwrap();
                        first_done_rx.recv().unwrap();
                        memory_limit(conn)
                    })
                    .await
            })
        };
        let reading = store
            .read(deadline(), move |conn| {
                second_in_rx.recv().unwrap();
                memory_limit(conn)
            })
            .await
            .unwrap();
        assert!((reading - large).abs() < 1e6, "{reading}");
        let during = store.with_small(memory_limit).await.unwrap();
        assert!((during - large).abs() < 1e6, "a read still runs: {during}");
        first_done.send(()).unwrap();
        let still = second.await.unwrap().unwrap();
        assert!((still - large).abs() < 1e6, "{still}");
        let after = store.with_small(memory_limit).await.unwrap();
        assert!(
            (after - small).abs() < 1e6,
            "lowered after the last: {after}"
        );
    }

    #[tokio::test]
    async fn an_append_larger_than_the_ingest_limit_is_retried_with_more_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = DuckDbStore::open(dir.path()).unwrap();
        store.migrate().await.unwrap();
        let rows: Arc<[EventRow]> = (0..50_000u32)
            .map(|i| EventRow {
                site_id: 1,
                timestamp: 1_764_028_800 + i,
                name: "pageview".into(),
                pathname: format!("/page/{i}"),
                batch_id: 7,
                ..EventRow::default()
            })
            .collect();
        let tiny = |conn: &Connection| {
            conn.execute_batch("SET memory_limit = '2MB'")
                .map_err(query_err)
        };
        store.with_small(tiny).await.unwrap();
        let plain = rows.clone();
        let refused = store
            .with_small(move |conn| in_transaction(conn, |conn| append(conn, &plain)))
            .await;
        assert!(
            matches!(&refused, Err(StoreError::Query(e)) if out_of_memory(e)),
            "{refused:?}"
        );
        store.with_small(tiny).await.unwrap();
        store.insert_events(rows).await.unwrap();
        let stored = store
            .with_small(|conn| {
                conn.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
                    .map_err(query_err)
            })
            .await
            .unwrap();
        assert_eq!(stored, 50_000, "the batch is stored once, whole");
        let after = store.with_small(memory_limit).await.unwrap();
        assert!(
            (after - 48e6).abs() < 1e6,
            "back to the ingest limit: {after}"
        );
    }
}
