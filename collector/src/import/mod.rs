//! Importing history: server access logs (`footfall import access-log`).
//!
//! Every pageview line goes through the live [`Pipeline`] with the line's own time: bots,
//! user-agent, GeoIP on the truncated address, referrer and UTM, sessions, and a visitor hash.
//! The hash uses a salt drawn at random for each UTC day of the log, held in this process's
//! memory only and gone when the import ends. Imported days are as anonymous as live ones:
//! nobody can link a hash to an address afterwards, the operator included.
//!
//! **Nothing twice.** The input's bytes are hashed as they are read. After each batch, a
//! record notes the length and hash of the input so far (`access_log_import` records). An input
//! that starts with a noted prefix (the same file again, or a log that has grown since) skips
//! that prefix. Each batch's id comes from the prefix it ends, so a batch written just before
//! an interruption is found by its id and not written again. A UTC day that holds events
//! Footfall recorded itself (or another tool imported) is left alone (`day_has_data`), so an
//! import never double-counts a day with native data.
//!
//! **Old days.** Once the events are in, the closed days they touch are rolled up again, and
//! raw events past `raw_retention_days` are purged, so older days live on as rollups only.
//!
//! **Following.** With `follow`, the last input is read on as it grows, as `tail -F` does,
//! until the import is told to stop: rows are written at most [`FOLLOW_FLUSH`] after their
//! line, a half-written last line waits for its end, and a log rotated away (renamed and
//! created anew, or truncated in place) is read to its end before the new file is read from
//! its start. Salts of days before yesterday are dropped as the log moves on, and days that
//! close are rolled up as they close. Each batch notes its prefix as above (replacing the
//! input's previous note), so a follow stopped and started again goes on where it stopped.

pub mod access_log;
pub mod ga4;
pub mod plausible;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ingest::body::EventInput;
use crate::ingest::geoip::GeoIp;
use crate::ingest::page::strip_www;
use crate::ingest::pipeline::{Outcome, Pipeline, Request};
use crate::ingest::useragent::ClientHints;
use crate::ingest::visitor::{Salt, Salts};
use crate::store::{EventRow, Site, Store};
use access_log::{Format, NotPage};

/// Record kind of the prefixes already imported.
const PREFIX_KIND: &str = "access_log_import";
/// Record kind of the UTC days that imports wrote (so a second file of the same day is not
/// taken for native data).
const DAY_KIND: &str = "import_day";
/// Forgets what access-log imports noted of a site (the prefixes read and the days
/// written), so that its logs can be imported again once its statistics are reset.
pub async fn forget_site(store: &dyn Store, site_id: u32) -> Result<(), crate::store::StoreError> {
    for (id, body) in store.meta().records(PREFIX_KIND).await? {
        if serde_json::from_str::<Prefix>(&body).is_ok_and(|p| p.site_id == site_id) {
            store.meta().delete_record(PREFIX_KIND, &id).await?;
        }
    }
    let prefix = format!("{site_id}:");
    for (id, _) in store.meta().records(DAY_KIND).await? {
        if id.starts_with(&prefix) {
            store.meta().delete_record(DAY_KIND, &id).await?;
        }
    }
    Ok(())
}

/// Rows per written batch.
const BATCH_ROWS: usize = 10_000;
/// The first bytes of a gzip file (and of each member of nginx's multi-member ones).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Lines with errors listed in the summary (the rest are only counted).
const LISTED_ERRORS: usize = 20;
/// While following: the longest a read line waits before its row is written.
pub const FOLLOW_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);
/// While following: how often a log that has not grown is looked at again.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// What to import, as the command line gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessLogJob {
    /// The site's domain.
    pub site: String,
    pub format: Format,
    /// Request paths to leave out, with `*` wildcards.
    pub exclude: Vec<String>,
    /// Files, plain or gzip; `-` is standard input.
    pub inputs: Vec<PathBuf>,
    /// Read on at the end of the last input as it grows (and across its rotations) until
    /// told to stop.
    #[serde(default)]
    pub follow: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Lines read, the skipped prefix included.
    pub lines: u64,
    /// Pageviews stored.
    pub imported: u64,
    /// Lines left out, by reason: `already_imported`, `malformed`, `not_get`, `not_success`,
    /// `asset`, `endpoint`, `excluded`, `other_host`, `day_has_data`, `bot`, `spam_referrer`, `bad_url`.
    pub dropped: BTreeMap<String, u64>,
    /// The first malformed lines: `file:line: error`.
    pub errors: Vec<String>,
    /// The first and last UTC day imported (`YYYY-MM-DD`).
    pub days: Option<(String, String)>,
    /// Site-local days rolled up afresh.
    pub rolled_up: u64,
    /// How long the import took, and how much of it rolling up.
    pub millis: u64,
    pub rollup_millis: u64,
    /// Rotations of a followed log that were read across.
    #[serde(default)]
    pub rotations: u64,
}

impl Summary {
    fn drop(&mut self, reason: &str) {
        self.drop_many(reason, 1);
    }

    fn drop_many(&mut self, reason: &str, n: u64) {
        *self.dropped.entry(reason.to_string()).or_default() += n;
    }

    /// The summary as the command prints it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "read {} lines, imported {} pageviews",
            self.lines, self.imported
        );
        if let Some((first, last)) = &self.days {
            out.push_str(&format!(" ({first} to {last})"));
        }
        let dropped: u64 = self.dropped.values().sum();
        out.push_str(&format!(", dropped {dropped}"));
        if dropped > 0 {
            let reasons: Vec<String> = self
                .dropped
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            out.push_str(&format!(": {}", reasons.join(", ")));
        }
        if self.rotations > 0 {
            out.push_str(&format!("; followed {} rotations", self.rotations));
        }
        if self.rolled_up > 0 {
            out.push_str(&format!("; {} days rolled up", self.rolled_up));
        }
        if self.millis > 0 {
            let secs = self.millis as f64 / 1000.0;
            out.push_str(&format!(
                "; {secs:.1} s, {:.0} lines/s",
                self.lines as f64 / secs
            ));
            if self.rolled_up > 0 {
                out.push_str(&format!(
                    " (rolling up {:.1} s)",
                    self.rollup_millis as f64 / 1000.0
                ));
            }
        }
        for e in &self.errors {
            out.push_str(&format!("\n  {e}"));
        }
        let listed = self.errors.len() as u64;
        let malformed = self.dropped.get("malformed").copied().unwrap_or(0);
        if malformed > listed {
            out.push_str(&format!(
                "\n  … and {} more malformed lines",
                malformed - listed
            ));
        }
        out
    }
}

/// Progress as the import goes: lines read, bytes read of the total where known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub lines: u64,
    pub bytes: u64,
    pub total_bytes: Option<u64>,
    pub lines_per_second: f64,
    pub eta_seconds: Option<f64>,
}

impl Progress {
    pub fn render(&self) -> String {
        let mut out = format!("{} lines, {:.0} lines/s", self.lines, self.lines_per_second);
        if let Some(total) = self.total_bytes.filter(|t| *t > 0) {
            out.push_str(&format!(
                ", {:.0}%",
                100.0 * self.bytes.min(total) as f64 / total as f64
            ));
        }
        if let Some(eta) = self.eta_seconds {
            out.push_str(&format!(", about {:.0} s left", eta.max(0.0)));
        }
        out
    }
}

/// An import that cannot start or cannot go on (a line that cannot be read is counted, not
/// an error).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("no site `{0}`: add it first with `footfall site add {0}`")]
    NoSite(String),
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("{0}")]
    Job(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("rolling up: {0}")]
    Rollup(String),
}

/// Checks a job before it runs: a site, at least one input, sensible excludes, `-` once.
pub fn validate(job: &AccessLogJob) -> Result<(), ImportError> {
    if job.inputs.is_empty() {
        return Err(ImportError::Job(
            "name at least one log file (or - for standard input)".into(),
        ));
    }
    if job.inputs.len() > 10_000 {
        return Err(ImportError::Job("at most 10,000 files at once".into()));
    }
    if job.inputs.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err(ImportError::Job(
            "standard input (-) can be named once".into(),
        ));
    }
    if job.follow && job.inputs.last().is_some_and(|p| p.as_os_str() == "-") {
        return Err(ImportError::Job(
            "--follow reads on at the end of a file: name the log file last (standard input \
             is read to its end without it)"
                .into(),
        ));
    }
    if job.exclude.len() > 1_000 {
        return Err(ImportError::Job("at most 1,000 --exclude patterns".into()));
    }
    for p in &job.exclude {
        if !p.starts_with('/') && !p.starts_with('*') || p.len() > 1_000 {
            return Err(ImportError::Job(format!(
                "--exclude `{p}` must be a path starting with / or * (at most 1,000 characters)"
            )));
        }
    }
    Ok(())
}

/// The site named `domain` (a leading `www.` and case do not matter).
pub async fn site_named(store: &dyn Store, domain: &str) -> Result<Site, ImportError> {
    let wanted = strip_www(&domain.trim().to_ascii_lowercase()).to_string();
    store
        .meta()
        .sites()
        .await?
        .into_iter()
        .find(|s| s.domain == wanted)
        .ok_or_else(|| ImportError::NoSite(domain.to_string()))
}

/// The site's time zone.
pub fn site_tz(site: &Site) -> Result<Tz, ImportError> {
    site.timezone
        .parse()
        .map_err(|_| ImportError::Job(format!("site {} has an invalid time zone", site.domain)))
}

/// A prefix of some input that is already imported.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Prefix {
    site_id: u32,
    bytes: u64,
    hash: String,
}

/// Runs `job` against `store`; `progress` is called about every two seconds. The import ends
/// early, keeping what it wrote, when `stop` turns true (how a follow ends).
pub async fn import_access_log(
    store: Arc<dyn Store>,
    geoip: Option<Arc<GeoIp>>,
    raw_retention_days: u32,
    now: DateTime<Utc>,
    job: &AccessLogJob,
    stop: tokio::sync::watch::Receiver<bool>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Summary, ImportError> {
    validate(job)?;
    let site = site_named(store.as_ref(), &job.site).await?;
    let tz = site_tz(&site)?;
    let prefixes: Vec<Prefix> = store
        .meta()
        .records(PREFIX_KIND)
        .await?
        .into_iter()
        .filter_map(|(_, body)| serde_json::from_str::<Prefix>(&body).ok())
        .filter(|p| p.site_id == site.id)
        .collect();
    let pipeline = Pipeline::new(geoip);
    pipeline.set_sites(vec![site.clone()]);
    // The site's exclusions apply to imported lines as to live requests.
    pipeline.set_settings(crate::sites::all_settings(store.as_ref()).await?);
    let mut run = Run {
        store: store.clone(),
        site,
        tz,
        format: job.format,
        exclude: job.exclude.clone(),
        pipeline,
        salts: HashMap::new(),
        days: HashMap::new(),
        batch: Vec::new(),
        summary: Summary::default(),
        written_days: BTreeSet::new(),
        dirty: BTreeSet::new(),
        started: Instant::now(),
        now,
        last_report: Instant::now(),
        bytes_before: 0,
        total_bytes: None,
        current_salt_day: None,
        fields: None,
        raw_cutoff: crate::maintenance::retention_cutoff(now.date_naive(), raw_retention_days),
        writing: None,
        stop,
        live: false,
        noted: None,
        last_flush: Instant::now(),
        latest: None,
        reported: 0,
    };
    // The share done and the time left are known when every input is a plain file that does
    // not grow: progress counts the bytes read after decompression, which a gzip file's size
    // does not tell.
    let total: Option<u64> = job
        .inputs
        .iter()
        .map(|p| {
            let mut head = [0u8; 2];
            let plain = p.as_os_str() != "-"
                && std::fs::File::open(p)
                    .and_then(|mut f| f.read(&mut head))
                    .is_ok_and(|n| n < 2 || head != GZIP_MAGIC);
            if plain {
                std::fs::metadata(p).ok().map(|m| m.len())
            } else {
                None
            }
        })
        .sum();
    run.total_bytes = total.filter(|_| !job.follow);
    let last = job.inputs.len() - 1;
    for (i, path) in job.inputs.iter().enumerate() {
        if run.stopped() {
            break;
        }
        run.input(path, &prefixes, job.follow && i == last, progress)
            .await?;
    }
    let rolling = Instant::now();
    run.roll_up_closed().await?;
    if !run.written_days.is_empty() {
        store.purge_events_before(run.raw_cutoff).await?;
    }
    run.summary.rollup_millis += u64::try_from(rolling.elapsed().as_millis()).unwrap_or(u64::MAX);
    run.summary.millis = u64::try_from(run.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    run.summary.days = match (run.written_days.first(), run.written_days.last()) {
        (Some(a), Some(b)) => Some((a.to_string(), b.to_string())),
        _ => None,
    };
    Ok(run.summary)
}

struct Run {
    store: Arc<dyn Store>,
    site: Site,
    tz: Tz,
    format: Format,
    exclude: Vec<String>,
    pipeline: Pipeline,
    /// This import's salts, one per UTC day, in memory only.
    salts: HashMap<NaiveDate, Salt>,
    /// Whether each UTC day may be imported (`false`: it has native data).
    days: HashMap<NaiveDate, bool>,
    batch: Vec<EventRow>,
    summary: Summary,
    written_days: BTreeSet<NaiveDate>,
    /// Site-local days with rows written since they were last rolled up.
    dirty: BTreeSet<NaiveDate>,
    started: Instant,
    /// The time when the import started.
    now: DateTime<Utc>,
    last_report: Instant,
    /// Bytes of the inputs before the current one.
    bytes_before: u64,
    total_bytes: Option<u64>,
    /// The UTC day whose salt the pipeline holds.
    current_salt_day: Option<NaiveDate>,
    /// The columns the current input's last `#Fields` directive named.
    fields: Option<access_log::Fields>,
    /// The first UTC day whose raw events retention keeps.
    raw_cutoff: NaiveDate,
    /// The batch being written: how many of its rows were found stored already.
    writing: Option<tokio::task::JoinHandle<Result<u64, crate::store::StoreError>>>,
    stop: tokio::sync::watch::Receiver<bool>,
    /// Whether the followed log's end has been reached (from then on, lines are live).
    live: bool,
    /// The id and length of the current input's last noted prefix.
    noted: Option<(String, u64)>,
    last_flush: Instant,
    /// The latest time of a line read.
    latest: Option<DateTime<Utc>>,
    /// Lines read when progress was last reported while following.
    reported: u64,
}

/// Where the input stands: its bytes so far and their hash.
struct Position {
    bytes: u64,
    hasher: blake3::Hasher,
}

impl Position {
    fn prefix(&self, site_id: u32) -> Prefix {
        Prefix {
            site_id,
            bytes: self.bytes,
            hash: self.hasher.finalize().to_hex().to_string(),
        }
    }
}

/// An input opened for reading.
struct Opened {
    reader: Box<dyn BufRead + Send>,
    /// The file's device and inode (how a rotation is told), for a file.
    identity: Option<(u64, u64)>,
    gzip: bool,
}

fn open(path: &Path) -> Result<Opened, ImportError> {
    use std::os::unix::fs::MetadataExt;
    let err = |e: std::io::Error| ImportError::Input {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let (reader, identity): (Box<dyn Read + Send>, _) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = std::fs::File::open(path).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        (Box::new(file), Some((meta.dev(), meta.ino())))
    };
    let mut buffered = std::io::BufReader::with_capacity(256 * 1024, reader);
    // gzip by its magic bytes, whatever the file is called; nginx's `gzip` logs are many
    // gzip members one after another.
    let head = buffered.fill_buf().map_err(err)?;
    if head.starts_with(&GZIP_MAGIC) {
        Ok(Opened {
            reader: Box::new(std::io::BufReader::with_capacity(
                256 * 1024,
                flate2::bufread::MultiGzDecoder::new(buffered),
            )),
            identity,
            gzip: true,
        })
    } else {
        Ok(Opened {
            reader: Box::new(buffered),
            identity,
            gzip: false,
        })
    }
}

/// The length of the longest noted prefix that `path` starts with (0 for none, and for
/// standard input, which cannot be read twice).
fn imported_prefix(path: &Path, prefixes: &[Prefix]) -> Result<u64, ImportError> {
    if path.as_os_str() == "-" || prefixes.is_empty() {
        return Ok(0);
    }
    let mut wanted: Vec<&Prefix> = prefixes.iter().collect();
    wanted.sort_by_key(|p| p.bytes);
    let mut reader = open(path)?.reader;
    let mut hasher = blake3::Hasher::new();
    let mut at = 0u64;
    let mut best = 0;
    let mut buf = vec![0u8; 256 * 1024];
    for p in wanted {
        while at < p.bytes {
            let want = usize::try_from((p.bytes - at).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = reader
                .read(&mut buf[..want])
                .map_err(|e| ImportError::Input {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            if n == 0 {
                return Ok(best);
            }
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        if at == p.bytes && hasher.finalize().to_hex().as_str() == p.hash {
            best = p.bytes;
        }
    }
    Ok(best)
}

/// What a followed log's path holds now, against the file being read.
enum FileState {
    /// The same file, no shorter than what was read.
    Same,
    /// Another file (renamed away and created anew), or the same one truncated.
    Rotated,
    /// Nothing there (between a rename and the new file's creation).
    Missing,
}

fn file_state(path: &Path, identity: Option<(u64, u64)>, read: u64) -> FileState {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Err(_) => FileState::Missing,
        Ok(m) if Some((m.dev(), m.ino())) != identity || m.len() < read => FileState::Rotated,
        Ok(_) => FileState::Same,
    }
}

impl Run {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Reads `path` to its end, and with `follow` on as it grows until told to stop.
    async fn input(
        &mut self,
        path: &Path,
        prefixes: &[Prefix],
        follow: bool,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ImportError> {
        let name = if path.as_os_str() == "-" {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        let mut skip = imported_prefix(path, prefixes)?;
        self.fields = None;
        self.noted = None;
        let mut opened = open(path)?;
        if follow && opened.gzip {
            return Err(ImportError::Input {
                path: name,
                message: "a compressed file cannot be followed: name it before the live log".into(),
            });
        }
        let mut pos = Position {
            bytes: 0,
            hasher: blake3::Hasher::new(),
        };
        let mut line = Vec::with_capacity(1024);
        let mut number = 0u64;
        let mut stop = self.stop.clone();
        loop {
            let n = read_line(&mut opened.reader, &mut line, &mut pos.hasher).map_err(|e| {
                ImportError::Input {
                    path: name.clone(),
                    message: e.to_string(),
                }
            })?;
            pos.bytes += n as u64;
            let complete = line.last() == Some(&b'\n');
            if !complete && follow && !self.stopped() {
                // The end of the log for now (perhaps in the middle of a line being written).
                self.live = true;
                // Lines read since the last note (a batch waiting among them) are written.
                if line.is_empty()
                    && pos.bytes > 0
                    && self.noted.as_ref().map(|n| n.1) != Some(pos.bytes)
                    && self.last_flush.elapsed() >= FOLLOW_FLUSH
                {
                    self.flush(&pos).await?;
                    self.written().await?;
                    if let Some(t) = self.latest {
                        self.pipeline.sessions.sweep(t);
                    }
                    self.roll_up_closed().await?;
                }
                if self.last_report.elapsed().as_secs() >= 2 && self.summary.lines > self.reported {
                    self.last_report = Instant::now();
                    self.reported = self.summary.lines;
                    progress(self.progress(pos.bytes));
                }
                match file_state(path, opened.identity, pos.bytes) {
                    FileState::Rotated if n == 0 => {
                        // Read to the old file's end (the last line too, if it has no end);
                        // the new file is read from its start.
                        if !line.is_empty() {
                            number += 1;
                            self.summary.lines += 1;
                            self.maybe_line(&line, &name, number, pos.bytes, skip)
                                .await?;
                            line.clear();
                        }
                        self.flush(&pos).await?;
                        self.written().await?;
                        self.summary.rotations += 1;
                        self.bytes_before += pos.bytes;
                        opened = open(path)?;
                        pos = Position {
                            bytes: 0,
                            hasher: blake3::Hasher::new(),
                        };
                        skip = 0;
                        number = 0;
                        self.fields = None;
                        self.noted = None;
                        continue;
                    }
                    _ => {}
                }
                if n == 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(FOLLOW_POLL) => {}
                        changed = stop.changed() => {
                            if changed.is_err() {
                                // Nobody can tell it to stop any more: it follows on.
                                tokio::time::sleep(FOLLOW_POLL).await;
                            }
                        }
                    }
                }
                continue;
            }
            if line.is_empty() {
                break;
            }
            number += 1;
            self.summary.lines += 1;
            self.maybe_line(&line, &name, number, pos.bytes, skip)
                .await?;
            line.clear();
            if self.batch.len() >= BATCH_ROWS {
                self.flush(&pos).await?;
            }
            if number.is_multiple_of(4096) {
                if self.stopped() {
                    break;
                }
                if self.last_report.elapsed().as_secs() >= 2 {
                    self.last_report = Instant::now();
                    progress(self.progress(pos.bytes));
                }
            }
        }
        self.flush(&pos).await?;
        self.written().await?;
        self.bytes_before += pos.bytes;
        progress(self.progress(0));
        Ok(())
    }

    /// A line ending at `end` bytes: skipped when within the imported prefix `skip`, else read.
    async fn maybe_line(
        &mut self,
        raw: &[u8],
        name: &str,
        number: u64,
        end: u64,
        skip: u64,
    ) -> Result<(), ImportError> {
        if end <= skip {
            // The columns named in the imported part still name the new lines' columns.
            if let Some(fields) =
                access_log::Fields::from_directive(String::from_utf8_lossy(raw).trim_end())
            {
                self.fields = Some(fields);
            }
            self.summary.drop("already_imported");
            return Ok(());
        }
        self.line(raw, name, number).await
    }

    /// Rolls up the closed site-local days with rows written since their last roll-up.
    async fn roll_up_closed(&mut self) -> Result<(), ImportError> {
        let elapsed = chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default();
        let now = (self.now + elapsed).max(self.latest.unwrap_or(self.now));
        let today = now.with_timezone(&self.tz).date_naive();
        let closed: Vec<NaiveDate> = self.dirty.range(..today).copied().collect();
        if closed.is_empty() {
            return Ok(());
        }
        let rolling = Instant::now();
        for day in closed {
            crate::query::rollup::compute_day(self.store.as_ref(), &self.site, self.tz, day)
                .await
                .map_err(|e| ImportError::Rollup(e.to_string()))?;
            self.dirty.remove(&day);
            self.summary.rolled_up += 1;
        }
        self.summary.rollup_millis +=
            u64::try_from(rolling.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(())
    }
    fn progress(&self, bytes: u64) -> Progress {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let done = self.bytes_before + bytes;
        let eta = self
            .total_bytes
            .filter(|t| *t > done && done > 0)
            .map(|t| secs * (t - done) as f64 / done as f64);
        Progress {
            lines: self.summary.lines,
            bytes: done,
            total_bytes: self.total_bytes,
            lines_per_second: self.summary.lines as f64 / secs,
            eta_seconds: eta,
        }
    }

    /// One line: parsed, filtered and enriched into the batch, or counted as dropped.
    async fn line(&mut self, raw: &[u8], file: &str, number: u64) -> Result<(), ImportError> {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return Ok(());
        }
        if text.starts_with('#') {
            // CloudFront's and W3C logs' directives; `#Fields` names the columns from here on.
            if let Some(fields) = access_log::Fields::from_directive(text) {
                self.fields = Some(fields);
            }
            return Ok(());
        }
        let by_fields = matches!(self.format, Format::Auto | Format::Cloudfront | Format::W3c);
        let hit = if raw.len() > access_log::MAX_LINE {
            Err(access_log::LineError::Layout("line of at most 64 KiB"))
        } else if let (true, Some(fields)) = (by_fields, &self.fields) {
            access_log::parse_fields(text, fields)
        } else {
            access_log::parse(text, self.format)
        };
        let hit = match hit {
            Ok(hit) => hit,
            Err(e) => {
                self.summary.drop("malformed");
                if self.summary.errors.len() < LISTED_ERRORS {
                    self.summary.errors.push(format!("{file}:{number}: {e}"));
                }
                return Ok(());
            }
        };
        if let Err(why) = access_log::pageview(&hit) {
            self.summary.drop(match why {
                NotPage::Method => "not_get",
                NotPage::Status => "not_success",
                NotPage::Asset => "asset",
                NotPage::Endpoint => "endpoint",
            });
            return Ok(());
        }
        let path = hit.target.split(['?', '#']).next().unwrap_or_default();
        if self.exclude.iter().any(|p| access_log::wildcard(p, path)) {
            self.summary.drop("excluded");
            return Ok(());
        }
        let site_host = self.site.domain.clone();
        if let Some(host) = &hit.host
            && strip_www(host) != site_host
        {
            self.summary.drop("other_host");
            return Ok(());
        }
        let day = hit.time.date_naive();
        if self.latest.is_none_or(|t| hit.time > t) {
            self.latest = Some(hit.time);
        }
        let allowed = match self.days.get(&day) {
            Some(allowed) => *allowed,
            None => {
                let allowed = self.decide_day(day).await?;
                self.days.insert(day, allowed);
                allowed
            }
        };
        if !allowed {
            self.summary.drop("day_has_data");
            return Ok(());
        }
        self.salt_for(day);
        let url = if hit.target.starts_with("http://") || hit.target.starts_with("https://") {
            hit.target.clone()
        } else {
            let host = hit.host.as_deref().unwrap_or(&site_host);
            format!("https://{host}{}", hit.target)
        };
        let request = Request {
            input: EventInput {
                name: "pageview".into(),
                url,
                domain: Some(site_host),
                referrer: hit.referrer.clone(),
                screen_width: None,
                props: Vec::new(),
                revenue: None,
                interactive: true,
                hash_mode: false,
                engagement_ms: None,
                scroll_depth: None,
            },
            client_ip: hit.client_ip,
            user_agent: &hit.user_agent,
            client_hints: ClientHints::default(),
            received_at: hit.time,
        };
        match self.pipeline.process(&request) {
            Ok(Outcome::Accepted(rows)) => {
                self.summary.imported += rows.len() as u64;
                self.written_days.insert(day);
                self.dirty
                    .insert(hit.time.with_timezone(&self.tz).date_naive());
                self.batch.extend(rows);
            }
            Ok(Outcome::Dropped(reason)) => self.summary.drop(reason.as_str()),
            Err(_) => self.summary.drop("bad_url"),
        }
        if self.summary.lines.is_multiple_of(10_000) {
            self.pipeline.sessions.sweep(hit.time);
        }
        Ok(())
    }

    /// Whether the UTC `day` may be imported: it may when it holds no events and no rollups
    /// with events (native data), or when an import wrote it before (a second file of the
    /// day, a run again after an interruption), unless that day is past raw retention and
    /// rolled up already: its raw events are gone, so new rows could not be told from those
    /// counted, and the day is left as it is. The decision is noted before any of the day's
    /// rows are written.
    async fn decide_day(&mut self, day: NaiveDate) -> Result<bool, ImportError> {
        let id = format!("{}:{day}", self.site.id);
        let imported_before = self.store.meta().record(DAY_KIND, &id).await?.is_some();
        let rolled_up = self
            .store
            .read_rollups(self.site.id, "", day, day)
            .await?
            .iter()
            .any(|r| r.events > 0);
        if imported_before {
            return Ok(!(day < self.raw_cutoff && rolled_up));
        }
        let from = crate::store::day_start_ts(day);
        let events = crate::query::rollup::events_between(
            self.store.as_ref(),
            self.site.id,
            from,
            from + 86_400,
            crate::store::Deadline::after(std::time::Duration::from_secs(600)),
        )
        .await
        .map_err(|e| ImportError::Job(e.to_string()))?;
        if events > 0 || rolled_up {
            return Ok(false);
        }
        self.store.meta().put_record(DAY_KIND, &id, "{}").await?;
        Ok(true)
    }

    /// Sets the pipeline's salts to `day`'s (drawn now if new) and the day before's.
    fn salt_for(&mut self, day: NaiveDate) {
        if self.current_salt_day == Some(day) {
            return;
        }
        if self.live
            && let Some(before) = day.checked_sub_days(Days::new(1))
        {
            // A followed log moves on: the salts of days before yesterday are dropped, as the
            // collector drops its own.
            self.salts.retain(|d, _| *d >= before);
        }
        let salt = self.salts.entry(day).or_insert_with(Salt::random).clone();
        let mut days = vec![(day, salt)];
        if let Some(before) = day.checked_sub_days(Days::new(1))
            && let Some(s) = self.salts.get(&before)
        {
            days.push((before, s.clone()));
        }
        self.pipeline.set_salts(Salts { days });
        self.current_salt_day = Some(day);
    }

    /// Hands the batch to a task that writes it under an id made from the input prefix it
    /// ends (unless a write of it is stored already) and then notes that prefix as imported;
    /// the next lines are read while it writes. The batch before is waited for first, so at
    /// most one write is under way and prefixes are noted in order.
    async fn flush(&mut self, pos: &Position) -> Result<(), ImportError> {
        self.written().await?;
        let prefix = pos.prefix(self.site.id);
        let key = blake3::Hasher::new()
            .update(b"footfall access-log batch")
            .update(&self.site.id.to_le_bytes())
            .update(&prefix.bytes.to_le_bytes())
            .update(prefix.hash.as_bytes())
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&key.as_bytes()[..8]);
        let batch_id = u64::from_le_bytes(id).max(1);
        let rows: Arc<[EventRow]> = std::mem::take(&mut self.batch)
            .into_iter()
            .map(|r| EventRow { batch_id, ..r })
            .collect();
        let store = self.store.clone();
        let id = format!("{}:{}:{}", prefix.site_id, prefix.bytes, &prefix.hash[..16]);
        // The input's note before this one is superseded: the input starts with this one.
        let superseded = self
            .noted
            .replace((id.clone(), prefix.bytes))
            .map(|(old, _)| old)
            .filter(|old| *old != id);
        self.last_flush = Instant::now();
        self.writing = Some(tokio::spawn(async move {
            let mut found = 0;
            if !rows.is_empty() {
                if store.batch_written(&rows).await? {
                    found = rows.len() as u64;
                } else {
                    store.insert_events(rows).await?;
                }
            }
            let body = serde_json::to_string(&prefix).unwrap_or_default();
            store.meta().put_record(PREFIX_KIND, &id, &body).await?;
            if let Some(old) = superseded {
                store.meta().delete_record(PREFIX_KIND, &old).await?;
            }
            Ok(found)
        }));
        Ok(())
    }

    /// Waits for the batch being written, if any.
    async fn written(&mut self) -> Result<(), ImportError> {
        let Some(task) = self.writing.take() else {
            return Ok(());
        };
        let found = task
            .await
            .map_err(|e| ImportError::Job(format!("writing a batch: {e}")))??;
        if found > 0 {
            self.summary.imported -= found;
            self.summary.drop_many("already_imported", found);
        }
        Ok(())
    }
}

/// Reads up to and including the next `\n`, at most [`access_log::MAX_LINE`] + 1 bytes kept
/// (the rest of a longer line is read and dropped, so it shows as malformed). Returns the
/// bytes consumed.
/// Every byte consumed goes into `hasher`.
fn read_line(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
    hasher: &mut blake3::Hasher,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = (access_log::MAX_LINE + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        hasher.update(chunk);
        reader.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}
