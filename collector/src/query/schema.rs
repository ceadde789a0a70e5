//! The JSON Schema of a Stats API v2 query, served at `GET /api/docs/query/schema.json`. It
//! is written from the parser's own lists (metrics, properties, time dimensions, date ranges,
//! filter operators), so it names what [`super::model::parse`] accepts; a test asks the parser
//! about every value the schema lists.

use serde_json::{Value, json};

use super::model::{Metric, Property};

/// The named date ranges.
pub const DATE_RANGES: [&str; 11] = [
    "day", "24h", "7d", "28d", "30d", "91d", "month", "6mo", "12mo", "year", "all",
];
/// The time dimensions.
pub const TIME_DIMENSIONS: [&str; 5] = ["time", "time:hour", "time:day", "time:week", "time:month"];
/// The comparison operators of a filter.
pub const OPERATORS: [&str; 6] = [
    "is",
    "is_not",
    "contains",
    "contains_not",
    "matches",
    "matches_not",
];

/// The schema document.
pub fn schema() -> Value {
    let metrics: Vec<&str> = Metric::ALL.iter().map(|(n, _)| *n).collect();
    let properties: Vec<&str> = Property::ALL.iter().map(|(n, _)| *n).collect();
    let property = json!({"anyOf": [
        {"enum": properties},
        {"type": "string", "pattern": "^event:props:.+$"},
        {"const": "event:goal"},
    ]});
    let dimension = json!({"anyOf": [property, {"enum": TIME_DIMENSIONS}]});
    let date = json!({"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}:\\d{2}(Z|[+-]\\d{2}:\\d{2})?)?$"});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "/api/docs/query/schema.json",
        "title": "Footfall Stats API v2 query (POST /api/v2/query)",
        "type": "object",
        "additionalProperties": false,
        "required": ["site_id", "metrics", "date_range"],
        "properties": {
            "site_id": {"type": "string", "description": "the site's domain"},
            "metrics": {"type": "array", "minItems": 1, "items": {"enum": metrics}},
            "date_range": {
                "description": "a named range in the site's time zone, or [from, to] as dates or date-times (the end included)",
                "anyOf": [
                    {"enum": DATE_RANGES},
                    {"type": "array", "prefixItems": [date, date], "minItems": 2, "maxItems": 2},
                ],
            },
            "dimensions": {"type": "array", "items": dimension},
            "filters": {"type": "array", "items": {"$ref": "#/$defs/filter"}},
            "order_by": {
                "type": "array",
                "items": {"type": "array", "prefixItems": [
                    {"anyOf": [{"enum": metrics}, dimension]},
                    {"enum": ["asc", "desc"]},
                ], "minItems": 2, "maxItems": 2},
            },
            "include": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "total_rows": {"type": "boolean"},
                    "time_labels": {"type": "boolean", "description": "needs a time dimension"},
                    "imports": {"type": "boolean"},
                    "imports_meta": {"type": "boolean"},
                    "comparisons": {
                        "type": "object",
                        "properties": {
                            "mode": {"enum": ["previous_period", "year_over_year", "custom"]},
                            "date_range": {"type": "array", "items": date},
                        },
                        "required": ["mode"],
                    },
                },
            },
            "pagination": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "offset": {"type": "integer", "minimum": 0},
                },
            },
            "sampling": {"type": "boolean", "description": "false asks for an exact answer, never a sample"},
        },
        "$defs": {
            "filter": {"anyOf": [
                {"type": "array", "minItems": 3, "maxItems": 4, "prefixItems": [
                    {"enum": &OPERATORS[..4]},
                    property,
                    {"type": "array", "items": {"type": ["string", "integer"]}},
                    {"type": "object", "additionalProperties": false,
                        "properties": {"case_sensitive": {"type": "boolean", "default": true}}},
                ]},
                {"type": "array", "minItems": 3, "maxItems": 3, "prefixItems": [
                    {"enum": &OPERATORS[4..]},
                    property,
                    {"type": "array", "items": {"type": "string"}},
                ]},
                {"type": "array", "prefixItems": [{"enum": ["and", "or"]}, {"type": "array", "items": {"$ref": "#/$defs/filter"}}]},
                {"type": "array", "prefixItems": [{"const": "not"}, {"$ref": "#/$defs/filter"}]},
                {"type": "array", "prefixItems": [{"enum": ["has_done", "has_not_done"]}, {"$ref": "#/$defs/filter"}]},
            ]},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::model::parse;

    fn query(changes: Value) -> Value {
        let mut q = json!({"site_id": "a.org", "metrics": ["visitors"], "date_range": "7d"});
        for (k, v) in changes.as_object().unwrap() {
            q[k] = v.clone();
        }
        q
    }

    #[test]
    fn every_value_the_schema_lists_is_one_the_parser_takes() {
        let s = schema();
        let listed = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        for m in listed(&s["properties"]["metrics"]["items"]["enum"]) {
            // Some metrics need a dimension or a goal; each is accepted somewhere.
            let ok = [
                json!({"metrics": [m]}),
                json!({"metrics": [m], "dimensions": ["event:page"]}),
                json!({"metrics": [m], "dimensions": ["event:goal"]}),
                json!({"metrics": [m], "filters": [["is", "event:goal", ["Signup"]]]}),
            ]
            .into_iter()
            .any(|c| parse(&query(c)).is_ok());
            assert!(ok, "metric {m}");
        }
        for d in listed(&s["properties"]["dimensions"]["items"]["anyOf"][0]["anyOf"][0]["enum"])
            .into_iter()
            .chain(listed(
                &s["properties"]["dimensions"]["items"]["anyOf"][1]["enum"],
            ))
        {
            assert!(
                parse(&query(json!({"dimensions": [d]}))).is_ok(),
                "dimension {d}"
            );
        }
        for r in listed(&s["properties"]["date_range"]["anyOf"][0]["enum"]) {
            assert!(
                parse(&query(json!({"date_range": r}))).is_ok(),
                "date_range {r}"
            );
        }
        for op in listed(&s["$defs"]["filter"]["anyOf"][0]["prefixItems"][0]["enum"]) {
            for f in [
                json!([[op, "event:page", ["/"]]]),
                json!([[op, "event:page", ["/"], {"case_sensitive": false}]]),
            ] {
                assert!(parse(&query(json!({"filters": f}))).is_ok(), "{f}");
            }
        }
        for op in listed(&s["$defs"]["filter"]["anyOf"][1]["prefixItems"][0]["enum"]) {
            let f = json!([[op, "event:page", ["/"]]]);
            assert!(parse(&query(json!({"filters": f}))).is_ok(), "{f}");
            let f = json!([[op, "event:page", ["/"], {"case_sensitive": false}]]);
            assert!(parse(&query(json!({"filters": f}))).is_err(), "{f}");
        }
        for key in s["properties"].as_object().unwrap().keys() {
            let answer = parse(&query(json!({key.as_str(): "??"})));
            assert!(
                answer.err().is_none_or(|e| !e.0.contains("unknown field")),
                "{key} is a field the parser knows"
            );
        }
        // And what it does not list, the parser refuses.
        assert!(parse(&query(json!({"metrics": ["bogus"]}))).is_err());
        assert!(parse(&query(json!({"dimensions": ["visit:colour"]}))).is_err());
        assert!(parse(&query(json!({"date_range": "3d"}))).is_err());
        assert!(parse(&query(json!({"colour": 1}))).is_err());
    }
}
