//! Finishing or undoing what a crash, a lost client or a failed call left:
//! stale pending rows, rows stuck deleting, expired or stuck uploads, backend
//! multipart uploads and objects nobody knows about.

use chrono::Duration;
use serde::Serialize;

use super::context::RequestContext;
use super::uploads::COMPLETIONS_REMEMBERED;
use super::{ServiceResult, Services};
use crate::metadata::{MetaError, ObjectState, UploadRecord, UploadState};
use crate::storage::StorageError;

/// Everything Coffer writes to a backend lives under these.
const BUCKET_DATA_PREFIX: &str = "b/";
const BATCH: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeftToComplete {
    /// The object, of this size.
    Assembled(u64),
    Parts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub pending_rolled_back: u64,
    pub deletions_finished: u64,
    pub uploads_aborted: u64,
    /// Completions cut short with the object assembled or its parts still
    /// stored, handed back to their clients, whose retried completion finishes.
    pub uploads_reopened: u64,
    pub backend_uploads_aborted: u64,
    pub orphans_removed: u64,
    pub orphans_scanned: u64,
    /// Expired refresh tokens and MFA steps, and spent login-throttle rows.
    pub credentials_purged: u64,
    /// Completed uploads older than `COMPLETIONS_REMEMBERED` (whose completion
    /// sent again is `404` from then on), deleted.
    pub completions_forgotten: u64,
}

impl Services {
    /// One pass. `orphan_scan_limit` bounds how many backend keys are examined
    /// (`None`: all of them), starting after `orphan_cursor`; returns the cursor to resume at.
    pub async fn reconcile(
        &self,
        orphan_cursor: Option<String>,
        orphan_scan_limit: Option<usize>,
    ) -> ServiceResult<(ReconcileReport, Option<String>)> {
        let mut report = ReconcileReport::default();
        let now = self.clock.now();
        let grace = Duration::from_std(self.config.reconcile_grace).unwrap_or(Duration::MAX);
        let cutoff = now - grace;
        // Times the backend stamped (a file's modification time is the host's
        // clock): counted from the earlier of the two clocks, never sooner.
        let backend_cutoff = now.min(self.clock.local_now()) - grace;
        // First: what follows may stop at a backend failure.
        report.completions_forgotten = self.store.forget_completed_uploads(now - COMPLETIONS_REMEMBERED).await?;

        loop {
            let stale = self.store.stale_objects(cutoff, BATCH).await?;
            if stale.is_empty() {
                break;
            }
            for object in &stale {
                // A pending row goes before its bytes: a very slow write may
                // commit it meanwhile, and its bytes must then stay.
                if object.state == ObjectState::Pending {
                    if self.store.discard_pending(object.id).await? {
                        report.pending_rolled_back += 1;
                        if let Err(error) = self.blobs.delete(&object.blob_key).await {
                            tracing::warn!(error = %error, object_id = object.id, "reconciler could not remove bytes; the orphan scan will");
                        }
                    }
                    continue;
                }
                if let Err(error) = self.finish_removal(object).await {
                    tracing::warn!(error = %error, object_id = object.id, "reconciler could not finish a deletion");
                    return Ok((report, orphan_cursor));
                }
                report.deletions_finished += 1;
            }
        }

        let open_before = now - Duration::from_std(self.config.upload_ttl).unwrap_or(Duration::MAX);
        for upload in self.store.stale_uploads(open_before, cutoff, BATCH).await? {
            // A completion cut short (a crash, the database gone) whose upload
            // has not expired goes back to its client while there is something
            // to complete: the assembled object, or the parts still waiting.
            if upload.state == UploadState::Completing && upload.created_at >= open_before {
                match self.left_to_complete(&upload).await {
                    Ok(Some(left)) => {
                        // Without a known assembly, an object of the size this completion
                        // sent is its list's: the completion would have taken it so.
                        let assembled_from = match left {
                            LeftToComplete::Assembled(size) => upload.assembled_etag.as_deref().or_else(|| {
                                let same_size = upload.attempt_size.and_then(|s| u64::try_from(s).ok()) == Some(size);
                                upload.attempt_etag.as_deref().filter(|_| same_size)
                            }),
                            LeftToComplete::Parts => None,
                        };
                        if self.store.reopen_upload(&upload.id, upload.state_at, now, assembled_from).await? {
                            report.uploads_reopened += 1;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, upload_id = upload.id, "reconciler could not tell whether an upload can still complete");
                        continue;
                    }
                }
            }
            let reason = if upload.state == UploadState::Open { "expired" } else { "completion interrupted" };
            let audit = RequestContext::default()
                .event(now, "system", "upload.abort")
                .key(upload.key.as_str())
                .details(serde_json::json!({ "upload_id": upload.id, "reason": reason }));
            // The row first, in the state it was listed in: an upload that moved
            // on (completed meanwhile) keeps its bytes. What fails after is left
            // to the sweeps below (backend uploads, orphan bytes).
            match self.store.abort_upload(&upload.id, upload.state, Some(upload.state_at), &audit).await {
                Ok(()) => report.uploads_aborted += 1,
                Err(MetaError::NotFound(_) | MetaError::Conflict("upload-state")) => continue,
                Err(error) => return Err(error.into()),
            }
            self.discard_backend_upload(&upload).await;
        }

        for open in self.blobs.list_multipart_uploads(BUCKET_DATA_PREFIX).await? {
            if open.initiated < backend_cutoff && !self.store.backend_upload_known(&open.upload_id).await? {
                // One that cannot be aborted (a permission, a backend quirk) must not stop the orphan scan.
                match self.blobs.abort_multipart(&open.key, &open.upload_id).await {
                    Ok(()) => report.backend_uploads_aborted += 1,
                    Err(error) => {
                        tracing::warn!(error = %error, upload_id = open.upload_id, "reconciler could not abort a backend upload");
                    }
                }
            }
        }

        // A throttle row is spent once its window (the longest of any rule) has passed without a lock.
        let window = Duration::from_std(self.config.lockout_window).unwrap_or(Duration::MAX);
        let spent_before = now.checked_sub_signed(window).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        report.credentials_purged = self.store.purge_expired_identity(now, spent_before).await?;

        let cursor = self.remove_orphans(backend_cutoff, orphan_cursor, orphan_scan_limit, &mut report).await?;
        let repaired = report.pending_rolled_back
            + report.deletions_finished
            + report.uploads_aborted
            + report.uploads_reopened
            + report.backend_uploads_aborted
            + report.orphans_removed;
        if repaired > 0 {
            tracing::info!(?report, "reconciler made repairs");
        }
        Ok((report, cursor))
    }

    /// What the backend still holds of an upload: its assembled object, its
    /// parts, or nothing.
    async fn left_to_complete(&self, upload: &UploadRecord) -> Result<Option<LeftToComplete>, StorageError> {
        match self.blobs.head(&upload.blob_key).await {
            Ok(assembled) => return Ok(Some(LeftToComplete::Assembled(assembled.size))),
            Err(StorageError::NotFound) => {}
            Err(error) => return Err(error),
        }
        match self.blobs.list_parts(&upload.blob_key, &upload.backend_upload_id).await {
            Ok(parts) if !parts.is_empty() => Ok(Some(LeftToComplete::Parts)),
            Ok(_) | Err(StorageError::NotFound) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn remove_orphans(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        mut cursor: Option<String>,
        limit: Option<usize>,
        report: &mut ReconcileReport,
    ) -> ServiceResult<Option<String>> {
        loop {
            let page = self.blobs.list(BUCKET_DATA_PREFIX, cursor.as_deref(), BATCH).await?;
            for blob in &page.blobs {
                report.orphans_scanned += 1;
                if blob.last_modified < cutoff && !self.store.blob_key_in_use(&blob.key).await? {
                    self.blobs.delete(&blob.key).await?;
                    report.orphans_removed += 1;
                }
            }
            cursor = page.next_start_after;
            let budget_left =
                limit.is_none_or(|limit| usize::try_from(report.orphans_scanned).unwrap_or(usize::MAX) < limit);
            if cursor.is_none() || !budget_left {
                return Ok(cursor);
            }
        }
    }
}
