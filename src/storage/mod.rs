//! The `BlobStore` port: streaming object bytes in and out of a backend (filesystem or S3).
//!
//! Keys given to a store are relative to its root (the fs directory or the S3
//! prefix). Coffer names its blobs itself; adapters still contain any key.

mod fs;
mod fs_layout;
pub mod instrumented;
mod part_buffers;
mod s3;
mod s3_errors;
mod s3_http;
mod s3_lock;
mod s3_routed;
mod s3_upload;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;

use crate::config::{Config, StorageKind};

pub use fs::FsBlobStore;
pub use s3::S3BlobStore;

/// A `Send` stream of body chunks. Errors are I/O errors of the producer.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Longest key an adapter accepts (S3's limit).
pub const MAX_BLOB_KEY_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob not found")]
    NotFound,
    #[error("invalid blob key: {0}")]
    InvalidKey(String),
    #[error("invalid byte range")]
    InvalidRange,
    /// A part named to complete a multipart upload is not the one stored
    /// under that number (replaced since it was listed, or gone).
    #[error("part mismatch: {0}")]
    PartMismatch(String),
    #[error("{0} is not supported by this storage backend")]
    Unsupported(&'static str),
    /// The body being stored failed to arrive (client went away, read error).
    #[error("reading the body failed: {0}")]
    Client(#[source] std::io::Error),
    #[error("storage backend unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
    #[error("storage backend error: {0:#}")]
    Backend(#[source] anyhow::Error),
}

/// An inclusive byte range already resolved against the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRange {
    pub start: u64,
    pub end_inclusive: u64,
}

impl BlobRange {
    pub fn len(&self) -> u64 {
        self.end_inclusive - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// An open read: the bytes (whole blob or the requested range) and the blob's total size.
pub struct BlobRead {
    pub body: ByteStream,
    pub total_size: u64,
    pub content_length: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub blobs: Vec<ListedBlob>,
    /// Pass as `start_after` to get the next page; `None` when done.
    pub next_start_after: Option<String>,
}

/// A part as the backend knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    pub etag: String,
}

/// A multipart upload still open in the backend (for the reconciler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMultipart {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// When a presigned URL's validity starts and how long it lasts: signed at
/// Coffer's (database-aligned) time, so the URL expires when Coffer says it
/// does, whatever the host's clock reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningWindow {
    pub from: DateTime<Utc>,
    pub lasting: Duration,
}

/// What a presigned URL lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresignTarget {
    /// A download served as `content_type` with this `Content-Disposition`
    /// (blobs are stored without either: the backend would answer
    /// `binary/octet-stream` under the blob's random name).
    Get {
        content_type: String,
        content_disposition: String,
    },
    Put,
    /// One part of a multipart upload, exactly `content_length` bytes long
    /// (signed, so the backend refuses a body of any other length).
    UploadPart {
        upload_id: String,
        part_number: u32,
        content_length: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// `fs` or `s3`.
    fn kind(&self) -> &'static str;

    /// Cheap reachability probe used by `/health/ready`.
    async fn check(&self) -> Result<(), StorageError>;

    /// The largest body one `put` can store (an S3 backend cuts a streamed
    /// body into at most 10,000 parts of its configured part size). No
    /// default: a wrapper must pass it through.
    fn max_put_bytes(&self) -> u64;

    /// Stores `body` under `key`, atomically: on any error nothing is visible.
    /// `size` is the declared length when known; the stream is authoritative.
    async fn put(&self, key: &str, body: ByteStream, size: Option<u64>) -> Result<u64, StorageError>;

    /// Opens `key` for reading, optionally only `range`.
    async fn get(&self, key: &str, range: Option<BlobRange>) -> Result<BlobRead, StorageError>;

    async fn head(&self, key: &str) -> Result<BlobInfo, StorageError>;

    /// Removes `key`; removing an absent key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;

    /// Server-side copy where the backend can.
    async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError>;

    /// Keys under `prefix` in lexicographic order, after `start_after`, at most `limit`.
    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError>;

    async fn create_multipart(&self, key: &str) -> Result<String, StorageError>;

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size: Option<u64>,
    ) -> Result<PartInfo, StorageError>;

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartInfo>, StorageError>;

    async fn complete_multipart(&self, key: &str, upload_id: &str, parts: &[CompletedPart])
    -> Result<(), StorageError>;

    /// Aborts and removes the parts; aborting an unknown upload succeeds.
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError>;

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<OpenMultipart>, StorageError>;

    /// Prepares the backend for a new Coffer bucket whose blobs live under
    /// `bucket_prefix` (`b/{id}/`): a backend bucket of its own where configured.
    async fn ensure_container(&self, _bucket_prefix: &str) -> Result<(), StorageError> {
        Ok(())
    }

    /// Undoes [`BlobStore::ensure_container`] once the Coffer bucket is gone and empty.
    async fn remove_container(&self, _bucket_prefix: &str) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether the backend enforces S3 Object Lock on its side too.
    async fn object_lock(&self) -> bool {
        false
    }

    /// Copies an object's retention to the backend's Object Lock (no-op without one).
    async fn mirror_retention(
        &self,
        _key: &str,
        _retention: Option<crate::policy::retention::Retention>,
        _bypass: bool,
    ) -> Result<(), StorageError> {
        Ok(())
    }

    /// Copies a legal hold to the backend's Object Lock (no-op without one).
    async fn mirror_legal_hold(&self, _key: &str, _on: bool) -> Result<(), StorageError> {
        Ok(())
    }

    /// A URL the backend itself will honour; `Unsupported` on backends that cannot.
    async fn presign(
        &self,
        key: &str,
        target: PresignTarget,
        window: SigningWindow,
    ) -> Result<PresignedRequest, StorageError>;
}

/// Builds the configured backend.
pub async fn from_config(config: &Config) -> Result<Arc<dyn BlobStore>, StorageError> {
    Ok(match config.storage {
        StorageKind::Fs => Arc::new(FsBlobStore::open(config.effective_fs_root()).await?),
        StorageKind::S3 if config.s3_bucket_per_coffer_bucket => {
            Arc::new(s3_routed::RoutedS3::new(S3BlobStore::from_config(config)?))
        }
        StorageKind::S3 => Arc::new(S3BlobStore::from_config(config)?),
    })
}

/// Rejects keys no adapter may store; adapters add their own containment on top.
pub(crate) fn check_blob_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::InvalidKey("empty key".into()));
    }
    if key.len() > MAX_BLOB_KEY_BYTES {
        return Err(StorageError::InvalidKey(format!("longer than {MAX_BLOB_KEY_BYTES} bytes")));
    }
    if key.contains('\0') {
        return Err(StorageError::InvalidKey("contains NUL".into()));
    }
    Ok(())
}
