//! The ClickHouse store: raw events in a `MergeTree` partitioned by UTC day, sites, and the
//! shared daily salts, over ClickHouse's HTTP interface with the `clickhouse` crate.
//!
//! Rows travel as `RowBinary` (validation off, which ClickHouse 18.16 needs), so no value is
//! ever part of a query's text; the few values in queries are bound, never formatted in.
//! Schema files under `schema/clickhouse/` are embedded and applied in order; the
//! `footfall_migrations` table records which ones ran. Retention and salt deletion drop whole
//! partitions, which removes their files.

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
    ApiKey, Deadline, EventRow, EventStore, EventWriter, MAX_RESULT_ROWS, MetaStore, RollupRow,
    Site, Store, StoreError,
};
use crate::config::ClickHouseConfig;

/// The schema migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../schema/clickhouse/0001_init.sql"),
    ),
    (
        2,
        "0002_api_keys",
        include_str!("../../../schema/clickhouse/0002_api_keys.sql"),
    ),
    (
        3,
        "0003_visit_names",
        include_str!("../../../schema/clickhouse/0003_visit_names.sql"),
    ),
    (
        4,
        "0004_rollups",
        include_str!("../../../schema/clickhouse/0004_rollups.sql"),
    ),
    (
        5,
        "0005_accounts",
        include_str!("../../../schema/clickhouse/0005_accounts.sql"),
    ),
    (
        6,
        "0006_batch_ids",
        include_str!("../../../schema/clickhouse/0006_batch_ids.sql"),
    ),
];

// Every statement this store sends; `sample_statements` renders them for portability checks.
const SQL_PARTITIONS: &str = "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active ORDER BY partition";
const SQL_DROP_PARTITION: &str = "ALTER TABLE ? DROP PARTITION ?";
/// On a cluster: the partitions of one replica per shard, which together hold every day.
const SQL_CLUSTER_PARTITIONS: &str = "SELECT DISTINCT partition FROM cluster(?, system.parts) WHERE database = ? AND table = ? AND active ORDER BY partition";
const SQL_CLUSTER_DROP_PARTITION: &str = "ALTER TABLE ? ON CLUSTER ? DROP PARTITION ?";
const SQL_CREATE_DATABASE: &str = "CREATE DATABASE IF NOT EXISTS ?";
const SQL_CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS footfall_migrations (version UInt32, name String, applied_at DateTime('UTC'))";
const SQL_APPLIED_MIGRATIONS: &str = "SELECT DISTINCT version FROM footfall_migrations";
const SQL_SITES: &str = "SELECT id, argMax(domain, version) AS site_domain, argMax(timezone, version) AS site_timezone, toUInt32(min(created_at)) AS created FROM sites GROUP BY id ORDER BY id";
// The claims of one site id (see `add_site`), the first first.
const SQL_SITE_CLAIMS: &str =
    "SELECT body, deleted, version FROM records WHERE kind = ? AND id = ? ORDER BY version, body";
const SQL_SITE_LATEST: &str = "SELECT max(version) FROM sites WHERE id = ?";
/// The record kind of site id claims.
const SITE_CLAIM: &str = "site-claim";
// When each site first took a domain.
const SQL_DOMAIN_CLAIMS: &str =
    "SELECT id, min(version) FROM sites WHERE domain = ? GROUP BY id ORDER BY id";
/// Record rows written before the first cutoff version that a later version superseded, and
/// deletion markers older than the second cutoff (with every older version of their record).
/// The subqueries may see fewer rows than the outer scan (a write in between): only rows
/// older than a write in flight can be, so a row written since is never taken for stale.
const SQL_STALE_RECORDS: &str = "SELECT kind, id, version FROM records WHERE version < ? AND ((kind, id, version) NOT IN (SELECT kind, id, max(version) FROM records GROUP BY kind, id) OR (kind, id) IN (SELECT kind, id FROM records GROUP BY kind, id HAVING argMax(deleted, version) = 1 AND max(version) < ?))";
/// Record versions younger than this (microseconds) are left to the next compaction, so a
/// write racing the compaction's scan is never mistaken for a superseded one.
const RECORD_SETTLE_MICROS: u64 = 60_000_000;

/// A node's shard, from its `shard` macro.
const SQL_SHARD_MACRO: &str = "SELECT substitution FROM system.macros WHERE macro = 'shard'";
/// How many shards a cluster has.
const SQL_CLUSTER_SHARDS: &str =
    "SELECT toUInt64(uniqExact(shard_num)) FROM system.clusters WHERE cluster = ?";

/// `ALTER TABLE t …` as `ALTER TABLE t ON CLUSTER c …`.
fn on_cluster(stmt: &str, cluster: &str) -> String {
    let rest = stmt.trim_start_matches("ALTER TABLE ");
    let (table, action) = rest.split_once(' ').unwrap_or((rest, ""));
    format!("ALTER TABLE {table} ON CLUSTER {cluster} {action}")
}

/// Whether a cluster schema statement alters a sharded table's local part.
fn is_local_alter(stmt: &str) -> bool {
    stmt.split_whitespace()
        .nth(2)
        .is_some_and(|table| table.ends_with("_local"))
}

/// The mutation that deletes `n` record rows named by (kind, id, version).
fn delete_records_sql(n: usize) -> String {
    let tuples = vec!["(?, ?, ?)"; n].join(", ");
    format!("ALTER TABLE records DELETE WHERE (kind, id, version) IN ({tuples})")
}

const SQL_SYNC_REPLICA: &str = "SYSTEM SYNC REPLICA ?";
/// How long past a query's deadline the client waits for the server to report the timeout.
const QUERY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
const SYNC_REPLICA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How many site ids `add_site` tries when other collectors take them first.
const ADD_SITE_ATTEMPTS: usize = 8;
/// How long `add_site` waits after writing its claim before reading the claims back: longer
/// than a metadata write takes, and than replication between nodes usually takes.
const CLAIM_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);
const SQL_RECORDS: &str = "SELECT id, latest_body FROM (SELECT id, argMax(body, version) AS latest_body, argMax(deleted, version) AS gone FROM records WHERE kind = ? GROUP BY id) WHERE gone = 0 ORDER BY id";
// Grouped by id, so no record gives no row (an ungrouped aggregate would give defaults).
const SQL_RECORD: &str = "SELECT latest_body FROM (SELECT id, argMax(body, version) AS latest_body, argMax(deleted, version) AS gone FROM records WHERE kind = ? AND id = ? GROUP BY id) WHERE gone = 0";
const SQL_READ_EVENTS: &str = "SELECT site_id, toUInt32(timestamp) AS timestamp, name, hostname, pathname, visitor_id, session_id, referrer, referrer_source, channel, utm_medium, utm_source, utm_campaign, utm_content, utm_term, browser, browser_version, os, os_version, device, country_code, region, city, screen_width, props_keys, props_values, revenue_micros, revenue_currency, interactive, engagement_ms, scroll_depth, entry_page, country_name, region_name, batch_id FROM events WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) ORDER BY timestamp LIMIT ?";
// `min` of no rows is 0 in ClickHouse, so the count tells "no events" apart.
const SQL_BATCH_WRITTEN: &str =
    "SELECT count() FROM events WHERE site_id = ? AND timestamp = toDateTime(?) AND batch_id = ?";
const SQL_CLUSTER_BATCH_WRITTEN: &str = "SELECT count() FROM events WHERE timestamp >= toDateTime(?) AND timestamp <= toDateTime(?) AND has(?, site_id) AND has(?, batch_id)";
const SQL_EARLIEST_EVENT: &str =
    "SELECT toUInt32(min(timestamp)) AS first, count() AS n FROM events WHERE site_id = ?";
const SQL_API_KEYS: &str = "SELECT id, argMax(site_id, version) AS site_id, argMax(hash, version) AS hash, argMax(toUInt32(created_at), version) AS created_at, argMax(revoked, version) AS revoked FROM api_keys GROUP BY id ORDER BY created_at, id";
const SQL_ROLLUP_DAYS: &str = "SELECT DISTINCT toUInt16(day) FROM rollups WHERE site_id = ? AND dimension = '' AND day >= toDate(?) AND day <= toDate(?) ORDER BY toUInt16(day)";
const SQL_READ_ROLLUPS: &str = "SELECT site_id, toUInt16(day) AS d, dimension, value, argMax(visitors, version) AS r_visitors, argMax(visits, version) AS r_visits, argMax(pageviews, version) AS r_pageviews, argMax(events, version) AS r_events, argMax(bounces, version) AS r_bounces, argMax(duration, version) AS r_duration, max(version) AS r_version FROM rollups WHERE site_id = ? AND dimension = ? AND day >= toDate(?) AND day <= toDate(?) GROUP BY site_id, day, dimension, value";
const SQL_SALTS: &str =
    "SELECT toUInt16(day) AS day, min(salt) AS salt FROM salts GROUP BY day ORDER BY day";

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
struct MigrationRow {
    version: u32,
    name: String,
    applied_at: u32,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
struct SiteRow {
    id: u32,
    domain: String,
    timezone: String,
    created_at: u32,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
struct SiteVersionRow {
    id: u32,
    domain: String,
    timezone: String,
    created_at: u32,
    version: u64,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
struct RecordRow {
    kind: String,
    id: String,
    body: String,
    deleted: u8,
    version: u64,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
struct SaltRow {
    /// Days since the epoch (ClickHouse `Date`).
    day: u16,
    /// Hex of the 32 salt bytes.
    salt: String,
    created_at: u32,
}

#[derive(Serialize, clickhouse::Row)]
struct ApiKeyRow {
    id: String,
    site_id: u32,
    hash: String,
    created_at: u32,
    revoked: u8,
    version: u64,
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
    version: u64,
}

#[derive(Deserialize, clickhouse::Row)]
struct SaltOut {
    day: u16,
    salt: String,
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

/// Splits a schema file into statements: `;` at a line end ends one, `--` lines are comments.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let stmt = current.trim().trim_end_matches(';').trim().to_string();
            if !stmt.is_empty() {
                out.push(stmt);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

struct Node {
    url: String,
    server: Client,
    db: Client,
}

/// Tables sharded across the cluster (a replicated local table per shard, a `Distributed`
/// table in front), with their sharding keys. Every other table is replicated to every node.
const SHARDED: &[(&str, &str)] = &[
    // One visitor's events of a day on one shard: the visitor hash changes daily.
    ("events", "visitor_id"),
    ("rollups", "cityHash64(site_id, day)"),
];

fn sharding_key(table: &str) -> Option<&'static str> {
    SHARDED.iter().find(|(t, _)| *t == table).map(|(_, k)| *k)
}

/// A schema statement as it runs on a cluster: tables created `ON CLUSTER` in `database`,
/// `MergeTree` engines made `Replicated…` (ZooKeeper paths from the `{shard}` and `{replica}`
/// macros), sharded tables split into `<table>_local` and a `Distributed` table; a column is
/// added to the local table and the Distributed table made again over it, and a table
/// replicated to every node is altered once, not `ON CLUSTER`. Statements it does not know
/// are returned unchanged.
pub fn cluster_statements(stmt: &str, cluster: &str, database: &str) -> Vec<String> {
    if let Some(rest) = stmt.strip_prefix("CREATE TABLE IF NOT EXISTS ") {
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '(')
            .unwrap_or(rest.len());
        let (name, body) = rest.split_at(name_end);
        let Some(engine_at) = body.find("ENGINE = ") else {
            return vec![stmt.to_string()];
        };
        let after = &body[engine_at + "ENGINE = ".len()..];
        let engine_end = after.find('\n').unwrap_or(after.len());
        let engine = after[..engine_end].trim();
        let (engine_name, args) = match engine.split_once('(') {
            Some((n, a)) => (n, a.trim_end_matches(')')),
            None => (engine, ""),
        };
        let sharded = sharding_key(name);
        let (table, path, replica) = match sharded {
            Some(_) => (
                format!("{name}_local"),
                format!("/clickhouse/tables/{{shard}}/{database}/{name}_local"),
                "{replica}",
            ),
            // Replicas of one path on every node of every shard: the replica name must be
            // unique in the whole cluster, hence the shard in it.
            None => (
                name.to_string(),
                format!("/clickhouse/tables/all/{database}/{name}"),
                "{shard}-{replica}",
            ),
        };
        let extra = if args.is_empty() {
            String::new()
        } else {
            format!(", {args}")
        };
        let replicated = format!("Replicated{engine_name}('{path}', '{replica}'{extra})");
        let mut out = vec![format!(
            "CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster}{}ENGINE = {replicated}{}",
            &body[..engine_at],
            &after[engine_end..]
        )];
        if let Some(key) = sharded {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER {cluster} AS {database}.{table} ENGINE = Distributed({cluster}, {database}, {table}, {key})"
            ));
        }
        return out;
    }
    if let Some(rest) = stmt.strip_prefix("ALTER TABLE ") {
        let (name, action) = rest.split_once(' ').unwrap_or((rest, ""));
        return match sharding_key(name) {
            // ClickHouse refuses `ALTER … ON CLUSTER` of a Distributed table on a cluster whose
            // shards replicate; it holds no rows (inserts are synchronous), so it is made
            // again from the altered local table.
            // The local table is altered through one replica of each shard (see
            // `ClickHouseStore::migrate`), not `ON CLUSTER`: 18.16's DDL worker can stop for
            // good when two replicas of a shard take the same replicated ALTER at once.
            Some(key) => vec![
                format!("ALTER TABLE {database}.{name}_local {action}"),
                format!("DROP TABLE IF EXISTS {database}.{name} ON CLUSTER {cluster}"),
                format!(
                    "CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER {cluster} AS {database}.{name}_local ENGINE = Distributed({cluster}, {database}, {name}_local, {key})"
                ),
            ],
            // A table replicated to every node is altered through one node: ZooKeeper
            // carries the change to every replica. `ON CLUSTER` would have one replica of
            // each shard run it on the same replicated table, and the two race (one fails
            // with "column already exists", or waits on the other past the DDL timeout).
            None => vec![format!("ALTER TABLE {database}.{name} {action}")],
        };
    }
    vec![stmt.to_string()]
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
                        .with_setting("load_balancing", "in_order");
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

    /// Before the first schema change on a cluster: the cluster is known, ZooKeeper answers,
    /// and every node has the `shard` and `replica` macros. Nothing is created otherwise.
    async fn check_cluster(&self, cluster: &str) -> Result<(), StoreError> {
        let refuse = |message: String| StoreError::Migration {
            name: "cluster".into(),
            message,
        };
        let hosts: Vec<(String, u16)> = self
            .server()
            .query("SELECT host_name, port FROM system.clusters WHERE cluster = ?")
            .bind(cluster)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        if hosts.is_empty() {
            return Err(refuse(format!(
                "ClickHouse at {} has no cluster `{cluster}` in its remote_servers",
                self.current_url()
            )));
        }
        self.server()
            .query("SELECT count() FROM system.zookeeper WHERE path = '/'")
            .fetch_one::<u64>()
            .await
            .map_err(|e| {
                refuse(format!(
                    "ClickHouse at {} cannot reach ZooKeeper (or Keeper), which replicated tables need: {e}",
                    self.current_url()
                ))
            })?;
        for (host, port) in hosts {
            let at = format!("{host}:{port}");
            let macros: Vec<String> = self
                .server()
                .query("SELECT macro FROM remote(?, system.macros) WHERE macro IN ('shard', 'replica') ORDER BY macro")
                .bind(at.as_str())
                .fetch_all()
                .await
                .map_err(|e| refuse(format!("cannot read the macros of cluster node {at}: {e}")))?;
            for wanted in ["replica", "shard"] {
                if !macros.iter().any(|m| m == wanted) {
                    return Err(refuse(format!(
                        "cluster node {at} has no `{wanted}` macro (set <macros><shard>…</shard><replica>…</replica></macros> in its config)"
                    )));
                }
            }
        }
        Ok(())
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

    /// Every statement the store sends, with sample values bound, as the server receives
    /// it: for checking that the SQL runs on current ClickHouse releases too.
    pub fn sample_statements(&self) -> Vec<String> {
        let render = |q: clickhouse::query::Query| q.sql_display().to_string();
        let mut out = vec![
            render(
                self.server()
                    .query(SQL_CREATE_DATABASE)
                    .bind(Identifier(&self.database)),
            ),
            format!("{SQL_CREATE_MIGRATIONS_TABLE} ENGINE = MergeTree ORDER BY version"),
        ];
        out.extend(MIGRATIONS.iter().flat_map(|(_, _, sql)| statements(sql)));
        out.extend([
            SQL_APPLIED_MIGRATIONS.to_string(),
            SQL_SITES.to_string(),
            SQL_SALTS.to_string(),
            render(self.db().query(SQL_RECORDS).bind("user")),
            render(
                self.db()
                    .query(SQL_RECORD)
                    .bind("user")
                    .bind("a@example.org"),
            ),
            render(self.db().query(SQL_SITE_CLAIMS).bind(SITE_CLAIM).bind("1")),
            render(self.db().query(SQL_DOMAIN_CLAIMS).bind("example.com")),
            render(self.db().query(SQL_SITE_LATEST).bind(1u32)),
            render(self.db().query(SQL_EARLIEST_EVENT).bind(1u32)),
            render(
                self.db()
                    .query(SQL_BATCH_WRITTEN)
                    .bind(1u32)
                    .bind(1_700_000_000u32)
                    .bind(42u64),
            ),
            render(
                self.db()
                    .query(SQL_PARTITIONS)
                    .bind(self.database.as_str())
                    .bind("events"),
            ),
            render(
                self.db()
                    .query(SQL_DROP_PARTITION)
                    .bind(Identifier("events"))
                    .bind("2026-01-01"),
            ),
            render(
                self.db()
                    .query(SQL_STALE_RECORDS)
                    .bind(1_700_000_000_000_000u64)
                    .bind(1_699_999_000_000_000u64),
            ),
            render(
                self.db()
                    .query(&delete_records_sql(2))
                    .bind("user")
                    .bind("a@example.org")
                    .bind(1u64)
                    .bind("session")
                    .bind("ab12")
                    .bind(2u64),
            ),
        ]);
        out
    }

    /// The statements only a cluster receives (for a cluster named `footfall`): the schema
    /// `ON CLUSTER` and partition maintenance. A single engine has no cluster to run them on,
    /// so the portability check parses them (`EXPLAIN AST`) instead.
    pub fn sample_cluster_statements(&self) -> Vec<String> {
        let render = |q: clickhouse::query::Query| q.sql_display().to_string();
        let mut out = Vec::new();
        out.push(format!(
            "CREATE DATABASE IF NOT EXISTS {} ON CLUSTER footfall",
            self.database
        ));
        out.extend(
            MIGRATIONS
                .iter()
                .flat_map(|(_, _, sql)| statements(sql))
                .flat_map(|s| cluster_statements(&s, "footfall", &self.database)),
        );
        out.push(render(
            self.db()
                .query(SQL_CLUSTER_BATCH_WRITTEN)
                .bind(1_700_000_000u32)
                .bind(1_700_000_060u32)
                .bind(vec![1u32, 2])
                .bind(vec![42u64, 43]),
        ));
        out.push(render(
            self.db()
                .query(SQL_CLUSTER_PARTITIONS)
                .bind("footfall")
                .bind(self.database.as_str())
                .bind("events_local"),
        ));
        out.push(render(
            self.db()
                .query(SQL_CLUSTER_DROP_PARTITION)
                .bind(Identifier("events_local"))
                .bind(Identifier("footfall"))
                .bind("2026-01-01"),
        ));
        out.push(render(
            self.db()
                .query(SQL_SYNC_REPLICA)
                .bind(Identifier("records")),
        ));
        out
    }

    async fn write_api_key(&self, key: &ApiKey, version: u64) -> Result<(), StoreError> {
        let row = ApiKeyRow {
            id: key.id.clone(),
            site_id: key.site_id,
            hash: key.hash.clone(),
            created_at: key.created_at,
            revoked: key.revoked,
            version,
        };
        self.insert_row("api_keys", &row).await
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

    /// Waits until rival claims written with versions below `version` can be read (see
    /// `add_site`); true when our own write took longer than that wait, so it yields.
    async fn settle_claim(&self, table: &str, version: u64) -> bool {
        let settle = CLAIM_SETTLE.as_micros() as u64;
        let late = (Utc::now().timestamp_micros().max(0) as u64).saturating_sub(version) > settle;
        tokio::time::sleep(CLAIM_SETTLE).await;
        // Rival claims written through other nodes.
        self.sync_replica(table).await;
        late
    }

    /// The database client of one configured node of each of `cluster`'s shards (by the
    /// node's `shard` macro); why not, when the configured nodes miss a shard.
    async fn node_per_shard(&self, cluster: &str) -> Result<Vec<&Client>, String> {
        let mut by_shard: std::collections::BTreeMap<String, &Client> = Default::default();
        for node in &self.nodes {
            let shard = node
                .server
                .query(SQL_SHARD_MACRO)
                .fetch_optional::<String>()
                .await;
            if let Ok(Some(shard)) = shard {
                by_shard.entry(shard).or_insert(&node.db);
            }
        }
        let shards: u64 = self
            .server()
            .query(SQL_CLUSTER_SHARDS)
            .bind(cluster)
            .fetch_one()
            .await
            .map_err(|e| e.to_string())?;
        if (by_shard.len() as u64) < shards {
            return Err(format!(
                "clickhouse_url reaches nodes of {} of the cluster's {shards} shards",
                by_shard.len()
            ));
        }
        Ok(by_shard.into_values().collect())
    }

    /// On a cluster: fetches what other replicas of the metadata table `table` have
    /// announced, so a read through this node sees every write that has returned through any
    /// other (a site added through one collector and used through another at once). A node
    /// that cannot sync soon is read as it is, with a warning.
    async fn sync_replica(&self, table: &str) {
        if self.cluster.is_none() {
            return;
        }
        // The server waits for the replica's queue at most `receive_timeout` seconds: without
        // it a sync the client has given up on would go on for five minutes on the server.
        let sync = self
            .db()
            .query(SQL_SYNC_REPLICA)
            .bind(Identifier(table))
            .with_setting(
                "receive_timeout",
                SYNC_REPLICA_TIMEOUT.as_secs().to_string(),
            )
            .execute();
        match tokio::time::timeout(SYNC_REPLICA_TIMEOUT, sync).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, table, "could not sync the replica"),
            Err(_) => tracing::warn!(table, "syncing the replica took too long"),
        }
    }

    async fn withdraw_claim(&self, id: u32, domain: &str) -> Result<(), StoreError> {
        self.write_record(RecordRow {
            kind: SITE_CLAIM.into(),
            id: id.to_string(),
            body: domain.to_string(),
            deleted: 1,
            version: self.next_version(),
        })
        .await
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

    async fn write_site(&self, row: SiteVersionRow) -> Result<(), StoreError> {
        self.insert_row("sites", &row).await
    }

    async fn write_record(&self, row: RecordRow) -> Result<(), StoreError> {
        self.insert_row("records", &row).await
    }

    async fn partitions(&self, table: &str) -> Result<Vec<String>, StoreError> {
        let local = self.local_table(table);
        let query = match &self.cluster {
            None => self.db().query(SQL_PARTITIONS),
            Some(c) => self.db().query(SQL_CLUSTER_PARTITIONS).bind(c.as_str()),
        };
        query
            .bind(self.database.as_str())
            .bind(local.as_str())
            .fetch_all::<String>()
            .await
            .map_err(|e| self.failed(e))
    }

    /// Drops one partition of `table`; on a cluster, of its local table on every node.
    async fn drop_partition<T: Serialize>(
        &self,
        table: &str,
        partition: T,
    ) -> Result<(), StoreError> {
        let local = self.local_table(table);
        let query = match &self.cluster {
            None => self.db().query(SQL_DROP_PARTITION).bind(Identifier(&local)),
            Some(c) => self
                .db()
                .query(SQL_CLUSTER_DROP_PARTITION)
                .bind(Identifier(&local))
                .bind(Identifier(c)),
        };
        query
            .bind(partition)
            .execute()
            .await
            .map_err(|e| self.failed(e))
    }

    /// Drops the day partitions of `table` before `day`; returns how many were dropped.
    async fn drop_days_before(&self, table: &str, day: NaiveDate) -> Result<usize, StoreError> {
        let cutoff = day.format("%Y-%m-%d").to_string();
        let mut dropped = 0;
        for partition in self.partitions(table).await? {
            let date = partition.trim_matches('\'');
            if NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date < cutoff.as_str() {
                self.drop_partition(table, date).await?;
                dropped += 1;
            }
        }
        Ok(dropped)
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
        let setup = match &self.cluster {
            None => vec![
                self.server()
                    .query(SQL_CREATE_DATABASE)
                    .bind(Identifier(&self.database))
                    .sql_display()
                    .to_string(),
                format!("{SQL_CREATE_MIGRATIONS_TABLE} ENGINE = MergeTree ORDER BY version"),
            ],
            Some(cluster) => {
                self.check_cluster(cluster).await?;
                let mut v = vec![format!(
                    "CREATE DATABASE IF NOT EXISTS {} ON CLUSTER {cluster}",
                    self.database
                )];
                v.extend(cluster_statements(
                    &format!("{SQL_CREATE_MIGRATIONS_TABLE} ENGINE = MergeTree\nORDER BY version"),
                    cluster,
                    &self.database,
                ));
                v
            }
        };
        for (i, stmt) in setup.iter().enumerate() {
            // The database first, on the server; then the migrations table inside it.
            let client = if i == 0 { self.server() } else { self.db() };
            client
                .query(stmt)
                .execute()
                .await
                .map_err(|e| StoreError::Migration {
                    name: "setup".into(),
                    message: e.to_string(),
                })?;
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
                    match client.query(&stmt).execute().await {
                        Ok(()) => {}
                        // 18.16 has no ADD COLUMN IF NOT EXISTS: a column added by an
                        // interrupted earlier run of this migration is not an error.
                        Err(e)
                            if stmt.contains("ADD COLUMN")
                                && e.to_string().contains("already exists") => {}
                        Err(e) => {
                            return Err(StoreError::Migration {
                                name: (*name).to_string(),
                                message: e.to_string(),
                            });
                        }
                    }
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
            match node.server.query("SELECT 1").fetch_one::<u8>().await {
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
        self.drop_days_before("events", day).await
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
        let version = Utc::now().timestamp_micros().max(1) as u64;
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
            })
            .collect())
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

#[async_trait]
impl MetaStore for ClickHouseStore {
    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        self.sync_replica("sites").await;
        let rows: Vec<SiteRow> = self
            .db()
            .query(SQL_SITES)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .map(|r| Site {
                id: r.id,
                domain: r.domain,
                timezone: r.timezone,
            })
            .collect())
    }
    async fn add_site(&self, domain: &str, timezone: &str) -> Result<Site, StoreError> {
        // ClickHouse has no unique key, so collectors adding sites at once may pick the same
        // next id. Each first claims the id: a `site-claim` record stamped with its version
        // (microseconds). It waits CLAIM_SETTLE after the write returned, then reads the id's
        // claims. The first claim not withdrawn keeps the id, and only its owner writes the
        // site. A claim whose own write took longer than CLAIM_SETTLE yields even when first,
        // because a rival that read before it arrived has already decided. Losers withdraw
        // their claim and try the next id.
        let mut next = 0;
        for _ in 0..ADD_SITE_ATTEMPTS {
            let sites = self.sites().await?;
            if sites.iter().any(|s| s.domain == domain) {
                return Err(StoreError::SiteExists(domain.to_string()));
            }
            let id = (sites.iter().map(|s| s.id).max().unwrap_or(0) + 1).max(next);
            next = id + 1;
            let version = self.next_version();
            self.write_record(RecordRow {
                kind: SITE_CLAIM.into(),
                id: id.to_string(),
                body: domain.to_string(),
                deleted: 0,
                version,
            })
            .await?;
            let late = self.settle_claim("records", version).await;
            let claims: Vec<(String, u8, u64)> = self
                .db()
                .query(SQL_SITE_CLAIMS)
                .bind(SITE_CLAIM)
                .bind(id.to_string())
                .fetch_all()
                .await
                .map_err(|e| self.failed(e))?;
            let withdrawn = |d: &str| claims.iter().any(|c| c.1 == 1 && c.0 == d);
            let first = claims
                .iter()
                .find(|c| c.1 == 0 && !withdrawn(&c.0))
                .map(|c| c.0.as_str());
            // The same domain claimed at the same moment elsewhere is one site.
            if first == Some(domain) && !late {
                let others = self.sites().await?;
                if others.iter().any(|s| s.domain == domain && s.id != id) {
                    self.withdraw_claim(id, domain).await?;
                    return Err(StoreError::SiteExists(domain.to_string()));
                }
                self.write_site(SiteVersionRow {
                    id,
                    domain: domain.to_string(),
                    timezone: timezone.to_string(),
                    created_at: Utc::now().timestamp() as u32,
                    version: self.next_version(),
                })
                .await?;
                return Ok(Site {
                    id,
                    domain: domain.to_string(),
                    timezone: timezone.to_string(),
                });
            }
            self.withdraw_claim(id, domain).await?;
            tracing::info!(
                site_id = id,
                "another collector claimed this site id first; trying the next"
            );
        }
        Err(StoreError::Query(format!(
            "could not add {domain}: other collectors claimed {ADD_SITE_ATTEMPTS} site ids first"
        )))
    }
    async fn update_site(&self, site: &Site) -> Result<bool, StoreError> {
        let sites = self.sites().await?;
        let Some(previous) = sites.iter().find(|s| s.id == site.id) else {
            return Ok(false);
        };
        if sites
            .iter()
            .any(|s| s.domain == site.domain && s.id != site.id)
        {
            return Err(StoreError::SiteExists(site.domain.clone()));
        }
        let version = self.next_version();
        self.write_site(SiteVersionRow {
            id: site.id,
            domain: site.domain.clone(),
            timezone: site.timezone.clone(),
            created_at: Utc::now().timestamp() as u32,
            version,
        })
        .await?;
        if previous.domain == site.domain {
            return Ok(true);
        }
        // A new domain is a claim, as a new id is in `add_site`: if another site took the
        // same domain at the same moment, the earlier claim keeps it and the other rename
        // is undone.
        let late = self.settle_claim("sites", version).await;
        let claims: Vec<(u32, u64)> = self
            .db()
            .query(SQL_DOMAIN_CLAIMS)
            .bind(site.domain.as_str())
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        let holders = self.sites().await?;
        let rivals: Vec<u64> = claims
            .iter()
            .filter(|(id, _)| {
                *id != site.id
                    && holders
                        .iter()
                        .any(|h| h.id == *id && h.domain == site.domain)
            })
            .map(|(_, v)| *v)
            .collect();
        if rivals.is_empty() || (!late && rivals.iter().all(|v| *v > version)) {
            return Ok(true);
        }
        let latest: u64 = self
            .db()
            .query(SQL_SITE_LATEST)
            .bind(site.id)
            .fetch_one()
            .await
            .map_err(|e| self.failed(e))?;
        // Undo the rename unless a later change is already on top.
        if latest == version {
            self.write_site(SiteVersionRow {
                id: site.id,
                domain: previous.domain.clone(),
                timezone: previous.timezone.clone(),
                created_at: Utc::now().timestamp() as u32,
                version: self.next_version(),
            })
            .await?;
        }
        Err(StoreError::SiteExists(site.domain.clone()))
    }
    async fn salts(&self) -> Result<Vec<(NaiveDate, Salt)>, StoreError> {
        self.sync_replica("salts").await;
        let rows: Vec<SaltOut> = self
            .db()
            .query(SQL_SALTS)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let mut bytes = [0u8; 32];
                hex_decode(&r.salt, &mut bytes)?;
                Some((date_of(r.day), Salt(bytes)))
            })
            .collect())
    }
    async fn put_salt(&self, day: NaiveDate, salt: &Salt) -> Result<(), StoreError> {
        if self.salts().await?.iter().any(|(d, _)| *d == day) {
            return Ok(());
        }
        let row = SaltRow {
            day: day_number(day),
            salt: hex_encode(&salt.0),
            created_at: Utc::now().timestamp() as u32,
        };
        self.insert_row("salts", &row).await
    }
    async fn delete_salts_before(&self, day: NaiveDate) -> Result<(), StoreError> {
        self.drop_days_before("salts", day).await.map(|_| ())
    }
    async fn add_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.write_api_key(key, 1).await
    }
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.sync_replica("api_keys").await;
        self.db()
            .query(SQL_API_KEYS)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let Some(key) = self.api_keys().await?.into_iter().find(|k| k.id == id) else {
            return Ok(false);
        };
        let version = Utc::now().timestamp_micros().max(2) as u64;
        self.write_api_key(&ApiKey { revoked: 1, ..key }, version)
            .await?;
        Ok(true)
    }
    async fn records(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.sync_replica("records").await;
        self.db()
            .query(SQL_RECORDS)
            .bind(kind)
            .fetch_all::<(String, String)>()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn record(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        self.sync_replica("records").await;
        self.db()
            .query(SQL_RECORD)
            .bind(kind)
            .bind(id)
            .fetch_optional::<String>()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn put_record(&self, kind: &str, id: &str, body: &str) -> Result<(), StoreError> {
        self.write_record(RecordRow {
            kind: kind.to_string(),
            id: id.to_string(),
            body: body.to_string(),
            deleted: 0,
            version: self.next_version(),
        })
        .await
    }
    async fn delete_record(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        if self.record(kind, id).await?.is_none() {
            return Ok(false);
        }
        self.write_record(RecordRow {
            kind: kind.to_string(),
            id: id.to_string(),
            body: String::new(),
            deleted: 1,
            version: self.next_version(),
        })
        .await?;
        Ok(true)
    }
    async fn compact_records(&self) -> Result<usize, StoreError> {
        // Records are appended as versions; reads take the latest. The superseded versions
        // and old deletion markers are deleted by a mutation (replicated on a cluster).
        self.sync_replica("records").await;
        let now = self.next_version();
        let settled = now.saturating_sub(RECORD_SETTLE_MICROS);
        let tombstones = now.saturating_sub(super::RECORD_TOMBSTONE_SECS * 1_000_000);
        let stale: Vec<(String, String, u64)> = self
            .db()
            .query(SQL_STALE_RECORDS)
            .bind(settled)
            .bind(tombstones)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        for chunk in stale.chunks(500) {
            let mut query = self.db().query(&delete_records_sql(chunk.len()));
            for (kind, id, version) in chunk {
                query = query.bind(kind.as_str()).bind(id.as_str()).bind(*version);
            }
            query.execute().await.map_err(|e| self.failed(e))?;
        }
        Ok(stale.len())
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str, out: &mut [u8; 32]) -> Option<()> {
    if s.len() != 64 {
        return None;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_splits_into_statements() {
        let stmts: Vec<String> = MIGRATIONS.iter().flat_map(|m| statements(m.2)).collect();
        assert_eq!(stmts.len(), 11);
        assert!(
            stmts
                .iter()
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS")
                    || s.starts_with("ALTER TABLE events ADD COLUMN")
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
        // Shared metadata: one replicated table on every node, no Distributed table.
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
