// Audit chain writes and reads, shared by both adapters (included with `Db`,
// `Store`, `begin_write` and `LOCK_CHAIN_HEAD` in scope).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Transaction};

use crate::domain::audit::{AuditAnchor, AuditEntry, AuditRecord, ChainKey};
use crate::metadata::error::sql_err;
use crate::metadata::rows::{AuditRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{AuditQuery, AuditStore, MetaError, MetaResult, SealOutcome, SealScope, emit_audit};

/// The chain head, locked until the transaction ends.
struct LockedHead {
    last_id: i64,
    last_hash: String,
    /// Whether the anchor is sealed: appends are keyed from then on.
    keyed: bool,
}

async fn lock_head(tx: &mut Transaction<'static, Db>) -> MetaResult<LockedHead> {
    let (last_id, last_hash): (i64, String) =
        sqlx::query_as(LOCK_CHAIN_HEAD).fetch_one(&mut **tx).await.map_err(sql_err("audit chain head"))?;
    // A statement of its own, after the lock: it sees a seal committed while this waited.
    let (keyed_from,): (Option<i64>,) = sqlx::query_as("SELECT keyed_from FROM audit_anchor WHERE id = 1")
        .fetch_one(&mut **tx)
        .await
        .map_err(sql_err("audit anchor"))?;
    Ok(LockedHead { last_id, last_hash, keyed: keyed_from.is_some() })
}

/// The first event a purge of everything before `before` keeps (the first at
/// or after it), with the hash it links to; `None` when every event is older.
async fn first_kept<'e>(
    executor: impl sqlx::Executor<'e, Database = Db>,
    before: DateTime<Utc>,
) -> MetaResult<Option<(i64, String)>> {
    sqlx::query_as("SELECT id, prev_hash FROM audit_events WHERE at >= $1 ORDER BY id LIMIT 1")
        .bind(to_micros(before))
        .fetch_optional(executor)
        .await
        .map_err(sql_err("audit events"))
}

/// The hash the event `id`, the first a purge keeps, links to.
async fn kept_link(tx: &mut Transaction<'static, Db>, id: i64) -> MetaResult<String> {
    let link: Option<(String,)> = sqlx::query_as("SELECT prev_hash FROM audit_events WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(sql_err("audit events"))?;
    link.map(|(hash,)| hash).ok_or(MetaError::Integrity(
        "the first audit event a purge keeps is missing (see `coffer audit verify`); nothing purged",
    ))
}

/// Appends `entry` to the chain inside `tx`. Locks the chain head first, so
/// concurrent writers (on any replica) queue here and the chain never forks.
pub(in crate::metadata) async fn append_in_tx(
    tx: &mut Transaction<'static, Db>,
    chain: &ChainKey,
    entry: &AuditEntry,
) -> MetaResult<AuditRecord> {
    let head = lock_head(tx).await?;
    let record = AuditRecord::chain(head.last_id + 1, entry.clone(), &head.last_hash, head.keyed.then_some(chain));
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

async fn read_anchor<'e>(executor: impl sqlx::Executor<'e, Database = Db>) -> MetaResult<AuditAnchor> {
    let (first_id, prev_hash, keyed_from, seal): (i64, String, Option<i64>, Option<String>) =
        sqlx::query_as("SELECT first_id, prev_hash, keyed_from, seal FROM audit_anchor WHERE id = 1")
            .fetch_one(executor)
            .await
            .map_err(sql_err("audit anchor"))?;
    Ok(AuditAnchor { first_id, prev_hash, keyed_from, seal })
}

async fn write_anchor(tx: &mut Transaction<'static, Db>, anchor: &AuditAnchor) -> MetaResult<()> {
    sqlx::query("UPDATE audit_anchor SET first_id = $1, prev_hash = $2, keyed_from = $3, seal = $4 WHERE id = 1")
        .bind(anchor.first_id)
        .bind(&anchor.prev_hash)
        .bind(anchor.keyed_from)
        .bind(&anchor.seal)
        .execute(&mut **tx)
        .await
        .map_err(sql_err("audit anchor"))?;
    Ok(())
}

/// Appends `entry`, commits `tx`, then emits the record to the `audit` log target.
pub(in crate::metadata) async fn commit_audited(
    mut tx: Transaction<'static, Db>,
    chain: &ChainKey,
    entry: &AuditEntry,
) -> MetaResult<AuditRecord> {
    let record = append_in_tx(&mut tx, chain, entry).await?;
    tx.commit().await.map_err(sql_err("transaction"))?;
    emit_audit(&record);
    Ok(record)
}

/// Runs one statement and appends `entry` in the same transaction; `missing`
/// (nothing committed) when the statement touched no row.
pub(in crate::metadata) async fn execute_audited(
    store: &Store,
    statement: sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments>,
    entry: &AuditEntry,
    missing: crate::metadata::MetaError,
) -> MetaResult<()> {
    let mut tx = begin_write(store.pool()).await.map_err(sql_err("transaction"))?;
    let done = statement.execute(&mut *tx).await.map_err(sql_err("statement"))?;
    if done.rows_affected() == 0 {
        return Err(missing);
    }
    commit_audited(tx, &store.chain, entry).await?;
    Ok(())
}

#[async_trait]
impl AuditStore for Store {
    async fn append_audit(&self, entry: &AuditEntry) -> MetaResult<AuditRecord> {
        let tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        commit_audited(tx, &self.chain, entry).await
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

    async fn append_audit_batch(&self, entries: &[AuditEntry]) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let LockedHead { mut last_id, mut last_hash, keyed } = lock_head(&mut tx).await?;
        // Multi-row inserts keep imports fast; 13 binds a row stays under every engine's limit.
        let mut appended = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(500) {
            let chained: Vec<AuditRecord> = chunk
                .iter()
                .map(|entry| {
                    last_id += 1;
                    let record = AuditRecord::chain(last_id, entry.clone(), &last_hash, keyed.then_some(&self.chain));
                    last_hash.clone_from(&record.hash);
                    record
                })
                .collect();
            let mut sql = QueryBuilder::<Db>::new(concat!("INSERT INTO audit_events (", audit_columns!(), ") "));
            sql.push_values(&chained, |mut row, record| {
                row.push_bind(record.id)
                    .push_bind(to_micros(record.at))
                    .push_bind(record.actor.clone())
                    .push_bind(record.action.clone())
                    .push_bind(record.bucket.clone())
                    .push_bind(record.key.clone())
                    .push_bind(record.outcome.as_str())
                    .push_bind(record.ip.clone())
                    .push_bind(record.user_agent.clone())
                    .push_bind(record.request_id.clone())
                    .push_bind(record.details.to_string())
                    .push_bind(record.prev_hash.clone())
                    .push_bind(record.hash.clone());
            });
            sql.build().execute(&mut *tx).await.map_err(sql_err("audit event"))?;
            appended.extend(chained);
        }
        sqlx::query("UPDATE audit_chain_head SET last_id = $1, last_hash = $2 WHERE id = 1")
            .bind(last_id)
            .bind(&last_hash)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("audit chain head"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        appended.iter().for_each(emit_audit);
        Ok(())
    }

    async fn audit_query(&self, query: &AuditQuery) -> MetaResult<Vec<AuditRecord>> {
        let mut sql = QueryBuilder::<Db>::new(concat!("SELECT ", audit_columns!(), " FROM audit_events WHERE 1 = 1"));
        if let Some(actor) = &query.actor {
            sql.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &query.action {
            sql.push(" AND action = ").push_bind(action.clone());
        }
        if let Some(bucket) = &query.bucket {
            sql.push(" AND bucket = ").push_bind(bucket.clone());
        }
        if let Some(since) = query.since {
            sql.push(" AND at >= ").push_bind(to_micros(since));
        }
        if let Some(until) = query.until {
            sql.push(" AND at < ").push_bind(to_micros(until));
        }
        if let Some(before) = query.before_id {
            sql.push(" AND id < ").push_bind(before);
        }
        if let Some(after) = query.after_id {
            sql.push(" AND id > ").push_bind(after);
        }
        sql.push(if query.ascending { " ORDER BY id ASC LIMIT " } else { " ORDER BY id DESC LIMIT " });
        sql.push_bind(i64::try_from(query.limit).unwrap_or(i64::MAX));
        let rows: Vec<AuditRow> =
            sql.build_query_as().fetch_all(self.pool()).await.map_err(sql_err("audit events"))?;
        records(rows)
    }

    async fn audit_anchor(&self) -> MetaResult<AuditAnchor> {
        read_anchor(self.pool()).await
    }

    async fn seal_audit_anchor(&self, scope: SealScope) -> MetaResult<SealOutcome> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let head = lock_head(&mut tx).await?;
        let anchor = read_anchor(&mut *tx).await?;
        let (has_events,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM audit_events)")
            .fetch_one(&mut *tx)
            .await
            .map_err(sql_err("audit events"))?;
        if anchor.claims_seal() {
            return Ok(SealOutcome::AlreadySealed);
        }
        // Untouched since migration: sealed, it says first id 1, the genesis
        // link, keyed from 1, whatever a database writer did before; sealing
        // any other chain by itself would vouch for an anchor they may have moved.
        let pristine = !has_events && anchor.as_created((head.last_id, &head.last_hash));
        if scope == SealScope::EmptyChain && !pristine {
            return Ok(SealOutcome::NotEmpty);
        }
        let keyed_from = head.last_id + 1;
        write_anchor(&mut tx, &anchor.sealed(keyed_from, &self.chain)).await?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(SealOutcome::Sealed { keyed_from })
    }

    async fn audit_first_kept(&self, before: DateTime<Utc>) -> MetaResult<i64> {
        let (head_id, _) = self.audit_head().await?;
        Ok(first_kept(self.pool(), before).await?.map_or(head_id + 1, |(id, _)| id))
    }

    async fn purge_audit(&self, first_kept: i64, audit: &AuditEntry) -> MetaResult<u64> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        // The head lock first: no append may interleave with the cut.
        let LockedHead { last_id: head_id, last_hash: head_hash, .. } = lock_head(&mut tx).await?;
        // A sealed anchor is sealed again where it moves to: never one that was tampered with.
        let anchor = read_anchor(&mut *tx).await?;
        if anchor.claims_seal() && !anchor.seal_holds(&self.chain) {
            return Err(MetaError::Integrity(
                "the audit anchor's seal does not hold under this master key (see `coffer audit verify`); nothing purged",
            ));
        }
        // The cut was read before the chain was verified: only events that
        // existed then, and were walked, go. It never moves the anchor back.
        let first_id = first_kept.max(anchor.first_id);
        if first_id > head_id + 1 {
            return Err(MetaError::Integrity(
                "the audit chain ends before the cut this purge read (see `coffer audit verify`); nothing purged",
            ));
        }
        // Nothing to delete leaves the anchor as verification last saw it.
        let moved = if first_id == anchor.first_id {
            None
        } else {
            let prev_hash = if first_id == head_id + 1 { head_hash } else { kept_link(&mut tx, first_id).await? };
            let moved = AuditAnchor { first_id, prev_hash, ..anchor };
            Some(match moved.keyed_from {
                Some(keyed_from) => moved.sealed(keyed_from, &self.chain),
                None => moved,
            })
        };
        let deleted = sqlx::query("DELETE FROM audit_events WHERE id < $1")
            .bind(first_id)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("audit events"))?;
        // The event says what went: the cut and how many events it took.
        let mut audit = audit.clone();
        if let Some(details) = audit.details.as_object_mut() {
            details.insert("first_kept_id".into(), first_id.into());
            details.insert("deleted".into(), deleted.rows_affected().into());
        }
        if let Some(moved) = &moved {
            write_anchor(&mut tx, moved).await?;
        }
        let record = append_in_tx(&mut tx, &self.chain, &audit).await?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        emit_audit(&record);
        Ok(deleted.rows_affected())
    }

    async fn audit_head(&self) -> MetaResult<(i64, String)> {
        sqlx::query_as("SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .map_err(sql_err("audit chain head"))
    }
}
