//! Moving the events an earlier Footfall kept in `footfall.db` (SQLite) into the events
//! file, on first start and by `footfall migrate`.
//!
//! One UTC day at a time: the day's rows are appended in one DuckDB transaction that also
//! records the day and its count in `moved_days`, and commits only if DuckDB gained exactly
//! as many rows as SQLite holds for that day; the SQLite rows are deleted after that commit.
//! A process killed at any point loses nothing and copies nothing twice: a day is either not
//! copied at all (the transaction did not commit) or copied and recorded, and then only its
//! deletion from SQLite is left to do.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use ::duckdb::{Connection, OptionalExt as _, params};
use chrono::Utc;

use super::{append, in_transaction, query_err};
use crate::store::StoreError;
use crate::store::sqlite::{EVENT_COLUMNS, read_row};

/// Rows appended per call while a day is copied.
const CHUNK_ROWS: usize = 50_000;

fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Query(format!("reading footfall.db: {e}"))
}

/// Moves every event of the SQLite file at `sqlite` into `duck`; returns how many moved.
pub(super) fn move_sqlite_events(sqlite: &Path, duck: &Connection) -> Result<u64, StoreError> {
    let src = rusqlite::Connection::open(sqlite).map_err(sqlite_err)?;
    src.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err)?;
    let any: bool = src
        .query_row("SELECT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))
        .map_err(sqlite_err)?;
    if !any {
        duck.execute_batch("DROP TABLE IF EXISTS moved_days")
            .map_err(query_err)?;
        return Ok(0);
    }
    duck.execute_batch(
        "CREATE TABLE IF NOT EXISTS moved_days (day BIGINT PRIMARY KEY, events UBIGINT NOT NULL, moved_at BIGINT NOT NULL)",
    )
    .map_err(query_err)?;
    let days: Vec<(i64, u64)> = {
        let mut stmt = src
            .prepare("SELECT timestamp / 86400 AS d, count(*) FROM events GROUP BY d ORDER BY d")
            .map_err(sqlite_err)?;
        stmt.query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .map_err(sqlite_err)?
        .collect::<Result<_, _>>()
        .map_err(sqlite_err)?
    };
    let total: u64 = days.iter().map(|(_, n)| n).sum();
    let mut progress = Progress::new(total, days.len());
    tracing::info!(
        events = total,
        days = days.len(),
        "moving the events of footfall.db into the events file"
    );
    for (day, count) in &days {
        let (from, to) = (day * 86_400, (day + 1) * 86_400);
        let recorded: Option<u64> = duck
            .query_row(
                "SELECT events FROM moved_days WHERE day = ?",
                params![day],
                |r| r.get(0),
            )
            .optional()
            .map_err(query_err)?;
        match recorded {
            // Copied before an interruption: only the deletion is left.
            Some(n) if n == *count => {}
            Some(n) => {
                return Err(StoreError::Query(format!(
                    "moving events: day {} was copied with {n} events but footfall.db now holds {count}; nothing was deleted",
                    super::date_of(*day)
                )));
            }
            None => in_transaction(duck, |duck| copy_day(&src, duck, *day, *count))?,
        }
        src.execute(
            "DELETE FROM events WHERE timestamp >= ?1 AND timestamp < ?2",
            [from, to],
        )
        .map_err(sqlite_err)?;
        progress.day_done(*count);
    }
    progress.finish();
    duck.execute_batch("CHECKPOINT; DROP TABLE IF EXISTS moved_days")
        .map_err(query_err)?;
    // Give the space back (secure_delete already zeroed the deleted rows).
    src.execute_batch("VACUUM").map_err(sqlite_err)?;
    Ok(total)
}

/// Copies one UTC day; fails (and the caller's transaction rolls back) unless DuckDB gains
/// exactly `count` rows.
fn copy_day(
    src: &rusqlite::Connection,
    duck: &Connection,
    day: i64,
    count: u64,
) -> Result<(), StoreError> {
    let (from, to) = (day * 86_400, (day + 1) * 86_400);
    let in_duck = |duck: &Connection| -> Result<u64, StoreError> {
        duck.query_row(
            "SELECT count(*) FROM events WHERE timestamp >= ? AND timestamp < ?",
            params![from, to],
            |r| r.get(0),
        )
        .map_err(query_err)
    };
    let before = in_duck(duck)?;
    let mut stmt = src
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE timestamp >= ?1 AND timestamp < ?2"
        ))
        .map_err(sqlite_err)?;
    let mut rows = stmt.query([from, to]).map_err(sqlite_err)?;
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    while let Some(row) = rows.next().map_err(sqlite_err)? {
        chunk.push(read_row(row).map_err(sqlite_err)?);
        if chunk.len() == CHUNK_ROWS {
            append(duck, &chunk)?;
            chunk.clear();
        }
    }
    append(duck, &chunk)?;
    let gained = in_duck(duck)? - before;
    if gained != count {
        return Err(StoreError::Query(format!(
            "moving events: day {} has {count} events in footfall.db but {gained} were copied; nothing was deleted",
            super::date_of(day)
        )));
    }
    duck.execute(
        "INSERT INTO moved_days (day, events, moved_at) VALUES (?, ?, ?)",
        params![day, count, Utc::now().timestamp()],
    )
    .map_err(query_err)?;
    Ok(())
}

/// A bar on a terminal; a log line per day otherwise.
struct Progress {
    total: u64,
    days: usize,
    done: u64,
    days_done: usize,
    bar: bool,
}

impl Progress {
    fn new(total: u64, days: usize) -> Progress {
        Progress {
            total,
            days,
            done: 0,
            days_done: 0,
            bar: std::io::stderr().is_terminal(),
        }
    }

    fn day_done(&mut self, events: u64) {
        self.done += events;
        self.days_done += 1;
        let share = if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        };
        if self.bar {
            let filled = (share * 30.0).round() as usize;
            eprint!(
                "\rmoving events [{}{}] {:>3.0} %  {}/{} days, {}/{} events",
                "#".repeat(filled),
                ".".repeat(30 - filled.min(30)),
                share * 100.0,
                self.days_done,
                self.days,
                self.done,
                self.total
            );
            let _ = std::io::stderr().flush();
        } else {
            tracing::info!(
                days = format!("{}/{}", self.days_done, self.days),
                events = format!("{}/{}", self.done, self.total),
                "moving events"
            );
        }
    }

    fn finish(&self) {
        if self.bar {
            eprintln!();
        }
        tracing::info!(
            events = self.total,
            "events moved; footfall.db keeps sites, keys and accounts"
        );
    }
}
