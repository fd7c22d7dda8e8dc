// Resumable multipart uploads, shared by both adapters (included with `Db`, `Store`, `begin_write`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Transaction;

use crate::domain::audit::AuditEntry;
use crate::metadata::error::sql_err;
use crate::metadata::rows::{CompletedUploadRow, ObjectRow, PartRow, UploadRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{
    Committed, CompletedUpload, FinishUpload, MetaError, MetaResult, UploadPartRecord, UploadRecord, UploadState,
    UploadStore,
};

use super::audit::commit_audited;
use super::objects::{Retiring, charge_replacing, retire_live};
use crate::domain::conditional::WriteConditions;

/// The upload, its row locked for the rest of the transaction: the no-op
/// UPDATE takes PostgreSQL's row lock (at READ COMMITTED a plain SELECT would
/// let an abort and a completion both read the same charged bytes); SQLite's
/// write transactions are serial anyway.
async fn locked_upload(tx: &mut Transaction<'static, Db>, id: &str) -> MetaResult<UploadRecord> {
    let row: Option<UploadRow> =
        sqlx::query_as(concat!("UPDATE uploads SET state_at = state_at WHERE id = $1 RETURNING ", upload_columns!()))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(sql_err("upload"))?;
    row.ok_or(MetaError::NotFound("upload"))?.try_into()
}

/// The locked upload, if it is in `state` (since `since`, when given);
/// `Conflict("upload-state")` otherwise.
async fn locked_upload_in(
    tx: &mut Transaction<'static, Db>,
    id: &str,
    state: UploadState,
    since: Option<DateTime<Utc>>,
) -> MetaResult<UploadRecord> {
    let upload = locked_upload(tx, id).await?;
    let moved_on = since.is_some_and(|since| to_micros(since) != to_micros(upload.state_at));
    if upload.state != state || moved_on {
        return Err(MetaError::Conflict("upload-state"));
    }
    Ok(upload)
}

/// Adds `delta` to the upload's charged bytes and the owner's usage (quota-checked when positive).
async fn charge_upload(tx: &mut Transaction<'static, Db>, upload: &UploadRecord, delta: i64) -> MetaResult<()> {
    charge_upload_replacing(tx, upload, delta, 0).await
}

/// `charge_upload` for bytes that will replace `replaced` bytes once stored:
/// the quota is checked as if those were already gone.
async fn charge_upload_replacing(
    tx: &mut Transaction<'static, Db>,
    upload: &UploadRecord,
    delta: i64,
    replaced: i64,
) -> MetaResult<()> {
    if !charge_replacing(tx, upload.owner_id, delta, replaced).await? {
        return Err(MetaError::Conflict("quota"));
    }
    sqlx::query("UPDATE uploads SET charged_bytes = charged_bytes + $2 WHERE id = $1")
        .bind(&upload.id)
        .bind(delta)
        .execute(&mut **tx)
        .await
        .map_err(sql_err("upload"))?;
    Ok(())
}

/// An upload takes one more part only while the parts it holds (replaced
/// ones included, until they are credited) are within `limit`: at most one
/// part more than an object may hold is ever staged, whatever the client sends.
fn within_staged_limit(upload: &UploadRecord, limit: i64) -> MetaResult<()> {
    if upload.charged_bytes > limit { Err(MetaError::Conflict("staged-limit")) } else { Ok(()) }
}

/// The size of part `part_number` as stored, if it is.
async fn stored_part_size(tx: &mut Transaction<'static, Db>, upload_id: &str, part_number: i64) -> MetaResult<Option<i64>> {
    let size: Option<(i64,)> =
        sqlx::query_as("SELECT size FROM upload_parts WHERE upload_id = $1 AND part_number = $2")
            .bind(upload_id)
            .bind(part_number)
            .fetch_optional(&mut **tx)
            .await
            .map_err(sql_err("upload part"))?;
    Ok(size.map(|(size,)| size))
}

async fn forget(tx: &mut Transaction<'static, Db>, id: &str) -> MetaResult<()> {
    for statement in [
        "DELETE FROM upload_parts WHERE upload_id = $1",
        "DELETE FROM direct_part_reservations WHERE upload_id = $1",
        "DELETE FROM uploads WHERE id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut **tx).await.map_err(sql_err("upload"))?;
    }
    Ok(())
}

#[async_trait]
impl UploadStore for Store {
    async fn create_upload(&self, upload: &UploadRecord, max_open: usize, audit: &AuditEntry) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        if let Some(owner) = upload.owner_id {
            let found: Option<(i64,)> =
                sqlx::query_as(LOCK_USER).bind(owner).fetch_optional(&mut *tx).await.map_err(sql_err("user"))?;
            found.ok_or(MetaError::NotFound("user"))?;
            let (open,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM uploads WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(&mut *tx)
                .await
                .map_err(sql_err("upload"))?;
            if usize::try_from(open).unwrap_or(usize::MAX) >= max_open {
                return Err(MetaError::Conflict("too-many-uploads"));
            }
        }
        sqlx::query(concat!(
            "INSERT INTO uploads (",
            upload_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $10, 0, NULL, NULL, NULL)"
        ))
        .bind(&upload.id)
        .bind(upload.bucket_id)
        .bind(upload.key.as_str())
        .bind(&upload.blob_key)
        .bind(&upload.backend_upload_id)
        .bind(upload.owner_id)
        .bind(&upload.content_type)
        .bind(upload.declared_size)
        .bind(upload.part_size)
        .bind(to_micros(upload.created_at))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("upload"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> MetaResult<Option<UploadRecord>> {
        let row: Option<UploadRow> = sqlx::query_as(concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("upload"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn reserve_part(&self, upload_id: &str, (part_number, bytes): (i64, i64), staged_limit: i64) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let upload = locked_upload_in(&mut tx, upload_id, UploadState::Open, None).await?;
        within_staged_limit(&upload, staged_limit)?;
        let replaced = stored_part_size(&mut tx, upload_id, part_number).await?;
        charge_upload_replacing(&mut tx, &upload, bytes, replaced.unwrap_or(0)).await?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(())
    }

    async fn reserve_direct_part(
        &self,
        upload_id: &str,
        part_number: i64,
        bytes: i64,
        staged_limit: i64,
    ) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let upload = locked_upload_in(&mut tx, upload_id, UploadState::Open, None).await?;
        within_staged_limit(&upload, staged_limit)?;
        let reserved: Option<(i64,)> =
            sqlx::query_as("SELECT bytes FROM direct_part_reservations WHERE upload_id = $1 AND part_number = $2")
                .bind(upload_id)
                .bind(part_number)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql_err("part reservation"))?;
        let reserved = reserved.map_or(0, |(bytes,)| bytes);
        // Only ever grows: a URL signed earlier for more bytes may still be used.
        if bytes > reserved {
            charge_upload(&mut tx, &upload, bytes - reserved).await?;
            sqlx::query(
                "INSERT INTO direct_part_reservations (upload_id, part_number, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (upload_id, part_number) DO UPDATE SET bytes = excluded.bytes",
            )
            .bind(upload_id)
            .bind(part_number)
            .bind(bytes)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("part reservation"))?;
        }
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(())
    }

    async fn release_part(&self, upload_id: &str, bytes: i64) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        if let Ok(upload) = locked_upload(&mut tx, upload_id).await {
            charge_upload(&mut tx, &upload, -bytes).await?;
        }
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(())
    }

    async fn record_part(&self, upload_id: &str, part: &UploadPartRecord) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let upload = locked_upload(&mut tx, upload_id).await?;
        if let Some(old_size) = stored_part_size(&mut tx, upload_id, part.part_number).await? {
            charge_upload(&mut tx, &upload, -old_size).await?;
        }
        sqlx::query(
            "INSERT INTO upload_parts (upload_id, part_number, size, etag, backend_etag, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (upload_id, part_number) DO UPDATE SET \
             size = excluded.size, etag = excluded.etag, backend_etag = excluded.backend_etag, created_at = excluded.created_at",
        )
        .bind(upload_id)
        .bind(part.part_number)
        .bind(part.size)
        .bind(&part.etag)
        .bind(&part.backend_etag)
        .bind(to_micros(part.created_at))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("upload part"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(())
    }

    async fn upload_parts(&self, upload_id: &str) -> MetaResult<Vec<UploadPartRecord>> {
        let rows: Vec<PartRow> = sqlx::query_as(
            "SELECT part_number, size, etag, backend_etag, created_at FROM upload_parts WHERE upload_id = $1 ORDER BY part_number",
        )
        .bind(upload_id)
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("upload part"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn start_completion(
        &self,
        upload_id: &str,
        now: DateTime<Utc>,
        (etag, size): (&str, i64),
    ) -> MetaResult<Option<UploadRecord>> {
        let row: Option<UploadRow> = sqlx::query_as(concat!(
            "UPDATE uploads SET state = 'completing', state_at = $2, attempt_etag = $3, attempt_size = $4 \
             WHERE id = $1 AND state = 'open' RETURNING ",
            upload_columns!()
        ))
        .bind(upload_id)
        .bind(to_micros(now))
        .bind(etag)
        .bind(size)
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("upload"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn reopen_upload(
        &self,
        upload_id: &str,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
        assembled_etag: Option<&str>,
    ) -> MetaResult<bool> {
        let reopened = sqlx::query(
            "UPDATE uploads SET state = 'open', state_at = $3, assembled_etag = $4 \
             WHERE id = $1 AND state = 'completing' AND state_at = $2",
        )
        .bind(upload_id)
        .bind(to_micros(started))
        .bind(to_micros(now))
        .bind(assembled_etag)
        .execute(self.pool())
        .await
        .map_err(sql_err("upload"))?;
        Ok(reopened.rows_affected() == 1)
    }

    async fn finish_upload(&self, finish: &FinishUpload, audit: &AuditEntry) -> MetaResult<Committed> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let upload = locked_upload_in(&mut tx, &finish.upload_id, UploadState::Completing, Some(finish.started)).await?;
        let unconditional = WriteConditions::default();
        let replaced =
            retire_live(&mut tx, upload.bucket_id, upload.key.as_str(), finish.at, Retiring::Live(&unconditional))
                .await?;
        // Parts uploaded but left out of the completed object are credited back.
        charge_upload(&mut tx, &upload, finish.size - upload.charged_bytes).await?;
        let row: ObjectRow = sqlx::query_as(concat!(
            "INSERT INTO objects (bucket_id, object_key, blob_key, state, size, etag, sha256, content_type, owner_id, \
             created_at, updated_at, retention_mode, retain_until, legal_hold) \
             VALUES ($1, $2, $3, 'committed', $4, $5, NULL, $6, $7, $8, $8, \
             (SELECT default_retention_mode FROM buckets WHERE id = $1), \
             (SELECT $8 + default_retention_days * 86400000000 FROM buckets WHERE id = $1), FALSE) RETURNING ",
            object_columns!()
        ))
        .bind(upload.bucket_id)
        .bind(upload.key.as_str())
        .bind(&upload.blob_key)
        .bind(finish.size)
        .bind(&finish.etag)
        .bind(&finish.content_type)
        .bind(upload.owner_id)
        .bind(to_micros(finish.at))
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err("object"))?;
        sqlx::query(
            "INSERT INTO completed_uploads (id, bucket_id, object_key, owner_id, blob_key, etag, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&upload.id)
        .bind(upload.bucket_id)
        .bind(upload.key.as_str())
        .bind(upload.owner_id)
        .bind(&upload.blob_key)
        .bind(&finish.etag)
        .bind(to_micros(finish.at))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("upload"))?;
        forget(&mut tx, &upload.id).await?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(Committed { object: row.try_into()?, replaced })
    }

    async fn completed_upload(&self, id: &str) -> MetaResult<Option<CompletedUpload>> {
        let row: Option<CompletedUploadRow> = sqlx::query_as(
            "SELECT id, bucket_id, object_key, owner_id, blob_key, etag, completed_at FROM completed_uploads WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("upload"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn forget_completed_uploads(&self, before: DateTime<Utc>) -> MetaResult<u64> {
        let forgotten = sqlx::query("DELETE FROM completed_uploads WHERE completed_at < $1")
            .bind(to_micros(before))
            .execute(self.pool())
            .await
            .map_err(sql_err("upload"))?;
        Ok(forgotten.rows_affected())
    }

    async fn abort_upload(
        &self,
        upload_id: &str,
        state: UploadState,
        since: Option<DateTime<Utc>>,
        audit: &AuditEntry,
    ) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let upload = locked_upload_in(&mut tx, upload_id, state, since).await?;
        charge_upload(&mut tx, &upload, -upload.charged_bytes).await?;
        forget(&mut tx, upload_id).await?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn stale_uploads(
        &self,
        open_before: DateTime<Utc>,
        completing_before: DateTime<Utc>,
        limit: usize,
    ) -> MetaResult<Vec<UploadRecord>> {
        let rows: Vec<UploadRow> = sqlx::query_as(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM uploads WHERE (state = 'open' AND created_at < $1) OR (state = 'completing' AND state_at < $2) \
             ORDER BY created_at LIMIT $3"
        ))
        .bind(to_micros(open_before))
        .bind(to_micros(completing_before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("upload"))?;
        records(rows)
    }

    async fn backend_upload_known(&self, backend_upload_id: &str) -> MetaResult<bool> {
        let (known,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM uploads WHERE backend_upload_id = $1)")
            .bind(backend_upload_id)
            .fetch_one(self.pool())
            .await
            .map_err(sql_err("upload"))?;
        Ok(known)
    }

    async fn uploads_in_bucket(
        &self,
        bucket_id: i64,
        prefix: &str,
        owner: Option<i64>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> MetaResult<Vec<UploadRecord>> {
        let (after_key, after_id) = after.unwrap_or((prefix, ""));
        let rows: Vec<UploadRow> = sqlx::query_as(concat!(
            "SELECT ",
            upload_columns!(),
            " FROM uploads WHERE bucket_id = $1 AND state = 'open' AND object_key >= $2 \
             AND (object_key > $3 OR (object_key = $3 AND id > $4)) AND ($6 IS NULL OR owner_id = $6) \
             ORDER BY object_key, id LIMIT $5"
        ))
        .bind(bucket_id)
        .bind(prefix)
        .bind(after_key)
        .bind(after_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(owner)
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("upload"))?;
        let uploads: Vec<UploadRecord> = records(rows)?;
        Ok(uploads.into_iter().take_while(|u| u.key.as_str().starts_with(prefix)).collect())
    }
}
