//! Goals, on every store: defined with `footfall goal`, answered by the Stats API
//! (`event:goal` as a dimension and a filter, `conversion_rate`, `group_conversion_rate`),
//! against counts the test makes itself from the visit sequences it generated: which visitors
//! completed each goal (a pageview of a matching path, or the event with the property value),
//! how many times, how many visitors each source brought, the revenue they paid in each
//! currency (`total_revenue`, `average_revenue`), and which visits did or did not do
//! something (`has_done`, `has_not_done`); and funnels of goals, in sequence or strict
//! order, per visit or per visitor-day, against a count of the generated visit sequences;
//! and the same goal answers from the daily rollups once raw events are purged, for goals
//! added before a day was rolled up or after it, while its raw events lasted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Duration, Utc};
use footfall::query::model;
use footfall::query::run::{RunError, run};
use footfall::store::{EventRow, Site};
use footfall_tests::{Backend, TestStore, policy};
use serde_json::{Value, json};

footfall_tests::all_stores!(
    goal_answers_match_an_independent_count,
    funnels_match_an_independent_count,
    goals_are_answered_from_rollups_after_raw_events_are_purged
);

const PAGES: [&str; 7] = [
    "/",
    "/pricing",
    "/blog/a",
    "/blog/a/comments",
    "/blog/",
    "/checkout/41/done",
    "/checkout/41/done/receipt",
];
const SOURCES: [&str; 3] = ["", "Google", "GitHub"];

/// One generated event: visitor, source, name, path, props, revenue (millionths, currency).
struct Generated {
    visitor: u64,
    source: &'static str,
    name: &'static str,
    path: &'static str,
    plan: Option<&'static str>,
    revenue: Option<(i64, &'static str)>,
}

fn generate() -> Vec<Generated> {
    let mut seed = 11u64;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    let mut out = Vec::new();
    for visitor in 0..300u64 {
        let source = SOURCES[next(3) as usize];
        for i in 0..1 + next(6) {
            let (name, plan) = match (i, next(8)) {
                (0, _) => ("pageview", None),
                (_, 0) => ("Signup", None),
                (_, 1) => ("Purchase", Some("premium")),
                (_, 2) => ("Purchase", Some("basic")),
                _ => ("pageview", None),
            };
            // Purchases carry revenue: premium ones in euros (a few in dollars), basic ones in
            // dollars.
            let revenue = match plan {
                Some("premium") if next(7) == 0 => Some((5_000_000, "USD")),
                Some("premium") => Some((1_000_000 * (10 + next(90) as i64) + 990_000, "EUR")),
                Some(_) => Some((1_000_000 * (1 + next(9) as i64), "USD")),
                None => None,
            };
            out.push(Generated {
                visitor,
                source,
                name,
                path: PAGES[next(PAGES.len() as u64) as usize],
                plan,
                revenue,
            });
        }
    }
    out
}

/// Which generated events complete each goal, by the goal's own definition (a `*` in a path
/// is any run of characters, `/` included, as Plausible reads it).
fn completes(goal: &str, e: &Generated) -> bool {
    match goal {
        "Visit /blog/*" => e.name == "pageview" && e.path.starts_with("/blog/"),
        "Visit /checkout/*/done" => {
            e.name == "pageview"
                && e.path.len() >= "/checkout//done".len()
                && e.path.starts_with("/checkout/")
                && e.path.ends_with("/done")
        }
        "Signup" => e.name == "Signup",
        "Premium purchase" => e.name == "Purchase" && e.plan == Some("premium"),
        _ => unreachable!(),
    }
}

/// `footfall goal add` arguments of the premium purchase goal (the currency in lower case:
/// it is taken as EUR).
const PREMIUM_GOAL: &[&str] = &[
    "--event",
    "Purchase",
    "--prop",
    "plan=premium",
    "--name",
    "Premium purchase",
    "--currency",
    "eur",
];

/// The amounts (millionths) of the generated premium purchases paid in euros.
fn premium_euros(generated: &[Generated]) -> Vec<i64> {
    generated
        .iter()
        .filter(|e| completes("Premium purchase", e))
        .filter_map(|e| e.revenue.filter(|r| r.1 == "EUR").map(|r| r.0))
        .collect()
}

const GOALS: [&str; 4] = [
    "Visit /blog/*",
    "Visit /checkout/*/done",
    "Signup",
    "Premium purchase",
];

fn footfall(env: &[(String, String)], args: &[&str]) -> String {
    let (ok, out, err) = footfall_tests::footfall_command(env, args);
    assert!(ok, "{args:?}: {out}{err}");
    out
}

async fn ask(t: &TestStore, site: &Site, q: Value) -> Result<Value, RunError> {
    let parsed = model::parse(&q).map_err(RunError::Query)?;
    run(t.store.as_ref(), site, &parsed, &policy()).await
}

/// An answer's rows: the first dimension's value → the metrics.
fn by_dimension(answer: &Value) -> BTreeMap<String, Value> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().unwrap().to_string(),
                r["metrics"].clone(),
            )
        })
        .collect()
}

fn rate(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (1_000.0 * part as f64 / whole as f64).round() / 10.0
}

/// A store with the site `example.org` and the goals `footfall goal add` makes of `goals`.
async fn site_with_goals(b: Backend, test: &str, goals: &[&[&str]]) -> TestStore {
    let t = TestStore::new(b, test).await;
    let env = t.env();
    footfall(&env, &["site", "add", "example.org", "--timezone", "UTC"]);
    for args in goals {
        let mut all = vec!["goal", "add", "--site", "example.org"];
        all.extend(args.iter());
        assert!(footfall(&env, &all).starts_with("added goal "));
    }
    t
}

async fn goal_answers_match_an_independent_count(b: Backend) {
    let t = site_with_goals(
        b,
        "goals",
        &[
            &["--page", "/blog/*"],
            &["--page", "/checkout/*/done"],
            &["--event", "Signup"],
            PREMIUM_GOAL,
        ],
    )
    .await;
    let env = t.env();
    // Mistakes are refused with a reason, and add nothing.
    for (args, reason) in [
        (vec!["--page", " "], "must not be empty"),
        (vec!["--page", "/blog/*"], "already counts this"),
        (vec!["--page", "/x", "--name", "Signup"], "already named"),
        (vec!["--event", "pageview"], "not a custom event"),
        (vec!["--event", "Buy", "--currency", "EURO"], "ISO 4217"),
    ] {
        let mut all = vec!["goal", "add", "--site", "example.org"];
        all.extend(args.iter().copied());
        let (ok, _, err) = footfall_tests::footfall_command(&env, &all);
        assert!(!ok && err.contains(reason), "{args:?}: {err}");
    }
    let listed = footfall(&env, &["goal", "list", "--site", "example.org"]);
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert!(
        listed.contains("Premium purchase\tevent Purchase plan=premium\trevenue in EUR"),
        "{listed}"
    );

    let site = t.site("example.org").await;
    let day = Utc::now().date_naive() - Duration::days(1);
    let generated = generate();
    // With their engagement reports, which no count here includes.
    t.store
        .insert_events(Arc::from(rows_over_days(site.id, &generated, &[day])))
        .await
        .unwrap();

    // The independent count.
    let all_visitors: BTreeSet<u64> = generated.iter().map(|e| e.visitor).collect();
    let mut converted: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    let mut completions: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &generated {
        for g in GOALS {
            if completes(g, e) {
                converted.entry(g).or_default().insert(e.visitor);
                *completions.entry(g).or_default() += 1;
            }
        }
    }
    let range = json!([day.to_string(), day.to_string()]);

    // Broken down by goal: visitors, completions, share of all visitors.
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors", "events", "conversion_rate"],
               "date_range": range, "dimensions": ["event:goal"]}),
    )
    .await
    .unwrap();
    let got = by_dimension(&answer);
    let want: BTreeMap<String, Value> = GOALS
        .iter()
        .filter(|g| converted.contains_key(*g))
        .map(|g| {
            let v = converted[g].len();
            (
                g.to_string(),
                json!([v, completions[g], rate(v, all_visitors.len())]),
            )
        })
        .collect();
    assert_eq!(got, want, "{answer}");
    assert_eq!(
        want.len(),
        4,
        "every goal is completed in the generated data"
    );

    // Filtered by a goal, broken down by source: the share of all visitors
    // (`conversion_rate`) and of the source's own (`group_conversion_rate`).
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org",
               "metrics": ["visitors", "conversion_rate", "group_conversion_rate"],
               "date_range": range, "dimensions": ["visit:source"],
               "filters": [["is", "event:goal", ["Signup"]]]}),
    )
    .await
    .unwrap();
    let got = by_dimension(&answer);
    let want: BTreeMap<String, Value> = SOURCES
        .iter()
        .filter_map(|s| {
            let of_source: BTreeSet<u64> = generated
                .iter()
                .filter(|e| e.source == *s)
                .map(|e| e.visitor)
                .collect();
            let signed = of_source
                .iter()
                .filter(|v| converted["Signup"].contains(v))
                .count();
            (signed > 0).then(|| {
                (
                    s.to_string(),
                    json!([
                        signed,
                        rate(signed, all_visitors.len()),
                        rate(signed, of_source.len())
                    ]),
                )
            })
        })
        .collect();
    assert_eq!(got, want, "{answer}");

    // Several goals chosen by a part of their names: visitors who completed any of them.
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
               "filters": [["contains", "event:goal", ["Visit "]]]}),
    )
    .await
    .unwrap();
    let any_page: BTreeSet<u64> = converted["Visit /blog/*"]
        .union(&converted["Visit /checkout/*/done"])
        .copied()
        .collect();
    assert_eq!(answer["results"][0]["metrics"], json!([any_page.len()]));
    // The same in any letter case, as Plausible's `case_sensitive: false` matches goal names;
    // without the modifier, `visit ` chooses no goal.
    for (filter, want) in [
        (
            json!(["contains", "event:goal", ["visit "], {"case_sensitive": false}]),
            any_page.len(),
        ),
        (json!(["contains", "event:goal", ["visit "]]), 0),
        (
            json!(["is", "event:goal", ["SIGNUP"], {"case_sensitive": false}]),
            converted["Signup"].len(),
        ),
    ] {
        let answer = ask(
            &t,
            &site,
            json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
                   "filters": [filter]}),
        )
        .await
        .unwrap();
        assert_eq!(
            answer["results"][0]["metrics"],
            json!([want]),
            "{filter}: {answer}"
        );
    }

    // A goal filter with a goal breakdown lists the chosen goals only.
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
               "dimensions": ["event:goal"],
               "filters": [["is", "event:goal", ["Signup", "Premium purchase"]]]}),
    )
    .await
    .unwrap();
    let names: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dimensions"][0].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{answer}");

    // Revenue: the goal's currency, summed over its completions in that currency (the few
    // premium purchases paid in dollars are left out: no exchange rates here).
    let euros = premium_euros(&generated);
    let total: i64 = euros.iter().sum();
    assert!(euros.len() > 5 && euros.len() < completions["Premium purchase"]);
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org",
               "metrics": ["visitors", "total_revenue", "average_revenue"],
               "date_range": range, "filters": [["is", "event:goal", ["Premium purchase"]]]}),
    )
    .await
    .unwrap();
    let m = &answer["results"][0]["metrics"];
    assert_eq!(m[1]["value"], json!(total as f64 / 1e6), "{answer}");
    assert_eq!(m[1]["currency"], "EUR");
    let whole = total / 1_000_000;
    assert!(
        m[1]["long"].as_str().unwrap().starts_with(&format!(
            "€{},{:03}.",
            whole / 1000,
            whole % 1000
        )),
        "{answer}"
    );
    assert_eq!(
        m[2]["value"],
        json!((total / euros.len() as i64) as f64 / 1e6),
        "{answer}"
    );
    // Broken down by goal: revenue for the revenue goal, null for the others.
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors", "total_revenue"],
               "date_range": range, "dimensions": ["event:goal"]}),
    )
    .await
    .unwrap();
    for r in answer["results"].as_array().unwrap() {
        let revenue = &r["metrics"][1];
        if r["dimensions"][0] == "Premium purchase" {
            assert_eq!(revenue["value"], json!(total as f64 / 1e6), "{answer}");
        } else {
            assert!(revenue.is_null(), "{answer}");
        }
    }
    // Without a goal filter: every euro of the range (the one revenue goal's currency).
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["total_revenue"], "date_range": range}),
    )
    .await
    .unwrap();
    let all_euros: i64 = generated
        .iter()
        .filter_map(|e| e.revenue.filter(|r| r.1 == "EUR").map(|r| r.0))
        .sum();
    assert_eq!(
        answer["results"][0]["metrics"][0]["value"],
        json!(all_euros as f64 / 1e6)
    );
    // No revenue goal chosen: null, and `meta` says why.
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["total_revenue"], "date_range": range,
               "filters": [["is", "event:goal", ["Signup"]]]}),
    )
    .await
    .unwrap();
    assert!(answer["results"][0]["metrics"][0].is_null(), "{answer}");
    assert_eq!(
        answer["meta"]["metric_warnings"]["total_revenue"]["code"],
        "no_revenue_goals_matching"
    );

    // Behaviour: the visits (here one per visitor) that did, or did not, do something.
    let pageviews_of = |who: &BTreeSet<u64>| {
        generated
            .iter()
            .filter(|e| e.name == "pageview" && who.contains(&e.visitor))
            .count()
    };
    let signed = &converted["Signup"];
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors", "pageviews"], "date_range": range,
               "filters": [["has_done", ["is", "event:goal", ["Signup"]]]]}),
    )
    .await
    .unwrap();
    assert_eq!(
        answer["results"][0]["metrics"],
        json!([signed.len(), pageviews_of(signed)]),
        "{answer}"
    );
    let bought: BTreeSet<u64> = generated
        .iter()
        .filter(|e| e.name == "Purchase")
        .map(|e| e.visitor)
        .collect();
    let never: BTreeSet<u64> = all_visitors.difference(&bought).copied().collect();
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors", "pageviews"], "date_range": range,
               "dimensions": ["visit:source"],
               "filters": [["has_not_done", ["is", "event:name", ["Purchase"]]]]}),
    )
    .await
    .unwrap();
    let got = by_dimension(&answer);
    let want: BTreeMap<String, Value> = SOURCES
        .iter()
        .map(|s| {
            let who: BTreeSet<u64> = never
                .iter()
                .copied()
                .filter(|v| generated.iter().any(|e| e.visitor == *v && e.source == *s))
                .collect();
            (s.to_string(), json!([who.len(), pageviews_of(&who)]))
        })
        .filter(|(_, m)| m[0] != json!(0))
        .collect();
    assert_eq!(got, want, "{answer}");

    // Mistakes are named.
    for (q, reason) in [
        (
            json!({"site_id": "example.org", "metrics": ["conversion_rate"], "date_range": range}),
            "can only be queried with event:goal filters or dimensions",
        ),
        (
            json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
                   "filters": [["not", ["is", "event:goal", ["Signup"]]]]}),
            "can only be filtered at the top level",
        ),
        (
            json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
                   "filters": [["is", "event:goal", ["Newsletter"]]]}),
            "The goal `Newsletter` is not configured",
        ),
        (
            json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
                   "filters": [["is_not", "event:goal", ["Signup"]]]}),
            "only the `is` and `contains` operators",
        ),
        (
            json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
                   "filters": [["has_done", ["is", "visit:source", ["Google"]]]]}),
            "can only be used with event dimension filters",
        ),
        (
            json!({"site_id": "example.org", "metrics": ["group_conversion_rate"],
                   "date_range": range, "filters": [["is", "event:goal", ["Signup"]]]}),
            "at least one dimension",
        ),
    ] {
        let e = ask(&t, &site, q.clone()).await.unwrap_err().to_string();
        assert!(e.contains(reason), "{q}: {e}");
    }

    // A deleted goal is gone from the answers.
    let id = listed
        .lines()
        .find(|l| l.contains("\tSignup\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    let env = t.env();
    footfall(&env, &["goal", "delete", "--site", "example.org", &id]);
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
               "dimensions": ["event:goal"]}),
    )
    .await
    .unwrap();
    assert_eq!(answer["results"].as_array().unwrap().len(), 3, "{answer}");
    // `env` lets go of DuckDB's file again for the command.
    let (ok, _, err) = footfall_tests::footfall_command(
        &t.env(),
        &["goal", "delete", "--site", "example.org", &id],
    );
    assert!(!ok && err.contains("no goal"), "{err}");
    // A second revenue goal in another currency: no single currency, so null and a warning.
    footfall(
        &t.env(),
        &[
            "goal",
            "add",
            "--site",
            "example.org",
            "--event",
            "Purchase",
            "--prop",
            "plan=basic",
            "--name",
            "Basic purchase",
            "--currency",
            "USD",
        ],
    );
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["total_revenue"], "date_range": range}),
    )
    .await
    .unwrap();
    assert!(answer["results"][0]["metrics"][0].is_null(), "{answer}");
    assert_eq!(
        answer["meta"]["metric_warnings"]["total_revenue"]["code"],
        "no_single_revenue_currency"
    );
    let dollars: i64 = generated
        .iter()
        .filter(|e| e.plan == Some("basic"))
        .filter_map(|e| e.revenue.map(|r| r.0))
        .sum();
    let answer = ask(
        &t,
        &site,
        json!({"site_id": "example.org", "metrics": ["total_revenue"], "date_range": range,
               "filters": [["is", "event:goal", ["Basic purchase"]]]}),
    )
    .await
    .unwrap();
    assert_eq!(
        answer["results"][0]["metrics"][0]["value"],
        json!(dollars as f64 / 1e6),
        "{answer}"
    );
}

/// A visitor of the scroll funnel: its events (name, path, scroll), and how many steps it
/// reaches in sequence and in strict order.
type ScrollVisit = (
    u64,
    &'static [(&'static str, &'static str, u8)],
    usize,
    usize,
);

/// What one generated event is, for the funnel test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Home,
    Pricing,
    Blog,
    Signup,
    Purchase,
}

/// How far `events` go through `steps`: in `strict` order, the longest run of the first steps
/// found back to back; else the longest run of the first steps found as a subsequence.
fn funnel_depth(events: &[Step], steps: &[Step], strict: bool) -> usize {
    if strict {
        (1..=steps.len())
            .rev()
            .find(|k| events.windows(*k).any(|w| w == &steps[..*k]))
            .unwrap_or(0)
    } else {
        let mut k = 0;
        for e in events {
            if k < steps.len() && *e == steps[k] {
                k += 1;
            }
        }
        k
    }
}

/// The visitors of each step of the funnel `body` asks for, and the whole answer.
async fn funnel_visitors(t: &TestStore, site: &Site, body: &Value) -> (Vec<usize>, Value) {
    let q = footfall::query::funnel::parse(body).unwrap();
    let answer = footfall::query::funnel::run(t.store.as_ref(), site, &q, &policy())
        .await
        .unwrap();
    let got = answer["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["visitors"].as_u64().unwrap() as usize)
        .collect();
    (got, answer)
}

async fn funnels_match_an_independent_count(b: Backend) {
    let t = site_with_goals(
        b,
        "funnels",
        &[
            &["--page", "/pricing"],
            &["--event", "Signup"],
            &["--event", "Purchase"],
            &["--page", "/pricing", "--scroll", "50"],
        ],
    )
    .await;
    let site = t.site("example.org").await;
    let day = Utc::now().date_naive() - Duration::days(1);
    let start = day.and_hms_opt(6, 0, 0).unwrap().and_utc().timestamp() as u32;
    let mut seed = 5u64;
    let mut next = |m: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % m
    };
    // visitor → (source, sessions of steps)
    let mut visitors: Vec<(&str, Vec<Vec<Step>>)> = Vec::new();
    let mut rows = Vec::new();
    for v in 0..200u64 {
        let source = SOURCES[next(3) as usize];
        let mut sessions = Vec::new();
        for s in 0..1 + next(3) {
            let mut events = Vec::new();
            for i in 0..1 + next(6) {
                let step = match next(10) {
                    0 | 1 => Step::Home,
                    2..=4 => Step::Pricing,
                    5 => Step::Blog,
                    6..=8 => Step::Signup,
                    _ => Step::Purchase,
                };
                let (name, path) = match step {
                    Step::Home => ("pageview", "/"),
                    Step::Pricing => ("pageview", "/pricing"),
                    Step::Blog => ("pageview", "/blog/x"),
                    Step::Signup => ("Signup", "/signup"),
                    Step::Purchase => ("Purchase", "/checkout"),
                };
                rows.push(EventRow {
                    site_id: site.id,
                    timestamp: start + v as u32 * 300 + s as u32 * 90 + i as u32 * 10,
                    name: name.into(),
                    hostname: "example.org".into(),
                    pathname: path.into(),
                    visitor_id: 20_000 + v,
                    session_id: 200_000 + v * 10 + s,
                    referrer_source: source.into(),
                    scroll_depth: 255,
                    ..EventRow::default()
                });
                events.push(step);
            }
            sessions.push(events);
        }
        visitors.push((source, sessions));
    }
    t.store.insert_events(Arc::from(rows)).await.unwrap();

    let steps = [Step::Pricing, Step::Signup, Step::Purchase];
    let policy = policy();
    let funnel = |order: &str, within: &str, filters: Value| {
        json!({"site_id": "example.org", "date_range": [day.to_string(), day.to_string()],
               "steps": ["Visit /pricing", "Signup", "Purchase"], "order": order,
               "within": within, "filters": filters})
    };
    for (order, within, source) in [
        ("sequence", "visit", None),
        ("strict", "visit", None),
        ("sequence", "day", None),
        ("strict", "day", None),
        ("sequence", "visit", Some("Google")),
    ] {
        // The independent count: each visitor's deepest step over their visits, or over their
        // day's events in time order.
        let strict = order == "strict";
        let depths: Vec<usize> = visitors
            .iter()
            .filter(|(s, _)| source.is_none_or(|x| x == *s))
            .map(|(_, sessions)| {
                if within == "visit" {
                    sessions
                        .iter()
                        .map(|e| funnel_depth(e, &steps, strict))
                        .max()
                        .unwrap_or(0)
                } else {
                    funnel_depth(&sessions.concat(), &steps, strict)
                }
            })
            .collect();
        let reaching: Vec<usize> = (1..=3)
            .map(|k| depths.iter().filter(|d| **d >= k).count())
            .collect();
        let filters = match source {
            Some(s) => json!([["is", "visit:source", [s]]]),
            None => json!([]),
        };
        let (got, answer) = funnel_visitors(&t, &site, &funnel(order, within, filters)).await;
        assert_eq!(
            got, reaching,
            "{order} within {within} ({source:?}): {answer}"
        );
        assert!(reaching[2] > 0, "every step is reached by someone");
        let last = &answer["steps"][2];
        assert_eq!(last["dropoff"], json!(reaching[1] - reaching[2]));
        assert_eq!(
            last["conversion_rate"],
            json!((10_000.0 * reaching[2] as f64 / reaching[0] as f64).round() / 100.0)
        );
    }
    // A scroll-depth step, from engagement reports, on another day: (visitor, [(name, path,
    // scroll)]) and how far each goes, in sequence and in strict order, through "Visit
    // /pricing", "Scroll 50% on /pricing", "Signup".
    let other_day = Utc::now().date_naive() - Duration::days(2);
    let at = other_day
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp() as u32;
    let scrolled: [ScrollVisit; 5] = [
        (
            1,
            &[
                ("pageview", "/pricing", 255),
                ("engagement", "/pricing", 80),
                ("Signup", "/signup", 255),
            ],
            3,
            3,
        ),
        // Not far enough: the report below the threshold is no step and breaks no chain.
        (
            2,
            &[
                ("pageview", "/pricing", 255),
                ("engagement", "/pricing", 20),
                ("Signup", "/signup", 255),
            ],
            1,
            1,
        ),
        (
            3,
            &[
                ("pageview", "/pricing", 255),
                ("engagement", "/pricing", 60),
            ],
            2,
            2,
        ),
        // Far, but on another page.
        (
            4,
            &[
                ("pageview", "/", 255),
                ("engagement", "/", 90),
                ("Signup", "/signup", 255),
            ],
            0,
            0,
        ),
        // A report from another page in between breaks no strict chain either; a pageview does.
        (
            5,
            &[
                ("pageview", "/pricing", 255),
                ("engagement", "/blog", 90),
                ("engagement", "/pricing", 70),
                ("pageview", "/", 255),
                ("Signup", "/signup", 255),
            ],
            3,
            2,
        ),
    ];
    let mut rows = Vec::new();
    for (visitor, events, _, _) in &scrolled {
        for (i, (name, path, depth)) in events.iter().enumerate() {
            rows.push(EventRow {
                site_id: site.id,
                timestamp: at + *visitor as u32 * 600 + i as u32 * 10,
                name: (*name).into(),
                hostname: "example.org".into(),
                pathname: (*path).into(),
                visitor_id: 70_000 + visitor,
                session_id: 700_000 + visitor,
                scroll_depth: *depth,
                ..EventRow::default()
            });
        }
    }
    t.store.insert_events(Arc::from(rows)).await.unwrap();
    for (order, strict) in [("sequence", false), ("strict", true)] {
        let reaching: Vec<usize> = (1..=3)
            .map(|k| {
                scrolled
                    .iter()
                    .filter(|s| if strict { s.3 >= k } else { s.2 >= k })
                    .count()
            })
            .collect();
        let body = json!({"site_id": "example.org",
            "date_range": [other_day.to_string(), other_day.to_string()],
            "steps": ["Visit /pricing", "Scroll 50% on /pricing", "Signup"], "order": order});
        let (got, answer) = funnel_visitors(&t, &site, &body).await;
        assert_eq!(got, reaching, "{order}: {answer}");
    }

    // Mistakes, and a range past raw retention, are named.
    let purged = Utc::now().date_naive() - Duration::days(60);
    for (body, reason) in [
        (
            json!({"site_id": "example.org", "date_range": "7d", "steps": ["Signup"]}),
            "2 to 8 steps",
        ),
        (
            json!({"site_id": "example.org", "date_range": "7d", "steps": ["Signup", "Newsletter"]}),
            "step `Newsletter` is not a goal",
        ),
        (
            json!({"site_id": "example.org", "date_range": [purged.to_string(), day.to_string()],
                   "steps": ["Signup", "Purchase"]}),
            "a funnel reads raw events",
        ),
    ] {
        let e = match footfall::query::funnel::parse(&body) {
            Err(e) => e.to_string(),
            Ok(q) => footfall::query::funnel::run(t.store.as_ref(), &site, &q, &policy)
                .await
                .unwrap_err()
                .to_string(),
        };
        assert!(e.contains(reason), "{body}: {e}");
    }
}

/// The generated events as rows, spread over `days`: each visitor's on day `visitor % n` of
/// the `n` days, each pageview followed by its engagement reports ([`engagement_of`]).
fn rows_over_days(
    site_id: u32,
    generated: &[Generated],
    days: &[chrono::NaiveDate],
) -> Vec<EventRow> {
    let mut rows = Vec::new();
    for (i, e) in generated.iter().enumerate() {
        let day = days[(e.visitor % days.len() as u64) as usize];
        let start = day.and_hms_opt(7, 0, 0).unwrap().and_utc().timestamp() as u32;
        let row = EventRow {
            site_id,
            timestamp: start + e.visitor as u32 * 100 + i as u32 % 7,
            name: e.name.into(),
            hostname: "example.org".into(),
            pathname: e.path.into(),
            visitor_id: 10_000 + e.visitor,
            session_id: 90_000 + e.visitor,
            referrer_source: e.source.into(),
            props_keys: e.plan.map(|_| vec!["plan".to_string()]).unwrap_or_default(),
            props_values: e.plan.map(|p| vec![p.to_string()]).unwrap_or_default(),
            revenue_micros: e.revenue.map_or(0, |r| r.0),
            revenue_currency: e.revenue.map_or(String::new(), |r| r.1.to_string()),
            scroll_depth: 255,
            ..EventRow::default()
        };
        // A pageview's engagement reports (one or two), with their scroll.
        if e.name == "pageview" {
            for (k, depth) in engagement_of(i).into_iter().enumerate() {
                rows.push(EventRow {
                    name: "engagement".into(),
                    timestamp: row.timestamp + 2 + k as u32,
                    engagement_ms: 4_000,
                    scroll_depth: depth,
                    props_keys: Vec::new(),
                    props_values: Vec::new(),
                    revenue_micros: 0,
                    revenue_currency: String::new(),
                    ..row.clone()
                });
            }
        }
        rows.push(row);
    }
    rows
}

/// The scroll depths the engagement events of the `i`th generated event report (if it is a
/// pageview): 255 where the page reported none.
fn engagement_of(i: usize) -> Vec<u8> {
    match i % 5 {
        0 => vec![255],
        1 => vec![(i * 37 % 101) as u8, (i * 53 % 101) as u8],
        _ => vec![(i * 37 % 101) as u8],
    }
}

/// Adds a goal to `example.org` with `footfall goal add`, then runs a rollup round at
/// `policy`'s time.
async fn add_goal_and_roll_up(t: &TestStore, args: &[&str], policy: &footfall::query::run::Policy) {
    let mut all = vec!["goal", "add", "--site", "example.org"];
    all.extend(args.iter().copied());
    footfall(&t.env(), &all);
    footfall::query::rollup::roll_up_closed_days(t.store.as_ref(), policy, usize::MAX)
        .await
        .unwrap();
}

async fn goals_are_answered_from_rollups_after_raw_events_are_purged(b: Backend) {
    use footfall::query::rollup::roll_up_closed_days;
    let t = site_with_goals(
        b,
        "goal_rollups",
        &[
            &["--page", "/blog/*"],
            &["--event", "Signup"],
            PREMIUM_GOAL,
            &["--page", "/blog/*", "--scroll", "50"],
        ],
    )
    .await;
    let site = t.site("example.org").await;
    let today = Utc::now().date_naive();
    let days: Vec<chrono::NaiveDate> = (1..=3).rev().map(|n| today - Duration::days(n)).collect();
    let generated = generate();
    t.store
        .insert_events(Arc::from(rows_over_days(site.id, &generated, &days)))
        .await
        .unwrap();
    // Who scrolled past half of a blog page, each day, counted from the generated reports.
    let scrolled_on = |day: chrono::NaiveDate| {
        generated
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                days[(e.visitor % 3) as usize] == day
                    && e.name == "pageview"
                    && e.path.starts_with("/blog/")
                    && engagement_of(*i).iter().any(|d| (50..=100).contains(d))
            })
            .map(|(_, e)| e.visitor)
            .collect::<BTreeSet<u64>>()
    };
    let scroll_want: BTreeMap<String, Value> = days
        .iter()
        .map(|d| (d.to_string(), json!([scrolled_on(*d).len(), 0])))
        .collect();
    let scroll_q = json!({"site_id": "example.org", "metrics": ["visitors", "events"],
        "date_range": [days[0].to_string(), days[2].to_string()], "dimensions": ["time:day"],
        "filters": [["is", "event:goal", ["Scroll 50% on /blog/*"]]]});
    // From raw events first: unique conversions, and no total conversions (as Plausible).
    let answer = ask(&t, &site, scroll_q.clone()).await.unwrap();
    assert_eq!(by_dimension(&answer), scroll_want, "{answer}");
    assert!(scroll_want.values().all(|v| v[0] != json!(0)));
    roll_up_closed_days(t.store.as_ref(), &policy(), usize::MAX)
        .await
        .unwrap();
    // A goal added after its days were rolled up is counted on them by the next round, while
    // their raw events last.
    add_goal_and_roll_up(&t, &["--page", "/checkout/*/done"], &policy()).await;
    // 60 days later the three days are long past raw retention, and purged. A goal added
    // then has nothing to be counted from.
    let mut later = policy();
    later.now += Duration::days(60);
    t.store
        .purge_events_before(today + Duration::days(1))
        .await
        .unwrap();
    add_goal_and_roll_up(
        &t,
        &["--event", "Purchase", "--name", "Any purchase"],
        &later,
    )
    .await;
    let ask_later = |q: Value| {
        let t = &t;
        let site = &site;
        async move {
            let parsed = model::parse(&q).map_err(RunError::Query)?;
            run(t.store.as_ref(), site, &parsed, &later).await
        }
    };

    // The independent count, per day (visitor hashes change daily, so a day's counts add up).
    let day_of = |e: &Generated| days[(e.visitor % 3) as usize];
    let visitors_on = |day: chrono::NaiveDate| {
        generated
            .iter()
            .filter(|e| day_of(e) == day)
            .map(|e| e.visitor)
            .collect::<BTreeSet<u64>>()
    };
    let converted_on = |goal: &str, day: chrono::NaiveDate| {
        generated
            .iter()
            .filter(|e| day_of(e) == day && completes(goal, e))
            .map(|e| e.visitor)
            .collect::<BTreeSet<u64>>()
    };
    let completions = |goal: &str| generated.iter().filter(|e| completes(goal, e)).count();
    let all_visitors: usize = days.iter().map(|d| visitors_on(*d).len()).sum();
    let range = json!([days[0].to_string(), days[2].to_string()]);

    let answer = ask_later(json!({"site_id": "example.org",
        "metrics": ["visitors", "events", "conversion_rate"],
        "date_range": range, "dimensions": ["event:goal"]}))
    .await
    .unwrap();
    let mut want: BTreeMap<String, Value> = GOALS
        .iter()
        .map(|g| {
            let v: usize = days.iter().map(|d| converted_on(g, *d).len()).sum();
            (
                g.to_string(),
                json!([v, completions(g), rate(v, all_visitors)]),
            )
        })
        .collect();
    let scrolled: usize = days.iter().map(|d| scrolled_on(*d).len()).sum();
    want.insert(
        "Scroll 50% on /blog/*".into(),
        json!([scrolled, 0, rate(scrolled, all_visitors)]),
    );
    assert_eq!(by_dimension(&answer), want, "{answer}");
    // The goal added after the purge is left out of the breakdown, and `meta` says why.
    let why = answer["meta"]["goals_skipped"]["Any purchase"].as_str();
    assert!(
        why.is_some_and(|w| w.contains("added after that day's raw events were purged")),
        "{answer}"
    );
    let answer = ask_later(scroll_q.clone()).await.unwrap();
    assert_eq!(by_dimension(&answer), scroll_want, "{answer}");

    // One goal, day by day: its visitors, completions and share of each day's visitors.
    let answer = ask_later(json!({"site_id": "example.org",
        "metrics": ["visitors", "events", "group_conversion_rate"],
        "date_range": range, "dimensions": ["time:day"],
        "filters": [["is", "event:goal", ["Signup"]]]}))
    .await
    .unwrap();
    let want: BTreeMap<String, Value> = days
        .iter()
        .map(|d| {
            let v = converted_on("Signup", *d).len();
            let events = generated
                .iter()
                .filter(|e| day_of(e) == *d && completes("Signup", e))
                .count();
            (
                d.to_string(),
                json!([v, events, rate(v, visitors_on(*d).len())]),
            )
        })
        .collect();
    assert_eq!(by_dimension(&answer), want, "{answer}");

    // Revenue in the goal's currency, from the rollups.
    let euros = premium_euros(&generated);
    let total: i64 = euros.iter().sum();
    let answer = ask_later(json!({"site_id": "example.org",
        "metrics": ["total_revenue", "average_revenue"], "date_range": range,
        "filters": [["is", "event:goal", ["Premium purchase"]]]}))
    .await
    .unwrap();
    let m = &answer["results"][0]["metrics"];
    assert_eq!(m[0]["value"], json!(total as f64 / 1e6), "{answer}");
    assert_eq!(
        m[1]["value"],
        json!((total / euros.len() as i64) as f64 / 1e6),
        "{answer}"
    );
    assert!(euros.len() > 5);

    // What the rollups do not hold is refused, saying why: a goal with another dimension,
    // and a goal added after the raw events of its days were purged.
    for (q, reason) in [
        (
            json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
                   "dimensions": ["visit:source"],
                   "filters": [["is", "event:goal", ["Signup"]]]}),
            "raw events are kept for 30 days",
        ),
        (
            json!({"site_id": "example.org", "metrics": ["visitors"], "date_range": range,
                   "filters": [["is", "event:goal", ["Any purchase"]]]}),
            "it was added after that day's raw events were purged",
        ),
    ] {
        let e = ask_later(q.clone()).await.unwrap_err();
        assert!(matches!(e, RunError::Purged(_)), "{q}: {e}");
        assert!(e.to_string().contains(reason), "{q}: {e}");
    }
}
