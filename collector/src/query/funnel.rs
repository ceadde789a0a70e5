//! Funnels: how many visitors went through 2 to 8 goals in order.
//!
//! `{"site_id", "date_range", "filters"?, "steps": [goal display names], "order"?:
//! "sequence" | "strict", "within"?: "visit" | "day"}`. A visitor reaches step `k` when one of
//! their visits (`within: visit`, the default) or their day (`within: day`; visitor hashes
//! change daily, so a day is as far as a visitor can be followed) holds the first `k` steps in
//! order: with other activity between them (`sequence`, the default), or with none
//! (`strict`, as ClickHouse's `windowFunnel` with `strict_order` counts). Each step answers its
//! visitors, the drop-off from the step before, and the conversion from the first step and
//! from the step before. Filters and the range narrow the events first. Funnels read raw
//! events, so a range that starts before raw retention is answered with 422.

use std::collections::HashMap;

use chrono_tz::Tz;
use serde_json::{Value, json};

use super::model::{Query, QueryError};
use super::run::{Policy, RunError, resolve_goals};
use super::sql::{MAX_FUNNEL_EVENTS, funnel_events};
use super::time::resolve;
use crate::goals::Goal;
use crate::store::{Site, Store, StoreError};

/// Fewest and most steps of a funnel.
pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 8;

/// A funnel question, parsed.
#[derive(Debug, Clone)]
pub struct FunnelQuery {
    /// The range and filters, as a Stats API query holds them.
    pub query: Query,
    /// The steps' goal display names.
    pub steps: Vec<String>,
    pub strict: bool,
    pub per_visit: bool,
}

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

/// Parses a funnel question.
pub fn parse(body: &Value) -> Result<FunnelQuery, QueryError> {
    let Some(o) = body.as_object() else {
        return err("the funnel question must be a JSON object");
    };
    const KNOWN: [&str; 6] = [
        "site_id",
        "date_range",
        "filters",
        "steps",
        "order",
        "within",
    ];
    if let Some(k) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return err(format!(
            "unknown field `{k}`; expected one of {}",
            KNOWN.join(", ")
        ));
    }
    let mut as_query = serde_json::Map::new();
    for k in ["site_id", "date_range", "filters"] {
        if let Some(v) = o.get(k) {
            as_query.insert(k.into(), v.clone());
        }
    }
    as_query.insert("metrics".into(), json!(["visitors"]));
    let query = super::model::parse(&Value::Object(as_query))?;
    let Some(steps) = o.get("steps").and_then(Value::as_array) else {
        return err("`steps` must be a list of goal names");
    };
    if !(MIN_STEPS..=MAX_STEPS).contains(&steps.len()) {
        return err(format!(
            "a funnel has {MIN_STEPS} to {MAX_STEPS} steps; this one has {}",
            steps.len()
        ));
    }
    let steps = steps
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or(QueryError("each step is a goal's display name".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let strict = match o.get("order").map(|v| v.as_str()) {
        None | Some(Some("sequence")) => false,
        Some(Some("strict")) => true,
        _ => return err("`order` must be `sequence` or `strict`"),
    };
    let per_visit = match o.get("within").map(|v| v.as_str()) {
        None | Some(Some("visit")) => true,
        Some(Some("day")) => false,
        _ => return err("`within` must be `visit` or `day`"),
    };
    Ok(FunnelQuery {
        query,
        steps,
        strict,
        per_visit,
    })
}

/// How far one visit or day went: the most steps completed in order, starting from any
/// completion of the first step. `events` are (time, mask) in order.
pub fn reached(events: &[(i64, u32)], steps: usize, strict: bool) -> usize {
    let mut best = 0;
    for start in 0..events.len() {
        if events[start].1 & 1 == 0 {
            continue;
        }
        let mut level = 0;
        while level < steps && events[start].1 & (1 << level) != 0 {
            level += 1;
        }
        for &(_, mask) in &events[start + 1..] {
            if level == steps {
                break;
            }
            if mask & (1 << level) != 0 {
                // One event may complete several steps in a row (an engagement event that
                // scrolled past 50 % also passed 25 %), as `windowFunnel` counts it.
                while level < steps && mask & (1 << level) != 0 {
                    level += 1;
                }
            } else if strict {
                break;
            }
        }
        best = best.max(level);
        if best == steps {
            break;
        }
    }
    best
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (10_000.0 * part as f64 / whole as f64).round() / 100.0
    }
}

/// Answers a funnel question for `site`.
pub async fn run(
    store: &dyn Store,
    site: &Site,
    f: &FunnelQuery,
    policy: &Policy,
) -> Result<Value, RunError> {
    let tz: Tz = site
        .timezone
        .parse()
        .map_err(|_| StoreError::Query(format!("site {} has an invalid time zone", site.domain)))?;
    let span = resolve(&f.query.date_range, tz, policy.now)?;
    if span.from < super::rollup::raw_from(policy) {
        return Err(RunError::Purged(format!(
            "a funnel reads raw events, which are kept for {} days: this range starts on {}, before them",
            policy.raw_retention_days, span.first_day
        )));
    }
    let resolved = resolve_goals(store, site, &f.query).await?.query;
    let goals = crate::goals::goals_of(store, site.id).await?;
    let steps: Vec<&Goal> = f
        .steps
        .iter()
        .map(|name| {
            goals.iter().find(|g| g.display_name == *name).ok_or_else(|| {
                RunError::Query(QueryError(format!(
                    "step `{name}` is not a goal of this site (`footfall goal list` shows its goals)"
                )))
            })
        })
        .collect::<Result<_, _>>()?;
    let step_filters: Vec<_> = steps.iter().map(|g| g.filter()).collect();
    let filters: Vec<_> = resolved.filters.iter().collect();
    let statement = funnel_events(
        store.dialect(),
        &filters,
        &step_filters,
        f.per_visit,
        f.strict,
        site.id,
        &span,
    );
    let rows = store
        .run_statement(&statement, 2, 2, policy.deadline)
        .await?;
    if rows.len() > MAX_FUNNEL_EVENTS {
        return Err(RunError::Query(QueryError(format!(
            "this funnel reads more than {MAX_FUNNEL_EVENTS} events: choose a shorter range or add filters"
        ))));
    }
    // The deepest step of each visitor over their visits (or their day).
    let mut deepest: HashMap<&str, usize> = HashMap::new();
    let mut i = 0;
    while i < rows.len() {
        let unit = &rows[i].0[0];
        let mut j = i;
        let mut events = Vec::new();
        while j < rows.len() && rows[j].0[0] == *unit {
            events.push((rows[j].1[0], u32::try_from(rows[j].1[1]).unwrap_or(0)));
            j += 1;
        }
        let level = reached(&events, steps.len(), f.strict);
        let visitor = rows[i].0[1].as_str();
        let d = deepest.entry(visitor).or_default();
        *d = (*d).max(level);
        i = j;
    }
    let reaching: Vec<i64> = (1..=steps.len())
        .map(|k| deepest.values().filter(|l| **l >= k).count() as i64)
        .collect();
    let first = reaching[0];
    let answer: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let before = if k == 0 { first } else { reaching[k - 1] };
            let dropoff = before - reaching[k];
            json!({
                "label": g.display_name,
                "visitors": reaching[k],
                "dropoff": dropoff,
                "dropoff_percentage": percent(dropoff, before),
                "conversion_rate": percent(reaching[k], first),
                "conversion_rate_step": percent(reaching[k], before),
            })
        })
        .collect();
    Ok(json!({
        "steps": answer,
        "meta": {"order": if f.strict { "strict" } else { "sequence" },
                 "within": if f.per_visit { "visit" } else { "day" }},
        "query": {"site_id": site.domain, "date_range": [span.first_day.to_string(), span.last_day.to_string()],
                  "time_zone": tz.name()},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_reaches_the_steps_it_completes_in_order() {
        // Steps A (bit 0), B (bit 1), C (bit 2); 8 is another event.
        let ev = |masks: &[u32]| -> Vec<(i64, u32)> {
            masks
                .iter()
                .enumerate()
                .map(|(i, m)| (i as i64, *m))
                .collect()
        };
        assert_eq!(reached(&ev(&[1, 2, 4]), 3, false), 3);
        assert_eq!(reached(&ev(&[1, 8, 2, 8, 4]), 3, false), 3);
        assert_eq!(reached(&ev(&[1, 8, 2, 8, 4]), 3, true), 1);
        assert_eq!(reached(&ev(&[2, 4]), 3, false), 0, "no first step");
        assert_eq!(reached(&ev(&[1, 4, 2]), 3, false), 2, "C before B");
        // A strict chain may start at a later first step.
        assert_eq!(reached(&ev(&[1, 1, 2, 4]), 3, true), 3);
        assert_eq!(reached(&ev(&[1, 8, 1, 2]), 3, true), 2);
        // An event can complete two steps (the same goal twice).
        assert_eq!(reached(&ev(&[1 | 4, 2, 1 | 4]), 3, false), 3);
        // One event may complete consecutive steps at once (a scroll past 50 % passed 25 %).
        assert_eq!(reached(&ev(&[1, 2 | 4]), 3, true), 3);
        assert_eq!(reached(&ev(&[1 | 2, 8, 4]), 3, false), 3);
        assert_eq!(reached(&ev(&[1 | 2, 8, 4]), 3, true), 2);
        assert!(parse(&json!({"site_id": "a", "date_range": "7d", "steps": ["x"]})).is_err());
        assert!(
            parse(
                &json!({"site_id": "a", "date_range": "7d", "steps": ["x", "y"], "order": "loose"})
            )
            .is_err()
        );
    }
}
