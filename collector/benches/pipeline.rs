//! The ingest pipeline, step by step: `cargo bench -p footfall --bench pipeline`.
//!
//! Each step is measured on realistic input (browser user-agents, search and social referrers,
//! UTM-tagged URLs), so the figures add up to what one event costs before it reaches the
//! spool. Criterion prints the time per call; BENCHMARKS.md keeps the latest figures.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;

use chrono::{DateTime, NaiveDate};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use footfall::ingest::body::{parse_body, parse_query};
use footfall::ingest::geoip::GeoIp;
use footfall::ingest::page::normalise;
use footfall::ingest::pipeline::{Pipeline, Request};
use footfall::ingest::useragent::{ClientHints, UaParser};
use footfall::ingest::visitor::{Salt, Salts, visitor_id};
use footfall::ingest::{bots, ip, referrer};
use footfall::store::Site;
use footfall::writer::spool::{Record, Spool};

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
];

const BODY: &[u8] = br#"{"n":"pageview","u":"https://example.com/blog/why-footfall?utm_source=newsletter&utm_medium=email&utm_campaign=launch","d":"example.com","r":"https://www.google.com/","w":1440}"#;
const PIXEL_QUERY: &str = "n=pageview&u=https%3A%2F%2Fexample.com%2Fpricing%3Futm_source%3Dtwitter&d=example.com&r=https%3A%2F%2Ft.co%2Fabc&w=390";

fn geoip() -> GeoIp {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/geoip/GeoIP2-City-Test.mmdb");
    GeoIp::open(&path).expect("the GeoIP test database")
}

fn salts() -> Salts {
    // The days of the benchmark's events (2025-11-25) and the one before.
    Salts {
        days: vec![
            (
                NaiveDate::from_ymd_opt(2025, 11, 25).unwrap(),
                Salt([7; 32]),
            ),
            (
                NaiveDate::from_ymd_opt(2025, 11, 24).unwrap(),
                Salt([8; 32]),
            ),
        ],
    }
}

fn steps(c: &mut Criterion) {
    c.bench_function("body: parse JSON event", |b| {
        b.iter(|| parse_body(black_box(BODY)).unwrap())
    });
    c.bench_function("body: parse pixel query", |b| {
        b.iter(|| parse_query(black_box(PIXEL_QUERY), None).unwrap())
    });
    let url = "https://example.com/blog/why-footfall?utm_source=newsletter&utm_medium=email&utm_campaign=launch";
    c.bench_function("url: normalise page URL", |b| {
        b.iter(|| normalise(black_box(url), false).unwrap())
    });
    let page = normalise(url, false).unwrap();
    c.bench_function("referrer: classify search referrer", |b| {
        b.iter(|| referrer::classify(black_box(Some("https://www.google.com/")), &page))
    });
    c.bench_function("bots: user-agent substring check", |b| {
        b.iter(|| bots::is_bot_user_agent(black_box(USER_AGENTS[0])))
    });

    let none = ClientHints::default();
    let cached = UaParser::default();
    for ua in USER_AGENTS {
        cached.parse(ua, &none);
    }
    let mut i = 0;
    c.bench_function("user-agent: parse, cached", |b| {
        b.iter(|| {
            i += 1;
            cached.parse(black_box(USER_AGENTS[i % USER_AGENTS.len()]), &none)
        })
    });
    let uncached = UaParser::new(1);
    c.bench_function("user-agent: parse, uncached", |b| {
        b.iter(|| {
            i += 1;
            uncached.parse_uncached(black_box(USER_AGENTS[i % USER_AGENTS.len()]), &none)
        })
    });

    let geo = geoip();
    // In the test database (2.2.3.0/24 is a city in the United Kingdom).
    let address: IpAddr = "2.2.3.77".parse().unwrap();
    assert!(!geo.lookup(ip::truncate(address)).city.is_empty());
    c.bench_function("geoip: city lookup of a truncated address", |b| {
        b.iter(|| geo.lookup(ip::truncate(black_box(address))))
    });
    let salt = Salt([7; 32]);
    c.bench_function("visitor: keyed blake3 hash", |b| {
        b.iter(|| visitor_id(&salt, "example.com", black_box(address), USER_AGENTS[0]))
    });

    let pipeline = Pipeline::new(Some(std::sync::Arc::new(geo)));
    pipeline.set_sites(vec![Site {
        id: 1,
        domain: "example.com".into(),
        timezone: "UTC".into(),
    }]);
    pipeline.set_salts(salts());
    let received_at = DateTime::from_timestamp(1_764_072_000, 0).unwrap();
    let mut n: u32 = 0;
    c.bench_function("pipeline: one pageview, all steps", |b| {
        b.iter_batched(
            || {
                n = n.wrapping_add(1);
                Request {
                    input: parse_body(BODY).unwrap(),
                    // A new visitor each time, so sessions are opened as well as found.
                    client_ip: IpAddr::from([2, 2, (n >> 8) as u8, n as u8]),
                    user_agent: USER_AGENTS[n as usize % USER_AGENTS.len()],
                    client_hints: Default::default(),
                    received_at,
                }
            },
            |request| pipeline.process(&request).unwrap(),
            BatchSize::SmallInput,
        )
    });

    // What the spool thread adds per group commit: encoding, checksum, write and fsync.
    let rows = match pipeline
        .process(&Request {
            input: parse_body(BODY).unwrap(),
            client_ip: address,
            user_agent: USER_AGENTS[0],
            client_hints: Default::default(),
            received_at,
        })
        .unwrap()
    {
        footfall::ingest::pipeline::Outcome::Accepted(rows) => rows,
        other => panic!("the bench pageview was not accepted: {other:?}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), u64::MAX).unwrap();
    let record = Record {
        batch_id: 1,
        rows: rows.iter().cycle().take(64).cloned().collect(),
    };
    c.bench_function("spool: append 64 events and fsync", |b| {
        b.iter(|| spool.append(black_box(&record)).unwrap())
    });
}

criterion_group!(benches, steps);
criterion_main!(benches);
