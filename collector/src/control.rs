//! The running collector's control socket: `<data_dir>/control.sock`, a Unix socket only the
//! data directory's owner can reach (the directory is `0700`, the socket `0600`).
//!
//! The embedded DuckDB events file can be open in one process only, so a command that writes
//! events or rollups while `serve` runs (`footfall purge`, `footfall import`) hands its work
//! to the running collector through this socket instead of opening the file itself. One
//! request per connection: a command on one line; the answer is one line, `ok <text>` or
//! `error <text>`, after any number of `progress <text>` lines (an import's).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::import::plausible::{HistoryJob, Limits, run_job};
use crate::import::{AccessLogJob, Summary, import_access_log};
use crate::maintenance::Maintenance;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "control.sock";

/// Longest request line, in bytes (an import names its files).
const MAX_REQUEST: u64 = 1024 * 1024;

/// How long a client waits for the collector's answer (a purge of a large store takes a while).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3600);

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Listens on the control socket until `shutdown`, answering each request with
/// `maintenance`. A socket file left by a collector that died is replaced.
pub async fn serve(
    data_dir: &Path,
    maintenance: Arc<Maintenance>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(data_dir);
    if UnixStream::connect(&path).await.is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "another footfall serves this data directory ({} answers)",
                path.display()
            ),
        ));
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    crate::store::files::make_private(&path)?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let maintenance = maintenance.clone();
                        tokio::spawn(async move {
                            if let Err(e) = answer(stream, &maintenance).await {
                                tracing::warn!(error = %e, "control socket request failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn answer(stream: UnixStream, maintenance: &Maintenance) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    reader.read_line(&mut line).await?;
    if let Some(job) = line.trim().strip_prefix("import-access-log ") {
        let reply = import(job, maintenance, reader, &mut write).await?;
        write
            .write_all(format!("{}\n", reply.replace('\n', " ")).as_bytes())
            .await?;
        return write.shutdown().await;
    }
    if let Some(job) = line.trim().strip_prefix("subject ") {
        let reply = subject(job, maintenance).await;
        write
            .write_all(format!("{}\n", reply.replace('\n', " ")).as_bytes())
            .await?;
        return write.shutdown().await;
    }
    if let Some(job) = line.trim().strip_prefix("site ") {
        let reply = site_job(job, maintenance).await;
        write
            .write_all(format!("{}\n", reply.replace('\n', " ")).as_bytes())
            .await?;
        return write.shutdown().await;
    }
    if let Some(job) = line.trim().strip_prefix("history ") {
        let reply = history(job, maintenance).await;
        write
            .write_all(format!("{}\n", reply.replace('\n', " ")).as_bytes())
            .await?;
        return write.shutdown().await;
    }
    let reply = match line.trim() {
        "purge" => match maintenance.purge().await {
            Ok(days) => format!("ok {days}"),
            Err(e) => format!("error {e}"),
        },
        "ping" => "ok footfall".to_string(),
        // `serve` applied every migration of its build before it listened.
        "migrate" => "ok 0".to_string(),
        other => format!(
            "error unknown command `{}`",
            other.chars().take(32).collect::<String>()
        ),
    };
    write
        .write_all(format!("{}\n", reply.replace('\n', " ")).as_bytes())
        .await?;
    write.shutdown().await
}

/// Runs an access-log import (`job`, JSON) on its own thread and runtime, so reading and
/// parsing the files never holds up the collector's own tasks; it looks addresses up in the
/// collector's GeoIP databases, and its progress goes to `write` as it comes. The client
/// closing its side (`read` ends) tells the import to stop where it is, which is how a
/// follow ends. Returns the final answer line.
async fn import(
    job: &str,
    maintenance: &Maintenance,
    mut read: BufReader<tokio::io::Take<tokio::net::unix::OwnedReadHalf>>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<String> {
    let job: AccessLogJob = match serde_json::from_str(job) {
        Ok(job) => job,
        Err(e) => return Ok(format!("error the import request is not valid: {e}")),
    };
    let geoip = maintenance.pipeline.geoip.clone();
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    let store = maintenance.store.clone();
    let retention = maintenance.raw_retention_days;
    let now = maintenance.clock.now();
    let (stop_tx, stop) = watch::channel(false);
    std::thread::Builder::new()
        .name("footfall-import".into())
        .spawn(move || {
            // Two workers: one reads and parses while the other writes the batch before.
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| {
                    rt.block_on(import_access_log(
                        store,
                        geoip,
                        retention,
                        now,
                        &job,
                        stop,
                        &mut |p| {
                            let _ = progress_tx.send(p.render());
                        },
                    ))
                    .map_err(|e| e.to_string())
                });
            let _ = done_tx.send(result);
        })?;
    let mut client_gone = false;
    let mut ignored = [0u8; 64];
    loop {
        tokio::select! {
            Some(line) = progress.recv() => {
                if !client_gone
                    && write.write_all(format!("progress {line}\n").as_bytes()).await.is_err()
                {
                    client_gone = true;
                    let _ = stop_tx.send(true);
                }
            }
            n = read.read(&mut ignored), if !client_gone => {
                if matches!(n, Ok(0) | Err(_)) {
                    client_gone = true;
                    let _ = stop_tx.send(true);
                }
            }
            result = &mut done => {
                return Ok(match result {
                    Ok(Ok(summary)) => format!("ok {}", serde_json::to_string(&summary).unwrap_or_default()),
                    Ok(Err(e)) => format!("error {e}"),
                    Err(_) => "error the import stopped without an answer".to_string(),
                });
            }
        }
    }
}

/// Runs work on imported history (`job`, JSON: a [`HistoryJob`]) with the collector's store;
/// the answer line carries the job's JSON answer.
async fn history(job: &str, maintenance: &Maintenance) -> String {
    let job: HistoryJob = match serde_json::from_str(job) {
        Ok(job) => job,
        Err(e) => return format!("error the request is not valid: {e}"),
    };
    let limits = Limits {
        now: maintenance.clock.now(),
        raw_retention_days: maintenance.raw_retention_days,
        aggregate_retention_days: maintenance.aggregate_retention_days,
    };
    match run_job(maintenance.store.as_ref(), limits, &job).await {
        Ok(answer) => format!("ok {answer}"),
        Err(e) => format!("error {e}"),
    }
}

/// A data-subject request handed over by `footfall subject`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SubjectJob {
    pub erase: bool,
    pub subject: crate::subject::Subject,
}

/// Answers a data-subject request (`job`, JSON: a [`SubjectJob`]) with the collector's store.
async fn subject(job: &str, maintenance: &Maintenance) -> String {
    let job: SubjectJob = match serde_json::from_str(job) {
        Ok(job) => job,
        Err(e) => return format!("error the request is not valid: {e}"),
    };
    let store = maintenance.store.as_ref();
    let answer = if job.erase {
        crate::subject::erase(store, &job.subject, maintenance.clock.now()).await
    } else {
        crate::subject::find(store, &job.subject).await
    };
    match answer.map(|a| serde_json::to_string(&a)) {
        Ok(Ok(json)) => format!("ok {json}"),
        Ok(Err(e)) => format!("error {e}"),
        Err(e) => format!("error {e}"),
    }
}

/// What `footfall site delete|reset|purge` hands to the running collector.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SiteJob {
    pub domain: String,
    pub action: SiteAction,
}

pub use crate::sites::Action as SiteAction;

/// Runs a [`SiteJob`] on the site named, with the collector's store.
pub async fn run_site_job(
    store: &dyn crate::store::Store,
    job: &SiteJob,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<crate::sites::Done> {
    let site = crate::import::site_named(store, &job.domain).await?;
    Ok(crate::sites::perform(store, &site, &job.action, now).await?)
}

async fn site_job(job: &str, maintenance: &Maintenance) -> String {
    let job: SiteJob = match serde_json::from_str(job) {
        Ok(job) => job,
        Err(e) => return format!("error the request is not valid: {e}"),
    };
    let store = maintenance.store.as_ref();
    match run_site_job(store, &job, maintenance.clock.now()).await {
        Ok(done) => {
            if matches!(job.action, SiteAction::Delete)
                && let Ok(sites) = store.meta().sites().await
            {
                maintenance.pipeline.set_sites(sites);
            }
            format!("ok {}", serde_json::to_string(&done).unwrap_or_default())
        }
        Err(e) => format!("error {e}"),
    }
}

/// Hands a [`SiteJob`] to the collector serving `data_dir`: `Ok(None)` when none is running
/// there, else what it did.
pub async fn ask_site(
    data_dir: &Path,
    job: &SiteJob,
) -> anyhow::Result<Option<crate::sites::Done>> {
    let request = format!("site {}", serde_json::to_string(job)?);
    match ask(data_dir, &request).await? {
        None => Ok(None),
        Some(text) => Ok(Some(serde_json::from_str(&text)?)),
    }
}

/// Hands a data-subject request to the collector serving `data_dir`: `Ok(None)` when none
/// is running there, else its answer.
pub async fn ask_subject(
    data_dir: &Path,
    job: &SubjectJob,
) -> anyhow::Result<Option<crate::subject::Answer>> {
    let request = format!("subject {}", serde_json::to_string(job)?);
    match ask(data_dir, &request).await? {
        None => Ok(None),
        Some(text) => Ok(Some(serde_json::from_str(&text)?)),
    }
}

/// Hands `job` to the collector serving `data_dir`: `Ok(None)` when none is running there,
/// else its JSON answer.
pub async fn ask_history(
    data_dir: &Path,
    job: &HistoryJob,
) -> anyhow::Result<Option<serde_json::Value>> {
    let request = format!("history {}", serde_json::to_string(job)?);
    anyhow::ensure!(
        request.len() as u64 <= MAX_REQUEST,
        "the request is too long: use a shorter path"
    );
    match ask(data_dir, &request).await? {
        None => Ok(None),
        Some(text) => Ok(Some(serde_json::from_str(&text)?)),
    }
}

/// Hands `job` to the collector serving `data_dir`: `Ok(None)` when none is running there,
/// else its summary. Each progress line it sends is passed to `progress`. When `stop` turns
/// true, the collector is told to stop the import where it is, and its summary still comes.
pub async fn ask_import(
    data_dir: &Path,
    job: &AccessLogJob,
    mut stop: watch::Receiver<bool>,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Option<Summary>> {
    let Ok(stream) = UnixStream::connect(socket_path(data_dir)).await else {
        return Ok(None);
    };
    let (read, mut write) = stream.into_split();
    let request = format!("import-access-log {}\n", serde_json::to_string(job)?);
    anyhow::ensure!(
        request.len() as u64 <= MAX_REQUEST,
        "too many files for one import: name fewer at a time"
    );
    write.write_all(request.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    let mut stopping = false;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                // Closing this side is the collector's sign to stop.
                write.shutdown().await?;
                continue;
            }
        };
        let Some(line) = line else { break };
        match line.split_once(' ') {
            Some(("progress", text)) => progress(text),
            Some(("ok", text)) => return Ok(Some(serde_json::from_str(text)?)),
            Some(("error", text)) => anyhow::bail!("the running footfall: {text}"),
            _ => anyhow::bail!("the running footfall answered `{line}` to an import"),
        }
    }
    anyhow::bail!("the running footfall closed the connection during the import")
}

/// Sends `command` to the collector serving `data_dir`. `Ok(None)` when none is running
/// there; `Ok(Some(text))` for its `ok` answer; an error for its `error` answer.
pub async fn ask(data_dir: &Path, command: &str) -> anyhow::Result<Option<String>> {
    let Ok(mut stream) = UnixStream::connect(socket_path(data_dir)).await else {
        return Ok(None);
    };
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut reply = String::new();
    tokio::time::timeout(ANSWER_TIMEOUT, stream.read_to_string(&mut reply))
        .await
        .map_err(|_| anyhow::anyhow!("the running footfall did not answer `{command}`"))??;
    let reply = reply.trim();
    match reply.split_once(' ') {
        Some(("ok", text)) => Ok(Some(text.to_string())),
        Some(("error", text)) => Err(anyhow::anyhow!("the running footfall: {text}")),
        _ => Err(anyhow::anyhow!(
            "the running footfall answered `{reply}` to `{command}`"
        )),
    }
}
