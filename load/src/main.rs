//! `footfall-load`: realistic traffic for Footfall's ingest endpoint, and the baseline it is
//! measured against.
//!
//! - `footfall-load run --url http://127.0.0.1:8000 --duration 30 [--rate N] [--concurrency C]`
//!   sends pageviews and custom events as a site's visitors would: many client addresses (in
//!   `X-Forwarded-For`, so list the load's address in Footfall's `trusted_proxies`), real
//!   browser user-agents, a site's pages, search and social referrers, UTM tags. At a given rate,
//!   or as fast as the server answers. It prints the achieved events per second, latency
//!   percentiles and every status and error seen.
//! - `footfall-load baseline --listen 127.0.0.1:9000`: a minimal hyper server that reads each
//!   request and answers 202, the ceiling an ingest endpoint on this machine can reach.
//! - `footfall-load compare [--clickhouse-url URL]`: the end-to-end benchmark. In one run it
//!   starts the baseline and `footfall serve` on each store (SQLite, and ClickHouse when a URL is
//!   given) as child processes, loads each in turn for several alternating rounds, and prints
//!   each target's median events/s, its ratio to the baseline, latency, and the server's
//!   resident memory idle, sampled under load, and at its peak. See BENCHMARKS.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use http_body_util::BodyExt;
use rand::RngExt;

mod compare;

#[derive(Debug, Parser)]
#[command(name = "footfall-load", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send traffic to an ingest endpoint and report what it achieved.
    Run(RunArgs),
    /// Answer every request with 202 and nothing else.
    Baseline {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
    },
    /// Benchmark Footfall on each store against the baseline, in one run.
    Compare(compare::CompareArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The server's base URL; events go to `<url>/api/event`.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Events per second in all; without it, as fast as the server answers.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub rate: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub concurrency: u64,
    /// The site's domain, as added to Footfall.
    #[arg(long, default_value = "example.com")]
    pub domain: String,
    /// Distinct visitors (client addresses).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=16_000_000))]
    pub visitors: u64,
}

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
];

const PAGES: &[&str] = &[
    "/",
    "/",
    "/",
    "/pricing",
    "/blog",
    "/blog/launch",
    "/blog/privacy-first-analytics",
    "/docs",
    "/docs/getting-started",
    "/docs/api",
    "/about",
    "/contact",
    "/signup",
    "/login",
    "/features",
    "/changelog",
];

const REFERRERS: &[&str] = &[
    "",
    "",
    "",
    "https://www.google.com/",
    "https://www.google.de/",
    "https://duckduckgo.com/",
    "https://www.bing.com/",
    "https://news.ycombinator.com/item?id=1",
    "https://t.co/abc",
    "https://www.reddit.com/r/selfhosted/",
    "https://github.com/",
    "https://example.com/blog",
];

const UTM: &[&str] = &[
    "",
    "",
    "",
    "",
    "?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
    "?utm_source=twitter&utm_medium=social",
    "?ref=producthunt",
];

/// One event's request: body, user-agent and the visitor's address.
fn event(rng: &mut impl rand::Rng, domain: &str, visitors: u64) -> (String, &'static str, String) {
    let visitor = rng.random_range(0..visitors);
    let ip = format!(
        "{}.{}.{}.{}",
        11 + (visitor >> 24) % 200,
        (visitor >> 16) & 255,
        (visitor >> 8) & 255,
        visitor & 255
    );
    let ua = USER_AGENTS[(visitor as usize) % USER_AGENTS.len()];
    let page = PAGES[rng.random_range(0..PAGES.len())];
    let referrer = REFERRERS[rng.random_range(0..REFERRERS.len())];
    let utm = UTM[rng.random_range(0..UTM.len())];
    let width = [390, 768, 1280, 1440, 1920][rng.random_range(0..5)];
    let body = if rng.random_range(0..10) == 0 {
        format!(
            r#"{{"n":"Signup","u":"https://{domain}{page}","d":"{domain}","r":"{referrer}","w":{width},"p":{{"plan":"pro"}}}}"#
        )
    } else {
        format!(
            r#"{{"n":"pageview","u":"https://{domain}{page}{utm}","d":"{domain}","r":"{referrer}","w":{width}}}"#
        )
    };
    (body, ua, ip)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
}

/// What one load run achieved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub events_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Transport errors and answers other than 202.
    pub errors: u64,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let summary = load(&args, true).await?;
    println!(
        "RESULT events_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} errors={}",
        summary.events_per_sec, summary.p50_ms, summary.p99_ms, summary.errors
    );
    Ok(())
}

/// Sends the traffic `args` describe; prints the details when `verbose`.
async fn load(args: &RunArgs, verbose: bool) -> anyhow::Result<Summary> {
    let endpoint = format!("{}/api/event", args.url.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .timeout(Duration::from_secs(30))
        .build()?;
    let start = Instant::now();
    let until = start + Duration::from_secs(args.duration);
    // Each worker sends at its share of the rate, on a fixed schedule (so a slow answer is
    // not hidden by sending less: the next request is late, and its latency counts that).
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.concurrency as f64 / r as f64));
    let domain: Arc<str> = args.domain.as_str().into();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (http, endpoint, domain) = (http.clone(), endpoint.clone(), domain.clone());
        let visitors = args.visitors;
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
            let mut next = Instant::now();
            while Instant::now() < until {
                let (body, ua, ip) = event(&mut rng, &domain, visitors);
                let sent = match interval {
                    Some(every) => {
                        tokio::time::sleep_until(next.into()).await;
                        let planned = next;
                        next += every;
                        planned
                    }
                    None => Instant::now(),
                };
                let r = http
                    .post(&endpoint)
                    .header("content-type", "text/plain")
                    .header("user-agent", ua)
                    .header("x-forwarded-for", ip)
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        *tally.statuses.entry(status).or_default() += 1;
                    }
                    Err(e) => {
                        let kind = if e.is_timeout() {
                            "timeout"
                        } else if e.is_connect() {
                            "connect"
                        } else {
                            "other"
                        };
                        *tally.errors.entry(kind.to_string()).or_default() += 1;
                    }
                }
                let us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                tally.latencies_us.push(us);
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.context("a load worker failed")?;
        all.latencies_us.extend(t.latencies_us);
        for (k, v) in t.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        for (k, v) in t.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let accepted = all.statuses.get(&202).copied().unwrap_or(0);
    all.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((all.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all.latencies_us[i]) / 1000.0
    };
    let errors = all.errors.values().sum::<u64>()
        + all
            .statuses
            .iter()
            .filter(|(k, _)| **k != 202)
            .map(|(_, v)| v)
            .sum::<u64>();
    let summary = Summary {
        events_per_sec: accepted as f64 / secs,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        errors,
    };
    if !verbose {
        return Ok(summary);
    }
    println!(
        "sent {} requests in {secs:.1} s: {:.0} accepted events/s ({:.0} requests/s)",
        all.latencies_us.len(),
        summary.events_per_sec,
        all.latencies_us.len() as f64 / secs
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        pct(1.0)
    );
    let statuses: Vec<String> = all
        .statuses
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let errors: Vec<String> = all
        .errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    println!("statuses: {}", statuses.join(", "));
    println!(
        "errors: {}",
        if errors.is_empty() {
            "none".to_string()
        } else {
            errors.join(", ")
        }
    );
    Ok(summary)
}

async fn baseline(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("baseline answering 202 on {listen}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                |req: hyper::Request<hyper::body::Incoming>| async move {
                    // Read the body, as an ingest endpoint must.
                    let _ = req.into_body().collect().await;
                    let mut r = hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"ok"),
                    ));
                    *r.status_mut() = hyper::StatusCode::ACCEPTED;
                    Ok::<_, std::convert::Infallible>(r)
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Baseline { listen } => baseline(listen).await,
        Command::Compare(args) => compare::compare(args).await,
    }
}
