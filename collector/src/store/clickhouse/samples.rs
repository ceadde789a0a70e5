//! Every statement the store sends, rendered with sample values, for the check that runs them
//! on the current ClickHouse engine (`tests/tests/portability.rs`). The test at the end of
//! this file reads the store's sources and fails when a statement is not listed here.

use clickhouse::Row;

use super::*;

impl ClickHouseStore {
    /// Every statement a single server receives, with sample values bound, as it receives
    /// them: for checking that the SQL runs on current ClickHouse releases too. The planned
    /// statements of the Stats API come from the planner (`query::sql::plan`) instead.
    pub fn sample_statements(&self) -> Vec<String> {
        let render = |q: clickhouse::query::Query| q.sql_display().to_string();
        let mut out = self.setup_statements(None);
        out.extend(MIGRATIONS.iter().flat_map(|(_, _, sql)| statements(sql)));
        out.extend([
            SQL_PING.to_string(),
            SQL_APPLIED_MIGRATIONS.to_string(),
            SQL_SALTS.to_string(),
            SQL_SHARD_MACRO.to_string(),
            render(self.server().query(SQL_CLUSTER_HOSTS).bind("footfall")),
            render(self.db().query(SQL_CLUSTER_SHARDS).bind("footfall")),
            render(self.db().query(SQL_SITES).bind(SITE_DELETED)),
            render(self.db().query(SQL_API_KEYS).bind(SITE_DELETED)),
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
            render(self.db().query(SQL_MERGE_VISIT_DAY).bind("2026-01-01")),
            render(
                self.db()
                    .query(SQL_READ_EVENTS)
                    .bind(1u32)
                    .bind(1_700_000_000u32)
                    .bind(1_700_086_400u32)
                    .bind(100u32),
            ),
            render(
                self.db()
                    .query(SQL_BATCH_WRITTEN)
                    .bind(1u32)
                    .bind(1_700_000_000u32)
                    .bind(42u64),
            ),
            render(
                self.db()
                    .query(SQL_ROLLUP_DAYS)
                    .bind(1u32)
                    .bind("2026-01-01")
                    .bind("2026-01-31"),
            ),
            render(
                self.db()
                    .query(SQL_VISIT_DAYS)
                    .bind(1u32)
                    .bind("2026-01-01")
                    .bind("2026-01-31"),
            ),
            render(
                self.db()
                    .query(SQL_MARK_VISIT_DAY)
                    .bind(1u32)
                    .bind("2026-01-01")
                    .bind(42u64),
            ),
            render(
                self.db()
                    .query(SQL_READ_ROLLUPS)
                    .bind(1u32)
                    .bind("visit:source")
                    .bind("2026-01-01")
                    .bind("2026-01-31"),
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
        // A site's deletions, and the counts that say they finished.
        let (from, to) = (1_700_000_000u32, 1_700_086_400u32);
        let days = |q: clickhouse::query::Query| q.bind(1u32).bind("2026-01-01").bind("2026-01-31");
        let paths = vec!["/a", "/b"];
        let events = |q: &str| {
            self.db()
                .query(q)
                .bind(Identifier("events"))
                .bind(1u32)
                .bind(from)
                .bind(to)
        };
        out.push(render(events(SQL_DELETE_SITE_EVENTS)));
        out.push(render(
            events(SQL_DELETE_SITE_EVENT_PATHS).bind(paths.clone()),
        ));
        let counted = |q: &str| self.db().query(q).bind(1u32).bind(from).bind(to);
        out.push(render(counted(SQL_COUNT_SITE_EVENTS)));
        out.push(render(
            counted(SQL_COUNT_SITE_EVENT_PATHS).bind(paths.clone()),
        ));
        for table in ["visits", "rollups"] {
            out.push(render(days(
                self.db()
                    .query(SQL_DELETE_SITE_DAYS)
                    .bind(Identifier(table)),
            )));
            out.push(render(
                days(self.db().query(SQL_COUNT_SITE_DAYS).bind(Identifier(table)))
                    .bind(1_700_000_000_000_000u64),
            ));
        }
        out.push(render(
            days(
                self.db()
                    .query(SQL_DELETE_SITE_DAY_VALUES)
                    .bind(Identifier("rollups")),
            )
            .bind("event:page")
            .bind(paths.clone()),
        ));
        out.push(render(
            days(self.db().query(SQL_COUNT_SITE_DAY_VALUES))
                .bind("event:page")
                .bind(paths)
                .bind(1_700_000_000_000_000u64),
        ));
        out.push(render(
            self.db()
                .query(SQL_EVENT_PATHNAMES)
                .bind(1u32)
                .bind(1_000_001u64),
        ));
        out.push(render(
            self.db().query(SQL_DELETED_SITES).bind(SITE_DELETED),
        ));
        out
    }

    /// The tables the store inserts rows into, with the columns of each row type (the
    /// `clickhouse` crate sends `INSERT INTO table (columns) FORMAT RowBinary`).
    pub fn sample_inserts(&self) -> Vec<(&'static str, &'static [&'static str])> {
        vec![
            ("footfall_migrations", MigrationRow::COLUMN_NAMES),
            ("events", EventRow::COLUMN_NAMES),
            ("rollups", RollupRecord::COLUMN_NAMES),
            ("sites", SiteVersionRow::COLUMN_NAMES),
            ("records", RecordRow::COLUMN_NAMES),
            ("api_keys", ApiKeyRow::COLUMN_NAMES),
            ("salts", SaltRow::COLUMN_NAMES),
        ]
    }

    /// The statements only a cluster receives (for a cluster named `footfall`): the schema
    /// `ON CLUSTER`, the checks of its layout and partition maintenance. A single engine has
    /// no cluster to run them on, so the portability check parses them (`EXPLAIN AST`).
    pub fn sample_cluster_statements(&self) -> Vec<String> {
        let render = |q: clickhouse::query::Query| q.sql_display().to_string();
        let mut out = self.setup_statements(Some("footfall"));
        out.extend(
            MIGRATIONS
                .iter()
                .flat_map(|(_, _, sql)| statements(sql))
                .flat_map(|s| cluster_statements(&s, "footfall", &self.database)),
        );
        out.push(SQL_ZOOKEEPER_ROOT.to_string());
        out.push(render(
            self.server()
                .query(SQL_REMOTE_MACROS)
                .bind("127.0.0.1:9000"),
        ));
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
                .query(SQL_DELETE_ROLLUPS_OF)
                .bind(Identifier("rollups"))
                .bind(2_147_483_649u32),
        ));
        out.push(render(
            self.db()
                .query(SQL_CLUSTER_DELETE_ROLLUPS_OF)
                .bind(Identifier("rollups_local"))
                .bind(Identifier("footfall"))
                .bind(2_147_483_649u32),
        ));
        let (from, to) = (1_700_000_000u32, 1_700_086_400u32);
        out.push(render(
            self.db()
                .query(SQL_VISITOR_EVENTS)
                .bind(1u32)
                .bind(u64::MAX)
                .bind(from)
                .bind(to),
        ));
        out.push(render(
            self.db()
                .query(SQL_VISITOR_EVENTS_LEFT)
                .bind(1u32)
                .bind(u64::MAX)
                .bind(from)
                .bind(to),
        ));
        out.push(render(
            self.db()
                .query(SQL_ERASE_VISITOR)
                .bind(Identifier("events"))
                .bind(1u32)
                .bind(u64::MAX)
                .bind(from)
                .bind(to),
        ));
        out.push(render(
            self.db()
                .query(SQL_CLUSTER_ERASE_VISITOR)
                .bind(Identifier("events_local"))
                .bind(Identifier("footfall"))
                .bind(1u32)
                .bind(u64::MAX)
                .bind(from)
                .bind(to),
        ));
        out.push(render(
            self.db()
                .query(SQL_ERASE_VISITOR_VISITS)
                .bind(Identifier("visits"))
                .bind(1u32)
                .bind(u64::MAX),
        ));
        out.push(render(
            self.db()
                .query(SQL_CLUSTER_ERASE_VISITOR_VISITS)
                .bind(Identifier("visits_local"))
                .bind(Identifier("footfall"))
                .bind(1u32)
                .bind(u64::MAX),
        ));
        out.push(render(
            self.db()
                .query(SQL_SYNC_REPLICA)
                .bind(Identifier("records")),
        ));
        // A site's deletions on a cluster.
        let (from, to) = (1_700_000_000u32, 1_700_086_400u32);
        let on = |table: &'static str, q: &str| {
            self.db()
                .query(q)
                .bind(Identifier(table))
                .bind(Identifier("footfall"))
                .bind(1u32)
        };
        out.push(render(
            on("events_local", SQL_CLUSTER_DELETE_SITE_EVENTS)
                .bind(from)
                .bind(to),
        ));
        out.push(render(
            on("events_local", SQL_CLUSTER_DELETE_SITE_EVENT_PATHS)
                .bind(from)
                .bind(to)
                .bind(vec!["/a", "/b"]),
        ));
        out.push(render(
            on("visits_local", SQL_CLUSTER_DELETE_SITE_DAYS)
                .bind("2026-01-01")
                .bind("2026-01-31"),
        ));
        out.push(render(
            on("rollups_local", SQL_CLUSTER_DELETE_SITE_DAY_VALUES)
                .bind("2026-01-01")
                .bind("2026-01-31")
                .bind("event:page")
                .bind(vec!["/a", "/b"]),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    /// The store's sources, this file's listing part apart.
    const SOURCES: [&str; 4] = [
        include_str!("mod.rs"),
        include_str!("meta.rs"),
        include_str!("partitions.rs"),
        include_str!("schema.rs"),
    ];

    /// The listing above, and `setup_statements`, which it calls.
    fn listing() -> String {
        let me = include_str!("samples.rs");
        let schema = include_str!("schema.rs");
        let setup = &schema[schema
            .find("fn setup_statements")
            .expect("setup_statements")..];
        let setup = &setup[..setup.find("\n    }\n").expect("its end")];
        format!(
            "{}{setup}",
            &me[..me
                .find("#[cfg(test)]")
                .expect("the tests follow the listing")]
        )
    }

    /// What follows each occurrence of `marker` up to the closing parenthesis (one level).
    fn arguments<'a>(source: &'a str, marker: &str) -> Vec<&'a str> {
        source
            .match_indices(marker)
            .map(|(i, _)| {
                let rest = &source[i + marker.len()..];
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(rest.len(), |(j, _)| j);
                rest[..end].trim()
            })
            .collect()
    }

    #[test]
    fn every_statement_the_store_sends_is_listed() {
        let listing = &listing();
        // Every statement constant is named in the listing.
        let mut constants = 0;
        for source in SOURCES {
            for (i, _) in source.match_indices("const SQL_") {
                let name: String = source[i + "const ".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                constants += 1;
                assert!(
                    ["{name})", "{name}.", "{{name}}"]
                        .iter()
                        .any(|form| listing.contains(&form.replace("{name}", &name))),
                    "{name} is sent by the store but not listed in samples.rs"
                );
            }
        }
        assert!(
            constants >= 25,
            "found only {constants} statement constants"
        );
        // Every statement sent is a constant, or one of the statements built from listed parts.
        let built = [
            // the planner's statements: run by tests/tests/portability.rs from query::sql::plan
            "&statement.sql",
            // a site's deletions: SQL_DELETE_SITE_* and SQL_CLUSTER_DELETE_SITE_*, listed
            "single",
            "cluster",
            // the setup and migration statements, listed through setup_statements and MIGRATIONS
            "stmt",
            "&stmt",
            "&delete_records_sql(chunk.len())",
        ];
        for source in SOURCES {
            for arg in arguments(source, ".query(") {
                assert!(
                    arg.starts_with("SQL_") || built.contains(&arg),
                    "`.query({arg})` sends a statement the listing cannot see: make it a constant and list it"
                );
            }
            // Every table rows are inserted into has its columns listed.
            for (i, _) in source
                .match_indices("insert_row(")
                .chain(source.match_indices(".insert::<"))
            {
                let call = &source[i..];
                let table = &call[..call.find(')').unwrap_or(call.len())];
                let Some(name) = table.split('"').nth(1) else {
                    continue; // the generic helper's own `table` parameter
                };
                assert!(
                    listing.contains(&format!("(\"{name}\", ")),
                    "rows go into {name} but sample_inserts does not list it"
                );
            }
        }
    }
}
