//! One backend bucket per Coffer bucket (`s3_bucket_per_coffer_bucket`):
//! blob keys `b/{id}/…` live in the backend bucket `{s3_bucket}-b{id}`
//! (created with the Coffer bucket, removed with it), everything else
//! (thumbnails, audit checkpoints) in `s3_bucket` itself. Names use the id so
//! a re-created bucket never meets an old one's leftovers.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;

use super::s3::S3BlobStore;
use super::s3_errors::classify;
use super::{
    BlobInfo, BlobRange, BlobRead, BlobStore, ByteStream, CompletedPart, ListPage, OpenMultipart, PartInfo,
    PresignTarget, PresignedRequest, SigningWindow, StorageError,
};

pub struct RoutedS3 {
    main: S3BlobStore,
    /// The last answer of `object_lock` (it lists the backend's buckets) and when.
    enforcement: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

/// How long `object_lock`'s answer is reused (bucket listings and readiness ask it).
const ENFORCEMENT_TTL: Duration = Duration::from_secs(60);

/// `b/{id}/rest` → `(id, rest)`.
fn split(key: &str) -> Option<(u64, &str)> {
    let rest = key.strip_prefix("b/")?;
    let (id, rest) = rest.split_once('/')?;
    Some((id.parse().ok()?, rest))
}

impl RoutedS3 {
    pub fn new(main: S3BlobStore) -> Self {
        Self { main, enforcement: std::sync::Mutex::default() }
    }

    /// Whether the backend bucket of Coffer bucket `id` has Object Lock
    /// (buckets created by Coffer before 2026-12-07 have none even when the
    /// main bucket does).
    async fn backend_lock(&self, id: u64) -> Result<bool, StorageError> {
        self.main.for_bucket(self.backend_bucket(id)).object_lock_answer().await
    }

    /// Whether the main bucket and every Coffer bucket's own have Object Lock;
    /// `None` when the backend could not say.
    async fn every_bucket_locked(&self) -> Option<bool> {
        use futures::{StreamExt, TryStreamExt};
        if !self.main.object_lock_answer().await.ok()? {
            return Some(false);
        }
        let ids = self.bucket_ids().await.ok()?;
        let answers = futures::stream::iter(ids).map(|id| self.backend_lock(id)).buffer_unordered(8);
        answers.try_fold(true, |all, locked| async move { Ok(all && locked) }).await.ok()
    }

    fn backend_bucket(&self, id: u64) -> String {
        format!("{}-b{id}", self.main.bucket)
    }

    /// The store holding `key` and the key inside it.
    fn route<'k>(&self, key: &'k str) -> (Cow<'_, S3BlobStore>, &'k str) {
        match split(key) {
            Some((id, rest)) => (Cow::Owned(self.main.for_bucket(self.backend_bucket(id))), rest),
            None => (Cow::Borrowed(&self.main), key),
        }
    }

    /// Coffer bucket ids that have a backend bucket, ascending.
    async fn bucket_ids(&self) -> Result<Vec<u64>, StorageError> {
        let prefix = format!("{}-b", self.main.bucket);
        let mut ids: Vec<u64> = self
            .main
            .backend_buckets()
            .await?
            .iter()
            .filter_map(|name| name.strip_prefix(&prefix)?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

/// Backend buckets themselves, for the router.
impl S3BlobStore {
    /// The same connection and settings, on another backend bucket.
    pub(super) fn for_bucket(&self, bucket: String) -> S3BlobStore {
        S3BlobStore { bucket, ..self.clone() }
    }

    pub(super) async fn backend_buckets(&self) -> Result<Vec<String>, StorageError> {
        let out = self.client.list_buckets().send().await.map_err(classify)?;
        Ok(out.buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect())
    }

    /// Creates a backend bucket in the client's region; one that exists
    /// already (ours) is fine. AWS refuses a bucket outside us-east-1 whose
    /// request names no region; Garage checks the name against its own.
    /// With Object Lock on this (the main) bucket, the new one has it too, so
    /// retention keeps being mirrored to the backend (Object Lock can only be
    /// enabled when a bucket is created).
    pub(super) async fn create_backend_bucket(&self, name: &str) -> Result<(), StorageError> {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        let region = self.client.config().region().map(|r| r.as_ref().to_owned()).unwrap_or_default();
        let mut request = self.client.create_bucket().bucket(name);
        // Object Lock can only be enabled at creation: a backend that cannot
        // say whether the main bucket has it fails the creation (the client
        // retries) rather than making a bucket without it for good.
        if self.object_lock_answer().await? {
            request = request.object_lock_enabled_for_bucket(true);
        }
        if !region.is_empty() && region != "us-east-1" {
            let location = CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region.as_str()))
                .build();
            request = request.create_bucket_configuration(location);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) => {
                let exists = error
                    .as_service_error()
                    .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists());
                if exists { Ok(()) } else { Err(classify(error)) }
            }
        }
    }

    /// Deletes an empty backend bucket; an absent one is fine.
    pub(super) async fn delete_backend_bucket(&self, name: &str) -> Result<(), StorageError> {
        match self.client.delete_bucket().bucket(name).send().await.map_err(classify) {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[async_trait]
impl BlobStore for RoutedS3 {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn max_put_bytes(&self) -> u64 {
        self.main.max_put_bytes()
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.main.check().await
    }

    async fn ensure_container(&self, bucket_prefix: &str) -> Result<(), StorageError> {
        let (id, _) = split(bucket_prefix).ok_or_else(|| StorageError::InvalidKey(bucket_prefix.into()))?;
        self.main.create_backend_bucket(&self.backend_bucket(id)).await
    }

    async fn remove_container(&self, bucket_prefix: &str) -> Result<(), StorageError> {
        let (id, _) = split(bucket_prefix).ok_or_else(|| StorageError::InvalidKey(bucket_prefix.into()))?;
        let bucket = self.backend_bucket(id);
        self.main.delete_backend_bucket(&bucket).await?;
        self.main.lock_answers.forget(&bucket);
        Ok(())
    }

    async fn put(&self, key: &str, body: ByteStream, size: Option<u64>) -> Result<u64, StorageError> {
        let (store, key) = self.route(key);
        store.put(key, body, size).await
    }

    async fn get(&self, key: &str, range: Option<BlobRange>) -> Result<BlobRead, StorageError> {
        let (store, key) = self.route(key);
        store.get(key, range).await
    }

    async fn head(&self, key: &str) -> Result<BlobInfo, StorageError> {
        let (store, key) = self.route(key);
        store.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let (store, key) = self.route(key);
        match store.delete(key).await {
            // The backend bucket went with its Coffer bucket: nothing left to delete.
            Err(StorageError::NotFound) => Ok(()),
            other => other,
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let (source, from_key) = self.route(from);
        let (target, to_key) = self.route(to);
        if source.bucket == target.bucket {
            return target.copy(from_key, to_key).await;
        }
        target.copy_from_bucket(&source.bucket, from_key, to_key).await
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        if prefix != "b/" {
            let (store, _) = self.route(prefix);
            return store.list(prefix, start_after, limit).await;
        }
        // Walk the per-bucket backends in id order, resuming inside the one the cursor names.
        let resume = start_after.and_then(split);
        for id in self.bucket_ids().await? {
            let inner_after = match resume {
                Some((after_id, _)) if id < after_id => continue,
                Some((after_id, rest)) if id == after_id => Some(rest),
                _ => None,
            };
            let store = self.main.for_bucket(self.backend_bucket(id));
            let mut page = store.list("", inner_after, limit).await?;
            if page.blobs.is_empty() {
                continue;
            }
            for blob in &mut page.blobs {
                blob.key = format!("b/{id}/{}", blob.key);
            }
            let last = page.blobs.last().map(|b| b.key.clone());
            return Ok(ListPage { next_start_after: last, blobs: page.blobs });
        }
        Ok(ListPage::default())
    }

    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let (store, key) = self.route(key);
        store.create_multipart(key).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size: Option<u64>,
    ) -> Result<PartInfo, StorageError> {
        let (store, key) = self.route(key);
        store.upload_part(key, upload_id, part_number, body, size).await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartInfo>, StorageError> {
        let (store, key) = self.route(key);
        store.list_parts(key, upload_id).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StorageError> {
        let (store, key) = self.route(key);
        store.complete_multipart(key, upload_id, parts).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        let (store, key) = self.route(key);
        store.abort_multipart(key, upload_id).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<OpenMultipart>, StorageError> {
        if prefix != "b/" {
            let (store, _) = self.route(prefix);
            return store.list_multipart_uploads(prefix).await;
        }
        let mut all = Vec::new();
        for id in self.bucket_ids().await? {
            let store = self.main.for_bucket(self.backend_bucket(id));
            for mut upload in store.list_multipart_uploads("").await? {
                upload.key = format!("b/{id}/{}", upload.key);
                all.push(upload);
            }
        }
        Ok(all)
    }

    /// The backend enforces retention only if every bucket it holds objects
    /// in has Object Lock: the main one and each Coffer bucket's own.
    async fn object_lock(&self) -> bool {
        let last = *self.enforcement.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, enforced)) = last.filter(|(at, _)| at.elapsed() < ENFORCEMENT_TTL) {
            return enforced;
        }
        // "Could not say" is remembered as "no" as long: readiness and bucket
        // listings must not list every bucket on each call during an outage.
        let enforced = self.every_bucket_locked().await.unwrap_or(false);
        *self.enforcement.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((std::time::Instant::now(), enforced));
        enforced
    }

    async fn mirror_retention(
        &self,
        key: &str,
        retention: Option<crate::policy::retention::Retention>,
        bypass: bool,
    ) -> Result<(), StorageError> {
        // Each backend bucket's store asks its own bucket about Object Lock
        // (the answers are shared by every store of this router).
        let (store, key) = self.route(key);
        store.mirror_retention(key, retention, bypass).await
    }

    async fn mirror_legal_hold(&self, key: &str, on: bool) -> Result<(), StorageError> {
        let (store, key) = self.route(key);
        store.mirror_legal_hold(key, on).await
    }

    async fn presign(
        &self,
        key: &str,
        target: PresignTarget,
        window: SigningWindow,
    ) -> Result<PresignedRequest, StorageError> {
        let (store, key) = self.route(key);
        store.presign(key, target, window).await
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn only_bucket_data_is_routed() {
        assert_eq!(split("b/17/o/abc"), Some((17, "o/abc")));
        assert_eq!(split("b/17/"), Some((17, "")));
        assert_eq!(split("t/abc/256.webp"), None);
        assert_eq!(split("b/x/o"), None);
        assert_eq!(split("audit/checkpoint"), None);
    }
}
