//! E-mailed reports and alerts of a site.
//!
//! - **Reports**: weekly (Monday to Sunday) and monthly, in the site's time zone, queued from
//!   08:00 on the Monday or the 1st that follows, for up to [`QUEUE_WINDOW_DAYS`] days (a
//!   collector that was down sends them late rather than never). Their figures are answers of
//!   the Stats API's own query engine to the questions in [`content`].
//! - **Alerts**: a spike (current visitors, those of the last 5 minutes, at or above a
//!   threshold) and a drop (visitors of the last 12 hours below one), each at most once per
//!   half day of the site's time zone, so at most twice a day.
//!
//! Every message goes through the store's outbox ([`outbox`]): it is written first, then sent
//! by whichever collector claims it, and tried again with backoff when the server is down or
//! refuses it, until its last attempt; nothing is lost silently. Each message carries a
//! signed one-click unsubscribe link ([`unsubscribe`]).

pub mod chart;
pub mod content;
pub mod outbox;
pub mod unsubscribe;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::ingest::pipeline::Pipeline;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::{Site, Store, StoreError};
use outbox::Delivery;

/// The record kind of a site's report and alert settings (its id is the site's).
pub const SETTINGS_KIND: &str = "mail_settings";
/// Recipients per list.
pub const MAX_RECIPIENTS: usize = 50;
/// The largest threshold an alert takes.
pub const MAX_THRESHOLD: u64 = 100_000_000;
/// How often reports and alerts are looked at and the outbox is sent.
pub const MAIL_EVERY: Duration = Duration::from_secs(60);
/// The site-local hour from which a report is due.
pub const REPORT_HOUR: u32 = 8;
/// How many days after it is due a report is still queued.
pub const QUEUE_WINDOW_DAYS: i64 = 3;
/// The window of a spike alert's "current visitors", in seconds.
pub const SPIKE_WINDOW_SECS: i64 = 300;
/// The window of a drop alert, in hours.
pub const DROP_WINDOW_HOURS: i64 = 12;

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Weekly,
    Monthly,
    Spike,
    Drop,
}

impl MailKind {
    pub const ALL: [MailKind; 4] = [
        MailKind::Weekly,
        MailKind::Monthly,
        MailKind::Spike,
        MailKind::Drop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Weekly => "weekly",
            MailKind::Monthly => "monthly",
            MailKind::Spike => "spike",
            MailKind::Drop => "drop",
        }
    }

    /// The list whose recipients get it.
    pub fn list(self) -> List {
        match self {
            MailKind::Weekly | MailKind::Monthly => List::Reports,
            MailKind::Spike | MailKind::Drop => List::Alerts,
        }
    }
}

/// A site's two lists of recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum List {
    Reports,
    Alerts,
}

impl List {
    pub fn as_str(self) -> &'static str {
        match self {
            List::Reports => "reports",
            List::Alerts => "alerts",
        }
    }

    pub fn parse(s: &str) -> Option<List> {
        match s {
            "reports" => Some(List::Reports),
            "alerts" => Some(List::Alerts),
            _ => None,
        }
    }
}

/// A site's reports and alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailSettings {
    pub weekly: bool,
    pub monthly: bool,
    /// Who gets the reports: any addresses, not only users.
    pub recipients: Vec<String>,
    /// A spike alert when current visitors reach this many.
    pub spike_threshold: Option<u64>,
    /// A drop alert when the last 12 hours had fewer visitors than this.
    pub drop_threshold: Option<u64>,
    /// Who gets the alerts.
    pub alert_recipients: Vec<String>,
}

impl MailSettings {
    /// The settings in their one written form (addresses trimmed, lower case, each once), or
    /// what is wrong with them.
    pub fn validated(&self) -> Result<MailSettings, String> {
        let list = |name: &str, addresses: &[String]| -> Result<Vec<String>, String> {
            if addresses.len() > MAX_RECIPIENTS {
                return Err(format!(
                    "`{name}` has {} addresses; at most {MAX_RECIPIENTS}",
                    addresses.len()
                ));
            }
            let mut out: Vec<String> = Vec::new();
            for a in addresses {
                let a = a.trim().to_lowercase();
                if a.len() > 254 || a.parse::<lettre::Address>().is_err() {
                    return Err(format!(
                        "`{}` in `{name}` is not an e-mail address",
                        a.chars().take(64).collect::<String>()
                    ));
                }
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            Ok(out)
        };
        let threshold = |name: &str, t: Option<u64>| match t {
            Some(n) if !(1..=MAX_THRESHOLD).contains(&n) => Err(format!(
                "`{name}` must be a number of visitors from 1 to {MAX_THRESHOLD}"
            )),
            _ => Ok(t),
        };
        let out = MailSettings {
            weekly: self.weekly,
            monthly: self.monthly,
            recipients: list("recipients", &self.recipients)?,
            spike_threshold: threshold("spike_threshold", self.spike_threshold)?,
            drop_threshold: threshold("drop_threshold", self.drop_threshold)?,
            alert_recipients: list("alert_recipients", &self.alert_recipients)?,
        };
        if (out.weekly || out.monthly) && out.recipients.is_empty() {
            return Err("reports need at least one address in `recipients`".into());
        }
        if (out.spike_threshold.is_some() || out.drop_threshold.is_some())
            && out.alert_recipients.is_empty()
        {
            return Err("alerts need at least one address in `alert_recipients`".into());
        }
        Ok(out)
    }

    pub fn list(&self, list: List) -> &[String] {
        match list {
            List::Reports => &self.recipients,
            List::Alerts => &self.alert_recipients,
        }
    }

    /// Takes `address` off `list`; whether it was on it.
    pub fn remove(&mut self, list: List, address: &str) -> bool {
        let entries = match list {
            List::Reports => &mut self.recipients,
            List::Alerts => &mut self.alert_recipients,
        };
        let before = entries.len();
        entries.retain(|a| a != address);
        if entries.is_empty() {
            match list {
                List::Reports => (self.weekly, self.monthly) = (false, false),
                List::Alerts => (self.spike_threshold, self.drop_threshold) = (None, None),
            }
        }
        entries.len() != before
    }
}

pub async fn settings_of(store: &dyn Store, site_id: u32) -> Result<MailSettings, StoreError> {
    Ok(
        match store
            .meta()
            .record(SETTINGS_KIND, &site_id.to_string())
            .await?
        {
            Some(body) => serde_json::from_str(&body).unwrap_or_default(),
            None => MailSettings::default(),
        },
    )
}

pub async fn save_settings(
    store: &dyn Store,
    site_id: u32,
    settings: &MailSettings,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(settings).map_err(|e| StoreError::Query(e.to_string()))?;
    store
        .meta()
        .put_record(SETTINGS_KIND, &site_id.to_string(), &body)
        .await
}

/// The period a report of `kind` covers when it is due at `now` (site-local): the week or
/// month before, if `now` is within [`QUEUE_WINDOW_DAYS`] of its start at [`REPORT_HOUR`].
pub fn due_period(kind: MailKind, now: NaiveDateTime) -> Option<(NaiveDate, NaiveDate)> {
    let today = now.date();
    let (start, first) = match kind {
        MailKind::Weekly => {
            let monday = today - TimeDelta::days(i64::from(today.weekday().num_days_from_monday()));
            (monday, monday - TimeDelta::days(7))
        }
        MailKind::Monthly => {
            let first = today.with_day(1)?;
            let previous = (first - TimeDelta::days(1)).with_day(1)?;
            (first, previous)
        }
        MailKind::Spike | MailKind::Drop => return None,
    };
    let due = start.and_hms_opt(REPORT_HOUR, 0, 0)?;
    (now >= due && now < due + TimeDelta::days(QUEUE_WINDOW_DAYS))
        .then(|| (first, start - TimeDelta::days(1)))
}

/// The most recent whole period of `kind` before `today` (site-local): for a report sent now.
pub fn last_period(kind: MailKind, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    due_period(kind, today.and_hms_opt(23, 59, 59)?).or_else(|| {
        // Past the queueing window: the same arithmetic from the period's own start.
        let start = match kind {
            MailKind::Weekly => {
                today - TimeDelta::days(i64::from(today.weekday().num_days_from_monday()))
            }
            _ => today.with_day(1)?,
        };
        due_period(kind, start.and_hms_opt(REPORT_HOUR, 0, 0)?)
    })
}

/// The half day (site-local) an alert at `now` belongs to: at most one alert of a kind each.
pub fn half_day(now: NaiveDateTime) -> String {
    format!(
        "{}-{}",
        now.date(),
        if now.hour() < 12 { "am" } else { "pm" }
    )
}

/// What one round queued and sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub queued: usize,
    pub sent: usize,
    pub failed: usize,
}

/// Queues due reports and alerts and sends the outbox.
pub struct Reports {
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<Pipeline>,
    pub clock: SharedClock,
    pub mailer: Option<Arc<Mailer>>,
    pub public_url: Option<String>,
    pub raw_retention_days: u32,
    pub metrics: Arc<Metrics>,
    /// Who claims outbox messages: random per process.
    instance: u64,
    /// How long a claim is left before it is read back (other collectors' claims of the same
    /// message arrive within it).
    settle: Duration,
    /// One round at a time in this process (the timer's, a test's, a "send now").
    round: tokio::sync::Mutex<()>,
}

impl Reports {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        pipeline: Arc<Pipeline>,
        clock: SharedClock,
        mailer: Option<Arc<Mailer>>,
        public_url: Option<String>,
        raw_retention_days: u32,
        metrics: Arc<Metrics>,
    ) -> Reports {
        // A store shared by several collectors (ClickHouse) needs the wait; an embedded one
        // has one collector.
        let settle = match store.dialect() {
            crate::store::statement::Dialect::ClickHouse => Duration::from_secs(2),
            _ => Duration::ZERO,
        };
        Reports {
            store,
            pipeline,
            clock,
            mailer,
            public_url,
            raw_retention_days,
            metrics,
            instance: rand::random::<u64>() | 1,
            settle,
            round: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether reports can be sent: an SMTP server and a public address for their links.
    pub fn ready(&self) -> Result<(&Arc<Mailer>, &str), String> {
        let mailer = self
            .mailer
            .as_ref()
            .ok_or("no SMTP server is configured: set smtp_url and smtp_from")?;
        let public = self.public_url.as_deref().ok_or(
            "set public_url (the dashboard's address) so that reports can link to it and to their unsubscribe page",
        )?;
        Ok((mailer, public))
    }

    /// One round: queues what is due, then sends what is waiting.
    pub async fn tick(&self) -> Result<Round, StoreError> {
        if self.ready().is_err() {
            return Ok(Round::default());
        }
        let _round = self.round.lock().await;
        let queued = self.queue_due().await?;
        let mut round = self.send_outbox().await?;
        round.queued = queued;
        Ok(round)
    }

    /// Repeats [`Reports::tick`] every [`MAIL_EVERY`] until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(MAIL_EVERY);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            match self.tick().await {
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "the mail round failed; will retry");
                }
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("the mail round recovered");
                }
                _ => {}
            }
        }
    }

    fn site_now(&self, site: &Site) -> Option<(Tz, NaiveDateTime)> {
        let tz: Tz = site.timezone.parse().ok()?;
        Some((tz, self.clock.now().with_timezone(&tz).naive_local()))
    }

    /// Queues every site's due reports and alerts; how many messages.
    async fn queue_due(&self) -> Result<usize, StoreError> {
        let settings: HashMap<u32, MailSettings> = self
            .store
            .meta()
            .records(SETTINGS_KIND)
            .await?
            .into_iter()
            .filter_map(|(id, body)| Some((id.parse().ok()?, serde_json::from_str(&body).ok()?)))
            .collect();
        if settings.is_empty() {
            return Ok(0);
        }
        let existing: HashSet<String> = self
            .store
            .meta()
            .records(outbox::KIND)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut queued = 0;
        for site in self.store.meta().sites().await? {
            let Some(s) = settings.get(&site.id) else {
                continue;
            };
            match self.queue_site(&site, s, &existing).await {
                Ok(n) => queued += n,
                Err(error) => {
                    tracing::warn!(site = %site.domain, %error, "could not prepare a report or alert")
                }
            }
        }
        Ok(queued)
    }

    async fn queue_site(
        &self,
        site: &Site,
        s: &MailSettings,
        existing: &HashSet<String>,
    ) -> Result<usize, String> {
        let Some((_, now)) = self.site_now(site) else {
            return Ok(0);
        };
        let mut queued = 0;
        for (kind, on) in [(MailKind::Weekly, s.weekly), (MailKind::Monthly, s.monthly)] {
            let Some((first, last)) = due_period(kind, now).filter(|_| on) else {
                continue;
            };
            let period = format!("{first}..{last}");
            let missing: Vec<&String> = s
                .recipients
                .iter()
                .filter(|to| !existing.contains(&outbox::id(site.id, kind, &period, to)))
                .collect();
            if missing.is_empty() {
                continue;
            }
            let report = content::report(self, site, kind, first, last).await?;
            queued += self.queue(site, kind, &period, &missing, &report).await?;
        }
        let slot = half_day(now);
        for (kind, threshold) in [
            (MailKind::Spike, s.spike_threshold),
            (MailKind::Drop, s.drop_threshold),
        ] {
            let Some(threshold) = threshold else {
                continue;
            };
            let prefix = outbox::prefix(site.id, kind, &slot);
            if existing.iter().any(|id| id.starts_with(&prefix)) {
                continue;
            }
            let Some(alert) = content::alert(self, site, kind, threshold).await? else {
                continue;
            };
            let to: Vec<&String> = s.alert_recipients.iter().collect();
            queued += self.queue(site, kind, &slot, &to, &alert).await?;
        }
        Ok(queued)
    }

    /// Writes one outbox message per recipient of `message`, each with its own
    /// unsubscribe link.
    async fn queue(
        &self,
        site: &Site,
        kind: MailKind,
        period: &str,
        to: &[&String],
        message: &content::Message,
    ) -> Result<usize, String> {
        let (_, public) = self.ready()?;
        let key = unsubscribe::key(self.store.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let now = self.clock.now().timestamp();
        let mut queued = 0;
        for address in to {
            let id = outbox::id(site.id, kind, period, address);
            // Another collector may have queued (and even sent) it while this one counted.
            if outbox::get(self.store.as_ref(), &id)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                continue;
            }
            let link = unsubscribe::link(public, &key, site.id, kind.list(), address);
            let delivery = Delivery::new(
                site.id,
                kind,
                period,
                address,
                message.for_recipient(&link),
                now,
            );
            outbox::put(self.store.as_ref(), &id, &delivery)
                .await
                .map_err(|e| e.to_string())?;
            queued += 1;
        }
        tracing::info!(site = %site.domain, kind = kind.as_str(), period, recipients = queued, "mail queued");
        Ok(queued)
    }

    /// Queues the report of `kind` for the last whole period now, to every recipient (the
    /// settings' "send now"); how many messages.
    pub async fn send_now(&self, site: &Site, kind: MailKind) -> Result<usize, String> {
        self.ready()?;
        let _round = self.round.lock().await;
        let s = settings_of(self.store.as_ref(), site.id)
            .await
            .map_err(|e| e.to_string())?;
        if s.recipients.is_empty() {
            return Err("add at least one address to the report's recipients first".into());
        }
        let (_, now) = self
            .site_now(site)
            .ok_or("the site's time zone is not valid")?;
        let (first, last) = last_period(kind, now.date()).ok_or("no whole period before today")?;
        let report = content::report(self, site, kind, first, last).await?;
        let period = format!(
            "{first}..{last} sent {}",
            self.clock.now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        let to: Vec<&String> = s.recipients.iter().collect();
        self.queue(site, kind, &period, &to, &report).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }
    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn reports_are_due_from_eight_on_the_monday_or_the_first_for_three_days() {
        // 2026-12-07 is a Monday.
        assert_eq!(due_period(MailKind::Weekly, at("2026-12-07 07:59")), None);
        assert_eq!(
            due_period(MailKind::Weekly, at("2026-12-07 08:00")),
            Some((d("2026-11-30"), d("2026-12-06")))
        );
        assert_eq!(
            due_period(MailKind::Weekly, at("2026-12-10 07:59")),
            Some((d("2026-11-30"), d("2026-12-06")))
        );
        assert_eq!(due_period(MailKind::Weekly, at("2026-12-10 08:00")), None);
        assert_eq!(
            due_period(MailKind::Monthly, at("2027-01-01 09:00")),
            Some((d("2026-12-01"), d("2026-12-31")))
        );
        assert_eq!(
            due_period(MailKind::Monthly, at("2027-03-02 12:00")),
            Some((d("2027-02-01"), d("2027-02-28")))
        );
        assert_eq!(due_period(MailKind::Monthly, at("2027-03-05 12:00")), None);
        assert_eq!(
            last_period(MailKind::Monthly, d("2027-03-20")),
            Some((d("2027-02-01"), d("2027-02-28")))
        );
        assert_eq!(
            last_period(MailKind::Weekly, d("2026-12-06")),
            Some((d("2026-11-23"), d("2026-11-29")))
        );
        assert_eq!(half_day(at("2026-12-06 11:59")), "2026-12-06-am");
        assert_eq!(half_day(at("2026-12-06 12:00")), "2026-12-06-pm");
    }

    #[test]
    fn settings_are_checked_and_written_one_way() {
        let s = MailSettings {
            weekly: true,
            recipients: vec![" Ann@Example.org".into(), "ann@example.org".into()],
            spike_threshold: Some(50),
            alert_recipients: vec!["ops@example.org".into()],
            ..Default::default()
        };
        let v = s.validated().unwrap();
        assert_eq!(v.recipients, vec!["ann@example.org"]);
        for (bad, says) in [
            (
                MailSettings {
                    weekly: true,
                    ..Default::default()
                },
                "at least one address",
            ),
            (
                MailSettings {
                    recipients: vec!["ann".into()],
                    ..Default::default()
                },
                "not an e-mail address",
            ),
            (
                MailSettings {
                    drop_threshold: Some(0),
                    alert_recipients: vec!["a@b.org".into()],
                    ..Default::default()
                },
                "from 1 to",
            ),
            (
                MailSettings {
                    spike_threshold: Some(3),
                    ..Default::default()
                },
                "alert_recipients",
            ),
            (
                MailSettings {
                    recipients: (0..51).map(|i| format!("a{i}@b.org")).collect(),
                    ..Default::default()
                },
                "at most 50",
            ),
        ] {
            let e = bad.validated().unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let mut v = v;
        assert!(v.remove(List::Reports, "ann@example.org"));
        assert!(!v.weekly && v.recipients.is_empty());
        assert!(!v.remove(List::Reports, "ann@example.org"));
        assert_eq!(v.spike_threshold, Some(50));
    }
}
