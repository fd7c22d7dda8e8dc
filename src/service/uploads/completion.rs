//! Completing an upload: the client's part list checked, the parts
//! assembled by the backend, the object committed; and recovery when an
//! earlier completion assembled the parts but could not commit them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{COMPLETIONS_REMEMBERED, MAX_PARTS, MIN_PART, UploadAccess, multipart_etag, unquote, upload_completing};
use crate::domain::audit::AuditEntry;
use crate::domain::{Permission, Role};
use crate::metadata::{
    BucketRecord, Committed, FinishUpload, MetaError, ObjectRecord, UploadPartRecord, UploadRecord, UploadState,
};
use crate::policy::content::infer_content_type;
use crate::policy::retention::is_locked;
use crate::service::context::{Principal, RequestContext};
use crate::service::objects::{locked, write_error};
use crate::service::{ServiceError, ServiceResult, Services};
use crate::storage::{BlobRange, CompletedPart, StorageError};

impl Services {
    /// Commits the assembled object, retrying a few times when a concurrent write
    /// to the same key or a briefly unreachable database got in the way: the
    /// bytes are already assembled, and giving up discards the whole upload.
    async fn finish_with_retries(&self, finish: &FinishUpload, audit: &AuditEntry) -> Result<Committed, MetaError> {
        const ATTEMPTS: u32 = 4;
        let (mut finish, mut audit) = (finish.clone(), audit.clone());
        let mut attempt = 1;
        loop {
            match self.store.finish_upload(&finish, &audit).await {
                // `object`: a first write of the key committed meanwhile; this one now replaces it.
                Err(MetaError::Conflict("changed" | "object") | MetaError::Unavailable(_)) if attempt < ATTEMPTS => {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                    attempt += 1;
                    // Stamped anew: the version it replaces now may be younger than the first attempt.
                    finish.at = self.clock.now();
                    audit.at = finish.at;
                }
                outcome => return outcome,
            }
        }
    }

    /// Checks the client's part list against what arrived: present, in order,
    /// matching ETags, and every part but the last at least 5 MiB.
    pub(super) fn chosen_parts(
        stored: &[UploadPartRecord],
        requested: &[(i64, String)],
    ) -> ServiceResult<Vec<UploadPartRecord>> {
        let invalid = |detail: String| ServiceError::bad_request("invalid-part-list", detail);
        if requested.is_empty() || requested.len() > usize::try_from(MAX_PARTS).unwrap_or(usize::MAX) {
            return Err(invalid("list between 1 and 10,000 parts".into()));
        }
        let by_number: HashMap<i64, &UploadPartRecord> = stored.iter().map(|p| (p.part_number, p)).collect();
        let mut chosen = Vec::with_capacity(requested.len());
        for (index, (number, etag)) in requested.iter().enumerate() {
            if index > 0 && *number <= requested[index - 1].0 {
                return Err(invalid("part numbers must be in ascending order without repeats".into()));
            }
            let part =
                by_number.get(number).copied().ok_or_else(|| invalid(format!("part {number} was never uploaded")))?;
            if part.etag != unquote(etag) {
                return Err(invalid(format!("part {number} has a different ETag")));
            }
            chosen.push(part.clone());
        }
        if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size < MIN_PART) {
            return Err(ServiceError::bad_request(
                "part-too-small",
                format!("part {} is smaller than 5 MiB and is not the last part", small.part_number),
            ));
        }
        Ok(chosen)
    }

    pub async fn complete_upload(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        upload_id: &str,
        requested: &[(i64, String)],
    ) -> ServiceResult<ObjectRecord> {
        let (bucket, permission) =
            self.authorize_bucket(ctx, principal, bucket, Permission::Write, "upload.complete").await?;
        let Some(upload) =
            self.visible_upload(&bucket, permission, principal, upload_id, UploadAccess::Starter).await?
        else {
            return self.completed_earlier(&bucket, principal, upload_id, requested).await;
        };
        // Before its parts are read: they go when the running completion commits.
        if upload.state == UploadState::Completing {
            return Err(upload_completing());
        }
        let stored = self.all_parts(&upload).await?;
        let chosen = Self::chosen_parts(&stored, requested)?;
        let size: i64 = chosen.iter().map(|p| p.size).sum();
        let max = i64::try_from(self.config.max_object_bytes).unwrap_or(i64::MAX);
        if size > max {
            return Err(ServiceError::TooLarge {
                slug: "payload-too-large",
                detail: format!("objects are limited to {max} bytes"),
            });
        }
        if upload.declared_size.is_some_and(|declared| declared != size) {
            return Err(ServiceError::bad_request("size-mismatch", "the parts do not add up to the declared size"));
        }
        if let Some(live) = self.store.live_object(bucket.id, &upload.key).await?
            && is_locked(&live, self.clock.now())
        {
            return Err(locked());
        }
        let etag = multipart_etag(&chosen.iter().map(|p| p.etag.clone()).collect::<Vec<_>>());
        let started = self.clock.now();
        let Some(upload) = self.store.start_completion(&upload.id, started, (&etag, size)).await? else {
            // Another completion holds it, or an abort (its starter's, a manager's, the lifecycle's) took it.
            return Err(match self.store.upload(&upload.id).await? {
                Some(_) => upload_completing(),
                None => ServiceError::NotFound("upload"),
            });
        };
        let assembled = match upload.assembled_etag.as_deref() {
            Some(earlier) => self.assembled_earlier(&upload, earlier, (&etag, size)).await,
            None => {
                let backend_parts: Vec<CompletedPart> = chosen
                    .iter()
                    .map(|p| CompletedPart {
                        part_number: u32::try_from(p.part_number).unwrap_or_default(),
                        etag: p.backend_etag.clone(),
                    })
                    .collect();
                self.assemble(&upload, &backend_parts, size).await
            }
        };
        if let Err(error) = assembled {
            let reopened =
                self.store.reopen_upload(&upload.id, started, self.clock.now(), upload.assembled_etag.as_deref()).await;
            if let Err(reopen) = reopened {
                tracing::warn!(error = %reopen, upload_id = upload.id, "could not reopen an upload; the reconciler will");
            }
            return Err(error);
        }
        let content_type = match &upload.content_type {
            Some(content_type) => content_type.clone(),
            None => self.sniff(&upload, size).await,
        };
        let finish =
            FinishUpload { upload_id: upload.id.clone(), size, etag, content_type, at: self.clock.now(), started };
        let audit = self
            .upload_event(ctx, principal, "upload.complete", bucket.name.as_str(), &upload)
            .details(serde_json::json!({ "upload_id": upload.id, "size": size, "parts": chosen.len() }));
        let committed = match self.finish_with_retries(&finish, &audit).await {
            Ok(committed) => committed,
            Err(error) => {
                let abort = self.upload_event(ctx, principal, "upload.abort", bucket.name.as_str(), &upload);
                self.settle_failed_finish(&bucket, &upload, (started, &finish.etag), error, &abort).await?
            }
        };
        Ok(self.after_commit(committed).await)
    }

    /// A completion sent again after its upload was committed (the first
    /// answer lost on its way): the object that completion committed, when
    /// this one names the same list of parts and that object is still the
    /// key's live version. Completed uploads are remembered for a day.
    async fn completed_earlier(
        &self,
        bucket: &BucketRecord,
        principal: &Principal,
        upload_id: &str,
        requested: &[(i64, String)],
    ) -> ServiceResult<ObjectRecord> {
        let completed = self
            .store
            .completed_upload(upload_id)
            .await?
            .filter(|c| c.bucket_id == bucket.id)
            .filter(|c| c.owner_id == Some(principal.user_id) || principal.role == Role::Admin)
            // Until the reconciler forgets it, which a backend outage may delay.
            .filter(|c| c.completed_at >= self.clock.now() - COMPLETIONS_REMEMBERED)
            .ok_or(ServiceError::NotFound("upload"))?;
        let etags: Vec<String> = requested.iter().map(|(_, etag)| unquote(etag).to_owned()).collect();
        if multipart_etag(&etags) != completed.etag {
            return Err(ServiceError::conflict(
                "upload-completed",
                "this upload was already completed, with another list of parts",
            ));
        }
        match self.store.live_object(bucket.id, &completed.key).await? {
            Some(object) if object.blob_key == completed.blob_key => Ok(object),
            _ => Err(ServiceError::conflict(
                "upload-completed",
                "this upload was already completed; its object has since been replaced or deleted",
            )),
        }
    }

    /// After the commit of an assembled upload failed: the object, when an
    /// attempt whose answer was lost did commit (the upload is then gone, the
    /// object live); otherwise the error, with the upload reopened when the
    /// database was unreachable or the key was locked meanwhile (a retried
    /// completion commits the assembled bytes, once the lock ends), or
    /// aborted when they cannot become the object (quota).
    async fn settle_failed_finish(
        &self,
        bucket: &BucketRecord,
        upload: &UploadRecord,
        (started, etag): (DateTime<Utc>, &str),
        error: MetaError,
        abort: &AuditEntry,
    ) -> ServiceResult<Committed> {
        let committed_unheard = || async {
            let live = self.store.live_object(bucket.id, &upload.key).await?;
            Ok::<_, MetaError>(live.filter(|o| o.blob_key == upload.blob_key))
        };
        match error {
            MetaError::Unavailable(_) => {
                if let Ok(Some(object)) = committed_unheard().await {
                    return Ok(Committed { object, replaced: None });
                }
                if let Err(reopen) = self.store.reopen_upload(&upload.id, started, self.clock.now(), Some(etag)).await {
                    tracing::warn!(error = %reopen, upload_id = upload.id, "could not reopen an assembled upload; the reconciler will");
                }
                Err(error.into())
            }
            // The reconciler took the completion for abandoned and reopened the upload.
            MetaError::Conflict("upload-state") => Err(upload_changed()),
            // A retention or hold set while the parts were assembled: the bytes
            // wait with the reopened upload (on S3 they are the parts' only copy)
            // for a completion once the lock ends, or for an abort.
            MetaError::Conflict("object-locked") => {
                match self.store.reopen_upload(&upload.id, started, self.clock.now(), Some(etag)).await? {
                    true => Err(write_error(error)),
                    false => Err(upload_changed()),
                }
            }
            error => match self.store.abort_upload(&upload.id, UploadState::Completing, Some(started), abort).await {
                Ok(()) => {
                    let _ = self.blobs.delete(&upload.blob_key).await;
                    Err(write_error(error))
                }
                Err(MetaError::NotFound(_)) => {
                    let object = committed_unheard().await?.ok_or_else(|| write_error(error))?;
                    Ok(Committed { object, replaced: None })
                }
                Err(MetaError::Conflict("upload-state")) => Err(upload_changed()),
                Err(abort_error) => Err(abort_error.into()),
            },
        }
    }

    /// Asks the backend to assemble the chosen parts of `size` bytes. A
    /// completion whose outcome was never heard (a timeout, a crash) may have
    /// left the object assembled and the backend upload gone: a blob of that
    /// size under the upload's own key, which only this upload ever writes, is
    /// taken for it (its list cannot be known; only its size is compared).
    async fn assemble(&self, upload: &UploadRecord, parts: &[CompletedPart], size: i64) -> ServiceResult<()> {
        let error = match self.blobs.complete_multipart(&upload.blob_key, &upload.backend_upload_id, parts).await {
            Ok(()) => return Ok(()),
            Err(error @ (StorageError::NotFound | StorageError::Unavailable(_) | StorageError::Backend(_))) => error,
            Err(error) => {
                if let StorageError::PartMismatch(reason) = &error {
                    tracing::info!(
                        reason,
                        upload_id = upload.id,
                        "a completion named a part the storage no longer holds as named"
                    );
                }
                return Err(error.into());
            }
        };
        match self.blobs.head(&upload.blob_key).await {
            Ok(assembled) if u64::try_from(size).is_ok_and(|size| size == assembled.size) => {
                tracing::info!(error = %error, upload_id = upload.id, "the parts were assembled by an earlier completion");
                Ok(())
            }
            Ok(_) => Err(assembled_from_another_list()),
            Err(_) => Err(error.into()),
        }
    }

    /// For an upload whose object an earlier completion assembled from the
    /// list whose ETag is `earlier` (its commit failed): this completion's,
    /// when it names the same list, with no new call to assemble.
    async fn assembled_earlier(
        &self,
        upload: &UploadRecord,
        earlier: &str,
        (etag, size): (&str, i64),
    ) -> ServiceResult<()> {
        if earlier != etag {
            return Err(assembled_from_another_list());
        }
        match self.blobs.head(&upload.blob_key).await {
            Ok(assembled) if u64::try_from(size).is_ok_and(|size| size == assembled.size) => Ok(()),
            Ok(_) | Err(StorageError::NotFound) => {
                tracing::error!(upload_id = upload.id, "the object assembled for an upload is gone or changed");
                Err(ServiceError::conflict(
                    "upload-lost",
                    "the object assembled for this upload is no longer stored; abort the upload and upload again",
                ))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The content type from the name and the first bytes (at most 512) of an
    /// assembled object of `size` bytes.
    async fn sniff(&self, upload: &UploadRecord, size: i64) -> String {
        let Some(last) = u64::try_from(size).ok().and_then(|size| size.checked_sub(1)) else {
            return infer_content_type(upload.key.file_name(), &[]);
        };
        let range = BlobRange { start: 0, end_inclusive: last.min(511) };
        let head = match self.blobs.get(&upload.blob_key, Some(range)).await {
            Ok(read) => {
                use futures::TryStreamExt;
                read.body
                    .try_fold(Vec::new(), |mut acc, chunk| async move {
                        acc.extend_from_slice(&chunk);
                        Ok(acc)
                    })
                    .await
                    .unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        infer_content_type(upload.key.file_name(), &head)
    }
}

fn upload_changed() -> ServiceError {
    ServiceError::conflict("upload-changed", "the upload was reopened while it was being completed; complete it again")
}

fn assembled_from_another_list() -> ServiceError {
    ServiceError::conflict(
        "upload-assembled",
        "an earlier completion assembled this upload from another list of parts; complete it with that list, or abort it",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: i64, size: i64) -> UploadPartRecord {
        UploadPartRecord {
            part_number: n,
            size,
            etag: format!("e{n}"),
            backend_etag: String::new(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn part_lists_are_validated() {
        let stored = vec![part(1, MIN_PART), part(2, 10), part(3, MIN_PART)];
        let list = |items: &[(i64, &str)]| items.iter().map(|(n, e)| (*n, (*e).to_owned())).collect::<Vec<_>>();
        assert!(Services::chosen_parts(&stored, &list(&[(1, "\"e1\""), (2, "e2")])).is_ok());
        assert!(Services::chosen_parts(&stored, &list(&[])).is_err());
        assert!(Services::chosen_parts(&stored, &list(&[(2, "e2"), (1, "e1")])).is_err(), "order");
        assert!(Services::chosen_parts(&stored, &list(&[(1, "e1"), (1, "e1")])).is_err(), "repeat");
        assert!(Services::chosen_parts(&stored, &list(&[(1, "wrong")])).is_err(), "etag");
        assert!(Services::chosen_parts(&stored, &list(&[(4, "e4")])).is_err(), "missing");
        let small_in_middle = Services::chosen_parts(&stored, &list(&[(1, "e1"), (2, "e2"), (3, "e3")]));
        assert!(matches!(small_in_middle, Err(ServiceError::BadRequest { slug: "part-too-small", .. })));
    }
}
