// Audit chain writes and reads, shared by both adapters (included with `Db`,
// `Store`, `begin_write` and `LOCK_CHAIN_HEAD` in scope).

use async_trait::async_trait;
use sqlx::Transaction;

use crate::domain::audit::{AuditEntry, AuditRecord};
use crate::metadata::error::sql_err;
use crate::metadata::rows::{AuditRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{AuditStore, MetaResult, emit_audit};

/// Appends `entry` to the chain inside `tx`. Locks the chain head first, so
/// concurrent writers (on any replica) queue here and the chain never forks.
pub(in crate::metadata) async fn append_in_tx(
    tx: &mut Transaction<'static, Db>,
    entry: &AuditEntry,
) -> MetaResult<AuditRecord> {
    let (last_id, last_hash): (i64, String) = sqlx::query_as(LOCK_CHAIN_HEAD)
        .fetch_one(&mut **tx)
        .await
        .map_err(sql_err("audit chain head"))?;
    let record = AuditRecord::chain(last_id + 1, entry.clone(), &last_hash);
    sqlx::query(concat!(
        "INSERT INTO audit_events (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(record.id)
    .bind(to_micros(record.at))
    .bind(&record.actor)
    .bind(&record.action)
    .bind(&record.bucket)
    .bind(&record.key)
    .bind(record.outcome.as_str())
    .bind(&record.ip)
    .bind(&record.user_agent)
    .bind(&record.request_id)
    .bind(record.details.to_string())
    .bind(&record.prev_hash)
    .bind(&record.hash)
    .execute(&mut **tx)
    .await
    .map_err(sql_err("audit event"))?;
    sqlx::query("UPDATE audit_chain_head SET last_id = $1, last_hash = $2 WHERE id = 1")
        .bind(record.id)
        .bind(&record.hash)
        .execute(&mut **tx)
        .await
        .map_err(sql_err("audit chain head"))?;
    Ok(record)
}

/// Appends `entry`, commits `tx`, then emits the record to the `audit` log target.
pub(in crate::metadata) async fn commit_audited(
    mut tx: Transaction<'static, Db>,
    entry: &AuditEntry,
) -> MetaResult<AuditRecord> {
    let record = append_in_tx(&mut tx, entry).await?;
    tx.commit().await.map_err(sql_err("transaction"))?;
    emit_audit(&record);
    Ok(record)
}

#[async_trait]
impl AuditStore for Store {
    async fn append_audit(&self, entry: &AuditEntry) -> MetaResult<AuditRecord> {
        let tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        commit_audited(tx, entry).await
    }

    async fn audit_after(&self, after: i64, limit: usize) -> MetaResult<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> =
            sqlx::query_as(concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2"))
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(self.pool())
                .await
                .map_err(sql_err("audit events"))?;
        records(rows)
    }

    async fn audit_head(&self) -> MetaResult<(i64, String)> {
        sqlx::query_as("SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .map_err(sql_err("audit chain head"))
    }
}
