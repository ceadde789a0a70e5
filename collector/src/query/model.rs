//! The query model: the Plausible Stats API v2 request shape, parsed and validated.
//!
//! `{"site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include",
//! "pagination"}`, and Footfall's own `"sampling": false` for an exact answer to a question
//! large enough to be sampled. Every mistake a client can make is a [`QueryError`] whose
//! message names it. What passes is a [`Query`] whose every name is known and every value
//! bounded; nothing in it is ever pasted into SQL (values are bound).

use chrono::NaiveDate;
use serde_json::Value;

/// Most dimensions in one query.
pub const MAX_DIMENSIONS: usize = 3;
/// Most values in one filter clause.
pub const MAX_FILTER_VALUES: usize = 100;
/// Longest filter value, in bytes.
pub const MAX_FILTER_VALUE_BYTES: usize = 2000;
/// Most filters (counting nested ones).
pub const MAX_FILTERS: usize = 30;
/// Largest page of results.
pub const MAX_LIMIT: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    Events,
    ViewsPerVisit,
    BounceRate,
    VisitDuration,
    Percentage,
    ConversionRate,
    GroupConversionRate,
    TimeOnPage,
    ScrollDepth,
    TotalRevenue,
    AverageRevenue,
}

impl Metric {
    pub const ALL: [(&'static str, Metric); 14] = [
        ("visitors", Metric::Visitors),
        ("visits", Metric::Visits),
        ("pageviews", Metric::Pageviews),
        ("events", Metric::Events),
        ("views_per_visit", Metric::ViewsPerVisit),
        ("bounce_rate", Metric::BounceRate),
        ("visit_duration", Metric::VisitDuration),
        ("percentage", Metric::Percentage),
        ("conversion_rate", Metric::ConversionRate),
        ("group_conversion_rate", Metric::GroupConversionRate),
        ("time_on_page", Metric::TimeOnPage),
        ("scroll_depth", Metric::ScrollDepth),
        ("total_revenue", Metric::TotalRevenue),
        ("average_revenue", Metric::AverageRevenue),
    ];

    pub fn name(self) -> &'static str {
        Metric::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("", |(n, _)| n)
    }

    /// Whether the metric needs per-session aggregation.
    pub fn per_session(self) -> bool {
        matches!(
            self,
            Metric::Visits | Metric::ViewsPerVisit | Metric::BounceRate | Metric::VisitDuration
        )
    }
}

/// The metrics made of visitor, visit, pageview and event counts alone: what daily rollups
/// and visit rows keep.
pub const COUNT_METRICS: [Metric; 8] = [
    Metric::Visitors,
    Metric::Visits,
    Metric::Pageviews,
    Metric::Events,
    Metric::ViewsPerVisit,
    Metric::BounceRate,
    Metric::VisitDuration,
    Metric::Percentage,
];

/// Metrics of the Stats API that Footfall does not answer yet.
const NOT_YET_METRICS: &[&str] = &[];

/// A property of an event or its visit that results can be grouped and filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Property {
    Page,
    Hostname,
    Name,
    Source,
    Referrer,
    Channel,
    UtmMedium,
    UtmSource,
    UtmCampaign,
    UtmContent,
    UtmTerm,
    Device,
    Browser,
    BrowserVersion,
    Os,
    OsVersion,
    Country,
    Region,
    City,
    EntryPage,
    ExitPage,
    /// The host of the visit's first pageview in the range.
    EntryHostname,
    /// The host of the visit's last pageview in the range.
    ExitHostname,
    CountryName,
    RegionName,
    CityName,
}

impl Property {
    pub const ALL: [(&'static str, Property); 26] = [
        ("event:page", Property::Page),
        ("event:hostname", Property::Hostname),
        ("event:name", Property::Name),
        ("visit:source", Property::Source),
        ("visit:referrer", Property::Referrer),
        ("visit:channel", Property::Channel),
        ("visit:utm_medium", Property::UtmMedium),
        ("visit:utm_source", Property::UtmSource),
        ("visit:utm_campaign", Property::UtmCampaign),
        ("visit:utm_content", Property::UtmContent),
        ("visit:utm_term", Property::UtmTerm),
        ("visit:device", Property::Device),
        ("visit:browser", Property::Browser),
        ("visit:browser_version", Property::BrowserVersion),
        ("visit:os", Property::Os),
        ("visit:os_version", Property::OsVersion),
        ("visit:country", Property::Country),
        ("visit:region", Property::Region),
        ("visit:city", Property::City),
        ("visit:entry_page", Property::EntryPage),
        ("visit:exit_page", Property::ExitPage),
        ("visit:entry_page_hostname", Property::EntryHostname),
        ("visit:exit_page_hostname", Property::ExitHostname),
        ("visit:country_name", Property::CountryName),
        ("visit:region_name", Property::RegionName),
        ("visit:city_name", Property::CityName),
    ];

    pub fn name(self) -> &'static str {
        Property::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("", |(n, _)| n)
    }

    /// Whether the property belongs to the visit (the same for all of a visit's events, or,
    /// for the exit page, its last pageview's), so the visit rows hold it.
    pub fn per_visit(self) -> bool {
        !matches!(
            self,
            Property::Page
                | Property::Hostname
                | Property::Name
                | Property::EntryHostname
                | Property::ExitHostname
        )
    }

    /// Whether closed days keep the property's counts in their rollups. The entry and exit
    /// hosts came later: days rolled up before have no rows for them, so they are always
    /// counted from raw events (and need raw retention).
    pub fn rolled_up(self) -> bool {
        !matches!(self, Property::EntryHostname | Property::ExitHostname)
    }

    /// Whether the property is found per visit from its pageviews in the range (joined in,
    /// not stored on the event).
    pub fn joined(self) -> bool {
        matches!(
            self,
            Property::ExitPage | Property::EntryHostname | Property::ExitHostname
        )
    }

    /// The events column holding the property.
    pub fn column(self) -> &'static str {
        match self {
            Property::Page => "pathname",
            Property::Hostname => "hostname",
            Property::Name => "name",
            Property::Source => "referrer_source",
            Property::Referrer => "referrer",
            Property::Channel => "channel",
            Property::UtmMedium => "utm_medium",
            Property::UtmSource => "utm_source",
            Property::UtmCampaign => "utm_campaign",
            Property::UtmContent => "utm_content",
            Property::UtmTerm => "utm_term",
            Property::Device => "device",
            Property::Browser => "browser",
            Property::BrowserVersion => "browser_version",
            Property::Os => "os",
            Property::OsVersion => "os_version",
            Property::Country => "country_code",
            Property::Region => "region",
            Property::City | Property::CityName => "city",
            Property::EntryPage => "entry_page",
            // Not stored: from the visit's first and last pageviews, joined in by the planner.
            Property::ExitPage => "exit_page",
            Property::EntryHostname => "entry_hostname",
            Property::ExitHostname => "exit_hostname",
            Property::CountryName => "country_name",
            Property::RegionName => "region_name",
        }
    }
}

/// What a dimension or filter reads: a fixed property, or a custom event property.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Column(Property),
    /// `event:props:<key>`: the value of the event's custom property `key` ("" without it).
    Prop(String),
    /// `event:goal`: the display names of the site's goals an event completes. A query
    /// resolves it against the site's goals before any statement is built (see
    /// [`crate::goals`]); a filter on it becomes a filter on the events.
    Goal,
}

impl Field {
    pub fn label(&self) -> String {
        match self {
            Field::Column(p) => p.name().to_string(),
            Field::Prop(k) => format!("event:props:{k}"),
            Field::Goal => "event:goal".into(),
        }
    }
}

/// Longest custom property key, as at ingest.
const MAX_PROP_KEY_CHARS: usize = 300;
/// Longest regular expression in a `matches` filter, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1000;
/// Most regular expressions in one query, over all its filters.
pub const MAX_PATTERNS: usize = 20;
pub use crate::store::statement::{MAX_PATTERN_COMPILED_BYTES, compile_pattern};

/// Every `matches` pattern of the query, counted before any is compiled, then compiled once
/// within the size limit.
fn check_patterns(filters: &[Filter]) -> Result<(), QueryError> {
    fn collect<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
        match f {
            Filter::Match {
                op: Op::Matches | Op::MatchesNot,
                values,
                ..
            } => out.extend(values.iter().map(String::as_str)),
            Filter::Match { .. } | Filter::Scrolled { .. } => {}
            Filter::And(list) | Filter::Or(list) => list.iter().for_each(|f| collect(f, out)),
            Filter::Not(inner) | Filter::Behaviour { inner, .. } => collect(inner, out),
        }
    }
    let mut patterns = Vec::new();
    filters.iter().for_each(|f| collect(f, &mut patterns));
    if patterns.len() > MAX_PATTERNS {
        return err(format!(
            "at most {MAX_PATTERNS} regular expressions per query (`matches` and `matches_not` values); this one has {}",
            patterns.len()
        ));
    }
    for pattern in patterns {
        compile_pattern(pattern).map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => QueryError(format!(
                "`{pattern}` is too large a regular expression (over {} KiB compiled); use a narrower one",
                MAX_PATTERN_COMPILED_BYTES / 1024
            )),
            e => QueryError(format!("`{pattern}` is not a valid regular expression: {e}")),
        })?;
    }
    Ok(())
}

/// Time buckets, cut in the site's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeBucket {
    Hour,
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    Field(Field),
    Time(TimeBucket),
}

impl Dimension {
    pub fn label(&self) -> String {
        match self {
            Dimension::Field(f) => f.label(),
            Dimension::Time(TimeBucket::Hour) => "time:hour".into(),
            Dimension::Time(TimeBucket::Day) => "time:day".into(),
            Dimension::Time(TimeBucket::Week) => "time:week".into(),
            Dimension::Time(TimeBucket::Month) => "time:month".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    ContainsNot,
    /// Regular expression (RE2 syntax as the `regex` crate accepts it).
    Matches,
    MatchesNot,
}

/// A filter tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Match {
        op: Op,
        field: Field,
        values: Vec<String>,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `has_done` (`done`) / `has_not_done`: the events of visits that have (or have not),
    /// within the query's range, an event the inner filter keeps. The inner filter reads
    /// `event:` properties only.
    Behaviour {
        done: bool,
        inner: Box<Filter>,
    },
    /// An engagement event that reports a scroll of at least `at_least` % of its page: what
    /// a scroll-depth goal is made of (never parsed from a question). The events that other
    /// filters read leave engagement events out; a query with this filter reads those it
    /// keeps too.
    Scrolled {
        at_least: u8,
    },
}

/// A date range as the client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateRange {
    Day,
    Last(u32),
    Month,
    Months(u32),
    Year,
    All,
    Custom(NaiveDate, NaiveDate),
    /// The 24 hours up to now (`"24h"`).
    Hours24,
    /// `[from, to]` given as date-times: `to` is inclusive, to the second.
    Instants(Moment, Moment),
}

/// A date-time from a query: a local date-time with the offset it was given in, or none (then
/// it is read in the site's time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub local: chrono::NaiveDateTime,
    pub offset: Option<chrono::FixedOffset>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    Metric(Metric),
    Dimension(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub site_id: String,
    pub metrics: Vec<Metric>,
    pub date_range: DateRange,
    pub dimensions: Vec<Dimension>,
    pub filters: Vec<Filter>,
    pub order_by: Vec<(OrderKey, bool)>,
    pub limit: u64,
    pub offset: u64,
    pub total_rows: bool,
    pub time_labels: bool,
    pub comparison: Option<Comparison>,
    /// Whether a large question may count a sample of the visitors (top-level `sampling`,
    /// default true); false: always exact.
    pub sampling: bool,
    /// Whether imported history is added to the site's own data where it can answer
    /// (`include.imports`, default false).
    pub imports: bool,
    /// Whether the answer's `meta` says how imported history was used (`include.imports`
    /// or `include.imports_meta`).
    pub imports_meta: bool,
    /// The top-level filters that a query's `event:goal` filters and dimension were resolved
    /// into (empty until then): goal filters, as `is event:name` ones are.
    pub resolved_goals: Vec<Filter>,
    /// The currency revenue metrics sum, from the query's revenue goals (set as goals are
    /// resolved; `None`: no single currency, and revenue metrics are null).
    pub revenue_currency: Option<String>,
    /// The rollup key ([`crate::goals::Goal::rollup_key`]) of the one goal whose filter is
    /// the query's only filter, when that is so: the daily goal rollups can answer it.
    pub goal_key: Option<String>,
}

/// What a query's results are compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The same number of days just before the range.
    PreviousPeriod,
    /// The same dates a year earlier.
    YearOverYear,
    /// Any other range.
    Custom(NaiveDate, NaiveDate),
}

impl Query {
    /// A question Footfall asks itself (rollups, imports, the realtime count): `metrics` of
    /// `site_id` over `date_range`, ungrouped and unfiltered, every row, most visitors
    /// first, exact.
    pub fn internal(site_id: &str, metrics: Vec<Metric>, date_range: DateRange) -> Query {
        Query {
            site_id: site_id.to_string(),
            metrics,
            date_range,
            dimensions: Vec::new(),
            filters: Vec::new(),
            order_by: vec![(OrderKey::Metric(Metric::Visitors), true)],
            limit: u64::MAX,
            offset: 0,
            total_rows: false,
            time_labels: false,
            comparison: None,
            sampling: false,
            imports: false,
            imports_meta: false,
            resolved_goals: Vec::new(),
            revenue_currency: None,
            goal_key: None,
        }
    }
}

/// A mistake in a query, answered with 400 and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

fn as_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, QueryError> {
    v.as_str()
        .ok_or_else(|| QueryError(format!("{what} must be a string")))
}

fn as_array<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<Value>, QueryError> {
    v.as_array()
        .ok_or_else(|| QueryError(format!("{what} must be a list")))
}

/// Parses and validates a query body.
pub fn parse(body: &Value) -> Result<Query, QueryError> {
    let Some(obj) = body.as_object() else {
        return err("the query must be a JSON object");
    };
    const KNOWN: [&str; 9] = [
        "site_id",
        "sampling",
        "metrics",
        "date_range",
        "dimensions",
        "filters",
        "order_by",
        "include",
        "pagination",
    ];
    if let Some(unknown) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return err(format!(
            "unknown field `{unknown}`; expected one of {}",
            KNOWN.join(", ")
        ));
    }
    let site_id = as_str(
        obj.get("site_id")
            .ok_or(QueryError("missing `site_id`".into()))?,
        "`site_id`",
    )?
    .to_string();
    let metrics = parse_metrics(obj.get("metrics"))?;
    let date_range = parse_date_range(
        obj.get("date_range")
            .ok_or(QueryError("missing `date_range`".into()))?,
    )?;
    let dimensions = parse_dimensions(obj.get("dimensions"))?;
    let mut count = 0;
    let filters = match obj.get("filters") {
        None => Vec::new(),
        Some(v) => as_array(v, "`filters`")?
            .iter()
            .map(|f| parse_filter(f, &mut count))
            .collect::<Result<_, _>>()?,
    };
    check_patterns(&filters)?;
    if metrics.contains(&Metric::Percentage) && dimensions.is_empty() {
        return err("metric `percentage` needs at least one dimension");
    }
    let goal_dimension = dimensions.contains(&Dimension::Field(Field::Goal));
    let goal_filtered = filters.iter().any(|f| {
        matches!(
            f,
            Filter::Match {
                op: Op::Is,
                field: Field::Column(Property::Name) | Field::Goal,
                ..
            }
        )
    });
    for (m, name) in [
        (Metric::ConversionRate, "conversion_rate"),
        (Metric::GroupConversionRate, "group_conversion_rate"),
    ] {
        if metrics.contains(&m) && !goal_dimension && !goal_filtered {
            return err(format!(
                "Metric `{name}` can only be queried with event:goal filters or dimensions (or a top-level [\"is\", \"event:name\", [...]] filter)."
            ));
        }
    }
    if metrics.contains(&Metric::GroupConversionRate) && dimensions.is_empty() {
        return err("metric `group_conversion_rate` needs at least one dimension");
    }
    if goal_dimension && metrics.contains(&Metric::Percentage) {
        return err("metric `percentage` cannot be used with the `event:goal` dimension");
    }
    if filters.iter().any(nests_goal) {
        return err(
            "Invalid filters. Dimension `event:goal` can only be filtered at the top level.",
        );
    }
    let order_by = parse_order_by(obj.get("order_by"), &metrics, &dimensions)?;
    let (mut total_rows, mut time_labels, mut comparison) = (false, false, None);
    let (mut imports, mut imports_meta) = (false, false);
    if let Some(include) = obj.get("include") {
        let Some(include) = include.as_object() else {
            return err("`include` must be an object");
        };
        for (key, value) in include {
            let flag = value.as_bool();
            match (key.as_str(), flag) {
                ("total_rows", Some(b)) => total_rows = b,
                ("time_labels", Some(b)) => time_labels = b,
                ("imports", Some(b)) => imports = b,
                ("imports_meta", Some(b)) => imports_meta = b,
                ("comparisons", _) => comparison = Some(parse_comparison(value)?),
                (k, None)
                    if ["total_rows", "time_labels", "imports", "imports_meta"].contains(&k) =>
                {
                    return err(format!("`include.{k}` must be true or false"));
                }
                (k, _) => return err(format!("unknown `include.{k}`")),
            }
        }
    }
    if time_labels && !dimensions.iter().any(|d| matches!(d, Dimension::Time(_))) {
        return err("`include.time_labels` needs a time dimension");
    }
    let (mut limit, mut offset) = (MAX_LIMIT, 0);
    if let Some(p) = obj.get("pagination") {
        let Some(p) = p.as_object() else {
            return err("`pagination` must be an object");
        };
        for (key, value) in p {
            let n = value.as_u64().ok_or_else(|| {
                QueryError(format!("`pagination.{key}` must be a non-negative integer"))
            })?;
            match key.as_str() {
                "limit" if (1..=MAX_LIMIT).contains(&n) => limit = n,
                "limit" => return err(format!("`pagination.limit` must be 1..={MAX_LIMIT}")),
                "offset" => offset = n,
                other => return err(format!("unknown `pagination.{other}`")),
            }
        }
    }
    let sampling = match obj.get("sampling") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return err("`sampling` must be true (sample large questions) or false (exact)"),
    };
    Ok(Query {
        site_id,
        metrics,
        date_range,
        dimensions,
        filters,
        order_by,
        limit,
        offset,
        total_rows,
        time_labels,
        comparison,
        sampling,
        imports,
        imports_meta: imports || imports_meta,
        resolved_goals: Vec::new(),
        revenue_currency: None,
        goal_key: None,
    })
}

/// Whether an `event:goal` filter sits inside `and`, `or` or `not` (inside `has_done` it may).
fn nests_goal(f: &Filter) -> bool {
    fn any_goal(f: &Filter) -> bool {
        match f {
            Filter::Match { field, .. } => *field == Field::Goal,
            Filter::And(l) | Filter::Or(l) => l.iter().any(any_goal),
            Filter::Not(f) => any_goal(f),
            Filter::Behaviour { .. } | Filter::Scrolled { .. } => false,
        }
    }
    match f {
        Filter::Match { .. } | Filter::Behaviour { .. } | Filter::Scrolled { .. } => false,
        Filter::And(l) | Filter::Or(l) => l.iter().any(any_goal),
        Filter::Not(f) => any_goal(f),
    }
}

/// Whether a filter reads only `event:` properties (what `has_done` may wrap).
fn events_only(f: &Filter) -> bool {
    match f {
        Filter::Match { field, .. } => match field {
            Field::Column(p) => !p.per_visit(),
            Field::Prop(_) | Field::Goal => true,
        },
        Filter::And(l) | Filter::Or(l) => l.iter().all(events_only),
        Filter::Not(f) => events_only(f),
        Filter::Behaviour { .. } => false,
        Filter::Scrolled { .. } => true,
    }
}

/// The goal filters of a query: top-level `is` filters on `event:name`, and what its
/// `event:goal` filters were resolved into.
pub fn goal_filters(q: &Query) -> Vec<&Filter> {
    q.filters
        .iter()
        .filter(|f| {
            matches!(
                f,
                Filter::Match {
                    op: Op::Is,
                    field: Field::Column(Property::Name),
                    ..
                }
            ) || q.resolved_goals.contains(f)
        })
        .collect()
}

/// The filters that the denominators of `conversion_rate` and `group_conversion_rate` keep:
/// all but the goal filters and the top-level filters on custom properties, as Plausible
/// counts them.
pub fn conversion_base_filters(q: &Query) -> Vec<&Filter> {
    let goals = goal_filters(q);
    q.filters
        .iter()
        .filter(|f| {
            !goals.contains(f)
                && !matches!(
                    f,
                    Filter::Match {
                        field: Field::Prop(_),
                        ..
                    }
                )
        })
        .collect()
}

fn parse_comparison(v: &Value) -> Result<Comparison, QueryError> {
    let mode = v.get("mode").and_then(Value::as_str);
    match mode {
        Some("previous_period") => Ok(Comparison::PreviousPeriod),
        Some("year_over_year") => Ok(Comparison::YearOverYear),
        Some("custom") => match parse_date_range(v.get("date_range").unwrap_or(&Value::Null))? {
            DateRange::Custom(from, to) => Ok(Comparison::Custom(from, to)),
            _ => err("a custom comparison needs `date_range`: [from, to]"),
        },
        _ => err("`include.comparisons.mode` must be previous_period, year_over_year or custom"),
    }
}

fn parse_metrics(v: Option<&Value>) -> Result<Vec<Metric>, QueryError> {
    let Some(v) = v else {
        return err("missing `metrics`");
    };
    let list = as_array(v, "`metrics`")?;
    if list.is_empty() {
        return err("`metrics` must name at least one metric");
    }
    let mut out = Vec::new();
    for item in list {
        let name = as_str(item, "each metric")?;
        let Some((_, m)) = Metric::ALL.iter().find(|(n, _)| *n == name) else {
            if NOT_YET_METRICS.contains(&name) {
                return err(format!("metric `{name}` is not supported yet"));
            }
            let known: Vec<&str> = Metric::ALL.iter().map(|(n, _)| *n).collect();
            return err(format!(
                "unknown metric `{name}`; known metrics: {}",
                known.join(", ")
            ));
        };
        if out.contains(m) {
            return err(format!("metric `{name}` is listed twice"));
        }
        out.push(*m);
    }
    Ok(out)
}

fn parse_field(name: &str) -> Result<Field, QueryError> {
    if let Some((_, p)) = Property::ALL.iter().find(|(n, _)| *n == name) {
        return Ok(Field::Column(*p));
    }
    if name == "event:goal" {
        return Ok(Field::Goal);
    }
    if let Some(key) = name.strip_prefix("event:props:") {
        if key.is_empty() || key.chars().count() > MAX_PROP_KEY_CHARS {
            return err(format!(
                "`event:props:` needs a property name of 1 to {MAX_PROP_KEY_CHARS} characters"
            ));
        }
        return Ok(Field::Prop(key.to_string()));
    }
    err(format!("unknown dimension `{name}`"))
}

fn parse_dimensions(v: Option<&Value>) -> Result<Vec<Dimension>, QueryError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = as_array(v, "`dimensions`")?;
    if list.len() > MAX_DIMENSIONS {
        return err(format!("at most {MAX_DIMENSIONS} dimensions"));
    }
    let mut out = Vec::new();
    for item in list {
        let name = as_str(item, "each dimension")?;
        let d = match name {
            "time:hour" => Dimension::Time(TimeBucket::Hour),
            "time" | "time:day" => Dimension::Time(TimeBucket::Day),
            "time:week" => Dimension::Time(TimeBucket::Week),
            "time:month" => Dimension::Time(TimeBucket::Month),
            other => Dimension::Field(parse_field(other)?),
        };
        if out.contains(&d) {
            return err(format!("dimension `{name}` is listed twice"));
        }
        if matches!(d, Dimension::Time(_)) && out.iter().any(|x| matches!(x, Dimension::Time(_))) {
            return err("only one time dimension per query");
        }
        out.push(d);
    }
    Ok(out)
}

/// Most bytes of the values of one case-insensitive filter, together.
pub const MAX_ANY_CASE_BYTES: usize = 2000;

/// A filter's modifiers (its fourth element): `{"case_sensitive": bool}`, which only `is`,
/// `is_not`, `contains` and `contains_not` take. Returns whether case matters.
fn parse_modifiers(op: &str, v: &Value) -> Result<bool, QueryError> {
    let Some(obj) = v.as_object() else {
        return err("a filter's fourth element is its modifiers: {\"case_sensitive\": false}");
    };
    let mut case_sensitive = true;
    for (key, value) in obj {
        match (key.as_str(), value) {
            ("case_sensitive", Value::Bool(b)) => case_sensitive = *b,
            ("case_sensitive", _) => return err("`case_sensitive` is true or false"),
            (other, _) => {
                return err(format!(
                    "unknown filter modifier `{}`; the one modifier is `case_sensitive`",
                    other.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    if !matches!(op, "is" | "is_not" | "contains" | "contains_not") {
        return err(format!(
            "`{op}` takes no modifiers: `case_sensitive` applies to is, is_not, contains and contains_not (a `matches` pattern can start with (?i))"
        ));
    }
    Ok(case_sensitive)
}

/// `is`/`contains` (or their negations) with `values`, in any letter case: one regular
/// expression of the values taken literally, `(?i)` for Unicode case folding, which SQLite's
/// REGEXP (Rust's regex), DuckDB and ClickHouse (RE2) all read alike. (Their `lower()` does
/// not: SQLite's lowers ASCII only.) Goal filters are matched the same way, against goal
/// names.
fn any_case(op: Op, values: &[String]) -> Result<(Op, Vec<String>), QueryError> {
    if values.iter().map(String::len).sum::<usize>() > MAX_ANY_CASE_BYTES {
        return err(format!(
            "the values of a case-insensitive filter are at most {MAX_ANY_CASE_BYTES} bytes together"
        ));
    }
    let alternatives = values
        .iter()
        .map(|v| regex::escape(v))
        .collect::<Vec<_>>()
        .join("|");
    let (op, pattern) = match op {
        Op::Is => (Op::Matches, format!("(?i)^(?:{alternatives})$")),
        Op::IsNot => (Op::MatchesNot, format!("(?i)^(?:{alternatives})$")),
        Op::Contains => (Op::Matches, format!("(?i)(?:{alternatives})")),
        Op::ContainsNot => (Op::MatchesNot, format!("(?i)(?:{alternatives})")),
        other => return Ok((other, values.to_vec())),
    };
    Ok((op, vec![pattern]))
}

fn parse_filter(v: &Value, count: &mut usize) -> Result<Filter, QueryError> {
    *count += 1;
    if *count > MAX_FILTERS {
        return err(format!("at most {MAX_FILTERS} filters"));
    }
    let list = as_array(v, "each filter")?;
    let op = list.first().and_then(Value::as_str).ok_or(QueryError(
        "a filter must start with its operator, e.g. [\"is\", \"visit:country\", [\"DE\"]]".into(),
    ))?;
    match op {
        "and" | "or" => {
            let [_, inner] = list.as_slice() else {
                return err(format!(
                    "`{op}` takes one list of filters: [\"{op}\", [filter, ...]]"
                ));
            };
            let inner = as_array(inner, &format!("the filters of `{op}`"))?;
            if inner.is_empty() {
                return err(format!("`{op}` needs at least one filter"));
            }
            let parsed = inner
                .iter()
                .map(|f| parse_filter(f, count))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" {
                Filter::And(parsed)
            } else {
                Filter::Or(parsed)
            })
        }
        "not" => {
            let [_, inner] = list.as_slice() else {
                return err("`not` takes one filter: [\"not\", filter]");
            };
            Ok(Filter::Not(Box::new(parse_filter(inner, count)?)))
        }
        "is" | "is_not" | "contains" | "contains_not" | "matches" | "matches_not" => {
            let case_sensitive = match list.get(3) {
                Some(modifiers) if list.len() == 4 => parse_modifiers(op, modifiers)?,
                _ => true,
            };
            let [_, property, values, ..] = list.as_slice() else {
                return err(format!(
                    "`{op}` takes a dimension and a list of values: [\"{op}\", \"visit:country\", [\"DE\"]]"
                ));
            };
            if list.len() > 4 {
                return err(format!(
                    "`{op}` takes a dimension, a list of values and optional modifiers: [\"{op}\", \"event:page\", [\"/blog\"], {{\"case_sensitive\": false}}]"
                ));
            }
            let field = parse_field(as_str(property, "the dimension of a filter")?)?;
            if field == Field::Goal && !matches!(op, "is" | "contains") {
                return err("only the `is` and `contains` operators are valid for `event:goal`");
            }
            let values = as_array(values, "the values of a filter")?;
            if values.is_empty() || values.len() > MAX_FILTER_VALUES {
                return err(format!("a filter takes 1 to {MAX_FILTER_VALUES} values"));
            }
            let values = values
                .iter()
                .map(|v| match v {
                    Value::String(s) if s.len() <= MAX_FILTER_VALUE_BYTES => Ok(s.clone()),
                    Value::String(_) => err(format!(
                        "filter values are at most {MAX_FILTER_VALUE_BYTES} bytes"
                    )),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => err("filter values must be strings"),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let op = match op {
                "is" => Op::Is,
                "is_not" => Op::IsNot,
                "contains" => Op::Contains,
                "contains_not" => Op::ContainsNot,
                "matches" => Op::Matches,
                _ => Op::MatchesNot,
            };
            if matches!(op, Op::Matches | Op::MatchesNot)
                && values.iter().any(|p| p.len() > MAX_PATTERN_BYTES)
            {
                return err(format!(
                    "a regular expression is at most {MAX_PATTERN_BYTES} bytes"
                ));
            }
            if case_sensitive {
                return Ok(Filter::Match { op, field, values });
            }
            let (op, values) = any_case(op, &values)?;
            Ok(Filter::Match { op, field, values })
        }
        "has_done" | "has_not_done" => {
            let [_, inner] = list.as_slice() else {
                return err(format!(
                    "`{op}` takes one filter: [\"{op}\", [\"is\", \"event:name\", [\"Signup\"]]]"
                ));
            };
            let inner = parse_filter(inner, count)?;
            if !events_only(&inner) {
                return err(format!(
                    "Invalid filters. Behavioral filters (`{op}`) can only be used with event dimension filters, and cannot be nested."
                ));
            }
            Ok(Filter::Behaviour {
                done: op == "has_done",
                inner: Box::new(inner),
            })
        }
        other => err(format!(
            "unknown filter operator `{other}`; expected is, is_not, contains, contains_not, matches, matches_not, and, or, not, has_done, has_not_done"
        )),
    }
}

/// A `date_range` bound: a date (`YYYY-MM-DD`) or a date-time (`YYYY-MM-DDTHH:MM:SS`, with
/// an optional fraction and an optional offset such as `+01:00` or `Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Date(NaiveDate),
    DateTime(Moment),
}

fn parse_bound(s: &str) -> Result<Bound, QueryError> {
    let bad = || {
        QueryError(format!(
            "`{s}` is not a date (YYYY-MM-DD) or a date-time (YYYY-MM-DDTHH:MM:SS, optionally with an offset like +01:00)"
        ))
    };
    if s.len() > 40 {
        return Err(bad());
    }
    if s.len() == 10 {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Bound::Date)
            .map_err(|_| bad());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Bound::DateTime(Moment {
            local: t.naive_local(),
            offset: Some(*t.offset()),
        }));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(local) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Ok(Bound::DateTime(Moment {
                local,
                offset: None,
            }));
        }
    }
    Err(bad())
}

fn parse_date_range(v: &Value) -> Result<DateRange, QueryError> {
    match v {
        Value::String(s) => Ok(match s.as_str() {
            "day" => DateRange::Day,
            "7d" => DateRange::Last(7),
            "28d" => DateRange::Last(28),
            "30d" => DateRange::Last(30),
            "91d" => DateRange::Last(91),
            "month" => DateRange::Month,
            "6mo" => DateRange::Months(6),
            "12mo" => DateRange::Months(12),
            "year" => DateRange::Year,
            "all" => DateRange::All,
            "24h" => DateRange::Hours24,
            other => {
                return err(format!(
                    "unknown date_range `{other}`; expected day, 24h, 7d, 28d, 30d, 91d, month, 6mo, 12mo, year, all or [from, to]"
                ));
            }
        }),
        Value::Array(pair) => {
            let [from, to] = pair.as_slice() else {
                return err("a custom date_range is [from, to]");
            };
            let (from, to) = (
                parse_bound(as_str(from, "date_range start")?)?,
                parse_bound(as_str(to, "date_range end")?)?,
            );
            let (from, to) = match (from, to) {
                (Bound::Date(from), Bound::Date(to)) => (from, to),
                (from, to) => {
                    // Date-times: a date stands for its first second as a start and its last
                    // as an end.
                    let moment = |b: Bound, end: bool| match b {
                        Bound::DateTime(m) => m,
                        Bound::Date(d) => Moment {
                            local: if end {
                                d.and_hms_opt(23, 59, 59).unwrap_or_default()
                            } else {
                                d.and_hms_opt(0, 0, 0).unwrap_or_default()
                            },
                            offset: None,
                        },
                    };
                    let (from, to) = (moment(from, false), moment(to, true));
                    if (to.local - from.local).num_days().abs() > 3660 {
                        return err("a custom date_range spans at most 10 years");
                    }
                    return Ok(DateRange::Instants(from, to));
                }
            };
            if from > to {
                return err(format!("date_range starts ({from}) after it ends ({to})"));
            }
            if (to - from).num_days() > 3660 {
                return err("a custom date_range spans at most 10 years");
            }
            Ok(DateRange::Custom(from, to))
        }
        _ => err("`date_range` must be a string like \"7d\" or a list [from, to]"),
    }
}

fn parse_order_by(
    v: Option<&Value>,
    metrics: &[Metric],
    dimensions: &[Dimension],
) -> Result<Vec<(OrderKey, bool)>, QueryError> {
    let Some(v) = v else {
        // Default: the first metric, largest first; a time dimension ascending.
        let mut out = Vec::new();
        if let Some(i) = dimensions
            .iter()
            .position(|d| matches!(d, Dimension::Time(_)))
        {
            out.push((OrderKey::Dimension(i), false));
        }
        out.push((OrderKey::Metric(metrics[0]), true));
        return Ok(out);
    };
    let mut out = Vec::new();
    for item in as_array(v, "`order_by`")? {
        let pair = as_array(item, "each order_by entry")?;
        let [key, dir] = pair.as_slice() else {
            return err("each order_by entry is [metric or dimension, \"asc\" | \"desc\"]");
        };
        let key = as_str(key, "an order_by key")?;
        let desc = match as_str(dir, "an order_by direction")? {
            "desc" => true,
            "asc" => false,
            other => return err(format!("order direction `{other}` must be asc or desc")),
        };
        let order_key = if let Some(m) = metrics.iter().find(|m| m.name() == key) {
            OrderKey::Metric(*m)
        } else if let Some(i) = dimensions.iter().position(|d| {
            d.label() == key || (key == "time" && matches!(d, Dimension::Time(TimeBucket::Day)))
        }) {
            OrderKey::Dimension(i)
        } else {
            return err(format!(
                "cannot order by `{key}`: it is not among the query's metrics or dimensions"
            ));
        };
        out.push((order_key, desc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> Query {
        parse(&v).unwrap()
    }

    fn bad(v: Value) -> String {
        parse(&v).unwrap_err().0
    }

    #[test]
    fn a_full_query() {
        let q = ok(json!({
            "site_id": "example.com",
            "metrics": ["visitors", "bounce_rate"],
            "date_range": ["2026-01-01", "2026-01-31"],
            "dimensions": ["visit:source", "time:day"],
            "filters": [["is", "visit:country", ["DE", "DK"]], ["not", ["contains", "event:page", ["/admin"]]], ["or", [["is", "visit:device", ["Mobile"]], ["is_not", "visit:browser", ["Safari"]]]]],
            "order_by": [["visitors", "desc"], ["time:day", "asc"]],
            "include": {"total_rows": true, "time_labels": true},
            "pagination": {"limit": 50, "offset": 100}
        }));
        assert_eq!(q.metrics, vec![Metric::Visitors, Metric::BounceRate]);
        assert_eq!(
            q.dimensions,
            vec![
                Dimension::Field(Field::Column(Property::Source)),
                Dimension::Time(TimeBucket::Day)
            ]
        );
        assert_eq!(q.filters.len(), 3);
        assert_eq!(
            q.order_by,
            vec![
                (OrderKey::Metric(Metric::Visitors), true),
                (OrderKey::Dimension(1), false)
            ]
        );
        assert_eq!(
            (q.limit, q.offset, q.total_rows, q.time_labels),
            (50, 100, true, true)
        );
        assert!(
            q.sampling,
            "large questions may be sampled unless asked not to"
        );
        let exact = ok(
            json!({"site_id": "a", "metrics": ["visitors"], "date_range": "7d", "sampling": false}),
        );
        assert!(!exact.sampling);
    }

    #[test]
    fn every_mistake_is_named() {
        let base = || json!({"site_id": "a.org", "metrics": ["visitors"], "date_range": "7d"});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        let cases = [
            (json!([]), "JSON object"),
            (
                json!({"metrics": ["visitors"], "date_range": "7d"}),
                "site_id",
            ),
            (
                with("metrics", json!(["visitorz"])),
                "unknown metric `visitorz`",
            ),
            (with("sampling", json!("off")), "`sampling` must be true"),
            (with("sampling", json!(0.1)), "`sampling` must be true"),
            (with("metrics", json!([])), "at least one metric"),
            (
                with("metrics", json!(["conversion_rate"])),
                "can only be queried with event:goal filters or dimensions",
            ),
            (
                with("metrics", json!(["group_conversion_rate"])),
                "can only be queried with event:goal filters or dimensions",
            ),
            (with("date_range", json!("8d")), "unknown date_range `8d`"),
            (
                with("date_range", json!(["2026-02-01", "2026-01-01"])),
                "starts (2026-02-01) after it ends",
            ),
            (
                with("date_range", json!(["2026-13-01", "2026-01-01"])),
                "not a date",
            ),
            (
                with("dimensions", json!(["visit:planet"])),
                "unknown dimension `visit:planet`",
            ),
            (
                with("dimensions", json!(["time:day", "time:hour"])),
                "one time dimension",
            ),
            (
                with("filters", json!([["equals", "visit:country", ["DE"]]])),
                "unknown filter operator `equals`",
            ),
            (
                with("filters", json!([["is", "visit:country", "DE"]])),
                "must be a list",
            ),
            (
                with("filters", json!([["is", "visit:country", []]])),
                "1 to 100 values",
            ),
            (with("filters", json!([["and", []]])), "at least one filter"),
            (
                with("filters", json!([["matches", "event:page", ["^/(a"]]])),
                "not a valid regular expression",
            ),
            (
                with(
                    "filters",
                    json!([["matches", "event:page", ["/"], {"case_sensitive": false}]]),
                ),
                "`matches` takes no modifiers",
            ),
            (
                with(
                    "filters",
                    json!([["is", "event:page", ["/"], {"case": false}]]),
                ),
                "unknown filter modifier `case`",
            ),
            (
                with(
                    "filters",
                    json!([["is", "event:page", ["/"], {"case_sensitive": "no"}]]),
                ),
                "true or false",
            ),
            (
                with("filters", json!([["is", "event:page", ["/"], {}, {}]])),
                "optional modifiers",
            ),
            (
                with(
                    "filters",
                    json!([["is_not", "event:goal", ["Signup"], {"case_sensitive": false}]]),
                ),
                "only the `is` and `contains` operators",
            ),
            (with("dimensions", json!(["event:props:"])), "property name"),
            (
                with("order_by", json!([["pageviews", "desc"]])),
                "cannot order by `pageviews`",
            ),
            (with("order_by", json!([["visitors", "up"]])), "asc or desc"),
            (with("pagination", json!({"limit": 0})), "pagination.limit"),
            (
                with("include", json!({"time_labels": true})),
                "needs a time dimension",
            ),
            (
                with("metrics", json!(["percentage"])),
                "needs at least one dimension",
            ),
            (with("colour", json!("red")), "unknown field `colour`"),
        ];
        for (query, needle) in cases {
            let msg = bad(query.clone());
            assert!(msg.contains(needle), "{query}: {msg}");
        }
    }

    #[test]
    fn case_insensitive_filters_match_their_values_literally_in_any_case() {
        let pattern = |op: &str, values: Value| {
            let q = parse(
                &json!({"site_id": "a", "metrics": ["visitors"], "date_range": "7d",
                "filters": [[op, "event:page", values, {"case_sensitive": false}]]}),
            )
            .unwrap();
            let Filter::Match { op, values, .. } = &q.filters[0] else {
                panic!("{:?}", q.filters)
            };
            (*op, compile_pattern(&values[0]).unwrap())
        };
        let (op, re) = pattern("is", json!(["/Blog", "/a.b(1)"]));
        assert_eq!(op, Op::Matches);
        for yes in ["/blog", "/BLOG", "/a.b(1)", "/A.B(1)"] {
            assert!(re.is_match(yes), "{yes}");
        }
        for no in ["/blog/x", "/axb(1)", "x/blog", "/a.b1"] {
            assert!(!re.is_match(no), "{no}");
        }
        let (op, re) = pattern("contains_not", json!(["Ä|*"]));
        assert_eq!(op, Op::MatchesNot);
        assert!(re.is_match("/xä|*y") && !re.is_match("/xa|*y") && !re.is_match("/ä"));
        // With the modifier true, or without it, nothing changes.
        let q = parse(
            &json!({"site_id": "a", "metrics": ["visitors"], "date_range": "7d",
            "filters": [["contains", "event:page", ["/B"], {"case_sensitive": true}]]}),
        )
        .unwrap();
        assert!(
            matches!(&q.filters[0], Filter::Match { op: Op::Contains, values, .. } if values == &["/B"])
        );
    }

    #[test]
    fn filter_depth_is_bounded() {
        let mut f = json!(["is", "visit:country", ["DE"]]);
        for _ in 0..40 {
            f = json!(["not", f]);
        }
        let msg = bad(
            json!({"site_id": "a", "metrics": ["visitors"], "date_range": "7d", "filters": [f]}),
        );
        assert!(msg.contains("at most 30 filters"), "{msg}");
    }
}
