// Retention, legal hold, lifecycle rules and leases, shared by both adapters
// (included with `Store` and `begin_write` in scope).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::audit::AuditEntry;
use crate::metadata::error::sql_err;
use crate::metadata::rows::{BucketRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{BucketRecord, GovernanceStore, MetaError, MetaResult};
use crate::policy::lifecycle::LifecycleRule;
use crate::policy::retention::Retention;

use super::audit::execute_audited;

#[async_trait]
impl GovernanceStore for Store {
    async fn set_object_retention(
        &self,
        object_id: i64,
        expected: Option<Retention>,
        retention: Option<Retention>,
        audit: &AuditEntry,
    ) -> MetaResult<()> {
        let statement = sqlx::query(
            "UPDATE objects SET retention_mode = $2, retain_until = $3 WHERE id = $1 AND state = 'committed' \
             AND retention_mode IS NOT DISTINCT FROM $4 AND retain_until IS NOT DISTINCT FROM $5",
        )
        .bind(object_id)
        .bind(retention.map(|r| r.mode.as_str()))
        .bind(retention.map(|r| to_micros(r.retain_until)))
        .bind(expected.map(|r| r.mode.as_str()))
        .bind(expected.map(|r| to_micros(r.retain_until)));
        execute_audited(self, statement, audit, MetaError::Conflict("changed")).await
    }

    async fn set_legal_hold(&self, object_id: i64, expected: bool, on: bool, audit: &AuditEntry) -> MetaResult<()> {
        let statement =
            sqlx::query("UPDATE objects SET legal_hold = $2 WHERE id = $1 AND state = 'committed' AND legal_hold = $3")
                .bind(object_id)
                .bind(on)
                .bind(expected);
        execute_audited(self, statement, audit, MetaError::Conflict("changed")).await
    }

    async fn set_lifecycle(&self, bucket_id: i64, rules: &[LifecycleRule], audit: &AuditEntry) -> MetaResult<()> {
        let json = if rules.is_empty() { None } else { Some(serde_json::to_string(rules).map_err(MetaError::corrupt)?) };
        let statement = sqlx::query("UPDATE buckets SET lifecycle_rules = $2 WHERE id = $1").bind(bucket_id).bind(json);
        execute_audited(self, statement, audit, MetaError::NotFound("bucket")).await
    }

    async fn buckets_with_lifecycle(&self) -> MetaResult<Vec<BucketRecord>> {
        let rows: Vec<BucketRow> = sqlx::query_as(concat!(
            "SELECT ",
            bucket_columns!(),
            " FROM buckets WHERE lifecycle_rules IS NOT NULL ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("bucket"))?;
        records(rows)
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> MetaResult<bool> {
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(to_micros(until))
        .bind(to_micros(now))
        .execute(self.pool())
        .await
        .map_err(sql_err("lease"))?;
        Ok(taken.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> MetaResult<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await
            .map_err(sql_err("lease"))?;
        Ok(())
    }
}
