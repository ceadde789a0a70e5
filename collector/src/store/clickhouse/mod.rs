//! The ClickHouse store: raw events in a `MergeTree` partitioned by UTC day, sites, and the
//! shared daily salts, over ClickHouse's HTTP interface with the `clickhouse` crate.
//!
//! Rows travel as `RowBinary` (validation off, which ClickHouse 18.16 needs), so no value is
//! ever part of a query's text; the few values in queries are bound, never formatted in.
//! Schema files under `schema/clickhouse/` are embedded and applied in order; the
//! `footfall_migrations` table records which ones ran. Retention and salt deletion drop whole
//! partitions, which removes their files.

mod meta;
mod partitions;
mod samples;
mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use clickhouse::Client;
use clickhouse::sql::Identifier;
use serde::{Deserialize, Serialize};

use super::Salt;
use super::statement::{Bind, Dialect, Statement};
use super::{
    ApiKey, Deadline, EventRow, EventScope, EventStore, EventWriter, MAX_RESULT_ROWS, MetaStore,
    RollupRow, RollupScope, Site, Store, StoreError, runs_by_bytes,
};
use crate::config::ClickHouseConfig;
use meta::*;
use partitions::*;
use schema::*;
pub use schema::{MIGRATIONS, cluster_statements, statements};

/// How long past a query's deadline the client waits for the server to report the timeout.
/// How long one `ON CLUSTER` migration statement waits for every host, and how many times it
/// is sent before the migration fails.
const DDL_TASK_TIMEOUT_SECS: &str = "60";
const DDL_ATTEMPTS: u32 = 3;
const QUERY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
const SQL_READ_EVENTS: &str = "SELECT site_id, toUInt32(timestamp) AS timestamp, name, hostname, pathname, visitor_id, session_id, referrer, referrer_source, channel, utm_medium, utm_source, utm_campaign, utm_content, utm_term, browser, browser_version, os, os_version, device, country_code, region, city, screen_width, props_keys, props_values, revenue_micros, revenue_currency, interactive, engagement_ms, scroll_depth, entry_page, country_name, region_name, batch_id FROM events WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) ORDER BY timestamp LIMIT ?";
/// A visitor's events of a site in a range (a data-subject request).
const SQL_VISITOR_EVENTS: &str = "SELECT site_id, toUInt32(timestamp) AS timestamp, name, hostname, pathname, visitor_id, session_id, referrer, referrer_source, channel, utm_medium, utm_source, utm_campaign, utm_content, utm_term, browser, browser_version, os, os_version, device, country_code, region, city, screen_width, props_keys, props_values, revenue_micros, revenue_currency, interactive, engagement_ms, scroll_depth, entry_page, country_name, region_name, batch_id FROM events WHERE site_id = ? AND visitor_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) ORDER BY timestamp";
/// How many of them are left while their deletion runs.
const SQL_VISITOR_EVENTS_LEFT: &str = "SELECT count() FROM events WHERE site_id = ? AND visitor_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?)";
/// Deletes them (a mutation), and the visitor's visit rows.
const SQL_ERASE_VISITOR: &str = "ALTER TABLE ? DELETE WHERE site_id = ? AND visitor_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?)";
const SQL_CLUSTER_ERASE_VISITOR: &str = "ALTER TABLE ? ON CLUSTER ? DELETE WHERE site_id = ? AND visitor_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?)";
const SQL_ERASE_VISITOR_VISITS: &str = "ALTER TABLE ? DELETE WHERE site_id = ? AND visitor_id = ?";
const SQL_CLUSTER_ERASE_VISITOR_VISITS: &str =
    "ALTER TABLE ? ON CLUSTER ? DELETE WHERE site_id = ? AND visitor_id = ?";
/// How long an erasure waits for its mutation.
// A site's deletions (see `delete_events`, `delete_rollups`): the mutation on one server and
// on a cluster (the local table, `ON CLUSTER`), and the count that says it has finished.
const SQL_DELETE_SITE_EVENTS: &str = "ALTER TABLE ? DELETE WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?)";
const SQL_CLUSTER_DELETE_SITE_EVENTS: &str = "ALTER TABLE ? ON CLUSTER ? DELETE WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?)";
const SQL_COUNT_SITE_EVENTS: &str = "SELECT count() FROM events WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?)";
const SQL_DELETE_SITE_EVENT_PATHS: &str = "ALTER TABLE ? DELETE WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) AND has(?, pathname)";
const SQL_CLUSTER_DELETE_SITE_EVENT_PATHS: &str = "ALTER TABLE ? ON CLUSTER ? DELETE WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) AND has(?, pathname)";
const SQL_COUNT_SITE_EVENT_PATHS: &str = "SELECT count() FROM events WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) AND has(?, pathname)";
const SQL_DELETE_SITE_DAYS: &str =
    "ALTER TABLE ? DELETE WHERE site_id = ? AND day >= toDate(?) AND day <= toDate(?)";
const SQL_CLUSTER_DELETE_SITE_DAYS: &str =
    "ALTER TABLE ? ON CLUSTER ? DELETE WHERE site_id = ? AND day >= toDate(?) AND day <= toDate(?)";
/// Rows of a deleted day range still there; only those written before the deletion began
/// (`version` is the writer's clock in microseconds): the rollup job may rightly compute a
/// purged day again (a closed day within raw retention gets its totals, zero if it has no
/// events), and those rows are new, not left over.
const SQL_COUNT_SITE_DAYS: &str = "SELECT count() FROM ? WHERE site_id = ? AND day >= toDate(?) AND day <= toDate(?) AND version < ?";
const SQL_DELETE_SITE_DAY_VALUES: &str = "ALTER TABLE ? DELETE WHERE site_id = ? AND day >= toDate(?) AND day <= toDate(?) AND dimension = ? AND has(?, value)";
const SQL_CLUSTER_DELETE_SITE_DAY_VALUES: &str = "ALTER TABLE ? ON CLUSTER ? DELETE WHERE site_id = ? AND day >= toDate(?) AND day <= toDate(?) AND dimension = ? AND has(?, value)";
const SQL_COUNT_SITE_DAY_VALUES: &str = "SELECT count() FROM rollups WHERE site_id = ? AND day >= toDate(?) AND day <= toDate(?) AND dimension = ? AND has(?, value) AND version < ?";
const SQL_EVENT_PATHNAMES: &str = "SELECT DISTINCT pathname FROM events WHERE site_id = ? LIMIT ?";
/// A rollup row's version: the writer's clock in microseconds. Taken when a deletion begins,
/// it is the version below which rows were written before it (visit rows carry the same
/// clock, from `query::rollup`).
fn clock_version() -> u64 {
    Utc::now().timestamp_micros().max(1) as u64
}
/// The longest list of values one deleting mutation carries, in bytes (`max_query_size` is
/// 256 KiB).
const MUTATION_VALUES_BYTES: usize = 100_000;
/// How long a deletion waits for its mutation to finish before it says it goes on in the
/// background.
const ERASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The same on a cluster, where every replica runs the mutation from its replication queue: a
/// full test run on 2 cores once saw a replica take longer than 120 s.
const CLUSTER_ERASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

// `min` of no rows is 0 in ClickHouse, so the count tells "no events" apart.
const SQL_BATCH_WRITTEN: &str =
    "SELECT count() FROM events WHERE site_id = ? AND timestamp = toDateTime(?) AND batch_id = ?";
const SQL_CLUSTER_BATCH_WRITTEN: &str = "SELECT count() FROM events WHERE timestamp >= toDateTime(?) AND timestamp <= toDateTime(?) AND has(?, site_id) AND has(?, batch_id)";
const SQL_EARLIEST_EVENT: &str =
    "SELECT toUInt32(min(timestamp)) AS first, count() AS n FROM events WHERE site_id = ?";
const SQL_ROLLUP_DAYS: &str = "SELECT DISTINCT toUInt16(day) FROM rollups WHERE site_id = ? AND dimension = '' AND day >= toDate(?) AND day <= toDate(?) ORDER BY toUInt16(day)";
/// Deletes an import's rollups (a mutation: ClickHouse finishes it in the background).
const SQL_DELETE_ROLLUPS_OF: &str = "ALTER TABLE ? DELETE WHERE site_id = ?";
const SQL_CLUSTER_DELETE_ROLLUPS_OF: &str = "ALTER TABLE ? ON CLUSTER ? DELETE WHERE site_id = ?";
const SQL_READ_ROLLUPS: &str = "SELECT site_id, toUInt16(day) AS d, dimension, value, argMax(visitors, version) AS r_visitors, argMax(visits, version) AS r_visits, argMax(pageviews, version) AS r_pageviews, argMax(events, version) AS r_events, argMax(bounces, version) AS r_bounces, argMax(duration, version) AS r_duration, argMax(revenue_micros, version) AS r_revenue_micros, argMax(revenue_events, version) AS r_revenue_events, max(version) AS r_version FROM rollups WHERE site_id = ? AND dimension = ? AND day >= toDate(?) AND day <= toDate(?) GROUP BY site_id, day, dimension, value";

/// Records that a day's visit rows of this version are all written.
const SQL_MARK_VISIT_DAY: &str =
    "INSERT INTO visit_days (site_id, day, version) SELECT ?, toDate(?), ?";
/// Merges a day's visit rows into one part (a single server; see `visit_days_written`).
const SQL_MERGE_VISIT_DAY: &str = "OPTIMIZE TABLE visits PARTITION ? FINAL";
const SQL_VISIT_DAYS: &str = "SELECT DISTINCT toUInt16(day) FROM visit_days WHERE site_id = ? AND day >= toDate(?) AND day <= toDate(?) ORDER BY toUInt16(day)";

/// What `ping` asks every node.
const SQL_PING: &str = "SELECT 1";

/// A ClickHouse database holding one Footfall deployment.
pub struct ClickHouseStore {
    /// The nodes in order of preference, each as a server-wide and a database client.
    nodes: Vec<Node>,
    /// The node in use: the first that answered.
    current: AtomicUsize,
    database: String,
    cluster: Option<String>,
    /// The last record or site version written (microseconds; see `next_version`).
    version: std::sync::atomic::AtomicU64,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
struct RollupRecord {
    site_id: u32,
    /// Days since the epoch (ClickHouse `Date`).
    day: u16,
    dimension: String,
    value: String,
    visitors: u64,
    visits: u64,
    pageviews: u64,
    events: u64,
    bounces: u64,
    duration: u64,
    revenue_micros: i64,
    revenue_events: u64,
    version: u64,
}

fn unavailable(e: clickhouse::error::Error) -> StoreError {
    match e {
        clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Query(other.to_string()),
    }
}

/// A failed statement's error: a timeout or result-size limit as such, else as it came.
fn limit_error(message: String, deadline: Deadline) -> StoreError {
    let has = |codes: &[&str]| codes.iter().any(|code| message.contains(code));
    if has(&["Code: 159,", "Code: 159.", "(TIMEOUT_EXCEEDED)"]) {
        deadline.exceeded()
    } else if has(&[
        "Code: 158,",
        "Code: 158.",
        "Code: 396,",
        "Code: 396.",
        "(TOO_MANY_ROWS)",
        "(TOO_MANY_ROWS_OR_BYTES)",
    ]) {
        StoreError::too_many_rows()
    } else {
        StoreError::Query(message)
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// A ClickHouse `Date` (days since the epoch) as a date.
fn date_of(days: u16) -> NaiveDate {
    epoch() + chrono::Days::new(u64::from(days))
}

fn day_number(day: NaiveDate) -> u16 {
    u16::try_from((day - epoch()).num_days()).unwrap_or(0)
}

struct Node {
    url: String,
    server: Client,
    db: Client,
}

impl ClickHouseStore {
    pub fn new(config: &ClickHouseConfig) -> Self {
        let nodes = config
            .urls()
            .into_iter()
            .map(|url| {
                let mut server = Client::default()
                    .with_url(url)
                    .with_user(&config.user)
                    .with_password(&config.password)
                    .with_validation(false);
                if config.cluster.is_some() {
                    // An insert through a Distributed table is answered once every shard has
                    // its rows, so a 200 means stored and an error means retry (the
                    // replicated tables drop a block they already hold).
                    server = server
                        .with_setting("insert_distributed_sync", "1")
                        // A subquery over a Distributed table inside another runs once, on
                        // the node that asked, and its result goes to every shard.
                        .with_setting("distributed_product_mode", "global")
                        // Writes and reads go to the first healthy replica of each shard, in
                        // the order of remote_servers, so a collector reads what it has just
                        // written instead of a replica still fetching it.
                        .with_setting("load_balancing", "in_order")
                        // Each shard sends its groups in buckets that the asking node merges
                        // one at a time, instead of whole: a day's visit rows at 100 million
                        // events a month went over a 2 GB limit there without it, and took
                        // 3.5 s with it (current releases do this by default).
                        .with_setting("distributed_aggregation_memory_efficient", "1");
                }
                let db = server.clone().with_database(&config.database);
                Node {
                    url: url.to_string(),
                    server,
                    db,
                }
            })
            .collect();
        Self {
            nodes,
            current: AtomicUsize::new(0),
            database: config.database.clone(),
            cluster: config.cluster.clone(),
            version: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn node(&self) -> &Node {
        &self.nodes[self.current.load(Ordering::Relaxed) % self.nodes.len()]
    }

    /// A deleting mutation of `table`: `single` on one server, `cluster` (its local table,
    /// `ON CLUSTER`) on a cluster; the condition's values still to bind.
    fn delete_where(
        &self,
        table: &str,
        single: &'static str,
        cluster: &'static str,
    ) -> clickhouse::query::Query {
        let local = self.local_table(table);
        match &self.cluster {
            None => self.db().query(single).bind(Identifier(&local)),
            Some(c) => self
                .db()
                .query(cluster)
                .bind(Identifier(&local))
                .bind(Identifier(c)),
        }
    }

    /// Runs a mutation or partition drop built by `build`. On a cluster it is `ON CLUSTER`:
    /// each host's DDL worker runs it, and 18.16's worker sometimes leaves a task unclaimed
    /// until the 180 s default timeout ("0 of them are currently active"). There the statement
    /// waits 60 s and is sent again, as a new task, up to three times: deleting rows or a
    /// partition a second time changes nothing.
    async fn execute_everywhere(
        &self,
        what: &str,
        build: impl Fn() -> clickhouse::query::Query,
    ) -> Result<(), StoreError> {
        if self.cluster.is_none() {
            return build().execute().await.map_err(|e| self.failed(e));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let query = build().with_setting("distributed_ddl_task_timeout", DDL_TASK_TIMEOUT_SECS);
            match query.execute().await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < DDL_ATTEMPTS && e.to_string().contains("Code: 159") => {
                    tracing::warn!(what, attempt, "distributed DDL timed out; sending it again");
                }
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// Waits until `count` (a `SELECT count()`) answers 0: a deleting mutation has finished.
    /// Rows that may be written again while it runs are counted only up to the
    /// [`clock_version`] taken when the deletion began.
    async fn wait_gone(
        &self,
        what: &str,
        count: impl Fn() -> clickhouse::query::Query,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        loop {
            let left: u64 = count().fetch_one().await.map_err(|e| self.failed(e))?;
            if left == 0 {
                return Ok(());
            }
            let limit = if self.cluster.is_some() {
                CLUSTER_ERASE_TIMEOUT
            } else {
                ERASE_TIMEOUT
            };
            if started.elapsed() > limit {
                return Err(StoreError::Query(format!(
                    "{left} {what} are still being deleted after {} s; ClickHouse finishes the deletion in the background",
                    limit.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// One statement of a migration. Every statement is idempotent (`IF NOT EXISTS`, or a
    /// column that may already be there), so an `ON CLUSTER` statement whose distributed task
    /// was not finished by every host in time (code 159: a host restarting, or one whose DDL
    /// worker missed the task) is sent again, as a new task, a few times before giving up.
    async fn run_migration_statement(
        &self,
        name: &str,
        client: &clickhouse::Client,
        stmt: &str,
    ) -> Result<(), StoreError> {
        let distributed = self.cluster.is_some() && stmt.contains(" ON CLUSTER ");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = if distributed {
                client
                    .clone()
                    .with_setting("distributed_ddl_task_timeout", DDL_TASK_TIMEOUT_SECS)
            } else {
                client.clone()
            };
            let message = match client.query(stmt).execute().await {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            // 18.16 has no ADD COLUMN IF NOT EXISTS: a column added by an interrupted earlier
            // run of this migration is not an error.
            if stmt.contains("ADD COLUMN") && message.contains("already exists") {
                return Ok(());
            }
            if distributed && message.contains("Code: 159") && attempt < DDL_ATTEMPTS {
                tracing::warn!(
                    migration = name,
                    attempt,
                    "distributed DDL timed out; sending it again"
                );
                continue;
            }
            return Err(StoreError::Migration {
                name: name.to_string(),
                message,
            });
        }
    }

    fn server(&self) -> &Client {
        &self.node().server
    }

    fn db(&self) -> &Client {
        &self.node().db
    }

    /// The node in use now.
    pub fn current_url(&self) -> &str {
        &self.node().url
    }

    /// Converts a client error; a node that cannot be reached hands over to the next one.
    fn failed(&self, e: clickhouse::error::Error) -> StoreError {
        let error = unavailable(e);
        if matches!(error, StoreError::Unavailable(_)) && self.nodes.len() > 1 {
            let at = self.current.load(Ordering::Relaxed);
            let next = (at + 1) % self.nodes.len();
            if self
                .current
                .compare_exchange(at, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                tracing::warn!(
                    from = %self.nodes[at % self.nodes.len()].url,
                    to = %self.nodes[next].url,
                    %error,
                    "ClickHouse node unreachable; using the next one"
                );
            }
        }
        error
    }

    /// `table` as it holds rows on this node: `<table>_local` for a sharded table on a
    /// cluster.
    fn local_table(&self, table: &str) -> String {
        match (&self.cluster, sharding_key(table)) {
            (Some(_), Some(_)) => format!("{table}_local"),
            _ => table.to_string(),
        }
    }

    /// A planned statement with its values bound by the client.
    fn bound(&self, statement: &Statement) -> clickhouse::query::Query {
        let mut query = self.db().query(&statement.sql);
        for bind in &statement.binds {
            query = match bind {
                Bind::Int(n) => query.bind(*n),
                Bind::Text(s) => query.bind(s.as_str()),
            };
        }
        query
    }

    /// A planned statement as the server receives it, its values bound.
    pub fn render(&self, statement: &Statement) -> String {
        self.bound(statement).sql_display().to_string()
    }

    /// A version higher than every one this store wrote before, and than the clock's.
    fn next_version(&self) -> u64 {
        let now = Utc::now().timestamp_micros().max(2) as u64;
        let last = self
            .version
            .fetch_max(now, std::sync::atomic::Ordering::SeqCst);
        if last >= now {
            self.version
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1
        } else {
            now
        }
    }

    /// Inserts one row into `table`.
    async fn insert_row<R>(&self, table: &str, row: &R) -> Result<(), StoreError>
    where
        R: clickhouse::RowOwned + clickhouse::RowWrite + Sync,
    {
        let mut insert = self
            .db()
            .insert::<R>(table)
            .await
            .map_err(|e| self.failed(e))?;
        insert.write(row).await.map_err(|e| self.failed(e))?;
        insert.end().await.map_err(|e| self.failed(e))
    }
}

#[async_trait]
impl Store for ClickHouseStore {
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        // Start on the first node that answers.
        self.ping().await?;
        // Applied migrations, if the table is there yet: on a cluster, the checks run only
        // when something is left to create.
        let applied: Vec<u32> = self
            .db()
            .query(SQL_APPLIED_MIGRATIONS)
            .fetch_all()
            .await
            .unwrap_or_default();
        if MIGRATIONS.iter().all(|(v, _, _)| applied.contains(v)) {
            return Ok(Vec::new());
        }
        if let Some(cluster) = &self.cluster {
            self.check_cluster(cluster).await?;
        }
        let setup = self.setup_statements(self.cluster.as_deref());
        for (i, stmt) in setup.iter().enumerate() {
            // The database first, on the server; then the migrations table inside it.
            let client = if i == 0 { self.server() } else { self.db() };
            self.run_migration_statement("setup", client, stmt).await?;
        }
        let applied: Vec<u32> = self
            .db()
            .query(SQL_APPLIED_MIGRATIONS)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        let mut ran = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let stmts: Vec<String> = match &self.cluster {
                None => statements(sql),
                Some(c) => statements(sql)
                    .iter()
                    .flat_map(|s| cluster_statements(s, c, &self.database))
                    .collect(),
            };
            for stmt in stmts {
                // A sharded table's local part is altered on one node of each shard; when the
                // configured nodes do not reach every shard, `ON CLUSTER` as before.
                let (stmt, targets) = match &self.cluster {
                    Some(cluster) if stmt.starts_with("ALTER TABLE ") && is_local_alter(&stmt) => {
                        match self.node_per_shard(cluster).await {
                            Ok(nodes) => (stmt, nodes),
                            Err(reason) => {
                                tracing::warn!(%reason, "altering a sharded table ON CLUSTER");
                                (on_cluster(&stmt, cluster), vec![self.db()])
                            }
                        }
                    }
                    _ => (stmt, vec![self.db()]),
                };
                for client in targets {
                    self.run_migration_statement(name, client, &stmt).await?;
                }
            }
            let row = MigrationRow {
                version: *version,
                name: (*name).to_string(),
                applied_at: Utc::now().timestamp() as u32,
            };
            self.insert_row("footfall_migrations", &row).await?;
            ran.push((*name).to_string());
        }
        Ok(ran)
    }
    /// Asks the nodes in order of preference and uses the first that answers.
    async fn ping(&self) -> Result<(), StoreError> {
        let mut first_error = None;
        for (i, node) in self.nodes.iter().enumerate() {
            match node.server.query(SQL_PING).fetch_one::<u8>().await {
                Ok(_) => {
                    let was = self.current.swap(i, Ordering::Relaxed);
                    if was != i {
                        tracing::info!(url = %node.url, "using ClickHouse node");
                    }
                    return Ok(());
                }
                Err(e) => {
                    first_error.get_or_insert(unavailable(e));
                }
            }
        }
        Err(first_error.unwrap_or_else(|| StoreError::Unavailable("no ClickHouse URL".into())))
    }
    fn meta(&self) -> &dyn MetaStore {
        self
    }
}

#[async_trait]
impl EventWriter for ClickHouseStore {
    async fn insert_events(&self, events: Arc<[EventRow]>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut insert = self
            .db()
            .insert::<EventRow>("events")
            .await
            .map_err(|e| self.failed(e))?;
        for event in events.iter() {
            insert.write(event).await.map_err(|e| self.failed(e))?;
        }
        insert.end().await.map_err(|e| self.failed(e))
    }
    async fn batch_written(&self, rows: &[EventRow]) -> Result<bool, StoreError> {
        let Some(probe) = rows.first() else {
            return Ok(true);
        };
        if self.cluster.is_some() {
            // Each shard took its part of the write, or did not: count them all.
            let mut ids: Vec<u64> = rows.iter().map(|r| r.batch_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut sites: Vec<u32> = rows.iter().map(|r| r.site_id).collect();
            sites.sort_unstable();
            sites.dedup();
            let from = rows.iter().map(|r| r.timestamp).min().unwrap_or(0);
            let to = rows.iter().map(|r| r.timestamp).max().unwrap_or(0);
            let n: u64 = self
                .db()
                .query(SQL_CLUSTER_BATCH_WRITTEN)
                .bind(from)
                .bind(to)
                .bind(sites)
                .bind(ids)
                .fetch_one()
                .await
                .map_err(|e| self.failed(e))?;
            return Ok(n >= rows.len() as u64);
        }
        let n: u64 = self
            .db()
            .query(SQL_BATCH_WRITTEN)
            .bind(probe.site_id)
            .bind(probe.timestamp)
            .bind(probe.batch_id)
            .fetch_one()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(n > 0)
    }
}

#[async_trait]
impl EventStore for ClickHouseStore {
    async fn purge_events_before(&self, day: NaiveDate) -> Result<usize, StoreError> {
        let dropped = self.drop_days_before("events", day).await?;
        // Visit rows go with the raw events they come from.
        self.drop_days_before("visits", day).await?;
        self.drop_days_before("visit_days", day).await?;
        Ok(dropped)
    }
    async fn read_events(
        &self,
        site_id: u32,
        from: u32,
        to: u32,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.db()
            .query(SQL_READ_EVENTS)
            .bind(site_id)
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn visitor_events(
        &self,
        site_id: u32,
        visitor_id: u64,
        from: u32,
        to: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.db()
            .query(SQL_VISITOR_EVENTS)
            .bind(site_id)
            .bind(visitor_id)
            .bind(from)
            .bind(to)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn erase_visitor(
        &self,
        site_id: u32,
        visitor_id: u64,
        from: u32,
        to: u32,
    ) -> Result<(), StoreError> {
        let (events, visits) = (self.local_table("events"), self.local_table("visits"));
        self.execute_everywhere("a visitor's events", || {
            match &self.cluster {
                None => self.db().query(SQL_ERASE_VISITOR).bind(Identifier(&events)),
                Some(c) => self
                    .db()
                    .query(SQL_CLUSTER_ERASE_VISITOR)
                    .bind(Identifier(&events))
                    .bind(Identifier(c)),
            }
            .bind(site_id)
            .bind(visitor_id)
            .bind(from)
            .bind(to)
        })
        .await?;
        self.execute_everywhere("a visitor's visit rows", || {
            match &self.cluster {
                None => self
                    .db()
                    .query(SQL_ERASE_VISITOR_VISITS)
                    .bind(Identifier(&visits)),
                Some(c) => self
                    .db()
                    .query(SQL_CLUSTER_ERASE_VISITOR_VISITS)
                    .bind(Identifier(&visits))
                    .bind(Identifier(c)),
            }
            .bind(site_id)
            .bind(visitor_id)
        })
        .await?;
        // Mutations finish in the background: the answer waits until the events are gone.
        self.wait_gone("events", || {
            self.db()
                .query(SQL_VISITOR_EVENTS_LEFT)
                .bind(site_id)
                .bind(visitor_id)
                .bind(from)
                .bind(to)
        })
        .await
    }
    async fn delete_events(&self, site_id: u32, scope: &EventScope) -> Result<(), StoreError> {
        let began = clock_version();
        let runs: Vec<Option<&[String]>> = match &scope.pathnames {
            None => vec![None],
            Some(paths) => runs_by_bytes(paths, MUTATION_VALUES_BYTES)
                .into_iter()
                .map(Some)
                .collect(),
        };
        let select = |q: clickhouse::query::Query, run: Option<&[String]>| {
            let q = q.bind(site_id).bind(scope.from).bind(scope.to);
            match run {
                Some(paths) => q.bind(paths),
                None => q,
            }
        };
        for run in &runs {
            self.execute_everywhere("events", || {
                let mutation = match run {
                    None => self.delete_where(
                        "events",
                        SQL_DELETE_SITE_EVENTS,
                        SQL_CLUSTER_DELETE_SITE_EVENTS,
                    ),
                    Some(_) => self.delete_where(
                        "events",
                        SQL_DELETE_SITE_EVENT_PATHS,
                        SQL_CLUSTER_DELETE_SITE_EVENT_PATHS,
                    ),
                };
                select(mutation, *run)
            })
            .await?;
        }
        if let Some((first, last)) = scope.visit_days {
            let days = |q: clickhouse::query::Query| {
                q.bind(site_id)
                    .bind(first.to_string())
                    .bind(last.to_string())
            };
            self.execute_everywhere("visit rows", || {
                days(self.delete_where(
                    "visits",
                    SQL_DELETE_SITE_DAYS,
                    SQL_CLUSTER_DELETE_SITE_DAYS,
                ))
            })
            .await?;
            self.wait_gone("visit rows", || {
                days(
                    self.db()
                        .query(SQL_COUNT_SITE_DAYS)
                        .bind(Identifier("visits")),
                )
                .bind(began)
            })
            .await?;
        }
        for run in &runs {
            self.wait_gone("events", || match run {
                None => select(self.db().query(SQL_COUNT_SITE_EVENTS), None),
                Some(_) => select(self.db().query(SQL_COUNT_SITE_EVENT_PATHS), *run),
            })
            .await?;
        }
        Ok(())
    }
    async fn delete_rollups(&self, site_id: u32, scope: &RollupScope) -> Result<(), StoreError> {
        let began = clock_version();
        let days = |q: clickhouse::query::Query| {
            q.bind(site_id)
                .bind(scope.from.to_string())
                .bind(scope.to.to_string())
        };
        match &scope.values {
            None => {
                self.execute_everywhere("rollups", || {
                    days(self.delete_where(
                        "rollups",
                        SQL_DELETE_SITE_DAYS,
                        SQL_CLUSTER_DELETE_SITE_DAYS,
                    ))
                })
                .await?;
                self.wait_gone("rollups", || {
                    days(
                        self.db()
                            .query(SQL_COUNT_SITE_DAYS)
                            .bind(Identifier("rollups")),
                    )
                    .bind(began)
                })
                .await
            }
            Some((dimensions, values)) => {
                let runs = runs_by_bytes(values, MUTATION_VALUES_BYTES);
                for dimension in dimensions {
                    for run in &runs {
                        self.execute_everywhere("rollups", || {
                            days(self.delete_where(
                                "rollups",
                                SQL_DELETE_SITE_DAY_VALUES,
                                SQL_CLUSTER_DELETE_SITE_DAY_VALUES,
                            ))
                            .bind(dimension.as_str())
                            .bind(*run)
                        })
                        .await?;
                    }
                }
                for dimension in dimensions {
                    for run in &runs {
                        self.wait_gone("rollups", || {
                            days(self.db().query(SQL_COUNT_SITE_DAY_VALUES))
                                .bind(dimension.as_str())
                                .bind(*run)
                                .bind(began)
                        })
                        .await?;
                    }
                }
                Ok(())
            }
        }
    }
    async fn event_pathnames(&self, site_id: u32) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> = self
            .db()
            .query(SQL_EVENT_PATHNAMES)
            .bind(site_id)
            .bind(MAX_RESULT_ROWS as u64 + 1)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        if rows.len() > MAX_RESULT_ROWS {
            return Err(StoreError::too_many_rows());
        }
        Ok(rows)
    }
    async fn earliest_event(&self, site_id: u32) -> Result<Option<u32>, StoreError> {
        let (first, n) = self
            .db()
            .query(SQL_EARLIEST_EVENT)
            .bind(site_id)
            .fetch_one::<(u32, u64)>()
            .await
            .map_err(|e| self.failed(e))?;
        Ok((n > 0).then_some(first))
    }
    fn dialect(&self) -> Dialect {
        Dialect::ClickHouse
    }
    async fn run_statement(
        &self,
        statement: &Statement,
        text_columns: usize,
        int_columns: usize,
        deadline: Deadline,
    ) -> Result<Vec<(Vec<String>, Vec<i64>)>, StoreError> {
        // The server stops the query at the deadline (`max_execution_time`, whole seconds)
        // and refuses an answer of more rows than any page; the client gives up a little
        // after, in case the server cannot be heard from.
        let seconds = deadline.remaining().as_secs_f64().ceil().max(1.0);
        let fetch = async {
            let mut cursor = self
                .bound(statement)
                .with_setting("max_execution_time", format!("{seconds}"))
                .with_setting("timeout_overflow_mode", "throw")
                .with_setting("max_result_rows", MAX_RESULT_ROWS.to_string())
                .with_setting("result_overflow_mode", "throw")
                .fetch_bytes("JSONCompact")
                .map_err(|e| self.failed(e))?;
            let mut body = Vec::new();
            while let Some(chunk) = cursor.next().await.map_err(|e| self.failed(e))? {
                body.extend_from_slice(&chunk);
            }
            Ok::<_, StoreError>(body)
        };
        let grace = deadline.remaining() + QUERY_GRACE;
        let body = match tokio::time::timeout(grace, fetch).await {
            Err(_) => return Err(deadline.exceeded()),
            Ok(Err(StoreError::Query(message))) => return Err(limit_error(message, deadline)),
            Ok(other) => other?,
        };
        let parsed: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(parsed) => parsed,
            // A limit reached after the first rows were sent ends the answer with the
            // server's exception instead of the rest of the JSON.
            Err(e) => {
                let tail = &body[body.len().saturating_sub(2048)..];
                let tail = String::from_utf8_lossy(tail);
                let message = match tail.find("Code: ") {
                    Some(at) => tail[at..].to_string(),
                    None => format!("unreadable answer: {e}"),
                };
                return Err(limit_error(message, deadline));
            }
        };
        let data = parsed["data"].as_array().cloned().unwrap_or_default();
        let int_of = |v: &serde_json::Value| match v {
            serde_json::Value::Number(n) => n.as_i64().unwrap_or(0),
            serde_json::Value::String(s) => s.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(data
            .iter()
            .filter_map(|row| row.as_array())
            .map(|row| {
                let texts = row
                    .iter()
                    .take(text_columns)
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect();
                let ints = row
                    .iter()
                    .skip(text_columns)
                    .take(int_columns)
                    .map(int_of)
                    .collect();
                (texts, ints)
            })
            .collect())
    }
    async fn put_rollups(&self, rows: &[RollupRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let version = clock_version();
        let mut insert = self
            .db()
            .insert::<RollupRecord>("rollups")
            .await
            .map_err(|e| self.failed(e))?;
        for r in rows {
            insert
                .write(&RollupRecord {
                    site_id: r.site_id,
                    day: day_number(r.day),
                    dimension: r.dimension.clone(),
                    value: r.value.clone(),
                    visitors: r.visitors,
                    visits: r.visits,
                    pageviews: r.pageviews,
                    events: r.events,
                    bounces: r.bounces,
                    duration: r.duration,
                    revenue_micros: r.revenue_micros,
                    revenue_events: r.revenue_events,
                    version,
                })
                .await
                .map_err(|e| self.failed(e))?;
        }
        insert.end().await.map_err(|e| self.failed(e))
    }
    async fn rollup_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        let days: Vec<u16> = self
            .db()
            .query(SQL_ROLLUP_DAYS)
            .bind(site_id)
            .bind(from.to_string())
            .bind(to.to_string())
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(days.into_iter().map(date_of).collect())
    }
    async fn read_rollups(
        &self,
        site_id: u32,
        dimension: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<RollupRow>, StoreError> {
        let rows: Vec<RollupRecord> = self
            .db()
            .query(SQL_READ_ROLLUPS)
            .bind(site_id)
            .bind(dimension)
            .bind(from.to_string())
            .bind(to.to_string())
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .map(|r| RollupRow {
                site_id: r.site_id,
                day: date_of(r.day),
                dimension: r.dimension,
                value: r.value,
                visitors: r.visitors,
                visits: r.visits,
                pageviews: r.pageviews,
                events: r.events,
                bounces: r.bounces,
                duration: r.duration,
                revenue_micros: r.revenue_micros,
                revenue_events: r.revenue_events,
            })
            .collect())
    }
    async fn put_visits(
        &self,
        site_id: u32,
        day: NaiveDate,
        version: u64,
        insert: &Statement,
    ) -> Result<(), StoreError> {
        // Rows of an earlier write stay until retention drops the day; reads take the
        // newest version recorded in visit_days, written only once every row is stored.
        // Blocks of 100,000 rows: with the default million, a day of 830,000 visits (100
        // million events a month) needed more than a 2 GB query limit to write.
        self.bound(insert)
            .with_setting("max_insert_block_size", "100000")
            .with_setting("min_insert_block_size_rows", "100000")
            .execute()
            .await
            .map_err(|e| self.failed(e))?;
        self.db()
            .query(SQL_MARK_VISIT_DAY)
            .bind(site_id)
            .bind(day.to_string())
            .bind(version)
            .execute()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn visit_days_written(&self, days: &[NaiveDate]) -> Result<(), StoreError> {
        // Each write of a day's rows leaves parts of a few hundred thousand rows, which
        // background merges left alone (116 parts for 29 days at 100 million events a
        // month). One source's visits then spanned about 2 granules per part, so a sample
        // of 1 in 50 still read 2 million rows of the 2 million. Merged, a sample's range
        // of hashes skips granules within the day. A cluster's replicas merge on their own
        // schedule: its local tables are not merged here.
        if self.cluster.is_some() {
            return Ok(());
        }
        for day in days {
            self.db()
                .query(SQL_MERGE_VISIT_DAY)
                .bind(day.to_string())
                .execute()
                .await
                .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }
    async fn visit_days(
        &self,
        site_id: u32,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<NaiveDate>, StoreError> {
        let days: Vec<u16> = self
            .db()
            .query(SQL_VISIT_DAYS)
            .bind(site_id)
            .bind(from.to_string())
            .bind(to.to_string())
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(days.into_iter().map(date_of).collect())
    }
    async fn delete_rollups_of(&self, site_id: u32) -> Result<(), StoreError> {
        let local = self.local_table("rollups");
        self.execute_everywhere("an import's rollups", || {
            match &self.cluster {
                None => self
                    .db()
                    .query(SQL_DELETE_ROLLUPS_OF)
                    .bind(Identifier(&local)),
                Some(c) => self
                    .db()
                    .query(SQL_CLUSTER_DELETE_ROLLUPS_OF)
                    .bind(Identifier(&local))
                    .bind(Identifier(c)),
            }
            .bind(site_id)
        })
        .await
    }
    async fn purge_rollups_before(&self, day: NaiveDate) -> Result<usize, StoreError> {
        // Whole months only: a month partition goes once all its days are before `day`.
        let cutoff = day.format("%Y%m").to_string();
        let mut dropped = 0;
        for partition in self.partitions("rollups").await? {
            if partition.len() == 6
                && partition.bytes().all(|b| b.is_ascii_digit())
                && partition < cutoff
            {
                self.drop_partition("rollups", partition.parse::<u32>().unwrap_or(0))
                    .await?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_splits_into_statements() {
        let stmts: Vec<String> = MIGRATIONS.iter().flat_map(|m| statements(m.2)).collect();
        assert_eq!(stmts.len(), 15);
        assert!(
            stmts
                .iter()
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS")
                    || s.starts_with("ALTER TABLE events ADD COLUMN")
                    || s.starts_with("ALTER TABLE rollups ADD COLUMN")
                    || s.starts_with("ALTER TABLE sites ADD COLUMN"))
        );
        assert!(
            stmts.iter().all(|s| !s.contains('?')),
            "the client would treat ? as a bind"
        );
    }

    #[test]
    fn cluster_schema_replicates_every_table_and_shards_events_and_rollups() {
        let all: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| statements(m.2))
            .flat_map(|s| cluster_statements(&s, "c2x2", "ff"))
            .collect();
        // Every statement runs on every node but alterations of replicated tables, which run
        // on one node (of each shard, for a sharded table) and reach the other replicas
        // through ZooKeeper.
        assert!(
            all.iter()
                .all(|s| s.contains(" ON CLUSTER c2x2") || s.starts_with("ALTER TABLE ")),
            "{all:#?}"
        );
        assert!(all.iter().all(|s| !s.contains(" ENGINE = MergeTree")));
        let create = |t: &str| {
            all.iter()
                .find(|s| s.starts_with(&format!("CREATE TABLE IF NOT EXISTS ff.{t} ")))
                .unwrap_or_else(|| panic!("no CREATE for {t}"))
                .clone()
        };
        assert!(create("events_local").contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/ff/events_local', '{replica}')\nPARTITION BY toDate(timestamp, 'UTC')"
        ));
        assert_eq!(
            create("events"),
            "CREATE TABLE IF NOT EXISTS ff.events ON CLUSTER c2x2 AS ff.events_local ENGINE = Distributed(c2x2, ff, events_local, visitor_id)"
        );
        assert!(create("rollups_local").contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ff/rollups_local', '{replica}', version)"
        ));
        assert!(
            create("rollups")
                .contains("Distributed(c2x2, ff, rollups_local, cityHash64(site_id, day))")
        );
        // A visit's rows on the shard of its events; the days written, on every node.
        assert_eq!(
            create("visits"),
            "CREATE TABLE IF NOT EXISTS ff.visits ON CLUSTER c2x2 AS ff.visits_local ENGINE = Distributed(c2x2, ff, visits_local, visitor_id)"
        );
        assert!(create("visits_local").contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/ff/visits_local', '{replica}')\nPARTITION BY day"
        ));
        // Shared metadata: one replicated table on every node, no Distributed table.
        assert!(create("visit_days").contains(
            "ReplicatedReplacingMergeTree('/clickhouse/tables/all/ff/visit_days', '{shard}-{replica}', version)"
        ));
        assert!(!all.iter().any(|s| s.contains("ff.visit_days_local")));
        for t in ["sites", "salts", "api_keys", "records"] {
            assert!(
                create(t).contains(&format!(
                    "ReplicatedMergeTree('/clickhouse/tables/all/ff/{t}', '{{shard}}-{{replica}}')"
                )),
                "{}",
                create(t)
            );
            assert!(!all.iter().any(|s| s.contains(&format!("ff.{t}_local"))));
        }
        assert!(all.contains(
            &"ALTER TABLE ff.events_local ADD COLUMN batch_id UInt64 DEFAULT 0".to_string()
        ));
        let last = all
            .iter()
            .rposition(|s| s.contains("ff.events_local ADD COLUMN batch_id"))
            .unwrap();
        assert_eq!(
            all[last + 1],
            "DROP TABLE IF EXISTS ff.events ON CLUSTER c2x2"
        );
        assert_eq!(all[last + 2], create("events"));
        assert!(
            all.contains(&"ALTER TABLE ff.sites ADD COLUMN version UInt64 DEFAULT 0".to_string())
        );
    }

    #[test]
    fn a_local_alter_is_recognised_and_can_run_on_cluster_instead() {
        let stmt = "ALTER TABLE ff.events_local ADD COLUMN batch_id UInt64 DEFAULT 0";
        assert!(is_local_alter(stmt));
        assert!(!is_local_alter(
            "ALTER TABLE ff.sites ADD COLUMN version UInt64 DEFAULT 0"
        ));
        assert_eq!(
            on_cluster(stmt, "c2x2"),
            "ALTER TABLE ff.events_local ON CLUSTER c2x2 ADD COLUMN batch_id UInt64 DEFAULT 0"
        );
    }

    #[test]
    fn hex_round_trip() {
        let mut out = [0u8; 32];
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        hex_decode(&hex_encode(&bytes), &mut out).unwrap();
        assert_eq!(out, bytes);
        assert!(hex_decode("zz", &mut out).is_none());
    }
}
