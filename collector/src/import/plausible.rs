//! Plausible's CSV export: the ZIP its Imports & Exports settings write, one CSV per table
//! (`imported_<table>_<first YYYYMMDD>_<last YYYYMMDD>.csv`), read into imported rollups,
//! and a site's own data written in the same format.
//!
//! **Imports are kept apart.** An import's rows are daily rollups, like a native day's, stored
//! under an id of their own (above every site id) and listed by an `import` record. The record
//! is written last, so an import that fails half-way is never read: it is all or nothing.
//! Deleting an import deletes its record, then its rows. Queries add an import's rows to the
//! site's own only when asked to (`include.imports`), and only for days without native data.
//!
//! **What the columns mean** (Plausible's export queries): every row is one site-local day and
//! one value. `visitors` are that day's unique visitors of the value, `visits` (`entrances`,
//! `exits`) a count of sessions, `bounces` a count of bounced sessions, `visit_duration` the
//! sessions' total seconds. So the rows add up across days as Footfall's own rollups do.
//! Columns are bound by their header name (their order has changed between Plausible versions)
//! and unknown columns are ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

use chrono::{Datelike, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{ImportError, site_named, site_tz};
use crate::query::model::{DateRange, Dimension, Field, Property, Query};
use crate::query::rollup::{counts, counts_of, rollup_row, tiers};
use crate::query::run::{Counts, Policy};
use crate::query::sql::Sample;
use crate::query::time::Span;
use crate::store::{RollupRow, Site, Store};

/// Record kind of the imports of aggregate history (Plausible, GA4).
pub const IMPORT_KIND: &str = "import";
/// Import ids start here, above every site id, so their rows never mix with a site's.
const FIRST_IMPORT_ID: u32 = 0x8000_0000;
/// Longest dimension value accepted, in bytes.
const MAX_VALUE: usize = 4_096;
/// Most rows one export may hold (all files together).
const MAX_ROWS: u64 = 50_000_000;
/// Most bytes one file may decompress to.
const MAX_FILE_BYTES: u64 = 8 << 30;
/// Largest count one cell may hold: sums over every row of an export stay far from
/// overflowing.
const MAX_COUNT: i64 = 10_000_000_000;
/// Rows written per store call.
const WRITE_ROWS: usize = 10_000;

/// One import of aggregate history, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// The id its rows are stored under (also the record's id).
    pub id: u32,
    pub site_id: u32,
    /// `plausible` or `ga4`.
    pub source: String,
    /// The file (or property) it came from.
    pub origin: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// Days imported and rows stored.
    pub days: u64,
    pub rows: u64,
    /// The dimensions (`visit:source`, …) its rows break down by; totals always.
    pub dimensions: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// False while its rows are being written (or when that was interrupted).
    pub complete: bool,
}

/// The imports of a site, oldest first; with `complete_only`, those whose rows are all written.
pub async fn imports_of(
    store: &dyn Store,
    site_id: u32,
    complete_only: bool,
) -> Result<Vec<ImportRecord>, crate::store::StoreError> {
    let mut out: Vec<ImportRecord> = store
        .meta()
        .records(IMPORT_KIND)
        .await?
        .into_iter()
        .filter_map(|(_, body)| serde_json::from_str::<ImportRecord>(&body).ok())
        .filter(|r| r.site_id == site_id && (r.complete || !complete_only))
        .collect();
    out.sort_by_key(|r| (r.created_at, r.id));
    Ok(out)
}

/// Deletes import `id` of `site_id` (its record, then its rows); false if there is none.
pub async fn delete_import(
    store: &dyn Store,
    site_id: u32,
    id: u32,
) -> Result<bool, crate::store::StoreError> {
    let Some(found) = imports_of(store, site_id, false)
        .await?
        .into_iter()
        .find(|r| r.id == id)
    else {
        return Ok(false);
    };
    store
        .meta()
        .delete_record(IMPORT_KIND, &found.id.to_string())
        .await?;
    store.delete_rollups_of(found.id).await?;
    Ok(true)
}

/// The tables of the export, their columns that name a value (with the dimension each gives),
/// and the count columns they must have.
struct Table {
    name: &'static str,
    dims: &'static [(&'static str, &'static str)],
    counts: &'static [&'static str],
}

const TABLES: [Table; 10] = [
    Table {
        name: "visitors",
        dims: &[],
        counts: &[
            "visitors",
            "pageviews",
            "bounces",
            "visits",
            "visit_duration",
        ],
    },
    Table {
        name: "sources",
        dims: &[
            ("source", "visit:source"),
            ("referrer", "visit:referrer"),
            ("utm_source", "visit:utm_source"),
            ("utm_medium", "visit:utm_medium"),
            ("utm_campaign", "visit:utm_campaign"),
            ("utm_content", "visit:utm_content"),
            ("utm_term", "visit:utm_term"),
        ],
        counts: &["visitors", "visits", "visit_duration", "bounces"],
    },
    Table {
        name: "pages",
        dims: &[("page", "event:page")],
        counts: &["visitors", "pageviews"],
    },
    Table {
        name: "entry_pages",
        dims: &[("entry_page", "visit:entry_page")],
        counts: &["visitors", "entrances", "visit_duration", "bounces"],
    },
    Table {
        name: "exit_pages",
        dims: &[("exit_page", "visit:exit_page")],
        counts: &["visitors", "exits"],
    },
    Table {
        name: "custom_events",
        dims: &[("name", "event:name")],
        counts: &["visitors", "events"],
    },
    Table {
        name: "locations",
        dims: &[("country", "visit:country"), ("region", "visit:region")],
        counts: &["visitors", "visits", "visit_duration", "bounces"],
    },
    Table {
        name: "devices",
        dims: &[("device", "visit:device")],
        counts: &["visitors", "visits", "visit_duration", "bounces"],
    },
    Table {
        name: "browsers",
        dims: &[
            ("browser", "visit:browser"),
            ("browser_version", "visit:browser_version"),
        ],
        counts: &["visitors", "visits", "visit_duration", "bounces"],
    },
    Table {
        name: "operating_systems",
        dims: &[
            ("operating_system", "visit:os"),
            ("operating_system_version", "visit:os_version"),
        ],
        counts: &["visitors", "visits", "visit_duration", "bounces"],
    },
];

/// The count columns read when present (others are ignored).
const COUNT_COLUMNS: [&str; 8] = [
    "visitors",
    "visits",
    "pageviews",
    "bounces",
    "visit_duration",
    "entrances",
    "exits",
    "events",
];

/// Event names Plausible keeps for itself, left out of custom events.
const INTERNAL_EVENTS: [&str; 2] = ["pageview", "engagement"];

/// An export, read: rollup rows by (day, dimension, value), and the dimensions present.
#[derive(Debug, Default)]
pub struct Parsed {
    rows: BTreeMap<(NaiveDate, &'static str, String), Counts>,
    dimensions: BTreeSet<&'static str>,
    /// Files read, and files left alone (with why).
    pub files: Vec<String>,
    pub ignored: Vec<String>,
}

impl Parsed {
    /// Adds `c` to the row of `dimension` (`""` for the totals) and `value` on `day`.
    pub(super) fn add(
        &mut self,
        day: NaiveDate,
        dimension: &'static str,
        value: String,
        c: &Counts,
    ) {
        self.dimensions.insert(dimension);
        self.rows.entry((day, dimension, value)).or_default().add(c);
    }

    /// Adds each day's custom events to its totals, as a native day's totals count them.
    pub(super) fn count_custom_events(&mut self) {
        let extra: Vec<(NaiveDate, i64)> = self
            .rows
            .iter()
            .filter(|((_, d, v), _)| *d == "event:name" && v != "pageview")
            .map(|((day, _, _), c)| (*day, c.events))
            .collect();
        for (day, events) in extra {
            if let Some(t) = self.rows.get_mut(&(day, "", String::new())) {
                t.events += events;
            }
        }
    }

    /// The days with a totals row (from `imported_visitors`).
    fn days(&self) -> BTreeSet<NaiveDate> {
        self.rows
            .keys()
            .filter(|(_, d, _)| d.is_empty())
            .map(|(day, _, _)| *day)
            .collect()
    }
}

/// Which table a file of the archive holds: `Ok(None)` for what an archive tool adds
/// (folders, `__MACOSX/`, dotfiles) and for Plausible tables Footfall has no use for.
fn table_of(name: &str) -> Result<Option<&'static Table>, String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    if name.ends_with('/') || name.starts_with("__MACOSX/") || base.starts_with('.') {
        return Ok(None);
    }
    let unknown = || {
        format!(
            "{name}: not a file of a Plausible export (imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv, \
             with table one of {})",
            TABLES.map(|t| t.name).join(", ")
        )
    };
    let Some(stem) = base.strip_suffix(".csv") else {
        return Err(unknown());
    };
    let stem = stem.strip_prefix("imported_").unwrap_or(stem);
    // Without the dates, or with two YYYYMMDD dates after the table's name.
    let date = |p: &str| p.len() == 8 && p.bytes().all(|b| b.is_ascii_digit());
    let mut parts = stem.rsplitn(3, '_');
    let table = match (parts.next(), parts.next(), parts.next()) {
        (Some(to), Some(from), Some(table)) if date(to) && date(from) => table,
        _ => stem,
    };
    if table == "custom_props" {
        return Ok(None);
    }
    TABLES
        .iter()
        .find(|t| t.name == table)
        .map(Some)
        .ok_or_else(unknown)
}

/// Reads a Plausible export archive. Any damage (an unreadable archive, an unknown file, a
/// missing column, a bad date or number) is an error naming the file, line and column.
pub fn parse<R: Read + Seek>(archive: R, origin: &str) -> Result<Parsed, ImportError> {
    let input = |message: String| ImportError::Input {
        path: origin.to_string(),
        message,
    };
    let mut zip = zip::ZipArchive::new(archive)
        .map_err(|e| input(format!("not a readable ZIP archive: {e}")))?;
    let mut parsed = Parsed::default();
    let mut total = 0u64;
    for i in 0..zip.len() {
        let file = zip
            .by_index(i)
            .map_err(|e| input(format!("entry {i} of the archive cannot be read: {e}")))?;
        let name = file
            .name()
            .map_err(|e| input(format!("entry {i} of the archive has no usable name: {e}")))?
            .to_string();
        let table = match table_of(&name) {
            Ok(Some(t)) => t,
            Ok(None) => {
                if !name.ends_with('/') {
                    parsed.ignored.push(name);
                }
                continue;
            }
            Err(e) => return Err(input(e)),
        };
        let limited = file.take(MAX_FILE_BYTES);
        total += read_table(limited, table, &name, &mut parsed).map_err(input)?;
        if total > MAX_ROWS {
            return Err(input(format!(
                "more than {MAX_ROWS} rows: split the export into shorter date ranges"
            )));
        }
        parsed.files.push(name);
    }
    if !parsed.dimensions.contains("") {
        return Err(input(
            "the archive has no imported_visitors file: is it an export from Plausible's \
             Imports & Exports settings?"
                .into(),
        ));
    }
    parsed.count_custom_events();
    Ok(parsed)
}

/// Reads one table's CSV into `parsed`; returns its rows.
fn read_table<R: Read>(
    input: R,
    table: &'static Table,
    name: &str,
    parsed: &mut Parsed,
) -> Result<u64, String> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let headers = csv
        .headers()
        .map_err(|e| format!("{name}: the header line cannot be read: {e}"))?
        .clone();
    let column = |c: &str| headers.iter().position(|h| h.trim() == c);
    let date_at = column("date").ok_or_else(|| format!("{name}: no `date` column"))?;
    let mut dims = Vec::new();
    for (col, dim) in table.dims {
        let at = column(col).ok_or_else(|| format!("{name}: no `{col}` column"))?;
        dims.push((*col, *dim, at));
    }
    for c in table.counts {
        if column(c).is_none() {
            return Err(format!("{name}: no `{c}` column"));
        }
    }
    let counts: Vec<(&str, usize)> = COUNT_COLUMNS
        .iter()
        .filter_map(|c| column(c).map(|at| (*c, at)))
        .collect();
    let mut rows = 0u64;
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(format!("{name}, line {line}: {e}"));
            }
        }
        rows += 1;
        let line = record.position().map_or(0, |p| p.line());
        let at = |i: usize| record.get(i).unwrap_or("");
        let raw_date = at(date_at);
        let day = NaiveDate::parse_from_str(raw_date.trim(), "%Y-%m-%d").map_err(|_| {
            format!("{name}, line {line}, column `date`: `{raw_date}` is not a YYYY-MM-DD date")
        })?;
        let mut n: BTreeMap<&str, i64> = BTreeMap::new();
        for (c, i) in &counts {
            let v = at(*i).trim();
            let value = if v.is_empty() || v == "\\N" {
                0
            } else {
                v.parse::<i64>()
                    .ok()
                    .filter(|x| (0..=MAX_COUNT).contains(x))
                    .ok_or_else(|| {
                        format!(
                            "{name}, line {line}, column `{c}`: `{v}` is not a whole number \
                             from 0 to {MAX_COUNT}"
                        )
                    })?
            };
            n.insert(c, value);
        }
        let get = |c: &str| n.get(c).copied().unwrap_or(0);
        let pageviews = get("pageviews");
        let c = Counts {
            visitors: get("visitors"),
            visits: get("visits") + get("entrances") + get("exits"),
            pageviews,
            events: if table.name == "custom_events" {
                get("events")
            } else {
                pageviews
            },
            bounces: get("bounces"),
            duration: get("visit_duration"),
            ..Counts::default()
        };
        let mut values = Vec::with_capacity(dims.len());
        for (col, _, i) in &dims {
            let v = at(*i);
            if v.len() > MAX_VALUE {
                return Err(format!(
                    "{name}, line {line}, column `{col}`: longer than {MAX_VALUE} bytes"
                ));
            }
            values.push(v);
        }
        let mut add = |dim: &'static str, value: String, c: &Counts| parsed.add(day, dim, value, c);
        match table.name {
            "visitors" => {
                add("", String::new(), &c);
                add("event:name", "pageview".into(), &c);
            }
            "custom_events" => {
                if !INTERNAL_EVENTS.contains(&values[0]) {
                    add("event:name", values[0].to_string(), &c);
                }
            }
            "sources" => {
                for ((_, dim, _), v) in dims.iter().zip(&values) {
                    add(dim, v.to_string(), &c);
                }
                let channel =
                    crate::ingest::referrer::channel_of(values[0], values[1], values[2], values[3]);
                add("visit:channel", channel.to_string(), &c);
            }
            "locations" => {
                // Plausible leaves unknown countries out; a region is an ISO 3166-2 code.
                add("visit:country", values[0].to_string(), &c);
                add("visit:region", values[1].to_string(), &c);
            }
            _ => {
                for ((_, dim, _), v) in dims.iter().zip(&values) {
                    add(dim, v.to_string(), &c);
                }
            }
        }
    }
    Ok(rows)
}

/// What an import of a Plausible export did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlausibleSummary {
    /// The import's id (`footfall import delete` takes it); none when nothing was imported.
    pub id: Option<u32>,
    /// Days imported, and rows stored.
    pub days: u64,
    pub rows: u64,
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    /// Days of the export left out, by reason: `native_data` (the site has its own data
    /// that day), `already_imported`, `not_closed` (today or later), `past_retention`.
    pub skipped: BTreeMap<String, u64>,
    /// Files read, and files left alone.
    pub files: Vec<String>,
    pub ignored: Vec<String>,
}

impl PlausibleSummary {
    pub fn render(&self) -> String {
        let mut out = match (self.id, self.first_day, self.last_day) {
            (Some(id), Some(first), Some(last)) => format!(
                "imported {} days ({first} to {last}), {} rows, as import {id}",
                self.days, self.rows
            ),
            _ => "imported nothing".to_string(),
        };
        if !self.skipped.is_empty() {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            out.push_str(&format!("; days left out: {}", reasons.join(", ")));
        }
        if !self.files.is_empty() {
            out.push_str(&format!("; read {}", self.files.join(", ")));
        }
        if !self.ignored.is_empty() {
            out.push_str(&format!("; ignored {}", self.ignored.join(", ")));
        }
        out
    }
}

/// Days of `[first, last]` on which `site` has data of its own: rollups, or raw events not
/// rolled up yet.
pub async fn native_days(
    store: &dyn Store,
    site: &Site,
    tz: Tz,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<BTreeSet<NaiveDate>, ImportError> {
    // Every closed day within raw retention has a totals row, empty days too.
    let mut days: BTreeSet<NaiveDate> = store
        .read_rollups(site.id, "", first, last)
        .await?
        .into_iter()
        .filter(|r| r.events > 0 || r.visitors > 0)
        .map(|r| r.day)
        .collect();
    let rolled_up: BTreeSet<NaiveDate> = store
        .rollup_days(site.id, first, last)
        .await?
        .into_iter()
        .collect();
    if let Some(earliest) = store.earliest_event(site.id).await? {
        // Raw events start on the earliest's UTC day (a day earlier in zones west of UTC).
        let utc_day = chrono::DateTime::from_timestamp(i64::from(earliest), 0)
            .unwrap_or_default()
            .date_naive();
        let mut day = (utc_day - Days::new(1)).max(first);
        while day <= last {
            if !rolled_up.contains(&day) {
                let span = Span::days(tz, day, day);
                let n = crate::query::rollup::events_between(
                    store,
                    site.id,
                    span.from,
                    span.to,
                    crate::store::Deadline::after(crate::query::rollup::ROLLUP_DAY_TIMEOUT),
                )
                .await
                .map_err(|e| ImportError::Rollup(e.to_string()))?;
                if n > 0 {
                    days.insert(day);
                }
            }
            day = day + Days::new(1);
        }
    }
    Ok(days)
}

/// Stores a parsed export as a new import of `site`: days with native data or an earlier
/// import, today and later, and days past `aggregate_retention_days` are left out. The rows go
/// in first and the import's record last; a failure deletes what was written.
pub async fn store_parsed(
    store: &dyn Store,
    site: &Site,
    parsed: Parsed,
    origin: &str,
    source: &str,
    now: chrono::DateTime<Utc>,
    aggregate_retention_days: u32,
) -> Result<PlausibleSummary, ImportError> {
    let tz = site_tz(site)?;
    let mut summary = PlausibleSummary {
        files: parsed.files.clone(),
        ignored: parsed.ignored.clone(),
        ..PlausibleSummary::default()
    };
    let days = parsed.days();
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return Ok(summary);
    };
    let today = now.with_timezone(&tz).date_naive();
    let oldest = today
        .checked_sub_days(Days::new(u64::from(aggregate_retention_days)))
        .unwrap_or(today);
    let native = native_days(store, site, tz, first, last.min(today)).await?;
    let mut imported = BTreeSet::new();
    let earlier = imports_of(store, site.id, true).await?;
    for other in &earlier {
        imported.extend(store.rollup_days(other.id, first, last).await?);
    }
    let mut keep = BTreeSet::new();
    for day in &days {
        let reason = if *day >= today {
            "not_closed"
        } else if *day < oldest {
            "past_retention"
        } else if native.contains(day) {
            "native_data"
        } else if imported.contains(day) {
            "already_imported"
        } else {
            keep.insert(*day);
            continue;
        };
        *summary.skipped.entry(reason.to_string()).or_default() += 1;
    }
    let (Some(first), Some(last)) = (keep.first().copied(), keep.last().copied()) else {
        return Ok(summary);
    };
    let taken: BTreeSet<String> = store
        .meta()
        .records(IMPORT_KIND)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let id = loop {
        let id = FIRST_IMPORT_ID | (rand::random::<u32>() >> 1);
        if !taken.contains(&id.to_string()) {
            break id;
        }
    };
    let rows: Vec<RollupRow> = parsed
        .rows
        .into_iter()
        .filter(|((day, _, _), _)| keep.contains(day))
        .map(|((day, dimension, value), c)| rollup_row(id, day, dimension, value, &c))
        .collect();
    let mut record = ImportRecord {
        id,
        site_id: site.id,
        source: source.to_string(),
        origin: origin.to_string(),
        first_day: first,
        last_day: last,
        days: keep.len() as u64,
        rows: rows.len() as u64,
        dimensions: parsed
            .dimensions
            .iter()
            .filter(|d| !d.is_empty())
            .map(|d| d.to_string())
            .collect(),
        created_at: now.timestamp(),
        complete: false,
    };
    let put = |r: &ImportRecord| serde_json::to_string(r).unwrap_or_default();
    store
        .meta()
        .put_record(IMPORT_KIND, &id.to_string(), &put(&record))
        .await?;
    let written = async {
        for chunk in rows.chunks(WRITE_ROWS) {
            store.put_rollups(chunk).await?;
        }
        record.complete = true;
        store
            .meta()
            .put_record(IMPORT_KIND, &id.to_string(), &put(&record))
            .await
    };
    if let Err(e) = written.await {
        let _ = store.delete_rollups_of(id).await;
        let _ = store
            .meta()
            .delete_record(IMPORT_KIND, &id.to_string())
            .await;
        return Err(e.into());
    }
    summary.id = Some(id);
    summary.days = record.days;
    summary.rows = record.rows;
    summary.first_day = Some(first);
    summary.last_day = Some(last);
    Ok(summary)
}

/// Imports the Plausible export at `path` into `domain`'s site.
pub async fn import_plausible_file(
    store: &dyn Store,
    domain: &str,
    path: &std::path::Path,
    now: chrono::DateTime<Utc>,
    aggregate_retention_days: u32,
) -> Result<PlausibleSummary, ImportError> {
    let site = site_named(store, domain).await?;
    let origin = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let file = std::fs::File::open(path).map_err(|e| ImportError::Input {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let owned = origin.clone();
    let parsed = tokio::task::spawn_blocking(move || parse(std::io::BufReader::new(file), &owned))
        .await
        .map_err(|e| ImportError::Job(e.to_string()))??;
    store_parsed(
        store,
        &site,
        parsed,
        &origin,
        "plausible",
        now,
        aggregate_retention_days,
    )
    .await
}

/// The file name Plausible gives an export: the domain with `_` for `.`, and the day.
pub fn export_name(site: &Site, today: NaiveDate) -> String {
    format!(
        "{}_{:04}{:02}{:02}.zip",
        site.domain.replace('.', "_"),
        today.year(),
        today.month(),
        today.day()
    )
}

/// One exported table: its columns (after `date`) and, per row, the day, the values of the
/// named dimensions and the counts.
struct Export {
    table: &'static str,
    header: &'static [&'static str],
    props: &'static [Property],
}

const EXPORTS: [Export; 10] = [
    Export {
        table: "visitors",
        header: &[
            "visitors",
            "pageviews",
            "bounces",
            "visits",
            "visit_duration",
        ],
        props: &[],
    },
    Export {
        table: "sources",
        header: &[
            "source",
            "referrer",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "pageviews",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
        ],
        props: &[
            Property::Source,
            Property::Referrer,
            Property::UtmSource,
            Property::UtmMedium,
            Property::UtmCampaign,
            Property::UtmContent,
            Property::UtmTerm,
        ],
    },
    Export {
        table: "pages",
        header: &["hostname", "page", "visits", "visitors", "pageviews"],
        props: &[Property::Hostname, Property::Page],
    },
    Export {
        table: "entry_pages",
        header: &[
            "entry_page",
            "visitors",
            "entrances",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        props: &[Property::EntryPage],
    },
    Export {
        table: "exit_pages",
        header: &[
            "exit_page",
            "visitors",
            "visit_duration",
            "exits",
            "bounces",
            "pageviews",
        ],
        props: &[Property::ExitPage],
    },
    Export {
        table: "custom_events",
        header: &["name", "link_url", "path", "visitors", "events"],
        props: &[Property::Name],
    },
    Export {
        table: "locations",
        header: &[
            "country",
            "region",
            "city",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        props: &[Property::Country, Property::Region],
    },
    Export {
        table: "devices",
        header: &[
            "device",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        props: &[Property::Device],
    },
    Export {
        table: "browsers",
        header: &[
            "browser",
            "browser_version",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        props: &[Property::Browser, Property::BrowserVersion],
    },
    Export {
        table: "operating_systems",
        header: &[
            "operating_system",
            "operating_system_version",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        props: &[Property::Os, Property::OsVersion],
    },
];

/// The counts of `props` per day over `[first, last]`: from visit rows or raw events where
/// they are kept (every combination of values), else from the daily rollups (one property
/// at a time, the others left empty).
async fn table_rows(
    store: &dyn Store,
    site: &Site,
    tz: Tz,
    policy: &Policy,
    props: &[Property],
    first: NaiveDate,
    last: NaiveDate,
) -> Result<BTreeMap<(NaiveDate, Vec<String>), Counts>, ImportError> {
    let mut out = BTreeMap::new();
    let today = policy.now.with_timezone(&tz).date_naive();
    // The first whole day whose raw events retention keeps.
    let raw_first = today
        .checked_sub_days(Days::new(u64::from(policy.raw_retention_days)))
        .unwrap_or(today)
        + Days::new(1);
    let mut dimensions = vec![Dimension::Time(crate::query::model::TimeBucket::Day)];
    dimensions.extend(props.iter().map(|p| Dimension::Field(Field::Column(*p))));
    let query = |first: NaiveDate, last: NaiveDate, dimensions: Vec<Dimension>| Query {
        dimensions,
        ..Query::internal(
            &site.domain,
            crate::query::rollup::ROLLED_UP.to_vec(),
            DateRange::Custom(first, last),
        )
    };
    let run_err = |e: crate::query::run::RunError| ImportError::Rollup(e.to_string());
    let recent = first.max(raw_first);
    if recent <= last {
        let q = query(recent, last, dimensions.clone());
        let span = Span::days(tz, recent, last);
        let covered = tiers(store, site, &q, tz, &span, policy)
            .await
            .map_err(run_err)?;
        let found = counts(store, site, &q, tz, &span, policy, Sample::EXACT, &covered)
            .await
            .map_err(run_err)?;
        for (mut key, c) in found {
            let day = key.remove(0).parse::<NaiveDate>().unwrap_or(recent);
            out.insert((day, key), c);
        }
    }
    let old_last = last.min(raw_first - Days::new(1));
    if first <= old_last {
        let names: Vec<&str> = if props.is_empty() {
            vec![""]
        } else {
            props.iter().map(|p| p.name()).collect()
        };
        for (i, name) in names.iter().enumerate() {
            for row in store.read_rollups(site.id, name, first, old_last).await? {
                let mut key = vec![String::new(); props.len()];
                if !props.is_empty() {
                    key[i] = row.value.clone();
                }
                out.entry((row.day, key)).or_insert(counts_of(&row));
            }
        }
    }
    Ok(out)
}

/// Writes `site`'s own data over `[first, last]` (closed days) as a Plausible export archive.
pub async fn export_plausible<W: Write + Seek>(
    store: &dyn Store,
    site: &Site,
    policy: &Policy,
    first: NaiveDate,
    last: NaiveDate,
    out: W,
) -> Result<W, ImportError> {
    let tz = site_tz(site)?;
    let suffix = format!("_{}_{}.csv", first.format("%Y%m%d"), last.format("%Y%m%d"));
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let failed = |e: &dyn std::fmt::Display| ImportError::Job(format!("writing the archive: {e}"));
    for export in &EXPORTS {
        let rows = table_rows(store, site, tz, policy, export.props, first, last).await?;
        let mut csv = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::NonNumeric)
            .from_writer(Vec::new());
        let mut header = vec!["date"];
        header.extend(export.header);
        csv.write_record(&header).map_err(|e| failed(&e))?;
        for ((day, values), c) in rows {
            if c.visitors == 0 && c.pageviews == 0 && c.events == 0 && c.visits == 0 {
                // A closed day without data has an empty rollup; Plausible writes no row.
                continue;
            }
            if export.table == "custom_events" && INTERNAL_EVENTS.contains(&values[0].as_str()) {
                continue;
            }
            if export.table == "locations" && values[0].is_empty() {
                // Plausible's own exports leave unknown countries out.
                continue;
            }
            let mut fields: Vec<String> = vec![day.to_string()];
            for column in export.header {
                let value = match *column {
                    "visitors" => c.visitors.to_string(),
                    "visits" | "entrances" | "exits" => c.visits.to_string(),
                    "pageviews" => c.pageviews.to_string(),
                    "events" => c.events.to_string(),
                    "bounces" => c.bounces.to_string(),
                    "visit_duration" => c.duration.to_string(),
                    "city" => "0".to_string(),
                    "link_url" | "path" => String::new(),
                    name => {
                        let at = export
                            .props
                            .iter()
                            .position(|p| export_column(*p) == name)
                            .unwrap_or(0);
                        values.get(at).cloned().unwrap_or_default()
                    }
                };
                fields.push(value);
            }
            csv.write_record(&fields).map_err(|e| failed(&e))?;
        }
        let bytes = csv.into_inner().map_err(|e| failed(&e))?;
        zip.start_file(format!("imported_{}{suffix}", export.table), options)
            .map_err(|e| failed(&e))?;
        zip.write_all(&bytes).map_err(|e| failed(&e))?;
    }
    zip.finish().map_err(|e| failed(&e))
}

/// The export column a property's values go in.
fn export_column(p: Property) -> &'static str {
    match p {
        Property::Source => "source",
        Property::Referrer => "referrer",
        Property::UtmSource => "utm_source",
        Property::UtmMedium => "utm_medium",
        Property::UtmCampaign => "utm_campaign",
        Property::UtmContent => "utm_content",
        Property::UtmTerm => "utm_term",
        Property::Hostname => "hostname",
        Property::Page => "page",
        Property::EntryPage => "entry_page",
        Property::ExitPage => "exit_page",
        Property::Name => "name",
        Property::Country => "country",
        Property::Region => "region",
        Property::Device => "device",
        Property::Browser => "browser",
        Property::BrowserVersion => "browser_version",
        Property::Os => "operating_system",
        Property::OsVersion => "operating_system_version",
        _ => "",
    }
}

/// Work on a site's imported history, as the CLI hands it to a running collector (or does it
/// itself when none runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum HistoryJob {
    /// Import a Plausible export archive.
    ImportPlausible { site: String, path: PathBuf },
    /// Import a GA4 property's reports.
    ImportGa4(super::ga4::Ga4Job),
    /// List a site's imports.
    List { site: String },
    /// Delete one import.
    Delete { site: String, id: u32 },
    /// Write the site's own data as a Plausible export archive at `path`.
    ExportPlausible {
        site: String,
        path: PathBuf,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    },
}

/// Retention and time, as the collector's configuration gives them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub now: chrono::DateTime<Utc>,
    pub raw_retention_days: u32,
    pub aggregate_retention_days: u32,
}

/// The closed days of `site` to export when the command names none: from its first rolled-up
/// day (or first raw event) to yesterday.
async fn export_range(
    store: &dyn Store,
    site: &Site,
    limits: &Limits,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(NaiveDate, NaiveDate), ImportError> {
    let tz = site_tz(site)?;
    let yesterday = limits.now.with_timezone(&tz).date_naive() - Days::new(1);
    let oldest = yesterday
        .checked_sub_days(Days::new(u64::from(limits.aggregate_retention_days)))
        .unwrap_or(yesterday);
    let to = to.unwrap_or(yesterday).min(yesterday);
    let from = match from {
        Some(f) => f,
        None => {
            let rolled = store.rollup_days(site.id, oldest, to).await?;
            let raw = store.earliest_event(site.id).await?.map(|t| {
                chrono::DateTime::from_timestamp(i64::from(t), 0)
                    .unwrap_or_default()
                    .with_timezone(&tz)
                    .date_naive()
            });
            match (rolled.first().copied(), raw) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => {
                    return Err(ImportError::Job(format!(
                        "{} has no closed day with data to export",
                        site.domain
                    )));
                }
            }
        }
    };
    if from > to {
        return Err(ImportError::Job(format!(
            "nothing to export: the range starts on {from}, after its last closed day {to}"
        )));
    }
    Ok((from, to))
}

/// Runs `job`; the answer is JSON (a summary, a list, whether an import was deleted, or the
/// archive written).
pub async fn run_job(
    store: &dyn Store,
    limits: Limits,
    job: &HistoryJob,
) -> Result<serde_json::Value, ImportError> {
    match job {
        HistoryJob::ImportPlausible { site, path } => {
            let summary = import_plausible_file(
                store,
                site,
                path,
                limits.now,
                limits.aggregate_retention_days,
            )
            .await?;
            Ok(to_json(&summary))
        }
        HistoryJob::ImportGa4(job) => {
            let summary = super::ga4::import_ga4(
                store,
                job,
                limits.now,
                limits.aggregate_retention_days,
                &mut |line| tracing::info!(site = %job.site, "GA4 import: {line}"),
            )
            .await?;
            Ok(to_json(&summary))
        }
        HistoryJob::List { site } => {
            let site = site_named(store, site).await?;
            Ok(to_json(&imports_of(store, site.id, false).await?))
        }
        HistoryJob::Delete { site, id } => {
            let site = site_named(store, site).await?;
            Ok(serde_json::Value::Bool(
                delete_import(store, site.id, *id).await?,
            ))
        }
        HistoryJob::ExportPlausible {
            site,
            path,
            from,
            to,
        } => {
            let site = site_named(store, site).await?;
            let (bytes, from, to) = export_archive(store, &site, &limits, *from, *to).await?;
            let input = |e: std::io::Error| ImportError::Input {
                path: path.display().to_string(),
                message: e.to_string(),
            };
            std::fs::write(path, &bytes).map_err(input)?;
            Ok(serde_json::json!({
                "path": path,
                "bytes": bytes.len(),
                "from": from,
                "to": to,
            }))
        }
    }
}

/// `site`'s own closed days of `[from, to]` (by default all of them, see [`export_range`]) as
/// a Plausible export archive; with the days it covers.
pub async fn export_archive(
    store: &dyn Store,
    site: &Site,
    limits: &Limits,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(Vec<u8>, NaiveDate, NaiveDate), ImportError> {
    let (from, to) = export_range(store, site, limits, from, to).await?;
    let policy = Policy {
        now: limits.now,
        raw_retention_days: limits.raw_retention_days,
        deadline: crate::store::Deadline::after(crate::query::rollup::ROLLUP_DAY_TIMEOUT),
        sample_threshold: 0,
    };
    let archive = export_plausible(
        store,
        site,
        &policy,
        from,
        to,
        std::io::Cursor::new(Vec::new()),
    )
    .await?;
    Ok((archive.into_inner(), from, to))
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_told_apart() {
        let t = |n: &str| table_of(n).map(|t| t.map(|t| t.name));
        assert_eq!(
            t("imported_visitors_20240101_20241231.csv"),
            Ok(Some("visitors"))
        );
        assert_eq!(
            t("export/imported_entry_pages_20240101_20241231.csv"),
            Ok(Some("entry_pages"))
        );
        assert_eq!(
            t("imported_operating_systems.csv"),
            Ok(Some("operating_systems"))
        );
        assert_eq!(t("devices_00010101_20250101.csv"), Ok(Some("devices")));
        assert_eq!(t("imported_custom_props_20240101_20241231.csv"), Ok(None));
        assert_eq!(t("__MACOSX/._imported_visitors.csv"), Ok(None));
        assert_eq!(t(".DS_Store"), Ok(None));
        assert!(t("imported_visitorz_20240101_20241231.csv").is_err());
        assert!(t("notes.txt").is_err());
        assert!(t("imported_visitørs_2024010é_20241231.csv").is_err());
    }

    /// A small archive holding `text` as its visitors table.
    fn archive(text: &str) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("imported_visitors_20240101_20240102.csv", options)
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn a_visitors_table_is_read_by_header_name() {
        let text = "\"visits\",\"date\",\"visitors\",\"bounces\",\"pageviews\",\"visit_duration\",\"extra\"\n\
                    12,\"2024-01-02\",10,3,30,600,\"x\"\n";
        let parsed = parse(std::io::Cursor::new(archive(text)), "a.zip").unwrap();
        let day = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let totals = parsed.rows[&(day, "", String::new())];
        assert_eq!(
            (
                totals.visitors,
                totals.visits,
                totals.pageviews,
                totals.bounces,
                totals.duration
            ),
            (10, 12, 30, 3, 600)
        );
        let err = parse(
            std::io::Cursor::new(archive("\"date\",\"visitors\"\n\"2024-01-02\",1\n")),
            "a.zip",
        )
        .unwrap_err();
        assert!(err.to_string().contains("no `pageviews` column"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse(std::io::Cursor::new(bytes), "x.zip");
        }

        #[test]
        fn any_table_text_is_read_or_refused(text in "(\"?[a-z_]{0,12}\"?[,\n]?|[0-9\\-]{0,12}[,\n]|\\PC{0,3}){0,40}") {
            let header = "\"date\",\"visitors\",\"pageviews\",\"bounces\",\"visits\",\"visit_duration\"\n";
            let _ = parse(std::io::Cursor::new(archive(&format!("{header}{text}"))), "x.zip");
            let _ = parse(std::io::Cursor::new(archive(&text)), "x.zip");
        }
    }
}
