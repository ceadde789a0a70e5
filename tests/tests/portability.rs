//! The schema and every statement the ClickHouse store sends must also run on the current
//! ClickHouse engine (chDB), not only on the 18.16 server the other tests use.

use footfall::query::sql::{Dialect, Sample};
use footfall::store::clickhouse::ClickHouseStore;

#[test]
fn schema_and_statements_run_on_current_clickhouse() {
    let python = std::env::var("FOOTFALL_TEST_CHDB_PYTHON")
        .expect("FOOTFALL_TEST_CHDB_PYTHON is not set: run the tests with scripts/test.sh, which installs chdb-core-lite");
    let store = ClickHouseStore::new(&footfall::config::ClickHouseConfig {
        url: "http://127.0.0.1:1".into(),
        user: "default".into(),
        password: String::new(),
        database: "footfall_portability".into(),
        cluster: None,
    });
    let mut statements = store.sample_statements();
    // The listing is checked against the store's sources by a unit test
    // (store::clickhouse::samples); here every statement must be there once.
    assert!(statements.len() >= 30, "{statements:#?}");
    // The Stats API's statements: every kind of plan, every time bucket, every filter.
    let tz: chrono_tz::Tz = "Europe/Copenhagen".parse().unwrap();
    for query in [
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration"], "date_range": "30d"}),
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "percentage"], "date_range": "7d", "dimensions": ["visit:source", "event:page"], "filters": [["is", "visit:country", ["DK"]], ["or", [["contains", "event:page", ["/b"]], ["not", ["contains_not", "visit:city", ["x"]]]]], ["is_not", "visit:device", ["Mobile"]]]}),
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "visits"], "date_range": "day", "dimensions": ["time:hour"]}),
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "visits", "time_on_page"], "date_range": "7d", "dimensions": ["visit:exit_page"], "filters": [["is_not", "visit:entry_page", ["/"]], ["is", "visit:country_name", ["Denmark"]]]}),
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "conversion_rate", "time_on_page", "scroll_depth"], "date_range": "7d", "dimensions": ["event:page"], "filters": [["is", "event:name", ["Signup"]]]}),
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "visits"], "date_range": "7d", "dimensions": ["event:props:plan"], "filters": [["matches", "event:page", ["^/blog/"]], ["matches_not", "event:props:plan", ["free"]]]}),
        serde_json::json!({"site_id": "a", "metrics": ["visits"], "date_range": "month", "dimensions": ["time:day"]}),
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "visits", "bounce_rate", "visit_duration", "percentage"], "date_range": "30d", "dimensions": ["visit:exit_page", "time:week"], "filters": [["is", "visit:source", ["Google"]], ["not", ["contains", "visit:entry_page", ["/x"]]], ["matches", "visit:browser", ["^Fire"]]]}),
        serde_json::json!({"site_id": "a", "metrics": ["visits"], "date_range": "6mo", "dimensions": ["time:week"]}),
        serde_json::json!({"site_id": "a", "metrics": ["visits"], "date_range": "12mo", "dimensions": ["time:month"]}),
        // Visits that did one thing and not another.
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "visits", "bounce_rate"], "date_range": "7d", "dimensions": ["visit:source"], "filters": [["has_done", ["is", "event:name", ["Signup"]]], ["has_not_done", ["or", [["matches", "event:page", ["^/x"]], ["is", "event:props:plan", ["free"]]]]]]}),
        // A goal's conversions per page with their revenue (the currency is set as goals are
        // resolved).
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "group_conversion_rate", "total_revenue", "average_revenue"], "date_range": "7d", "dimensions": ["event:page"], "filters": [["is", "event:name", ["Purchase"]], ["is", "event:props:plan", ["premium"]]]}),
        // A scroll-depth goal's conversions by day (its filter is added below: goals resolve
        // into it, no question names it).
        serde_json::json!({"site_id": "a", "metrics": ["visitors", "events", "visits", "group_conversion_rate"], "date_range": "7d", "dimensions": ["time:day"], "filters": [["is", "event:name", ["scrolled"]]]}),
    ] {
        let mut q = footfall::query::model::parse(&query).unwrap();
        if query["filters"][0][2][0] == "scrolled" {
            use footfall::query::model::{Field, Filter, Op, Property};
            let scroll = Filter::And(vec![
                Filter::Scrolled { at_least: 50 },
                Filter::Match {
                    op: Op::Matches,
                    field: Field::Column(Property::Page),
                    values: vec!["^/blog/.*$".into()],
                },
            ]);
            // Inside `has_done` too.
            q.filters = vec![
                scroll.clone(),
                Filter::Behaviour {
                    done: true,
                    inner: Box::new(scroll.clone()),
                },
            ];
            q.resolved_goals = vec![scroll];
        }
        if q.metrics
            .contains(&footfall::query::model::Metric::TotalRevenue)
        {
            q.revenue_currency = Some("EUR".into());
        }
        let span = footfall::query::time::resolve(&q.date_range, tz, chrono::Utc::now()).unwrap();
        // Exact, and counting one visitor in ten.
        for sample in [Sample::EXACT, Sample { divisor: 10 }] {
            let plan = footfall::query::sql::plan(Dialect::ClickHouse, sample, &q, 1, tz, &span);
            for st in [
                Some(&plan.events),
                plan.sessions.as_ref(),
                plan.goal_base.as_ref(),
                plan.engagement.as_ref(),
                plan.revenue.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                statements.push(store.render(st));
            }
            // Visit-level questions also read the visit rows of closed days.
            if footfall::query::sql::visit_level(&q) {
                statements.push(store.render(&footfall::query::sql::read_visits(
                    Dialect::ClickHouse,
                    sample,
                    &q,
                    1,
                    span.first_day,
                    span.last_day,
                )));
            }
        }
    }
    // A funnel's events: in sequence or strict order, per visit or per visitor, with a filter
    // that reads the exit page.
    {
        use footfall::query::model::{Field, Filter, Op, Property};
        let step = |name: &str| Filter::Match {
            op: Op::Is,
            field: Field::Column(Property::Name),
            values: vec![name.to_string()],
        };
        let steps = [
            Filter::And(vec![
                step("pageview"),
                Filter::Match {
                    op: Op::Matches,
                    field: Field::Column(Property::Page),
                    values: vec!["^/pricing.*$".into()],
                },
            ]),
            step("Signup"),
            Filter::And(vec![
                Filter::Scrolled { at_least: 75 },
                Filter::Match {
                    op: Op::Is,
                    field: Field::Column(Property::Page),
                    values: vec!["/pricing".into()],
                },
            ]),
        ];
        let exit = Filter::Match {
            op: Op::IsNot,
            field: Field::Column(Property::ExitPage),
            values: vec!["/".into()],
        };
        let span = footfall::query::time::resolve(
            &footfall::query::model::DateRange::Last(7),
            tz,
            chrono::Utc::now(),
        )
        .unwrap();
        for (per_visit, strict) in [(true, false), (false, true)] {
            statements.push(store.render(&footfall::query::sql::funnel_events(
                Dialect::ClickHouse,
                &[&exit],
                &steps,
                per_visit,
                strict,
                1,
                &span,
            )));
        }
    }
    // The rollup job's write of a day's visit rows.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    statements.push(store.render(&footfall::query::sql::write_visits(
        Dialect::ClickHouse,
        1,
        &footfall::query::time::Span::days(tz, day, day),
        42,
    )));
    // What sampling is chosen by: a count of the raw events of a range.
    statements.push(store.render(&footfall::query::sql::count_events(
        Dialect::ClickHouse,
        1,
        0,
        86_400,
    )));
    statements.push(store.render(&footfall::query::sql::prop_keys(
        Dialect::ClickHouse,
        1,
        0,
        86_400,
        "Signup",
    )));
    let parse_only = store.sample_cluster_statements();
    assert!(
        parse_only
            .iter()
            .any(|s| s.contains("ENGINE = Distributed("))
    );
    let mut seen = std::collections::HashSet::new();
    for st in &statements {
        assert!(seen.insert(st), "listed twice: {st}");
    }
    // A cluster's migrations recreate a Distributed table after its local table changes, so
    // the same statement is sent more than once; it is parsed once.
    let mut parsed = std::collections::HashSet::new();
    let parse_only: Vec<String> = parse_only
        .into_iter()
        .filter(|s| parsed.insert(s.clone()))
        .collect();
    let inserts: Vec<serde_json::Value> = store
        .sample_inserts()
        .into_iter()
        .map(|(table, columns)| serde_json::json!({"table": table, "columns": columns}))
        .collect();
    let spec = serde_json::json!({ "database": "footfall_portability", "statements": statements, "parse_only": parse_only, "inserts": inserts });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), spec.to_string()).unwrap();
    let out = std::process::Command::new(python)
        .arg(footfall_tests::workspace_root().join("scripts/chdb_check.py"))
        .arg(file.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("ok: ").count(),
        statements.len() + 4,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("parsed: ").count(),
        parse_only.len(),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("columns: ").count(),
        inserts.len(),
        "{stdout}"
    );
}
