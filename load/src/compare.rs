//! `footfall-load compare`: the end-to-end ingest benchmark.
//!
//! Starts each target as a child process on a free loopback port: the baseline (this program's
//! `baseline`), `footfall serve` over fresh data directories on its DuckDB and SQLite stores, and, with
//! `--clickhouse-url`, `footfall serve` over a fresh database on that ClickHouse. Then it loads
//! them in turn, `--rounds` times over (baseline, DuckDB, SQLite, ClickHouse, baseline, …), so a
//! machine that changes speed during the run moves every target alike, and reports each
//! target's median. Memory is the server's resident set (`/proc/<pid>/status`): at idle before
//! the first round, sampled every second under load, and its peak (`VmHWM`).
//!
//! `--wrk USER_AGENTS` drives every target with `wrk` and `load/wrk/events.lua` instead of
//! this program's client, rotating through a public list of user-agents.
//!
//! `--server-cpus 1` starts the servers under `taskset -c 1`; run the command itself under
//! `taskset -c 0`, and load and server no longer take CPU from each other.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{RunArgs, Summary, load};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The `footfall` binary; by default the one beside this program.
    #[arg(long)]
    footfall: Option<PathBuf>,
    /// A ClickHouse HTTP URL; Footfall on ClickHouse is measured too (in a database of its
    /// own, dropped afterwards).
    #[arg(long)]
    clickhouse_url: Option<String>,
    /// With `--clickhouse-url` listing a cluster's nodes: the cluster's name, so Footfall
    /// creates its schema on the cluster (its database is dropped `ON CLUSTER` afterwards).
    #[arg(long)]
    clickhouse_cluster: Option<String>,
    /// Seconds of load per target per round.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Rounds over all targets; each target's median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    rounds: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    concurrency: u64,
    /// Events per second in all; without it, as fast as each target answers.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    rate: Option<u64>,
    /// CPUs (a `taskset` list) for the servers.
    #[arg(long)]
    server_cpus: Option<String>,
    /// Print each server's resident memory every this many seconds under load.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    rss_every: Option<u64>,
    /// Leave the baseline out (for a long memory run of Footfall alone).
    #[arg(long)]
    no_baseline: bool,
    /// Leave Footfall on its embedded SQLite store out.
    #[arg(long)]
    no_sqlite: bool,
    /// Leave Footfall on its embedded DuckDB store (the default store) out.
    #[arg(long)]
    no_duckdb: bool,
    /// Drive the targets with an outside load generator, `wrk` (on the PATH) with
    /// `load/wrk/events.lua`, rotating through this file of user-agents (one per line, or the
    /// JSON list of the intoli corpus, `[{"userAgent": …}, …]`), instead of this program's
    /// own client.
    #[arg(long, value_name = "USER_AGENTS")]
    wrk: Option<PathBuf>,
    /// Keep the ClickHouse database afterwards (to measure what the events take on disk).
    #[arg(long)]
    keep_database: bool,
}

struct Target {
    name: &'static str,
    url: String,
    child: Child,
    /// Kept until the target stops.
    _data: Option<tempfile::TempDir>,
    idle_rss_kb: u64,
    max_sampled_rss_kb: u64,
    runs: Vec<Summary>,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A field of `/proc/<pid>/status` in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn command(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Waits until `url` answers anything over HTTP.
async fn wait_ready(url: &str, child: &mut Child) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("the server at {url} exited at start ({status})");
        }
        if http.get(format!("{url}/healthz")).send().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server at {url} did not answer within 60 s")
}

async fn clickhouse(url: &str, sql: &str) -> anyhow::Result<()> {
    let r = reqwest::Client::new()
        .post(url)
        .body(sql.to_string())
        .send()
        .await
        .with_context(|| format!("cannot reach ClickHouse at {url}"))?;
    if !r.status().is_success() {
        bail!("ClickHouse refused `{sql}`: {}", r.text().await?);
    }
    Ok(())
}

/// Starts `footfall serve` over a new data directory, with `env` choosing the store.
async fn start_footfall(
    bin: &Path,
    name: &'static str,
    cpus: Option<&str>,
    env: &[(&str, String)],
) -> anyhow::Result<Target> {
    let data = tempfile::tempdir()?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let setup = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.arg("--data-dir").arg(data.path()).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    let out = setup(&["site", "add", "example.com"])
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "`footfall site add` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut c = command(bin, cpus);
    c.arg("--data-dir")
        .arg(data.path())
        .arg("serve")
        .env("FOOTFALL_LISTEN", format!("127.0.0.1:{port}"))
        .env("FOOTFALL_TRUSTED_PROXIES", "127.0.0.1/32")
        .env("FOOTFALL_LOG", "warn")
        .stdout(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().context("cannot start footfall serve")?;
    wait_ready(&url, &mut child).await?;
    Ok(Target {
        name,
        url,
        child,
        _data: Some(data),
        idle_rss_kb: 0,
        max_sampled_rss_kb: 0,
        runs: Vec::new(),
    })
}

/// `wrk` with `load/wrk/events.lua` and a file of user-agents.
struct Wrk {
    script: PathBuf,
    agents: tempfile::NamedTempFile,
}

impl Wrk {
    fn new(user_agents: &Path) -> anyhow::Result<Wrk> {
        let text = std::fs::read_to_string(user_agents)
            .with_context(|| format!("cannot read {}", user_agents.display()))?;
        let agents: Vec<String> = if text.trim_start().starts_with('[') {
            let list: Vec<serde_json::Value> = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JSON list", user_agents.display()))?;
            list.iter()
                .filter_map(|v| v.get("userAgent").and_then(|u| u.as_str()))
                .map(str::to_string)
                .collect()
        } else {
            text.lines().map(str::to_string).collect()
        };
        // One per line, as a header value can carry them.
        let agents: Vec<String> = agents
            .into_iter()
            .filter(|a| !a.is_empty() && a.len() <= 512 && !a.contains(['\r', '\n']))
            .collect();
        if agents.is_empty() {
            bail!("no user-agents in {}", user_agents.display());
        }
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut file, agents.join("\n").as_bytes())?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("wrk/events.lua");
        if !script.is_file() {
            bail!("no wrk script at {}", script.display());
        }
        Ok(Wrk {
            script,
            agents: file,
        })
    }

    /// One run of `wrk` against `run.url`: its requests per second (every request is one
    /// event), latency percentiles and errors (socket errors and answers other than 2xx).
    async fn run(&self, run: &RunArgs) -> anyhow::Result<Summary> {
        if run.rate.is_some() {
            bail!("--rate needs this program's own client; wrk sends as fast as it can");
        }
        let out = tokio::process::Command::new("wrk")
            .args(["-t1", "--latency"])
            .arg(format!("-c{}", run.concurrency))
            .arg(format!("-d{}s", run.duration))
            .arg("-s")
            .arg(&self.script)
            .arg(&run.url)
            .env("FOOTFALL_WRK_USER_AGENTS", self.agents.path())
            .output()
            .await
            .context("cannot run wrk (install Debian's wrk package)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
        }
        parse_wrk(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
    }
}

/// Reads wrk's report (with `--latency`).
fn parse_wrk(text: &str) -> anyhow::Result<Summary> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let ms = |v: &str| -> anyhow::Result<f64> {
        let (number, factor) = if let Some(n) = v.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = v.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = v.strip_suffix('s') {
            (n, 1000.0)
        } else {
            bail!("no unit in {v}")
        };
        Ok(number.parse::<f64>()? * factor)
    };
    let rate: f64 = field("Requests/sec:").context("no Requests/sec")?.parse()?;
    let p50 = ms(field("50%").context("no 50% latency (run with --latency)")?)?;
    let p99 = ms(field("99%").context("no 99% latency")?)?;
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").map_or(Ok(0), str::parse)?;
    let socket: u64 = field("Socket errors:").map_or(0, |l| {
        l.split(',')
            .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    });
    Ok(Summary {
        events_per_sec: rate,
        p50_ms: p50,
        p99_ms: p99,
        errors: non_2xx + socket,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

pub async fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    let bin = match &args.footfall {
        Some(b) => b.clone(),
        None => me.with_file_name("footfall"),
    };
    if !bin.is_file() {
        bail!(
            "no footfall binary at {} (build it, or pass --footfall)",
            bin.display()
        );
    }
    let cpus = args.server_cpus.as_deref();
    let mut targets = Vec::new();
    if !args.no_baseline {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let mut child = command(&me, cpus)
            .args(["baseline", "--listen", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::null())
            .spawn()?;
        wait_ready(&url, &mut child).await?;
        targets.push(Target {
            name: "hyper baseline",
            url,
            child,
            _data: None,
            idle_rss_kb: 0,
            max_sampled_rss_kb: 0,
            runs: Vec::new(),
        });
    }
    if !args.no_duckdb {
        let env = [("FOOTFALL_EMBEDDED_STORE", "duckdb".to_string())];
        targets.push(start_footfall(&bin, "Footfall, DuckDB", cpus, &env).await?);
    }
    if !args.no_sqlite {
        let env = [("FOOTFALL_EMBEDDED_STORE", "sqlite".to_string())];
        targets.push(start_footfall(&bin, "Footfall, SQLite", cpus, &env).await?);
    }
    let wrk = match &args.wrk {
        Some(path) => Some(Wrk::new(path)?),
        None => None,
    };
    let database = format!("footfall_bench_{}", std::process::id());
    let on_cluster = args
        .clickhouse_cluster
        .as_ref()
        .map_or(String::new(), |c| format!(" ON CLUSTER {c}"));
    if let Some(ch) = &args.clickhouse_url {
        let first = ch.split(',').next().unwrap_or_default();
        clickhouse(
            first,
            &format!("DROP DATABASE IF EXISTS {database}{on_cluster}"),
        )
        .await?;
        let mut env = vec![
            ("FOOTFALL_CLICKHOUSE_URL", ch.clone()),
            ("FOOTFALL_CLICKHOUSE_DATABASE", database.clone()),
        ];
        let name = match &args.clickhouse_cluster {
            Some(c) => {
                env.push(("FOOTFALL_CLICKHOUSE_CLUSTER", c.clone()));
                "Footfall, ClickHouse cluster"
            }
            None => "Footfall, ClickHouse",
        };
        targets.push(start_footfall(&bin, name, cpus, &env).await?);
    }
    // Let the servers settle (salts, site list) before idle memory is read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for t in &mut targets {
        t.idle_rss_kb = status_kb(t.child.id(), "VmRSS:");
    }
    for round in 1..=args.rounds {
        for t in &mut targets {
            let run = RunArgs {
                url: t.url.clone(),
                duration: args.duration,
                rate: args.rate,
                concurrency: args.concurrency,
                domain: "example.com".into(),
                visitors: 20_000,
            };
            let pid = t.child.id();
            let (name, every) = (t.name, args.rss_every);
            let max = Arc::new(AtomicU64::new(0));
            let sampler = {
                let max = max.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tick.tick().await;
                        let kb = status_kb(pid, "VmRSS:");
                        max.fetch_max(kb, Ordering::Relaxed);
                        let secs = started.elapsed().as_secs();
                        if every.is_some_and(|e| secs > 0 && secs.is_multiple_of(e)) {
                            // Anonymous memory is the heap; file pages are the store's
                            // memory-mapped database, which the kernel can take back.
                            let mb = |field| status_kb(pid, field) as f64 / 1024.0;
                            println!(
                                "  {name}: {secs:>5} s  RSS {:>7.1} MB (anonymous {:>7.1}, file {:>7.1})",
                                kb as f64 / 1024.0,
                                mb("RssAnon:"),
                                mb("RssFile:")
                            );
                        }
                    }
                })
            };
            let summary = match &wrk {
                Some(wrk) => wrk.run(&run).await,
                None => load(&run, false).await,
            };
            sampler.abort();
            let max = max.load(Ordering::Relaxed);
            let summary = summary?;
            t.max_sampled_rss_kb = t.max_sampled_rss_kb.max(max);
            println!(
                "round {round}: {:<22} {:>8.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
                t.name, summary.events_per_sec, summary.p50_ms, summary.p99_ms, summary.errors
            );
            t.runs.push(summary);
        }
    }
    let baseline = (!args.no_baseline)
        .then(|| median(targets[0].runs.iter().map(|r| r.events_per_sec).collect()));
    println!();
    println!(
        "| target | events/s (median of {}) | × baseline | p50 ms | p99 ms | errors | RSS idle | RSS under load | peak RSS |",
        args.rounds
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for t in &targets {
        let eps = median(t.runs.iter().map(|r| r.events_per_sec).collect());
        let p50 = median(t.runs.iter().map(|r| r.p50_ms).collect());
        let p99 = median(t.runs.iter().map(|r| r.p99_ms).collect());
        let errors: u64 = t.runs.iter().map(|r| r.errors).sum();
        let ratio = baseline.map_or("–".to_string(), |b| format!("{:.2}", eps / b));
        let mb = |kb: u64| format!("{:.0} MB", kb as f64 / 1024.0);
        println!(
            "| {} | {eps:.0} | {ratio} | {p50:.2} | {p99:.2} | {errors} | {} | {} | {} |",
            t.name,
            mb(t.idle_rss_kb),
            mb(t.max_sampled_rss_kb),
            mb(status_kb(t.child.id(), "VmHWM:")),
        );
    }
    for t in &targets {
        if t.name != "hyper baseline" {
            let eps = median(t.runs.iter().map(|r| r.events_per_sec).collect());
            if let Some(b) = baseline {
                println!(
                    "RATIO {}={:.2}",
                    t.name.replace(", ", "_").replace(' ', "_"),
                    eps / b
                );
            }
        }
    }
    drop(targets);
    if let Some(ch) = &args.clickhouse_url {
        let first = ch.split(',').next().unwrap_or_default();
        if args.keep_database {
            println!("kept database {database}");
        } else {
            clickhouse(
                first,
                &format!("DROP DATABASE IF EXISTS {database}{on_cluster}"),
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_reports() {
        let report = "Running 10s test @ http://127.0.0.1:8080
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  310.55us   9.87ms   85.13%
    Req/Sec    62.50k     2.31k   66.10k    74.00%
  Latency Distribution
     50%  980.00us
     75%    1.12ms
     90%    1.31ms
     99%    2.05ms
  621941 requests in 10.00s, 45.67MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:  62190.11
Transfer/sec:      4.57MB
";
        let s = parse_wrk(report).unwrap();
        assert_eq!(s.events_per_sec, 62190.11);
        assert!((s.p50_ms - 0.98).abs() < 1e-9);
        assert!((s.p99_ms - 2.05).abs() < 1e-9);
        assert_eq!(s.errors, 17);
        assert!(parse_wrk("Running 10s test\n").is_err());
    }
}
