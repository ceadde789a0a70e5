//! Goals: what a site counts as a conversion.
//!
//! A goal is a pageview of a path (with wildcards: `*` and `**` are any run of characters,
//! `/` included, as Plausible reads them today), a scroll past a share of such a page (from
//! the engagement events the tracker sends as a page is left), or a custom event by name;
//! pageview and event goals narrowed by up to three property values if wanted. Each has a display name, which is
//! how the Stats API (`event:goal`) and the dashboard name it. Goals are kept as records
//! (kind [`GOAL_KIND`]), so every store holds them the same way, and a query resolves them
//! into filters on the events (see [`Goal::filter`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::query::model::{Field, Filter, Op, Property};
use crate::store::{Store, StoreError};

/// Record kind of goals; the id is `<site id>:<goal id>`.
pub const GOAL_KIND: &str = "goal";
/// Most goals of one site.
pub const MAX_GOALS: usize = 100;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// Longest path pattern or event name, in characters.
pub const MAX_PATTERN_CHARS: usize = 500;
/// Most property conditions of an event goal (Plausible's limit).
pub const MAX_GOAL_PROPS: usize = 3;

/// What completes a goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rule {
    /// A pageview of a path matching `path`, with each of `props`.
    Pageview {
        path: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        props: BTreeMap<String, String>,
    },
    /// A custom event named `name` whose properties include each of `props`.
    Event {
        name: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        props: BTreeMap<String, String>,
    },
    /// A page matching `path` scrolled past `threshold` % (1 to 100), as a visit's
    /// engagement events report it.
    Scroll {
        path: String,
        #[serde(rename = "scroll_threshold")]
        threshold: u8,
    },
}

/// A goal of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    pub id: u32,
    pub site_id: u32,
    /// How answers name it (unique within the site).
    pub display_name: String,
    #[serde(flatten)]
    pub rule: Rule,
    /// The currency of the revenue its events carry (ISO 4217), for revenue goals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A goal as a user asks for it: the rule, and optionally a display name and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGoal {
    pub rule: Rule,
    pub display_name: Option<String>,
    pub currency: Option<String>,
}

impl NewGoal {
    /// From a JSON body: `{"type": "pageview", "path": …}` or `{"type": "event", "name": …,
    /// "props": {…}}`, with `display_name` and `currency` if wanted; any other field is a
    /// mistake.
    pub fn from_json(v: &serde_json::Value) -> Result<NewGoal, GoalError> {
        let Some(o) = v.as_object() else {
            return invalid("a goal is a JSON object");
        };
        const KNOWN: [&str; 7] = [
            "type",
            "path",
            "name",
            "props",
            "display_name",
            "currency",
            "scroll_threshold",
        ];
        if let Some(k) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return invalid(format!(
                "unknown field `{k}`; a goal has {}",
                KNOWN.join(", ")
            ));
        }
        let text = |k: &str| -> Result<Option<String>, GoalError> {
            match o.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => invalid(format!("`{k}` must be a string")),
            }
        };
        let rule = match text("type")?.as_deref() {
            Some("pageview") => {
                if o.contains_key("name") {
                    return invalid("a pageview goal has a `path`, not a `name`");
                }
                Rule::Pageview {
                    path: text("path")?
                        .ok_or(GoalError::Invalid("a pageview goal needs a `path`".into()))?,
                    props: props_of(o)?,
                }
            }
            Some("scroll") => {
                if o.contains_key("name") || o.contains_key("props") {
                    return invalid("a scroll goal has a `path` and a `scroll_threshold` only");
                }
                let threshold = match o.get("scroll_threshold") {
                    Some(serde_json::Value::Number(n)) => n
                        .as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or(GoalError::Invalid(
                            "`scroll_threshold` must be a whole percentage, 1 to 100".into(),
                        ))?,
                    _ => return invalid("a scroll goal needs a `scroll_threshold` (1 to 100)"),
                };
                Rule::Scroll {
                    path: text("path")?
                        .ok_or(GoalError::Invalid("a scroll goal needs a `path`".into()))?,
                    threshold,
                }
            }
            Some("event") => {
                if o.contains_key("path") {
                    return invalid("an event goal has a `name`, not a `path`");
                }
                let props = props_of(o)?;
                Rule::Event {
                    name: text("name")?
                        .ok_or(GoalError::Invalid("an event goal needs a `name`".into()))?,
                    props,
                }
            }
            _ => return invalid("`type` must be `pageview`, `scroll` or `event`"),
        };
        Ok(NewGoal {
            rule,
            display_name: text("display_name")?,
            currency: text("currency")?,
        })
    }
}

/// Why a goal cannot be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum GoalError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, GoalError> {
    Err(GoalError::Invalid(msg.into()))
}

/// A JSON goal's `props`: an object of strings, or none.
fn props_of(
    o: &serde_json::Map<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, GoalError> {
    match o.get("props") {
        None | Some(serde_json::Value::Null) => Ok(BTreeMap::new()),
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                _ => invalid(format!("the value of property `{k}` must be a string")),
            })
            .collect(),
        Some(_) => invalid("`props` must be an object of strings"),
    }
}

/// Checks a goal's property conditions.
fn check_props(props: &BTreeMap<String, String>) -> Result<(), GoalError> {
    if props.len() > MAX_GOAL_PROPS {
        return invalid(format!("at most {MAX_GOAL_PROPS} property conditions"));
    }
    for (k, v) in props {
        text("a property name", k, 300)?;
        text(&format!("the value of property `{k}`"), v, 2000)?;
    }
    Ok(())
}

/// Plausible's default display name: `Visit /path` for a pageview goal, the event's name for
/// an event goal.
pub fn default_name(rule: &Rule) -> String {
    match rule {
        Rule::Pageview { path, .. } => format!("Visit {path}"),
        Rule::Scroll { path, threshold } => format!("Scroll {threshold}% on {path}"),
        Rule::Event { name, .. } => name.clone(),
    }
}

/// A path pattern as a goal keeps it: trimmed, with a leading `/` (as Plausible adds it).
fn goal_path(path: String) -> Result<String, GoalError> {
    let mut path = path.trim().to_string();
    text("the path", &path, MAX_PATTERN_CHARS)?;
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(path)
}

fn text(what: &str, s: &str, max: usize) -> Result<(), GoalError> {
    if s.trim().is_empty() {
        return invalid(format!("{what} must not be empty"));
    }
    if s.chars().count() > max {
        return invalid(format!("{what} is longer than {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return invalid(format!("{what} must not contain control characters"));
    }
    Ok(())
}

/// Checks a new goal and gives it its final shape (display name, trimmed values).
pub fn validate(new: NewGoal) -> Result<(String, Rule, Option<String>), GoalError> {
    let rule = match new.rule {
        Rule::Pageview { path, props } => {
            let path = goal_path(path)?;
            check_props(&props)?;
            Rule::Pageview { path, props }
        }
        Rule::Scroll { path, threshold } => {
            if !(1..=100).contains(&threshold) {
                return invalid(format!(
                    "a scroll threshold is a percentage from 1 to 100, not {threshold}"
                ));
            }
            Rule::Scroll {
                path: goal_path(path)?,
                threshold,
            }
        }
        Rule::Event { name, props } => {
            let name = name.trim().to_string();
            text("the event name", &name, MAX_PATTERN_CHARS)?;
            if name == "pageview" || name == "engagement" {
                return invalid(format!(
                    "`{name}` is not a custom event: make a pageview goal of a path instead"
                ));
            }
            check_props(&props)?;
            Rule::Event { name, props }
        }
    };
    let display_name = match new.display_name {
        Some(n) => n.trim().to_string(),
        None => default_name(&rule),
    };
    text("the display name", &display_name, MAX_NAME_CHARS)?;
    let currency = match new.currency {
        None => None,
        Some(c) => {
            let c = c.trim().to_ascii_uppercase();
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return invalid(format!(
                    "currency `{c}` is not an ISO 4217 code (three letters, e.g. EUR)"
                ));
            }
            if !matches!(rule, Rule::Event { .. }) {
                return invalid("only a custom event goal carries revenue (and a currency)");
            }
            Some(c)
        }
    };
    Ok((display_name, rule, currency))
}

/// The goals of `site_id`, oldest first (by name within a second).
pub async fn goals_of(store: &dyn Store, site_id: u32) -> Result<Vec<Goal>, StoreError> {
    let mut goals: Vec<Goal> = store
        .meta()
        .records(GOAL_KIND)
        .await?
        .into_iter()
        .filter_map(|(_, body)| serde_json::from_str::<Goal>(&body).ok())
        .filter(|g| g.site_id == site_id)
        .collect();
    goals.sort_by(|a, b| (a.created_at, &a.display_name).cmp(&(b.created_at, &b.display_name)));
    Ok(goals)
}

/// Adds a goal to `site_id`.
pub async fn add(
    store: &dyn Store,
    site_id: u32,
    new: NewGoal,
    now: i64,
) -> Result<Goal, GoalError> {
    let (display_name, rule, currency) = validate(new)?;
    let existing = goals_of(store, site_id).await?;
    if existing.len() >= MAX_GOALS {
        return invalid(format!("a site has at most {MAX_GOALS} goals"));
    }
    if let Some(same) = existing.iter().find(|g| g.rule == rule) {
        return invalid(format!(
            "goal `{}` already counts this (id {})",
            same.display_name, same.id
        ));
    }
    if existing.iter().any(|g| g.display_name == display_name) {
        return invalid(format!(
            "a goal is already named `{display_name}`: give this one another --name"
        ));
    }
    let goal = Goal {
        id: rand::random::<u32>() >> 1,
        site_id,
        display_name,
        rule,
        currency,
        created_at: now,
    };
    let body = serde_json::to_string(&goal).map_err(|e| StoreError::Query(e.to_string()))?;
    store
        .meta()
        .put_record(GOAL_KIND, &format!("{site_id}:{}", goal.id), &body)
        .await?;
    Ok(goal)
}

/// Deletes goal `id` of `site_id`; false if there is none.
pub async fn delete(store: &dyn Store, site_id: u32, id: u32) -> Result<bool, StoreError> {
    store
        .meta()
        .delete_record(GOAL_KIND, &format!("{site_id}:{id}"))
        .await
}

/// A path pattern as a regular expression: `*` (and `**`) any run of characters, the rest
/// literal, the whole path matched.
pub fn path_regex(pattern: &str) -> String {
    let literal: Vec<String> = pattern
        .replace("**", "*")
        .split('*')
        .map(regex::escape)
        .collect();
    format!("^{}$", literal.join(".*"))
}

/// The rollup dimension that holds each goal's daily counts, by [`Goal::rollup_key`].
pub const ROLLUP_DIMENSION: &str = "goal";

impl Goal {
    /// The value of the goal's rows in the daily rollups: a hash of what completes it and
    /// of its currency, not of its id or name, so that a goal deleted and added again with
    /// the same rule finds its history, and a goal whose rule differs never takes another's.
    pub fn rollup_key(&self) -> String {
        let rule = serde_json::to_string(&(&self.rule, &self.currency)).unwrap_or_default();
        let hash = blake3::hash(rule.as_bytes());
        hash.to_hex()[..32].to_string()
    }

    /// The events that complete the goal, as a filter.
    pub fn filter(&self) -> Filter {
        let page = |path: &String| {
            if path.contains('*') {
                Filter::Match {
                    op: Op::Matches,
                    field: Field::Column(Property::Page),
                    values: vec![path_regex(path)],
                }
            } else {
                Filter::Match {
                    op: Op::Is,
                    field: Field::Column(Property::Page),
                    values: vec![path.clone()],
                }
            }
        };
        let (name, page, props) = match &self.rule {
            Rule::Pageview { path, props } => ("pageview", Some(page(path)), props),
            Rule::Event { name, props } => (name.as_str(), None, props),
            Rule::Scroll { path, threshold } => {
                return Filter::And(vec![
                    Filter::Scrolled {
                        at_least: *threshold,
                    },
                    page(path),
                ]);
            }
        };
        let mut all = vec![Filter::Match {
            op: Op::Is,
            field: Field::Column(Property::Name),
            values: vec![name.to_string()],
        }];
        all.extend(page);
        all.extend(props.iter().map(|(k, v)| Filter::Match {
            op: Op::Is,
            field: Field::Prop(k.clone()),
            values: vec![v.clone()],
        }));
        Filter::And(all)
    }

    /// How `footfall goal list` shows it.
    pub fn describe(&self) -> String {
        let none = BTreeMap::new();
        let (mut what, props) = match &self.rule {
            Rule::Pageview { path, props } => (format!("pageview {path}"), props),
            Rule::Event { name, props } => (format!("event {name}"), props),
            Rule::Scroll { path, threshold } => (format!("scroll {threshold}% {path}"), &none),
        };
        for (k, v) in props {
            what.push_str(&format!(" {k}={v}"));
        }
        let currency = self
            .currency
            .as_deref()
            .map(|c| format!("\trevenue in {c}"))
            .unwrap_or_default();
        format!("{}\t{}\t{what}{currency}", self.id, self.display_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(&path_regex(p)).unwrap()
    }

    #[test]
    fn wildcards_match_as_plausible_reads_them() {
        assert!(re("/blog/*").is_match("/blog/post"));
        assert!(re("/blog/*").is_match("/blog/"));
        assert!(re("/blog/*").is_match("/blog/2026/post"));
        assert!(!re("/blog/*").is_match("/blog"));
        assert!(re("/blog/**").is_match("/blog/2026/post"));
        assert!(re("/checkout/*/done").is_match("/checkout/42/done"));
        assert!(!re("/checkout/*/done").is_match("/checkout/42/done/again"));
        assert!(re("*/feed").is_match("/blog/feed"));
        assert!(!re("/a.b").is_match("/axb"), "the rest is literal");
        assert!(re("/a.b").is_match("/a.b"));
        assert!(!re("/x").is_match("/x/y"), "the whole path");
    }

    #[test]
    fn a_pageview_goal_with_properties_keeps_pageviews_with_them() {
        let goal = Goal {
            id: 1,
            site_id: 1,
            display_name: "Visit /pricing".into(),
            rule: Rule::Pageview {
                path: "/pricing".into(),
                props: [("author".to_string(), "ann".to_string())].into(),
            },
            currency: None,
            created_at: 0,
        };
        let Filter::And(all) = goal.filter() else {
            panic!("{:?}", goal.filter())
        };
        assert_eq!(all.len(), 3);
        assert!(all.contains(&Filter::Match {
            op: Op::Is,
            field: Field::Prop("author".into()),
            values: vec!["ann".into()],
        }));
        assert!(goal.describe().ends_with("pageview /pricing author=ann"));
    }

    #[test]
    fn goals_are_checked() {
        let page = |p: &str| NewGoal {
            rule: Rule::Pageview {
                path: p.into(),
                props: BTreeMap::new(),
            },
            display_name: None,
            currency: None,
        };
        assert_eq!(validate(page("/blog/*")).unwrap().0, "Visit /blog/*");
        assert_eq!(validate(page("blog")).unwrap().0, "Visit /blog");
        assert!(validate(page("")).is_err());
        assert!(validate(page(&format!("/{}", "a".repeat(600)))).is_err());
        let event = |n: &str, c: Option<&str>| NewGoal {
            rule: Rule::Event {
                name: n.into(),
                props: BTreeMap::new(),
            },
            display_name: None,
            currency: c.map(str::to_string),
        };
        assert_eq!(
            validate(event("Purchase", Some("eur"))).unwrap().2,
            Some("EUR".into())
        );
        assert!(validate(event("Purchase", Some("EURO"))).is_err());
        assert!(validate(event("pageview", None)).is_err());
        let mut with_currency = page("/x");
        with_currency.currency = Some("USD".into());
        assert!(validate(with_currency).is_err());
    }

    #[test]
    fn scroll_goals_are_read_and_checked() {
        let json = |v: serde_json::Value| NewGoal::from_json(&v).map(validate);
        let (name, rule, _) = json(serde_json::json!(
            {"type": "scroll", "path": "blog/*", "scroll_threshold": 75}
        ))
        .unwrap()
        .unwrap();
        assert_eq!(name, "Scroll 75% on /blog/*");
        assert_eq!(
            rule,
            Rule::Scroll {
                path: "/blog/*".into(),
                threshold: 75
            }
        );
        for (bad, reason) in [
            (
                serde_json::json!({"type": "scroll", "path": "/x"}),
                "needs a `scroll_threshold`",
            ),
            (
                serde_json::json!({"type": "scroll", "path": "/x", "scroll_threshold": 300}),
                "whole percentage",
            ),
            (
                serde_json::json!({"type": "scroll", "path": "/x", "scroll_threshold": 1.5}),
                "whole percentage",
            ),
            (
                serde_json::json!({"type": "scroll", "path": "/x", "scroll_threshold": 50, "props": {}}),
                "only",
            ),
        ] {
            let e = NewGoal::from_json(&bad).unwrap_err().to_string();
            assert!(e.contains(reason), "{bad}: {e}");
        }
        let zero = json(serde_json::json!({"type": "scroll", "path": "/x", "scroll_threshold": 0}))
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(zero.contains("from 1 to 100"), "{zero}");
        // The goal is its engagement events on the page, past the threshold.
        let goal = Goal {
            id: 1,
            site_id: 1,
            display_name: name,
            rule,
            currency: None,
            created_at: 0,
        };
        let Filter::And(all) = goal.filter() else {
            panic!()
        };
        assert!(all.contains(&Filter::Scrolled { at_least: 75 }));
        assert!(goal.describe().ends_with("scroll 75% /blog/*"));
    }
}
