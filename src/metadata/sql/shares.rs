// Share links, shared by both adapters (included with `Store` and `begin_write` in scope).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::audit::AuditEntry;
use crate::metadata::error::sql_err;
use crate::metadata::rows::{ShareRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{MetaError, MetaResult, ShareClaim, ShareFilter, ShareRecord, ShareStore};

use super::audit::commit_audited;

#[async_trait]
impl ShareStore for Store {
    async fn create_share(&self, share: &ShareRecord, audit: &AuditEntry) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        sqlx::query(concat!(
            "INSERT INTO shares (",
            share_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, NULL, $10, 0)"
        ))
        .bind(&share.id)
        .bind(&share.token_hash)
        .bind(share.bucket_id)
        .bind(share.key.as_str())
        .bind(share.created_by)
        .bind(to_micros(share.created_at))
        .bind(share.expires_at.map(to_micros))
        .bind(&share.password_hash)
        .bind(share.max_downloads)
        .bind(&share.api_key_id)
        .execute(&mut *tx)
        .await
        .map_err(sql_err("share"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn share_by_token(&self, token_hash: &str) -> MetaResult<Option<ShareRecord>> {
        let row: Option<ShareRow> =
            sqlx::query_as(concat!("SELECT ", share_columns!(), " FROM shares WHERE token_hash = $1"))
                .bind(token_hash)
                .fetch_optional(self.pool())
                .await
                .map_err(sql_err("share"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn share(&self, id: &str) -> MetaResult<Option<ShareRecord>> {
        let row: Option<ShareRow> = sqlx::query_as(concat!("SELECT ", share_columns!(), " FROM shares WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("share"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn shares_where(
        &self,
        filter: ShareFilter,
        before: Option<(DateTime<Utc>, &str)>,
        limit: usize,
    ) -> MetaResult<Vec<ShareRecord>> {
        // Without a cursor, the bound sits above every share (no share is created at i64::MAX micros).
        let (before_micros, before_id) = before.map_or((i64::MAX, ""), |(at, id)| (to_micros(at), id));
        let rows: Vec<ShareRow> = sqlx::query_as(concat!(
            "SELECT ",
            share_columns!(),
            " FROM shares WHERE ($1 IS NULL OR created_by = $1) AND ($2 IS NULL OR bucket_id = $2)",
            " AND (created_at < $3 OR (created_at = $3 AND id < $4))",
            " ORDER BY created_at DESC, id DESC LIMIT $5"
        ))
        .bind(filter.created_by)
        .bind(filter.bucket_id)
        .bind(before_micros)
        .bind(before_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("share"))?;
        records(rows)
    }

    async fn revoke_share(&self, id: &str, audit: &AuditEntry) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let revoked = sqlx::query("UPDATE shares SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(to_micros(audit.at))
            .execute(&mut *tx)
            .await
            .map_err(sql_err("share"))?;
        if revoked.rows_affected() == 0 {
            return Err(MetaError::NotFound("share"));
        }
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn claim_share_read(&self, id: &str, now: DateTime<Utc>, claim: ShareClaim) -> MetaResult<bool> {
        // One conditional UPDATE: the database serializes concurrent claims.
        let query = match claim {
            ShareClaim::Download => sqlx::query(
                "UPDATE shares SET downloads = downloads + 1 WHERE id = $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2) AND (max_downloads IS NULL OR downloads < max_downloads)",
            )
            .bind(id)
            .bind(to_micros(now)),
            // `range_bytes <= budget - bytes`, so that no sum can overflow; a
            // link without a limit keeps no count.
            ShareClaim::Continuation { bytes, budget } => sqlx::query(
                "UPDATE shares SET range_bytes = CASE WHEN max_downloads IS NULL THEN 0 ELSE range_bytes + $3 END \
                 WHERE id = $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2) AND (max_downloads IS NULL OR range_bytes <= $4 - $3)",
            )
            .bind(id)
            .bind(to_micros(now))
            .bind(bytes)
            .bind(budget),
        };
        let claimed = query.execute(self.pool()).await.map_err(sql_err("share"))?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn release_share_read(&self, id: &str, claim: ShareClaim) -> MetaResult<()> {
        let query = match claim {
            ShareClaim::Download => {
                sqlx::query("UPDATE shares SET downloads = downloads - 1 WHERE id = $1 AND downloads > 0").bind(id)
            }
            ShareClaim::Continuation { bytes, .. } => {
                sqlx::query("UPDATE shares SET range_bytes = range_bytes - $2 WHERE id = $1 AND range_bytes >= $2")
                    .bind(id)
                    .bind(bytes)
            }
        };
        query.execute(self.pool()).await.map_err(sql_err("share"))?;
        Ok(())
    }
}
