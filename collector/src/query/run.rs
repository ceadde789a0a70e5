//! Runs a query on a store and shapes the answer as the Stats API v2 does:
//! `{"results": [{"metrics": [...], "dimensions": [...], "comparison"?: {...}}], "meta": {...},
//! "query": {...}}`.
//!
//! The store returns per-group counts from the [`super::sql`] plan; this module joins the
//! event-level and session-level rows by their dimension values, derives the ratio metrics,
//! orders (ties broken by the dimension values, so answers are stable), and paginates.
//! Counts are per site-local day and add up across days (visitor hashes change daily, so a
//! visitor cannot be recognised across days anyway); the daily rollups keep exactly these.
//! Derived metrics: `views_per_visit` = pageviews / visits (2 decimals); `bounce_rate` = % of
//! visits that were one pageview and nothing else (integer); `visit_duration` = mean seconds
//! between a visit's first and last event (integer); `percentage` = % of all visitors in the
//! range with the same filters (1 decimal); `conversion_rate` = the group's converted visitors
//! as a % of all visitors in the range with the filters other than goals and custom properties
//! (1 decimal, as Plausible rounds it); `group_conversion_rate` = the same % of the group's own
//! such visitors (1 decimal); `time_on_page` = engaged seconds
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

use super::model::{Dimension, Field, Filter, Metric, Op, OrderKey, Query, QueryError, TimeBucket};
use super::rollup::{Covered, counts, imports_skipped, rows_to_read, tiers};
use super::sql::{Sample, Statement, plan};
use super::time::{Span, comparison_span, labels, resolve};
use crate::goals::Goal;
use crate::store::{Deadline, Site, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The question needs raw events that retention has removed (answered with 422).
    #[error("{0}")]
    Purged(String),
}

/// What the planner must know besides the query: the time, and since when raw events exist.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub now: DateTime<Utc>,
    pub raw_retention_days: u32,
    /// When the answer is due (`query_timeout_secs` after the question arrived).
    pub deadline: Deadline,
    /// Rows a question may read from raw events and visit rows before it counts a sample of
    /// the visitors instead (`sampling_threshold`); 0: always exact.
    pub sample_threshold: u64,
}

/// The additive counts behind every metric of one group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub visitors: i64,
    pub pageviews: i64,
    pub events: i64,
    pub visits: i64,
    pub bounces: i64,
    pub duration: i64,
    /// Visitors of the group without the goal filters.
    pub goal_base: i64,
    pub engaged_ms: i64,
    pub engaged_visitors: i64,
    pub scroll_sum: i64,
    pub scrolled_visitors: i64,
    /// Millionths of the query's revenue currency, and the events that carry them.
    pub revenue_micros: i64,
    pub revenue_events: i64,
}

impl Counts {
    /// Adds another span's counts (visitors add up across days: hashes change daily).
    pub fn add(&mut self, o: &Counts) {
        self.visitors += o.visitors;
        self.pageviews += o.pageviews;
        self.events += o.events;
        self.visits += o.visits;
        self.bounces += o.bounces;
        self.duration += o.duration;
        self.goal_base += o.goal_base;
        self.engaged_ms += o.engaged_ms;
        self.engaged_visitors += o.engaged_visitors;
        self.scroll_sum += o.scroll_sum;
        self.scrolled_visitors += o.scrolled_visitors;
        self.revenue_micros += o.revenue_micros;
        self.revenue_events += o.revenue_events;
    }

    /// The counts of a sample of one visitor in `divisor`, scaled up to every visitor.
    pub fn scaled(mut self, divisor: u32) -> Counts {
        let d = i64::from(divisor);
        for v in [
            &mut self.visitors,
            &mut self.pageviews,
            &mut self.events,
            &mut self.visits,
            &mut self.bounces,
            &mut self.duration,
            &mut self.goal_base,
            &mut self.engaged_ms,
            &mut self.engaged_visitors,
            &mut self.scroll_sum,
            &mut self.scrolled_visitors,
            &mut self.revenue_micros,
            &mut self.revenue_events,
        ] {
            *v = v.saturating_mul(d);
        }
        self
    }
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// The denominators of the metrics that are shares of a whole.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Visitors with the same filters (`percentage`).
    pub visitors: i64,
    /// Visitors with the filters other than the goals (`conversion_rate`).
    pub without_goals: i64,
}

/// An amount of money as Plausible's revenue metrics give it: `{value, currency, short,
/// long}`, e.g. `{"value": 1234.5, "currency": "EUR", "short": "€1.2K", "long": "€1,234.50"}`.
pub fn money(micros: i64, currency: &str) -> Value {
    let value = micros as f64 / 1_000_000.0;
    let symbol = match currency {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" | "CNY" => "¥",
        "INR" => "₹",
        "KRW" => "₩",
        _ => "",
    };
    let prefix = if symbol.is_empty() {
        format!("{currency} ")
    } else {
        symbol.to_string()
    };
    let decimals = if matches!(currency, "JPY" | "KRW") {
        0
    } else {
        2
    };
    let sign = if value < 0.0 { "-" } else { "" };
    let grouped = |whole: u64| {
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, ch) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    };
    let abs = value.abs();
    let scaled = (abs * 10f64.powi(decimals)).round() as u64;
    let unit = 10u64.pow(decimals as u32);
    let long = if decimals == 0 {
        format!("{sign}{prefix}{}", grouped(scaled))
    } else {
        format!(
            "{sign}{prefix}{}.{:02}",
            grouped(scaled / unit),
            scaled % unit
        )
    };
    let short = match [(1e9, "B"), (1e6, "M"), (1e3, "K")]
        .into_iter()
        .find(|(size, _)| abs >= *size)
    {
        Some((size, letter)) => format!("{sign}{prefix}{:.1}{letter}", abs / size),
        None => format!("{sign}{prefix}{abs:.1}"),
    };
    json!({"value": value, "currency": currency, "short": short, "long": long})
}

fn metric_value(m: Metric, c: &Counts, totals: Totals, currency: Option<&str>) -> Value {
    match m {
        Metric::Visitors => json!(c.visitors),
        Metric::Visits => json!(c.visits),
        Metric::Pageviews => json!(c.pageviews),
        Metric::Events => json!(c.events),
        Metric::ViewsPerVisit => json!(round_to(ratio(c.pageviews, c.visits), 2)),
        Metric::BounceRate => json!(round_to(100.0 * ratio(c.bounces, c.visits), 0) as i64),
        Metric::VisitDuration => json!(round_to(ratio(c.duration, c.visits), 0) as i64),
        Metric::Percentage => json!(round_to(100.0 * ratio(c.visitors, totals.visitors), 1)),
        Metric::ConversionRate => {
            json!(round_to(100.0 * ratio(c.visitors, totals.without_goals), 1))
        }
        Metric::GroupConversionRate => {
            json!(round_to(100.0 * ratio(c.visitors, c.goal_base), 1))
        }
        Metric::TimeOnPage => {
            json!(round_to(ratio(c.engaged_ms, c.engaged_visitors) / 1000.0, 0) as i64)
        }
        Metric::ScrollDepth => json!(round_to(ratio(c.scroll_sum, c.scrolled_visitors), 0) as i64),
        Metric::TotalRevenue => currency.map_or(Value::Null, |cur| money(c.revenue_micros, cur)),
        Metric::AverageRevenue => currency.map_or(Value::Null, |cur| {
            let average = if c.revenue_events == 0 {
                0
            } else {
                c.revenue_micros / c.revenue_events
            };
            money(average, cur)
        }),
    }
}

fn change(m: Metric, now: &Value, before: &Value) -> Value {
    let (a, b) = (as_number(now), as_number(before));
    match m {
        Metric::BounceRate
        | Metric::Percentage
        | Metric::ConversionRate
        | Metric::GroupConversionRate => json!(round_to(a - b, 1)),
        _ if b == 0.0 => json!(if a == 0.0 { 0 } else { 100 }),
        _ => json!(round_to(100.0 * (a - b) / b, 0) as i64),
    }
}

/// A metric's value as a number (a revenue metric's `value`).
fn as_number(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.get("value").and_then(Value::as_f64))
        .unwrap_or(0.0)
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

/// Every group of `q` over `span` counted from raw events alone, of the visitors in `sample`
/// (scaled up to all of them).
pub async fn raw_counts(
    store: &dyn Store,
    site_id: u32,
    q: &Query,
    tz: Tz,
    span: &Span,
    deadline: Deadline,
    sample: Sample,
) -> Result<BTreeMap<Vec<String>, Counts>, RunError> {
    let plan = plan(store.dialect(), sample, q, site_id, tz, span);
    // Rows carry the dimensions, then the site-local day; counts add up over the days.
    let n = q.dimensions.len() + 1;
    let mut groups: BTreeMap<Vec<String>, Counts> = BTreeMap::new();
    // Each statement of the plan fills its own counts from its integer columns.
    type Fill = fn(&[i64]) -> Counts;
    let parts: [(Option<&Statement>, usize, Fill); 5] = [
        (Some(&plan.events), 3, |v| Counts {
            visitors: v[0],
            pageviews: v[1],
            events: v[2],
            ..Counts::default()
        }),
        (plan.sessions.as_ref(), 3, |v| Counts {
            visits: v[0],
            bounces: v[1],
            duration: v[2],
            ..Counts::default()
        }),
        (plan.goal_base.as_ref(), 3, |v| Counts {
            goal_base: v[0],
            ..Counts::default()
        }),
        (plan.engagement.as_ref(), 4, |v| Counts {
            engaged_ms: v[0],
            engaged_visitors: v[1],
            scroll_sum: v[2],
            scrolled_visitors: v[3],
            ..Counts::default()
        }),
        (plan.revenue.as_ref(), 2, |v| Counts {
            revenue_micros: v[0],
            revenue_events: v[1],
            ..Counts::default()
        }),
    ];
    for (statement, columns, fill) in parts {
        let Some(statement) = statement else { continue };
        for (mut key, v) in store.run_statement(statement, n, columns, deadline).await? {
            key.pop();
            groups
                .entry(key)
                .or_default()
                .add(&fill(&v).scaled(sample.divisor));
        }
    }
    Ok(groups)
}

/// Turns counts into rows of metric values; `totals` are the denominators of `percentage` and
/// `conversion_rate`.
pub fn derive(q: &Query, mut groups: BTreeMap<Vec<String>, Counts>, totals: Totals) -> Groups {
    if !q.dimensions.is_empty() {
        // Only groups with events (or, for engagement metrics, engagement) are results.
        // (Visitors alone: a scroll-depth goal's, whose engagement events are not events.)
        groups.retain(|_, c| {
            c.events > 0 || c.visits > 0 || c.engaged_visitors > 0 || c.visitors > 0
        });
    } else if groups.is_empty() {
        groups.insert(Vec::new(), Counts::default());
    }
    groups
        .into_iter()
        .map(|(key, c)| {
            (
                key,
                q.metrics
                    .iter()
                    .map(|m| metric_value(*m, &c, totals, q.revenue_currency.as_deref()))
                    .collect(),
            )
        })
        .collect()
}

/// The query whose visitors are the denominator of `percentage`: the same filters, no
/// dimensions. `None` when `q` does not ask for `percentage`.
fn percentage_base(q: &Query) -> Option<Query> {
    q.metrics.contains(&Metric::Percentage).then(|| Query {
        dimensions: Vec::new(),
        metrics: vec![Metric::Visitors],
        ..q.clone()
    })
}

/// The query whose visitors are the denominator of `conversion_rate`: the filters other than
/// the goals, no dimensions. `None` when `q` does not ask for `conversion_rate`.
fn conversion_base(q: &Query) -> Option<Query> {
    q.metrics.contains(&Metric::ConversionRate).then(|| Query {
        dimensions: Vec::new(),
        metrics: vec![Metric::Visitors],
        filters: super::model::conversion_base_filters(q)
            .into_iter()
            .cloned()
            .collect(),
        resolved_goals: Vec::new(),
        order_by: Vec::new(),
        ..q.clone()
    })
}

fn visitors_of(counts: &BTreeMap<Vec<String>, Counts>) -> i64 {
    counts.values().map(|c| c.visitors).sum()
}

/// Every group of `q` over `span`, from raw events only (for spans that are not whole days).
pub async fn groups(
    store: &dyn Store,
    site_id: u32,
    q: &Query,
    tz: Tz,
    span: &Span,
    deadline: Deadline,
) -> Result<Groups, RunError> {
    let exact = Sample::EXACT;
    let counts = raw_counts(store, site_id, q, tz, span, deadline, exact).await?;
    let mut totals = Totals::default();
    for (base, total) in [
        (percentage_base(q), &mut totals.visitors),
        (conversion_base(q), &mut totals.without_goals),
    ] {
        if let Some(base) = base {
            *total =
                visitors_of(&raw_counts(store, site_id, &base, tz, span, deadline, exact).await?);
        }
    }
    Ok(derive(q, counts, totals))
}

/// Every group of `q` over whole days, through the planner (rollups where they answer), with
/// the tiers `covered` found for `q` over `span`.
#[allow(clippy::too_many_arguments)]
async fn planned(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    tz: Tz,
    span: &Span,
    policy: &Policy,
    sample: Sample,
    covered: &Covered,
) -> Result<Groups, RunError> {
    let found = counts(store, site, q, tz, span, policy, sample, covered).await?;
    let totals = totals(store, site, q, tz, span, policy, sample).await?;
    Ok(derive(q, found, totals))
}

/// The denominators of `q`'s `percentage` and `conversion_rate` over `span`, through the
/// planner.
async fn totals(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    tz: Tz,
    span: &Span,
    policy: &Policy,
    sample: Sample,
) -> Result<Totals, RunError> {
    let mut totals = Totals::default();
    for (base, total) in [
        (percentage_base(q), &mut totals.visitors),
        (conversion_base(q), &mut totals.without_goals),
    ] {
        if let Some(base) = base {
            let covered = tiers(store, site, &base, tz, span, policy).await?;
            *total =
                visitors_of(&counts(store, site, &base, tz, span, policy, sample, &covered).await?);
        }
    }
    Ok(totals)
}

/// `q` without its dimension at `i`.
fn without_dimension(q: &Query, i: usize) -> Query {
    let mut out = q.clone();
    out.dimensions.remove(i);
    out.order_by = Vec::new();
    out
}

/// The goals a goal breakdown left out, with the reason: their conversions on some day of
/// the range are unknown (see [`RunError::Purged`]).
type Skipped = Vec<(String, String)>;

/// Every group of `q` over `span`; with an `event:goal` dimension (at `goals.0`), the groups of
/// each goal in `goals.1`, counted with the goal's filter and named by it, and the goals
/// left out because that is unknown for a day of `span`. `covered`: the tiers already found
/// for `q` over `span`, if any.
#[allow(clippy::too_many_arguments)]
async fn answered(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    goals: Option<&(usize, Vec<Goal>)>,
    tz: Tz,
    span: &Span,
    policy: &Policy,
    sample: Sample,
    covered: Option<&Covered>,
) -> Result<(Groups, Skipped), RunError> {
    let Some((at, goals)) = goals else {
        let found;
        let covered = match covered {
            Some(c) => c,
            None => {
                found = tiers(store, site, q, tz, span, policy).await?;
                &found
            }
        };
        let groups = planned(store, site, q, tz, span, policy, sample, covered).await?;
        return Ok((groups, Skipped::new()));
    };
    // Every goal's conversion rate has the same denominator: the visitors without goals.
    let base = without_dimension(q, *at);
    let totals = totals(store, site, &base, tz, span, policy, sample).await?;
    let mut out = Groups::new();
    let mut skipped = Skipped::new();
    for goal in goals {
        // The goals listed are those the goal filters chose, so a goal's own filter keeps
        // only events that those keep too: it stands in for them.
        let mut one = base.clone();
        one.filters.retain(|f| !base.resolved_goals.contains(f));
        let filter = goal.filter();
        one.filters.push(filter.clone());
        one.resolved_goals = vec![filter];
        one.revenue_currency = goal.currency.clone();
        one.goal_key = (one.filters.len() == 1).then(|| goal.rollup_key());
        let covered = tiers(store, site, &one, tz, span, policy).await?;
        let found = match counts(store, site, &one, tz, span, policy, sample, &covered).await {
            // A goal added after the raw events of a day it was not counted on were purged:
            // the others still answer.
            Err(RunError::Purged(why)) if one.goal_key.is_some() => {
                skipped.push((goal.display_name.clone(), why));
                continue;
            }
            found => found?,
        };
        for (mut key, values) in derive(&one, found, totals) {
            // A goal breakdown lists the groups that completed the goal.
            let completed = values.iter().any(|v| as_number(v) > 0.0);
            if completed {
                key.insert(*at, goal.display_name.clone());
                out.insert(key, values);
            }
        }
    }
    Ok((out, skipped))
}

/// Whether a goal named `name` is chosen by a filter on `event:goal` with `op` (`is` or
/// `contains`, the only ones the query model lets through) and `values`.
fn goal_chosen(op: Op, name: &str, values: &[String]) -> bool {
    match op {
        Op::Contains => values.iter().any(|v| name.contains(v.as_str())),
        // A case-insensitive `is` or `contains`, as the query model writes it (a user's own
        // `matches` on goals is refused there); compiled and sized when it was parsed.
        Op::Matches => values
            .iter()
            .any(|p| super::model::compile_pattern(p).is_ok_and(|re| re.is_match(name))),
        _ => values.iter().any(|v| v == name),
    }
}

/// The events that complete any of `goals`.
fn any_goal(goals: &[&Goal]) -> Filter {
    match goals {
        // No goal: nothing completes it (no event has an empty name).
        [] => Filter::Match {
            op: Op::Is,
            field: Field::Column(super::model::Property::Name),
            values: vec![String::new()],
        },
        [one] => one.filter(),
        many => Filter::Or(many.iter().map(|g| g.filter()).collect()),
    }
}

/// The filter an `event:goal` filter (`op`, `values`) stands for, and the goals it chooses.
/// An `is` naming a goal the site does not have is a mistake; a `contains` that chooses none
/// keeps nothing.
fn goal_filter<'a>(
    op: Op,
    values: &[String],
    goals: &'a [Goal],
) -> Result<(Filter, Vec<&'a Goal>), RunError> {
    if !matches!(op, Op::Is | Op::Contains | Op::Matches) {
        return Err(RunError::Query(QueryError(
            "only the `is` and `contains` operators are valid for `event:goal`".into(),
        )));
    }
    if op == Op::Is
        && let Some(missing) = values
            .iter()
            .find(|v| !goals.iter().any(|g| g.display_name == **v))
    {
        return Err(RunError::Query(QueryError(format!(
            "Invalid filters. The goal `{missing}` is not configured for this site (`footfall goal list` shows its goals)."
        ))));
    }
    let chosen: Vec<&Goal> = goals
        .iter()
        .filter(|g| goal_chosen(op, &g.display_name, values))
        .collect();
    Ok((any_goal(&chosen), chosen))
}

/// `f` with the `event:goal` filters inside its `has_done` / `has_not_done` resolved into
/// filters on the events (they are not goal filters of the query).
fn goals_within(f: &Filter, goals: &[Goal]) -> Result<Filter, RunError> {
    Ok(match f {
        Filter::Match {
            op,
            field: Field::Goal,
            values,
        } => goal_filter(*op, values, goals)?.0,
        Filter::Match { .. } | Filter::Scrolled { .. } => f.clone(),
        Filter::And(l) => Filter::And(
            l.iter()
                .map(|f| goals_within(f, goals))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Or(l) => Filter::Or(
            l.iter()
                .map(|f| goals_within(f, goals))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Not(inner) => Filter::Not(Box::new(goals_within(inner, goals)?)),
        Filter::Behaviour { done, inner } => Filter::Behaviour {
            done: *done,
            inner: Box::new(goals_within(inner, goals)?),
        },
    })
}

/// Why revenue metrics are null: Plausible's codes, with our own words.
const NO_REVENUE_GOALS: (&str, &str) = (
    "no_revenue_goals_matching",
    "Revenue metrics are null: no goal of this query has a currency (add one with `footfall goal add … --currency EUR`).",
);
const MIXED_CURRENCIES: (&str, &str) = (
    "no_single_revenue_currency",
    "Revenue metrics are null: the goals of this query are in more than one currency; filter or break down by goal.",
);

/// A query with its goals resolved.
pub(crate) struct Resolved {
    pub(crate) query: Query,
    /// The `event:goal` dimension's position and the goals it breaks down by.
    pub(crate) by_goal: Option<(usize, Vec<Goal>)>,
    /// Why revenue metrics are null, when they are asked for and are.
    pub(crate) revenue_warning: Option<(&'static str, &'static str)>,
}

/// `q` with its `event:goal` filters resolved against the site's goals into filters on the
/// events (noted in `resolved_goals`, as goal filters), and the goals its `event:goal`
/// dimension breaks down by, with the dimension's position: every goal, or those its goal
/// filters choose. An `is` filter naming a goal the site does not have is a mistake; a
/// `contains` filter that chooses none matches nothing.
pub(crate) async fn resolve_goals(
    store: &dyn Store,
    site: &Site,
    q: &Query,
) -> Result<Resolved, RunError> {
    let at = q
        .dimensions
        .iter()
        .position(|d| *d == Dimension::Field(Field::Goal));
    fn reads_goal(f: &Filter) -> bool {
        match f {
            Filter::Match { field, .. } => *field == Field::Goal,
            Filter::And(l) | Filter::Or(l) => l.iter().any(reads_goal),
            Filter::Not(f) | Filter::Behaviour { inner: f, .. } => reads_goal(f),
            Filter::Scrolled { .. } => false,
        }
    }
    let filtered = q.filters.iter().any(reads_goal);
    let revenue = q
        .metrics
        .iter()
        .any(|m| matches!(m, Metric::TotalRevenue | Metric::AverageRevenue));
    if at.is_none() && !filtered && !revenue {
        return Ok(Resolved {
            query: q.clone(),
            by_goal: None,
            revenue_warning: None,
        });
    }
    let goals = crate::goals::goals_of(store, site.id).await?;
    let mut out = Query {
        filters: Vec::new(),
        ..q.clone()
    };
    let mut chosen_all: Vec<&Goal> = goals.iter().collect();
    for f in &q.filters {
        let Filter::Match {
            op,
            field: Field::Goal,
            values,
        } = f
        else {
            out.filters.push(goals_within(f, &goals)?);
            continue;
        };
        let (any, chosen) = goal_filter(*op, values, &goals)?;
        chosen_all.retain(|g| chosen.contains(g));
        out.resolved_goals.push(any.clone());
        out.filters.push(any);
    }
    // Revenue is summed in the one currency of the chosen revenue goals (a goal breakdown
    // sets each goal's own).
    let currencies: std::collections::BTreeSet<&str> = chosen_all
        .iter()
        .filter_map(|g| g.currency.as_deref())
        .collect();
    let mut revenue_warning = None;
    match currencies.len() {
        1 => out.revenue_currency = currencies.first().map(|c| c.to_string()),
        0 if revenue && at.is_none() => revenue_warning = Some(NO_REVENUE_GOALS),
        _ if revenue && at.is_none() => revenue_warning = Some(MIXED_CURRENCIES),
        _ => {}
    }
    // One goal as the only filter: its daily rollups can answer.
    if let ([_], [_], [goal]) = (
        out.filters.as_slice(),
        out.resolved_goals.as_slice(),
        chosen_all.as_slice(),
    ) {
        out.goal_key = Some(goal.rollup_key());
    }
    let by_goal = at.map(|i| (i, chosen_all.into_iter().cloned().collect()));
    Ok(Resolved {
        query: out,
        by_goal,
        revenue_warning,
    })
}

/// The range as the answer echoes it: days, or date-times in the site's zone for a partial span.
fn range_label(span: &Span, tz: Tz) -> Value {
    if !span.partial {
        return json!([span.first_day.to_string(), span.last_day.to_string()]);
    }
    let at = |t: i64| {
        DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    };
    json!([at(span.from), at(span.to - 1)])
}

/// Answers `q` for `site` at `now`.
pub async fn run(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    policy: &Policy,
) -> Result<Value, RunError> {
    let now = policy.now;
    let tz: Tz = site
        .timezone
        .parse()
        .map_err(|_| StoreError::Query(format!("site {} has an invalid time zone", site.domain)))?;
    let span = resolve(&q.date_range, tz, now)?;
    let Resolved {
        query: resolved,
        by_goal,
        revenue_warning,
    } = resolve_goals(store, site, q).await?;
    let q = &resolved;
    let time = time_bucket(q);
    let time_labels = match time {
        Some((_, bucket)) => labels(bucket, &span, tz)?,
        None => Vec::new(),
    };
    // One sample for the whole answer (its comparison and percentages too), chosen by the
    // rows the question reads where rollups do not answer it.
    let base = match &by_goal {
        Some((i, _)) => without_dimension(q, *i),
        None => q.clone(),
    };
    let covered = tiers(store, site, &base, tz, &span, policy).await?;
    let sample = if q.sampling && policy.sample_threshold > 0 {
        let rows = rows_to_read(store, site, tz, &span, policy, &covered).await?;
        Sample::for_rows(rows, policy.sample_threshold)
    } else {
        Sample::EXACT
    };
    let goals = by_goal.as_ref();
    // Without a goal breakdown, `base` is `q`: its tiers serve the answer too.
    let known = by_goal.is_none().then_some(&covered);
    let (current, mut skipped) =
        answered(store, site, q, goals, tz, &span, policy, sample, known).await?;

    let mut compared: Option<Compared> = None;
    if let Some(c) = &q.comparison {
        let other = comparison_span(c, &span, tz);
        let other_labels = match time {
            Some((_, bucket)) => labels(bucket, &other, tz)?,
            None => Vec::new(),
        };
        compared = Some(Compared {
            span: other,
            rows: {
                let (rows, also) =
                    answered(store, site, q, goals, tz, &other, policy, sample, None).await?;
                for s in also {
                    if !skipped.iter().any(|(name, _)| *name == s.0) {
                        skipped.push(s);
                    }
                }
                rows
            },
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
    // Always stated: 1 when every visitor was counted, else the share that was (the counts
    // are scaled up from it, the rates and averages are the sample's own).
    meta.insert("sample_rate".into(), json!(sample.rate()));
    if q.time_labels {
        meta.insert("time_labels".into(), json!(time_labels));
        if let Some(c) = &compared {
            meta.insert("comparison_time_labels".into(), json!(c.labels));
        }
    }
    if q.total_rows {
        meta.insert("total_rows".into(), json!(total_rows));
    }
    if let Some((code, warning)) = revenue_warning {
        let warnings: serde_json::Map<String, Value> = q
            .metrics
            .iter()
            .filter(|m| matches!(m, Metric::TotalRevenue | Metric::AverageRevenue))
            .map(|m| {
                (
                    m.name().to_string(),
                    json!({"code": code, "warning": warning}),
                )
            })
            .collect();
        meta.insert("metric_warnings".into(), Value::Object(warnings));
    }
    if !skipped.is_empty() {
        // Footfall's own: which goals a goal breakdown left out, and why.
        let goals: serde_json::Map<String, Value> = skipped
            .into_iter()
            .map(|(name, why)| (name, json!(why)))
            .collect();
        meta.insert("goals_skipped".into(), Value::Object(goals));
    }
    if q.imports_meta {
        let skipped = imports_skipped(store, site, q, tz, &span, policy).await?;
        meta.insert(
            "imports_included".into(),
            json!(q.imports && skipped.is_none()),
        );
        if let Some(reason) = skipped {
            meta.insert("imports_skip_reason".into(), json!(reason));
            let warning = match reason {
                "unsupported_query" => Some(
                    "Imported stats are not included: imported history answers questions \
                     without filters, broken down by at most one property it holds or by day, \
                     week or month.",
                ),
                "unsupported_interval" => Some(
                    "Imported stats are not included: imported history has whole days only, \
                     so break it down by day, week or month.",
                ),
                _ => None,
            };
            if let Some(w) = warning {
                meta.insert("imports_warning".into(), json!(w));
            }
        }
    }
    let mut query = json!({
        "site_id": site.domain,
        "metrics": q.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "date_range": range_label(&span, tz),
        "dimensions": q.dimensions.iter().map(Dimension::label).collect::<Vec<_>>(),
        "time_zone": tz.name(),
    });
    if let Some(c) = &compared {
        query["comparison_date_range"] = range_label(&c.span, tz);
    }
    Ok(json!({"results": results, "meta": meta, "query": query}))
}

#[cfg(test)]
mod money_tests {
    use super::money;
    use serde_json::json;

    #[test]
    fn money_reads_as_plausible_writes_it() {
        assert_eq!(
            money(96_336_315_000_000, "USD"),
            json!({"value": 96336315.0, "currency": "USD", "short": "$96.3M", "long": "$96,336,315.00"})
        );
        assert_eq!(money(1_234_500_000, "EUR")["long"], "€1,234.50");
        assert_eq!(money(1_234_500_000, "EUR")["short"], "€1.2K");
        assert_eq!(money(12_500_000, "EUR")["short"], "€12.5");
        assert_eq!(money(0, "DKK")["long"], "DKK 0.00");
        assert_eq!(money(1_500_000_000, "JPY")["long"], "¥1,500");
        assert_eq!(money(-2_000_000, "GBP")["long"], "-£2.00");
    }
}
