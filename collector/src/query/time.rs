//! Date ranges and time buckets in a site's time zone.
//!
//! A [`DateRange`] resolves against "today" in the site's zone to whole local days and to the
//! UTC instants `[from, to)` that bound them. `day` is today; `7d`, `28d`, `30d`, `91d` are that
//! many days ending today; `month`, `year` run from the first of the month or year to today;
//! `6mo` and `12mo` are the current month and the 5 or 11 before it; `all` is the last five
//! years; `[from, to]` is inclusive. `24h` (the last 24 hours) and `[from, to]` given as
//! date-times (in their own offset, else the site's zone; `to` inclusive to the second) resolve
//! to exactly those instants: a *partial* span, which rollups of whole days cannot answer. Buckets are labelled as the Stats API labels them:
//! `YYYY-MM-DD` for days, weeks (their Monday) and months (their first day),
//! `YYYY-MM-DD HH:00:00` for hours.

use chrono::{DateTime, Datelike, Days, Duration, Months, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::{DateRange, QueryError, TimeBucket};

/// Longest range `all` covers, in days.
pub const ALL_DAYS: u64 = 5 * 365;
/// Most time buckets one query may produce.
pub const MAX_BUCKETS: usize = 10_000;

/// A resolved range: local days and the UTC instants around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// UTC seconds of the first day's local midnight.
    pub from: i64,
    /// UTC seconds of the local midnight after the last day (or the end of a partial span).
    pub to: i64,
    /// `from` and `to` are instants inside days rather than the days' local midnights.
    pub partial: bool,
}

impl Span {
    /// A span of whole local days.
    pub fn days(tz: Tz, first_day: NaiveDate, last_day: NaiveDate) -> Span {
        Span {
            first_day,
            last_day,
            from: local_midnight(tz, first_day),
            to: local_midnight(tz, last_day + Days::new(1)),
            partial: false,
        }
    }

    /// The span `[from, to)` of UTC seconds, with the local days it touches.
    pub fn instants(tz: Tz, from: i64, to: i64) -> Span {
        let day = |t: i64| {
            DateTime::from_timestamp(t, 0)
                .unwrap_or_default()
                .with_timezone(&tz)
                .date_naive()
        };
        Span {
            first_day: day(from),
            last_day: day((to - 1).max(from)),
            from,
            to,
            partial: true,
        }
    }
}

/// The UTC instant of a query's date-time: in its own offset, else in the site's zone.
fn instant(tz: Tz, m: &super::model::Moment) -> i64 {
    match m.offset {
        Some(offset) => m.local.and_utc().timestamp() - i64::from(offset.local_minus_utc()),
        None => match tz.from_local_datetime(&m.local) {
            chrono::LocalResult::Single(t) => t.timestamp(),
            chrono::LocalResult::Ambiguous(early, _) => early.timestamp(),
            // A local time skipped by a DST change: the instant the clocks jumped to.
            chrono::LocalResult::None => (1..=180)
                .find_map(|min| {
                    tz.from_local_datetime(&(m.local + Duration::minutes(min)))
                        .earliest()
                })
                .map_or(m.local.and_utc().timestamp(), |t| t.timestamp()),
        },
    }
}

/// The UTC instant of local midnight starting `day` in `tz` (the first instant of the day
/// when midnight falls in a DST gap).
pub fn local_midnight(tz: Tz, day: NaiveDate) -> i64 {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.timestamp(),
        chrono::LocalResult::Ambiguous(early, _) => early.timestamp(),
        // Midnight skipped: the day starts at the first instant after the gap.
        chrono::LocalResult::None => (1..=180)
            .find_map(|m| {
                tz.from_local_datetime(&(naive + Duration::minutes(m)))
                    .earliest()
            })
            .map_or(naive.and_utc().timestamp(), |t| t.timestamp()),
    }
}

/// Resolves `range` for a site in `tz` at `now`.
pub fn resolve(range: &DateRange, tz: Tz, now: DateTime<Utc>) -> Result<Span, QueryError> {
    let today = now.with_timezone(&tz).date_naive();
    let first_of_month = today.with_day(1).unwrap_or(today);
    let (first_day, last_day) = match range {
        DateRange::Day => (today, today),
        DateRange::Last(n) => (today - Days::new(u64::from(n.saturating_sub(1))), today),
        DateRange::Month => (first_of_month, today),
        DateRange::Months(n) => (first_of_month - Months::new(n.saturating_sub(1)), today),
        DateRange::Year => (today.with_ordinal(1).unwrap_or(today), today),
        DateRange::All => (today - Days::new(ALL_DAYS - 1), today),
        DateRange::Custom(from, to) => (*from, *to),
        DateRange::Hours24 => {
            let to = now.timestamp() + 1;
            return Ok(Span::instants(tz, to - 86_400, to));
        }
        DateRange::Instants(from, to) => {
            let (from, to) = (instant(tz, from), instant(tz, to) + 1);
            if from >= to {
                return Err(QueryError("date_range starts after it ends".into()));
            }
            return Ok(Span::instants(tz, from, to));
        }
    };
    let after = last_day
        .succ_opt()
        .ok_or_else(|| QueryError("date_range ends too late".into()))?;
    Ok(Span {
        first_day,
        last_day,
        from: local_midnight(tz, first_day),
        to: local_midnight(tz, after),
        partial: false,
    })
}

/// The span a comparison covers: the same length just before, a year earlier, or custom.
pub fn comparison_span(c: &super::model::Comparison, span: &Span, tz: Tz) -> Span {
    use super::model::Comparison;
    if span.partial {
        // The same length of time just before, or the same local times a year earlier.
        return match c {
            Comparison::PreviousPeriod => {
                Span::instants(tz, span.from - (span.to - span.from), span.from)
            }
            Comparison::YearOverYear => {
                let year_before = |t: i64| {
                    let local = DateTime::from_timestamp(t, 0)
                        .unwrap_or_default()
                        .with_timezone(&tz)
                        .naive_local();
                    let earlier = local - Months::new(12);
                    instant(
                        tz,
                        &super::model::Moment {
                            local: earlier,
                            offset: None,
                        },
                    )
                };
                Span::instants(tz, year_before(span.from), year_before(span.to))
            }
            Comparison::Custom(from, to) => Span::days(tz, *from, *to),
        };
    }
    let (first_day, last_day) = match c {
        Comparison::PreviousPeriod => {
            let days = (span.last_day - span.first_day).num_days() as u64 + 1;
            (
                span.first_day - Days::new(days),
                span.first_day - Days::new(1),
            )
        }
        Comparison::YearOverYear => (
            span.first_day - Months::new(12),
            span.last_day - Months::new(12),
        ),
        Comparison::Custom(from, to) => (*from, *to),
    };
    Span::days(tz, first_day, last_day)
}

/// The label of the bucket a local date-time falls in.
pub fn bucket_start(bucket: TimeBucket, day: NaiveDate) -> NaiveDate {
    match bucket {
        TimeBucket::Hour | TimeBucket::Day => day,
        TimeBucket::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
        TimeBucket::Month => day.with_day(1).unwrap_or(day),
    }
}

/// Every bucket label of the span, in order. Hours of a partial span are those it overlaps.
pub fn labels(bucket: TimeBucket, span: &Span, tz: Tz) -> Result<Vec<String>, QueryError> {
    let mut out = Vec::new();
    let mut day = bucket_start(bucket, span.first_day);
    let hour_start = |day: NaiveDate, h: u32| {
        instant(
            tz,
            &super::model::Moment {
                local: day.and_hms_opt(h, 0, 0).unwrap_or_default(),
                offset: None,
            },
        )
    };
    let overlaps = |day: NaiveDate, h: u32| {
        let end = if h == 23 {
            hour_start(day + Days::new(1), 0)
        } else {
            hour_start(day, h + 1)
        };
        !span.partial || (hour_start(day, h) < span.to && end > span.from)
    };
    while day <= span.last_day {
        match bucket {
            TimeBucket::Hour => out.extend(
                (0..24)
                    .filter(|h| overlaps(day, *h))
                    .map(|h| format!("{day} {h:02}:00:00")),
            ),
            _ => out.push(day.to_string()),
        }
        if out.len() > MAX_BUCKETS {
            return Err(QueryError(format!(
                "more than {MAX_BUCKETS} time buckets; choose a coarser time dimension or a shorter range"
            )));
        }
        day = match bucket {
            TimeBucket::Hour | TimeBucket::Day => day + Days::new(1),
            TimeBucket::Week => day + Days::new(7),
            TimeBucket::Month => day + Months::new(1),
        };
    }
    Ok(out)
}

/// The zone's UTC offsets over `[from, to)`: `(since, offset_seconds)` pieces, for stores
/// without a time zone database (SQLite) to turn UTC seconds into local ones.
pub fn offsets(tz: Tz, from: i64, to: i64) -> Vec<(i64, i32)> {
    let offset_at = |t: i64| {
        DateTime::from_timestamp(t, 0).map_or(0, |d| {
            tz.offset_from_utc_datetime(&d.naive_utc())
                .fix()
                .local_minus_utc()
        })
    };
    let mut out = vec![(from, offset_at(from))];
    let step = 900;
    let mut t = from;
    while t < to {
        let next = (t + step).min(to);
        let (before, after) = (offset_at(t), offset_at(next));
        if before != after {
            // Find the exact second the offset changes.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(mid) == before {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            out.push((hi, after));
        }
        t = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_in_the_site_zone() {
        let cph: Tz = "Europe/Copenhagen".parse().unwrap();
        // 23:30 UTC on the 14th is already the 15th in Copenhagen.
        let now = utc("2026-03-14T23:30:00Z");
        let s = resolve(&DateRange::Day, cph, now).unwrap();
        assert_eq!(
            (s.first_day, s.last_day),
            (d("2026-03-15"), d("2026-03-15"))
        );
        assert_eq!(s.from, utc("2026-03-14T23:00:00Z").timestamp());
        assert_eq!(s.to - s.from, 86_400);
        let s = resolve(&DateRange::Last(7), cph, now).unwrap();
        assert_eq!(s.first_day, d("2026-03-09"));
        let s = resolve(&DateRange::Months(6), cph, now).unwrap();
        assert_eq!(s.first_day, d("2025-10-01"));
        let s = resolve(&DateRange::Year, cph, now).unwrap();
        assert_eq!(s.first_day, d("2026-01-01"));
        let s = resolve(&DateRange::Month, cph, now).unwrap();
        assert_eq!(s.first_day, d("2026-03-01"));
    }

    #[test]
    fn date_times_are_honoured_in_their_offset_or_the_site_zone() {
        use crate::query::model::{Comparison, parse};
        let cph: Tz = "Europe/Copenhagen".parse().unwrap();
        let now = utc("2026-12-02T12:00:00Z");
        let query = |json: &str| {
            parse(
                &serde_json::from_str(&format!(
                    r#"{{"site_id":"a.org","metrics":["visitors"],"date_range":{json}}}"#
                ))
                .unwrap(),
            )
        };
        let span = |json: &str| resolve(&query(json).unwrap().date_range, cph, now).unwrap();
        // With an offset: 10:00+01:00 is 09:00 UTC; the end is inclusive to the second.
        let s = span(r#"["2026-12-01T10:00:00+01:00", "2026-12-01T10:05:00+01:00"]"#);
        assert_eq!(s.from, utc("2026-12-01T09:00:00Z").timestamp());
        assert_eq!(s.to, utc("2026-12-01T09:05:01Z").timestamp());
        assert!(s.partial);
        assert_eq!(
            (s.first_day, s.last_day),
            (d("2026-12-01"), d("2026-12-01"))
        );
        // Without one: the site's zone (UTC+1 in December).
        let s = span(r#"["2026-12-01T10:00:00", "2026-12-01T10:05:00"]"#);
        assert_eq!(s.from, utc("2026-12-01T09:00:00Z").timestamp());
        // `Z` and a fraction; a span across local midnight touches two days.
        let s = span(r#"["2026-12-01T10:00:00.5Z", "2026-12-01T23:30:00Z"]"#);
        assert_eq!(s.from, utc("2026-12-01T10:00:00Z").timestamp());
        assert_eq!(
            (s.first_day, s.last_day),
            (d("2026-12-01"), d("2026-12-02"))
        );
        // The last 24 hours, with the hours it overlaps as labels.
        let s = span(r#""24h""#);
        assert_eq!((s.to - s.from, s.to), (86_400, now.timestamp() + 1));
        assert!(s.partial);
        let hours = labels(TimeBucket::Hour, &s, cph).unwrap();
        assert_eq!(hours.len(), 25, "{hours:?}");
        assert_eq!(hours[0], "2026-12-01 13:00:00");
        assert_eq!(hours[24], "2026-12-02 13:00:00");
        // Dates alone still mean whole days.
        let s = span(r#"["2026-12-01", "2026-12-01"]"#);
        assert!(!s.partial);
        assert_eq!(s.to - s.from, 86_400);
        // The previous period of a partial span is the same length just before.
        let s = span(r#"["2026-12-01T10:00:00Z", "2026-12-01T10:59:59Z"]"#);
        let p = comparison_span(&Comparison::PreviousPeriod, &s, cph);
        assert_eq!((p.from, p.to), (s.from - 3600, s.from));
        // Mistakes are named.
        assert!(
            resolve(
                &query(r#"["2026-12-01T10:05:00Z", "2026-12-01T10:00:00Z"]"#)
                    .unwrap()
                    .date_range,
                cph,
                now
            )
            .is_err()
        );
        for bad in [
            r#"["2026-12-01T25:00:00Z", "2026-12-01T26:00:00Z"]"#,
            r#"["yesterday", "2026-12-01T10:00:00Z"]"#,
            r#"["2026-12-01T10:00:00+99:00", "2026-12-01T11:00:00Z"]"#,
        ] {
            let e = query(bad).unwrap_err();
            assert!(e.0.contains("date-time"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_dst_day_has_23_hours() {
        let cph: Tz = "Europe/Copenhagen".parse().unwrap();
        let s = resolve(
            &DateRange::Custom(d("2026-03-29"), d("2026-03-29")),
            cph,
            utc("2026-04-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(s.to - s.from, 23 * 3600);
        let o = offsets(cph, s.from, s.to);
        assert_eq!(
            o,
            vec![
                (s.from, 3600),
                (utc("2026-03-29T01:00:00Z").timestamp(), 7200)
            ]
        );
    }

    #[test]
    fn labels_per_bucket() {
        let span = Span {
            first_day: d("2026-01-30"),
            last_day: d("2026-02-02"),
            from: 0,
            to: 0,
            partial: false,
        };
        assert_eq!(
            labels(TimeBucket::Day, &span, Tz::UTC).unwrap(),
            ["2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"]
        );
        assert_eq!(
            labels(TimeBucket::Week, &span, Tz::UTC).unwrap(),
            ["2026-01-26", "2026-02-02"]
        );
        assert_eq!(
            labels(TimeBucket::Month, &span, Tz::UTC).unwrap(),
            ["2026-01-01", "2026-02-01"]
        );
        let hours = labels(TimeBucket::Hour, &span, Tz::UTC).unwrap();
        assert_eq!(
            (hours.len(), hours[1].as_str()),
            (96, "2026-01-30 01:00:00")
        );
        let long = Span {
            first_day: d("2000-01-01"),
            last_day: d("2026-01-01"),
            from: 0,
            to: 0,
            partial: false,
        };
        assert!(labels(TimeBucket::Hour, &long, Tz::UTC).is_err());
    }
}
