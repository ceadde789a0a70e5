//! The embedded store: one SQLite file (`footfall.db`) in the data directory.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`, so a batch is on disk when
//! `insert_events` returns: it survives the process being killed and the machine losing
//! power. `secure_delete` is on and a deletion of salts is followed by a WAL checkpoint that
//! truncates the log, so deleted salt bytes do not stay in the file or its WAL. Retention
//! deletes in bounded batches, each its own short transaction, so ingestion is never blocked
//! for long. Calls run on Tokio's blocking pool; one connection serialises writes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::statement::{Bind, Dialect, Statement};
use super::{
    ApiKey, DELETE_CHUNK, Deadline, EventRow, EventScope, EventStore, EventWriter, MAX_RESULT_ROWS,
    MetaStore, RollupRow, RollupScope, Site, Store, StoreError,
};
use super::{Salt, date_of, day_number, day_start_ts};

/// The schema migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../../schema/sqlite/0001_init.sql"),
    ),
    (
        2,
        "0002_api_keys",
        include_str!("../../../../schema/sqlite/0002_api_keys.sql"),
    ),
    (
        3,
        "0003_visit_names",
        include_str!("../../../../schema/sqlite/0003_visit_names.sql"),
    ),
    (
        4,
        "0004_rollups",
        include_str!("../../../../schema/sqlite/0004_rollups.sql"),
    ),
    (
        5,
        "0005_session_index",
        include_str!("../../../../schema/sqlite/0005_session_index.sql"),
    ),
    (
        6,
        "0006_accounts",
        include_str!("../../../../schema/sqlite/0006_accounts.sql"),
    ),
    (
        7,
        "0007_batch_ids",
        include_str!("../../../../schema/sqlite/0007_batch_ids.sql"),
    ),
    (
        8,
        "0008_visits",
        include_str!("../../../../schema/sqlite/0008_visits.sql"),
    ),
    (
        9,
        "0009_goal_rollups",
        include_str!("../../../../schema/sqlite/0009_goal_rollups.sql"),
    ),
];

/// Rows deleted per retention transaction.
pub const PURGE_BATCH_ROWS: usize = 10_000;

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "footfall.db";

/// Connections for the Stats API's statements. In WAL mode readers block neither the writer
/// nor each other, so a long query holds up neither ingestion nor other questions.
pub const READERS: usize = 4;

/// SQLite's progress handler runs every this many virtual-machine steps (about a millisecond
/// of work) and stops the statement once its deadline has passed.
const PROGRESS_STEPS: i32 = 10_000;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Readers>,
    path: PathBuf,
}

/// The reading connections: a statement takes a free one for as long as it runs.
struct Readers {
    free: Mutex<Vec<Connection>>,
    slots: Arc<tokio::sync::Semaphore>,
    path: PathBuf,
}

impl Readers {
    fn take(&self) -> Result<Connection, StoreError> {
        let spare = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match spare {
            Some(conn) => Ok(conn),
            // A statement that panicked took its connection with it: open another.
            None => open_connection(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(conn);
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -65536;
         PRAGMA mmap_size = 268435456;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(query_err)?;
    add_regexp(&conn).map_err(query_err)?;
    Ok(conn)
}

fn query_err(e: rusqlite::Error) -> StoreError {
    StoreError::Query(e.to_string())
}

pub(crate) const EVENT_COLUMNS: &str = "site_id, timestamp, name, hostname, pathname, visitor_id, session_id, referrer, referrer_source, channel, utm_medium, utm_source, utm_campaign, utm_content, utm_term, browser, browser_version, os, os_version, device, country_code, region, city, screen_width, props_keys, props_values, revenue_micros, revenue_currency, interactive, engagement_ms, scroll_depth, entry_page, country_name, region_name, batch_id";

/// How often deleting salts tries to empty the WAL (each try waits up to the busy timeout).
const CHECKPOINT_ATTEMPTS: u32 = 6;

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        super::files::create_private_dir(data_dir).map_err(|e| {
            StoreError::Io(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = open_connection(&path)?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path))
            .collect::<Result<Vec<_>, _>>()?;
        // SQLite creates its files as the umask says; the WAL and shared-memory files it
        // creates later take the database file's mode.
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            super::files::make_private(Path::new(&file))
                .map_err(|e| StoreError::Io(format!("cannot restrict {}: {e}", path.display())))?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Readers {
                free: Mutex::new(readers),
                slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
                path: path.clone(),
            }),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writing connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Self::on(self.conn.clone(), f).await
    }

    /// Runs `f` with a free reading connection on the blocking pool, stopped at `deadline`
    /// (waiting for a connection counts). The connection goes back to the pool from the
    /// blocking task, so a caller that gives up early does not lose it.
    async fn read<T, F>(&self, deadline: Deadline, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = tokio::time::timeout(
            deadline.remaining(),
            self.readers.slots.clone().acquire_owned(),
        )
        .await
        .map_err(|_| deadline.exceeded())?
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = readers.take()?;
            let at = deadline.at();
            let stop = move || std::time::Instant::now() >= at;
            let result = match conn.progress_handler(PROGRESS_STEPS, Some(stop)) {
                Ok(()) => f(&mut conn).map_err(|e| match e {
                    StoreError::Query(_) if deadline.passed() => deadline.exceeded(),
                    e => e,
                }),
                Err(e) => Err(query_err(e)),
            };
            match conn.progress_handler(0, None::<fn() -> bool>) {
                Ok(()) => readers.give_back(conn),
                Err(e) => tracing::warn!(error = %e, "a reading connection is closed"),
            }
            result
        })
        .await
        .map_err(|e| StoreError::Query(format!("store task failed: {e}")))?
    }

    async fn on<T, F>(conn: Arc<Mutex<Connection>>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Query(format!("store task failed: {e}")))?
    }
}

/// `x REGEXP pattern` for the Stats API's `matches` filters, with the `regex` crate (RE2
/// syntax, as ClickHouse's `match`). Each statement compiles its pattern once.
fn add_regexp(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re: Arc<regex::Regex> = ctx.get_or_create_aux(
                0,
                |v| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(super::statement::compile_pattern(v.as_str()?)?)
                },
            )?;
            let text = ctx.get_raw(1).as_str().unwrap_or("");
            Ok(re.is_match(text))
        },
    )
}

fn to_json(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        site_id: r.get(0)?,
        timestamp: r.get(1)?,
        name: r.get(2)?,
        hostname: r.get(3)?,
        pathname: r.get(4)?,
        visitor_id: r.get::<_, i64>(5)? as u64,
        session_id: r.get::<_, i64>(6)? as u64,
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
        props_keys: from_json(&r.get::<_, String>(24)?),
        props_values: from_json(&r.get::<_, String>(25)?),
        revenue_micros: r.get(26)?,
        revenue_currency: r.get(27)?,
        interactive: r.get(28)?,
        engagement_ms: r.get(29)?,
        scroll_depth: r.get(30)?,
        entry_page: r.get(31)?,
        country_name: r.get(32)?,
        region_name: r.get(33)?,
        batch_id: r.get::<_, i64>(34)? as u64,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.with(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS footfall_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            )
            .map_err(query_err)?;
            let mut ran = Vec::new();
            for (version, name, sql) in MIGRATIONS {
                let applied: Option<u32> = conn
                    .query_row("SELECT version FROM footfall_migrations WHERE version = ?1", [version], |r| r.get(0))
                    .optional()
                    .map_err(query_err)?;
                if applied.is_some() {
                    continue;
                }
                let tx = conn.transaction().map_err(query_err)?;
                tx.execute_batch(sql).map_err(|e| StoreError::Migration {
                    name: (*name).to_string(),
                    message: e.to_string(),
                })?;
                tx.execute(
                    "INSERT INTO footfall_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                    params![version, name, Utc::now().timestamp()],
                )
                .map_err(query_err)?;
                tx.commit().map_err(query_err)?;
                ran.push((*name).to_string());
            }
            Ok(ran)
        })
        .await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(query_err)
        })
        .await
    }
    fn meta(&self) -> &dyn MetaStore {
        self
    }
}

#[async_trait]
impl EventWriter for SqliteStore {
    async fn insert_events(&self, events: Arc<[EventRow]>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.with(move |conn| {
            let tx = conn.transaction().map_err(query_err)?;
            {
                let sql = format!("INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35)");
                let mut stmt = tx.prepare_cached(&sql).map_err(query_err)?;
                for e in events.iter() {
                    stmt.execute(params![
                        e.site_id,
                        e.timestamp,
                        e.name,
                        e.hostname,
                        e.pathname,
                        e.visitor_id as i64,
                        e.session_id as i64,
                        e.referrer,
                        e.referrer_source,
                        e.channel,
                        e.utm_medium,
                        e.utm_source,
                        e.utm_campaign,
                        e.utm_content,
                        e.utm_term,
                        e.browser,
                        e.browser_version,
                        e.os,
                        e.os_version,
                        e.device,
                        e.country_code,
                        e.region,
                        e.city,
                        e.screen_width,
                        to_json(&e.props_keys),
                        to_json(&e.props_values),
                        e.revenue_micros,
                        e.revenue_currency,
                        e.interactive,
                        e.engagement_ms,
                        e.scroll_depth,
                        e.entry_page,
                        e.country_name,
                        e.region_name,
                        e.batch_id as i64,
                    ])
                    .map_err(query_err)?;
                }
            }
            tx.commit().map_err(query_err)
        })
        .await
    }
    async fn batch_written(&self, rows: &[EventRow]) -> Result<bool, StoreError> {
        let Some(probe) = rows.first() else {
            return Ok(true);
        };
        let (site, ts, batch) = (probe.site_id, probe.timestamp, probe.batch_id as i64);
        self.with(move |conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM events WHERE site_id = ?1 AND timestamp = ?2 AND batch_id = ?3)",
                params![site, ts, batch],
                |r| r.get::<_, bool>(0),
            )
            .map_err(query_err)
        })
        .await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn purge_events_before(&self, day: NaiveDate) -> Result<usize, StoreError> {
        let cutoff = day_start_ts(day);
        let days: usize = self
            .with(move |conn| {
                conn.query_row(
                    "SELECT COUNT(DISTINCT timestamp / 86400) FROM events WHERE timestamp < ?1",
                    [cutoff],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as usize)
                .map_err(query_err)
            })
            .await?;
        loop {
            let deleted = self
                .with(move |conn| {
                    conn.execute(
                        "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE timestamp < ?1 LIMIT ?2)",
                        params![cutoff, PURGE_BATCH_ROWS as i64],
                    )
                    .map_err(query_err)
                })
                .await?;
            if deleted < PURGE_BATCH_ROWS {
                break;
            }
            // Let queued inserts in between batches.
            tokio::task::yield_now().await;
        }
        // Visit rows go with the raw events they come from.
        self.with(move |conn| {
            for sql in [
                "DELETE FROM visits WHERE day < ?1",
                "DELETE FROM visit_days WHERE day < ?1",
            ] {
                conn.execute(sql, [cutoff / 86_400]).map_err(query_err)?;
            }
            Ok(())
        })
        .await?;
        Ok(days)
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
                "SELECT {EVENT_COLUMNS} FROM events WHERE site_id = ?1 AND timestamp >= ?2 AND timestamp < ?3 ORDER BY timestamp LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(query_err)?;
            let rows = stmt.query_map(params![site_id, from, to, limit], read_row).map_err(query_err)?;
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
                "SELECT {EVENT_COLUMNS} FROM events WHERE site_id = ?1 AND visitor_id = ?2 AND timestamp >= ?3 AND timestamp < ?4 ORDER BY timestamp"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(query_err)?;
            let rows = stmt
                .query_map(params![site_id, visitor_id as i64, from, to], read_row)
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
            let tx = conn.transaction().map_err(query_err)?;
            tx.execute(
                "DELETE FROM events WHERE site_id = ?1 AND visitor_id = ?2 AND timestamp >= ?3 AND timestamp < ?4",
                params![site_id, visitor_id as i64, from, to],
            )
            .map_err(query_err)?;
            tx.execute(
                "DELETE FROM visits WHERE site_id = ?1 AND visitor_id = ?2",
                params![site_id, visitor_id as i64],
            )
            .map_err(query_err)?;
            tx.commit().map_err(query_err)
        })
        .await
    }
    async fn delete_events(&self, site_id: u32, scope: &EventScope) -> Result<(), StoreError> {
        let scope = scope.clone();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(query_err)?;
            match &scope.pathnames {
                None => {
                    tx.execute(
                        "DELETE FROM events WHERE site_id = ?1 AND timestamp >= ?2 AND timestamp < ?3",
                        params![site_id, scope.from, scope.to],
                    )
                    .map_err(query_err)?;
                }
                Some(paths) => {
                    for chunk in paths.chunks(DELETE_CHUNK) {
                        let sql = format!(
                            "DELETE FROM events WHERE site_id = ?1 AND timestamp >= ?2 AND timestamp < ?3 AND pathname IN ({})",
                            vec!["?"; chunk.len()].join(", ")
                        );
                        let mut values: Vec<rusqlite::types::Value> = vec![
                            i64::from(site_id).into(),
                            i64::from(scope.from).into(),
                            i64::from(scope.to).into(),
                        ];
                        values.extend(chunk.iter().map(|p| p.clone().into()));
                        tx.execute(&sql, rusqlite::params_from_iter(values))
                            .map_err(query_err)?;
                    }
                }
            }
            if let Some((first, last)) = scope.visit_days {
                tx.execute(
                    "DELETE FROM visits WHERE site_id = ?1 AND day >= ?2 AND day <= ?3",
                    params![site_id, day_number(first), day_number(last)],
                )
                .map_err(query_err)?;
            }
            tx.commit().map_err(query_err)
        })
        .await
    }
    async fn delete_rollups(&self, site_id: u32, scope: &RollupScope) -> Result<(), StoreError> {
        let scope = scope.clone();
        self.with(move |conn| {
            let (from, to) = (day_number(scope.from), day_number(scope.to));
            let tx = conn.transaction().map_err(query_err)?;
            match &scope.values {
                None => {
                    tx.execute(
                        "DELETE FROM rollups WHERE site_id = ?1 AND day >= ?2 AND day <= ?3",
                        params![site_id, from, to],
                    )
                    .map_err(query_err)?;
                }
                Some((dimensions, values)) => {
                    for dimension in dimensions {
                        for chunk in values.chunks(DELETE_CHUNK) {
                            let sql = format!(
                                "DELETE FROM rollups WHERE site_id = ?1 AND day >= ?2 AND day <= ?3 AND dimension = ?4 AND value IN ({})",
                                vec!["?"; chunk.len()].join(", ")
                            );
                            let mut binds: Vec<rusqlite::types::Value> = vec![
                                i64::from(site_id).into(),
                                from.into(),
                                to.into(),
                                dimension.clone().into(),
                            ];
                            binds.extend(chunk.iter().map(|v| v.clone().into()));
                            tx.execute(&sql, rusqlite::params_from_iter(binds))
                                .map_err(query_err)?;
                        }
                    }
                }
            }
            tx.commit().map_err(query_err)
        })
        .await
    }
    async fn event_pathnames(&self, site_id: u32) -> Result<Vec<String>, StoreError> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare("SELECT DISTINCT pathname FROM events WHERE site_id = ?1 LIMIT ?2")
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
        self.with(move |conn| {
            conn.query_row(
                "SELECT MIN(timestamp) FROM events WHERE site_id = ?1",
                params![site_id],
                |row| row.get::<_, Option<u32>>(0),
            )
            .map_err(query_err)
        })
        .await
    }
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
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
            let rows = stmt
                .query_map(rusqlite::params_from_iter(values(&statement)), |r| {
                    let texts = (0..text_columns)
                        .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
                        .collect::<Result<Vec<_>, _>>()?;
                    let ints = (text_columns..text_columns + int_columns)
                        .map(|i| r.get::<_, Option<i64>>(i).map(Option::unwrap_or_default))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((texts, ints))
                })
                .map_err(query_err)?;
            let mut out = Vec::new();
            for row in rows {
                if out.len() == MAX_RESULT_ROWS {
                    return Err(StoreError::too_many_rows());
                }
                out.push(row.map_err(query_err)?);
            }
            Ok(out)
        })
        .await
    }
    async fn put_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(query_err)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO rollups (site_id, day, dimension, value, visitors, visits, pageviews, events, bounces, duration, revenue_micros, revenue_events) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    )
                    .map_err(query_err)?;
                for r in &rows {
                    stmt.execute(params![
                        r.site_id,
                        day_number(r.day),
                        r.dimension,
                        r.value,
                        r.visitors as i64,
                        r.visits as i64,
                        r.pageviews as i64,
                        r.events as i64,
                        r.bounces as i64,
                        r.duration as i64,
                        r.revenue_micros,
                        r.revenue_events as i64,
                    ])
                    .map_err(query_err)?;
                }
            }
            tx.commit().map_err(query_err)
        })
        .await
    }
    async fn rollup_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.days_listed("SELECT day FROM rollups WHERE site_id = ?1 AND dimension = '' AND day >= ?2 AND day <= ?3 ORDER BY day", site_id, from, to)
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
                    "SELECT day, value, visitors, visits, pageviews, events, bounces, duration, revenue_micros, revenue_events FROM rollups WHERE site_id = ?1 AND dimension = ?2 AND day >= ?3 AND day <= ?4",
                )
                .map_err(query_err)?;
            let rows = stmt
                .query_map(params![site_id, dimension, day_number(from), day_number(to)], |r| {
                    Ok(RollupRow {
                        site_id,
                        day: date_of(r.get(0)?),
                        dimension: dimension.clone(),
                        value: r.get(1)?,
                        visitors: r.get::<_, i64>(2)? as u64,
                        visits: r.get::<_, i64>(3)? as u64,
                        pageviews: r.get::<_, i64>(4)? as u64,
                        events: r.get::<_, i64>(5)? as u64,
                        bounces: r.get::<_, i64>(6)? as u64,
                        duration: r.get::<_, i64>(7)? as u64,
                        revenue_micros: r.get(8)?,
                        revenue_events: r.get::<_, i64>(9)? as u64,
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
                    "SELECT COUNT(DISTINCT day) FROM rollups WHERE day < ?1",
                    [day_number(day)],
                    |r| r.get(0),
                )
                .map_err(query_err)?;
            conn.execute("DELETE FROM rollups WHERE day < ?1", [day_number(day)])
                .map_err(query_err)?;
            Ok(days as usize)
        })
        .await
    }
    async fn delete_rollups_of(&self, site_id: u32) -> Result<(), StoreError> {
        self.with(move |conn| {
            conn.execute("DELETE FROM rollups WHERE site_id = ?1", [site_id])
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
            let tx = conn.transaction().map_err(query_err)?;
            tx.execute(
                "DELETE FROM visits WHERE site_id = ?1 AND day = ?2",
                params![site_id, day],
            )
            .map_err(query_err)?;
            tx.execute(&insert.sql, rusqlite::params_from_iter(values(&insert)))
                .map_err(query_err)?;
            tx.execute(
                "INSERT OR REPLACE INTO visit_days (site_id, day) VALUES (?1, ?2)",
                params![site_id, day],
            )
            .map_err(query_err)?;
            tx.commit().map_err(query_err)
        })
        .await
    }
    async fn visit_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.days_listed("SELECT day FROM visit_days WHERE site_id = ?1 AND day >= ?2 AND day <= ?3 ORDER BY day", site_id, from, to)
            .await
    }
}

impl SqliteStore {
    /// The days `sql` lists for a site within `[from, to]` (`rollup_days`, `visit_days`).
    async fn days_listed(
        &self,
        sql: &'static str,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        self.with(move |conn| {
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

/// A statement's binds as SQLite values.
fn values(statement: &Statement) -> Vec<rusqlite::types::Value> {
    statement
        .binds
        .iter()
        .map(|b| match b {
            Bind::Int(n) => rusqlite::types::Value::Integer(*n),
            Bind::Text(s) => rusqlite::types::Value::Text(s.clone()),
        })
        .collect()
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, domain, timezone FROM sites ORDER BY id")
                .map_err(query_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Site {
                        id: r.get(0)?,
                        domain: r.get(1)?,
                        timezone: r.get(2)?,
                    })
                })
                .map_err(query_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_err)
        })
        .await
    }
    async fn add_site(&self, domain: &str, timezone: &str) -> Result<Site, StoreError> {
        let (domain, timezone) = (domain.to_string(), timezone.to_string());
        self.with(move |conn| {
            let result = conn.execute(
                // Never the id of a deleted site (its marker record keeps it).
                "INSERT INTO sites (id, domain, timezone, created_at) VALUES ((SELECT MAX(n) FROM (SELECT COALESCE(MAX(id), 0) AS n FROM sites UNION ALL SELECT COALESCE(MAX(CAST(id AS INTEGER)), 0) FROM records WHERE kind = 'site-deleted')) + 1, ?1, ?2, ?3)",
                params![domain, timezone, Utc::now().timestamp()],
            );
            match result {
                Ok(_) => Ok(Site {
                    id: u32::try_from(conn.last_insert_rowid())
                        .map_err(|e| StoreError::Query(e.to_string()))?,
                    domain,
                    timezone,
                }),
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::SiteExists(domain))
                }
                Err(e) => Err(query_err(e)),
            }
        })
        .await
    }
    async fn update_site(&self, site: &Site) -> Result<bool, StoreError> {
        let site = site.clone();
        self.with(move |conn| {
            match conn.execute(
                "UPDATE sites SET domain = ?1, timezone = ?2 WHERE id = ?3",
                params![site.domain, site.timezone, site.id],
            ) {
                Ok(n) => Ok(n > 0),
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::SiteExists(site.domain))
                }
                Err(e) => Err(query_err(e)),
            }
        })
        .await
    }
    async fn delete_site(&self, id: u32) -> Result<bool, StoreError> {
        self.with(move |conn| {
            let tx = conn.transaction().map_err(query_err)?;
            let domain: Option<String> = tx
                .query_row("SELECT domain FROM sites WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(query_err)?;
            let Some(domain) = domain else {
                return Ok(false);
            };
            tx.execute("DELETE FROM sites WHERE id = ?1", [id])
                .map_err(query_err)?;
            tx.execute("DELETE FROM api_keys WHERE site_id = ?1", [id])
                .map_err(query_err)?;
            tx.execute(
                "INSERT OR REPLACE INTO records (kind, id, body, updated_at) VALUES ('site-deleted', ?1, ?2, ?3)",
                params![id.to_string(), domain, Utc::now().timestamp()],
            )
            .map_err(query_err)?;
            tx.commit().map_err(query_err)?;
            Ok(true)
        })
        .await
    }
    async fn salts(&self) -> Result<Vec<(NaiveDate, Salt)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT day, salt FROM salts ORDER BY day")
                .map_err(query_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .map_err(query_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (day, bytes) = row.map_err(query_err)?;
                let (Ok(bytes), Some(date)) = (
                    <[u8; 32]>::try_from(bytes.as_slice()),
                    NaiveDate::default()
                        .checked_add_days(chrono::Days::new(u64::try_from(day).unwrap_or(0))),
                ) else {
                    continue;
                };
                out.push((date, Salt(bytes)));
            }
            Ok(out)
        })
        .await
    }
    async fn put_salt(&self, day: NaiveDate, salt: &Salt) -> Result<(), StoreError> {
        let bytes = salt.0.to_vec();
        self.with(move |conn| {
            // The first salt written for a day wins.
            conn.execute(
                "INSERT OR IGNORE INTO salts (day, salt, created_at) VALUES (?1, ?2, ?3)",
                params![day_number(day), bytes, Utc::now().timestamp()],
            )
            .map(|_| ())
            .map_err(query_err)
        })
        .await
    }
    async fn delete_salts_before(&self, day: NaiveDate) -> Result<(), StoreError> {
        self.with(move |conn| {
            let deleted = conn
                .execute("DELETE FROM salts WHERE day < ?1", [day_number(day)])
                .map_err(query_err)?;
            if deleted > 0 {
                // secure_delete zeroed the rows in the pages; the WAL still holds copies of
                // them, so move everything into the database file and empty the log. A reader
                // in the middle of a read makes the checkpoint answer "busy" (after the busy
                // timeout): try again until it completes.
                for attempt in 1..=CHECKPOINT_ATTEMPTS {
                    let busy: i64 = conn
                        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                        .map_err(query_err)?;
                    if busy == 0 {
                        return Ok(());
                    }
                    tracing::warn!(attempt, "a reader holds the WAL; the salt checkpoint waits");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                return Err(StoreError::Query(
                    "deleted salts are still in the WAL: a reader held it through every checkpoint"
                        .into(),
                ));
            }
            Ok(())
        })
        .await
    }
    async fn add_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, site_id, hash, created_at, revoked) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.id, key.site_id, key.hash, key.created_at, key.revoked],
            )
            .map(|_| ())
            .map_err(query_err)
        })
        .await
    }
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, site_id, hash, created_at, revoked FROM api_keys ORDER BY created_at, id")
                .map_err(query_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(ApiKey {
                        id: r.get(0)?,
                        site_id: r.get(1)?,
                        hash: r.get(2)?,
                        created_at: r.get(3)?,
                        revoked: r.get(4)?,
                    })
                })
                .map_err(query_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_err)
        })
        .await
    }
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            conn.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?1", [id])
                .map(|n| n > 0)
                .map_err(query_err)
        })
        .await
    }
    async fn records(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        let kind = kind.to_string();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT id, body FROM records WHERE kind = ?1 ORDER BY id")
                .map_err(query_err)?;
            let rows = stmt
                .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(query_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(query_err)
        })
        .await
    }
    async fn record(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.with(move |conn| {
            conn.prepare_cached("SELECT body FROM records WHERE kind = ?1 AND id = ?2")
                .and_then(|mut stmt| stmt.query_row([kind, id], |r| r.get(0)).optional())
                .map_err(query_err)
        })
        .await
    }
    async fn put_record(&self, kind: &str, id: &str, body: &str) -> Result<(), StoreError> {
        let (kind, id, body) = (kind.to_string(), id.to_string(), body.to_string());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO records (kind, id, body, updated_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![kind, id, body, Utc::now().timestamp()],
            )
            .map(|_| ())
            .map_err(query_err)
        })
        .await
    }
    async fn delete_record(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.with(move |conn| {
            conn.execute(
                "DELETE FROM records WHERE kind = ?1 AND id = ?2",
                [kind, id],
            )
            .map(|n| n > 0)
            .map_err(query_err)
        })
        .await
    }
    async fn compact_records(&self) -> Result<usize, StoreError> {
        // Records are replaced and deleted in place, with `secure_delete` on.
        Ok(0)
    }
}
