//! Objects: streamed writes with digests and quota, conditional and ranged
//! reads, listing from metadata, copy and delete — crash-safe in the order
//! pending row → bytes → committed row + audit.

mod read;
mod write;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use read::{ListPage, ListRequest, ObjectRead, ReadOutcome, ReadRequest};
pub(crate) use read::{bytes_to_send, validator_text};
pub use write::PutRequest;

use super::{ServiceError, ServiceResult, Services};
use crate::domain::ObjectKey;
use crate::metadata::{BucketRecord, Committed, MetaError, MetadataStore, ObjectRecord, ObjectState};
use crate::service::scopes::objects_scope;
use crate::storage::BlobStore;

/// An object as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectView {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub sha256: Option<String>,
    pub content_type: String,
    pub created_at: DateTime<Utc>,
}

impl From<&ObjectRecord> for ObjectView {
    fn from(object: &ObjectRecord) -> Self {
        Self {
            key: object.key.to_string(),
            size: object.size,
            etag: object.etag.clone().unwrap_or_default(),
            sha256: object.sha256.clone(),
            content_type: object.content_type.clone(),
            created_at: object.created_at,
        }
    }
}

pub(crate) fn parse_key(raw: &str) -> ServiceResult<ObjectKey> {
    ObjectKey::parse(raw).map_err(|e| ServiceError::bad_request("invalid-key", e.to_string()))
}

/// The key for an uploaded file: `prefix` + the file name, where the name
/// keeps its folders (browsers send `dir/sub/file` for folder uploads) but
/// loses anything that could climb or hide (`..`, `.`, empty segments,
/// control characters, backslash separators). Unicode is kept.
pub fn key_for_upload(prefix: &str, file_name: &str) -> ServiceResult<ObjectKey> {
    let name: Vec<String> = file_name
        .split(['/', '\\'])
        .map(|segment| segment.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|segment| segment.trim().to_owned())
        .filter(|segment| !segment.is_empty() && segment != "." && segment != "..")
        .collect();
    if name.is_empty() {
        return Err(ServiceError::bad_request("invalid-filename", "the file name is empty once sanitized"));
    }
    parse_key(&format!("{prefix}{}", name.join("/")))
}

/// A fresh, never-reused backend key under the bucket's prefix; user keys
/// never become backend paths.
pub(crate) fn new_blob_key(bucket: &BucketRecord) -> String {
    format!("{}o/{}", bucket.blob_prefix(), uuid::Uuid::now_v7().simple())
}

pub(crate) fn locked() -> ServiceError {
    ServiceError::conflict("object-locked", "the object is under retention or legal hold")
}

/// Store errors of object writes, in client terms.
pub(crate) fn write_error(error: MetaError) -> ServiceError {
    match error {
        MetaError::Conflict("quota") => {
            ServiceError::TooLarge { slug: "quota-exceeded", detail: "this would exceed your storage quota".into() }
        }
        MetaError::Conflict("object-locked") => locked(),
        MetaError::Conflict("staged-limit") => ServiceError::TooLarge {
            slug: "payload-too-large",
            detail: "this upload already holds more bytes of parts than its object may have".into(),
        },
        MetaError::Conflict("precondition") => ServiceError::PreconditionFailed,
        // "object": a concurrent first write of the same key committed a moment earlier.
        MetaError::Conflict("changed" | "object") => {
            ServiceError::conflict("concurrent-change", "the object changed concurrently; try again")
        }
        other => other.into(),
    }
}

/// Undoes a write that will not commit: the pending row goes, then its bytes.
/// Armed until disarmed, so a handler dropped mid-upload (client gone) still
/// cleans up. The row goes first because a commit whose outcome was never
/// heard (a connection lost after COMMIT, a request dropped while committing)
/// may have made it live: its bytes then stay. Bytes whose row went but that
/// could not be deleted are left to the orphan scan.
pub(crate) struct PendingWrite {
    store: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    pending_id: i64,
    blob_key: String,
    armed: bool,
}

impl PendingWrite {
    pub(crate) fn new(services: &Services, pending_id: i64, blob_key: String) -> Self {
        Self { store: services.store.clone(), blobs: services.blobs.clone(), pending_id, blob_key, armed: true }
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }

    /// Cleans up now (on the error path), rather than from `Drop`. Returns the
    /// object when its commit had succeeded after all, unheard.
    pub(crate) async fn abandon(mut self) -> Option<ObjectRecord> {
        self.armed = false;
        if undo(&*self.store, &*self.blobs, self.pending_id, &self.blob_key).await {
            return None;
        }
        let object = self.store.object_by_id(self.pending_id).await.ok().flatten();
        object.filter(|object| object.state == ObjectState::Committed)
    }
}

/// Whether the pending row was rolled back (and its bytes removed).
async fn undo(store: &dyn MetadataStore, blobs: &dyn BlobStore, pending_id: i64, blob_key: &str) -> bool {
    match store.discard_pending(pending_id).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(error) => {
            tracing::warn!(error = %error, pending_id, "could not discard a pending row; the reconciler will");
            return false;
        }
    }
    if let Err(error) = blobs.delete(blob_key).await {
        tracing::warn!(error = %error, blob_key, "could not remove the bytes of an abandoned write; the orphan scan will");
    }
    true
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, blobs, id, key) = (self.store.clone(), self.blobs.clone(), self.pending_id, self.blob_key.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                undo(&*store, &*blobs, id, &key).await;
            });
        }
    }
}

impl Services {
    /// What follows every commit of a new version (PUT, copy, multipart
    /// completion): the key's cached entries, the replaced version's bytes,
    /// the backend's copy of its retention, its thumbnail.
    pub(crate) async fn after_commit(&self, committed: Committed) -> ObjectRecord {
        self.invalidate(&objects_scope(committed.object.bucket_id)).await;
        if let Some(old) = &committed.replaced {
            self.remove_version(old).await;
        }
        self.mirror_new_object(&committed.object).await;
        self.queue_thumbnail(&committed.object).await;
        committed.object
    }

    /// Removes a version that left the live state (replaced or deleted).
    /// A failure leaves the row `deleting` for the reconciler.
    pub(crate) async fn remove_version(&self, object: &ObjectRecord) {
        if let Err(error) = self.finish_removal(object).await {
            tracing::warn!(error = %error, object_id = object.id, "could not remove an old version; the reconciler will");
        }
    }

    /// Bytes, then row, then the thumbnails of a version that is `deleting`.
    pub(crate) async fn finish_removal(&self, object: &ObjectRecord) -> ServiceResult<()> {
        self.blobs.delete(&object.blob_key).await?;
        self.store.remove_object_row(object.id).await?;
        self.forget_thumbnails(object).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::key_for_upload;
    use proptest::prelude::*;

    #[test]
    fn file_names_become_safe_keys() {
        let key = |p: &str, f: &str| key_for_upload(p, f).map(|k| k.to_string()).ok();
        assert_eq!(key("", "photo.jpg").as_deref(), Some("photo.jpg"));
        assert_eq!(key("in/", "../../etc/passwd").as_deref(), Some("in/etc/passwd"));
        assert_eq!(key("", "C:\\Users\\me\\résumé.pdf").as_deref(), Some("C:/Users/me/résumé.pdf"));
        assert_eq!(key("", "dir//./sub/file\u{0}.txt").as_deref(), Some("dir/sub/file.txt"));
        assert_eq!(key("", "<img src=x onerror=alert(1)>.png").as_deref(), Some("<img src=x onerror=alert(1)>.png"));
        assert_eq!(key("", "../.."), None);
    }

    proptest! {
        #[test]
        fn sanitized_keys_are_always_valid(prefix in "[a-z]{0,3}/?", name in "\\PC{0,30}") {
            if let Ok(key) = key_for_upload(&prefix, &name) {
                prop_assert!(crate::domain::ObjectKey::parse(key.as_str()).is_ok());
                prop_assert!(!key.as_str().split('/').any(|s| s == ".."));
            }
        }
    }
}
