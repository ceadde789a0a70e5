//! What reports and alerts say. Their figures are the Stats API's answers to the questions
//! [`report_questions`] and [`alert_questions`] write, run by the same engine as
//! `POST /api/v2/query` with exact counts (no sampling), so a report equals what the API
//! answers for its range.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};

use super::{DROP_WINDOW_HOURS, MailKind, Reports, SPIKE_WINDOW_SECS, chart};
use crate::mail::{CHART_CID, Outgoing};
use crate::query::model;
use crate::query::run::{Policy, run};
use crate::store::{Deadline, Site};

/// Where each recipient's own unsubscribe link goes in the text and the HTML.
pub const UNSUBSCRIBE: &str = "{{unsubscribe}}";
/// Rows of each top list.
pub const TOP: usize = 5;
/// How long each question may take.
const QUESTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The figures of a report, in order, with their labels.
pub const REPORT_METRICS: [(&str, &str); 5] = [
    ("visitors", "Unique visitors"),
    ("visits", "Total visits"),
    ("pageviews", "Total pageviews"),
    ("bounce_rate", "Bounce rate"),
    ("visit_duration", "Visit duration"),
];

/// A message before its recipient is known.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub chart_png: Option<String>,
}

impl Message {
    /// The message for one recipient, with its unsubscribe link in the text, the HTML and the
    /// `List-Unsubscribe` header.
    pub fn for_recipient(&self, link: &str) -> Outgoing {
        Outgoing {
            subject: self.subject.clone(),
            text: self.text.replace(UNSUBSCRIBE, link),
            html: Some(self.html.replace(UNSUBSCRIBE, &esc(link))),
            chart_png: self.chart_png.clone(),
            unsubscribe: Some(link.to_string()),
        }
    }
}

/// The Stats API questions of a report on `first..=last`: totals compared with the period
/// before, visitors per day, and the top pages, sources and (when the site has goals) goals.
pub fn report_questions(
    domain: &str,
    first: NaiveDate,
    last: NaiveDate,
    goals: bool,
) -> Vec<(&'static str, Value)> {
    let range = json!([first.to_string(), last.to_string()]);
    let top = |dimension: &str, metrics: Value| {
        json!({
            "site_id": domain, "date_range": range, "metrics": metrics,
            "dimensions": [dimension],
            "order_by": [["visitors", "desc"], [dimension, "asc"]],
            "pagination": {"limit": TOP},
        })
    };
    let mut out = vec![
        (
            "totals",
            json!({
                "site_id": domain, "date_range": range,
                "metrics": REPORT_METRICS.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
                "include": {"comparisons": {"mode": "previous_period"}},
            }),
        ),
        (
            "days",
            json!({
                "site_id": domain, "date_range": range, "metrics": ["visitors"],
                "dimensions": ["time:day"],
            }),
        ),
        ("pages", top("event:page", json!(["visitors", "pageviews"]))),
        ("sources", top("visit:source", json!(["visitors"]))),
    ];
    if goals {
        out.push((
            "goals",
            top(
                "event:goal",
                json!(["visitors", "events", "conversion_rate"]),
            ),
        ));
    }
    out
}

/// The Stats API questions of an alert at `now`: visitors of its window, then its top
/// sources and pages.
pub fn alert_questions(domain: &str, kind: MailKind, now: DateTime<Utc>) -> [Value; 3] {
    let from = match kind {
        MailKind::Spike => now - TimeDelta::seconds(SPIKE_WINDOW_SECS),
        _ => now - TimeDelta::hours(DROP_WINDOW_HOURS),
    };
    let at = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let range = json!([at(from), at(now)]);
    let top = |dimension: &str| {
        json!({
            "site_id": domain, "date_range": range, "metrics": ["visitors"],
            "dimensions": [dimension],
            "order_by": [["visitors", "desc"], [dimension, "asc"]],
            "pagination": {"limit": TOP},
        })
    };
    [
        json!({"site_id": domain, "date_range": range, "metrics": ["visitors"]}),
        top("visit:source"),
        top("event:page"),
    ]
}

async fn ask(r: &Reports, site: &Site, question: &Value) -> Result<Vec<Value>, String> {
    let query = model::parse(question).map_err(|e| e.0)?;
    let policy = Policy {
        now: r.clock.now(),
        raw_retention_days: r.pipeline.raw_retention_days(site.id, r.raw_retention_days),
        deadline: Deadline::after(QUESTION_TIMEOUT),
        sample_threshold: 0,
    };
    let answer = run(r.store.as_ref(), site, &query, &policy)
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer["results"].as_array().cloned().unwrap_or_default())
}

/// A row's first dimension and its metrics.
fn row(v: &Value) -> (String, &[Value]) {
    let key = v["dimensions"][0].as_str().unwrap_or_default().to_string();
    (key, v["metrics"].as_array().map_or(&[][..], Vec::as_slice))
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(|v| v.as_f64()).map_or(0, |f| f.round() as i64)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A figure as the report shows it.
fn figure(metric: &str, v: Option<&Value>) -> String {
    match metric {
        "bounce_rate" => format!("{}%", v.and_then(Value::as_f64).unwrap_or(0.0)),
        "visit_duration" => duration(int(v)),
        _ => thousands(int(v)),
    }
}

/// A change as the report shows it: percent, or points for a rate.
fn change(metric: &str, v: Option<&Value>) -> String {
    let n = v.and_then(Value::as_f64).unwrap_or(0.0);
    let sign = if n > 0.0 { "+" } else { "" };
    match metric {
        "bounce_rate" => format!("{sign}{n} points"),
        _ => format!("{sign}{}%", n.round() as i64),
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A top list: its title, column names, and rows of a label and figures.
struct Top {
    title: &'static str,
    columns: Vec<&'static str>,
    rows: Vec<(String, Vec<String>)>,
}

impl Top {
    fn text(&self, out: &mut String) {
        out.push_str(&format!("\n{} ({})\n", self.title, self.columns.join(", ")));
        if self.rows.is_empty() {
            out.push_str("  none\n");
        }
        for (label, figures) in &self.rows {
            out.push_str(&format!("  {label}: {}\n", figures.join(", ")));
        }
    }

    fn html(&self, out: &mut String) {
        out.push_str(&format!(
            "<tr><td style=\"padding:12px 24px 0\"><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"font-size:14px\"><tr><th align=\"left\" style=\"padding:4px 0;color:#6b7280;font-weight:600\">{}</th>",
            esc(self.title)
        ));
        for c in &self.columns {
            out.push_str(&format!(
                "<th align=\"right\" style=\"padding:4px 0 4px 12px;color:#6b7280;font-weight:600\">{}</th>",
                esc(c)
            ));
        }
        out.push_str("</tr>");
        if self.rows.is_empty() {
            out.push_str("<tr><td style=\"padding:4px 0;color:#6b7280\">None</td></tr>");
        }
        for (label, figures) in &self.rows {
            out.push_str(&format!(
                "<tr><td style=\"padding:4px 0;border-top:1px solid #f3f4f6;word-break:break-all\">{}</td>",
                esc(label)
            ));
            for f in figures {
                out.push_str(&format!(
                    "<td align=\"right\" style=\"padding:4px 0 4px 12px;border-top:1px solid #f3f4f6\">{}</td>",
                    esc(f)
                ));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table></td></tr>");
    }
}

fn top_list(
    title: &'static str,
    columns: Vec<&'static str>,
    results: &[Value],
    show: impl Fn(usize, &Value) -> String,
) -> Top {
    // Visits without a referrer have no source: named as Plausible's dashboard names them.
    let empty = if title.ends_with("sources") {
        "Direct / None"
    } else {
        "(none)"
    };
    Top {
        title,
        columns,
        rows: results
            .iter()
            .map(|r| {
                let (label, metrics) = row(r);
                let label = if label.is_empty() {
                    empty.into()
                } else {
                    label
                };
                (
                    label,
                    metrics
                        .iter()
                        .enumerate()
                        .map(|(i, v)| show(i, v))
                        .collect(),
                )
            })
            .collect(),
    }
}

const HTML_HEAD: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"></head><body style=\"margin:0;padding:0;background:#f3f4f6\"><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" style=\"background:#f3f4f6\"><tr><td align=\"center\" style=\"padding:24px 8px\"><table role=\"presentation\" width=\"600\" cellpadding=\"0\" cellspacing=\"0\" style=\"max-width:600px;width:100%;background:#ffffff;border-radius:8px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#111827\">";

fn html_title(out: &mut String, what: &str, domain: &str, when: &str) {
    out.push_str(HTML_HEAD);
    out.push_str(&format!(
        "<tr><td style=\"padding:24px 24px 8px\"><div style=\"font-size:13px;color:#6b7280\">{}</div><div style=\"font-size:22px;font-weight:600\">{}</div><div style=\"font-size:13px;color:#6b7280\">{}</div></td></tr>",
        esc(what),
        esc(domain),
        esc(when)
    ));
}

fn html_end(out: &mut String, dashboard: &str, list: &str) {
    out.push_str(&format!(
        "<tr><td style=\"padding:20px 24px 24px;font-size:12px;color:#6b7280\"><a href=\"{}\" style=\"color:#4f46e5\">Open the dashboard</a> &middot; <a href=\"{UNSUBSCRIBE}\" style=\"color:#6b7280\">Unsubscribe from these {list}</a></td></tr></table></td></tr></table></body></html>",
        esc(dashboard)
    ));
}

fn dashboard_link(r: &Reports, site: &Site) -> String {
    format!(
        "{}/sites/{}",
        r.public_url.as_deref().unwrap_or("").trim_end_matches('/'),
        percent_encoding::utf8_percent_encode(&site.domain, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// The report of `kind` on `first..=last`.
pub async fn report(
    r: &Reports,
    site: &Site,
    kind: MailKind,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<super::content::Message, String> {
    let goals = !crate::goals::goals_of(r.store.as_ref(), site.id)
        .await
        .map_err(|e| e.to_string())?
        .is_empty();
    let mut answers = Vec::new();
    for (_, q) in report_questions(&site.domain, first, last, goals) {
        answers.push(ask(r, site, &q).await?);
    }
    let totals = answers[0].first().cloned().unwrap_or(Value::Null);
    let per_day: std::collections::HashMap<String, i64> = answers[1]
        .iter()
        .map(|v| {
            let (day, m) = row(v);
            (day.chars().take(10).collect(), int(m.first()))
        })
        .collect();
    let days: Vec<(NaiveDate, i64)> = first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| (d, per_day.get(&d.to_string()).copied().unwrap_or(0)))
        .collect();
    let png = chart::bars(
        &days
            .iter()
            .map(|(_, v)| u64::try_from(*v).unwrap_or(0))
            .collect::<Vec<_>>(),
    )?;
    let count = |_: usize, v: &Value| thousands(int(Some(v)));
    let mut tops = vec![
        top_list(
            "Top pages",
            vec!["visitors", "pageviews"],
            &answers[2],
            count,
        ),
        top_list("Top sources", vec!["visitors"], &answers[3], count),
    ];
    if goals {
        tops.push(top_list(
            "Goals",
            vec!["visitors", "events", "conversion rate"],
            &answers[4],
            |i, v| {
                if i == 2 {
                    format!("{}%", v.as_f64().unwrap_or(0.0))
                } else {
                    thousands(int(Some(v)))
                }
            },
        ));
    }
    let (what, when, before) = match kind {
        MailKind::Monthly => (
            "Monthly report",
            first.format("%B %Y").to_string(),
            "the month before",
        ),
        _ => (
            "Weekly report",
            format!("{} – {}", first.format("%-d %b"), last.format("%-d %b %Y")),
            "the week before",
        ),
    };
    let dashboard = dashboard_link(r, site);
    let metrics = totals["metrics"].as_array().cloned().unwrap_or_default();
    let changes = totals["comparison"]["change"]
        .as_array()
        .cloned()
        .unwrap_or_default();

    let mut text = format!(
        "{what} for {}\n{when} ({}), compared with {before}\n\n",
        site.domain, site.timezone
    );
    for (i, (metric, label)) in REPORT_METRICS.iter().enumerate() {
        text.push_str(&format!(
            "{label}: {} ({})\n",
            figure(metric, metrics.get(i)),
            change(metric, changes.get(i))
        ));
    }
    text.push_str("\nVisitors per day\n");
    for (day, v) in &days {
        text.push_str(&format!(
            "  {}: {}\n",
            day.format("%a %-d %b"),
            thousands(*v)
        ));
    }
    for t in &tops {
        t.text(&mut text);
    }
    text.push_str(&format!(
        "\nOpen the dashboard: {dashboard}\nUnsubscribe from these reports: {UNSUBSCRIBE}\n"
    ));

    let mut html = String::new();
    html_title(&mut html, what, &site.domain, &when);
    html.push_str("<tr><td style=\"padding:8px 24px\"><table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\"><tr>");
    for (i, (metric, label)) in REPORT_METRICS.iter().enumerate() {
        let delta = change(metric, changes.get(i));
        // Up is good, except for the bounce rate.
        let good = !delta.starts_with('-') ^ (*metric == "bounce_rate");
        let colour = if delta.starts_with('0') || delta.starts_with("+0%") {
            "#6b7280"
        } else if good {
            "#047857"
        } else {
            "#b91c1c"
        };
        html.push_str(&format!(
            "<td valign=\"top\" style=\"padding:8px 8px 8px 0\"><div style=\"font-size:12px;color:#6b7280\">{}</div><div style=\"font-size:20px;font-weight:600\">{}</div><div style=\"font-size:12px;color:{colour}\">{}</div></td>",
            esc(label),
            esc(&figure(metric, metrics.get(i))),
            esc(&delta)
        ));
    }
    html.push_str("</tr></table></td></tr>");
    html.push_str(&format!(
        "<tr><td style=\"padding:8px 20px 0\"><div style=\"font-size:12px;color:#6b7280;padding:0 4px 4px\">Visitors per day</div><img src=\"cid:{CHART_CID}\" width=\"{}\" height=\"{}\" alt=\"Visitors per day: {}\" style=\"display:block;width:100%;max-width:{}px;height:auto;border:0\"></td></tr>",
        chart::WIDTH / 2,
        chart::HEIGHT / 2,
        esc(&days.iter().map(|(_, v)| thousands(*v)).collect::<Vec<_>>().join(", ")),
        chart::WIDTH / 2,
    ));
    for t in &tops {
        t.html(&mut html);
    }
    html_end(&mut html, &dashboard, "reports");

    use base64::Engine as _;
    Ok(Message {
        subject: format!(
            "{what} for {}: {} visitors ({})",
            site.domain,
            figure("visitors", metrics.first()),
            change("visitors", changes.first())
        ),
        text,
        html,
        chart_png: Some(base64::engine::general_purpose::STANDARD.encode(png)),
    })
}

/// The alert of `kind` when its threshold is crossed now, or `None`.
pub async fn alert(
    r: &Reports,
    site: &Site,
    kind: MailKind,
    threshold: u64,
) -> Result<Option<Message>, String> {
    let now = r.clock.now();
    let [total, sources, pages] = alert_questions(&site.domain, kind, now);
    let visitors = int(ask(r, site, &total)
        .await?
        .first()
        .and_then(|v| v["metrics"].get(0)));
    let visitors = u64::try_from(visitors).unwrap_or(0);
    let crossed = match kind {
        MailKind::Spike => visitors >= threshold,
        _ => visitors < threshold,
    };
    if !crossed {
        return Ok(None);
    }
    let count = |_: usize, v: &Value| thousands(int(Some(v)));
    let tops = [
        top_list(
            "Top sources",
            vec!["visitors"],
            &ask(r, site, &sources).await?,
            count,
        ),
        top_list(
            "Top pages",
            vec!["visitors"],
            &ask(r, site, &pages).await?,
            count,
        ),
    ];
    let n = thousands(i64::try_from(visitors).unwrap_or(i64::MAX));
    let t = thousands(i64::try_from(threshold).unwrap_or(i64::MAX));
    let (what, subject, line) = match kind {
        MailKind::Spike => (
            "Traffic spike",
            format!("Traffic spike on {}: {n} current visitors", site.domain),
            format!(
                "{} has {n} current visitors (the last 5 minutes), at or above your alert's {t}.",
                site.domain
            ),
        ),
        _ => (
            "Traffic drop",
            format!("Traffic drop on {}: {n} visitors in 12 hours", site.domain),
            format!(
                "{} had {n} visitors in the last 12 hours, below your alert's {t}. Check that the tracking script is still on the site's pages.",
                site.domain
            ),
        ),
    };
    let when = now.format("%Y-%m-%d %H:%M UTC").to_string();
    let dashboard = dashboard_link(r, site);
    let mut text = format!("{what} on {} at {when}\n\n{line}\n", site.domain);
    for top in &tops {
        top.text(&mut text);
    }
    text.push_str(&format!(
        "\nOpen the dashboard: {dashboard}\nAt most two alerts of each kind a day.\nUnsubscribe from these alerts: {UNSUBSCRIBE}\n"
    ));
    let mut html = String::new();
    html_title(&mut html, what, &site.domain, &when);
    html.push_str(&format!(
        "<tr><td style=\"padding:8px 24px;font-size:15px\">{}</td></tr>",
        esc(&line)
    ));
    for top in &tops {
        top.html(&mut html);
    }
    html_end(&mut html, &dashboard, "alerts");
    Ok(Some(Message {
        subject,
        text,
        html,
        chart_png: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(duration(65), "1m 05s");
        assert_eq!(duration(3_725), "1h 02m");
        assert_eq!(change("visitors", Some(&json!(12))), "+12%");
        assert_eq!(change("bounce_rate", Some(&json!(-3.5))), "-3.5 points");
        assert_eq!(figure("bounce_rate", Some(&json!(41.2))), "41.2%");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let m = Message {
            subject: "s".into(),
            text: format!("x {UNSUBSCRIBE}"),
            html: format!("<a href=\"{UNSUBSCRIBE}\">"),
            chart_png: None,
        }
        .for_recipient("https://s/u?a=1&b=2");
        assert_eq!(m.text, "x https://s/u?a=1&b=2");
        assert_eq!(
            m.html.as_deref(),
            Some("<a href=\"https://s/u?a=1&amp;b=2\">")
        );
    }
}
