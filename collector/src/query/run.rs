//! Runs a query on a store and shapes the answer as the Stats API v2 does:
//! `{"results": [{"metrics": [...], "dimensions": [...], "comparison"?: {...}}], "meta": {...},
//! "query": {...}}`.
//!
//! The store returns per-group counts from the [`super::sql`] plan; this module joins the
//! event-level and session-level rows by their dimension values, derives the ratio metrics,
//! orders (ties broken by the dimension values, so answers are stable), and paginates.
//! Derived metrics: `views_per_visit` = pageviews / visits (2 decimals); `bounce_rate` = % of
//! visits that were one pageview and nothing else (integer); `visit_duration` = mean seconds
//! between a visit's first and last event (integer); `percentage` = % of all visitors in the
//! range with the same filters (1 decimal); `conversion_rate` = % of the group's visitors
//! without the goal filter who also match it (2 decimals); `time_on_page` = engaged seconds
//! per engaged visitor (integer); `scroll_depth` = mean of each visitor's deepest scroll, in %
//! (integer). The last two come from engagement events, the others never count those.
//!
//! Comparisons run the same query over the comparison span. Rows pair up by their dimension
//! values; a time bucket pairs with the bucket at the same position in the other span.
//! `change` is the difference in points for `bounce_rate` and `percentage`, else the percent
//! change (100 when the earlier value was 0 and the new one is not).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::model::{Dimension, Metric, OrderKey, Query, QueryError, TimeBucket};
use super::sql::plan;
use super::time::{Span, comparison_span, labels, resolve};
use crate::store::{Site, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    visitors: i64,
    pageviews: i64,
    events: i64,
    visits: i64,
    bounces: i64,
    duration: i64,
    /// Visitors of the group without the goal filters.
    goal_base: i64,
    engaged_ms: i64,
    engaged_visitors: i64,
    scroll_sum: i64,
    scrolled_visitors: i64,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

fn metric_value(m: Metric, c: &Counts, total_visitors: i64) -> Value {
    match m {
        Metric::Visitors => json!(c.visitors),
        Metric::Visits => json!(c.visits),
        Metric::Pageviews => json!(c.pageviews),
        Metric::Events => json!(c.events),
        Metric::ViewsPerVisit => json!(round_to(ratio(c.pageviews, c.visits), 2)),
        Metric::BounceRate => json!(round_to(100.0 * ratio(c.bounces, c.visits), 0) as i64),
        Metric::VisitDuration => json!(round_to(ratio(c.duration, c.visits), 0) as i64),
        Metric::Percentage => json!(round_to(100.0 * ratio(c.visitors, total_visitors), 1)),
        Metric::ConversionRate => json!(round_to(100.0 * ratio(c.visitors, c.goal_base), 2)),
        Metric::TimeOnPage => {
            json!(round_to(ratio(c.engaged_ms, c.engaged_visitors) / 1000.0, 0) as i64)
        }
        Metric::ScrollDepth => json!(round_to(ratio(c.scroll_sum, c.scrolled_visitors), 0) as i64),
    }
}

fn change(m: Metric, now: &Value, before: &Value) -> Value {
    let (a, b) = (now.as_f64().unwrap_or(0.0), before.as_f64().unwrap_or(0.0));
    match m {
        Metric::BounceRate | Metric::Percentage | Metric::ConversionRate => {
            json!(round_to(a - b, 1))
        }
        _ if b == 0.0 => json!(if a == 0.0 { 0 } else { 100 }),
        _ => json!(round_to(100.0 * (a - b) / b, 0) as i64),
    }
}

fn as_number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn time_bucket(q: &Query) -> Option<(usize, TimeBucket)> {
    q.dimensions.iter().enumerate().find_map(|(i, d)| match d {
        Dimension::Time(b) => Some((i, *b)),
        Dimension::Field(_) => None,
    })
}

/// Rows of a query: dimension values → metric values, in `q.metrics` order.
pub type Groups = BTreeMap<Vec<String>, Vec<Value>>;

/// The comparison span, its rows and its time labels.
struct Compared {
    span: Span,
    rows: Groups,
    labels: Vec<String>,
}

/// Every group of `q` over `span`: dimension values → metric values, in `q.metrics` order.
pub async fn groups(
    store: &dyn Store,
    site_id: u32,
    q: &Query,
    tz: Tz,
    span: &Span,
) -> Result<Groups, RunError> {
    let plan = plan(store.dialect(), q, site_id, tz, span);
    let n = q.dimensions.len();
    let mut groups: BTreeMap<Vec<String>, Counts> = BTreeMap::new();
    for (key, v) in store.run_statement(&plan.events, n, 3).await? {
        let c = groups.entry(key).or_default();
        (c.visitors, c.pageviews, c.events) = (v[0], v[1], v[2]);
    }
    if let Some(st) = &plan.sessions {
        for (key, v) in store.run_statement(st, n, 3).await? {
            let c = groups.entry(key).or_default();
            (c.visits, c.bounces, c.duration) = (v[0], v[1], v[2]);
        }
    }
    if let Some(st) = &plan.goal_base {
        for (key, v) in store.run_statement(st, n, 3).await? {
            groups.entry(key).or_default().goal_base = v[0];
        }
    }
    if let Some(st) = &plan.engagement {
        for (key, v) in store.run_statement(st, n, 4).await? {
            let c = groups.entry(key).or_default();
            (
                c.engaged_ms,
                c.engaged_visitors,
                c.scroll_sum,
                c.scrolled_visitors,
            ) = (v[0], v[1], v[2], v[3]);
        }
    }
    let total_visitors = match &plan.total_visitors {
        Some(st) => store
            .run_statement(st, 0, 3)
            .await?
            .first()
            .map_or(0, |(_, v)| v[0]),
        None => 0,
    };
    if n > 0 {
        // Only groups with events (or, for engagement metrics, engagement) are results.
        groups.retain(|_, c| c.events > 0 || c.visits > 0 || c.engaged_visitors > 0);
    } else if groups.is_empty() {
        groups.insert(Vec::new(), Counts::default());
    }
    Ok(groups
        .into_iter()
        .map(|(key, c)| {
            (
                key,
                q.metrics
                    .iter()
                    .map(|m| metric_value(*m, &c, total_visitors))
                    .collect(),
            )
        })
        .collect())
}

/// Answers `q` for `site` at `now`.
pub async fn run(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    now: DateTime<Utc>,
) -> Result<Value, RunError> {
    let tz: Tz = site
        .timezone
        .parse()
        .map_err(|_| StoreError::Query(format!("site {} has an invalid time zone", site.domain)))?;
    let span = resolve(&q.date_range, tz, now)?;
    let time = time_bucket(q);
    let time_labels = match time {
        Some((_, bucket)) => labels(bucket, &span)?,
        None => Vec::new(),
    };
    let current = groups(store, site.id, q, tz, &span).await?;

    let mut compared: Option<Compared> = None;
    if let Some(c) = &q.comparison {
        let other = comparison_span(c, &span, tz);
        let other_labels = match time {
            Some((_, bucket)) => labels(bucket, &other)?,
            None => Vec::new(),
        };
        compared = Some(Compared {
            span: other,
            rows: groups(store, site.id, q, tz, &other).await?,
            labels: other_labels,
        });
    }

    let mut rows: Vec<(Vec<String>, Vec<Value>)> = current.into_iter().collect();
    rows.sort_by(|a, b| {
        for (key, desc) in &q.order_by {
            let ord = match key {
                OrderKey::Metric(m) => {
                    let i = q.metrics.iter().position(|x| x == m).unwrap_or(0);
                    as_number(&a.1[i])
                        .partial_cmp(&as_number(&b.1[i]))
                        .unwrap_or(Ordering::Equal)
                }
                OrderKey::Dimension(i) => a.0[*i].cmp(&b.0[*i]),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        a.0.cmp(&b.0)
    });
    let total_rows = rows.len();
    let results: Vec<Value> = rows
        .into_iter()
        .skip(usize::try_from(q.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(q.limit).unwrap_or(usize::MAX))
        .map(|(dims, metrics)| {
            let mut row = json!({"metrics": metrics, "dimensions": dims});
            if let Some(Compared {
                rows: other,
                labels: other_labels,
                ..
            }) = &compared
            {
                let mut key = dims.clone();
                if let Some((i, _)) = time {
                    let pos = time_labels.iter().position(|l| *l == dims[i]);
                    key[i] = pos
                        .and_then(|p| other_labels.get(p))
                        .cloned()
                        .unwrap_or_default();
                }
                let before: Vec<Value> = other
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| q.metrics.iter().map(|_| json!(0)).collect());
                let changes: Vec<Value> = q
                    .metrics
                    .iter()
                    .enumerate()
                    .map(|(j, m)| change(*m, &metrics[j], &before[j]))
                    .collect();
                row["comparison"] =
                    json!({"dimensions": key, "metrics": before, "change": changes});
            }
            row
        })
        .collect();

    let mut meta = serde_json::Map::new();
    if q.time_labels {
        meta.insert("time_labels".into(), json!(time_labels));
        if let Some(c) = &compared {
            meta.insert("comparison_time_labels".into(), json!(c.labels));
        }
    }
    if q.total_rows {
        meta.insert("total_rows".into(), json!(total_rows));
    }
    let mut query = json!({
        "site_id": site.domain,
        "metrics": q.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "date_range": [span.first_day.to_string(), span.last_day.to_string()],
        "dimensions": q.dimensions.iter().map(Dimension::label).collect::<Vec<_>>(),
        "time_zone": tz.name(),
    });
    if let Some(c) = &compared {
        query["comparison_date_range"] =
            json!([c.span.first_day.to_string(), c.span.last_day.to_string()]);
    }
    Ok(json!({"results": results, "meta": meta, "query": query}))
}
