//! The Stats API answers, checked against answers computed independently in plain Rust over
//! the same fixture events, on both stores.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::time::Duration;

use footfall::query::sql::{Dialect, Statement};
use footfall::store::{Deadline, EventRow, StoreError};
use footfall_tests::{Backend, TestApp, both_stores};
use serde_json::{Value, json};

both_stores!(
    answers_match_an_independent_computation,
    client_mistakes_are_named,
    comparisons_pair_rows_with_the_earlier_period,
    realtime_counts_the_last_five_minutes,
    rollups_keep_answers_after_raw_events_are_purged,
    date_times_and_24h_answer_exactly_those_instants,
    costly_regular_expressions_are_refused_before_they_are_compiled,
    statements_stop_at_their_deadline_and_give_back_their_connection,
);

const TZ: &str = "Europe/Copenhagen";

fn now() -> DateTime<Utc> {
    "2026-11-16T20:00:00Z".parse().unwrap()
}

/// Deterministic, varied events over 2026-11-09..16 (UTC), around Copenhagen midnights.
fn fixture() -> Vec<EventRow> {
    fixture_over(
        Utc.with_ymd_and_hms(2026, 11, 9, 21, 30, 0).unwrap(),
        7,
        400,
    )
}

/// `sessions` visits spread over `days` days from `start`.
fn fixture_over(start: DateTime<Utc>, days: u32, sessions: u64) -> Vec<EventRow> {
    let pages = ["/", "/pricing", "/blog/a", "/blog/b", "/docs"];
    let sources = [
        ("", "", "Direct"),
        ("google.com", "Google", "Organic Search"),
        ("news.ycombinator.com/item", "Hacker News", "Organic Social"),
        ("github.com/x", "GitHub", "Referral"),
    ];
    let countries = [
        ("DK", "DK-84", "Copenhagen", "Denmark", "Capital Region"),
        ("SE", "SE-E", "Linköping", "Sweden", "Östergötland"),
        ("GB", "GB-ENG", "Boxford", "United Kingdom", "England"),
        ("", "", "", "", ""),
    ];
    let devices = [
        ("Desktop", "Chrome", "131", "Windows", "10"),
        ("Mobile", "Safari", "17", "iOS", "17.5"),
        ("Tablet", "Chrome", "120", "Android", "13"),
    ];
    let start = start.timestamp() as u32;
    let mut out = Vec::new();
    let mut seed = 7u64;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    for session in 0..sessions {
        let visitor = 1000 + next(250);
        let t0 = start + (next(u64::from(days) * 86_400)) as u32;
        let (referrer, source, channel) = sources[next(4) as usize];
        let (cc, region, city, country_name, region_name) = countries[next(4) as usize];
        let (device, browser, bv, os, ov) = devices[next(3) as usize];
        let site_id = if next(10) == 0 { 2 } else { 1 };
        // A visit's campaign is fixed by its first event, as the pipeline records it.
        let utm_medium = if source.is_empty() && next(3) == 0 {
            "email"
        } else {
            ""
        };
        let n = 1 + next(4);
        let mut t = t0;
        let mut entry = String::new();
        for i in 0..n {
            let name = match (i, next(6)) {
                (0, _) => "pageview",
                (_, 0) => "Signup",
                (_, 1) => "engagement",
                _ => "pageview",
            };
            let page = pages[next(5) as usize];
            if i == 0 {
                entry = page.to_string();
            }
            out.push(EventRow {
                site_id,
                timestamp: t,
                name: name.into(),
                // The blog has a host of its own: visits cross hosts.
                hostname: if page.starts_with("/blog") {
                    "blog.example.com"
                } else {
                    "example.com"
                }
                .into(),
                pathname: page.into(),
                entry_page: entry.clone(),
                country_name: country_name.into(),
                region_name: region_name.into(),
                visitor_id: visitor,
                session_id: 50_000 + session,
                referrer: referrer.into(),
                referrer_source: source.into(),
                channel: channel.into(),
                utm_medium: utm_medium.into(),
                browser: browser.into(),
                browser_version: bv.into(),
                os: os.into(),
                os_version: ov.into(),
                device: device.into(),
                country_code: cc.into(),
                region: region.into(),
                city: city.into(),
                engagement_ms: if name == "engagement" {
                    next(60_000) as u32
                } else {
                    0
                },
                scroll_depth: if name == "engagement" && next(4) != 0 {
                    next(101) as u8
                } else {
                    255
                },
                props_keys: if name == "Signup" {
                    vec!["plan".into(), "seats".into()]
                } else {
                    vec![]
                },
                props_values: if name == "Signup" {
                    vec![
                        ["pro", "free"][next(2) as usize].into(),
                        next(9).to_string(),
                    ]
                } else {
                    vec![]
                },
                ..EventRow::default()
            });
            t += 5 + next(600) as u32;
        }
    }
    out
}

// ---- the independent computation -------------------------------------------------------

/// Per visit: the path of its last pageview in the range, and the hosts of its first and
/// last.
type Exits = std::collections::HashMap<u64, (String, String, String)>;

fn property(e: &EventRow, name: &str, exits: &Exits) -> String {
    match name {
        "visit:entry_page" => e.entry_page.clone(),
        "visit:exit_page" => exits
            .get(&e.session_id)
            .map(|x| x.0.clone())
            .unwrap_or_default(),
        "visit:entry_page_hostname" => exits
            .get(&e.session_id)
            .map(|x| x.1.clone())
            .unwrap_or_default(),
        "visit:exit_page_hostname" => exits
            .get(&e.session_id)
            .map(|x| x.2.clone())
            .unwrap_or_default(),
        "visit:country_name" => e.country_name.clone(),
        "visit:region_name" => e.region_name.clone(),
        "visit:city_name" => e.city.clone(),
        "event:page" => e.pathname.clone(),
        "event:hostname" => e.hostname.clone(),
        "event:name" => e.name.clone(),
        "visit:source" => e.referrer_source.clone(),
        "visit:referrer" => e.referrer.clone(),
        "visit:channel" => e.channel.clone(),
        "visit:utm_medium" => e.utm_medium.clone(),
        "visit:utm_source" => e.utm_source.clone(),
        "visit:utm_campaign" => e.utm_campaign.clone(),
        "visit:utm_content" => e.utm_content.clone(),
        "visit:utm_term" => e.utm_term.clone(),
        "visit:device" => e.device.clone(),
        "visit:browser" => e.browser.clone(),
        "visit:browser_version" => e.browser_version.clone(),
        "visit:os" => e.os.clone(),
        "visit:os_version" => e.os_version.clone(),
        "visit:country" => e.country_code.clone(),
        "visit:region" => e.region.clone(),
        "visit:city" => e.city.clone(),
        prop if prop.starts_with("event:props:") => {
            let key = &prop["event:props:".len()..];
            e.props_keys
                .iter()
                .position(|k| k == key)
                .map_or(String::new(), |i| e.props_values[i].clone())
        }
        other => {
            let tz: Tz = TZ.parse().unwrap();
            let local = Utc
                .timestamp_opt(i64::from(e.timestamp), 0)
                .unwrap()
                .with_timezone(&tz);
            let day = local.date_naive();
            match other {
                "time:hour" => format!("{} {:02}:00:00", day, local.format("%H")),
                "time:day" | "time" => day.to_string(),
                "time:week" => (day
                    - chrono::Days::new(u64::from(day.weekday().num_days_from_monday())))
                .to_string(),
                "time:month" => day.with_day(1).unwrap().to_string(),
                _ => panic!("oracle does not know {other}"),
            }
        }
    }
}

fn passes(e: &EventRow, f: &Value, exits: &Exits) -> bool {
    let list = f.as_array().unwrap();
    match list[0].as_str().unwrap() {
        "and" => list[1]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| passes(e, g, exits)),
        "or" => list[1]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| passes(e, g, exits)),
        "not" => !passes(e, &list[1], exits),
        op => {
            let v = property(e, list[1].as_str().unwrap(), exits);
            let any_case = list.get(3) == Some(&json!({"case_sensitive": false}));
            let fold = |s: &str| {
                if any_case {
                    s.to_lowercase()
                } else {
                    s.to_string()
                }
            };
            let v = fold(&v);
            let values: Vec<String> = list[2]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| fold(x.as_str().unwrap()))
                .collect();
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            match op {
                "is" => values.contains(&v.as_str()),
                "is_not" => !values.contains(&v.as_str()),
                "contains" => values.iter().any(|x| v.contains(x)),
                "contains_not" => !values.iter().any(|x| v.contains(x)),
                "matches" => values
                    .iter()
                    .any(|x| regex::Regex::new(x).unwrap().is_match(&v)),
                "matches_not" => !values
                    .iter()
                    .any(|x| regex::Regex::new(x).unwrap().is_match(&v)),
                _ => unreachable!(),
            }
        }
    }
}

#[derive(Default)]
struct G {
    visitors: BTreeSet<u64>,
    pageviews: i64,
    events: i64,
    sessions: BTreeMap<u64, (i64, i64, u32, u32)>,
    /// Per visitor: engaged ms, deepest scroll (-1: none).
    engaged: BTreeMap<u64, (i64, i64)>,
}

/// Groups of the events of site 1 in the range that pass `filters`.
fn grouped(
    events: &[EventRow],
    q: &Value,
    filters: &[Value],
    engagement: bool,
) -> BTreeMap<Vec<String>, G> {
    let tz: Tz = TZ.parse().unwrap();
    let [from, to] = [0, 1].map(|i| {
        q["date_range"][i]
            .as_str()
            .unwrap()
            .parse::<NaiveDate>()
            .unwrap()
    });
    let dims: Vec<String> = q["dimensions"].as_array().map_or(vec![], |d| {
        d.iter().map(|x| x.as_str().unwrap().to_string()).collect()
    });
    let in_range = |e: &EventRow| {
        let day = Utc
            .timestamp_opt(i64::from(e.timestamp), 0)
            .unwrap()
            .with_timezone(&tz)
            .date_naive();
        e.site_id == 1 && day >= from && day <= to
    };
    // Each visit's first and last pageviews in the range (ties: by path).
    // (timestamp, path, host) of the first and the last.
    type Pageview = (u32, String, String);
    let mut ends: BTreeMap<u64, (Pageview, Pageview)> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| in_range(e) && e.name == "pageview")
    {
        let this = (e.timestamp, e.pathname.clone(), e.hostname.clone());
        let (first, last) = ends
            .entry(e.session_id)
            .or_insert((this.clone(), this.clone()));
        if (this.0, &this.1) < (first.0, &first.1) {
            *first = this.clone();
        }
        if (this.0, &this.1) > (last.0, &last.1) {
            *last = this;
        }
    }
    let exits: Exits = ends
        .into_iter()
        .map(|(s, (first, last))| (s, (last.1, first.2, last.2)))
        .collect();
    let mut groups: BTreeMap<Vec<String>, G> = BTreeMap::new();
    for e in events {
        if !in_range(e)
            || (e.name == "engagement") != engagement
            || !filters.iter().all(|f| passes(e, f, &exits))
        {
            continue;
        }
        // Counts are per site-local day and add up: the day is the key's last part.
        let mut key: Vec<String> = dims.iter().map(|d| property(e, d, &exits)).collect();
        key.push(property(e, "time:day", &exits));
        let g = groups.entry(key).or_default();
        if engagement {
            let v = g.engaged.entry(e.visitor_id).or_insert((0, -1));
            v.0 += i64::from(e.engagement_ms);
            if e.scroll_depth <= 100 {
                v.1 = v.1.max(i64::from(e.scroll_depth));
            }
            continue;
        }
        g.visitors.insert(e.visitor_id);
        g.pageviews += i64::from(e.name == "pageview");
        g.events += 1;
        let s = g
            .sessions
            .entry(e.session_id)
            .or_insert((0, 0, u32::MAX, 0));
        s.0 += i64::from(e.name == "pageview");
        s.1 += 1;
        s.2 = s.2.min(e.timestamp);
        s.3 = s.3.max(e.timestamp);
    }
    groups
}

/// Per-day counts of one group, added up over the days.
#[derive(Default, Clone, Copy)]
struct Sums {
    visitors: f64,
    visits: f64,
    pageviews: f64,
    events: f64,
    bounces: f64,
    duration: f64,
    engaged_visitors: f64,
    engaged_ms: f64,
    scroll_sum: f64,
    scrolled: f64,
    base: f64,
}

fn expected(events: &[EventRow], q: &Value) -> Vec<(Vec<String>, Vec<Value>)> {
    let dims: Vec<String> = q["dimensions"].as_array().map_or(vec![], |d| {
        d.iter().map(|x| x.as_str().unwrap().to_string()).collect()
    });
    let filters = q["filters"].as_array().cloned().unwrap_or_default();
    let metrics: Vec<String> = q["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let wants = |m: &str| metrics.iter().any(|x| x == m);
    // The denominators of the conversion rates leave out goals and custom properties.
    let is_goal = |f: &Value| {
        (f[0] == json!("is") && f[1] == json!("event:name"))
            || f[1].as_str().is_some_and(|d| d.starts_with("event:props:"))
    };
    let base_filters: Vec<Value> = filters.iter().filter(|f| !is_goal(f)).cloned().collect();
    // Each group is keyed by its dimension values and the day; fold the days away.
    let mut sums: BTreeMap<Vec<String>, Sums> = BTreeMap::new();
    let without_day = |mut k: Vec<String>| {
        k.pop();
        k
    };
    for (key, g) in grouped(events, q, &filters, false) {
        let s = sums.entry(without_day(key)).or_default();
        s.visitors += g.visitors.len() as f64;
        s.visits += g.sessions.len() as f64;
        s.pageviews += g.pageviews as f64;
        s.events += g.events as f64;
        s.bounces += g.sessions.values().filter(|x| x.0 == 1 && x.1 == 1).count() as f64;
        s.duration += g
            .sessions
            .values()
            .map(|x| f64::from(x.3 - x.2))
            .sum::<f64>();
    }
    if wants("time_on_page") || wants("scroll_depth") {
        for (key, g) in grouped(events, q, &filters, true) {
            let s = sums.entry(without_day(key)).or_default();
            s.engaged_visitors += g.engaged.len() as f64;
            s.engaged_ms += g.engaged.values().map(|v| v.0 as f64).sum::<f64>();
            s.scroll_sum += g
                .engaged
                .values()
                .filter(|v| v.1 >= 0)
                .map(|v| v.1 as f64)
                .sum::<f64>();
            s.scrolled += g.engaged.values().filter(|v| v.1 >= 0).count() as f64;
        }
    }
    if wants("group_conversion_rate") {
        for (key, g) in grouped(events, q, &base_filters, false) {
            if let Some(s) = sums.get_mut(&without_day(key)) {
                s.base += g.visitors.len() as f64;
            }
        }
    }
    let total_visitors: f64 = grouped(
        events,
        &json!({"date_range": q["date_range"]}),
        &filters,
        false,
    )
    .values()
    .map(|g| g.visitors.len() as f64)
    .sum();
    if dims.is_empty() && sums.is_empty() {
        sums.insert(vec![], Sums::default());
    }
    // `conversion_rate`: a share of all the range's visitors without goals and properties.
    let converting_base: f64 = grouped(
        events,
        &json!({"date_range": q["date_range"]}),
        &base_filters,
        false,
    )
    .values()
    .map(|g| g.visitors.len() as f64)
    .sum();
    let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    let mut rows: Vec<(Vec<String>, Vec<Value>)> = sums
        .into_iter()
        .map(|(key, s)| {
            let values = metrics
                .iter()
                .map(|m| match m.as_str() {
                    "visitors" => json!(s.visitors as i64),
                    "visits" => json!(s.visits as i64),
                    "pageviews" => json!(s.pageviews as i64),
                    "events" => json!(s.events as i64),
                    "views_per_visit" => {
                        json!((div(s.pageviews, s.visits) * 100.0).round() / 100.0)
                    }
                    "bounce_rate" => json!((div(s.bounces, s.visits) * 100.0).round() as i64),
                    "visit_duration" => json!(div(s.duration, s.visits).round() as i64),
                    "percentage" => {
                        json!((1000.0 * div(s.visitors, total_visitors)).round() / 10.0)
                    }
                    "conversion_rate" => {
                        json!((1_000.0 * div(s.visitors, converting_base)).round() / 10.0)
                    }
                    "group_conversion_rate" => {
                        json!((1_000.0 * div(s.visitors, s.base)).round() / 10.0)
                    }
                    "time_on_page" => {
                        json!((div(s.engaged_ms, s.engaged_visitors) / 1000.0).round() as i64)
                    }
                    "scroll_depth" => json!(div(s.scroll_sum, s.scrolled).round() as i64),
                    other => panic!("oracle does not know {other}"),
                })
                .collect();
            (key, values)
        })
        .collect();
    let time = dims.iter().position(|d| d.starts_with("time"));
    rows.sort_by(|a, b| {
        if let Some(i) = time {
            let o = a.0[i].cmp(&b.0[i]);
            if o.is_ne() {
                return o;
            }
        }
        let o = b.1[0].as_f64().partial_cmp(&a.1[0].as_f64()).unwrap();
        if o.is_ne() { o } else { a.0.cmp(&b.0) }
    });
    rows
}

// ---- the tests ---------------------------------------------------------------------------

async fn setup(b: Backend, name: &str) -> (TestApp, String, Vec<EventRow>) {
    setup_with(b, name, fixture(), |_| {}).await
}

/// A collector on a fresh store holding `events` (after its first maintenance round), its
/// configuration changed by `change`, and an API key for the first site.
async fn setup_with(
    b: Backend,
    name: &str,
    events: Vec<EventRow>,
    change: impl FnOnce(&mut footfall::config::Config),
) -> (TestApp, String, Vec<EventRow>) {
    let t = TestApp::start_with(
        b,
        name,
        &[("example.com", TZ), ("other.example", "UTC")],
        now(),
        change,
    )
    .await;
    t.t.store
        .insert_events(events.as_slice().into())
        .await
        .unwrap();
    let key = footfall::apikey::generate(1, 0);
    t.t.store.meta().add_api_key(&key.record).await.unwrap();
    (t, key.secret, events)
}

async fn ask(t: &TestApp, key: &str, q: &Value) -> (StatusCode, Value) {
    let req = Request::post("/api/v2/query")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(q.to_string()))
        .unwrap();
    let r = t.send("127.0.0.1", req).await;
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 10_000_000)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn answers_match_an_independent_computation(b: Backend) {
    let (t, key, events) = setup(b, "query_oracle").await;
    let metrics = json!([
        "visitors",
        "visits",
        "pageviews",
        "events",
        "views_per_visit",
        "bounce_rate",
        "visit_duration"
    ]);
    let range = json!(["2026-11-10", "2026-11-15"]);
    let dimensions = [
        "event:page",
        "event:hostname",
        "visit:entry_page_hostname",
        "visit:exit_page_hostname",
        "event:name",
        "visit:source",
        "visit:referrer",
        "visit:channel",
        "visit:utm_medium",
        "visit:utm_source",
        "visit:utm_campaign",
        "visit:utm_content",
        "visit:utm_term",
        "visit:device",
        "visit:browser",
        "visit:browser_version",
        "visit:os",
        "visit:os_version",
        "visit:country",
        "visit:region",
        "visit:city",
        "time:hour",
        "time:day",
        "time:week",
        "time:month",
        "visit:entry_page",
        "visit:exit_page",
        "visit:country_name",
        "visit:region_name",
        "visit:city_name",
        "event:props:plan",
        "event:props:seats",
    ];
    let filter_sets = [
        json!([]),
        json!([["is", "visit:country", ["DK", "SE"]]]),
        json!([
            ["is_not", "visit:device", ["Mobile"]],
            ["contains", "event:page", ["/blog"]]
        ]),
        json!([[
            "or",
            [
                ["is", "visit:source", ["Google"]],
                ["contains_not", "visit:city", ["ö"]]
            ]
        ]]),
        json!([[
            "not",
            [
                "and",
                [
                    ["is", "event:name", ["pageview"]],
                    ["contains", "visit:browser", ["Chrome"]]
                ]
            ]
        ]]),
        json!([
            ["matches", "event:page", ["^/blog/[ab]$", "^/$"]],
            ["matches_not", "visit:city", ["^L"]]
        ]),
        json!([["is", "event:props:plan", ["pro"]]]),
        json!([
            ["contains", "event:props:seats", ["1", "2"]],
            ["is_not", "event:props:plan", ["free"]]
        ]),
        json!([
            ["is", "visit:exit_page", ["/docs", "/"]],
            ["is_not", "visit:entry_page", ["/pricing"]]
        ]),
        json!([
            ["is", "visit:entry_page_hostname", ["blog.example.com"]],
            ["contains_not", "visit:exit_page_hostname", ["BLOG"], {"case_sensitive": false}]
        ]),
        json!([
            ["contains", "visit:country_name", ["United"]],
            ["matches", "visit:region_name", ["^E"]]
        ]),
        // Case-insensitive, with letters outside ASCII (SQLite's own lower() keeps them) and
        // regular expression characters taken literally.
        json!([
            ["is", "visit:city", ["LINKÖPING", "copenhagen"], {"case_sensitive": false}],
            ["contains", "event:page", ["BLOG/", "/Do"], {"case_sensitive": false}]
        ]),
        json!([
            ["is_not", "visit:browser", ["chrome"], {"case_sensitive": false}],
            ["contains_not", "visit:region_name", ["ÖSTER", "."], {"case_sensitive": false}],
            ["is", "visit:device", ["mobile", "Mobile"], {"case_sensitive": true}]
        ]),
    ];
    let mut queries =
        vec![json!({"site_id": "example.com", "metrics": metrics, "date_range": range})];
    for d in dimensions {
        queries.push(json!({"site_id": "example.com", "metrics": metrics, "date_range": range, "dimensions": [d]}));
    }
    for f in &filter_sets {
        queries.push(json!({"site_id": "example.com", "metrics": metrics, "date_range": range, "filters": f}));
        queries.push(json!({"site_id": "example.com", "metrics": ["visitors", "percentage", "bounce_rate"], "date_range": range, "dimensions": ["visit:source", "visit:device"], "filters": f}));
        queries.push(json!({"site_id": "example.com", "metrics": ["visits", "pageviews"], "date_range": range, "dimensions": ["time:day"], "filters": f}));
    }
    for d in [
        json!([]),
        json!(["event:page"]),
        json!(["visit:source"]),
        json!(["time:day"]),
    ] {
        queries.push(json!({"site_id": "example.com", "metrics": ["time_on_page", "scroll_depth", "visitors"], "date_range": range, "dimensions": d}));
        queries.push(json!({"site_id": "example.com", "metrics": ["conversion_rate", "visitors"], "date_range": range, "dimensions": d, "filters": [["is", "event:name", ["Signup"]]]}));
        queries.push(json!({"site_id": "example.com", "metrics": ["visitors", "conversion_rate"], "date_range": range, "dimensions": d, "filters": [["is", "event:name", ["Signup"]], ["is", "visit:device", ["Desktop", "Tablet"]]]}));
        if !d.as_array().is_some_and(|a| a.is_empty()) {
            queries.push(json!({"site_id": "example.com", "metrics": ["visitors", "conversion_rate", "group_conversion_rate"], "date_range": range, "dimensions": d, "filters": [["is", "event:name", ["Signup"]], ["is", "event:props:plan", ["pro"]], ["is", "visit:device", ["Desktop", "Tablet"]]]}));
        }
    }
    for q in &queries {
        let (status, answer) = ask(&t, &key, q).await;
        assert_eq!(status, StatusCode::OK, "{q}: {answer}");
        let got: Vec<(Vec<String>, Vec<Value>)> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let dims = r["dimensions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap().to_string())
                    .collect();
                (dims, r["metrics"].as_array().unwrap().clone())
            })
            .collect();
        let want = expected(&events, q);
        assert!(!want.is_empty());
        assert_eq!(got, want, "{b:?} {q}");
    }
    // A named range resolves against the site's today: 7d ends on 2026-11-16 in Copenhagen.
    let (_, seven) = ask(&t, &key, &json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d", "dimensions": ["time:day"], "include": {"time_labels": true, "total_rows": true}})).await;
    let labels: Vec<&str> = seven["meta"]["time_labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "2026-11-10",
            "2026-11-11",
            "2026-11-12",
            "2026-11-13",
            "2026-11-14",
            "2026-11-15",
            "2026-11-16"
        ]
    );
    let want = expected(
        &events,
        &json!({"metrics": ["visitors"], "date_range": ["2026-11-10", "2026-11-16"], "dimensions": ["time:day"]}),
    );
    assert_eq!(seven["meta"]["total_rows"], json!(want.len()));
    // Pagination takes a window of the ordered rows.
    let q = json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": range, "dimensions": ["event:page"], "pagination": {"limit": 2, "offset": 1}});
    let (_, page) = ask(&t, &key, &q).await;
    let want = expected(&events, &q);
    let got: Vec<Value> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dimensions"][0].clone())
        .collect();
    assert_eq!(
        got,
        want[1..3].iter().map(|r| json!(r.0[0])).collect::<Vec<_>>()
    );
}

async fn client_mistakes_are_named(b: Backend) {
    let (t, key, _) = setup(b, "query_errors").await;
    let q = json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d"});
    let no_auth = Request::post("/api/v2/query")
        .body(Body::from(q.to_string()))
        .unwrap();
    let r = t.send("127.0.0.1", no_auth).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let cases = [
        (
            format!("ff_{}", "0".repeat(48)),
            q.clone(),
            StatusCode::UNAUTHORIZED,
            "invalid",
        ),
        (
            key.clone(),
            json!({"site_id": "other.example", "metrics": ["visitors"], "date_range": "7d"}),
            StatusCode::NOT_FOUND,
            "other.example",
        ),
        (
            key.clone(),
            json!({"site_id": "nope.example", "metrics": ["visitors"], "date_range": "7d"}),
            StatusCode::NOT_FOUND,
            "nope.example",
        ),
        (
            key.clone(),
            json!({"site_id": "example.com", "metrics": ["visitorz"], "date_range": "7d"}),
            StatusCode::BAD_REQUEST,
            "visitorz",
        ),
        (
            key.clone(),
            json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": ["2026-11-10", "2026-11-01"]}),
            StatusCode::BAD_REQUEST,
            "after it ends",
        ),
        (
            key.clone(),
            json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d", "filters": [["is", "visit:country"]]}),
            StatusCode::BAD_REQUEST,
            "dimension and a list",
        ),
    ];
    for (k, body, status, needle) in cases {
        let (s, answer) = ask(&t, &k, &body).await;
        assert_eq!(s, status, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    // A revoked key is refused.
    let id = t.t.store.meta().api_keys().await.unwrap()[0].id.clone();
    t.t.store.meta().revoke_api_key(&id).await.unwrap();
    assert_eq!(ask(&t, &key, &q).await.0, StatusCode::UNAUTHORIZED);
}

fn results(answer: &Value) -> Vec<Value> {
    answer["results"].as_array().unwrap().clone()
}

async fn comparisons_pair_rows_with_the_earlier_period(b: Backend) {
    let (t, key, events) = setup(b, "query_compare").await;
    let metrics = json!(["visitors", "visits", "bounce_rate"]);
    for dims in [json!(["visit:source"]), json!(["time:day"]), json!([])] {
        let q = json!({"site_id": "example.com", "metrics": metrics, "date_range": ["2026-11-13", "2026-11-15"], "dimensions": dims, "include": {"comparisons": {"mode": "previous_period"}}});
        let (status, answer) = ask(&t, &key, &q).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            answer["query"]["comparison_date_range"],
            json!(["2026-11-10", "2026-11-12"])
        );
        let earlier = expected(
            &events,
            &json!({"metrics": metrics, "date_range": ["2026-11-10", "2026-11-12"], "dimensions": dims}),
        );
        let rows = results(&answer);
        assert!(!rows.is_empty());
        for row in rows {
            let cmp = &row["comparison"];
            let key: Vec<String> = cmp["dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            if dims == json!(["time:day"]) {
                // Buckets pair by position: the 13th with the 10th, and so on.
                let day: chrono::NaiveDate =
                    row["dimensions"][0].as_str().unwrap().parse().unwrap();
                assert_eq!(key, vec![(day - chrono::Days::new(3)).to_string()]);
            } else {
                assert_eq!(
                    key,
                    row["dimensions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                );
            }
            let want = earlier
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(vec![json!(0), json!(0), json!(0)], |(_, m)| m.clone());
            assert_eq!(cmp["metrics"].as_array().unwrap(), &want, "{row}");
            let (now_v, before_v) = (
                row["metrics"][0].as_f64().unwrap(),
                want[0].as_f64().unwrap(),
            );
            let pct = if before_v == 0.0 {
                if now_v == 0.0 { 0.0 } else { 100.0 }
            } else {
                (100.0 * (now_v - before_v) / before_v).round()
            };
            assert_eq!(cmp["change"][0].as_f64().unwrap(), pct);
            let points = row["metrics"][2].as_f64().unwrap() - want[2].as_f64().unwrap();
            assert_eq!(cmp["change"][2].as_f64().unwrap(), points);
        }
    }
    let q = json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": ["2026-11-13", "2026-11-15"], "include": {"comparisons": {"mode": "year_over_year"}}});
    let (_, answer) = ask(&t, &key, &q).await;
    assert_eq!(
        answer["query"]["comparison_date_range"],
        json!(["2025-11-13", "2025-11-15"])
    );
    assert_eq!(results(&answer)[0]["comparison"]["metrics"], json!([0]));
    assert_eq!(results(&answer)[0]["comparison"]["change"], json!([100]));
}

async fn realtime_counts_the_last_five_minutes(b: Backend) {
    let (t, key, _) = setup(b, "query_realtime").await;
    let view = |path: &str| {
        format!(r#"{{"n":"pageview","u":"https://example.com{path}","d":"example.com"}}"#)
    };
    // Two days after the fixture's last event.
    t.clock.advance(chrono::Duration::days(2));
    t.app.maintenance.tick().await.unwrap();
    t.post_event("2.2.3.1", footfall_tests::CHROME_UA, &view("/old"))
        .await;
    t.clock.advance(chrono::Duration::minutes(6));
    for (ip, path) in [
        ("2.2.3.2", "/a"),
        ("2.2.3.3", "/a"),
        ("2.2.3.4", "/b"),
        ("2.2.3.2", "/b"),
    ] {
        t.post_event(ip, footfall_tests::CHROME_UA, &view(path))
            .await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let answer = loop {
        let req = Request::get("/api/v2/realtime?site_id=example.com")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let r = t.send("127.0.0.1", req).await;
        assert_eq!(r.status(), StatusCode::OK);
        let answer: Value =
            serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 100_000).await.unwrap())
                .unwrap();
        // Each request is answered once its event is spooled; the store takes them a moment
        // later, possibly between the answer's two queries (the total, then the pages).
        let all_in = answer["visitors"] == json!(3)
            && answer["pages"]
                == json!([{"page": "/a", "visitors": 2}, {"page": "/b", "visitors": 2}]);
        if all_in || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(answer["visitors"], json!(3), "{answer}");
    assert_eq!(
        answer["pages"],
        json!([{"page": "/a", "visitors": 2}, {"page": "/b", "visitors": 2}])
    );
    let unauth = Request::get("/api/v2/realtime?site_id=example.com")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        t.send("127.0.0.1", unauth).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn rollups_keep_answers_after_raw_events_are_purged(b: Backend) {
    // 60 days of events up to yesterday (Copenhagen); raw events are kept for 30 days.
    let now: DateTime<Utc> = "2026-11-20T12:00:00Z".parse().unwrap();
    let events = fixture_over("2026-09-20T23:00:00Z".parse().unwrap(), 60, 1500);
    let t = TestApp::start_seeded(b, "query_rollups", &[("example.com", TZ)], now, &events).await;
    let key = footfall::apikey::generate(1, 0);
    t.t.store.meta().add_api_key(&key.record).await.unwrap();
    let range = json!(["2026-09-21", "2026-11-19"]);
    let questions: Vec<Value> = [json!([]), json!(["visit:source"]), json!(["event:page"]), json!(["visit:country"]), json!(["time:day"]), json!(["time:month"])]
        .into_iter()
        .map(|d| json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"], "date_range": range, "dimensions": d}))
        .collect();
    let answers = async |questions: &[Value]| {
        let mut out = Vec::new();
        for q in questions {
            let (status, answer) = ask(&t, &key.secret, q).await;
            assert_eq!(status, StatusCode::OK, "{q}: {answer}");
            out.push(answer["results"].clone());
        }
        out
    };
    let with_range = |r: Value| -> Vec<Value> {
        questions
            .iter()
            .map(|q| {
                let mut q = q.clone();
                q["date_range"] = r.clone();
                q
            })
            .collect()
    };
    // Within raw retention, raw events (forced by an event-level filter that keeps
    // everything), the visit rows (a visit-level one) and rollups give the same answers.
    t.app.maintenance.roll_up(usize::MAX).await.unwrap();
    let days =
        t.t.store
            .rollup_days(
                1,
                "2026-09-21".parse().unwrap(),
                "2026-11-19".parse().unwrap(),
            )
            .await
            .unwrap();
    assert_eq!(days.len(), 60, "every closed day is rolled up");
    let recent = with_range(json!(["2026-10-30", "2026-11-19"]));
    let filtered = |filter: Value| -> Vec<Value> {
        recent
            .iter()
            .map(|q| {
                let mut q = q.clone();
                q["filters"] = json!([filter]);
                q
            })
            .collect()
    };
    let forced_raw = filtered(json!(["is_not", "event:hostname", ["zz.invalid"]]));
    let from_visit_rows = filtered(json!(["is_not", "visit:country", ["ZZ"]]));
    let rolled = answers(&recent).await;
    assert_eq!(rolled, answers(&forced_raw).await);
    assert_eq!(rolled, answers(&from_visit_rows).await);
    // Over all 60 days, the rollups give the independent computation's answers.
    let all = answers(&questions).await;
    for (q, got) in questions.iter().zip(&all) {
        let want: Vec<Value> = expected(&events, q)
            .into_iter()
            .map(|(d, m)| json!({"dimensions": d, "metrics": m}))
            .collect();
        assert_eq!(got.as_array().unwrap(), &want, "{q}");
    }
    // Purge raw events older than 30 days (maintenance may have done it already): the
    // answers stay.
    t.app.maintenance.purge().await.unwrap();
    let kept = t.t.events().await;
    let cutoff = Utc
        .with_ymd_and_hms(2026, 10, 21, 0, 0, 0)
        .unwrap()
        .timestamp() as u32;
    assert!(
        kept.len() < events.len() / 2,
        "{} of {} raw events kept",
        kept.len(),
        events.len()
    );
    assert!(kept.iter().all(|e| e.timestamp >= cutoff));
    assert_eq!(answers(&questions).await, all);
    // A question only raw events answer, about a purged day, is refused plainly.
    let combined = json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": ["2026-10-06", "2026-10-06"], "filters": [["is", "visit:country", ["DK"]], ["is", "visit:device", ["Desktop"]]]});
    let (status, answer) = ask(&t, &key.secret, &combined).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("raw events are kept for 30 days"),
        "{answer}"
    );
    // The same question about a recent day is answered.
    let recent = json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": ["2026-11-10", "2026-11-10"], "filters": [["is", "visit:country", ["DK"]], ["is", "visit:device", ["Desktop"]]]});
    assert_eq!(ask(&t, &key.secret, &recent).await.0, StatusCode::OK);
}

/// Visitors, pageviews and events of site 1 with a timestamp in `[from, to)`, counted here
/// from the fixture (visitors per site-local day, added up, as the hashes rotate daily).
fn counted_between(events: &[EventRow], from: i64, to: i64) -> (i64, i64, i64) {
    let tz: Tz = TZ.parse().unwrap();
    let inside: Vec<&EventRow> = events
        .iter()
        .filter(|e| {
            e.site_id == 1 && e.name != "engagement" && (from..to).contains(&i64::from(e.timestamp))
        })
        .collect();
    let visitors: BTreeSet<(NaiveDate, u64)> = inside
        .iter()
        .map(|e| {
            let day = Utc
                .timestamp_opt(i64::from(e.timestamp), 0)
                .unwrap()
                .with_timezone(&tz)
                .date_naive();
            (day, e.visitor_id)
        })
        .collect();
    let pageviews = inside.iter().filter(|e| e.name == "pageview").count();
    (visitors.len() as i64, pageviews as i64, inside.len() as i64)
}

async fn date_times_and_24h_answer_exactly_those_instants(b: Backend) {
    let (t, key, events) = setup(b, "query_date_times").await;
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap().timestamp();
    let metrics = json!(["visitors", "pageviews", "events"]);
    // Two hours of one afternoon, given with an offset, without one (the site's zone, UTC+1
    // in November), and as UTC; the end is inclusive to the second.
    let cases = [
        (
            json!(["2026-11-12T13:00:00+01:00", "2026-11-12T14:59:59+01:00"]),
            at("2026-11-12T12:00:00Z"),
            at("2026-11-12T14:00:00Z"),
        ),
        (
            json!(["2026-11-12T13:00:00", "2026-11-12T14:59:59"]),
            at("2026-11-12T12:00:00Z"),
            at("2026-11-12T14:00:00Z"),
        ),
        (
            json!(["2026-11-13T22:30:00Z", "2026-11-14T01:29:59Z"]),
            at("2026-11-13T22:30:00Z"),
            at("2026-11-14T01:30:00Z"),
        ),
        (
            json!("24h"),
            now().timestamp() + 1 - 86_400,
            now().timestamp() + 1,
        ),
    ];
    for (range, from, to) in cases {
        let (visitors, pageviews, count) = counted_between(&events, from, to);
        assert!(
            pageviews > 0,
            "{range}: the fixture has pageviews in the range"
        );
        let whole_days = counted_between(&events, from - 86_400, to + 86_400);
        assert!(
            whole_days.1 > pageviews,
            "{range}: the range is not whole days"
        );
        let (status, answer) = ask(
            &t,
            &key,
            &json!({"site_id": "example.com", "metrics": metrics, "date_range": range}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{range}: {answer}");
        assert_eq!(
            answer["results"][0]["metrics"],
            json!([visitors, pageviews, count]),
            "{range}"
        );
    }
    // The hours of `24h` are the 25 hours it touches, in the site's zone.
    let (_, hourly) = ask(
        &t,
        &key,
        &json!({"site_id": "example.com", "metrics": ["pageviews"], "date_range": "24h",
                "dimensions": ["time:hour"], "include": {"time_labels": true}}),
    )
    .await;
    let labels = hourly["meta"]["time_labels"].as_array().unwrap();
    assert_eq!(labels.len(), 25, "{labels:?}");
    assert_eq!(labels[0], "2026-11-15 21:00:00");
    assert_eq!(labels[24], "2026-11-16 21:00:00");
    let summed: i64 = hourly["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metrics"][0].as_i64().unwrap())
        .sum();
    let day = counted_between(
        &events,
        now().timestamp() + 1 - 86_400,
        now().timestamp() + 1,
    );
    assert_eq!(summed, day.1);
    // Mistakes are named.
    let (status, answer) = ask(
        &t,
        &key,
        &json!({"site_id": "example.com", "metrics": metrics,
                "date_range": ["2026-11-12T15:00:00Z", "2026-11-12T14:00:00Z"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("date_range"),
        "{answer}"
    );
}

/// One query of 30 filters of 100 patterns like `\w{80}` took 82 s of CPU when each was
/// compiled on the async threads: now the patterns are counted before any is compiled, and
/// each compiles within a size limit.
async fn costly_regular_expressions_are_refused_before_they_are_compiled(b: Backend) {
    let (t, key, _) = setup(b, "query_regex_cost").await;
    let heavy: Vec<Value> = (0..30)
        .map(|_| json!(["matches", "event:page", vec![r"\w{80}"; 100]]))
        .collect();
    let started = std::time::Instant::now();
    let (status, answer) = ask(
        &t,
        &key,
        &json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d", "filters": heavy}),
    )
    .await;
    eprintln!("3,000 patterns refused in {:?}", started.elapsed());
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("at most 20 regular expressions"),
        "{answer}"
    );
    // One pattern too large once compiled.
    let (status, answer) = ask(
        &t,
        &key,
        &json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d",
                "filters": [["matches", "event:page", [r"\w{80}"]]]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("too large"),
        "{answer}"
    );
    // Twenty ordinary patterns are answered.
    let patterns: Vec<String> = (0..20).map(|i| format!("^/blog/{i}")).collect();
    let (status, answer) = ask(
        &t,
        &key,
        &json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d",
                "filters": [["matches", "event:page", patterns]]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let r = t
        .send(
            "127.0.0.1",
            Request::get("/healthz").body(Body::empty()).unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// A statement that never ends on its own, and one whose answer is a row too many.
fn endless_and_too_large(dialect: Dialect) -> (Statement, Statement) {
    let rows = footfall::store::MAX_RESULT_ROWS + 1;
    let (endless, large) = match dialect {
        Dialect::Sqlite => (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT 'n', count(*) FROM c".to_string(),
            format!("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {rows}) SELECT 'n', x FROM c"),
        ),
        Dialect::DuckDb => (
            "SELECT 'n', count(*) FROM range(1000000000000000) WHERE range % 7 = 3".to_string(),
            format!("SELECT 'n', range FROM range({rows})"),
        ),
        Dialect::ClickHouse => (
            "SELECT 'n', count() FROM system.numbers".to_string(),
            format!("SELECT 'n', number FROM numbers({rows})"),
        ),
    };
    let statement = |sql: String| Statement {
        sql,
        binds: Vec::new(),
    };
    (statement(endless), statement(large))
}

/// Every store stops a statement at its deadline (`query_timeout_secs`): SQLite through its
/// progress handler, ClickHouse on the server (`max_execution_time`), so nothing goes on
/// running after the answer. More such statements than the SQLite store has reading
/// connections at once each time out, and the connections are all there again afterwards.
/// An answer of more rows than any page is refused.
async fn statements_stop_at_their_deadline_and_give_back_their_connection(b: Backend) {
    let t = footfall_tests::TestStore::new(b, "query_deadline").await;
    let store = t.store.clone();
    let (endless, large) = endless_and_too_large(store.dialect());
    let runs = (0..footfall::store::sqlite::READERS + 2).map(|_| {
        let (store, endless) = (store.clone(), endless.clone());
        tokio::spawn(async move {
            store
                .run_statement(&endless, 1, 1, Deadline::after(Duration::from_secs(1)))
                .await
        })
    });
    for run in futures_util::future::join_all(runs).await {
        match run.unwrap() {
            Err(e @ StoreError::Timeout(_)) => {
                assert!(e.to_string().contains("query_timeout_secs"), "{e}")
            }
            other => panic!("an endless statement answered {other:?}"),
        }
    }
    let one = Statement {
        sql: "SELECT 'a', 1".into(),
        binds: Vec::new(),
    };
    assert_eq!(
        store
            .run_statement(&one, 1, 1, Deadline::after(Duration::from_secs(10)))
            .await
            .unwrap(),
        vec![(vec!["a".to_string()], vec![1])]
    );
    if let Some(ch) = &t.config.clickhouse {
        // The server stopped them too (it reports them in system.processes while they run).
        let client = footfall_tests::client(ch);
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let running: u64 = client
                .query("SELECT count() FROM system.processes WHERE query LIKE '%FROM system.numbers%' AND query NOT LIKE '%system.processes%'")
                .fetch_one()
                .await
                .unwrap();
            if running == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "{running} stopped statements still run on the server"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let refused = store
        .run_statement(&large, 1, 1, Deadline::after(Duration::from_secs(60)))
        .await;
    match refused {
        Err(e) => assert!(e.to_string().contains("more than 1000000 rows"), "{e}"),
        Ok(rows) => panic!("{} rows answered", rows.len()),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Ingest latencies (sorted) of `n` events from varied addresses, and the slowest realtime
/// answer of `rounds` asked meanwhile.
async fn ingest_and_realtime(t: &TestApp, key: &str, n: usize) -> (Vec<Duration>, Duration) {
    let mut ingest = Vec::with_capacity(n);
    let mut realtime = Duration::ZERO;
    for i in 0..n {
        let started = std::time::Instant::now();
        let r = t
            .post_event(
                &format!("2.2.{}.{}", i / 250, i % 250 + 1),
                footfall_tests::CHROME_UA,
                r#"{"n":"pageview","u":"https://example.com/live","d":"example.com"}"#,
            )
            .await;
        ingest.push(started.elapsed());
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        if i % 20 == 0 {
            let started = std::time::Instant::now();
            let req = Request::get("/api/v2/realtime?site_id=example.com")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap();
            let r = t.send("127.0.0.1", req).await;
            realtime = realtime.max(started.elapsed());
            assert_eq!(r.status(), StatusCode::OK, "realtime while questions run");
        }
    }
    ingest.sort();
    (ingest, realtime)
}

/// Ten costly questions at once (on SQLite, 200,000 events, a one-second `query_timeout_secs`)
/// are each answered or stopped with 503 naming the setting, while events are still accepted
/// and the realtime route still answers: questions take at most `QUERY_SLOTS` of the store's
/// reading connections, and ingest writes through its own. Prints ingest's p50/p99 and the
/// slowest realtime answer without and with the questions running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_slow_questions_leave_ingest_and_realtime_answering() {
    let events = fixture_over(
        Utc.with_ymd_and_hms(2026, 11, 9, 21, 30, 0).unwrap(),
        7,
        80_000,
    );
    let (t, key, events) = setup_with(Backend::Sqlite, "query_slow_ten", events, |c| {
        c.query_timeout = Duration::from_secs(1)
    })
    .await;
    eprintln!("{} events", events.len());
    let (quiet, quiet_realtime) = ingest_and_realtime(&t, &key, 400).await;

    let t = std::sync::Arc::new(t);
    let costly = json!({
        "site_id": "example.com",
        "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "percentage"],
        "date_range": "7d",
        "dimensions": ["visit:entry_page", "visit:exit_page", "visit:browser"],
        "filters": [["is_not", "visit:country", ["XX"]]],
        "include": {"comparisons": {"mode": "previous_period"}},
    });
    let questions: Vec<_> = (0..10)
        .map(|_| {
            let (t, key, q) = (t.clone(), key.clone(), costly.clone());
            tokio::spawn(async move { ask(&t, &key, &q).await })
        })
        .collect();
    let (busy, busy_realtime) = ingest_and_realtime(&t, &key, 400).await;
    let mut stopped = 0;
    for q in questions {
        let (status, answer) = q.await.unwrap();
        match status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    answer["error"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("query_timeout_secs"),
                    "{answer}"
                );
                stopped += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    eprintln!(
        "query deadline: {stopped} of 10 questions stopped at 1 s; ingest p50/p99 {:?}/{:?} quiet, {:?}/{:?} with the questions; slowest realtime {quiet_realtime:?} quiet, {busy_realtime:?} with them",
        percentile(&quiet, 0.5),
        percentile(&quiet, 0.99),
        percentile(&busy, 0.5),
        percentile(&busy, 0.99),
    );
    assert!(stopped > 0, "no question ran into the one-second deadline");
}
