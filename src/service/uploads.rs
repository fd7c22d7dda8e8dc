//! Resumable multipart uploads: create, upload (or re-upload) parts, list
//! them to resume, complete into one object (`completion`), abort. Quota is
//! charged per part as it arrives, so concurrent uploads overshoot by at most
//! one part each.

mod completion;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::context::{Principal, RequestContext};
use super::digest::digesting;
use super::objects::{locked, new_blob_key, parse_key, write_error};
use super::{ServiceError, ServiceResult, Services};
use crate::domain::audit::AuditEntry;
use crate::domain::{Permission, Role};
use crate::metadata::{BucketRecord, MetaError, MetadataStore, UploadPartRecord, UploadRecord, UploadState};
use crate::policy::content::valid_content_type;
use crate::policy::retention::is_locked;
use crate::storage::{ByteStream, StorageError};

pub const MAX_PARTS: i64 = 10_000;

/// Who may act on an upload besides its starter and admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadAccess {
    Starter,
    /// Also the bucket's managers: aborting, so open uploads never keep them
    /// from deleting their bucket.
    StarterOrManager,
}
/// The most uploads one page of `GET …/uploads` lists.
pub const MAX_UPLOADS_PAGE: usize = 1000;
pub const MIN_PART: i64 = 5 * 1024 * 1024;
pub const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const MIB: i64 = 1024 * 1024;

/// The part size to suggest: the configured size, raised so `size` fits in 10,000 parts.
pub fn part_size_for(configured_mib: u64, size: Option<i64>) -> i64 {
    let configured = i64::try_from(configured_mib).unwrap_or(8) * MIB;
    let needed = size.map_or(0, |s| (s + MAX_PARTS - 1) / MAX_PARTS);
    let rounded = (needed + MIB - 1) / MIB * MIB;
    configured.max(rounded).max(MIN_PART)
}

/// The object ETag of a multipart object: SHA-256 over the parts' digests, then `-N` (like S3).
pub fn multipart_etag(part_etags: &[String]) -> String {
    let mut hasher = Sha256::new();
    for etag in part_etags {
        hasher.update(hex::decode(etag).unwrap_or_else(|_| etag.as_bytes().to_vec()));
    }
    format!("{}-{}", hex::encode(hasher.finalize()), part_etags.len())
}

/// How long a completed upload answers a completion sent again with its
/// object: long past any client's retries.
pub(crate) const COMPLETIONS_REMEMBERED: chrono::Duration = chrono::Duration::days(1);

fn unquote(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

impl Services {
    /// An upload of this bucket that the caller started (admins see all;
    /// with `UploadAccess::StarterOrManager`, so do the bucket's managers);
    /// others are 404.
    pub(crate) async fn own_upload(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        (bucket, upload_id): (&str, &str),
        action: &str,
        access: UploadAccess,
    ) -> ServiceResult<(BucketRecord, UploadRecord)> {
        let (bucket, permission) = self.authorize_bucket(ctx, principal, bucket, Permission::Write, action).await?;
        let upload = self
            .visible_upload(&bucket, permission, principal, upload_id, access)
            .await?
            .ok_or(ServiceError::NotFound("upload"))?;
        Ok((bucket, upload))
    }

    /// The upload `upload_id` of `bucket`, if the caller, holding `permission`
    /// on it, may act on it as `own_upload` describes.
    pub(crate) async fn visible_upload(
        &self,
        bucket: &BucketRecord,
        permission: Permission,
        principal: &Principal,
        upload_id: &str,
        access: UploadAccess,
    ) -> ServiceResult<Option<UploadRecord>> {
        let for_others = principal.role == Role::Admin
            || (access == UploadAccess::StarterOrManager && permission == Permission::Manage);
        Ok(self
            .store
            .upload(upload_id)
            .await?
            .filter(|u| u.bucket_id == bucket.id)
            .filter(|u| u.owner_id == Some(principal.user_id) || for_others))
    }

    /// One page of a bucket's open uploads in key order: the caller's own, or
    /// all of them for the bucket's managers. With the sort key of the page's
    /// last upload, to pass as `after`.
    pub async fn list_uploads(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<UploadRecord>, Option<String>)> {
        let (bucket, permission) =
            self.authorize_bucket(ctx, principal, bucket, Permission::Write, "upload.list").await?;
        let limit = limit.clamp(1, MAX_UPLOADS_PAGE);
        let after = after
            .map(|text| {
                text.split_once(':').filter(|(id, key)| !id.is_empty() && !key.is_empty()).ok_or_else(|| {
                    ServiceError::bad_request("invalid-cursor", "the cursor is not one this server issued")
                })
            })
            .transpose()?;
        // Managers see every upload; a writer's own are filtered in the query,
        // so the cursor never names another user's upload.
        let owner = (permission != Permission::Manage).then_some(principal.user_id);
        let cursor = after.map(|(id, key)| (key, id));
        let mut uploads = self.store.uploads_in_bucket(bucket.id, "", owner, cursor, limit + 1).await?;
        let next = (uploads.len() > limit).then(|| {
            uploads.truncate(limit);
            uploads.last().map(|last| format!("{}:{}", last.id, last.key.as_str()))
        });
        Ok((uploads, next.flatten()))
    }

    fn upload_event(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        action: &str,
        bucket: &str,
        upload: &UploadRecord,
    ) -> AuditEntry {
        ctx.event(self.clock.now(), principal.actor(), action)
            .bucket(bucket)
            .key(upload.key.as_str())
            .details(serde_json::json!({ "upload_id": upload.id }))
    }

    pub async fn create_upload(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        content_type: Option<String>,
        size: Option<i64>,
    ) -> ServiceResult<UploadRecord> {
        let (bucket, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Write, "upload.create").await?;
        let key = parse_key(key)?;
        if content_type.as_deref().is_some_and(|t| !valid_content_type(t)) {
            return Err(ServiceError::bad_request("invalid-content-type", "content_type is not a valid media type"));
        }
        let max = i64::try_from(self.config.max_object_bytes).unwrap_or(i64::MAX);
        if size.is_some_and(|s| s < 0) {
            return Err(ServiceError::bad_request("invalid-size", "size must not be negative"));
        }
        if size.is_some_and(|s| s > max) {
            return Err(ServiceError::TooLarge {
                slug: "payload-too-large",
                detail: format!("objects are limited to {max} bytes"),
            });
        }
        if let Some(size) = size {
            let user = self.current_user(principal).await?;
            if user.quota_bytes.is_some_and(|quota| user.used_bytes + size > quota) {
                return Err(write_error(MetaError::Conflict("quota")));
            }
        }
        if let Some(live) = self.store.live_object(bucket.id, &key).await?
            && is_locked(&live, self.clock.now())
        {
            return Err(locked());
        }
        let blob_key = new_blob_key(&bucket);
        let backend_upload_id = self.blobs.create_multipart(&blob_key).await?;
        let upload = UploadRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            bucket_id: bucket.id,
            key,
            blob_key,
            backend_upload_id,
            owner_id: Some(principal.user_id),
            content_type,
            declared_size: size,
            part_size: part_size_for(self.config.upload_part_size_mib, size),
            created_at: self.clock.now(),
            state: UploadState::Open,
            state_at: self.clock.now(),
            charged_bytes: 0,
            attempt_etag: None,
            attempt_size: None,
            assembled_etag: None,
        };
        let audit = self.upload_event(ctx, principal, "upload.create", bucket.name.as_str(), &upload);
        if let Err(error) = self.store.create_upload(&upload, self.config.max_open_uploads, &audit).await {
            // Nothing records the backend's upload: it goes now, not with the reconciler's next scan.
            let _ = self.blobs.abort_multipart(&upload.blob_key, &upload.backend_upload_id).await;
            return Err(match error {
                MetaError::Conflict("too-many-uploads") => ServiceError::conflict(
                    "too-many-uploads",
                    format!(
                        "your unfinished uploads are at the limit ({}); complete or abort some first",
                        self.config.max_open_uploads
                    ),
                ),
                other => other.into(),
            });
        }
        Ok(upload)
    }

    /// The most bytes of parts an upload may hold before it takes one more:
    /// what its object may have (the declared size, if any, within the limit).
    pub(super) fn staged_limit(&self, upload: &UploadRecord) -> i64 {
        let limit = i64::try_from(self.config.max_object_bytes).unwrap_or(i64::MAX);
        upload.declared_size.map_or(limit, |declared| declared.min(limit))
    }

    /// A part's length within the limits of a part and of an object.
    pub(super) fn check_part_length(&self, length: u64) -> ServiceResult<()> {
        if length > MAX_PART {
            return Err(ServiceError::TooLarge { slug: "part-too-large", detail: "parts are limited to 5 GiB".into() });
        }
        if length > self.config.max_object_bytes {
            return Err(ServiceError::TooLarge {
                slug: "payload-too-large",
                detail: format!("objects are limited to {} bytes", self.config.max_object_bytes),
            });
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments, reason = "a part is addressed by bucket, upload and number")]
    pub async fn upload_part(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        upload_id: &str,
        part_number: i64,
        body: ByteStream,
        content_length: Option<u64>,
    ) -> ServiceResult<UploadPartRecord> {
        let (_, upload) =
            self.own_upload(ctx, principal, (bucket, upload_id), "upload.part", UploadAccess::Starter).await?;
        if !(1..=MAX_PARTS).contains(&part_number) {
            return Err(ServiceError::bad_request(
                "invalid-part-number",
                format!("part numbers run from 1 to {MAX_PARTS}"),
            ));
        }
        let length =
            content_length.ok_or_else(|| ServiceError::LengthRequired("parts need a Content-Length".into()))?;
        self.check_part_length(length)?;
        if upload.state != UploadState::Open {
            return Err(upload_completing());
        }
        let charged = i64::try_from(length).unwrap_or(i64::MAX);
        let limit = self.staged_limit(&upload);
        let reservation = PartReservation::take(self, &upload.id, (part_number, charged), limit).await.map_err(
            |error| match error {
                // A completion took the upload since it was read above.
                MetaError::Conflict("upload-state") => upload_completing(),
                other => write_error(other),
            },
        )?;
        let (stream, digester) = digesting(body, false, length);
        let number = u32::try_from(part_number).unwrap_or_default();
        let stored =
            self.blobs.upload_part(&upload.blob_key, &upload.backend_upload_id, number, stream, Some(length)).await;
        let digests = digester.finish();
        let part = match stored {
            Ok(part) if part.size == length => part,
            result => {
                reservation.release().await?;
                return Err(match result {
                    Ok(_) | Err(StorageError::Client(_)) => {
                        ServiceError::bad_request("upload-interrupted", "the part body ended early; send it again")
                    }
                    Err(other) => other.into(),
                });
            }
        };
        let record = UploadPartRecord {
            part_number,
            size: charged,
            etag: digests.sha256_hex(),
            backend_etag: part.etag,
            created_at: self.clock.now(),
        };
        // The part is stored: from here on it holds the quota (as it does if
        // recording it fails, since the backend may list it).
        reservation.keep();
        self.store.record_part(&upload.id, &record).await?;
        Ok(record)
    }

    pub async fn list_upload_parts(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        upload_id: &str,
    ) -> ServiceResult<(UploadRecord, Vec<UploadPartRecord>)> {
        let (_, upload) =
            self.own_upload(ctx, principal, (bucket, upload_id), "upload.list_parts", UploadAccess::Starter).await?;
        let parts = self.all_parts(&upload).await?;
        Ok((upload, parts))
    }

    /// The parts Coffer received, plus — where clients may upload parts straight
    /// to the S3 backend — the parts only the backend knows.
    async fn all_parts(&self, upload: &UploadRecord) -> ServiceResult<Vec<UploadPartRecord>> {
        let mut parts = self.store.upload_parts(&upload.id).await?;
        let direct = self.config.storage == crate::config::StorageKind::S3
            && (self.config.transfer_mode == crate::config::TransferMode::Direct || self.config.allow_direct_transfer);
        if direct {
            let listed = match self.blobs.list_parts(&upload.blob_key, &upload.backend_upload_id).await {
                // Gone from the backend: assembled by a completion whose answer was lost.
                Err(StorageError::NotFound) => Vec::new(),
                listed => listed?,
            };
            for part in listed {
                let number = i64::from(part.part_number);
                let received = parts.iter().position(|p| p.part_number == number);
                // The backend holds what was sent last: a part re-sent straight
                // to it replaces the one Coffer received through the gateway.
                if received.is_some_and(|i| unquote(&parts[i].backend_etag) == unquote(&part.etag)) {
                    continue;
                }
                let listed = UploadPartRecord {
                    part_number: number,
                    size: i64::try_from(part.size).unwrap_or(i64::MAX),
                    etag: unquote(&part.etag).to_owned(),
                    backend_etag: part.etag,
                    created_at: self.clock.now(),
                };
                match received {
                    Some(i) => parts[i] = listed,
                    None => parts.push(listed),
                }
            }
            parts.sort_by_key(|p| p.part_number);
        }
        Ok(parts)
    }

    pub async fn abort_upload(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        upload_id: &str,
    ) -> ServiceResult<()> {
        let (bucket, upload) = self
            .own_upload(ctx, principal, (bucket, upload_id), "upload.abort", UploadAccess::StarterOrManager)
            .await?;
        if upload.state == UploadState::Completing {
            return Err(upload_completing());
        }
        // The row goes first, atomically with its state check, so that an abort
        // never pulls the parts from under a completion that started meanwhile;
        // a backend upload left behind is aborted by the reconciler's sweep.
        let audit = self.upload_event(ctx, principal, "upload.abort", bucket.name.as_str(), &upload);
        match self.store.abort_upload(&upload.id, UploadState::Open, None, &audit).await {
            Ok(()) => {}
            Err(MetaError::Conflict("upload-state")) => return Err(upload_completing()),
            Err(error) => return Err(error.into()),
        }
        self.discard_backend_upload(&upload).await;
        Ok(())
    }

    /// After an upload's row went: its backend upload, and the object an
    /// earlier completion may have assembled. What fails is left to the
    /// reconciler's sweeps (backend uploads, orphan bytes).
    pub(crate) async fn discard_backend_upload(&self, upload: &UploadRecord) {
        if let Err(error) = self.blobs.abort_multipart(&upload.blob_key, &upload.backend_upload_id).await {
            tracing::warn!(error = %error, upload_id = upload.id, "could not abort a backend upload; the reconciler will");
        }
        // Only this upload ever writes its key: deleting what may not be there is harmless.
        if let Err(error) = self.blobs.delete(&upload.blob_key).await {
            tracing::warn!(error = %error, upload_id = upload.id, "could not remove assembled bytes; the orphan scan will");
        }
    }
}

/// The quota a part holds while its body arrives. Released when the part is
/// not stored, also when the request is dropped mid-body (the client gone),
/// so that the owner's quota does not stay charged until the upload ends.
struct PartReservation {
    store: Arc<dyn MetadataStore>,
    upload_id: String,
    bytes: i64,
    armed: bool,
}

impl PartReservation {
    async fn take(
        services: &Services,
        upload_id: &str,
        (part_number, bytes): (i64, i64),
        staged_limit: i64,
    ) -> Result<Self, MetaError> {
        services.store.reserve_part(upload_id, (part_number, bytes), staged_limit).await?;
        Ok(Self { store: services.store.clone(), upload_id: upload_id.to_owned(), bytes, armed: true })
    }

    fn keep(mut self) {
        self.armed = false;
    }

    async fn release(mut self) -> Result<(), MetaError> {
        self.armed = false;
        self.store.release_part(&self.upload_id, self.bytes).await
    }
}

impl Drop for PartReservation {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, upload_id, bytes) = (self.store.clone(), std::mem::take(&mut self.upload_id), self.bytes);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release_part(&upload_id, bytes).await {
                    tracing::warn!(error = %error, upload_id, "could not release a dropped part's quota; it is released when the upload ends");
                }
            });
        }
    }
}

/// The answer to a change asked of an upload that a completion has taken.
pub(crate) fn upload_completing() -> ServiceError {
    ServiceError::conflict("upload-completing", "the upload is being completed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_with_huge_objects() {
        assert_eq!(part_size_for(8, None), 8 * MIB);
        assert_eq!(part_size_for(8, Some(1024)), 8 * MIB);
        // 5 TiB in 10,000 parts needs parts of at least 524.288 MiB → 525 MiB.
        let five_tib = 5 * 1024 * 1024 * MIB;
        let size = part_size_for(8, Some(five_tib));
        assert_eq!(size, 525 * MIB);
        assert!(size * MAX_PARTS >= five_tib);
    }

    #[test]
    fn multipart_etags_name_their_part_count() {
        let etag = multipart_etag(&["00".repeat(32), "11".repeat(32)]);
        assert!(etag.ends_with("-2") && etag.len() == 64 + 2);
    }
}
