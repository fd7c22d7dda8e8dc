// Background jobs, shared by both adapters (included with `Store` in scope).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::metadata::error::sql_err;
use crate::metadata::time::to_micros;
use crate::metadata::{JobRecord, JobStore, MetaError, MetaResult};

#[async_trait]
impl JobStore for Store {
    async fn enqueue_job(
        &self,
        kind: &str,
        dedupe_key: &str,
        payload: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> MetaResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO jobs (kind, dedupe_key, payload, run_after, created_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(kind)
        .bind(dedupe_key)
        .bind(payload.to_string())
        .bind(to_micros(at))
        .execute(self.pool())
        .await
        .map_err(sql_err("job"))?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn claim_jobs(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> MetaResult<Vec<JobRecord>> {
        // Per engine (`CLAIM_JOBS`): the lease condition is repeated outside the
        // subquery so a row another replica claimed meanwhile is never claimed twice.
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(CLAIM_JOBS)
        .bind(holder)
        .bind(to_micros(lease_until))
        .bind(to_micros(now))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("job"))?;
        rows.into_iter()
            .map(|(id, kind, payload, attempts)| {
                let payload = serde_json::from_str(&payload).map_err(MetaError::corrupt)?;
                Ok(JobRecord { id, kind, payload, attempts })
            })
            .collect()
    }

    async fn finish_job(&self, id: i64) -> MetaResult<()> {
        sqlx::query("DELETE FROM jobs WHERE id = $1").bind(id).execute(self.pool()).await.map_err(sql_err("job"))?;
        Ok(())
    }

    async fn retry_job(&self, id: i64, error: &str, run_after: DateTime<Utc>) -> MetaResult<()> {
        sqlx::query("UPDATE jobs SET locked_by = NULL, locked_until = NULL, last_error = $2, run_after = $3 WHERE id = $1")
            .bind(id)
            .bind(error)
            .bind(to_micros(run_after))
            .execute(self.pool())
            .await
            .map_err(sql_err("job"))?;
        Ok(())
    }

    async fn pending_jobs(&self) -> MetaResult<i64> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM jobs").fetch_one(self.pool()).await.map_err(sql_err("job"))?;
        Ok(count)
    }

    async fn content_in_use(&self, digest: &str) -> MetaResult<bool> {
        let (found,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM objects WHERE sha256 = $1 AND state <> 'deleting') \
             OR EXISTS (SELECT 1 FROM objects WHERE sha256 IS NULL AND etag = $1 AND state <> 'deleting')",
        )
        .bind(digest)
        .fetch_one(self.pool())
        .await
        .map_err(sql_err("object"))?;
        Ok(found)
    }
}
