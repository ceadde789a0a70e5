//! Sites, API keys, account records and salts on ClickHouse: versioned rows read with
//! `argMax`, and the claims by which collectors that add sites at once agree on ids and domains.

use super::*;

// A deleted site (a `site-deleted` record, the `?`) is left out.
pub(super) const SQL_SITES: &str = "SELECT id, argMax(domain, version) AS site_domain, argMax(timezone, version) AS site_timezone, toUInt32(min(created_at)) AS created FROM sites WHERE id NOT IN (SELECT toUInt32OrZero(id) FROM records WHERE kind = ? AND deleted = 0) GROUP BY id ORDER BY id";

// The claims of one site id (see `add_site`), the first first.
pub(super) const SQL_SITE_CLAIMS: &str =
    "SELECT body, deleted, version FROM records WHERE kind = ? AND id = ? ORDER BY version, body";

pub(super) const SQL_SITE_LATEST: &str = "SELECT max(version) FROM sites WHERE id = ?";

/// The record kind of site id claims.
pub(super) const SITE_CLAIM: &str = "site-claim";

/// The record kind that marks a site deleted (its id is never given again).
pub(super) const SITE_DELETED: &str = "site-deleted";

pub(super) const SQL_DELETED_SITES: &str =
    "SELECT DISTINCT toUInt32OrZero(id) FROM records WHERE kind = ? AND deleted = 0";

// When each site first took a domain.
pub(super) const SQL_DOMAIN_CLAIMS: &str =
    "SELECT id, min(version) FROM sites WHERE domain = ? GROUP BY id ORDER BY id";

/// Record rows written before the first cutoff version that a later version superseded, and
/// deletion markers older than the second cutoff (with every older version of their record).
/// The subqueries may see fewer rows than the outer scan (a write in between): only rows
/// older than a write in flight can be, so a row written since is never taken for stale.
pub(super) const SQL_STALE_RECORDS: &str = "SELECT kind, id, version FROM records WHERE version < ? AND ((kind, id, version) NOT IN (SELECT kind, id, max(version) FROM records GROUP BY kind, id) OR (kind, id) IN (SELECT kind, id FROM records GROUP BY kind, id HAVING argMax(deleted, version) = 1 AND max(version) < ?))";

/// Record versions younger than this (microseconds) are left to the next compaction, so a
/// write racing the compaction's scan is never mistaken for a superseded one.
pub(super) const RECORD_SETTLE_MICROS: u64 = 60_000_000;

/// The mutation that deletes `n` record rows named by (kind, id, version).
pub(super) fn delete_records_sql(n: usize) -> String {
    let tuples = vec!["(?, ?, ?)"; n].join(", ");
    format!("ALTER TABLE records DELETE WHERE (kind, id, version) IN ({tuples})")
}

/// How many site ids `add_site` tries when other collectors take them first.
pub(super) const ADD_SITE_ATTEMPTS: usize = 8;

/// How long `add_site` waits after writing its claim before reading the claims back: longer
/// than a metadata write takes, and than replication between nodes usually takes.
pub(super) const CLAIM_SETTLE: std::time::Duration = std::time::Duration::from_millis(300);

pub(super) const SQL_RECORDS: &str = "SELECT id, latest_body FROM (SELECT id, argMax(body, version) AS latest_body, argMax(deleted, version) AS gone FROM records WHERE kind = ? GROUP BY id) WHERE gone = 0 ORDER BY id";

// Grouped by id, so no record gives no row (an ungrouped aggregate would give defaults).
pub(super) const SQL_RECORD: &str = "SELECT latest_body FROM (SELECT id, argMax(body, version) AS latest_body, argMax(deleted, version) AS gone FROM records WHERE kind = ? AND id = ? GROUP BY id) WHERE gone = 0";

// The keys of a deleted site (a `site-deleted` record, the `?`) are left out; a key's site
// never changes, so its rows are filtered before they are grouped.
pub(super) const SQL_API_KEYS: &str = "SELECT id, argMax(site_id, version) AS site_id, argMax(hash, version) AS hash, argMax(toUInt32(created_at), version) AS created_at, argMax(revoked, version) AS revoked FROM (SELECT id, site_id, hash, created_at, revoked, version FROM api_keys WHERE site_id NOT IN (SELECT toUInt32OrZero(id) FROM records WHERE kind = ? AND deleted = 0)) GROUP BY id ORDER BY created_at, id";

pub(super) const SQL_SALTS: &str =
    "SELECT toUInt16(day) AS day, min(salt) AS salt FROM salts GROUP BY day ORDER BY day";

#[derive(Serialize, Deserialize, clickhouse::Row)]
pub(super) struct SiteRow {
    pub(super) id: u32,
    pub(super) domain: String,
    pub(super) timezone: String,
    pub(super) created_at: u32,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
pub(super) struct SiteVersionRow {
    pub(super) id: u32,
    pub(super) domain: String,
    pub(super) timezone: String,
    pub(super) created_at: u32,
    pub(super) version: u64,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
pub(super) struct RecordRow {
    pub(super) kind: String,
    pub(super) id: String,
    pub(super) body: String,
    pub(super) deleted: u8,
    pub(super) version: u64,
}

#[derive(Serialize, Deserialize, clickhouse::Row)]
pub(super) struct SaltRow {
    /// Days since the epoch (ClickHouse `Date`).
    pub(super) day: u16,
    /// Hex of the 32 salt bytes.
    pub(super) salt: String,
    pub(super) created_at: u32,
}

#[derive(Serialize, clickhouse::Row)]
pub(super) struct ApiKeyRow {
    pub(super) id: String,
    pub(super) site_id: u32,
    pub(super) hash: String,
    pub(super) created_at: u32,
    pub(super) revoked: u8,
    pub(super) version: u64,
}

#[derive(Deserialize, clickhouse::Row)]
pub(super) struct SaltOut {
    pub(super) day: u16,
    pub(super) salt: String,
}

#[async_trait]
impl MetaStore for ClickHouseStore {
    async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        self.sync_replica("sites").await;
        self.sync_replica("records").await;
        let rows: Vec<SiteRow> = self
            .db()
            .query(SQL_SITES)
            .bind(SITE_DELETED)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .map(|r| Site {
                id: r.id,
                domain: r.domain,
                timezone: r.timezone,
            })
            .collect())
    }
    async fn add_site(&self, domain: &str, timezone: &str) -> Result<Site, StoreError> {
        // ClickHouse has no unique key, so collectors adding sites at once may pick the same
        // next id. Each first claims the id: a `site-claim` record stamped with its version
        // (microseconds). It waits CLAIM_SETTLE after the write returned, then reads the id's
        // claims. The first claim not withdrawn keeps the id, and only its owner writes the
        // site. A claim whose own write took longer than CLAIM_SETTLE yields even when first,
        // because a rival that read before it arrived has already decided. Losers withdraw
        // their claim and try the next id.
        let mut next = 0;
        for _ in 0..ADD_SITE_ATTEMPTS {
            let sites = self.sites().await?;
            if sites.iter().any(|s| s.domain == domain) {
                return Err(StoreError::SiteExists(domain.to_string()));
            }
            let deleted = self.deleted_sites().await?;
            let highest = sites
                .iter()
                .map(|s| s.id)
                .chain(deleted.iter().copied())
                .max()
                .unwrap_or(0);
            let id = (highest + 1).max(next);
            next = id + 1;
            let version = self.next_version();
            self.write_record(RecordRow {
                kind: SITE_CLAIM.into(),
                id: id.to_string(),
                body: domain.to_string(),
                deleted: 0,
                version,
            })
            .await?;
            let late = self.settle_claim("records", version).await;
            let claims: Vec<(String, u8, u64)> = self
                .db()
                .query(SQL_SITE_CLAIMS)
                .bind(SITE_CLAIM)
                .bind(id.to_string())
                .fetch_all()
                .await
                .map_err(|e| self.failed(e))?;
            let withdrawn = |d: &str| claims.iter().any(|c| c.1 == 1 && c.0 == d);
            let first = claims
                .iter()
                .find(|c| c.1 == 0 && !withdrawn(&c.0))
                .map(|c| c.0.as_str());
            // The same domain claimed at the same moment elsewhere is one site.
            if first == Some(domain) && !late {
                let others = self.sites().await?;
                if others.iter().any(|s| s.domain == domain && s.id != id) {
                    self.withdraw_claim(id, domain).await?;
                    return Err(StoreError::SiteExists(domain.to_string()));
                }
                self.write_site(SiteVersionRow {
                    id,
                    domain: domain.to_string(),
                    timezone: timezone.to_string(),
                    created_at: Utc::now().timestamp() as u32,
                    version: self.next_version(),
                })
                .await?;
                return Ok(Site {
                    id,
                    domain: domain.to_string(),
                    timezone: timezone.to_string(),
                });
            }
            self.withdraw_claim(id, domain).await?;
            tracing::info!(
                site_id = id,
                "another collector claimed this site id first; trying the next"
            );
        }
        Err(StoreError::Query(format!(
            "could not add {domain}: other collectors claimed {ADD_SITE_ATTEMPTS} site ids first"
        )))
    }
    async fn update_site(&self, site: &Site) -> Result<bool, StoreError> {
        let sites = self.sites().await?;
        let Some(previous) = sites.iter().find(|s| s.id == site.id) else {
            return Ok(false);
        };
        if sites
            .iter()
            .any(|s| s.domain == site.domain && s.id != site.id)
        {
            return Err(StoreError::SiteExists(site.domain.clone()));
        }
        let version = self.next_version();
        self.write_site(SiteVersionRow {
            id: site.id,
            domain: site.domain.clone(),
            timezone: site.timezone.clone(),
            created_at: Utc::now().timestamp() as u32,
            version,
        })
        .await?;
        if previous.domain == site.domain {
            return Ok(true);
        }
        // A new domain is a claim, as a new id is in `add_site`: if another site took the
        // same domain at the same moment, the earlier claim keeps it and the other rename
        // is undone.
        let late = self.settle_claim("sites", version).await;
        let claims: Vec<(u32, u64)> = self
            .db()
            .query(SQL_DOMAIN_CLAIMS)
            .bind(site.domain.as_str())
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        let holders = self.sites().await?;
        let rivals: Vec<u64> = claims
            .iter()
            .filter(|(id, _)| {
                *id != site.id
                    && holders
                        .iter()
                        .any(|h| h.id == *id && h.domain == site.domain)
            })
            .map(|(_, v)| *v)
            .collect();
        if rivals.is_empty() || (!late && rivals.iter().all(|v| *v > version)) {
            return Ok(true);
        }
        let latest: u64 = self
            .db()
            .query(SQL_SITE_LATEST)
            .bind(site.id)
            .fetch_one()
            .await
            .map_err(|e| self.failed(e))?;
        // Undo the rename unless a later change is already on top.
        if latest == version {
            self.write_site(SiteVersionRow {
                id: site.id,
                domain: previous.domain.clone(),
                timezone: previous.timezone.clone(),
                created_at: Utc::now().timestamp() as u32,
                version: self.next_version(),
            })
            .await?;
        }
        Err(StoreError::SiteExists(site.domain.clone()))
    }
    async fn salts(&self) -> Result<Vec<(NaiveDate, Salt)>, StoreError> {
        self.sync_replica("salts").await;
        let rows: Vec<SaltOut> = self
            .db()
            .query(SQL_SALTS)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let mut bytes = [0u8; 32];
                hex_decode(&r.salt, &mut bytes)?;
                Some((date_of(r.day), Salt(bytes)))
            })
            .collect())
    }
    async fn put_salt(&self, day: NaiveDate, salt: &Salt) -> Result<(), StoreError> {
        if self.salts().await?.iter().any(|(d, _)| *d == day) {
            return Ok(());
        }
        let row = SaltRow {
            day: day_number(day),
            salt: hex_encode(&salt.0),
            created_at: Utc::now().timestamp() as u32,
        };
        self.insert_row("salts", &row).await
    }
    async fn delete_salts_before(&self, day: NaiveDate) -> Result<(), StoreError> {
        self.drop_days_before("salts", day).await.map(|_| ())
    }
    async fn add_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.write_api_key(key, 1).await
    }
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.sync_replica("api_keys").await;
        self.sync_replica("records").await;
        self.db()
            .query(SQL_API_KEYS)
            .bind(SITE_DELETED)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn delete_site(&self, id: u32) -> Result<bool, StoreError> {
        let Some(site) = self.sites().await?.into_iter().find(|s| s.id == id) else {
            return Ok(false);
        };
        // Keys first, revoked (a key must not outlive its site even if the marker is lost).
        for key in self.api_keys().await? {
            if key.site_id == id && key.revoked == 0 {
                self.revoke_api_key(&key.id).await?;
            }
        }
        self.write_record(RecordRow {
            kind: SITE_DELETED.into(),
            id: id.to_string(),
            body: site.domain,
            deleted: 0,
            version: self.next_version(),
        })
        .await?;
        Ok(true)
    }
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let Some(key) = self.api_keys().await?.into_iter().find(|k| k.id == id) else {
            return Ok(false);
        };
        let version = Utc::now().timestamp_micros().max(2) as u64;
        self.write_api_key(&ApiKey { revoked: 1, ..key }, version)
            .await?;
        Ok(true)
    }
    async fn records(&self, kind: &str) -> Result<Vec<(String, String)>, StoreError> {
        self.sync_replica("records").await;
        self.db()
            .query(SQL_RECORDS)
            .bind(kind)
            .fetch_all::<(String, String)>()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn record(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        self.sync_replica("records").await;
        self.db()
            .query(SQL_RECORD)
            .bind(kind)
            .bind(id)
            .fetch_optional::<String>()
            .await
            .map_err(|e| self.failed(e))
    }
    async fn put_record(&self, kind: &str, id: &str, body: &str) -> Result<(), StoreError> {
        self.write_record(RecordRow {
            kind: kind.to_string(),
            id: id.to_string(),
            body: body.to_string(),
            deleted: 0,
            version: self.next_version(),
        })
        .await
    }
    async fn delete_record(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        if self.record(kind, id).await?.is_none() {
            return Ok(false);
        }
        self.write_record(RecordRow {
            kind: kind.to_string(),
            id: id.to_string(),
            body: String::new(),
            deleted: 1,
            version: self.next_version(),
        })
        .await?;
        Ok(true)
    }
    async fn compact_records(&self) -> Result<usize, StoreError> {
        // Records are appended as versions; reads take the latest. The superseded versions
        // and old deletion markers are deleted by a mutation (replicated on a cluster).
        self.sync_replica("records").await;
        let now = self.next_version();
        let settled = now.saturating_sub(RECORD_SETTLE_MICROS);
        let tombstones = now.saturating_sub(crate::store::RECORD_TOMBSTONE_SECS * 1_000_000);
        let stale: Vec<(String, String, u64)> = self
            .db()
            .query(SQL_STALE_RECORDS)
            .bind(settled)
            .bind(tombstones)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))?;
        for chunk in stale.chunks(500) {
            let mut query = self.db().query(&delete_records_sql(chunk.len()));
            for (kind, id, version) in chunk {
                query = query.bind(kind.as_str()).bind(id.as_str()).bind(*version);
            }
            query.execute().await.map_err(|e| self.failed(e))?;
        }
        Ok(stale.len())
    }
}

pub(super) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn hex_decode(s: &str, out: &mut [u8; 32]) -> Option<()> {
    if s.len() != 64 {
        return None;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

impl ClickHouseStore {
    pub(super) async fn write_api_key(&self, key: &ApiKey, version: u64) -> Result<(), StoreError> {
        let row = ApiKeyRow {
            id: key.id.clone(),
            site_id: key.site_id,
            hash: key.hash.clone(),
            created_at: key.created_at,
            revoked: key.revoked,
            version,
        };
        self.insert_row("api_keys", &row).await
    }

    /// Waits until rival claims written with versions below `version` can be read (see
    /// `add_site`); true when our own write took longer than that wait, so it yields.
    pub(super) async fn settle_claim(&self, table: &str, version: u64) -> bool {
        let settle = CLAIM_SETTLE.as_micros() as u64;
        let late = (Utc::now().timestamp_micros().max(0) as u64).saturating_sub(version) > settle;
        tokio::time::sleep(CLAIM_SETTLE).await;
        // Rival claims written through other nodes.
        self.sync_replica(table).await;
        late
    }

    pub(super) async fn withdraw_claim(&self, id: u32, domain: &str) -> Result<(), StoreError> {
        self.write_record(RecordRow {
            kind: SITE_CLAIM.into(),
            id: id.to_string(),
            body: domain.to_string(),
            deleted: 1,
            version: self.next_version(),
        })
        .await
    }

    /// The ids of deleted sites.
    pub(super) async fn deleted_sites(&self) -> Result<Vec<u32>, StoreError> {
        self.sync_replica("records").await;
        self.db()
            .query(SQL_DELETED_SITES)
            .bind(SITE_DELETED)
            .fetch_all()
            .await
            .map_err(|e| self.failed(e))
    }

    pub(super) async fn write_site(&self, row: SiteVersionRow) -> Result<(), StoreError> {
        self.insert_row("sites", &row).await
    }

    pub(super) async fn write_record(&self, row: RecordRow) -> Result<(), StoreError> {
        self.insert_row("records", &row).await
    }
}
