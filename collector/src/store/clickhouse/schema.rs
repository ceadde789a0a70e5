//! The ClickHouse schema: the embedded migrations, their rewriting for a cluster (`ON CLUSTER`,
//! replicated local tables behind `Distributed` ones) and the checks of a cluster's layout.

use super::*;

/// The nodes of a cluster.
pub(super) const SQL_CLUSTER_HOSTS: &str =
    "SELECT host_name, port FROM system.clusters WHERE cluster = ?";
/// Answers only when the server reaches ZooKeeper (or Keeper).
pub(super) const SQL_ZOOKEEPER_ROOT: &str = "SELECT count() FROM system.zookeeper WHERE path = '/'";
/// The replication macros a cluster node has.
pub(super) const SQL_REMOTE_MACROS: &str =
    "SELECT macro FROM remote(?, system.macros) WHERE macro IN ('shard', 'replica') ORDER BY macro";

/// The schema migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../../schema/clickhouse/0001_init.sql"),
    ),
    (
        2,
        "0002_api_keys",
        include_str!("../../../../schema/clickhouse/0002_api_keys.sql"),
    ),
    (
        3,
        "0003_visit_names",
        include_str!("../../../../schema/clickhouse/0003_visit_names.sql"),
    ),
    (
        4,
        "0004_rollups",
        include_str!("../../../../schema/clickhouse/0004_rollups.sql"),
    ),
    (
        5,
        "0005_accounts",
        include_str!("../../../../schema/clickhouse/0005_accounts.sql"),
    ),
    (
        6,
        "0006_batch_ids",
        include_str!("../../../../schema/clickhouse/0006_batch_ids.sql"),
    ),
    (
        7,
        "0007_visits",
        include_str!("../../../../schema/clickhouse/0007_visits.sql"),
    ),
    (
        8,
        "0008_goal_rollups",
        include_str!("../../../../schema/clickhouse/0008_goal_rollups.sql"),
    ),
];

pub(super) const SQL_CREATE_DATABASE: &str = "CREATE DATABASE IF NOT EXISTS ?";

pub(super) const SQL_CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS footfall_migrations (version UInt32, name String, applied_at DateTime('UTC'))";

pub(super) const SQL_APPLIED_MIGRATIONS: &str = "SELECT DISTINCT version FROM footfall_migrations";

/// A node's shard, from its `shard` macro.
pub(super) const SQL_SHARD_MACRO: &str =
    "SELECT substitution FROM system.macros WHERE macro = 'shard'";

/// How many shards a cluster has.
pub(super) const SQL_CLUSTER_SHARDS: &str =
    "SELECT toUInt64(uniqExact(shard_num)) FROM system.clusters WHERE cluster = ?";

/// `ALTER TABLE t …` as `ALTER TABLE t ON CLUSTER c …`.
pub(super) fn on_cluster(stmt: &str, cluster: &str) -> String {
    let rest = stmt.trim_start_matches("ALTER TABLE ");
    let (table, action) = rest.split_once(' ').unwrap_or((rest, ""));
    format!("ALTER TABLE {table} ON CLUSTER {cluster} {action}")
}

/// Whether a cluster schema statement alters a sharded table's local part.
pub(super) fn is_local_alter(stmt: &str) -> bool {
    stmt.split_whitespace()
        .nth(2)
        .is_some_and(|table| table.ends_with("_local"))
}

pub(super) const SQL_SYNC_REPLICA: &str = "SYSTEM SYNC REPLICA ?";

pub(super) const SYNC_REPLICA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Serialize, Deserialize, clickhouse::Row)]
pub(super) struct MigrationRow {
    pub(super) version: u32,
    pub(super) name: String,
    pub(super) applied_at: u32,
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

/// Tables sharded across the cluster (a replicated local table per shard, a `Distributed`
/// table in front), with their sharding keys. Every other table is replicated to every node.
pub(super) const SHARDED: &[(&str, &str)] = &[
    // One visitor's events of a day on one shard: the visitor hash changes daily.
    ("events", "visitor_id"),
    ("rollups", "cityHash64(site_id, day)"),
    // A visit's rows beside its events.
    ("visits", "visitor_id"),
];

pub(super) fn sharding_key(table: &str) -> Option<&'static str> {
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
    /// What `migrate` runs before the migrations: the database (on the server, not in it),
    /// then the table recording the migrations; `ON CLUSTER` on a cluster.
    pub(super) fn setup_statements(&self, cluster: Option<&str>) -> Vec<String> {
        let migrations_table =
            format!("{SQL_CREATE_MIGRATIONS_TABLE} ENGINE = MergeTree\nORDER BY version");
        match cluster {
            None => vec![
                self.server()
                    .query(SQL_CREATE_DATABASE)
                    .bind(Identifier(&self.database))
                    .sql_display()
                    .to_string(),
                migrations_table,
            ],
            Some(cluster) => {
                let mut v = vec![format!(
                    "CREATE DATABASE IF NOT EXISTS {} ON CLUSTER {cluster}",
                    self.database
                )];
                v.extend(cluster_statements(
                    &migrations_table,
                    cluster,
                    &self.database,
                ));
                v
            }
        }
    }

    /// Before the first schema change on a cluster: the cluster is known, ZooKeeper answers,
    /// and every node has the `shard` and `replica` macros. Nothing is created otherwise.
    pub(super) async fn check_cluster(&self, cluster: &str) -> Result<(), StoreError> {
        let refuse = |message: String| StoreError::Migration {
            name: "cluster".into(),
            message,
        };
        let hosts: Vec<(String, u16)> = self
            .server()
            .query(SQL_CLUSTER_HOSTS)
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
            .query(SQL_ZOOKEEPER_ROOT)
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
                .query(SQL_REMOTE_MACROS)
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

    /// The database client of one configured node of each of `cluster`'s shards (by the
    /// node's `shard` macro); why not, when the configured nodes miss a shard.
    pub(super) async fn node_per_shard(&self, cluster: &str) -> Result<Vec<&Client>, String> {
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
    pub(super) async fn sync_replica(&self, table: &str) {
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
}
