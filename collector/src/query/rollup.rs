//! Daily rollups and the planner that uses them.
//!
//! For every closed site-local day, [`compute_day`] stores the counts of the day's totals and
//! of every single property dimension (one row per value). Rows are anonymous and additive
//! across days (visitor hashes change daily), and a recomputation of a day writes the same
//! rows again, so it is idempotent.
//!
//! Each goal of the site gets a row too (dimension [`crate::goals::ROLLUP_DIMENSION`], value
//! its [`crate::goals::Goal::rollup_key`]), written even when nothing completed it, so that a
//! goal added later is counted on the days whose raw events still exist
//! ([`roll_up_closed_days`]) and a day without its row is known not to be counted.
//!
//! [`counts`] answers a query from rollups where they can: no filters, metrics among the
//! visit and event counts, at most one dimension that is a rolled-up property or
//! `time:day|week|month`; or one goal as the only filter, with conversion and revenue
//! metrics too, over the range or by day, week or month. Closed days with rollups come from rollups, the other days (today,
//! days not rolled up yet) from raw events. A question rollups cannot answer but whose
//! filters and dimensions are visit properties ([`visit_level`]) reads the closed days whose
//! visit rows are written from those rows (one per visit), the rest from raw events.
//! Anything else is answered from raw events, and a question that needs raw events from
//! before raw retention is refused with a message saying so ([`RunError::Purged`]) rather
//! than answered from partial data.
//!
//! Before a day's rollups, [`compute_day`] writes its visit rows ([`write_visits_of_day`]);
//! days rolled up before visit rows existed get them in a later round.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use chrono_tz::Tz;

use super::model::{
    COUNT_METRICS, DateRange, Dimension, Field, Metric, Property, Query, TimeBucket,
};
use super::run::{Counts, Policy, RunError, raw_counts};
use super::sql::{Sample, count_events, read_visits, visit_level, write_visits};
use super::time::{Span, bucket_start, local_midnight};
use crate::store::{Deadline, RollupRow, Site, Store};

/// What a rollup-answerable query reads.
pub(crate) enum Kind {
    /// Rows of one property dimension.
    Property(Property),
    /// The totals rows, grouped by nothing or by a time bucket.
    Totals(Option<TimeBucket>),
    /// The rows of one goal (by its rollup key), grouped by nothing or by a time bucket.
    Goal(String, Option<TimeBucket>),
}

/// What a goal's rows answer besides the counts: its conversion rates (the denominators are
/// the totals rows) and its revenue.
const GOAL_METRICS: [Metric; 4] = [
    Metric::ConversionRate,
    Metric::GroupConversionRate,
    Metric::TotalRevenue,
    Metric::AverageRevenue,
];

fn kind(q: &Query) -> Option<Kind> {
    let bucket = match q.dimensions.as_slice() {
        [] => Some(None),
        [Dimension::Time(TimeBucket::Hour)] => None,
        [Dimension::Time(b)] => Some(Some(*b)),
        _ => None,
    };
    if let (Some(key), [only], [goal]) = (
        &q.goal_key,
        q.filters.as_slice(),
        q.resolved_goals.as_slice(),
    ) && only == goal
        && q.metrics
            .iter()
            .all(|m| COUNT_METRICS.contains(m) || GOAL_METRICS.contains(m))
    {
        return bucket.map(|b| Kind::Goal(key.clone(), b));
    }
    if !q.filters.is_empty() || !q.metrics.iter().all(|m| COUNT_METRICS.contains(m)) {
        return None;
    }
    match q.dimensions.as_slice() {
        [Dimension::Field(Field::Column(p))] if p.rolled_up() => Some(Kind::Property(*p)),
        [Dimension::Field(_)] => None,
        _ => bucket.map(Kind::Totals),
    }
}

/// The first UTC instant whose raw events retention keeps.
pub(crate) fn raw_from(policy: &Policy) -> i64 {
    let today = policy.now.date_naive();
    let first = today
        .checked_sub_days(Days::new(u64::from(policy.raw_retention_days)))
        .unwrap_or(today);
    first
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp()
}

fn day_span(tz: Tz, first: NaiveDate, last: NaiveDate) -> Span {
    Span::days(tz, first, last)
}

/// Which closed days of `span` a tier other than raw events answers for `q`: found once per
/// question and span ([`tiers`]), then used both to choose the sample ([`rows_to_read`]) and
/// to count ([`counts`]).
pub(crate) enum Covered {
    /// Nothing: every day comes from raw events.
    Raw,
    /// These days' rollups (of this kind), and the imports whose rows fill the other closed
    /// days (`include.imports`).
    Rollups(Kind, BTreeSet<NaiveDate>, Vec<u32>),
    /// These days' visit rows.
    Visits(BTreeSet<NaiveDate>),
}

impl Covered {
    fn days(&self) -> Option<&BTreeSet<NaiveDate>> {
        match self {
            Covered::Raw => None,
            Covered::Rollups(_, days, _) | Covered::Visits(days) => Some(days),
        }
    }
}

/// The closed days of `span` (whole site-local days) that rollups or visit rows answer for
/// `q`; a partial span (part of a day) is read from raw events only.
pub(crate) async fn tiers(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    tz: Tz,
    span: &Span,
    policy: &Policy,
) -> Result<Covered, RunError> {
    if span.partial {
        return Ok(Covered::Raw);
    }
    let today = policy.now.with_timezone(&tz).date_naive();
    let closed_to = span.last_day.min(today - Days::new(1));
    if span.first_day > closed_to {
        return Ok(match kind(q) {
            Some(kind) => Covered::Rollups(kind, BTreeSet::new(), Vec::new()),
            None => Covered::Raw,
        });
    }
    if let Some(kind) = kind(q) {
        let days = match &kind {
            Kind::Goal(key, _) => goal_days(store, site.id, key, span.first_day, closed_to).await?,
            _ => store
                .rollup_days(site.id, span.first_day, closed_to)
                .await?
                .into_iter()
                .collect(),
        };
        let imports = if q.imports {
            answering_imports(store, site.id, &kind, span.first_day, closed_to).await?
        } else {
            Vec::new()
        };
        return Ok(Covered::Rollups(kind, days, imports));
    }
    if visit_level(q) {
        // Closed days whose visit rows are written: one row per visit instead of its events.
        let days = store.visit_days(site.id, span.first_day, closed_to).await?;
        return Ok(Covered::Visits(days.into_iter().collect()));
    }
    Ok(Covered::Raw)
}

/// The days of `[first, last]` whose rollups hold the goal with rollup key `key`.
async fn goal_days(
    store: &dyn Store,
    site_id: u32,
    key: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<BTreeSet<NaiveDate>, RunError> {
    Ok(store
        .read_rollups(site_id, crate::goals::ROLLUP_DIMENSION, first, last)
        .await?
        .into_iter()
        .filter(|r| r.value == key)
        .map(|r| r.day)
        .collect())
}

/// The complete imports of a site that hold rows of `kind` (totals, or the property) for some
/// day of `[first, last]`.
async fn answering_imports(
    store: &dyn Store,
    site_id: u32,
    kind: &Kind,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<u32>, RunError> {
    Ok(crate::import::plausible::imports_of(store, site_id, true)
        .await?
        .into_iter()
        .filter(|r| r.first_day <= last && r.last_day >= first)
        .filter(|r| match kind {
            Kind::Totals(_) => true,
            Kind::Property(p) => r.dimensions.iter().any(|d| d == p.name()),
            // Imported history has no goals.
            Kind::Goal(..) => false,
        })
        .map(|r| r.id)
        .collect())
}

/// Why imported history cannot answer `q` over `span` (Plausible's `imports_skip_reason`), or
/// `None` when it is added to the answer.
pub(crate) async fn imports_skipped(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    tz: Tz,
    span: &Span,
    policy: &Policy,
) -> Result<Option<&'static str>, RunError> {
    let all = crate::import::plausible::imports_of(store, site.id, true).await?;
    if all.is_empty() {
        return Ok(Some("no_imported_data"));
    }
    let today = policy.now.with_timezone(&tz).date_naive();
    let closed_to = span.last_day.min(today - Days::new(1));
    let in_range: Vec<_> = all
        .iter()
        .filter(|r| !span.partial && r.first_day <= closed_to && r.last_day >= span.first_day)
        .collect();
    if in_range.is_empty() {
        return Ok(Some("out_of_range"));
    }
    if q.dimensions.contains(&Dimension::Time(TimeBucket::Hour)) {
        return Ok(Some("unsupported_interval"));
    }
    Ok(match kind(q) {
        None | Some(Kind::Goal(..)) => Some("unsupported_query"),
        Some(Kind::Property(p))
            if !in_range
                .iter()
                .any(|r| r.dimensions.iter().any(|d| d == p.name())) =>
        {
            Some("unsupported_query")
        }
        Some(_) => None,
    })
}

/// The runs of consecutive days of `span` that `covered` leaves to raw events, each as a span
/// of whole site-local days.
fn raw_runs(tz: Tz, span: &Span, covered: &Covered) -> Vec<Span> {
    let none = BTreeSet::new();
    runs_outside(tz, span, covered.days().unwrap_or(&none))
}

/// The runs of consecutive days of `span` not in `covered`, each as a span of whole
/// site-local days.
fn runs_outside(tz: Tz, span: &Span, covered: &BTreeSet<NaiveDate>) -> Vec<Span> {
    let mut runs = Vec::new();
    let mut day = span.first_day;
    while day <= span.last_day {
        if covered.contains(&day) {
            day = day + Days::new(1);
            continue;
        }
        let first = day;
        while day + Days::new(1) <= span.last_day && !covered.contains(&(day + Days::new(1))) {
            day = day + Days::new(1);
        }
        runs.push(day_span(tz, first, day));
        day = day + Days::new(1);
    }
    runs
}

/// How many raw events a site has with `from <= timestamp < to`.
pub(crate) async fn events_between(
    store: &dyn Store,
    site_id: u32,
    from: i64,
    to: i64,
    deadline: Deadline,
) -> Result<u64, RunError> {
    let statement = count_events(store.dialect(), site_id, from, to);
    let rows = store.run_statement(&statement, 0, 1, deadline).await?;
    Ok(rows
        .first()
        .and_then(|(_, v)| v.first())
        .map_or(0, |n| u64::try_from(*n).unwrap_or(0)))
}

/// How many rows answering `q` over `span` reads where rollups do not answer it: a visit
/// row per visit of the days visit rows answer, an event per event of the days left to raw
/// events. What sampling is chosen by, so it costs little: a closed day's totals rollup
/// stands in for counting its rows (visits, events), and only days without one (today) are
/// counted. At 100 million events a count over 30 days took 0.46 s on one ClickHouse
/// node; today's alone takes a thirtieth of that.
pub(crate) async fn rows_to_read(
    store: &dyn Store,
    site: &Site,
    tz: Tz,
    span: &Span,
    policy: &Policy,
    covered: &Covered,
) -> Result<u64, RunError> {
    if span.partial {
        return events_between(store, site.id, span.from, span.to, policy.deadline).await;
    }
    let totals: BTreeMap<NaiveDate, RollupRow> = store
        .read_rollups(site.id, "", span.first_day, span.last_day)
        .await?
        .into_iter()
        .map(|row| (row.day, row))
        .collect();
    let mut rows = 0u64;
    if let Covered::Visits(days) = covered {
        for day in days {
            let visits = totals.get(day).map_or(0, |row| row.visits);
            rows = rows.saturating_add(visits);
        }
    }
    let raw_from = raw_from(policy);
    for run in raw_runs(tz, span, covered) {
        // Closed days whose raw events are kept and whose totals are rolled up.
        let mut known = BTreeSet::new();
        for (day, row) in totals.range(run.first_day..=run.last_day) {
            if day_span(tz, *day, *day).from >= raw_from {
                rows = rows.saturating_add(row.events);
                known.insert(*day);
            }
        }
        for rest in runs_outside(tz, &run, &known) {
            let from = rest.from.max(raw_from);
            if from < rest.to {
                let n = events_between(store, site.id, from, rest.to, policy.deadline).await?;
                rows = rows.saturating_add(n);
            }
        }
    }
    Ok(rows)
}

/// Counts of `q` over `span` (whole site-local days), from rollups where they answer; what
/// raw events and visit rows give counts the visitors in `sample`, scaled up. `covered` is
/// [`tiers`]' answer for `q` and `span`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn counts(
    store: &dyn Store,
    site: &Site,
    q: &Query,
    tz: Tz,
    span: &Span,
    policy: &Policy,
    sample: Sample,
    covered: &Covered,
) -> Result<BTreeMap<Vec<String>, Counts>, RunError> {
    if span.partial {
        // Part of a day: only raw events know the time of each visit.
        if span.from < raw_from(policy) {
            return Err(RunError::Purged(format!(
                "this question needs raw events from {}, but raw events are kept for {} days",
                span.first_day, policy.raw_retention_days
            )));
        }
        return raw_counts(store, site.id, q, tz, span, policy.deadline, sample).await;
    }
    let today = policy.now.with_timezone(&tz).date_naive();
    let closed_to = span.last_day.min(today - Days::new(1));
    let mut out: BTreeMap<Vec<String>, Counts> = BTreeMap::new();
    match covered {
        Covered::Raw => {}
        Covered::Visits(days) => {
            if let (Some(first), Some(last)) = (days.first(), days.last()) {
                let found =
                    visit_counts(store, site.id, q, *first, *last, policy.deadline, sample).await?;
                for (key, c) in found {
                    out.entry(key).or_default().add(&c);
                }
            }
        }
        Covered::Rollups(kind, days, imports) => {
            let dimension = match kind {
                Kind::Property(p) => p.name(),
                Kind::Totals(_) => "",
                Kind::Goal(..) => crate::goals::ROLLUP_DIMENSION,
            };
            let mut rows = Vec::new();
            if !days.is_empty() {
                for row in store
                    .read_rollups(site.id, dimension, span.first_day, closed_to)
                    .await?
                {
                    let wanted = match kind {
                        Kind::Goal(key, _) => row.value == *key,
                        _ => true,
                    };
                    if wanted && days.contains(&row.day) {
                        rows.push(row);
                    }
                }
            }
            if let Kind::Goal(_, bucket) = kind
                && q.metrics.contains(&Metric::GroupConversionRate)
                && !days.is_empty()
            {
                // A goal's group is a time bucket (or the range): its own visitors are the
                // totals rows' of its days.
                for row in store
                    .read_rollups(site.id, "", span.first_day, closed_to)
                    .await?
                {
                    if days.contains(&row.day) {
                        let key = bucket.map(|b| bucket_start(b, row.day).to_string());
                        let base = Counts {
                            goal_base: counts_of(&row).visitors,
                            ..Counts::default()
                        };
                        out.entry(key.into_iter().collect()).or_default().add(&base);
                    }
                }
            }
            // Imported history fills the closed days without native data: every closed day
            // within raw retention has a totals row, so a day counts as native when its
            // totals row holds events.
            let native: BTreeSet<NaiveDate> = if imports.is_empty() {
                BTreeSet::new()
            } else {
                store
                    .read_rollups(site.id, "", span.first_day, closed_to)
                    .await?
                    .into_iter()
                    .filter(|r| r.events > 0 || r.visitors > 0)
                    .map(|r| r.day)
                    .collect()
            };
            for id in imports {
                for row in store
                    .read_rollups(*id, dimension, span.first_day, closed_to)
                    .await?
                {
                    if !native.contains(&row.day) {
                        rows.push(row);
                    }
                }
            }
            for row in rows {
                let key = match kind {
                    Kind::Property(_) => vec![row.value.clone()],
                    Kind::Totals(None) | Kind::Goal(_, None) => Vec::new(),
                    Kind::Totals(Some(b)) | Kind::Goal(_, Some(b)) => {
                        vec![bucket_start(*b, row.day).to_string()]
                    }
                };
                out.entry(key).or_default().add(&counts_of(&row));
            }
        }
    }
    // The days the other tiers did not answer, in runs of consecutive days, from raw events.
    let raw_from = raw_from(policy);
    for run in raw_runs(tz, span, covered) {
        let mut run = run;
        if run.from < raw_from {
            // The run's days before raw retention.
            let mut first_kept = run.first_day;
            while first_kept <= run.last_day && day_span(tz, first_kept, first_kept).from < raw_from
            {
                first_kept = first_kept + Days::new(1);
            }
            let purged = day_span(tz, run.first_day, first_kept - Days::new(1));
            unanswered_before_retention(store, site, &purged, covered, policy).await?;
            if first_kept > run.last_day {
                continue;
            }
            run = day_span(tz, first_kept, run.last_day);
        }
        let found = raw_counts(store, site.id, q, tz, &run, policy.deadline, sample).await?;
        for (key, c) in found {
            out.entry(key).or_default().add(&c);
        }
    }
    Ok(out)
}

/// Checks days before raw retention (`purged`) that no tier answers: with rollups of the
/// question's kind, every closed day within retention got them (empty days too), so such a day is
/// a day before any data and counts nothing, except a day with events rolled up before a goal
/// was added, which holds the day's totals but not the goal. Anything else needs the raw
/// events that retention removed.
async fn unanswered_before_retention(
    store: &dyn Store,
    site: &Site,
    purged: &Span,
    covered: &Covered,
    policy: &Policy,
) -> Result<(), RunError> {
    match covered {
        Covered::Rollups(Kind::Goal(..), ..) => {
            // A day without a single event completed no goal, whenever the goal was added.
            let busy: BTreeSet<NaiveDate> = store
                .read_rollups(site.id, "", purged.first_day, purged.last_day)
                .await?
                .into_iter()
                .filter(|row| row.events > 0)
                .map(|row| row.day)
                .collect();
            let rolled = store
                .rollup_days(site.id, purged.first_day, purged.last_day)
                .await?;
            match rolled.iter().find(|day| busy.contains(day)) {
                None => Ok(()),
                Some(day) => Err(RunError::Purged(format!(
                    "this goal has no daily rollups for {day}: it was added after that day's raw events were purged (they are kept for {} days), so its conversions on that day are unknown",
                    policy.raw_retention_days
                ))),
            }
        }
        Covered::Rollups(..) => Ok(()),
        _ => Err(RunError::Purged(format!(
            "this question needs raw events from {}, but raw events are kept for {} days; \
             daily rollups answer ranges without filters (or with one goal), broken down by at most one property or by day, week or month",
            purged.first_day, policy.raw_retention_days
        ))),
    }
}

/// Counts of a visit-level query (see [`visit_level`]) over the days `first..=last` from the
/// visit rows, keyed as raw counts are: time buckets labelled from each row's day.
async fn visit_counts(
    store: &dyn Store,
    site_id: u32,
    q: &Query,
    first: NaiveDate,
    last: NaiveDate,
    deadline: Deadline,
    sample: Sample,
) -> Result<BTreeMap<Vec<String>, Counts>, RunError> {
    let statement = read_visits(store.dialect(), sample, q, site_id, first, last);
    let fields = q
        .dimensions
        .iter()
        .filter(|d| matches!(d, Dimension::Field(_)))
        .count();
    let mut out: BTreeMap<Vec<String>, Counts> = BTreeMap::new();
    for (texts, v) in store.run_statement(&statement, fields, 7, deadline).await? {
        let day = crate::store::date_of(v[0]);
        let mut texts = texts.into_iter();
        let key = q
            .dimensions
            .iter()
            .map(|d| match d {
                Dimension::Time(b) => bucket_start(*b, day).to_string(),
                Dimension::Field(_) => texts.next().unwrap_or_default(),
            })
            .collect();
        let c = Counts {
            visitors: v[1],
            pageviews: v[2],
            events: v[3],
            visits: v[4],
            bounces: v[5],
            duration: v[6],
            ..Counts::default()
        };
        out.entry(key).or_default().add(&c.scaled(sample.divisor));
    }
    Ok(out)
}

/// A rollup row holding `c` (negative counts, which no count is, as 0).
pub(crate) fn rollup_row(
    site_id: u32,
    day: NaiveDate,
    dimension: &str,
    value: String,
    c: &Counts,
) -> RollupRow {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    RollupRow {
        site_id,
        day,
        dimension: dimension.to_string(),
        value,
        visitors: u(c.visitors),
        visits: u(c.visits),
        pageviews: u(c.pageviews),
        events: u(c.events),
        bounces: u(c.bounces),
        duration: u(c.duration),
        revenue_micros: c.revenue_micros,
        revenue_events: u(c.revenue_events),
    }
}

pub(crate) fn counts_of(row: &RollupRow) -> Counts {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Counts {
        visitors: i(row.visitors),
        visits: i(row.visits),
        pageviews: i(row.pageviews),
        events: i(row.events),
        bounces: i(row.bounces),
        duration: i(row.duration),
        revenue_micros: row.revenue_micros,
        revenue_events: i(row.revenue_events),
        ..Counts::default()
    }
}

/// The metrics a day's rollup rows hold (a goal's row adds its revenue).
pub(crate) const ROLLED_UP: [Metric; 6] = [
    Metric::Visitors,
    Metric::Visits,
    Metric::Pageviews,
    Metric::Events,
    Metric::BounceRate,
    Metric::VisitDuration,
];

/// How long the statements that roll up one day may take together: a day is read once, in
/// the background, so it may take far longer than a visitor's question.
pub const ROLLUP_DAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Computes and stores the rollups of one site-local day; returns the rows written.
pub async fn compute_day(
    store: &dyn Store,
    site: &Site,
    tz: Tz,
    day: NaiveDate,
) -> Result<usize, RunError> {
    let deadline = Deadline::after(ROLLUP_DAY_TIMEOUT);
    let span = day_span(tz, day, day);
    let mut q = Query::internal(
        &site.domain,
        vec![Metric::Visitors, Metric::Visits],
        DateRange::Custom(day, day),
    );
    let row =
        |dimension: &str, value: String, c: &Counts| rollup_row(site.id, day, dimension, value, c);
    write_visits_of_day(store, site, tz, day).await?;
    // The day's visit rows answer the totals and every visit property exactly as its raw
    // events do (tests/tests/visit_rows.rs), with a row per visit instead of its events.
    let mut rows = Vec::new();
    let totals = visit_counts(store, site.id, &q, day, day, deadline, Sample::EXACT).await?;
    rows.push(row(
        "",
        String::new(),
        &totals.values().next().copied().unwrap_or_default(),
    ));
    for (_, p) in Property::ALL.into_iter().filter(|(_, p)| p.rolled_up()) {
        q.dimensions = vec![Dimension::Field(Field::Column(p))];
        let counts = if p.per_visit() {
            visit_counts(store, site.id, &q, day, day, deadline, Sample::EXACT).await?
        } else {
            raw_counts(store, site.id, &q, tz, &span, deadline, Sample::EXACT).await?
        };
        for (key, c) in counts {
            if c.events > 0 {
                rows.push(row(
                    p.name(),
                    key.into_iter().next().unwrap_or_default(),
                    &c,
                ));
            }
        }
    }
    let goals = crate::goals::goals_of(store, site.id).await?;
    rows.extend(goal_rows(store, site, tz, day, &goals).await?);
    store.put_rollups(&rows).await?;
    Ok(rows.len())
}

/// The rollup rows of `goals` for one site-local day, from its raw events: one per goal,
/// also when nothing completed it (a goal's row marks the day as counted for it).
async fn goal_rows(
    store: &dyn Store,
    site: &Site,
    tz: Tz,
    day: NaiveDate,
    goals: &[crate::goals::Goal],
) -> Result<Vec<RollupRow>, RunError> {
    let deadline = Deadline::after(ROLLUP_DAY_TIMEOUT);
    let span = day_span(tz, day, day);
    let mut rows = Vec::new();
    for goal in goals {
        let filter = goal.filter();
        let q = Query {
            filters: vec![filter.clone()],
            resolved_goals: vec![filter],
            revenue_currency: goal.currency.clone(),
            ..Query::internal(
                &site.domain,
                [&ROLLED_UP[..], &[Metric::TotalRevenue]].concat(),
                DateRange::Custom(day, day),
            )
        };
        let mut c = Counts::default();
        for found in raw_counts(store, site.id, &q, tz, &span, deadline, Sample::EXACT)
            .await?
            .values()
        {
            c.add(found);
        }
        rows.push(rollup_row(
            site.id,
            day,
            crate::goals::ROLLUP_DIMENSION,
            goal.rollup_key(),
            &c,
        ));
    }
    Ok(rows)
}

/// Writes the visit rows of one site-local day from its raw events.
pub async fn write_visits_of_day(
    store: &dyn Store,
    site: &Site,
    tz: Tz,
    day: NaiveDate,
) -> Result<(), RunError> {
    let span = day_span(tz, day, day);
    // Microseconds: each write of a day is newer than the one before.
    let version = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    let insert = write_visits(store.dialect(), site.id, &span, version);
    store.put_visits(site.id, day, version, &insert).await?;
    Ok(())
}

/// Rolls up the closed days of every site that have no rollups yet, from the day of the
/// site's earliest raw event (or the start of raw retention) to yesterday, at most `max_days`
/// days per site per call; returns the number of days rolled up. A day whose start is before
/// the earliest raw event's UTC day may have lost events to retention and is left alone.
pub async fn roll_up_closed_days(
    store: &dyn Store,
    policy: &Policy,
    max_days: usize,
) -> Result<usize, RunError> {
    let mut done = 0;
    let mut written = BTreeSet::new();
    for site in store.meta().sites().await? {
        let Ok(tz) = site.timezone.parse::<Tz>() else {
            continue;
        };
        let today = policy.now.with_timezone(&tz).date_naive();
        let yesterday = today - Days::new(1);
        let earliest = store.earliest_event(site.id).await?.map(i64::from);
        let complete_from = match earliest {
            Some(ts) => ts - ts.rem_euclid(86_400),
            None => raw_from(policy),
        };
        let first = match earliest {
            Some(ts) => chrono::DateTime::from_timestamp(ts, 0)
                .unwrap_or_default()
                .with_timezone(&tz)
                .date_naive(),
            None => today - Days::new(u64::from(policy.raw_retention_days) + 1),
        };
        let have: BTreeSet<NaiveDate> = store
            .rollup_days(site.id, first, yesterday)
            .await?
            .into_iter()
            .collect();
        // Days rolled up before visit rows existed get them while their raw events last.
        let visits: BTreeSet<NaiveDate> = store
            .visit_days(site.id, first, yesterday)
            .await?
            .into_iter()
            .collect();
        // Goals added after a day was rolled up are counted on it while its raw events last.
        let goals: Vec<(crate::goals::Goal, String)> = crate::goals::goals_of(store, site.id)
            .await?
            .into_iter()
            .map(|g| {
                let key = g.rollup_key();
                (g, key)
            })
            .collect();
        let mut counted: BTreeMap<NaiveDate, BTreeSet<String>> = BTreeMap::new();
        if !goals.is_empty() {
            for row in store
                .read_rollups(site.id, crate::goals::ROLLUP_DIMENSION, first, yesterday)
                .await?
            {
                counted.entry(row.day).or_default().insert(row.value);
            }
        }
        let mut day = first;
        let mut count = 0;
        while day <= yesterday && count < max_days {
            if local_midnight(tz, day) >= complete_from {
                let missing: Vec<crate::goals::Goal> = goals
                    .iter()
                    .filter(|(_, key)| !counted.get(&day).is_some_and(|c| c.contains(key)))
                    .map(|(g, _)| g.clone())
                    .collect();
                if !have.contains(&day) {
                    compute_day(store, &site, tz, day).await?;
                    written.insert(day);
                    count += 1;
                } else {
                    let mut done_now = false;
                    if !visits.contains(&day) {
                        write_visits_of_day(store, &site, tz, day).await?;
                        written.insert(day);
                        done_now = true;
                    }
                    if !missing.is_empty() {
                        let rows = goal_rows(store, &site, tz, day, &missing).await?;
                        store.put_rollups(&rows).await?;
                        done_now = true;
                    }
                    count += usize::from(done_now);
                }
            }
            day = day + Days::new(1);
        }
        done += count;
    }
    let written: Vec<NaiveDate> = written.into_iter().collect();
    store.visit_days_written(&written).await?;
    Ok(done)
}
