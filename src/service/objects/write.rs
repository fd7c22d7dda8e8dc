//! Writing objects: raw PUT, form uploads (through the same path) and copy.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::{PendingWrite, locked, new_blob_key, parse_key, write_error};
use crate::domain::audit::{AuditEntry, Outcome};
use crate::domain::conditional::WriteConditions;
use crate::domain::{ObjectKey, Permission};
use crate::metadata::{BucketRecord, CommitObject, Committed, MetaError, NewObject, ObjectRecord};
use crate::policy::content::{OCTET_STREAM, infer_content_type, valid_content_type};
use crate::policy::retention::is_locked;
use crate::service::context::{Principal, RequestContext};
use crate::service::digest::digesting;
use crate::service::scopes::objects_scope;
use crate::service::{OBJECT_DATA, ServiceError, ServiceResult, Services};
use crate::storage::{ByteStream, StorageError};

/// What the client said about the body it is sending.
#[derive(Debug, Clone, Default)]
pub struct PutRequest {
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
    /// `Content-MD5`: base64 of the 16-byte digest.
    pub content_md5: Option<String>,
    /// `X-Checksum-Sha256`: hex or base64 of the 32-byte digest.
    pub checksum_sha256: Option<String>,
    /// `If-Match`, `If-None-Match` (`*`: create only), `If-Unmodified-Since`.
    pub conditions: WriteConditions,
}

/// The live version as write preconditions see it: its entity tag and time of writing.
fn current_version(live: &ObjectRecord) -> (&str, DateTime<Utc>) {
    (live.etag.as_deref().unwrap_or_default(), live.created_at)
}

fn bad_digest(detail: &str) -> ServiceError {
    ServiceError::bad_request("bad-digest", detail)
}

fn decode_digest<const N: usize>(value: &str, header: &str) -> ServiceResult<[u8; N]> {
    let value = value.trim();
    let bytes = if value.len() == N * 2 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(value).ok()
    } else {
        STANDARD.decode(value).ok()
    };
    bytes.and_then(|b| b.try_into().ok()).ok_or_else(|| bad_digest(&format!("{header} is not a valid digest")))
}

impl Services {
    pub async fn put_object(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        body: ByteStream,
        request: &PutRequest,
    ) -> ServiceResult<ObjectRecord> {
        let (bucket, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Write, "object.put").await?;
        let key = parse_key(key)?;
        self.store_object(ctx, principal, &bucket, key, body, request).await
    }

    /// The one write path: checks, reserve, stream with digests, verify, commit with audit.
    pub(crate) async fn store_object(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &BucketRecord,
        key: ObjectKey,
        body: ByteStream,
        request: &PutRequest,
    ) -> ServiceResult<ObjectRecord> {
        if let Some(content_type) = &request.content_type
            && !valid_content_type(content_type)
        {
            return Err(ServiceError::bad_request("invalid-content-type", "Content-Type is not a valid media type"));
        }
        let expected_md5 = request.content_md5.as_deref().map(|v| decode_digest::<16>(v, "Content-MD5")).transpose()?;
        let expected_sha =
            request.checksum_sha256.as_deref().map(|v| decode_digest::<32>(v, "X-Checksum-Sha256")).transpose()?;
        let max = self.max_put_bytes();
        if request.content_length.is_some_and(|len| len > max) {
            return Err(self.too_large_for_one_request());
        }
        let live = self.store.live_object(bucket.id, &key).await?;
        // Checked again when the row commits; here so a failing write reads no body.
        if !request.conditions.allow(live.as_ref().map(current_version)) {
            return Err(ServiceError::PreconditionFailed);
        }
        if let Some(live) = &live
            && is_locked(live, self.clock.now())
        {
            return Err(locked());
        }
        let blob_key = new_blob_key(bucket);
        // Overwriting one's own object frees its bytes at commit: reserve only the growth.
        let replaced_own = live.filter(|l| l.owner_id == Some(principal.user_id)).map_or(0, |l| l.size);
        let declared = i64::try_from(request.content_length.unwrap_or(0)).unwrap_or(i64::MAX);
        let reserved = (declared - replaced_own).max(0);
        let pending = self
            .store
            .insert_pending(&NewObject {
                bucket_id: bucket.id,
                key: key.clone(),
                blob_key: blob_key.clone(),
                content_type: request.content_type.clone().unwrap_or_else(|| OCTET_STREAM.into()),
                owner_id: Some(principal.user_id),
                reserved_bytes: reserved,
                at: self.clock.now(),
            })
            .await
            .map_err(write_error)?;
        let guard = PendingWrite::new(self, pending.id, blob_key.clone());
        let (limit, limit_is_quota) = match request.content_length {
            Some(len) => (len, false),
            None => self.unknown_length_limit(principal, replaced_own).await?,
        };
        let (stream, digester) = digesting(body, expected_md5.is_some(), limit);
        let stored = self.blobs.put(&blob_key, stream, request.content_length).await;
        let digests = digester.finish();
        let written = match stored {
            Ok(written) => written,
            Err(error) => {
                guard.abandon().await;
                if digests.exceeded {
                    return Err(if limit_is_quota {
                        write_error(MetaError::Conflict("quota"))
                    } else {
                        self.too_large_for_one_request()
                    });
                }
                return Err(match error {
                    StorageError::Client(_) => ServiceError::bad_request(
                        "upload-interrupted",
                        "the request body ended early; nothing was stored",
                    ),
                    other => other.into(),
                });
            }
        };
        let checks = [
            (request.content_length.is_some_and(|len| len != written), "the body length differs from Content-Length"),
            (expected_md5.is_some_and(|md5| Some(md5) != digests.md5), "Content-MD5 does not match the body"),
            (expected_sha.is_some_and(|sha| sha != digests.sha256), "X-Checksum-Sha256 does not match the body"),
        ];
        if let Some((_, why)) = checks.iter().find(|(failed, _)| *failed) {
            guard.abandon().await;
            return Err(bad_digest(why));
        }
        let content_type =
            request.content_type.clone().unwrap_or_else(|| infer_content_type(key.file_name(), &digests.head));
        let sha256 = digests.sha256_hex();
        let mut commit = CommitObject {
            id: pending.id,
            conditions: request.conditions.clone(),
            size: i64::try_from(written).unwrap_or(i64::MAX),
            etag: sha256.clone(),
            sha256: Some(sha256),
            content_type,
            at: self.clock.now(),
        };
        let mut audit = ctx
            .event(commit.at, principal.actor(), "object.put")
            .bucket(bucket.name.as_str())
            .key(key.as_str())
            .details(serde_json::json!({ "size": commit.size, "sha256": commit.sha256, "content_type": commit.content_type }));
        let committed = match self.commit_racing(&mut commit, &mut audit).await {
            Ok(committed) => {
                guard.disarm();
                committed
            }
            Err(error) => match guard.abandon().await {
                // The commit went through unheard; the version it replaced is left to the reconciler.
                Some(object) => Committed { object, replaced: None },
                // A concurrent first write of the key won: the version this request's
                // preconditions were checked against is no longer the live one.
                None if matches!(error, MetaError::Conflict("object"))
                    && commit.conditions != WriteConditions::default() =>
                {
                    return Err(ServiceError::PreconditionFailed);
                }
                None => return Err(write_error(error)),
            },
        };
        Ok(self.after_commit(committed).await)
    }

    /// Commits a pending write. A commit that raced another writer of the key
    /// (the live row it found was made live, `object`, or retired, `changed`,
    /// meanwhile) is tried again when the write has no conditions: it then
    /// replaces whatever is live now, stamped anew, since the version it
    /// replaces may be younger than its first attempt. Each failed attempt
    /// means another writer committed, so a few attempts suffice.
    async fn commit_racing(&self, commit: &mut CommitObject, audit: &mut AuditEntry) -> Result<Committed, MetaError> {
        let mut result = self.store.commit_object(commit, audit).await;
        if commit.conditions != WriteConditions::default() {
            return result;
        }
        for _ in 0..5 {
            if !matches!(result, Err(MetaError::Conflict("object" | "changed"))) {
                break;
            }
            commit.at = self.clock.now();
            audit.at = commit.at;
            result = self.store.commit_object(commit, audit).await;
        }
        result
    }

    /// The most one request may store: `max_object_bytes`, or less where the
    /// backend cannot take more in one go (refused before the body is read,
    /// not with a 502 after 78 GiB of it).
    fn max_put_bytes(&self) -> u64 {
        self.config.max_object_bytes.min(self.blobs.max_put_bytes())
    }

    fn too_large_for_one_request(&self) -> ServiceError {
        let max = self.max_put_bytes();
        let detail = if max < self.config.max_object_bytes {
            format!("one request stores at most {max} bytes here; larger objects go as a multipart upload")
        } else {
            format!("objects are limited to {max} bytes")
        };
        ServiceError::TooLarge { slug: "payload-too-large", detail }
    }

    /// For a body of unknown length: the bytes the caller may still store,
    /// counting the `replaced_own` bytes of their own version it replaces.
    async fn unknown_length_limit(&self, principal: &Principal, replaced_own: i64) -> ServiceResult<(u64, bool)> {
        let max = self.max_put_bytes();
        let user = self.current_user(principal).await?;
        Ok(match user.quota_bytes {
            Some(quota) => {
                let left =
                    u64::try_from(quota.saturating_sub(user.used_bytes).saturating_add(replaced_own)).unwrap_or(0);
                if left < max { (left, true) } else { (max, false) }
            }
            None => (max, false),
        })
    }

    /// Server-side copy (within or across buckets): read on the source, write on the target.
    pub async fn copy_object(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        to_bucket: Option<&str>,
        to_key: &str,
    ) -> ServiceResult<ObjectRecord> {
        let (source_bucket, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Read, "object.copy").await?;
        let source_key = parse_key(key)?;
        let target_name = to_bucket.unwrap_or(bucket);
        let (target_bucket, _) =
            self.authorize_bucket(ctx, principal, target_name, Permission::Write, "object.copy").await?;
        let target_key = parse_key(to_key)?;
        // An overwrite or delete of the source that commits meanwhile removes
        // the bytes the copy reads: it starts again, once, from the version
        // live then (as a read does).
        let mut retried = false;
        loop {
            let source =
                self.store.live_object(source_bucket.id, &source_key).await?.ok_or(ServiceError::NotFound("object"))?;
            match self.copy_version(ctx, principal, (&source_bucket, &source), (&target_bucket, &target_key)).await {
                Err(ServiceError::NotFound(OBJECT_DATA)) if !retried => retried = true,
                answer => return answer,
            }
        }
    }

    /// Copies `source` (a version that was live) to `target`.
    async fn copy_version(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        (source_bucket, source): (&BucketRecord, &ObjectRecord),
        (target_bucket, target_key): (&BucketRecord, &ObjectKey),
    ) -> ServiceResult<ObjectRecord> {
        let target_live = self.store.live_object(target_bucket.id, target_key).await?;
        if target_live.as_ref().is_some_and(|live| is_locked(live, self.clock.now())) {
            return Err(locked());
        }
        // As for a PUT: replacing one's own version frees its bytes at commit, so only the growth is reserved.
        let replaced_own = target_live.filter(|l| l.owner_id == Some(principal.user_id)).map_or(0, |l| l.size);
        let blob_key = new_blob_key(target_bucket);
        let pending = self
            .store
            .insert_pending(&NewObject {
                bucket_id: target_bucket.id,
                key: target_key.clone(),
                blob_key: blob_key.clone(),
                content_type: source.content_type.clone(),
                owner_id: Some(principal.user_id),
                reserved_bytes: (source.size - replaced_own).max(0),
                at: self.clock.now(),
            })
            .await
            .map_err(write_error)?;
        let guard = PendingWrite::new(self, pending.id, blob_key.clone());
        if let Err(error) = self.blobs.copy(&source.blob_key, &blob_key).await {
            guard.abandon().await;
            return Err(error.into());
        }
        let mut commit = CommitObject {
            id: pending.id,
            conditions: WriteConditions::default(),
            size: source.size,
            etag: source.etag.clone().unwrap_or_default(),
            sha256: source.sha256.clone(),
            content_type: source.content_type.clone(),
            at: self.clock.now(),
        };
        let mut audit = ctx
            .event(commit.at, principal.actor(), "object.copy")
            .bucket(target_bucket.name.as_str())
            .key(target_key.as_str())
            .details(
                serde_json::json!({ "from_bucket": source_bucket.name, "from_key": source.key, "size": source.size }),
            );
        let committed = match self.commit_racing(&mut commit, &mut audit).await {
            Ok(committed) => {
                guard.disarm();
                committed
            }
            Err(error) => match guard.abandon().await {
                Some(object) => Committed { object, replaced: None },
                None => return Err(write_error(error)),
            },
        };
        // A copy reads its source: recorded under the source's bucket too, so
        // a review of that bucket's reads sees what left it this way.
        let read = ctx
            .event(self.clock.now(), principal.actor(), "object.get")
            .bucket(source_bucket.name.as_str())
            .key(source.key.as_str())
            .details(serde_json::json!({
                "bytes": source.size, "copied_to": { "bucket": target_bucket.name, "key": target_key },
            }));
        self.reads.record(read);
        Ok(self.after_commit(committed).await)
    }

    pub async fn delete_object(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        conditions: &WriteConditions,
    ) -> ServiceResult<()> {
        let (bucket, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Write, "object.delete").await?;
        let key = parse_key(key)?;
        let live = self.store.live_object(bucket.id, &key).await?;
        if !conditions.allow(live.as_ref().map(current_version)) {
            return Err(ServiceError::PreconditionFailed);
        }
        let live = live.ok_or(ServiceError::NotFound("object"))?;
        // Retires exactly `live`: a version written since is not deleted in its place (404 then).
        self.remove_live(ctx, principal.actor(), &bucket, &live, "object.delete", serde_json::json!({})).await?;
        Ok(())
    }

    /// The one delete path, for users and lifecycle alike: retire exactly
    /// this version (`NotFound` if it is no longer live) with its audit
    /// record, or record the refusal while it is locked; then drop the bytes.
    pub(crate) async fn remove_live(
        &self,
        ctx: &RequestContext,
        actor: &str,
        bucket: &BucketRecord,
        live: &ObjectRecord,
        action: &str,
        details: serde_json::Value,
    ) -> ServiceResult<ObjectRecord> {
        let audit = ctx
            .event(self.clock.now(), actor, action)
            .bucket(bucket.name.as_str())
            .key(live.key.as_str())
            .details(details);
        let deleting = match self.store.mark_deleting(live.id, &audit).await {
            Ok(deleting) => deleting,
            Err(MetaError::Conflict("object-locked")) => {
                let denied = audit.outcome(Outcome::Denied).details(serde_json::json!({ "reason": "object-locked" }));
                self.store.append_audit(&denied).await?;
                return Err(locked());
            }
            Err(error) => return Err(write_error(error)),
        };
        self.invalidate(&objects_scope(bucket.id)).await;
        self.remove_version(&deleting).await;
        Ok(deleting)
    }
}
