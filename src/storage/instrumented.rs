//! A `BlobStore` decorator that times every object-store call by operation
//! and counts failures, for `/metrics`.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    BlobInfo, BlobRange, BlobRead, BlobStore, ByteStream, CompletedPart, ListPage, OpenMultipart, PartInfo,
    PresignTarget, PresignedRequest, SigningWindow, StorageError,
};
use crate::metrics::{CallTimer, Metrics};

pub struct Instrumented {
    inner: Arc<dyn BlobStore>,
    timer: CallTimer,
}

impl Instrumented {
    pub fn wrap(inner: Arc<dyn BlobStore>, metrics: &Metrics) -> Arc<dyn BlobStore> {
        Arc::new(Self { inner, timer: CallTimer::new(&metrics.storage_seconds, &metrics.storage_errors) })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        self.timer.time(operation, call).await
    }
}

#[async_trait]
impl BlobStore for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn max_put_bytes(&self) -> u64 {
        self.inner.max_put_bytes()
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.timed("check", self.inner.check()).await
    }

    async fn put(&self, key: &str, body: ByteStream, size: Option<u64>) -> Result<u64, StorageError> {
        self.timed("put", self.inner.put(key, body, size)).await
    }

    async fn get(&self, key: &str, range: Option<BlobRange>) -> Result<BlobRead, StorageError> {
        self.timed("get", self.inner.get(key, range)).await
    }

    async fn head(&self, key: &str) -> Result<BlobInfo, StorageError> {
        self.timed("head", self.inner.head(key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.timed("delete", self.inner.delete(key)).await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        self.timed("copy", self.inner.copy(from, to)).await
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        self.timed("list", self.inner.list(prefix, start_after, limit)).await
    }

    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        self.timed("create_multipart", self.inner.create_multipart(key)).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size: Option<u64>,
    ) -> Result<PartInfo, StorageError> {
        self.timed("upload_part", self.inner.upload_part(key, upload_id, part_number, body, size)).await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartInfo>, StorageError> {
        self.timed("list_parts", self.inner.list_parts(key, upload_id)).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StorageError> {
        self.timed("complete_multipart", self.inner.complete_multipart(key, upload_id, parts)).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        self.timed("abort_multipart", self.inner.abort_multipart(key, upload_id)).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<OpenMultipart>, StorageError> {
        self.timed("list_multipart_uploads", self.inner.list_multipart_uploads(prefix)).await
    }

    async fn ensure_container(&self, bucket_prefix: &str) -> Result<(), StorageError> {
        self.timed("ensure_container", self.inner.ensure_container(bucket_prefix)).await
    }

    async fn remove_container(&self, bucket_prefix: &str) -> Result<(), StorageError> {
        self.timed("remove_container", self.inner.remove_container(bucket_prefix)).await
    }

    async fn object_lock(&self) -> bool {
        self.inner.object_lock().await
    }

    async fn mirror_retention(
        &self,
        key: &str,
        retention: Option<crate::policy::retention::Retention>,
        bypass: bool,
    ) -> Result<(), StorageError> {
        self.timed("mirror_retention", self.inner.mirror_retention(key, retention, bypass)).await
    }

    async fn mirror_legal_hold(&self, key: &str, on: bool) -> Result<(), StorageError> {
        self.timed("mirror_legal_hold", self.inner.mirror_legal_hold(key, on)).await
    }

    async fn presign(
        &self,
        key: &str,
        target: PresignTarget,
        window: SigningWindow,
    ) -> Result<PresignedRequest, StorageError> {
        self.timed("presign", self.inner.presign(key, target, window)).await
    }
}
