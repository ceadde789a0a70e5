#!/usr/bin/env python3
"""Runs Footfall's ClickHouse statements through chDB, the current ClickHouse engine in process.

Usage: chdb_check.py STATEMENTS.json
The JSON holds {"database": NAME, "statements": [SQL, ...], "parse_only": [SQL, ...],
"inserts": [{"table": T, "columns": [C, ...]}, ...]} as the store renders them
(`ClickHouseStore::sample_statements`, `sample_cluster_statements`, `sample_inserts`). The first statement creates the database; the rest run
inside it, with a sample row in each table before the reads, so that syntax the current engine
has removed or deprecated (old MergeTree parameters, runningDifference, ...) fails here.
"""
import json
import sys

from chdb import session


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    statements = spec["statements"]
    sess = session.Session()
    samples = [
        "INSERT INTO events (site_id, timestamp, name, hostname, pathname, visitor_id, session_id, "
        "props_keys, props_values) VALUES (1, toDateTime('2026-01-01 10:00:00', 'UTC'), 'pageview', "
        "'example.com', '/', 42, 7, ['plan'], ['pro'])",
        "INSERT INTO sites (id, domain, timezone, created_at) VALUES (1, 'example.com', 'UTC', now())",
        "INSERT INTO salts (day, salt, created_at) VALUES ('2026-01-01', 'ab', now())",
    ]
    order = [statements[0], f"USE {spec['database']}"]
    creates = [s for s in statements[1:] if s.lstrip().upper().startswith("CREATE")]
    others = [s for s in statements[1:] if s not in creates]
    order += creates + samples + others
    version = sess.query("SELECT version()")

    def runs(sql, failure):
        """Whether `sql` runs; prints `failure` and chDB's error when not."""
        try:
            sess.query(sql)
        except Exception as e:  # chDB raises its own error types
            print(f"{failure}:\n{e}")
            return False
        return True

    for sql in order:
        if not runs(sql, f"FAILED on current ClickHouse ({version!s}):\n{sql}"):
            return 1
        print(f"ok: {sql.splitlines()[0][:100]}")
    # The tables rows are inserted into (`INSERT INTO t(columns) FORMAT RowBinary`): every
    # column the store sends exists in the current engine's schema.
    for insert in spec.get("inserts", []):
        table = insert["table"]
        columns = ", ".join(f"`{c}`" for c in insert["columns"])
        if not runs(f"SELECT {columns} FROM {table} LIMIT 0",
                    f"FAILED: the columns inserted into {table} are not all there"):
            return 1
        print(f"columns: {table} ({len(insert['columns'])})")
    # Statements for a cluster (ON CLUSTER, Replicated engines, Distributed): the current
    # engine's parser must accept them; they run for real on the 18.16 test cluster.
    for sql in spec.get("parse_only", []):
        if not runs(f"EXPLAIN AST {sql}", f"FAILED to parse on current ClickHouse:\n{sql}"):
            return 1
        print(f"parsed: {sql.splitlines()[0][:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
