//! Object reads and presigned URLs issued are audited without a database
//! write on the request path: the events queue in memory and a worker appends
//! them in batches (every 250 ms and on shutdown; audit queries flush first).
//! Changes never go through here — they are audited in their own transaction.

use std::sync::Mutex;

use crate::domain::audit::AuditEntry;
use crate::metadata::{MetaResult, MetadataStore};

/// More than this many unflushed reads (the database away for a long time)
/// and the oldest are dropped, loudly, rather than exhausting memory.
const MAX_PENDING: usize = 100_000;

#[derive(Default)]
pub struct ReadLog {
    pending: Mutex<Vec<AuditEntry>>,
    /// Held for a whole flush: a flush that finds the queue empty because
    /// another one took the batch must still wait for that batch to commit
    /// (an audit query flushes first and must see every earlier event).
    flushing: tokio::sync::Mutex<()>,
}

impl ReadLog {
    pub fn record(&self, entry: AuditEntry) {
        if let Ok(mut pending) = self.pending.lock() {
            if pending.len() >= MAX_PENDING {
                let dropped = pending.len() + 1 - MAX_PENDING;
                pending.drain(..dropped);
                tracing::error!(dropped, "read audit queue full; oldest read events dropped");
            }
            pending.push(entry);
        }
    }

    /// Appends everything queued; on failure the events stay queued for the next try.
    pub async fn flush(&self, store: &dyn MetadataStore) -> MetaResult<()> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch = match self.pending.lock() {
            Ok(mut pending) if !pending.is_empty() => std::mem::take(&mut *pending),
            _ => return Ok(()),
        };
        if let Err(error) = store.append_audit_batch(&batch).await {
            if let Ok(mut pending) = self.pending.lock() {
                let newer = std::mem::replace(&mut *pending, batch);
                pending.extend(newer);
            }
            return Err(error);
        }
        Ok(())
    }
}
