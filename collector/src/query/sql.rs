//! SQL for a validated [`Query`], in the dialect of each store.
//!
//! A query becomes two statements over the raw events of one site and range:
//! - **event level**: per group of dimension values, distinct visitors, pageviews, events;
//! - **session level**: per group, the visits, bounces (a visit of exactly one pageview) and
//!   summed durations, from a subquery that first folds each group's events per session.
//!
//! Engagement events are left out of these metrics. Every value (site, instants, time zone,
//! offsets, filter values) is a bind parameter; the SQL text is made only from this module's
//! own fragments and the fixed column names of [`super::model::Property::column`].

use chrono_tz::Tz;

use super::model::{Dimension, Field, Filter, Op, Property, Query, TimeBucket};
use super::time::{Span, offsets};

pub use crate::store::statement::{Bind, Dialect, Statement};

/// Which visitors a statement counts: all of them, or one in `divisor`, chosen by the
/// visitor hash (`0 <= visitor_id <= u64::MAX / divisor`). A visitor is in or out of the
/// sample with all of their events and visits, so per-visit figures (bounces, durations,
/// entry and exit pages) stay whole; counts are multiplied by `divisor` afterwards. Hashes are
/// uniform, so the sample is an even slice of the day's visitors; the bound is below 2^63,
/// so the same condition holds where a store keeps the hash as a signed integer (SQLite).
/// On ClickHouse the events are sorted by hash within each site and day, and the condition
/// narrows the granules read the way `SAMPLE` does, on 18.16 and current releases alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub divisor: u32,
}

impl Sample {
    /// Every visitor.
    pub const EXACT: Sample = Sample { divisor: 1 };
    /// The divisors offered, so that a rate reads as a round percentage.
    pub const DIVISORS: [u32; 10] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

    /// The share of visitors counted, as the answer's `meta.sample_rate` states it.
    pub fn rate(self) -> f64 {
        1.0 / f64::from(self.divisor.max(1))
    }

    /// The smallest offered divisor that brings `rows` within `threshold` (the largest when
    /// none does); exact when `threshold` is 0 (sampling off) or `rows` is within it.
    pub fn for_rows(rows: u64, threshold: u64) -> Sample {
        if threshold == 0 {
            return Sample::EXACT;
        }
        let divisor = Sample::DIVISORS
            .into_iter()
            .find(|d| rows.div_ceil(u64::from(*d)) <= threshold)
            .unwrap_or(1000);
        Sample { divisor }
    }

    /// The highest hash in the sample; `None` when every visitor counts.
    fn bound(self) -> Option<i64> {
        (self.divisor > 1)
            .then(|| i64::try_from(u64::MAX / u64::from(self.divisor)).unwrap_or(i64::MAX))
    }
}

/// What a query runs: the dimension columns come first in every statement's rows, then the
/// site-local day, then the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `d0.., visitors, pageviews, events`
    pub events: Statement,
    /// `d0.., visits, bounces, duration`; `None` when no metric needs sessions.
    pub sessions: Option<Statement>,
    /// Per group, the visitors without the goal filters, for `group_conversion_rate`
    /// (`d0.., visitors, pageviews, events`).
    pub goal_base: Option<Statement>,
    /// `d0.., engaged_ms, engaged_visitors, scroll_sum, scrolled_visitors` from engagement
    /// events, for `time_on_page` and `scroll_depth`.
    pub engagement: Option<Statement>,
    /// `d0.., revenue, revenue_events`: millionths of the query's revenue currency and the
    /// events that carry them, for `total_revenue` and `average_revenue`.
    pub revenue: Option<Statement>,
}

struct Builder {
    dialect: Dialect,
    /// The site the statement reads (for subqueries that need it again).
    site_id: u32,
    binds: Vec<Bind>,
    /// The statement's UTC range, for subqueries that need it again.
    range: (i64, i64),
    /// Whether the statement reads the visit rows, where every visit property (the exit page
    /// too) is a column.
    visits: bool,
    /// The visitors it counts.
    sample: Sample,
}

/// Whether a filter reads a property found per visit from its pageviews (`visit:exit_page`,
/// `visit:entry_page_hostname`, `visit:exit_page_hostname`).
fn reads_exit_page(f: &Filter) -> bool {
    match f {
        Filter::Match { field, .. } => matches!(field, Field::Column(p) if p.joined()),
        Filter::And(l) | Filter::Or(l) => l.iter().any(reads_exit_page),
        Filter::Not(f) => reads_exit_page(f),
        // Its inner filter reads the events of its own subquery.
        Filter::Behaviour { .. } | Filter::Scrolled { .. } => false,
    }
}

/// The lowest scroll that a [`Filter::Scrolled`] among `filters` asks for (those inside
/// `has_done` read their own subquery's events): the engagement events a statement with
/// these filters reads besides the counted ones.
fn scroll_floor<'a>(filters: impl IntoIterator<Item = &'a Filter>) -> Option<u8> {
    fn walk(f: &Filter, floor: &mut Option<u8>) {
        match f {
            Filter::Scrolled { at_least } => {
                *floor = Some(floor.map_or(*at_least, |n| n.min(*at_least)));
            }
            Filter::And(l) | Filter::Or(l) => l.iter().for_each(|f| walk(f, floor)),
            Filter::Not(f) => walk(f, floor),
            Filter::Match { .. } | Filter::Behaviour { .. } => {}
        }
    }
    let mut floor = None;
    filters.into_iter().for_each(|f| walk(f, &mut floor));
    floor
}

/// Whether a query reads a property found per visit (see [`reads_exit_page`]), which needs
/// the per-visit join.
fn uses_exit_page(q: &Query) -> bool {
    q.dimensions
        .iter()
        .any(|d| matches!(d, Dimension::Field(Field::Column(p)) if p.joined()))
        || q.filters.iter().any(reads_exit_page)
}

impl Builder {
    fn new(
        dialect: Dialect,
        site_id: u32,
        range: (i64, i64),
        visits: bool,
        sample: Sample,
    ) -> Builder {
        Builder {
            dialect,
            site_id,
            binds: Vec::new(),
            range,
            visits,
            sample,
        }
    }

    fn bind(&mut self, b: Bind) -> &'static str {
        self.binds.push(b);
        "?"
    }

    fn text(&mut self, s: &str) -> &'static str {
        self.bind(Bind::Text(s.to_string()))
    }

    fn int(&mut self, n: i64) -> &'static str {
        self.bind(Bind::Int(n))
    }

    /// ` AND` the sample's hash range, or nothing when every visitor counts.
    fn sampled(&mut self) -> String {
        match self.sample.bound() {
            Some(bound) => {
                let bound = self.int(bound);
                format!(" AND visitor_id >= 0 AND visitor_id <= {bound}")
            }
            None => String::new(),
        }
    }

    fn instant(&mut self, ts: i64) -> String {
        match self.dialect {
            Dialect::Sqlite | Dialect::DuckDb => self.int(ts).to_string(),
            Dialect::ClickHouse => format!("toDateTime({})", self.int(ts)),
        }
    }

    /// The expression reading a field: a column, or a custom property's value.
    fn field(&mut self, f: &Field) -> String {
        match f {
            Field::Column(p) if self.visits => p.column().to_string(),
            Field::Column(Property::ExitPage) if self.dialect == Dialect::Sqlite => {
                // The visit's last pageview in the range, found through the session index
                // (named: SQLite's planner would otherwise scan the day per row).
                let (from, to) = self.range;
                let (from, to) = (self.int(from), self.int(to));
                format!(
                    "coalesce((SELECT x.pathname FROM events x INDEXED BY events_site_session WHERE x.site_id = events.site_id AND x.session_id = events.session_id AND x.name = 'pageview' AND x.timestamp >= {from} AND x.timestamp < {to} ORDER BY x.timestamp DESC, x.pathname DESC LIMIT 1), '')"
                )
            }
            // The host of the visit's first or last pageview in the range, found the same way.
            Field::Column(p @ (Property::EntryHostname | Property::ExitHostname))
                if self.dialect == Dialect::Sqlite =>
            {
                let (from, to) = self.range;
                let (from, to) = (self.int(from), self.int(to));
                let order = if *p == Property::EntryHostname {
                    "ASC"
                } else {
                    "DESC"
                };
                format!(
                    "coalesce((SELECT x.hostname FROM events x INDEXED BY events_site_session WHERE x.site_id = events.site_id AND x.session_id = events.session_id AND x.name = 'pageview' AND x.timestamp >= {from} AND x.timestamp < {to} ORDER BY x.timestamp {order}, x.pathname {order} LIMIT 1), '')"
                )
            }
            // A visit without a pageview in the range has no row in the joined exits.
            Field::Column(p) if p.joined() && self.dialect == Dialect::DuckDb => {
                format!("coalesce({}, '')", p.column())
            }
            Field::Column(p) => p.column().to_string(),
            // Resolved into filters before any statement is built; never a value here.
            Field::Goal => "''".to_string(),
            Field::Prop(key) => {
                let k = self.text(key);
                match self.dialect {
                    Dialect::ClickHouse => format!("props_values[indexOf(props_keys, {k})]"),
                    Dialect::DuckDb => {
                        format!("coalesce(props_values[list_position(props_keys, {k})], '')")
                    }
                    Dialect::Sqlite => format!(
                        "coalesce((SELECT v.value FROM json_each(props_values) v JOIN json_each(props_keys) k ON k.key = v.key WHERE k.value = {k} LIMIT 1), '')"
                    ),
                }
            }
        }
    }

    fn dimension(&mut self, d: &Dimension, tz: Tz, span: &Span) -> String {
        let bucket = match d {
            Dimension::Field(f) => return self.field(f),
            Dimension::Time(b) => *b,
        };
        match self.dialect {
            Dialect::ClickHouse => {
                let f = match bucket {
                    TimeBucket::Hour => "toStartOfHour",
                    TimeBucket::Day => "toDate",
                    TimeBucket::Week => "toMonday",
                    TimeBucket::Month => "toStartOfMonth",
                };
                format!("toString({f}(timestamp, {}))", self.text(tz.name()))
            }
            Dialect::Sqlite | Dialect::DuckDb => {
                // Local seconds: UTC seconds plus the zone's offset in force at that instant.
                let pieces = offsets(tz, span.from, span.to);
                let mut local = String::from("(timestamp + CASE");
                for (since, offset) in pieces.iter().rev() {
                    local.push_str(&format!(
                        " WHEN timestamp >= {} THEN {}",
                        self.int(*since),
                        self.int(i64::from(*offset))
                    ));
                }
                local.push_str(&format!(" ELSE {} END)", self.int(i64::from(pieces[0].1))));
                if self.dialect == Dialect::DuckDb {
                    // A whole number per bucket, formatted only after grouping
                    // ([`duckdb_labels`]): formatting every row cost half the dashboard's time.
                    return match bucket {
                        TimeBucket::Hour => format!("({local}) // 3600"),
                        // Monday-based weeks (1970-01-01 was a Thursday).
                        TimeBucket::Week => format!("(({local}) // 86400 + 3) // 7"),
                        // A month is labelled from its day: every plan also groups by day, so
                        // grouping by the day here splits no group further.
                        TimeBucket::Day | TimeBucket::Month => format!("({local}) // 86400"),
                    };
                }
                match bucket {
                    TimeBucket::Hour => {
                        format!("strftime('%Y-%m-%d %H:00:00', {local}, 'unixepoch')")
                    }
                    TimeBucket::Day => format!("strftime('%Y-%m-%d', {local}, 'unixepoch')"),
                    TimeBucket::Week => {
                        format!("date({local}, 'unixepoch', '-6 days', 'weekday 1')")
                    }
                    TimeBucket::Month => format!("strftime('%Y-%m-01', {local}, 'unixepoch')"),
                }
            }
        }
    }

    fn contains(&mut self, column: &str, value: &str) -> String {
        let v = self.text(value);
        match self.dialect {
            Dialect::Sqlite => format!("instr({column}, {v}) > 0"),
            Dialect::DuckDb => format!("contains({column}, {v})"),
            Dialect::ClickHouse => format!("position({column}, {v}) > 0"),
        }
    }

    fn filter(&mut self, f: &Filter) -> String {
        match f {
            Filter::Match { op, field, values } => self.matching(*op, field, values),
            Filter::And(list) => self.join(list, " AND "),
            Filter::Or(list) => self.join(list, " OR "),
            Filter::Not(inner) => format!("NOT ({})", self.filter(inner)),
            Filter::Scrolled { at_least } => {
                let n = self.int(i64::from(*at_least));
                format!("name = 'engagement' AND scroll_depth >= {n} AND scroll_depth <= 100")
            }
            Filter::Behaviour { done, inner } => {
                // The visits of the range with such an event (no sample: the visit decides).
                let (from, to) = self.range;
                let site = self.int(i64::from(self.site_id));
                let (from, to) = (self.instant(from), self.instant(to));
                let visits = self.visits;
                self.visits = false;
                let counted = self.counted(scroll_floor([inner.as_ref()]));
                let cond = self.filter(inner);
                self.visits = visits;
                let not = if *done { "" } else { "NOT " };
                format!(
                    "session_id {not}IN (SELECT session_id FROM events WHERE site_id = {site} AND timestamp >= {from} AND timestamp < {to} AND {counted} AND ({cond}))"
                )
            }
        }
    }

    fn join(&mut self, list: &[Filter], sep: &str) -> String {
        let parts: Vec<String> = list
            .iter()
            .map(|f| format!("({})", self.filter(f)))
            .collect();
        parts.join(sep)
    }

    fn regex(&mut self, expr: &str, pattern: &str) -> String {
        let p = self.text(pattern);
        match self.dialect {
            Dialect::Sqlite => format!("{expr} REGEXP {p}"),
            Dialect::DuckDb => format!("regexp_matches({expr}, {p})"),
            Dialect::ClickHouse => format!("match({expr}, {p})"),
        }
    }

    fn matching(&mut self, op: Op, field: &Field, values: &[String]) -> String {
        let not = matches!(op, Op::IsNot | Op::ContainsNot | Op::MatchesNot);
        if matches!(op, Op::Is | Op::IsNot) {
            let expr = self.field(field);
            let marks: Vec<&str> = values.iter().map(|v| self.text(v)).collect();
            let not = if not { "NOT " } else { "" };
            return format!("{expr} {not}IN ({})", marks.join(", "));
        }
        let mut any = Vec::new();
        for v in values {
            let expr = self.field(field);
            any.push(match op {
                Op::Contains | Op::ContainsNot => self.contains(&expr, v),
                _ => self.regex(&expr, v),
            });
        }
        let any = any.join(" OR ");
        if not {
            format!("NOT ({any})")
        } else {
            format!("({any})")
        }
    }

    /// The rows a statement reads: the events, with each visit's exit page (its last
    /// pageview in the range) joined in when a ClickHouse query reads it (SQLite finds it per
    /// row through its session index instead; see [`Builder::field`]).
    ///
    /// DuckDB, when filters that do not read the exit page narrow the rows, looks for the
    /// exits of the matching visits only (`session_id IN (…)`): the filtered dashboard at 10
    /// million events took twice as long with every visit's exit.
    fn from(
        &mut self,
        exit_page: bool,
        site_id: u32,
        span: &Span,
        filters: &[&Filter],
        engagement: bool,
    ) -> String {
        if !exit_page || self.dialect == Dialect::Sqlite {
            return "events".into();
        }
        let site = self.int(i64::from(site_id));
        let from = self.instant(span.from);
        let to = self.instant(span.to);
        let sampled = self.sampled();
        let mut visits = format!(
            "site_id = {site} AND timestamp >= {from} AND timestamp < {to} AND name = 'pageview'{sampled}"
        );
        let narrowing = !filters.is_empty() && !filters.iter().any(|f| reads_exit_page(f));
        if self.dialect == Dialect::DuckDb && narrowing {
            let matching = self.where_clause(site_id, span, filters, engagement);
            visits.push_str(&format!(
                " AND session_id IN (SELECT session_id FROM events {matching})"
            ));
        }
        match self.dialect {
            Dialect::DuckDb => format!(
                "events LEFT JOIN (SELECT session_id, max({{'t': timestamp, 'p': pathname}}).p AS exit_page, max({{'t': timestamp, 'p': pathname, 'h': hostname}}).h AS exit_hostname, min({{'t': timestamp, 'p': pathname, 'h': hostname}}).h AS entry_hostname FROM events WHERE {visits} GROUP BY session_id) AS exits USING (session_id)"
            ),
            _ => format!(
                "events ANY LEFT JOIN (SELECT session_id, argMax(pathname, (timestamp, pathname)) AS exit_page, argMax(hostname, (timestamp, pathname)) AS exit_hostname, argMin(hostname, (timestamp, pathname)) AS entry_hostname FROM events WHERE {visits} GROUP BY session_id) AS exits USING session_id"
            ),
        }
    }

    /// `WHERE ...` for the site, range, kind of event and filters.
    fn where_clause(
        &mut self,
        site_id: u32,
        span: &Span,
        filters: &[&Filter],
        engagement: bool,
    ) -> String {
        let mut parts = vec![format!("site_id = {}", self.int(i64::from(site_id)))];
        let from = self.instant(span.from);
        let to = self.instant(span.to);
        parts.push(format!("timestamp >= {from}"));
        parts.push(format!("timestamp < {to}"));
        parts.push(if engagement {
            "name = 'engagement'".to_string()
        } else {
            self.counted(scroll_floor(filters.iter().copied()))
        });
        for f in filters {
            parts.push(format!("({})", self.filter(f)));
        }
        let sampled = self.sampled();
        format!("WHERE {}{sampled}", parts.join(" AND "))
    }

    /// The events a statement counts: all but engagement events, and those of them that
    /// report a scroll of at least `scroll_floor` % when a scroll-depth goal asks for them.
    fn counted(&mut self, scroll_floor: Option<u8>) -> String {
        match scroll_floor {
            None => "name != 'engagement'".to_string(),
            Some(n) => {
                let n = self.int(i64::from(n));
                format!(
                    "(name != 'engagement' OR (name = 'engagement' AND scroll_depth >= {n} AND scroll_depth <= 100))"
                )
            }
        }
    }

    fn finish(self, sql: String) -> Statement {
        Statement {
            sql,
            binds: self.binds,
        }
    }
}

/// DuckDB: a statement whose time dimensions are bucket numbers (see [`Builder::dimension`]),
/// with those columns turned into their labels after grouping, as the other dialects give them.
fn duckdb_labels(dialect: Dialect, dims: &[Dimension], sql: String) -> String {
    if dialect != Dialect::DuckDb {
        return sql;
    }
    let labels: Vec<String> = dims
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Dimension::Time(bucket) => Some((i, *bucket)),
            Dimension::Field(_) => None,
        })
        .map(|(i, bucket)| {
            let label = match bucket {
                TimeBucket::Hour => format!(
                    "strftime(make_timestamp(CAST(d{i} AS BIGINT) * 3600000000), '%Y-%m-%d %H:00:00')"
                ),
                TimeBucket::Day => {
                    format!("strftime(DATE '1970-01-01' + CAST(d{i} AS INTEGER), '%Y-%m-%d')")
                }
                TimeBucket::Week => format!(
                    "strftime(DATE '1970-01-01' + CAST(d{i} * 7 - 3 AS INTEGER), '%Y-%m-%d')"
                ),
                TimeBucket::Month => {
                    format!("strftime(DATE '1970-01-01' + CAST(d{i} AS INTEGER), '%Y-%m-01')")
                }
            };
            format!("{label} AS d{i}")
        })
        .collect();
    if labels.is_empty() {
        return sql;
    }
    format!("SELECT * REPLACE ({}) FROM ({sql})", labels.join(", "))
}

fn group_by(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        let cols: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
        format!(" GROUP BY {}", cols.join(", "))
    }
}

fn event_level(
    dialect: Dialect,
    sample: Sample,
    exit: bool,
    filters: &[&Filter],
    dims: &[Dimension],
    at: At,
) -> Statement {
    // Engagement events a scroll-depth goal reads make visitors, not events: Plausible
    // counts no total conversions for such goals either.
    let events = if scroll_floor(filters.iter().copied()).is_some() {
        "SUM(name != 'engagement') AS events"
    } else {
        "COUNT(*) AS events"
    };
    flat(dialect, sample, exit, filters, dims, at, |_| {
        vec![
            match dialect {
                Dialect::Sqlite | Dialect::DuckDb => {
                    "COUNT(DISTINCT visitor_id) AS visitors".into()
                }
                Dialect::ClickHouse => "uniqExact(visitor_id) AS visitors".into(),
            },
            "SUM(name = 'pageview') AS pageviews".into(),
            events.into(),
        ]
    })
}

/// One level of aggregates (`counts`) over the events that `filters` keep, grouped by `dims`.
fn flat(
    dialect: Dialect,
    sample: Sample,
    exit: bool,
    filters: &[&Filter],
    dims: &[Dimension],
    at: At,
    counts: impl FnOnce(&mut Builder) -> Vec<String>,
) -> Statement {
    let At { site_id, tz, span } = at;
    let mut b = Builder::new(dialect, site_id, (span.from, span.to), false, sample);
    let mut select: Vec<String> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{} AS d{i}", b.dimension(d, tz, span)))
        .collect();
    select.extend(counts(&mut b));
    let from_clause = b.from(exit, site_id, span, filters, false);
    let where_clause = b.where_clause(site_id, span, filters, false);
    let sql = format!(
        "SELECT {} FROM {from_clause} {where_clause}{}",
        select.join(", "),
        group_by(dims.len())
    );
    b.finish(duckdb_labels(dialect, dims, sql))
}

/// The site, zone and span a statement reads.
#[derive(Clone, Copy)]
struct At<'a> {
    site_id: u32,
    tz: Tz,
    span: &'a Span,
}

/// What a two-level statement folds per unit (a session or a visitor) before summing per group.
struct Nested<'a> {
    /// The column the inner level groups by besides the dimensions.
    unit: &'a str,
    /// Inner aggregates per group and unit.
    inner: &'a [&'a str],
    /// Outer aggregates per group.
    outer: &'a [&'a str],
    /// Whether it reads engagement events instead of the counted ones.
    engagement: bool,
    /// Whether the exit-page join is needed.
    exit: bool,
}

fn nested(
    dialect: Dialect,
    sample: Sample,
    q: &Query,
    dims: &[Dimension],
    at: At,
    shape: &Nested,
) -> Statement {
    let At { site_id, tz, span } = at;
    let mut b = Builder::new(dialect, site_id, (span.from, span.to), false, sample);
    let n = dims.len();
    let mut inner: Vec<String> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{} AS d{i}", b.dimension(d, tz, span)))
        .collect();
    inner.push(shape.unit.to_string());
    inner.extend(shape.inner.iter().map(|s| (*s).to_string()));
    let filters: Vec<&Filter> = q.filters.iter().collect();
    let from_clause = b.from(shape.exit, site_id, span, &filters, shape.engagement);
    let where_clause = b.where_clause(site_id, span, &filters, shape.engagement);
    let mut inner_group: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    inner_group.push(shape.unit.to_string());
    let mut outer: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    outer.extend(shape.outer.iter().map(|s| (*s).to_string()));
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM {from_clause} {where_clause} GROUP BY {}){}",
        outer.join(", "),
        inner.join(", "),
        inner_group.join(", "),
        group_by(n)
    );
    b.finish(duckdb_labels(dialect, dims, sql))
}

/// Seconds from a group's first event to its last.
fn duration(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "MAX(timestamp) - MIN(timestamp)",
        Dialect::DuckDb => "CAST(MAX(timestamp) AS BIGINT) - CAST(MIN(timestamp) AS BIGINT)",
        Dialect::ClickHouse => {
            "toInt64(toUInt32(MAX(timestamp))) - toInt64(toUInt32(MIN(timestamp)))"
        }
    }
}

/// Per group and session: pageviews, events, first to last event; then per group, visits,
/// bounces and summed durations.
fn session_level(
    dialect: Dialect,
    sample: Sample,
    exit: bool,
    q: &Query,
    dims: &[Dimension],
    at: At,
) -> Statement {
    let dur = format!("{} AS dur", duration(dialect));
    let shape = Nested {
        unit: "session_id",
        inner: &["SUM(name = 'pageview') AS pv", "COUNT(*) AS n", &dur],
        outer: &[
            "COUNT(*) AS visits",
            "SUM(pv = 1 AND n = 1) AS bounces",
            "SUM(dur) AS duration",
        ],
        engagement: false,
        exit,
    };
    nested(dialect, sample, q, dims, at, &shape)
}

/// Per group and visitor, engaged time and deepest scroll; then per group, their sums.
fn engagement_level(
    dialect: Dialect,
    sample: Sample,
    exit: bool,
    q: &Query,
    dims: &[Dimension],
    at: At,
) -> Statement {
    let shape = Nested {
        unit: "visitor_id",
        inner: &[
            "SUM(engagement_ms) AS ms",
            "MAX(CASE WHEN scroll_depth <= 100 THEN scroll_depth ELSE -1 END) AS sd",
        ],
        outer: &[
            "SUM(ms) AS engaged_ms",
            "COUNT(*) AS engaged_visitors",
            "SUM(CASE WHEN sd >= 0 THEN sd ELSE 0 END) AS scroll_sum",
            "SUM(sd >= 0) AS scrolled_visitors",
        ],
        engagement: true,
        exit,
    };
    nested(dialect, sample, q, dims, at, &shape)
}

/// The revenue in `currency` of the events that `filters` keep, and how many carry it.
fn revenue_level(
    dialect: Dialect,
    sample: Sample,
    exit: bool,
    filters: &[&Filter],
    dims: &[Dimension],
    at: At,
    currency: &str,
) -> Statement {
    flat(dialect, sample, exit, filters, dims, at, |b| {
        let c = b.text(currency);
        let total = format!(
            "SUM(CASE WHEN revenue_currency = {c} THEN revenue_micros ELSE 0 END) AS revenue"
        );
        let c = b.text(currency);
        let paid = format!(
            "SUM(CASE WHEN revenue_currency = {c} AND revenue_micros <> 0 THEN 1 ELSE 0 END) AS revenue_events"
        );
        vec![total, paid]
    })
}

/// The most events a funnel reads.
pub const MAX_FUNNEL_EVENTS: usize = 1_000_000;

/// A funnel's events: the visit (`per_visit`) or visitor each belongs to, its visitor, its
/// time and which of `steps` it completes (bit `i` for step `i`), in order of unit and time.
/// Without `strict`, only events that complete a step; with it, every counted event (another
/// event between two steps breaks a strict funnel). Rows: unit and visitor as text, then
/// timestamp and mask; at most [`MAX_FUNNEL_EVENTS`] + 1.
pub fn funnel_events(
    dialect: Dialect,
    filters: &[&Filter],
    steps: &[Filter],
    per_visit: bool,
    strict: bool,
    site_id: u32,
    span: &Span,
) -> Statement {
    let mut b = Builder::new(dialect, site_id, (span.from, span.to), false, Sample::EXACT);
    let text = |column: &str| match dialect {
        Dialect::ClickHouse => format!("toString({column})"),
        Dialect::Sqlite => format!("CAST({column} AS TEXT)"),
        Dialect::DuckDb => format!("CAST({column} AS VARCHAR)"),
    };
    let unit = text(if per_visit {
        "session_id"
    } else {
        "visitor_id"
    });
    let visitor = text("visitor_id");
    let time = match dialect {
        Dialect::ClickHouse => "toInt64(toUInt32(timestamp))",
        _ => "timestamp",
    };
    let mask: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, f)| {
            format!(
                "(CASE WHEN ({}) THEN {} ELSE 0 END)",
                b.filter(f),
                1u32 << i
            )
        })
        .collect();
    let any_step = Filter::Or(steps.to_vec());
    // In strict order every counted event breaks a chain, but an engagement event (read for
    // a scroll-depth step) only counts when it completes a step.
    let counted_or_step = Filter::Or(vec![
        Filter::Not(Box::new(Filter::Scrolled { at_least: 0 })),
        any_step.clone(),
    ]);
    let mut all: Vec<&Filter> = filters.to_vec();
    if !strict {
        all.push(&any_step);
    } else if scroll_floor(steps).is_some() {
        all.push(&counted_or_step);
    }
    let exit = all.iter().any(|f| reads_exit_page(f));
    let from_clause = b.from(exit, site_id, span, &all, false);
    let where_clause = b.where_clause(site_id, span, &all, false);
    let sql = format!(
        "SELECT {unit} AS d0, {visitor} AS d1, {time} AS t, {} AS mask FROM {from_clause} {where_clause} ORDER BY d0, t, mask LIMIT {}",
        mask.join(" + "),
        MAX_FUNNEL_EVENTS + 1
    );
    b.finish(sql)
}

/// How many events (of every kind) a site has with `from <= timestamp < to` (UTC seconds).
/// Rows: one, the count.
pub fn count_events(dialect: Dialect, site_id: u32, from: i64, to: i64) -> Statement {
    let mut b = Builder::new(dialect, site_id, (from, to), false, Sample::EXACT);
    let site = b.int(i64::from(site_id));
    let (from, to) = (b.instant(from), b.instant(to));
    let sql = format!(
        "SELECT COUNT(*) AS n FROM events WHERE site_id = {site} AND timestamp >= {from} AND timestamp < {to}"
    );
    b.finish(sql)
}

/// Most property keys listed for one event name.
pub const MAX_PROP_KEYS: i64 = 100;

/// The custom property keys of a site's events named `name` with `from <= timestamp < to`
/// (UTC seconds), with how many events carry each, most used first. Rows: key, count.
pub fn prop_keys(dialect: Dialect, site_id: u32, from: i64, to: i64, name: &str) -> Statement {
    let sql = match dialect {
        Dialect::ClickHouse => {
            "SELECT prop_key, count() AS n FROM events ARRAY JOIN props_keys AS prop_key WHERE site_id = ? AND timestamp >= toDateTime(?) AND timestamp < toDateTime(?) AND name = ? GROUP BY prop_key ORDER BY n DESC, prop_key LIMIT ?"
        }
        Dialect::DuckDb => {
            "SELECT prop_key, count(*) AS n FROM (SELECT unnest(props_keys) AS prop_key FROM events WHERE site_id = ? AND timestamp >= ? AND timestamp < ? AND name = ?) GROUP BY prop_key ORDER BY n DESC, prop_key LIMIT ?"
        }
        Dialect::Sqlite => {
            "SELECT k.value AS prop_key, count(*) AS n FROM events e, json_each(e.props_keys) k WHERE e.site_id = ? AND e.timestamp >= ? AND e.timestamp < ? AND e.name = ? GROUP BY k.value ORDER BY n DESC, prop_key LIMIT ?"
        }
    };
    Statement {
        sql: sql.to_string(),
        binds: vec![
            Bind::Int(i64::from(site_id)),
            Bind::Int(from),
            Bind::Int(to),
            Bind::Text(name.to_string()),
            Bind::Int(MAX_PROP_KEYS),
        ],
    }
}

/// The statements that answer `q` for one site.
pub fn plan(
    dialect: Dialect,
    sample: Sample,
    q: &Query,
    site_id: u32,
    tz: Tz,
    span: &Span,
) -> Plan {
    use super::model::{Metric, conversion_base_filters};
    let needs = |m: Metric| q.metrics.contains(&m);
    let all: Vec<&Filter> = q.filters.iter().collect();
    let exit = uses_exit_page(q);
    // Every statement also groups by the site-local day (last column): counts are per day
    // and add up across days, exactly as the daily rollups keep them.
    let mut dims = q.dimensions.clone();
    dims.push(Dimension::Time(TimeBucket::Day));
    let without_goals = conversion_base_filters(q);
    let at = At { site_id, tz, span };
    Plan {
        events: event_level(dialect, sample, exit, &all, &dims, at),
        sessions: q
            .metrics
            .iter()
            .any(|m| m.per_session())
            .then(|| session_level(dialect, sample, exit, q, &dims, at)),
        goal_base: needs(Metric::GroupConversionRate)
            .then(|| event_level(dialect, sample, exit, &without_goals, &dims, at)),
        engagement: (needs(Metric::TimeOnPage) || needs(Metric::ScrollDepth))
            .then(|| engagement_level(dialect, sample, exit, q, &dims, at)),
        revenue: match &q.revenue_currency {
            Some(currency) if needs(Metric::TotalRevenue) || needs(Metric::AverageRevenue) => Some(
                revenue_level(dialect, sample, exit, &all, &dims, at, currency),
            ),
            _ => None,
        },
    }
}

/// The visit properties the visit rows keep, by their events column, besides the exit page
/// (computed per visit). The same for all of a visit's events on a day: fixed by its first
/// event (source, campaign, entry page) or by the visitor hash (browser, OS, device and the
/// location, from the user-agent and address the hash is made of).
pub const VISIT_COLUMNS: [&str; 19] = [
    "referrer",
    "referrer_source",
    "channel",
    "utm_medium",
    "utm_source",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "device",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "country_code",
    "region",
    "city",
    "entry_page",
    "country_name",
    "region_name",
];

/// Whether `q` can be answered from visit rows: its dimensions are visit properties or
/// days, weeks or months, its filters read visit properties only, and its metrics are
/// counts of visitors, visits, pageviews and events (and what derives from them).
pub fn visit_level(q: &Query) -> bool {
    fn visit_filter(f: &Filter) -> bool {
        match f {
            Filter::Match { field, .. } => {
                matches!(field, Field::Column(p) if p.per_visit())
            }
            Filter::And(l) | Filter::Or(l) => l.iter().all(visit_filter),
            Filter::Not(f) => visit_filter(f),
            Filter::Behaviour { .. } | Filter::Scrolled { .. } => false,
        }
    }
    q.metrics
        .iter()
        .all(|m| super::model::COUNT_METRICS.contains(m))
        && q.filters.iter().all(visit_filter)
        && q.dimensions.iter().all(|d| match d {
            Dimension::Field(Field::Column(p)) => p.per_visit(),
            Dimension::Field(Field::Prop(_) | Field::Goal) | Dimension::Time(TimeBucket::Hour) => {
                false
            }
            Dimension::Time(_) => true,
        })
}

/// A site-local day as the visit rows' `day` column takes it in a bind.
fn day_bind(b: &mut Builder, day: chrono::NaiveDate) -> String {
    match b.dialect {
        Dialect::ClickHouse => format!("toDate({})", b.text(&day.format("%Y-%m-%d").to_string())),
        Dialect::Sqlite | Dialect::DuckDb => b.int(crate::store::day_number(day)).to_string(),
    }
}

/// The statement that writes the visit rows of one site-local day (`span`, its whole day)
/// from the raw events: one row per visit and visitor hash of the day. A visit
/// that spans the UTC midnight when the salt changes has two hashes within one site-local
/// day (raw events count it as two visitors and one visit); its second row counts no visit,
/// pageview, event, bounce or duration, only the visitor. Every row of a visit carries the
/// visit's properties and its exit page (its last pageview of the day, '' without one), so
/// a visit row answers exactly what the raw events of that day answer. On ClickHouse the
/// rows carry `version`; the others replace a day's rows in one transaction instead.
pub fn write_visits(dialect: Dialect, site_id: u32, span: &Span, version: u64) -> Statement {
    let day = span.first_day;
    let mut b = Builder::new(dialect, site_id, (span.from, span.to), false, Sample::EXACT);
    // The day and version first, so their binds come before the ranges'.
    let day_value = day_bind(&mut b, day);
    let version_value = match dialect {
        Dialect::ClickHouse => format!(", {}", b.int(i64::try_from(version).unwrap_or(i64::MAX))),
        Dialect::Sqlite | Dialect::DuckDb => String::new(),
    };
    // A visit's figures count on its first hash's row only (a visit across the UTC midnight
    // has two), then its properties.
    let first = "visitor_id = first_visitor";
    let counted = |col: &str| format!("CASE WHEN {first} THEN {col} ELSE 0 END");
    let columns: Vec<String> = VISIT_COLUMNS.iter().map(|c| format!("v_{c}")).collect();
    let figures = [
        counted("1"),
        counted("s_pv"),
        counted("s_n"),
        counted("CASE WHEN s_pv = 1 AND s_n = 1 THEN 1 ELSE 0 END"),
        counted("s_dur"),
        columns.join(", "),
    ]
    .join(", ");
    if dialect == Dialect::Sqlite {
        // SQLite joins two subqueries by scanning one for each row of the other: a day of
        // 17,600 visits took minutes. One pass instead: a row per (visit, hash), and the
        // visit's figures over its hashes by a window.
        let over = |agg: &str, inner: &str| format!("{agg}({inner}) OVER w");
        let props: Vec<String> = VISIT_COLUMNS
            .iter()
            .map(|c| format!("{} AS v_{c}", over("min", &format!("min({c})"))))
            .collect();
        let filter = b.where_clause(site_id, span, &[], false);
        let sql = format!(
            "INSERT INTO visits (site_id, day, session_id, visitor_id, visit, pageviews, events, bounce, duration, {names}, exit_page) \
             SELECT site_id, {day_value}, session_id, visitor_id, {figures}, coalesce(substr(v_exit, 11), '') \
             FROM (SELECT min(site_id) AS site_id, session_id, visitor_id, {first_visitor} AS first_visitor, {s_pv} AS s_pv, {s_n} AS s_n, \
             {max_t} - {min_t} AS s_dur, {props}, {exit} AS v_exit \
             FROM events {filter} GROUP BY session_id, visitor_id WINDOW w AS (PARTITION BY session_id)) AS visits_of_day",
            names = VISIT_COLUMNS.join(", "),
            first_visitor = over("min", "min(visitor_id)"),
            s_pv = over("sum", "SUM(name = 'pageview')"),
            s_n = over("sum", "COUNT(*)"),
            max_t = over("max", "MAX(timestamp)"),
            min_t = over("min", "MIN(timestamp)"),
            props = props.join(", "),
            exit = over(
                "max",
                "max(CASE WHEN name = 'pageview' THEN printf('%010d', timestamp) || pathname END)"
            ),
        );
        return b.finish(sql);
    }
    // ClickHouse and DuckDB: the visits grouped by session, joined to their hashes.
    let clickhouse = dialect == Dialect::ClickHouse;
    let dur = duration(dialect);
    let exit = if clickhouse {
        "argMaxIf(pathname, (timestamp, pathname), name = 'pageview')"
    } else {
        "coalesce((max({'t': timestamp, 'p': pathname}) FILTER (WHERE name = 'pageview')).p, '')"
    };
    let props: Vec<String> = VISIT_COLUMNS
        .iter()
        .map(|c| format!("min({c}) AS v_{c}"))
        .collect();
    // ClickHouse holds a join's right side in memory: the visit's hashes (three numbers
    // each) go there, and the wide per-visit rows stream past them. The other way round, a
    // day of 3.3 million events went over a 2 GB query limit.
    let left = b.where_clause(site_id, span, &[], false);
    let right = b.where_clause(site_id, span, &[], false);
    let (using, using_key) = if clickhouse {
        ("ALL INNER JOIN", "USING session_id")
    } else {
        ("JOIN", "USING (session_id)")
    };
    let version_column = if clickhouse { ", version" } else { "" };
    let sql = format!(
        "INSERT INTO visits (site_id, day{version_column}, session_id, visitor_id, visit, pageviews, events, bounce, duration, {names}, exit_page) \
         SELECT site_id, {day_value}{version_value}, session_id, visitor_id, {figures}, v_exit \
         FROM (SELECT session_id, min(visitor_id) AS first_visitor, SUM(name = 'pageview') AS s_pv, COUNT(*) AS s_n, {dur} AS s_dur, {props}, {exit} AS v_exit FROM events {left} GROUP BY session_id) AS visits_of_day \
         {using} (SELECT DISTINCT site_id, session_id, visitor_id FROM events {right}) AS hashes {using_key}",
        names = VISIT_COLUMNS.join(", "),
        props = props.join(", "),
    );
    b.finish(sql)
}

/// The counts of `q` over the site-local days `first..=last` from the visit rows (see
/// [`visit_level`]). Rows: the field dimensions' values (time dimensions are left out: the
/// caller labels them from the day), then `day` (days since 1970-01-01), visitors, pageviews,
/// events, visits, bounces, duration. On ClickHouse only each day's newest rows count.
pub fn read_visits(
    dialect: Dialect,
    sample: Sample,
    q: &Query,
    site_id: u32,
    first: chrono::NaiveDate,
    last: chrono::NaiveDate,
) -> Statement {
    let mut b = Builder::new(dialect, site_id, (0, 0), true, sample);
    let fields: Vec<&Field> = q
        .dimensions
        .iter()
        .filter_map(|d| match d {
            Dimension::Field(f) => Some(f),
            Dimension::Time(_) => None,
        })
        .collect();
    let mut select: Vec<String> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| format!("{} AS d{i}", b.field(f)))
        .collect();
    let (day, visitors) = match dialect {
        Dialect::ClickHouse => ("toUInt16(day)", "uniqExact(visitor_id)"),
        Dialect::Sqlite | Dialect::DuckDb => ("day", "COUNT(DISTINCT visitor_id)"),
    };
    select.push(format!("{day} AS dd"));
    select.push(format!("{visitors} AS visitors"));
    for c in ["pageviews", "events", "visit", "bounce", "duration"] {
        select.push(format!("SUM({c}) AS s_{c}"));
    }
    let site = b.int(i64::from(site_id));
    let (from, to) = (day_bind(&mut b, first), day_bind(&mut b, last));
    let mut parts = vec![
        format!("site_id = {site}"),
        format!("day >= {from}"),
        format!("day <= {to}"),
    ];
    if dialect == Dialect::ClickHouse {
        let site = b.int(i64::from(site_id));
        let (from, to) = (day_bind(&mut b, first), day_bind(&mut b, last));
        parts.push(format!(
            "(day, version) GLOBAL IN (SELECT day, max(version) FROM visit_days WHERE site_id = {site} AND day >= {from} AND day <= {to} GROUP BY day)"
        ));
    }
    for f in &q.filters {
        parts.push(format!("({})", b.filter(f)));
    }
    let sampled = b.sampled();
    let mut group: Vec<String> = (0..fields.len()).map(|i| format!("d{i}")).collect();
    group.push("dd".into());
    let sql = format!(
        "SELECT {} FROM visits WHERE {}{sampled} GROUP BY {}",
        select.join(", "),
        parts.join(" AND "),
        group.join(", ")
    );
    b.finish(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::model::parse;
    use crate::query::time::resolve;
    use serde_json::json;

    #[test]
    fn a_sample_is_the_lowest_slice_of_hashes_within_the_threshold() {
        // Rows within the threshold, or no threshold: exact.
        assert_eq!(Sample::for_rows(10, 10), Sample::EXACT);
        assert_eq!(Sample::for_rows(u64::MAX, 0), Sample::EXACT);
        // The smallest offered divisor that brings the rows within it.
        assert_eq!(Sample::for_rows(11, 10).divisor, 2);
        assert_eq!(Sample::for_rows(100_000_000, 10_000_000).divisor, 10);
        assert_eq!(Sample::for_rows(100_000_001, 10_000_000).divisor, 20);
        assert_eq!(Sample::for_rows(u64::MAX, 1).divisor, 1000);
        assert_eq!(Sample { divisor: 20 }.rate(), 0.05);
        // The slice is [0, u64::MAX / divisor]: below 2^63, so a signed column holds it.
        assert_eq!(Sample::EXACT.bound(), None);
        for d in Sample::DIVISORS.into_iter().skip(1) {
            let bound = Sample { divisor: d }.bound().unwrap();
            assert!(bound > 0 && (bound as u64) == u64::MAX / u64::from(d));
        }
        // Every statement of a sampled plan carries the slice, bound after the other values.
        let q = parse(&json!({"site_id": "a", "metrics": ["visitors", "bounce_rate", "time_on_page"], "date_range": "7d", "dimensions": ["visit:exit_page"], "filters": [["is", "visit:source", ["Google"]]]})).unwrap();
        let tz: Tz = "UTC".parse().unwrap();
        let span = resolve(&q.date_range, tz, "2026-03-31T12:00:00Z".parse().unwrap()).unwrap();
        let sample = Sample { divisor: 10 };
        for dialect in [Dialect::Sqlite, Dialect::DuckDb, Dialect::ClickHouse] {
            let p = plan(dialect, sample, &q, 7, tz, &span);
            let exact = plan(dialect, Sample::EXACT, &q, 7, tz, &span);
            for (st, ex) in [
                (Some(&p.events), Some(&exact.events)),
                (p.sessions.as_ref(), exact.sessions.as_ref()),
                (p.engagement.as_ref(), exact.engagement.as_ref()),
            ] {
                let (st, ex) = (st.unwrap(), ex.unwrap());
                assert!(
                    st.sql.contains("visitor_id >= 0 AND visitor_id <= ?"),
                    "{}",
                    st.sql
                );
                assert!(!ex.sql.contains("visitor_id >= 0"), "{}", ex.sql);
                assert!(st.binds.contains(&Bind::Int((u64::MAX / 10) as i64)));
                assert_eq!(st.sql.matches('?').count(), st.binds.len(), "{}", st.sql);
            }
            let day = span.first_day;
            let visits = read_visits(dialect, sample, &q, 7, day, day);
            assert!(visits.sql.contains("visitor_id <= ?"), "{}", visits.sql);
            assert_eq!(visits.sql.matches('?').count(), visits.binds.len());
        }
    }

    fn plan_for(dialect: Dialect, query: serde_json::Value) -> Plan {
        let q = parse(&query).unwrap();
        let tz: Tz = "Europe/Copenhagen".parse().unwrap();
        let span = resolve(&q.date_range, tz, "2026-03-31T12:00:00Z".parse().unwrap()).unwrap();
        plan(dialect, Sample::EXACT, &q, 7, tz, &span)
    }

    fn render(p: &Plan) -> String {
        let mut out = String::new();
        for (name, st) in [
            ("events", Some(&p.events)),
            ("sessions", p.sessions.as_ref()),
            ("goal_base", p.goal_base.as_ref()),
            ("engagement", p.engagement.as_ref()),
            ("revenue", p.revenue.as_ref()),
        ] {
            if let Some(st) = st {
                out.push_str(&format!(
                    "-- {name}\n{}\n-- binds: {:?}\n",
                    st.sql, st.binds
                ));
            }
        }
        out
    }

    fn kinds() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            (
                "aggregate",
                json!({"site_id": "a", "metrics": ["visitors", "pageviews"], "date_range": "7d"}),
            ),
            (
                "sessions",
                json!({"site_id": "a", "metrics": ["visits", "bounce_rate", "visit_duration", "views_per_visit"], "date_range": "30d"}),
            ),
            (
                "breakdown",
                json!({"site_id": "a", "metrics": ["visitors", "percentage"], "date_range": "month", "dimensions": ["visit:source"]}),
            ),
            (
                "timeseries",
                json!({"site_id": "a", "metrics": ["visitors", "visits"], "date_range": ["2026-03-28", "2026-03-30"], "dimensions": ["time:day"]}),
            ),
            (
                "props_regex",
                json!({"site_id": "a", "metrics": ["visitors", "visits"], "date_range": "7d", "dimensions": ["event:props:plan"], "filters": [["matches", "event:page", ["^/blog/"]], ["matches_not", "event:props:plan", ["free"]]]}),
            ),
            (
                "goals_engagement",
                json!({"site_id": "a", "metrics": ["visitors", "group_conversion_rate", "time_on_page", "scroll_depth"], "date_range": "7d", "dimensions": ["event:page"], "filters": [["is", "event:name", ["Signup"]], ["is", "visit:country", ["DK"]]]}),
            ),
            (
                "exit_pages",
                json!({"site_id": "a", "metrics": ["visitors", "visits"], "date_range": "7d", "dimensions": ["visit:exit_page"], "filters": [["is_not", "visit:entry_page", ["/"]]]}),
            ),
            (
                "filters",
                json!({"site_id": "a", "metrics": ["visitors"], "date_range": "day", "filters": [["is", "visit:country", ["DK", "SE"]], ["or", [["contains", "event:page", ["/blog"]], ["not", ["is_not", "visit:device", ["Mobile"]]]]], ["contains_not", "visit:referrer", ["spam"]]]}),
            ),
        ]
    }

    #[test]
    fn generated_sql_snapshots() {
        for dialect in [Dialect::Sqlite, Dialect::DuckDb, Dialect::ClickHouse] {
            for (kind, query) in kinds() {
                insta::assert_snapshot!(
                    format!("{kind}_{dialect:?}").to_lowercase(),
                    render(&plan_for(dialect, query))
                );
            }
        }
    }

    #[test]
    fn values_are_never_in_the_sql_text() {
        let hostile = "x'); DROP TABLE events; --";
        for dialect in [Dialect::Sqlite, Dialect::DuckDb, Dialect::ClickHouse] {
            let p = plan_for(
                dialect,
                json!({"site_id": "a", "metrics": ["visitors", "visits"], "date_range": "7d", "dimensions": ["time:hour"], "filters": [["is", "event:page", [hostile]], ["contains", "visit:city", [hostile]]]}),
            );
            for st in [&p.events, p.sessions.as_ref().unwrap()] {
                assert!(!st.sql.contains("DROP"), "{}", st.sql);
                assert!(
                    !st.sql.contains("Copenhagen"),
                    "the time zone is bound: {}",
                    st.sql
                );
                assert_eq!(st.sql.matches('?').count(), st.binds.len());
                assert!(st.binds.contains(&Bind::Text(hostile.into())));
            }
        }
    }
}
