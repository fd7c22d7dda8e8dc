//! The audit trail as a use case: query, streamed export, chain verification,
//! checkpoints kept outside the database (object store + logs), and purge.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::context::{Principal, RequestContext};
use super::{ServiceError, ServiceResult, Services};
use crate::domain::audit::{AuditEntry, AuditRecord};
use crate::metadata::{AuditQuery, MetaResult, MetadataStore};
use crate::policy::rbac;
use crate::storage::{BlobStore, ByteStream, StorageError};

pub const MAX_PAGE: usize = 1000;
const EXPORT_BATCH: usize = 1000;
const VERIFY_BATCH: usize = 2000;
/// Reserved object-store prefix; bucket data lives under `b/`, so it never collides.
pub const CHECKPOINT_PREFIX: &str = "_coffer/audit/checkpoints/";
const LATEST_CHECKPOINT: &str = "_coffer/audit/checkpoints/latest.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub checked: u64,
    pub first_bad_id: Option<i64>,
    /// What is wrong at `first_bad_id`, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The newest checkpoint found outside the database, if any.
    pub checkpoint_id: Option<i64>,
    /// The first keyed event's id; `None` while the chain is not sealed
    /// (every event keyless: see `coffer audit seal`).
    pub keyed_from: Option<i64>,
}

/// The chain head as recorded outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: i64,
    pub hash: String,
    pub at: DateTime<Utc>,
    /// The anchor's `keyed_from` when this was written: once a checkpoint
    /// saw the chain sealed, an unsealed or re-keyed anchor fails verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed_from: Option<i64>,
}

impl Services {
    async fn require_audit_reader(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        action: &str,
    ) -> ServiceResult<()> {
        if rbac::may_read_audit(principal.subject(), self.config.require_mfa_for_admins) {
            return Ok(());
        }
        let error = ServiceError::Forbidden("the audit trail is for admins and auditors".into());
        Err(self.deny(ctx, principal, action, None, None, error).await)
    }

    /// One page, newest first. The read itself is recorded. `query` is the
    /// request's filters as parsed: a caller who may not read the trail is
    /// refused (and audited) whatever they are, malformed or not.
    pub async fn audit_events(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        query: ServiceResult<AuditQuery>,
    ) -> ServiceResult<(Vec<AuditRecord>, Option<i64>)> {
        self.require_audit_reader(ctx, principal, "audit.read").await?;
        let mut query = query?;
        self.reads.flush(&*self.store).await?;
        query.limit = query.limit.clamp(1, MAX_PAGE);
        query.ascending = false;
        query.after_id = None;
        let mut events = self.store.audit_query(&AuditQuery { limit: query.limit + 1, ..query.clone() }).await?;
        let next = (events.len() > query.limit).then(|| {
            events.truncate(query.limit);
            events.last().map(|e| e.id)
        });
        let read = ctx.event(self.clock.now(), principal.username.as_str(), "audit.read").details(filters_of(&query));
        self.store.append_audit(&read).await?;
        Ok((events, next.flatten()))
    }

    /// A stream of every matching event, oldest first, fetched in batches (constant memory).
    pub async fn audit_export(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        query: ServiceResult<AuditQuery>,
        format: ExportFormat,
    ) -> ServiceResult<ByteStream> {
        self.require_audit_reader(ctx, principal, "audit.export").await?;
        let query = query?;
        self.reads.flush(&*self.store).await?;
        let event = ctx
            .event(self.clock.now(), principal.username.as_str(), "audit.export")
            .details(serde_json::json!({ "format": format_name(format), "filters": filters_of(&query) }));
        let record = self.store.append_audit(&event).await?;
        // Bounded by the chain as it stands now (its own event included): a busy
        // server appending faster than a slow client reads cannot make it endless.
        Ok(export_stream(self.store.clone(), AuditQuery { before_id: Some(record.id + 1), ..query }, format))
    }

    pub async fn audit_verify(&self, ctx: &RequestContext, principal: &Principal) -> ServiceResult<Verification> {
        self.require_audit_reader(ctx, principal, "audit.verify").await?;
        self.reads.flush(&*self.store).await?;
        // A checkpoint that cannot be read is no reason to say "ok": the answer waits for the store.
        let checkpoint = read_checkpoint(&*self.blobs).await?;
        let verification = verify_chain(&*self.store, checkpoint.as_ref()).await?;
        let event = ctx
            .event(self.clock.now(), principal.username.as_str(), "audit.verify")
            .details(serde_json::to_value(&verification).unwrap_or_default());
        self.store.append_audit(&event).await?;
        Ok(verification)
    }

    /// Records the chain head outside the database; see `checkpoint_chain`.
    pub async fn checkpoint_audit(&self, last: Option<i64>) -> ServiceResult<Option<Checkpoint>> {
        checkpoint_chain(&*self.store, &*self.blobs, self.clock.now(), last).await
    }
}

/// Records the chain head and whether it is keyed outside the database
/// (object store and logs), so truncating the newest events or unsealing the
/// chain is detectable. `last` is the previous checkpoint this process wrote.
/// A checkpoint never moves back, never past a chain that no longer holds the
/// event it pinned, and never over an anchor whose seal fails or that is no
/// longer sealed as the previous checkpoint saw it: a database whose newest
/// events were cut, or whose history was rewritten and re-hashed, keeps
/// failing verification instead of being checkpointed as good.
pub async fn checkpoint_chain(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    now: DateTime<Utc>,
    last: Option<i64>,
) -> ServiceResult<Option<Checkpoint>> {
    let (id, hash) = store.audit_head().await?;
    let anchor = store.audit_anchor().await?;
    // A sealed chain without events yet is worth recording: it pins the seal.
    if (id == 0 && anchor.keyed_from.is_none()) || last == Some(id) {
        return Ok(None);
    }
    let refuse = |problem: &str, checkpoint_id: Option<i64>| {
        tracing::error!(
            target: "audit_checkpoint",
            checkpoint_id, head_id = id,
            "{problem}; not checkpointing (run `coffer audit verify`)"
        );
        Ok(None)
    };
    if anchor.claims_seal() && !anchor.seal_holds(store.chain_key()) {
        return refuse("the audit anchor's seal does not hold under this master key", None);
    }
    if let Some(previous) = read_checkpoint(blobs).await? {
        let pinned = store.audit_after(previous.id - 1, 1).await?;
        // A purge by a key holder (the anchor's seal held above) may have
        // removed the checkpointed event; an unsealed anchor proves nothing.
        let purged_past = previous.id < anchor.first_id && anchor.claims_seal();
        let intact = previous.id == 0
            || purged_past
            || pinned.first().is_some_and(|r| r.id == previous.id && r.hash == previous.hash);
        if id < previous.id || !intact {
            return refuse("the audit chain no longer holds the last checkpointed event", Some(previous.id));
        }
        if previous.keyed_from.is_some() && previous.keyed_from != anchor.keyed_from {
            return refuse("the audit anchor is no longer sealed as the last checkpoint recorded", Some(previous.id));
        }
        if id == previous.id && previous.keyed_from == anchor.keyed_from {
            return Ok(None);
        }
    }
    let checkpoint = Checkpoint { id, hash, at: now, keyed_from: anchor.keyed_from };
    write_checkpoint(blobs, &checkpoint).await?;
    tracing::info!(
        target: "audit_checkpoint",
        audit_id = checkpoint.id, hash = %checkpoint.hash, keyed_from = checkpoint.keyed_from,
        "audit checkpoint"
    );
    Ok(Some(checkpoint))
}

fn format_name(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Csv => "csv",
    }
}

fn filters_of(query: &AuditQuery) -> serde_json::Value {
    serde_json::json!({
        "actor": query.actor, "action": query.action, "bucket": query.bucket,
        "since": query.since, "until": query.until,
    })
}

async fn write_checkpoint(blobs: &dyn BlobStore, checkpoint: &Checkpoint) -> Result<(), StorageError> {
    let body = Bytes::from(serde_json::to_vec(checkpoint).unwrap_or_default());
    for key in [format!("{CHECKPOINT_PREFIX}{:020}.json", checkpoint.id), LATEST_CHECKPOINT.to_owned()] {
        let stream: ByteStream = Box::pin(futures::stream::iter([Ok(body.clone())]));
        blobs.put(&key, stream, Some(body.len() as u64)).await?;
    }
    Ok(())
}

/// The newest checkpoint in the object store, if any was written.
pub async fn read_checkpoint(blobs: &dyn BlobStore) -> Result<Option<Checkpoint>, StorageError> {
    use futures::TryStreamExt;
    let read = match blobs.get(LATEST_CHECKPOINT, None).await {
        Ok(read) => read,
        Err(StorageError::NotFound) => return Ok(None),
        Err(error) => return Err(error),
    };
    let bytes: Vec<u8> = read
        .body
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .map_err(StorageError::Client)?;
    let checkpoint = serde_json::from_slice(&bytes)
        .map_err(|error| StorageError::Backend(anyhow::anyhow!("the audit checkpoint is not readable: {error}")))?;
    Ok(Some(checkpoint))
}

/// Walks the chain from its anchor to the head read at the start: every id in
/// sequence, every link and hash intact, the head row and the checkpoint in
/// agreement. The first break is reported (a missing id is reported as itself).
pub async fn verify_chain(store: &dyn MetadataStore, checkpoint: Option<&Checkpoint>) -> MetaResult<Verification> {
    let (head_id, head_hash) = store.audit_head().await?;
    let anchor = store.audit_anchor().await?;
    let key = store.chain_key();
    let mut prev_hash = anchor.prev_hash.clone();
    let mut checked = 0u64;
    let mut last_id = anchor.first_id - 1;
    let bad = |id: i64, checked: u64, reason: &'static str| Verification {
        ok: false,
        checked,
        first_bad_id: Some(id),
        reason: Some(reason),
        checkpoint_id: checkpoint.map(|c| c.id),
        keyed_from: anchor.keyed_from,
    };
    // Without the key's seal, the anchor (where the chain starts, and which
    // events predate the key) may have been moved by whoever can write the database.
    if anchor.claims_seal() && !anchor.seal_holds(key) {
        return Ok(bad(anchor.first_id, checked, "the anchor's seal does not hold (moved, or another master key)"));
    }
    // Unsealing would let anyone append keyless events again: once a
    // checkpoint saw the chain keyed, it must stay keyed from the same event.
    if checkpoint.is_some_and(|c| c.keyed_from.is_some() && c.keyed_from != anchor.keyed_from) {
        return Ok(bad(anchor.first_id, checked, "the anchor is not sealed as the checkpoint recorded"));
    }
    'walk: while last_id < head_id {
        let batch = store.audit_after(last_id, VERIFY_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for record in batch {
            if record.id > head_id {
                break 'walk;
            }
            if record.id != last_id + 1 {
                return Ok(bad(last_id + 1, checked, "missing event"));
            }
            if record.prev_hash != prev_hash {
                return Ok(bad(record.id, checked, "broken link"));
            }
            if record.hash != record.expected_hash(key, &anchor) {
                let keyless =
                    anchor.keyed_from.is_some_and(|from| record.id >= from) && record.hash == record.keyless_hash();
                return Ok(bad(
                    record.id,
                    checked,
                    if keyless {
                        "hashed without the key where the chain is keyed (a replica older than the seal, or a forgery)"
                    } else {
                        "altered event"
                    },
                ));
            }
            if checkpoint.is_some_and(|c| c.id == record.id && c.hash != record.hash) {
                return Ok(bad(record.id, checked, "differs from the checkpoint"));
            }
            prev_hash = record.hash;
            last_id = record.id;
            checked += 1;
        }
    }
    let truncated = last_id < head_id || checkpoint.is_some_and(|c| c.id > last_id);
    if truncated || (head_id >= anchor.first_id && prev_hash != head_hash) {
        return Ok(bad(last_id + 1, checked, "events missing at the end"));
    }
    Ok(Verification {
        ok: true,
        checked,
        first_bad_id: None,
        reason: None,
        checkpoint_id: checkpoint.map(|c| c.id),
        keyed_from: anchor.keyed_from,
    })
}

const CSV_COLUMNS: [&str; 13] = [
    "id",
    "at",
    "actor",
    "action",
    "bucket",
    "key",
    "outcome",
    "ip",
    "user_agent",
    "request_id",
    "details",
    "prev_hash",
    "hash",
];

/// Spreadsheet formula injection: a cell starting with one of these is prefixed with `'`.
fn neutralize(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell.to_owned() }
}

fn encode(records: &[AuditRecord], format: ExportFormat) -> Bytes {
    match format {
        ExportFormat::Jsonl => {
            let mut out = Vec::with_capacity(records.len() * 400);
            for record in records {
                if serde_json::to_writer(&mut out, record).is_ok() {
                    out.push(b'\n');
                }
            }
            Bytes::from(out)
        }
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::with_capacity(records.len() * 400));
            for record in records {
                let fields = [
                    record.id.to_string(),
                    record.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    neutralize(&record.actor),
                    neutralize(&record.action),
                    neutralize(record.bucket.as_deref().unwrap_or_default()),
                    neutralize(record.key.as_deref().unwrap_or_default()),
                    record.outcome.as_str().to_owned(),
                    neutralize(record.ip.as_deref().unwrap_or_default()),
                    neutralize(record.user_agent.as_deref().unwrap_or_default()),
                    neutralize(record.request_id.as_deref().unwrap_or_default()),
                    neutralize(&record.details.to_string()),
                    record.prev_hash.clone(),
                    record.hash.clone(),
                ];
                let _ = writer.write_record(&fields);
            }
            Bytes::from(writer.into_inner().unwrap_or_default())
        }
    }
}

/// Batches of `EXPORT_BATCH` events, keyset-paginated by id: memory stays
/// constant however many rows match.
/// Every event of `query` (up to `query.before_id`, if set) in id order, in batches.
pub fn export_stream(store: Arc<dyn MetadataStore>, mut query: AuditQuery, format: ExportFormat) -> ByteStream {
    query.ascending = true;
    query.limit = EXPORT_BATCH;
    let header = (format == ExportFormat::Csv).then(|| Bytes::from(format!("{}\n", CSV_COLUMNS.join(","))));
    let state = (store, query, header, false);
    Box::pin(futures::stream::unfold(state, move |(store, mut query, header, done)| async move {
        if done {
            return None;
        }
        if let Some(header) = header {
            return Some((Ok(header), (store, query, None, false)));
        }
        match store.audit_query(&query).await {
            Ok(records) if records.is_empty() => None,
            Ok(records) => {
                let finished = records.len() < query.limit;
                query.after_id = records.last().map(|r| r.id);
                Some((Ok(encode(&records, format)), (store, query, None, finished)))
            }
            Err(error) => Some((Err(std::io::Error::other(error.to_string())), (store, query, None, true))),
        }
    }))
}

/// Builds the audit entry of a purge (the CLI has no request).
pub fn purge_event(at: DateTime<Utc>, before: DateTime<Utc>) -> AuditEntry {
    RequestContext::default().event(at, "cli", "audit.purge").details(serde_json::json!({ "before": before }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralized_and_csv_is_quoted() {
        assert_eq!(neutralize("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralize("+1"), "'+1");
        assert_eq!(neutralize("alice"), "alice");
        let record = AuditRecord::chain(
            1,
            AuditEntry {
                at: Utc::now(),
                actor: "=cmd|' /C calc'!A0".into(),
                action: "a,b".into(),
                bucket: Some("line\nbreak".into()),
                key: Some("quote\"d".into()),
                outcome: crate::domain::audit::Outcome::Success,
                ip: None,
                user_agent: Some("@evil".into()),
                request_id: None,
                details: serde_json::json!({}),
            },
            crate::domain::audit::GENESIS_HASH,
            None,
        );
        let csv = String::from_utf8(encode(&[record], ExportFormat::Csv).to_vec()).expect("utf8");
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(csv.as_bytes());
        let row = reader.records().next().expect("row").expect("parses");
        assert_eq!(&row[2], "'=cmd|' /C calc'!A0");
        assert_eq!(&row[3], "a,b");
        assert_eq!(&row[4], "line\nbreak");
        assert_eq!(&row[5], "quote\"d");
        assert_eq!(&row[8], "'@evil");
    }
}
