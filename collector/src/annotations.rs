//! Annotations: dated notes on a site's chart ("launched the pricing page"). A site-wide note
//! is shown to everyone who reads the site (shared links and API keys included); a personal
//! one only to the admin who wrote it. Admins write and delete them.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// The record kind (ids are `<site id>:<note id>`).
pub const KIND: &str = "annotation";
/// Longest note, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Most notes of one site.
pub const MAX_PER_SITE: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub id: String,
    pub site_id: u32,
    /// The site-local day it is about.
    pub date: NaiveDate,
    pub text: String,
    /// Who wrote it (an e-mail).
    pub author: String,
    /// Only its author sees it.
    pub personal: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// A site's notes between `from` and `to` (both included) that `reader` (a user's e-mail;
/// none for a shared link or a key) may see, by date.
pub async fn list(
    store: &dyn Store,
    site_id: u32,
    from: NaiveDate,
    to: NaiveDate,
    reader: Option<&str>,
) -> Result<Vec<Annotation>, StoreError> {
    let prefix = format!("{site_id}:");
    let mut out: Vec<Annotation> = store
        .meta()
        .records(KIND)
        .await?
        .into_iter()
        .filter(|(id, _)| id.starts_with(&prefix))
        .filter_map(|(_, body)| serde_json::from_str::<Annotation>(&body).ok())
        .filter(|a| a.date >= from && a.date <= to)
        .filter(|a| !a.personal || Some(a.author.as_str()) == reader)
        .collect();
    out.sort_by(|a, b| (a.date, a.created_at, &a.id).cmp(&(b.date, b.created_at, &b.id)));
    Ok(out)
}

/// Checks and stores a note; returns it, or what is wrong.
pub async fn add(
    store: &dyn Store,
    site_id: u32,
    date: &str,
    text: &str,
    personal: bool,
    author: &str,
    now: i64,
) -> Result<Result<Annotation, String>, StoreError> {
    let Ok(date) = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d") else {
        return Ok(Err(format!(
            "`date` is a day as YYYY-MM-DD, not `{}`",
            date.chars().take(30).collect::<String>()
        )));
    };
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS {
        return Ok(Err(format!("a note has 1 to {MAX_TEXT_CHARS} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Ok(Err("a note holds no control characters".into()));
    }
    let prefix = format!("{site_id}:");
    let count = store
        .meta()
        .records(KIND)
        .await?
        .iter()
        .filter(|(id, _)| id.starts_with(&prefix))
        .count();
    if count >= MAX_PER_SITE {
        return Ok(Err(format!("a site has at most {MAX_PER_SITE} notes")));
    }
    let bytes: [u8; 6] = rand::random();
    let note = Annotation {
        id: bytes.iter().map(|b| format!("{b:02x}")).collect(),
        site_id,
        date,
        text: text.to_string(),
        author: author.to_string(),
        personal,
        created_at: now,
    };
    let body = serde_json::to_string(&note).map_err(|e| StoreError::Query(e.to_string()))?;
    store
        .meta()
        .put_record(KIND, &format!("{site_id}:{}", note.id), &body)
        .await?;
    Ok(Ok(note))
}

/// Deletes a note of `site_id` that `by` may delete (a site-wide one, or their own personal
/// one); false when there is none.
pub async fn delete(
    store: &dyn Store,
    site_id: u32,
    id: &str,
    by: &str,
) -> Result<bool, StoreError> {
    let key = format!("{site_id}:{id}");
    let Some(body) = store.meta().record(KIND, &key).await? else {
        return Ok(false);
    };
    match serde_json::from_str::<Annotation>(&body) {
        Ok(a) if a.personal && a.author != by => Ok(false),
        _ => store.meta().delete_record(KIND, &key).await,
    }
}

/// Deletes every note of a deleted site.
pub async fn forget_site(store: &dyn Store, site_id: u32) -> Result<(), StoreError> {
    let prefix = format!("{site_id}:");
    for (id, _) in store.meta().records(KIND).await? {
        if id.starts_with(&prefix) {
            store.meta().delete_record(KIND, &id).await?;
        }
    }
    Ok(())
}
