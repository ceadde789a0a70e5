//! Retention by partitions: raw events and salts are partitioned by UTC day, rollups by month;
//! dropping a partition removes its files.

use super::*;

// Every statement this store sends; `sample_statements` renders them for portability checks.
pub(super) const SQL_PARTITIONS: &str = "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active ORDER BY partition";

pub(super) const SQL_DROP_PARTITION: &str = "ALTER TABLE ? DROP PARTITION ?";

/// On a cluster: the partitions of one replica per shard, which together hold every day.
pub(super) const SQL_CLUSTER_PARTITIONS: &str = "SELECT DISTINCT partition FROM cluster(?, system.parts) WHERE database = ? AND table = ? AND active ORDER BY partition";

pub(super) const SQL_CLUSTER_DROP_PARTITION: &str = "ALTER TABLE ? ON CLUSTER ? DROP PARTITION ?";

impl ClickHouseStore {
    pub(super) async fn partitions(&self, table: &str) -> Result<Vec<String>, StoreError> {
        let local = self.local_table(table);
        let query = match &self.cluster {
            None => self.db().query(SQL_PARTITIONS),
            Some(c) => self.db().query(SQL_CLUSTER_PARTITIONS).bind(c.as_str()),
        };
        query
            .bind(self.database.as_str())
            .bind(local.as_str())
            .fetch_all::<String>()
            .await
            .map_err(|e| self.failed(e))
    }

    /// Drops one partition of `table`; on a cluster, of its local table on every node.
    pub(super) async fn drop_partition<T: Serialize>(
        &self,
        table: &str,
        partition: T,
    ) -> Result<(), StoreError> {
        let local = self.local_table(table);
        self.execute_everywhere("a partition", || {
            match &self.cluster {
                None => self.db().query(SQL_DROP_PARTITION).bind(Identifier(&local)),
                Some(c) => self
                    .db()
                    .query(SQL_CLUSTER_DROP_PARTITION)
                    .bind(Identifier(&local))
                    .bind(Identifier(c)),
            }
            .bind(&partition)
        })
        .await
    }

    /// Drops the day partitions of `table` before `day`; returns how many were dropped.
    pub(super) async fn drop_days_before(
        &self,
        table: &str,
        day: NaiveDate,
    ) -> Result<usize, StoreError> {
        let cutoff = day.format("%Y-%m-%d").to_string();
        let mut dropped = 0;
        for partition in self.partitions(table).await? {
            let date = partition.trim_matches('\'');
            if NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date < cutoff.as_str() {
                self.drop_partition(table, date).await?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}
