//! The outbox: every report and alert is a record (kind [`KIND`]) before it is sent, with its
//! state, attempts and the server's last answer, so a failed send is tried again with backoff
//! ([`BACKOFF_MINUTES`]) and shown in the settings and `/metrics` until it goes through or its
//! last attempt fails.
//!
//! Several collectors may share the store. A message is claimed before it is sent: its
//! record names the claiming process and a lease; after a short wait the record is read back,
//! and only the process it still names sends it. A lease that runs out (a collector that
//! stopped mid-send) makes the message due again.

use serde::{Deserialize, Serialize};

use super::{MailKind, Reports, Round};
use crate::mail::Outgoing;
use crate::metrics::MailOutcome;
use crate::store::{Store, StoreError};

/// The record kind of outbox messages.
pub const KIND: &str = "mail_outbox";
/// Minutes before the 2nd, 3rd, … attempt; the last attempt is the one after the last wait.
pub const BACKOFF_MINUTES: [i64; 7] = [1, 5, 15, 60, 180, 360, 720];
pub const MAX_ATTEMPTS: u32 = BACKOFF_MINUTES.len() as u32 + 1;
/// How long a claim holds a message.
pub const LEASE_SECS: i64 = 600;
/// How long sent and given-up messages stay listed.
pub const KEEP_SECS: i64 = 30 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its first or next attempt (`next_at`).
    Pending,
    /// Claimed by a collector that is sending it.
    Sending,
    Sent,
    /// Its last attempt failed.
    Failed,
}

/// One message to one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub site_id: u32,
    pub kind: MailKind,
    /// The report's days (`FROM..TO`) or the alert's half day.
    pub period: String,
    pub to: String,
    pub message: Outgoing,
    pub created_at: i64,
    pub status: Status,
    pub attempts: u32,
    pub next_at: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The server's answer to the send that went through.
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default)]
    pub sent_at: Option<i64>,
    #[serde(default)]
    pub holder: u64,
    #[serde(default)]
    pub lease_until: i64,
}

impl Delivery {
    pub fn new(
        site_id: u32,
        kind: MailKind,
        period: &str,
        to: &str,
        message: Outgoing,
        now: i64,
    ) -> Delivery {
        Delivery {
            site_id,
            kind,
            period: period.to_string(),
            to: to.to_string(),
            message,
            created_at: now,
            status: Status::Pending,
            attempts: 0,
            next_at: now,
            last_error: None,
            answer: None,
            sent_at: None,
            holder: 0,
            lease_until: 0,
        }
    }

    /// Whether a round at `now` should try it.
    pub fn due(&self, now: i64) -> bool {
        match self.status {
            Status::Pending => self.next_at <= now,
            Status::Sending => self.lease_until <= now,
            Status::Sent | Status::Failed => false,
        }
    }

    /// What the settings page lists (no message body).
    pub fn summary(&self, id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "kind": self.kind,
            "period": self.period,
            "to": self.to,
            "subject": self.message.subject,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "next_at": (self.status == Status::Pending).then_some(self.next_at),
            "last_error": self.last_error,
            "answer": self.answer,
            "sent_at": self.sent_at,
        })
    }
}

/// The record id of a message: site, kind, period and a hash of the address, so a message is
/// queued once however many collectors see it due.
pub fn id(site_id: u32, kind: MailKind, period: &str, to: &str) -> String {
    let hash = blake3::hash(to.as_bytes()).to_hex();
    format!("{}{}", prefix(site_id, kind, period), &hash[..16])
}

/// The start of the ids of a site's messages of `kind` for `period`.
pub fn prefix(site_id: u32, kind: MailKind, period: &str) -> String {
    format!("{site_id}:{}:{}:", kind.as_str(), period.replace(' ', "_"))
}

pub async fn put(store: &dyn Store, id: &str, d: &Delivery) -> Result<(), StoreError> {
    let body = serde_json::to_string(d).map_err(|e| StoreError::Query(e.to_string()))?;
    store.meta().put_record(KIND, id, &body).await
}

pub async fn get(store: &dyn Store, id: &str) -> Result<Option<Delivery>, StoreError> {
    Ok(store
        .meta()
        .record(KIND, id)
        .await?
        .and_then(|b| serde_json::from_str(&b).ok()))
}

/// Every message in the outbox, newest first.
pub async fn all(store: &dyn Store) -> Result<Vec<(String, Delivery)>, StoreError> {
    let mut out: Vec<(String, Delivery)> = store
        .meta()
        .records(KIND)
        .await?
        .into_iter()
        .filter_map(|(id, body)| Some((id, serde_json::from_str(&body).ok()?)))
        .collect();
    out.sort_by(|a, b| {
        b.1.created_at
            .cmp(&a.1.created_at)
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(out)
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones.
pub fn backoff_secs(attempts: u32) -> i64 {
    let i = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    BACKOFF_MINUTES.get(i).copied().unwrap_or(720) * 60
}

impl Reports {
    /// Sends every due message this process can claim (after any round under way).
    pub async fn send_due(&self) -> Result<Round, StoreError> {
        let _round = self.round.lock().await;
        self.send_outbox().await
    }

    /// Sends every due message this process can claim; updates the outbox gauges and
    /// forgets messages older than [`KEEP_SECS`] that are done. The caller holds the round.
    pub(super) async fn send_outbox(&self) -> Result<Round, StoreError> {
        let store = self.store.as_ref();
        let now = self.clock.now().timestamp();
        let mailer = self.ready().ok().map(|(m, _)| m.clone());
        let mut claimed = Vec::new();
        let (mut pending, mut undelivered) = (0u64, 0u64);
        for (id, mut d) in all(store).await? {
            match d.status {
                Status::Pending | Status::Sending => pending += 1,
                Status::Failed => undelivered += 1,
                Status::Sent => {}
            }
            if matches!(d.status, Status::Sent | Status::Failed) && d.created_at + KEEP_SECS < now {
                store.meta().delete_record(KIND, &id).await?;
                if d.status == Status::Failed {
                    undelivered -= 1;
                }
                continue;
            }
            if !d.due(now) || mailer.is_none() {
                continue;
            }
            d.status = Status::Sending;
            d.holder = self.instance;
            d.lease_until = now + LEASE_SECS;
            put(store, &id, &d).await?;
            claimed.push(id);
        }
        let gauges = |pending: u64, undelivered: u64| {
            use std::sync::atomic::Ordering::Relaxed;
            self.metrics.mail_pending.store(pending, Relaxed);
            self.metrics.mail_undelivered.store(undelivered, Relaxed);
        };
        let mut round = Round::default();
        let Some(mailer) = mailer.filter(|_| !claimed.is_empty()) else {
            gauges(pending, undelivered);
            return Ok(round);
        };
        if !self.settle.is_zero() {
            tokio::time::sleep(self.settle).await;
        }
        for id in claimed {
            // Read back: another collector's later claim wins, and this one leaves it.
            let Some(mut d) = get(store, &id).await? else {
                continue;
            };
            if d.holder != self.instance || d.status != Status::Sending {
                continue;
            }
            d.attempts += 1;
            let at = self.clock.now().timestamp();
            match mailer.send_message(&d.to, &d.message).await {
                Ok(answer) => {
                    d.status = Status::Sent;
                    d.answer = Some(answer);
                    d.sent_at = Some(at);
                    d.last_error = None;
                    self.metrics.mail(d.kind, MailOutcome::Sent);
                    round.sent += 1;
                    pending -= 1;
                }
                Err(error) => {
                    round.failed += 1;
                    self.metrics.mail(d.kind, MailOutcome::Failed);
                    if d.attempts >= MAX_ATTEMPTS {
                        d.status = Status::Failed;
                        self.metrics.mail(d.kind, MailOutcome::GivenUp);
                        (pending, undelivered) = (pending - 1, undelivered + 1);
                        tracing::error!(
                            kind = d.kind.as_str(),
                            site_id = d.site_id,
                            attempts = d.attempts,
                            %error,
                            "a report or alert could not be sent; given up after its last attempt"
                        );
                    } else {
                        d.status = Status::Pending;
                        d.next_at = at + backoff_secs(d.attempts);
                        tracing::warn!(
                            kind = d.kind.as_str(),
                            site_id = d.site_id,
                            attempts = d.attempts,
                            retry_in_secs = d.next_at - at,
                            %error,
                            "a report or alert could not be sent; will try again"
                        );
                    }
                    d.last_error = Some(error);
                }
            }
            d.holder = 0;
            d.lease_until = 0;
            put(store, &id, &d).await?;
        }
        gauges(pending, undelivered);
        Ok(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_end() {
        assert_eq!(backoff_secs(1), 60);
        assert_eq!(backoff_secs(2), 300);
        assert_eq!(backoff_secs(7), 720 * 60);
        assert_eq!(MAX_ATTEMPTS, 8);
        let d = Delivery::new(
            1,
            MailKind::Weekly,
            "p",
            "a@b.org",
            Outgoing::default(),
            100,
        );
        assert!(d.due(100) && !d.due(99));
        assert_eq!(
            id(7, MailKind::Spike, "2026-12-06-am", "a@b.org"),
            format!(
                "7:spike:2026-12-06-am:{}",
                &blake3::hash(b"a@b.org").to_hex()[..16]
            )
        );
    }
}
