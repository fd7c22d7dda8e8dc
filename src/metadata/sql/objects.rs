// Object rows and their life cycle (pending → committed → deleting → gone), with
// quota accounting, shared by both adapters (included with `Db`, `Store`, `begin_write`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Pool, Transaction};

use crate::domain::ObjectKey;
use crate::domain::conditional::WriteConditions;
use crate::domain::audit::AuditEntry;
use crate::metadata::error::sql_err;
use crate::metadata::listing::{LowerBound, rollup, start, successor};
use crate::metadata::rows::{ObjectRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{
    CommitObject, Committed, ListQuery, ListResult, MetaError, MetaResult, NewObject, ObjectRecord, ObjectStore,
};

use super::audit::commit_audited;

/// Rows a listing reads right after skipping a folder larger than a batch.
const FOLDER_BATCH: i64 = 16;

/// Adds `delta` bytes to a user's usage; a positive delta must fit the quota.
/// Returns false when it would not.
pub(in crate::metadata) async fn charge(tx: &mut Transaction<'static, Db>, owner_id: Option<i64>, delta: i64) -> MetaResult<bool> {
    charge_replacing(tx, owner_id, delta, 0).await
}

/// `charge`, with the quota checked as if `replaced` bytes (which the
/// charged ones will replace, and are credited then) were gone already.
pub(in crate::metadata) async fn charge_replacing(
    tx: &mut Transaction<'static, Db>,
    owner_id: Option<i64>,
    delta: i64,
    replaced: i64,
) -> MetaResult<bool> {
    let Some(owner_id) = owner_id else {
        return Ok(true);
    };
    if delta == 0 {
        return Ok(true);
    }
    let updated = sqlx::query(
        "UPDATE users SET used_bytes = used_bytes + $2 \
         WHERE id = $1 AND ($2 <= 0 OR quota_bytes IS NULL OR used_bytes + $2 - $3 <= quota_bytes)",
    )
    .bind(owner_id)
    .bind(delta)
    .bind(replaced)
    .execute(&mut **tx)
    .await
    .map_err(sql_err("user"))?;
    // A deleted owner has no row to charge: nothing to enforce.
    if updated.rows_affected() == 0 {
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
            .bind(owner_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(sql_err("user"))?;
        return Ok(exists.is_none());
    }
    Ok(true)
}

/// Which live version a write may retire.
pub(in crate::metadata) enum Retiring<'a> {
    /// Whatever is live, if the request's preconditions hold for it
    /// (`Conflict("precondition")` otherwise).
    Live(&'a WriteConditions),
    /// Exactly this version (`NotFound` if another is live by now).
    Version(i64),
}

/// Moves the live version of a key to `deleting` and credits its owner; refuses
/// (`Conflict("object-locked")`) while it is retained or held.
pub(in crate::metadata) async fn retire_live(
    tx: &mut Transaction<'static, Db>,
    bucket_id: i64,
    key: &str,
    now: DateTime<Utc>,
    retiring: Retiring<'_>,
) -> MetaResult<Option<ObjectRecord>> {
    let live: Option<ObjectRow> = sqlx::query_as(concat!(
        "SELECT ",
        object_columns!(),
        " FROM objects WHERE bucket_id = $1 AND object_key = $2 AND state = 'committed'"
    ))
    .bind(bucket_id)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(sql_err("object"))?;
    let live: Option<ObjectRecord> = live.map(TryInto::try_into).transpose()?;
    match retiring {
        Retiring::Live(conditions) => {
            let current = live.as_ref().map(|l| (l.etag.as_deref().unwrap_or_default(), l.created_at));
            if !conditions.allow(current) {
                return Err(MetaError::Conflict("precondition"));
            }
        }
        Retiring::Version(id) if live.as_ref().is_none_or(|l| l.id != id) => {
            return Err(MetaError::NotFound("object"));
        }
        Retiring::Version(_) => {}
    }
    let Some(live) = live else {
        return Ok(None);
    };
    if crate::policy::retention::is_locked(&live, now) {
        return Err(MetaError::Conflict("object-locked"));
    }
    // The lock condition is repeated here so a hold or retention committed
    // since the SELECT above (PostgreSQL re-reads the row) still wins.
    let retired = sqlx::query(
        "UPDATE objects SET state = 'deleting', updated_at = $2 WHERE id = $1 AND state = 'committed' \
         AND legal_hold = FALSE AND (retain_until IS NULL OR retain_until <= $2)",
    )
    .bind(live.id)
    .bind(to_micros(now))
    .execute(&mut **tx)
    .await
    .map_err(sql_err("object"))?;
    if retired.rows_affected() == 0 {
        return Err(lost_retirement(tx, live.id, now).await);
    }
    if !charge(tx, live.owner_id, -live.size).await? {
        return Err(MetaError::Conflict("quota"));
    }
    Ok(Some(ObjectRecord { state: crate::metadata::ObjectState::Deleting, ..live }))
}

/// Why the retiring UPDATE matched no row: a hold or retention committed
/// since the SELECT is the lock it is (`object-locked`, as if it had been
/// seen first); anything else is a concurrent change.
async fn lost_retirement(tx: &mut Transaction<'static, Db>, id: i64, now: DateTime<Utc>) -> MetaError {
    let row: Result<Option<ObjectRow>, _> =
        sqlx::query_as(concat!("SELECT ", object_columns!(), " FROM objects WHERE id = $1 AND state = 'committed'"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await;
    match row.map(|row| row.map(ObjectRecord::try_from)) {
        Ok(Some(Ok(now_live))) if crate::policy::retention::is_locked(&now_live, now) => {
            MetaError::Conflict("object-locked")
        }
        Ok(Some(Err(corrupt))) => corrupt,
        Err(error) => sql_err("object")(error),
        _ => MetaError::Conflict("changed"),
    }
}

async fn fetch_page(
    pool: &Pool<Db>,
    bucket_id: i64,
    lower: Option<&LowerBound>,
    upper: Option<&str>,
    batch: i64,
) -> MetaResult<Vec<ObjectRecord>> {
    // Separate statements per bound shape keep each one index-friendly.
    let (sql, bound) = match (lower, upper.is_some()) {
        (Some(LowerBound::After(key)), false) => (
            concat!("SELECT ", object_columns!(), " FROM objects WHERE bucket_id = $1 AND state = 'committed' AND object_key > $2 ORDER BY object_key LIMIT $3"),
            Some(key.as_str()),
        ),
        (Some(LowerBound::AtOrAfter(key)), false) => (
            concat!("SELECT ", object_columns!(), " FROM objects WHERE bucket_id = $1 AND state = 'committed' AND object_key >= $2 ORDER BY object_key LIMIT $3"),
            Some(key.as_str()),
        ),
        (Some(LowerBound::After(key)), true) => (
            concat!("SELECT ", object_columns!(), " FROM objects WHERE bucket_id = $1 AND state = 'committed' AND object_key > $2 AND object_key < $4 ORDER BY object_key LIMIT $3"),
            Some(key.as_str()),
        ),
        (Some(LowerBound::AtOrAfter(key)), true) => (
            concat!("SELECT ", object_columns!(), " FROM objects WHERE bucket_id = $1 AND state = 'committed' AND object_key >= $2 AND object_key < $4 ORDER BY object_key LIMIT $3"),
            Some(key.as_str()),
        ),
        (None, _) => (
            concat!("SELECT ", object_columns!(), " FROM objects WHERE bucket_id = $1 AND state = 'committed' AND $2 IS NULL ORDER BY object_key LIMIT $3"),
            None,
        ),
    };
    let mut query = sqlx::query_as::<Db, ObjectRow>(sql).bind(bucket_id).bind(bound).bind(batch);
    if let Some(upper) = upper
        && lower.is_some()
    {
        query = query.bind(upper.to_owned());
    }
    records(query.fetch_all(pool).await.map_err(sql_err("object"))?)
}

#[async_trait]
impl ObjectStore for Store {
    async fn insert_pending(&self, object: &NewObject) -> MetaResult<ObjectRecord> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        if !charge(&mut tx, object.owner_id, object.reserved_bytes).await? {
            return Err(MetaError::Conflict("quota"));
        }
        let row: ObjectRow = sqlx::query_as(concat!(
            "INSERT INTO objects (bucket_id, object_key, blob_key, state, size, content_type, owner_id, created_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $7) RETURNING ",
            object_columns!()
        ))
        .bind(object.bucket_id)
        .bind(object.key.as_str())
        .bind(&object.blob_key)
        .bind(object.reserved_bytes)
        .bind(&object.content_type)
        .bind(object.owner_id)
        .bind(to_micros(object.at))
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err("object"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        row.try_into()
    }

    async fn commit_object(&self, commit: &CommitObject, audit: &AuditEntry) -> MetaResult<Committed> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let pending: Option<ObjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            object_columns!(),
            " FROM objects WHERE id = $1 AND state = 'pending'"
        ))
        .bind(commit.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql_err("object"))?;
        let pending: ObjectRecord = pending.ok_or(MetaError::NotFound("pending object"))?.try_into()?;
        if let Some(lock) = LOCK_COMMIT_ROWS {
            sqlx::query(lock)
                .bind(pending.id)
                .bind(pending.bucket_id)
                .bind(pending.key.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(sql_err("object"))?;
        }
        let replaced =
            retire_live(&mut tx, pending.bucket_id, pending.key.as_str(), commit.at, Retiring::Live(&commit.conditions))
                .await?;
        if !charge(&mut tx, pending.owner_id, commit.size - pending.size).await? {
            return Err(MetaError::Conflict("quota"));
        }
        let row: ObjectRow = sqlx::query_as(concat!(
            "UPDATE objects SET state = 'committed', size = $2, etag = $3, sha256 = $4, content_type = $5, \
             retention_mode = (SELECT default_retention_mode FROM buckets WHERE id = objects.bucket_id), \
             retain_until = (SELECT $6 + default_retention_days * 86400000000 FROM buckets WHERE id = objects.bucket_id), \
             created_at = $6, updated_at = $6 WHERE id = $1 RETURNING ",
            object_columns!()
        ))
        .bind(commit.id)
        .bind(commit.size)
        .bind(&commit.etag)
        .bind(&commit.sha256)
        .bind(&commit.content_type)
        .bind(to_micros(commit.at))
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err("object"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(Committed {
            object: row.try_into()?,
            replaced,
        })
    }

    async fn discard_pending(&self, id: i64) -> MetaResult<bool> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let row: Option<(Option<i64>, i64)> =
            sqlx::query_as("DELETE FROM objects WHERE id = $1 AND state = 'pending' RETURNING owner_id, size")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql_err("object"))?;
        let discarded = row.is_some();
        if let Some((owner_id, reserved)) = row {
            charge(&mut tx, owner_id, -reserved).await?;
        }
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(discarded)
    }

    async fn live_object(&self, bucket_id: i64, key: &ObjectKey) -> MetaResult<Option<ObjectRecord>> {
        let row: Option<ObjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            object_columns!(),
            " FROM objects WHERE bucket_id = $1 AND object_key = $2 AND state = 'committed'"
        ))
        .bind(bucket_id)
        .bind(key.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("object"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn object_by_id(&self, id: i64) -> MetaResult<Option<ObjectRecord>> {
        let row: Option<ObjectRow> = sqlx::query_as(concat!("SELECT ", object_columns!(), " FROM objects WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("object"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_objects(&self, bucket_id: i64, query: &ListQuery) -> MetaResult<ListResult> {
        let delimiter = query.delimiter.as_deref();
        let upper = successor(&query.prefix);
        let mut lower = start(&query.prefix, delimiter, query.after.as_deref());
        let page = i64::try_from(query.limit.clamp(1, 1000) + 1).unwrap_or(1001);
        let mut batch;
        let mut result = ListResult::default();
        let mut items = 0usize;
        // Resuming after a rolled-up prefix: the rest of it is skipped, not listed again.
        let mut last_item: Option<(String, bool)> = query
            .after
            .as_deref()
            .filter(|after| rollup(after, &query.prefix, delimiter).as_deref() == Some(*after))
            .map(|after| (after.to_owned(), true));
        let mut after_folder = false;
        'fetch: loop {
            // Small right after a folder was skipped (the next may be one too), else a page's worth.
            batch = if after_folder { page.min(FOLDER_BATCH) } else { page };
            let rows = fetch_page(self.pool(), bucket_id, lower.as_ref(), upper.as_deref(), batch).await?;
            result.scanned += rows.len();
            let exhausted = rows.len() < usize::try_from(batch).unwrap_or(usize::MAX);
            let mut last_row_key = None;
            for row in rows {
                let key = row.key.as_str().to_owned();
                if !key.starts_with(query.prefix.as_str()) {
                    // Past the prefix (it has no upper bound when it ends in U+10FFFF).
                    break 'fetch;
                }
                last_row_key = Some(key.clone());
                if let Some((item, true)) = &last_item
                    && key.starts_with(item.as_str())
                {
                    continue;
                }
                if items == query.limit {
                    result.next_after = last_item.map(|(item, _)| item);
                    break 'fetch;
                }
                items += 1;
                match rollup(&key, &query.prefix, delimiter) {
                    Some(prefix) => {
                        result.prefixes.push(prefix.clone());
                        last_item = Some((prefix, true));
                    }
                    None => {
                        result.objects.push(row);
                        last_item = Some((key, false));
                    }
                }
            }
            if exhausted {
                break;
            }
            // Continue past the whole prefix the last row rolled into, or else after that row:
            // either way the bound moves forward (a prefix ending in U+10FFFF has no successor).
            lower = match (&last_item, last_row_key) {
                (Some((item, true)), Some(row_key)) if row_key.starts_with(item.as_str()) => {
                    // The batch ended inside a folder, read for its name alone: the
                    // folders ahead are read in small batches, so a page of N large
                    // folders reads about N × FOLDER_BATCH rows, not N pages' worth.
                    after_folder = true;
                    Some(successor(item).map_or(LowerBound::After(row_key), LowerBound::AtOrAfter))
                }
                (_, Some(row_key)) => {
                    after_folder = false;
                    Some(LowerBound::After(row_key))
                }
                (_, None) => break,
            };
        }
        Ok(result)
    }

    async fn mark_deleting(&self, id: i64, audit: &AuditEntry) -> MetaResult<ObjectRecord> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let row: Option<ObjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            object_columns!(),
            " FROM objects WHERE id = $1 AND state = 'committed'"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql_err("object"))?;
        let record: ObjectRecord = row.ok_or(MetaError::NotFound("object"))?.try_into()?;
        // Exactly this version: a PUT committed since it was looked up must not be retired instead.
        let retiring = Retiring::Version(record.id);
        let retired = retire_live(&mut tx, record.bucket_id, record.key.as_str(), audit.at, retiring).await?;
        let retired = retired.ok_or(MetaError::NotFound("object"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(retired)
    }

    async fn remove_object_row(&self, id: i64) -> MetaResult<()> {
        sqlx::query("DELETE FROM objects WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(sql_err("object"))?;
        Ok(())
    }

    async fn stale_objects(&self, before: DateTime<Utc>, limit: usize) -> MetaResult<Vec<ObjectRecord>> {
        let rows: Vec<ObjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            object_columns!(),
            " FROM objects WHERE state IN ('pending', 'deleting') AND updated_at < $1 ORDER BY updated_at LIMIT $2"
        ))
        .bind(to_micros(before))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("object"))?;
        records(rows)
    }

    async fn deleting_objects(&self, bucket_id: i64, limit: usize) -> MetaResult<Vec<ObjectRecord>> {
        let rows: Vec<ObjectRow> = sqlx::query_as(concat!(
            "SELECT ",
            object_columns!(),
            " FROM objects WHERE bucket_id = $1 AND state = 'deleting' ORDER BY id LIMIT $2"
        ))
        .bind(bucket_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("object"))?;
        records(rows)
    }

    async fn blob_key_in_use(&self, blob_key: &str) -> MetaResult<bool> {
        let (found,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM objects WHERE blob_key = $1) OR EXISTS (SELECT 1 FROM uploads WHERE blob_key = $1)",
        )
        .bind(blob_key)
        .fetch_one(self.pool())
        .await
        .map_err(sql_err("object"))?;
        Ok(found)
    }
}
