//! Plausible's CSV export, on every store: `footfall import plausible` and `footfall export
//! plausible`, run as a user runs them.
//!
//! - **Import.** The test writes an export in Plausible's layout: one CSV per table named
//!   `imported_<table>_<from>_<to>.csv`, quoted headers and strings, bare numbers, STORED
//!   entries with data descriptors (what Plausible's streaming writer leaves), columns in
//!   more than one order, plus what archive tools and newer exports add (`__MACOSX/`,
//!   `imported_custom_props`). The expected figures are sums of the rows the test wrote.
//!   One day of the range has native data: it keeps its own numbers.
//! - **Round trip.** A site's own events are exported, imported into another site, and the
//!   two answer every question the export carries alike; the per-day visitors also equal the
//!   generator's count.
//! - **Bad input.** A damaged archive or CSV is refused with the file, line and column, and
//!   nothing of it is kept.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use chrono::{Duration, NaiveDate, Utc};
use footfall::query::model;
use footfall::query::rollup::roll_up_closed_days;
use footfall::query::run::run;
use footfall::store::{EventRow, Site};
use footfall_tests::{Backend, TestStore, policy};
use serde_json::{Value, json};

fn footfall(t: &TestStore, args: &[&str]) -> String {
    // `env` lets go of DuckDB's file for the process.
    let (ok, stdout, stderr) = footfall_tests::footfall_command(&t.env(), args);
    assert!(ok, "{args:?}: {stdout}{stderr}");
    stdout
}

/// The error a refused command prints.
fn refused(t: &TestStore, args: &[&str]) -> String {
    let (ok, stdout, stderr) = footfall_tests::footfall_command(&t.env(), args);
    assert!(!ok, "{args:?} should fail: {stdout}");
    stderr
}

async fn site(t: &TestStore, domain: &str) -> Site {
    t.site(domain).await
}

async fn ask(t: &TestStore, site: &Site, q: Value) -> Value {
    run(
        t.store.as_ref(),
        site,
        &model::parse(&q).unwrap(),
        &policy(),
    )
    .await
    .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// Rows of an answer: dimension values → metric values.
fn rows(answer: &Value) -> BTreeMap<Vec<String>, Vec<i64>> {
    answer["results"]
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
            let metrics = r["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_i64().unwrap())
                .collect();
            (dims, metrics)
        })
        .collect()
}

/// A CSV in ClickHouse's `CSVWithNames` layout: quoted header and strings, bare numbers.
fn csv(header: &[&str], rows: &[Vec<Value>]) -> String {
    let cell = |v: &Value| match v {
        Value::String(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        other => other.to_string(),
    };
    let mut out = header
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.iter().map(cell).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// A ZIP as Plausible streams it: STORED entries, sizes in data descriptors.
fn zip(path: &Path, files: &[(String, String)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new_stream(file);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, text) in files {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

/// One generated day of the export, and what it sums to.
struct Day {
    date: NaiveDate,
    visitors: i64,
    visits: i64,
    pageviews: i64,
    bounces: i64,
    duration: i64,
    google: i64,
    newsletter: i64,
    signups: i64,
    dk: i64,
    mobile: i64,
    firefox: i64,
    linux: i64,
}

fn generated_days(first: NaiveDate, n: i64) -> Vec<Day> {
    (0..n)
        .map(|i| {
            let v = 100 + 7 * i;
            Day {
                date: first + Duration::days(i),
                visitors: v,
                visits: v + 10,
                pageviews: 3 * v,
                bounces: v / 3,
                duration: 60 * (v + 10),
                google: v / 2,
                newsletter: 3,
                signups: 6 + i,
                dk: v / 3,
                mobile: 20,
                firefox: 30,
                linux: 40,
            }
        })
        .collect()
}

/// The export's files for `days`.
fn export_files(days: &[Day]) -> Vec<(String, String)> {
    let (first, last) = (days[0].date, days[days.len() - 1].date);
    let name = |t: &str| {
        format!(
            "imported_{t}_{}_{}.csv",
            first.format("%Y%m%d"),
            last.format("%Y%m%d")
        )
    };
    let mut visitors = Vec::new();
    let mut sources = Vec::new();
    let mut pages = Vec::new();
    let mut entry = Vec::new();
    let mut exit = Vec::new();
    let mut events = Vec::new();
    let mut locations = Vec::new();
    let mut devices = Vec::new();
    let mut browsers = Vec::new();
    let mut systems = Vec::new();
    for d in days {
        let date = json!(d.date.to_string());
        let v = d.visitors;
        // Columns of the first sort: date, visitors, pageviews, bounces, visits, duration.
        visitors.push(vec![
            date.clone(),
            json!(v),
            json!(d.pageviews),
            json!(d.bounces),
            json!(d.visits),
            json!(d.duration),
        ]);
        let direct = v - d.google - d.newsletter;
        let direct_visits = d.visits - (d.google + 5) - d.newsletter;
        for (source, referrer, utm, visitors, visits) in [
            ("Google", "google.com", ["", "", ""], d.google, d.google + 5),
            ("", "", ["", "", ""], direct, direct_visits),
            (
                "newsletter",
                "",
                ["newsletter", "email", "december"],
                d.newsletter,
                d.newsletter,
            ),
        ] {
            sources.push(vec![
                date.clone(),
                json!(source),
                json!(referrer),
                json!(utm[0]),
                json!(utm[1]),
                json!(utm[2]),
                json!(""),
                json!(""),
                json!(3 * visitors),
                json!(visitors),
                json!(visits),
                json!(60 * visits),
                json!(visits / 3),
            ]);
        }
        for (page, visitors, pageviews) in [("/", v, 2 * v), ("/pricing", v / 4, v)] {
            pages.push(vec![
                date.clone(),
                json!("example.org"),
                json!(page),
                json!(visitors),
                json!(visitors),
                json!(pageviews),
                json!(0),
                json!(0),
                json!(0),
                json!(0),
            ]);
        }
        // An older column order, without pageviews.
        for (page, entrances) in [("/", d.visits - 5), ("/pricing", 5)] {
            entry.push(vec![
                date.clone(),
                json!(entrances.min(v)),
                json!(entrances),
                json!(60 * entrances),
                json!(entrances / 3),
                json!(page),
            ]);
        }
        exit.push(vec![
            date.clone(),
            json!("/"),
            json!(v),
            json!(d.duration),
            json!(d.visits),
            json!(d.bounces),
            json!(d.pageviews),
        ]);
        for (event, link, visitors, count) in [
            ("Signup", "", d.signups - 1, d.signups),
            ("engagement", "", v, 10 * v),
            ("Outbound Link: Click", "https://github.com/", 2, 2),
        ] {
            events.push(vec![
                date.clone(),
                json!(event),
                json!(link),
                json!(""),
                json!(visitors),
                json!(count),
            ]);
        }
        for (country, region, city, visitors) in [
            ("DK", "DK-84", 2_618_425, d.dk),
            ("US", "US-CA", 5_391_959, v - d.dk),
        ] {
            locations.push(vec![
                date.clone(),
                json!(country),
                json!(region),
                json!(city),
                json!(visitors),
                json!(visitors),
                json!(60 * visitors),
                json!(0),
                json!(3 * visitors),
            ]);
        }
        for (rows, name, version, other) in [
            (&mut devices, "Mobile", None, d.mobile),
            (&mut browsers, "Firefox", Some("133.0"), d.firefox),
            (&mut systems, "GNU/Linux", Some(""), d.linux),
        ] {
            let rest = match name {
                "Mobile" => ("Desktop", None),
                "Firefox" => ("Chrome", Some("131.0")),
                _ => ("Windows", Some("10")),
            };
            for (value, version, visitors) in [(name, version, other), (rest.0, rest.1, v - other)]
            {
                let mut row = vec![date.clone(), json!(value)];
                if let Some(version) = version {
                    row.push(json!(version));
                }
                row.extend([
                    json!(visitors),
                    json!(visitors),
                    json!(60 * visitors),
                    json!(0),
                    json!(3 * visitors),
                ]);
                rows.push(row);
            }
        }
    }
    let metrics = [
        "visitors",
        "visits",
        "visit_duration",
        "bounces",
        "pageviews",
    ];
    let with = |first: &[&'static str]| -> Vec<&'static str> {
        let mut h = vec!["date"];
        h.extend(first);
        h.extend(metrics);
        h
    };
    vec![
        (
            name("visitors"),
            csv(
                &[
                    "date",
                    "visitors",
                    "pageviews",
                    "bounces",
                    "visits",
                    "visit_duration",
                ],
                &visitors,
            ),
        ),
        (
            name("sources"),
            csv(
                &[
                    "date",
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
                &sources,
            ),
        ),
        (
            name("pages"),
            csv(
                &[
                    "date",
                    "hostname",
                    "page",
                    "visits",
                    "visitors",
                    "pageviews",
                    "total_scroll_depth",
                    "total_scroll_depth_visits",
                    "total_time_on_page",
                    "total_time_on_page_visits",
                ],
                &pages,
            ),
        ),
        (
            name("entry_pages"),
            csv(
                &[
                    "date",
                    "visitors",
                    "entrances",
                    "visit_duration",
                    "bounces",
                    "entry_page",
                ],
                &entry,
            ),
        ),
        (
            name("exit_pages"),
            csv(
                &[
                    "date",
                    "exit_page",
                    "visitors",
                    "visit_duration",
                    "exits",
                    "bounces",
                    "pageviews",
                ],
                &exit,
            ),
        ),
        (
            name("custom_events"),
            csv(
                &["date", "name", "link_url", "path", "visitors", "events"],
                &events,
            ),
        ),
        (
            name("locations"),
            csv(
                &[
                    "date",
                    "country",
                    "region",
                    "city",
                    "visitors",
                    "visits",
                    "visit_duration",
                    "bounces",
                    "pageviews",
                ],
                &locations,
            ),
        ),
        (name("devices"), csv(&with(&["device"]), &devices)),
        (
            name("browsers"),
            csv(&with(&["browser", "browser_version"]), &browsers),
        ),
        (
            name("operating_systems"),
            csv(
                &with(&["operating_system", "operating_system_version"]),
                &systems,
            ),
        ),
        (
            name("custom_props"),
            csv(&["date", "name", "value", "visitors"], &[]),
        ),
        (
            "__MACOSX/._imported_visitors.csv".to_string(),
            String::new(),
        ),
    ]
}

/// A pageview of `visitor` (one visit per visitor and day) at `ts`.
fn pageview(site_id: u32, ts: i64, visitor: u64, path: &str, entry: &str) -> EventRow {
    EventRow {
        site_id,
        timestamp: u32::try_from(ts).unwrap(),
        name: "pageview".into(),
        hostname: "example.org".into(),
        pathname: path.into(),
        entry_page: entry.into(),
        visitor_id: visitor,
        session_id: visitor * 10,
        browser: "Firefox".into(),
        device: "Desktop".into(),
        country_code: "DK".into(),
        channel: "Direct".into(),
        ..EventRow::default()
    }
}

const TOTALS: [&str; 5] = [
    "visitors",
    "visits",
    "pageviews",
    "bounce_rate",
    "visit_duration",
];

async fn an_export_gives_the_counts_of_its_rows(b: Backend) {
    let t = TestStore::new(b, "import_plausible").await;
    let dir = tempfile::tempdir().unwrap();
    footfall(&t, &["site", "add", "example.org", "--timezone", "UTC"]);
    let site = site(&t, "example.org").await;
    let today = Utc::now().date_naive();
    let days = generated_days(today - Duration::days(12), 10);
    let (first, last) = (days[0].date, days[9].date);
    // Native data on the sixth day: two visitors, three pageviews, direct.
    let native_day = days[5].date;
    let noon = native_day
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    t.store
        .insert_events(
            vec![
                pageview(site.id, noon, 1, "/", "/"),
                pageview(site.id, noon + 60, 1, "/pricing", "/"),
                pageview(site.id, noon + 120, 2, "/", "/"),
            ]
            .into(),
        )
        .await
        .unwrap();
    roll_up_closed_days(t.store.as_ref(), &policy(), usize::MAX)
        .await
        .unwrap();
    let archive = dir.path().join("example_org_20261201.zip");
    zip(&archive, &export_files(&days));

    let out = footfall(
        &t,
        &[
            "import",
            "plausible",
            "--site",
            "example.org",
            archive.to_str().unwrap(),
        ],
    );
    assert!(out.contains("imported 9 days"), "{out}");
    assert!(out.contains("native_data 1"), "{out}");
    assert!(out.contains("ignored"), "{out}");

    // What the rows sum to, without the native day, plus the native day's own figures.
    let imported: Vec<&Day> = days.iter().filter(|d| d.date != native_day).collect();
    let sum = |f: fn(&Day) -> i64| imported.iter().map(|d| f(d)).sum::<i64>();
    let (visitors, visits, pageviews) = (
        sum(|d| d.visitors) + 2,
        sum(|d| d.visits) + 2,
        sum(|d| d.pageviews) + 3,
    );
    let bounces = sum(|d| d.bounces) + 1;
    let duration = sum(|d| d.duration) + 60;
    let range = json!([first.to_string(), last.to_string()]);
    let q = |dims: Value, metrics: &[&str], imports: bool| {
        json!({"site_id": "example.org", "metrics": metrics, "date_range": range,
               "dimensions": dims, "include": {"imports": imports}})
    };
    let totals = ask(&t, &site, q(json!([]), &TOTALS, true)).await;
    assert_eq!(
        rows(&totals)[&Vec::<String>::new()],
        vec![
            visitors,
            visits,
            pageviews,
            (100.0 * bounces as f64 / visits as f64).round() as i64,
            (duration as f64 / visits as f64).round() as i64,
        ],
        "{totals}"
    );
    assert_eq!(totals["meta"]["imports_included"], true, "{totals}");
    // Without imports: the native day alone.
    let native = ask(&t, &site, q(json!([]), &["visitors", "pageviews"], false)).await;
    assert_eq!(rows(&native)[&Vec::<String>::new()], vec![2, 3]);
    assert!(native["meta"].get("imports_included").is_none(), "{native}");

    // Per day: the native day keeps its own numbers.
    let daily = rows(&ask(&t, &site, q(json!(["time:day"]), &["visitors"], true)).await);
    for d in &days {
        let want = if d.date == native_day { 2 } else { d.visitors };
        assert_eq!(daily[&vec![d.date.to_string()]], vec![want], "{}", d.date);
    }

    // Breakdowns, each against the sums of the rows written.
    let by = |answer: &Value, value: &str| rows(answer).get(&vec![value.to_string()]).cloned();
    let sources = ask(
        &t,
        &site,
        q(json!(["visit:source"]), &["visitors", "visits"], true),
    )
    .await;
    assert_eq!(
        by(&sources, "Google"),
        Some(vec![sum(|d| d.google), sum(|d| d.google + 5)])
    );
    assert_eq!(
        by(&sources, ""),
        Some(vec![
            sum(|d| d.visitors - d.google - d.newsletter) + 2,
            sum(|d| d.visits - d.google - 5 - d.newsletter) + 2,
        ])
    );
    let channels = ask(&t, &site, q(json!(["visit:channel"]), &["visitors"], true)).await;
    assert_eq!(
        by(&channels, "Organic Search"),
        Some(vec![sum(|d| d.google)])
    );
    assert_eq!(by(&channels, "Email"), Some(vec![sum(|d| d.newsletter)]));
    let campaigns = ask(
        &t,
        &site,
        q(json!(["visit:utm_campaign"]), &["visitors"], true),
    )
    .await;
    assert_eq!(
        by(&campaigns, "december"),
        Some(vec![sum(|d| d.newsletter)])
    );
    let pages = ask(
        &t,
        &site,
        q(json!(["event:page"]), &["visitors", "pageviews"], true),
    )
    .await;
    assert_eq!(
        by(&pages, "/pricing"),
        Some(vec![sum(|d| d.visitors / 4) + 1, sum(|d| d.visitors) + 1])
    );
    let names = ask(
        &t,
        &site,
        q(json!(["event:name"]), &["visitors", "events"], true),
    )
    .await;
    assert_eq!(
        by(&names, "Signup"),
        Some(vec![sum(|d| d.signups - 1), sum(|d| d.signups)])
    );
    assert_eq!(by(&names, "Outbound Link: Click"), Some(vec![18, 18]));
    assert_eq!(
        by(&names, "engagement"),
        None,
        "Plausible's own events stay out"
    );
    let countries = ask(&t, &site, q(json!(["visit:country"]), &["visitors"], true)).await;
    assert_eq!(by(&countries, "DK"), Some(vec![sum(|d| d.dk) + 2]));
    let regions = ask(&t, &site, q(json!(["visit:region"]), &["visitors"], true)).await;
    assert_eq!(
        by(&regions, "US-CA"),
        Some(vec![sum(|d| d.visitors - d.dk)])
    );
    let devices = ask(&t, &site, q(json!(["visit:device"]), &["visitors"], true)).await;
    assert_eq!(by(&devices, "Mobile"), Some(vec![sum(|d| d.mobile)]));
    let versions = ask(
        &t,
        &site,
        q(json!(["visit:browser_version"]), &["visitors"], true),
    )
    .await;
    assert_eq!(by(&versions, "133.0"), Some(vec![sum(|d| d.firefox)]));
    let systems = ask(&t, &site, q(json!(["visit:os"]), &["visitors"], true)).await;
    assert_eq!(by(&systems, "GNU/Linux"), Some(vec![sum(|d| d.linux)]));
    let entries = ask(&t, &site, q(json!(["visit:entry_page"]), &["visits"], true)).await;
    assert_eq!(by(&entries, "/pricing"), Some(vec![5 * 9]));

    // What imports cannot answer is said in `meta`, and the answer is the native data's.
    let filtered = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
               "filters": [["is", "visit:source", ["Google"]]], "include": {"imports": true}}),
    )
    .await;
    assert_eq!(filtered["meta"]["imports_included"], false);
    assert_eq!(filtered["meta"]["imports_skip_reason"], "unsupported_query");
    assert!(filtered["meta"]["imports_warning"].is_string());
    let cities = ask(&t, &site, q(json!(["visit:city"]), &["visitors"], true)).await;
    assert_eq!(cities["meta"]["imports_skip_reason"], "unsupported_query");
    let old = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": ["2020-01-01", "2020-01-31"],
               "include": {"imports_meta": true}}),
    )
    .await;
    assert_eq!(old["meta"]["imports_skip_reason"], "out_of_range");

    // Again: nothing twice.
    let again = footfall(
        &t,
        &[
            "import",
            "plausible",
            "--site",
            "example.org",
            archive.to_str().unwrap(),
        ],
    );
    assert!(again.starts_with("imported nothing"), "{again}");
    assert!(again.contains("already_imported 9"), "{again}");
    let list = footfall(&t, &["import", "list", "--site", "example.org"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(
        list.contains(&format!("\tplausible\t{first} to {last}\t9 days\t")),
        "{list}"
    );
    let id = list.split('\t').next().unwrap().to_string();

    // Deleted: the native data alone again.
    footfall(&t, &["import", "delete", "--site", "example.org", &id]);
    let after = ask(&t, &site, q(json!([]), &["visitors", "pageviews"], true)).await;
    assert_eq!(rows(&after)[&Vec::<String>::new()], vec![2, 3], "{after}");
    assert_eq!(after["meta"]["imports_skip_reason"], "no_imported_data");
    assert_eq!(
        footfall(&t, &["import", "list", "--site", "example.org"]).trim(),
        "no imports"
    );
    let missing = refused(&t, &["import", "delete", "--site", "example.org", &id]);
    assert!(missing.contains("no import"), "{missing}");
}

async fn a_damaged_export_is_refused_whole(b: Backend) {
    let t = TestStore::new(b, "import_plausible_damaged").await;
    let dir = tempfile::tempdir().unwrap();
    footfall(&t, &["site", "add", "example.org", "--timezone", "UTC"]);
    let today = Utc::now().date_naive();
    let days = generated_days(today - Duration::days(5), 3);
    let good = export_files(&days);
    let import = |files: &[(String, String)], name: &str| {
        let path = dir.path().join(name);
        zip(&path, files);
        refused(
            &t,
            &[
                "import",
                "plausible",
                "--site",
                "example.org",
                path.to_str().unwrap(),
            ],
        )
    };
    // A bad number on the third line of the sources (after the visitors file was read).
    let mut files = good.clone();
    let sources = files
        .iter_mut()
        .find(|(n, _)| n.contains("sources"))
        .unwrap();
    let mut lines: Vec<String> = sources.1.lines().map(String::from).collect();
    lines[2].push('x');
    sources.1 = lines.join("\n");
    let err = import(&files, "bad_number.zip");
    assert!(
        err.contains("imported_sources_")
            && err.contains("line 3, column `bounces`")
            && err.contains("not a whole number"),
        "{err}"
    );
    // A missing column.
    let mut files = good.clone();
    let devices = files
        .iter_mut()
        .find(|(n, _)| n.contains("devices"))
        .unwrap();
    devices.1 = devices.1.replace("\"device\"", "\"kind\"");
    let err = import(&files, "missing_column.zip");
    assert!(err.contains("no `device` column"), "{err}");
    // A bad date.
    let mut files = good.clone();
    files[0].1 = files[0]
        .1
        .replacen(&days[1].date.to_string(), "yesterday", 1);
    let err = import(&files, "bad_date.zip");
    assert!(err.contains("line 3, column `date`"), "{err}");
    // A file that is not a table of the export.
    let mut files = good.clone();
    files.push((
        "imported_sessions_20260101_20260102.csv".into(),
        "\"date\"\n".into(),
    ));
    let err = import(&files, "unknown_file.zip");
    assert!(
        err.contains("imported_sessions_20260101_20260102.csv"),
        "{err}"
    );
    // No visitors file.
    let files: Vec<_> = good
        .iter()
        .filter(|(n, _)| !n.contains("visitors"))
        .cloned()
        .collect();
    let err = import(&files, "no_visitors.zip");
    assert!(err.contains("imported_visitors"), "{err}");
    // Not an archive, and an archive cut short.
    let text = dir.path().join("notes.zip");
    std::fs::write(&text, "date,visitors\n").unwrap();
    let err = refused(
        &t,
        &[
            "import",
            "plausible",
            "--site",
            "example.org",
            text.to_str().unwrap(),
        ],
    );
    assert!(err.contains("not a readable ZIP archive"), "{err}");
    let whole = dir.path().join("whole.zip");
    zip(&whole, &good);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.zip");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = refused(
        &t,
        &[
            "import",
            "plausible",
            "--site",
            "example.org",
            cut.to_str().unwrap(),
        ],
    );
    assert!(err.contains("cut.zip"), "{err}");
    // An unknown site.
    let err = refused(
        &t,
        &[
            "import",
            "plausible",
            "--site",
            "other.org",
            whole.to_str().unwrap(),
        ],
    );
    assert!(err.contains("no site `other.org`"), "{err}");
    // Nothing of any of them was kept.
    assert_eq!(
        footfall(&t, &["import", "list", "--site", "example.org"]).trim(),
        "no imports"
    );
}

/// Native events of `site_id` over `days` (site-local days of Copenhagen): each day, visitors
/// with one visit each, from three sources, on two kinds of devices, some signing up.
fn native_events(site_id: u32, days: &[NaiveDate]) -> (Vec<EventRow>, BTreeMap<NaiveDate, i64>) {
    let sources = [
        ("Google", "google.com", "Organic Search"),
        ("", "", "Direct"),
        ("Hacker News", "news.ycombinator.com/item", "Organic Social"),
    ];
    let browsers = [
        ("Firefox", "133.0", "GNU/Linux", ""),
        ("Chrome", "131.0", "Windows", "10"),
    ];
    let countries = [("DK", "DK-84", "Copenhagen"), ("SE", "SE-AB", "Stockholm")];
    let paths = ["/", "/blog", "/pricing", "/docs"];
    let mut rows = Vec::new();
    let mut visitors = BTreeMap::new();
    let mut visitor = 1u64;
    for (d, day) in days.iter().enumerate() {
        let n = 20 + 3 * d as u64;
        visitors.insert(*day, n as i64);
        // 10:00 Copenhagen time, well inside the local day.
        let start = day.and_hms_opt(9, 0, 0).unwrap().and_utc().timestamp();
        for k in 0..n {
            visitor += 1;
            let (source, referrer, channel) = sources[(k % 3) as usize];
            let (browser, version, os, os_version) = browsers[(k % 2) as usize];
            let (country, region, city) = countries[(k % 5 == 0) as usize];
            let views = 1 + (k % 4) as usize;
            let entry = paths[(k % 4) as usize];
            for v in 0..views {
                let ts = start + (k as i64) * 120 + (v as i64) * 20;
                rows.push(EventRow {
                    site_id,
                    timestamp: u32::try_from(ts).unwrap(),
                    name: "pageview".into(),
                    hostname: "a.example".into(),
                    pathname: paths[((k as usize) + v) % 4].into(),
                    entry_page: entry.into(),
                    visitor_id: visitor,
                    session_id: visitor * 7,
                    referrer: referrer.into(),
                    referrer_source: source.into(),
                    channel: channel.into(),
                    utm_medium: if k % 6 == 0 {
                        "social".into()
                    } else {
                        String::new()
                    },
                    browser: browser.into(),
                    browser_version: version.into(),
                    os: os.into(),
                    os_version: os_version.into(),
                    device: if k % 3 == 0 { "Mobile" } else { "Desktop" }.into(),
                    country_code: country.into(),
                    region: region.into(),
                    city: city.into(),
                    interactive: 1,
                    ..EventRow::default()
                });
            }
            if k % 4 == 1 {
                let ts = start + (k as i64) * 120 + 90;
                rows.push(EventRow {
                    name: "Signup".into(),
                    timestamp: u32::try_from(ts).unwrap(),
                    ..rows.last().unwrap().clone()
                });
            }
        }
    }
    (rows, visitors)
}

async fn an_export_imported_elsewhere_gives_the_same_answers(b: Backend) {
    let t = TestStore::new(b, "plausible_round_trip").await;
    let dir = tempfile::tempdir().unwrap();
    footfall(
        &t,
        &[
            "site",
            "add",
            "a.example",
            "--timezone",
            "Europe/Copenhagen",
        ],
    );
    footfall(
        &t,
        &[
            "site",
            "add",
            "b.example",
            "--timezone",
            "Europe/Copenhagen",
        ],
    );
    let a = site(&t, "a.example").await;
    let b_site = site(&t, "b.example").await;
    let today = Utc::now().date_naive();
    let days: Vec<NaiveDate> = (2..=6).rev().map(|n| today - Duration::days(n)).collect();
    let (events, visitors) = native_events(a.id, &days);
    t.store.insert_events(events.into()).await.unwrap();
    roll_up_closed_days(t.store.as_ref(), &policy(), usize::MAX)
        .await
        .unwrap();
    let archive = dir.path().join("a.zip");
    let out = footfall(
        &t,
        &[
            "export",
            "plausible",
            "--site",
            "a.example",
            "--from",
            &days[0].to_string(),
            "--output",
            archive.to_str().unwrap(),
        ],
    );
    // The export ends with the site's own yesterday (in Copenhagen, a day ahead of UTC for
    // the last hour of a UTC day).
    let local_today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Copenhagen)
        .date_naive();
    assert!(
        out.contains(&format!(
            "{} to {}",
            days[0],
            local_today - Duration::days(1)
        )),
        "{out}"
    );
    // The archive has Plausible's ten files.
    let names: Vec<String> = zip::ZipArchive::new(std::fs::File::open(&archive).unwrap())
        .unwrap()
        .file_names()
        .map(|n| n.unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    let suffix = format!(
        "_{}_{}.csv",
        days[0].format("%Y%m%d"),
        (local_today - Duration::days(1)).format("%Y%m%d")
    );
    assert!(
        names.contains(&format!("imported_visitors{suffix}")),
        "{names:?}"
    );
    let out = footfall(
        &t,
        &[
            "import",
            "plausible",
            "--site",
            "b.example",
            archive.to_str().unwrap(),
        ],
    );
    assert!(out.contains("imported 5 days"), "{out}");

    let range = json!([days[0].to_string(), days[4].to_string()]);
    let both = |dims: Value, metrics: Vec<&'static str>| {
        let q = |domain: &str, imports: bool| {
            json!({"site_id": domain, "metrics": metrics, "date_range": range,
                   "dimensions": dims, "include": {"imports": imports}})
        };
        (q("a.example", false), q("b.example", true))
    };
    // The generator's own count of visitors per day.
    let (qa, qb) = both(json!(["time:day"]), vec!["visitors"]);
    let per_day = rows(&ask(&t, &a, qa).await);
    let imported = rows(&ask(&t, &b_site, qb).await);
    for (day, n) in &visitors {
        assert_eq!(per_day[&vec![day.to_string()]], vec![*n], "{day}");
        assert_eq!(imported[&vec![day.to_string()]], vec![*n], "{day}");
    }
    let visit_metrics = vec![
        "visitors",
        "visits",
        "pageviews",
        "bounce_rate",
        "visit_duration",
    ];
    let mut questions = vec![
        both(json!([]), [visit_metrics.clone(), vec!["events"]].concat()),
        both(json!(["time:day"]), visit_metrics.clone()),
        both(json!(["event:page"]), vec!["visitors", "pageviews"]),
        both(json!(["event:name"]), vec!["visitors", "events"]),
    ];
    for p in [
        "visit:source",
        "visit:referrer",
        "visit:channel",
        "visit:utm_medium",
        "visit:entry_page",
        "visit:exit_page",
        "visit:country",
        "visit:region",
        "visit:device",
        "visit:browser",
        "visit:browser_version",
        "visit:os",
        "visit:os_version",
    ] {
        questions.push(both(json!([p]), visit_metrics.clone()));
    }
    for (qa, qb) in questions {
        let (ra, rb) = (ask(&t, &a, qa.clone()).await, ask(&t, &b_site, qb).await);
        assert!(!rows(&ra).is_empty(), "{qa}");
        assert_eq!(rows(&ra), rows(&rb), "{qa}\n{ra}\n{rb}");
        assert_eq!(rb["meta"]["imports_included"], true, "{rb}");
    }
}

footfall_tests::all_stores!(
    an_export_gives_the_counts_of_its_rows,
    a_damaged_export_is_refused_whole,
    an_export_imported_elsewhere_gives_the_same_answers,
);
