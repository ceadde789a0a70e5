//! Visits as rows: once the rollup job has written a closed day's visit rows, visit-level
//! questions (filtered or broken down by visit properties) are answered from them, on every
//! store, with the numbers the raw events give, and with the numbers an independent count of
//! the generated visits gives.
//!
//! The events are the dashboard bench's (`footfall_tests::volume`: four pageviews per visit,
//! two visits per visitor, 12 sources, 40 browsers), plus visits made to be awkward: one that
//! spans the UTC midnight when the visitor hash changes (two hashes within one site-local
//! day), one that spans the site's local midnight, one with a custom event and no pageview,
//! and an engagement event (which no visit metric counts).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use footfall::query::model;
use footfall::query::rollup::roll_up_closed_days;
use footfall::query::run::{Policy, run};
use footfall::store::{Deadline, EventRow, Site};
use footfall_tests::{Backend, TestStore};
use serde_json::{Value, json};

const FIRST: &str = "2026-10-22";
const LAST: &str = "2026-11-19";

fn now() -> DateTime<Utc> {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

fn at(s: &str) -> u32 {
    u32::try_from(s.parse::<DateTime<Utc>>().unwrap().timestamp()).unwrap()
}

/// One of the awkward visits' events, from Google, on a desktop in Denmark.
fn awkward(session: u64, visitor: u64, ts: &str, name: &str, path: &str) -> EventRow {
    EventRow {
        timestamp: at(ts),
        name: name.into(),
        hostname: "example.com".into(),
        pathname: path.into(),
        entry_page: "/start".into(),
        visitor_id: visitor,
        session_id: session,
        referrer: "google.com".into(),
        referrer_source: "Google".into(),
        channel: "Organic Search".into(),
        browser: "Browser 7".into(),
        browser_version: "131".into(),
        os: "Windows".into(),
        os_version: "10".into(),
        device: "Desktop".into(),
        country_code: "DK".into(),
        scroll_depth: 255,
        ..EventRow::default()
    }
}

fn events(site_id: u32) -> Vec<EventRow> {
    let mut rows: Vec<EventRow> = footfall_tests::volume::events(6_002, now()).collect();
    rows.extend([
        // Copenhagen is UTC+1: 00:50 and 01:10 local on 11 November, one visit, two hashes.
        awkward(101, 11, "2026-11-10T23:50:00Z", "pageview", "/start"),
        awkward(101, 12, "2026-11-11T00:10:00Z", "pageview", "/late"),
        // 23:50 local on 12 November, then 00:10 and 00:15 on the 13th.
        awkward(102, 13, "2026-11-12T22:50:00Z", "pageview", "/start"),
        awkward(102, 13, "2026-11-12T23:10:00Z", "pageview", "/next"),
        awkward(102, 13, "2026-11-12T23:15:00Z", "engagement", "/next"),
        // A visit of one custom event: no pageview, so no exit page, and not a bounce.
        awkward(103, 14, "2026-11-14T10:00:00Z", "Signup", "/start"),
    ]);
    for r in &mut rows {
        r.site_id = site_id;
    }
    rows
}

/// What an independent count of the events says per visit and site-local day.
struct SessionDay {
    day: NaiveDate,
    visitors: BTreeSet<u64>,
    pageviews: i64,
    events: i64,
    first: u32,
    last: u32,
    exit: (u32, String),
    row: EventRow,
}

fn session_days(rows: &[EventRow], tz: Tz) -> Vec<SessionDay> {
    let mut by: BTreeMap<(u64, NaiveDate), SessionDay> = BTreeMap::new();
    for e in rows.iter().filter(|e| e.name != "engagement") {
        let day = DateTime::from_timestamp(i64::from(e.timestamp), 0)
            .unwrap()
            .with_timezone(&tz)
            .date_naive();
        let s = by.entry((e.session_id, day)).or_insert_with(|| SessionDay {
            day,
            visitors: BTreeSet::new(),
            pageviews: 0,
            events: 0,
            first: u32::MAX,
            last: 0,
            exit: (0, String::new()),
            row: e.clone(),
        });
        s.visitors.insert(e.visitor_id);
        s.events += 1;
        s.first = s.first.min(e.timestamp);
        s.last = s.last.max(e.timestamp);
        if e.name == "pageview" {
            s.pageviews += 1;
            let candidate = (e.timestamp, e.pathname.clone());
            if s.exit.1.is_empty() || candidate > s.exit {
                s.exit = candidate;
            }
        }
    }
    let (first, last) = (FIRST.parse().unwrap(), LAST.parse().unwrap());
    by.into_values()
        .filter(|s| s.day >= first && s.day <= last)
        .collect()
}

/// Visitors (hashes per day), visits, pageviews, bounces and summed duration of the visits.
fn totals<'a>(visits: impl Iterator<Item = &'a SessionDay>) -> [i64; 5] {
    let mut hashes = BTreeSet::new();
    let mut out = [0; 5];
    for s in visits {
        hashes.extend(s.visitors.iter().map(|v| (*v, s.day)));
        out[1] += 1;
        out[2] += s.pageviews;
        out[3] += i64::from(s.pageviews == 1 && s.events == 1);
        out[4] += i64::from(s.last - s.first);
    }
    out[0] = hashes.len() as i64;
    out
}

fn questions() -> Vec<Value> {
    let range = json!([FIRST, LAST]);
    vec![
        json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration"], "date_range": range, "filters": [["is", "visit:source", ["Google"]]]}),
        json!({"site_id": "example.com", "metrics": ["visitors", "visits"], "date_range": range, "dimensions": ["visit:exit_page"], "filters": [["is", "visit:country", ["DK"]], ["is", "visit:source", ["Google"]]], "pagination": {"limit": 1000}}),
        json!({"site_id": "example.com", "metrics": ["visitors", "visits", "views_per_visit", "percentage"], "date_range": range, "dimensions": ["visit:browser", "time:week"], "filters": [["not", ["contains", "visit:entry_page", ["/page/1"]]], ["is_not", "visit:device", ["Mobile"]]], "pagination": {"limit": 1000}}),
        json!({"site_id": "example.com", "metrics": ["visitors", "visits", "bounce_rate"], "date_range": range, "dimensions": ["time:day"], "filters": [["is", "visit:device", ["Mobile"]]]}),
        json!({"site_id": "example.com", "metrics": ["visitors", "pageviews"], "date_range": range, "dimensions": ["visit:source"], "filters": [["matches", "visit:utm_source", ["^news"]]], "pagination": {"limit": 1000}}),
    ]
}

async fn ask(t: &TestStore, site: &Site, q: &Value, retention: u32) -> Value {
    let policy = Policy {
        now: now(),
        raw_retention_days: retention,
        deadline: Deadline::after(std::time::Duration::from_secs(60)),
        sample_threshold: 0,
    };
    let mut answer = run(t.store.as_ref(), site, &model::parse(q).unwrap(), &policy)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    // The answer echoes the query; only the results are compared.
    answer["results"].take()
}

/// `dimension value → metric values` of an answer with one dimension.
fn by_value(results: &Value) -> BTreeMap<String, Vec<Value>> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().unwrap().to_string(),
                r["metrics"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

async fn visit_rows_answer_as_raw_events_and_an_independent_count(backend: Backend) {
    let t = TestStore::new(backend, "visit_rows").await;
    let site = t
        .store
        .meta()
        .add_site("example.com", "Europe/Copenhagen")
        .await
        .unwrap();
    let tz: Tz = site.timezone.parse().unwrap();
    let rows = events(site.id);
    t.store.insert_events(rows.clone().into()).await.unwrap();
    let raw: Vec<Value> = {
        let mut out = Vec::new();
        for q in questions() {
            out.push(ask(&t, &site, &q, 400).await);
        }
        out
    };
    let policy = Policy {
        now: now(),
        raw_retention_days: 400,
        deadline: Deadline::after(std::time::Duration::from_secs(600)),
        sample_threshold: 0,
    };
    roll_up_closed_days(t.store.as_ref(), &policy, usize::MAX)
        .await
        .unwrap();
    let (first, last) = (FIRST.parse().unwrap(), LAST.parse().unwrap());
    let written = t.store.visit_days(site.id, first, last).await.unwrap();
    assert_eq!(written.len(), 29, "every closed day has its visit rows");
    // With raw events kept for one day only, a question over older days that the visit rows
    // did not answer would be refused: these answers come from the visit rows.
    let mut from_rows = Vec::new();
    for q in questions() {
        from_rows.push(ask(&t, &site, &q, 1).await);
    }

    // The independent count, per visit and site-local day.
    let visits = session_days(&rows, tz);
    let google: Vec<&SessionDay> = visits
        .iter()
        .filter(|s| s.row.referrer_source == "Google")
        .collect();
    let [visitors, n, pageviews, bounces, duration] = totals(google.iter().copied());
    assert!(n > 50, "enough visits from Google: {n}");
    assert_eq!(
        from_rows[0][0]["metrics"],
        json!([
            visitors,
            n,
            pageviews,
            (100.0 * bounces as f64 / n as f64).round() as i64,
            (duration as f64 / n as f64).round() as i64
        ]),
        "totals from Google"
    );
    let mut exits: BTreeMap<String, Vec<&SessionDay>> = BTreeMap::new();
    for s in google.iter().filter(|s| s.row.country_code == "DK") {
        exits.entry(s.exit.1.clone()).or_default().push(s);
    }
    let expected: BTreeMap<String, Vec<Value>> = exits
        .into_iter()
        .map(|(page, list)| {
            let [visitors, visits, ..] = totals(list.into_iter());
            (page, vec![json!(visitors), json!(visits)])
        })
        .collect();
    assert!(expected.contains_key(""), "a visit without a pageview");
    assert!(expected.contains_key("/late") && expected.contains_key("/start"));
    assert_eq!(by_value(&from_rows[1]), expected, "exit pages");

    // Raw events give the same answers (the exit page per day is the visit rows' own
    // reading: over several days raw events take a visit's last pageview of the range).
    for (i, q) in questions().iter().enumerate() {
        if i != 1 {
            assert_eq!(raw[i], from_rows[i], "{q}");
        }
        assert!(
            !from_rows[i].as_array().unwrap().is_empty(),
            "{q}: no results"
        );
    }
}

footfall_tests::all_stores!(visit_rows_answer_as_raw_events_and_an_independent_count);
