//! Sampling: a question that would read more rows than the threshold counts one visitor in
//! `divisor` (chosen by the visitor hash) and scales the counts up; the answer's
//! `meta.sample_rate` says so, and `"sampling": false` asks for the exact answer. On every
//! store, from raw events and from visit rows:
//! - the rate is the one the rows to read call for;
//! - the sampled counts are exactly `divisor` times an independent count of the generated
//!   events of the visitors whose hash is in the sample (the lowest tenth of hashes), so the
//!   slice is the documented one and nothing else is counted;
//! - they are within 15 % of the exact figures (the hashes are spread evenly);
//! - the exact answer is the independent count of every visitor.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use footfall::query::model;
use footfall::query::rollup::roll_up_closed_days;
use footfall::query::run::{Policy, run};
use footfall::store::{Deadline, EventRow, Site};
use footfall_tests::{Backend, TestStore};
use serde_json::{Value, json};

const FIRST: &str = "2026-10-22";
const LAST: &str = "2026-11-19";
/// Pageviews generated: four per visit, two visits per visitor, over 30 days.
const EVENTS: usize = 40_000;

fn now() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

fn day_of(e: &EventRow) -> NaiveDate {
    DateTime::from_timestamp(i64::from(e.timestamp), 0)
        .unwrap()
        .date_naive()
}

/// Visitors (hashes per day), visits and pageviews of `rows` within the range.
fn count<'a>(rows: impl Iterator<Item = &'a EventRow>) -> [i64; 3] {
    let (first, last): (NaiveDate, NaiveDate) = (FIRST.parse().unwrap(), LAST.parse().unwrap());
    let (mut visitors, mut visits, mut pageviews) = (BTreeSet::new(), BTreeSet::new(), 0);
    for e in rows.filter(|e| (first..=last).contains(&day_of(e))) {
        visitors.insert((e.visitor_id, day_of(e)));
        visits.insert((e.session_id, day_of(e)));
        pageviews += 1;
    }
    [visitors.len() as i64, visits.len() as i64, pageviews]
}

async fn ask(t: &TestStore, site: &Site, q: &Value, threshold: u64) -> Value {
    let policy = Policy {
        now: now(),
        raw_retention_days: 400,
        deadline: Deadline::after(std::time::Duration::from_secs(120)),
        sample_threshold: threshold,
    };
    run(t.store.as_ref(), site, &model::parse(q).unwrap(), &policy)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn metrics(answer: &Value) -> Vec<i64> {
    answer["results"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

fn close(sampled: &[i64], exact: &[i64], what: &str) {
    for (s, e) in sampled.iter().zip(exact) {
        let off = (s - e).abs() as f64 / *e as f64;
        eprintln!("{what}: sampled {s}, exact {e}, {:.1} % off", off * 100.0);
        assert!(off < 0.15, "{what}: sampled {sampled:?}, exact {exact:?}");
    }
}

async fn large_questions_count_a_stated_sample(backend: Backend) {
    let t = TestStore::new(backend, "sampling").await;
    let site = t.store.meta().add_site("example.com", "UTC").await.unwrap();
    let rows: Vec<EventRow> = footfall_tests::volume::events(EVENTS, now())
        .map(|mut e| {
            e.site_id = site.id;
            e
        })
        .collect();
    t.store.insert_events(rows.clone().into()).await.unwrap();
    // The independent counts: every visitor, and the tenth whose hash is lowest.
    let in_sample = |e: &&EventRow| e.visitor_id <= u64::MAX / 10;
    let exact = count(rows.iter());
    let sliced = count(rows.iter().filter(in_sample));
    let google = |e: &&EventRow| e.referrer_source == "Google";
    let exact_google = count(rows.iter().filter(google));
    let sliced_google = count(rows.iter().filter(google).filter(in_sample));
    assert!(
        sliced[0] > 100 && sliced_google[0] > 10,
        "{sliced:?} {sliced_google:?}"
    );
    let times_ten = |c: [i64; 3]| c.map(|n| n * 10).to_vec();

    let range = json!([FIRST, LAST]);
    let totals = json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews"], "date_range": range});
    let filtered = json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews"], "date_range": range, "filters": [["is", "visit:source", ["Google"]]]});
    let exact_totals = json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews"], "date_range": range, "sampling": false});

    // Raw events: about 38,700 rows to read; a threshold of 4,000 calls for one in ten.
    for (q, sliced, exact) in [
        (&totals, sliced, exact),
        (&filtered, sliced_google, exact_google),
    ] {
        let answer = ask(&t, &site, q, 4_000).await;
        assert_eq!(answer["meta"]["sample_rate"], json!(0.1), "{q}");
        assert_eq!(
            metrics(&answer),
            times_ten(sliced),
            "{q}: ten times the sample"
        );
        close(&metrics(&answer), &exact, &q.to_string());
        // Within the threshold, or with sampling off, every visitor counts.
        let whole = ask(&t, &site, q, 1_000_000).await;
        assert_eq!(whole["meta"]["sample_rate"], json!(1.0), "{q}");
        assert_eq!(metrics(&whole), exact.to_vec(), "{q}: exact");
    }
    let off = ask(&t, &site, &exact_totals, 4_000).await;
    assert_eq!(off["meta"]["sample_rate"], json!(1.0));
    assert_eq!(metrics(&off), exact.to_vec(), "sampling: false is exact");
    // Twice the rows per allowed row: one in five.
    let answer = ask(&t, &site, &totals, 9_000).await;
    assert_eq!(answer["meta"]["sample_rate"], json!(0.2));

    // After the rollup job: the unfiltered totals come from rollups (nothing to sample over
    // closed days), the filtered question from the visit rows (one row per visit: about
    // 9,700 rows to read, so a threshold of 1,000 calls for one in ten).
    let policy = Policy {
        now: now(),
        raw_retention_days: 400,
        deadline: Deadline::after(std::time::Duration::from_secs(600)),
        sample_threshold: 0,
    };
    roll_up_closed_days(t.store.as_ref(), &policy, usize::MAX)
        .await
        .unwrap();
    let rolled = ask(&t, &site, &totals, 1_000).await;
    assert_eq!(
        rolled["meta"]["sample_rate"],
        json!(1.0),
        "rollups are exact"
    );
    assert_eq!(metrics(&rolled), exact.to_vec());
    let answer = ask(&t, &site, &filtered, 1_000).await;
    assert_eq!(answer["meta"]["sample_rate"], json!(0.1));
    assert_eq!(
        metrics(&answer),
        times_ten(sliced_google),
        "visit rows: ten times the sample"
    );
    close(&metrics(&answer), &exact_google, "visit rows");
    // An event-level question still reads raw events; the closed days' totals rollups stand
    // in for counting them (about 38,700 rows again: one in ten at 4,000).
    let pages = json!({"site_id": "example.com", "metrics": ["pageviews"], "date_range": range, "dimensions": ["event:page"], "filters": [["is", "visit:source", ["Google"]]], "pagination": {"limit": 1000}});
    let answer = ask(&t, &site, &pages, 4_000).await;
    assert_eq!(answer["meta"]["sample_rate"], json!(0.1));
    let pageviews: i64 = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metrics"][0].as_i64().unwrap())
        .sum();
    assert_eq!(
        pageviews,
        sliced_google[2] * 10,
        "pages: ten times the sample"
    );
    // A breakdown's percentages and rates come from the sample itself.
    let by_browser = json!({"site_id": "example.com", "metrics": ["visitors", "percentage", "bounce_rate"], "date_range": range, "dimensions": ["visit:browser"], "filters": [["is", "visit:source", ["Google"]]], "pagination": {"limit": 100}});
    let answer = ask(&t, &site, &by_browser, 1_000).await;
    assert_eq!(answer["meta"]["sample_rate"], json!(0.1));
    let results = answer["results"].as_array().unwrap();
    let share: f64 = results
        .iter()
        .map(|r| r["metrics"][1].as_f64().unwrap())
        .sum();
    assert!((share - 100.0).abs() < 2.5, "percentages add up: {share}");
    let visitors: i64 = results
        .iter()
        .map(|r| r["metrics"][0].as_i64().unwrap())
        .sum();
    assert_eq!(visitors, sliced_google[0] * 10);
}

footfall_tests::all_stores!(large_questions_count_a_stated_sample);
