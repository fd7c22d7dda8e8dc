// Buckets and grants, shared by both adapters (included with `Db`, `Store` and `begin_write` in scope).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::audit::AuditEntry;
use crate::domain::{BucketName, Permission};
use crate::metadata::error::sql_err;
use crate::metadata::rows::{BucketRow, GrantRow, VisibleBucketRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{
    BucketRecord, BucketStore, DefaultRetention, GrantRecord, MetaError, MetaResult, NewBucket, VisibleBucket,
};

use super::audit::{commit_audited, execute_audited};

#[async_trait]
impl BucketStore for Store {
    async fn create_bucket(&self, bucket: &NewBucket, audit: &AuditEntry) -> MetaResult<BucketRecord> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let row: BucketRow = sqlx::query_as(concat!(
            "INSERT INTO buckets (name, owner_id, created_at, default_retention_mode, default_retention_days) \
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            bucket_columns!()
        ))
        .bind(bucket.name.as_str())
        .bind(bucket.owner_id)
        .bind(to_micros(bucket.at))
        .bind(bucket.default_retention.map(|r| r.mode.as_str()))
        .bind(bucket.default_retention.map(|r| i64::from(r.days)))
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err("bucket"))?;
        let record: BucketRecord = row.try_into()?;
        sqlx::query("INSERT INTO grants (bucket_id, user_id, permission, created_at) VALUES ($1, $2, 'manage', $3)")
            .bind(record.id)
            .bind(bucket.owner_id)
            .bind(to_micros(bucket.at))
            .execute(&mut *tx)
            .await
            .map_err(sql_err("grant"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(record)
    }

    async fn bucket_by_name(&self, name: &BucketName) -> MetaResult<Option<BucketRecord>> {
        let row: Option<BucketRow> = sqlx::query_as(concat!("SELECT ", bucket_columns!(), " FROM buckets WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("bucket"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn bucket_by_id(&self, id: i64) -> MetaResult<Option<BucketRecord>> {
        let row: Option<BucketRow> = sqlx::query_as(concat!("SELECT ", bucket_columns!(), " FROM buckets WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("bucket"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_buckets(&self, user_id: i64, all: bool) -> MetaResult<Vec<VisibleBucket>> {
        let rows: Vec<VisibleBucketRow> = sqlx::query_as(
            "SELECT b.id, b.name, b.owner_id, b.created_at, b.default_retention_mode, b.default_retention_days, \
             b.lifecycle_rules, \
             g.permission FROM buckets b LEFT JOIN grants g ON g.bucket_id = b.id AND g.user_id = $1 \
             WHERE $2 OR g.permission IS NOT NULL ORDER BY b.name",
        )
        .bind(user_id)
        .bind(all)
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("bucket"))?;
        rows.into_iter()
            .map(|row| {
                Ok(VisibleBucket {
                    grant: row.permission.map(|p| p.parse()).transpose().map_err(MetaError::corrupt)?,
                    bucket: row.bucket.try_into()?,
                })
            })
            .collect()
    }

    async fn delete_bucket(&self, bucket_id: i64, audit: &AuditEntry) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let (objects,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM objects WHERE bucket_id = $1) + (SELECT COUNT(*) FROM uploads WHERE bucket_id = $1)",
        )
        .bind(bucket_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err("bucket"))?;
        if objects > 0 {
            return Err(MetaError::Conflict("objects"));
        }
        let deleted = sqlx::query("DELETE FROM buckets WHERE id = $1")
            .bind(bucket_id)
            .execute(&mut *tx)
            .await
            .map_err(|error| match MetaError::from_sqlx(error, "objects") {
                // A row added under the bucket since the count above.
                MetaError::Dangling(what) => MetaError::Conflict(what),
                other => other,
            })?;
        if deleted.rows_affected() == 0 {
            return Err(MetaError::NotFound("bucket"));
        }
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn set_default_retention(
        &self,
        bucket_id: i64,
        retention: Option<DefaultRetention>,
        audit: &AuditEntry,
    ) -> MetaResult<()> {
        let statement =
            sqlx::query("UPDATE buckets SET default_retention_mode = $2, default_retention_days = $3 WHERE id = $1")
                .bind(bucket_id)
                .bind(retention.map(|r| r.mode.as_str()))
                .bind(retention.map(|r| i64::from(r.days)));
        execute_audited(self, statement, audit, MetaError::NotFound("bucket")).await
    }

    async fn grant(&self, bucket_id: i64, user_id: i64) -> MetaResult<Option<Permission>> {
        let row: Option<(String,)> = sqlx::query_as("SELECT permission FROM grants WHERE bucket_id = $1 AND user_id = $2")
            .bind(bucket_id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("grant"))?;
        row.map(|(permission,)| permission.parse().map_err(MetaError::corrupt))
            .transpose()
    }

    async fn set_grant(
        &self,
        bucket_id: i64,
        user_id: i64,
        permission: Permission,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        sqlx::query(
            "INSERT INTO grants (bucket_id, user_id, permission, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (bucket_id, user_id) DO UPDATE SET permission = excluded.permission",
        )
        .bind(bucket_id)
        .bind(user_id)
        .bind(permission.as_str())
        .bind(to_micros(at))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("grant"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn remove_grant(&self, bucket_id: i64, user_id: i64, audit: &AuditEntry) -> MetaResult<()> {
        let statement =
            sqlx::query("DELETE FROM grants WHERE bucket_id = $1 AND user_id = $2").bind(bucket_id).bind(user_id);
        execute_audited(self, statement, audit, MetaError::NotFound("grant")).await
    }

    async fn list_grants(&self, bucket_id: i64) -> MetaResult<Vec<GrantRecord>> {
        let rows: Vec<GrantRow> = sqlx::query_as(
            "SELECT g.bucket_id, g.user_id, u.username, g.permission, g.created_at \
             FROM grants g JOIN users u ON u.id = g.user_id WHERE g.bucket_id = $1 ORDER BY u.username",
        )
        .bind(bucket_id)
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("grant"))?;
        records(rows)
    }
}
