//! S3 adapter on aws-sdk-s3: any S3-compatible backend (AWS, MinIO, Garage, Ceph RGW).

use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation, StalledStreamProtectionConfig,
    retry::RetryConfig,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::complete_multipart_upload::{CompleteMultipartUploadError, CompleteMultipartUploadOutput};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart as S3CompletedPart};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::ExposeSecret;

use super::s3_errors::{classify, classify_client_completion};
use super::s3_upload;
use super::{
    BlobInfo, BlobRange, BlobRead, BlobStore, ByteStream, CompletedPart, ListPage, ListedBlob, OpenMultipart, PartInfo,
    PresignTarget, PresignedRequest, SigningWindow, StorageError, check_blob_key,
};
use crate::config::Config;

/// S3 limits: a single CopyObject handles up to 5 GiB.
const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;
const COPY_PART: u64 = 512 * 1024 * 1024;
/// Characters left alone in a `x-amz-copy-source` key: unreserved plus `/`.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

#[derive(Clone)]
pub struct S3BlobStore {
    pub(super) client: Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
    pub(super) parts_in_flight: usize,
    /// One upload's worth of part buffers is kept for the next parts.
    pub(super) part_buffers: std::sync::Arc<super::part_buffers::PartBuffers>,
    /// Known-length bodies up to this size go up as one streamed PutObject.
    pub(super) single_put_max: u64,
    pub(super) connect_timeout: Duration,
    pub(super) operation_timeout: Duration,
    /// What backend buckets answered about Object Lock (shared with the
    /// stores of other backend buckets made by `for_bucket`).
    pub(super) lock_answers: std::sync::Arc<super::s3_lock::LockAnswers>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn to_utc(time: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    time.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())).unwrap_or_else(Utc::now)
}

fn size_of(value: Option<i64>) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

/// The SDK's stalled-stream protection, off for uploads: an upload's body
/// comes from Coffer's client, so a pause is either that client's (ended by
/// `client_body_timeout`, as a client error) or the backend's backpressure
/// (Garage holding a lock for a few seconds), which the protection took for a
/// stall and turned into a 503. Downloads keep it: a stalled backend read is
/// the backend's fault. Timeouts still bound every operation.
fn uploads_paced_by_the_client() -> StalledStreamProtectionConfig {
    StalledStreamProtectionConfig::enabled().upload_enabled(false).build()
}

impl S3BlobStore {
    /// Builds a client with explicit connect, attempt and operation timeouts
    /// (the SDK sets none) and checksums only where S3 requires them.
    pub fn from_config(config: &Config) -> Result<Self, StorageError> {
        let missing = |key: &str| StorageError::Unavailable(anyhow::anyhow!("{key} is not configured"));
        let bucket = config.s3_bucket.clone().ok_or_else(|| missing("s3_bucket"))?;
        let access_key = config.s3_access_key_id.clone().ok_or_else(|| missing("s3_access_key_id"))?;
        let secret = config
            .s3_secret_access_key
            .as_ref()
            .ok_or_else(|| missing("s3_secret_access_key"))?
            .expose_secret()
            .to_owned();
        // Plain-HTTP endpoints (Garage, MinIO on a private network) get sockets
        // that acknowledge at once; see `s3_http`.
        let plain_http = config.s3_endpoint.as_deref().is_some_and(|url| url.starts_with("http://"));
        let http_client = if plain_http {
            SharedHttpClient::new(super::s3_http::QuickAckHttpClient::new(config.s3_connect_timeout))
        } else {
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
                .build_https()
        };
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.s3_connect_timeout)
            .operation_attempt_timeout(config.s3_attempt_timeout)
            .operation_timeout(config.s3_operation_timeout)
            .build();
        let mut builder = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()))
            .credentials_provider(Credentials::new(access_key, secret, None, None, "coffer-config"))
            .http_client(http_client)
            .timeout_config(timeouts)
            .stalled_stream_protection(uploads_paced_by_the_client())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .force_path_style(config.s3_force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let part_size = usize::try_from(config.s3_part_size_mib * 1024 * 1024)
            .map_err(|_| StorageError::Unavailable(anyhow::anyhow!("s3_part_size_mib too large")))?;
        Ok(Self {
            client: Client::from_conf(builder.build()),
            bucket,
            prefix: config.s3_prefix.clone(),
            parts_in_flight: config.s3_parts_in_flight,
            part_buffers: super::part_buffers::PartBuffers::new(part_size, config.s3_parts_in_flight + 1),
            single_put_max: config.s3_single_put_max_mib * 1024 * 1024,
            connect_timeout: config.s3_connect_timeout,
            operation_timeout: config.s3_operation_timeout,
            lock_answers: std::sync::Arc::default(),
        })
    }

    /// Server-side copy of `from` in `source_bucket` (same prefix) to `to` here.
    pub(super) async fn copy_from_bucket(&self, source_bucket: &str, from: &str, to: &str) -> Result<(), StorageError> {
        let source_full = self.full_key(from)?;
        let target = self.full_key(to)?;
        let source = format!("{source_bucket}/{}", utf8_percent_encode(&source_full, COPY_SOURCE));
        let size = self.for_bucket(source_bucket.to_owned()).head(from).await?.size;

        if size > MAX_SINGLE_COPY {
            return self.multipart_copy(&source, &target, size).await;
        }
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(&target)
            .copy_source(source)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub(super) fn full_key(&self, key: &str) -> Result<String, StorageError> {
        check_blob_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn strip_prefix(&self, full: &str) -> Option<String> {
        full.strip_prefix(&self.prefix).map(str::to_owned)
    }

    async fn multipart_copy(&self, source: &str, target: &str, size: u64) -> Result<(), StorageError> {
        let upload_id = self.create_multipart_full(target).await?;
        let result = async {
            let mut parts = Vec::new();
            let mut start = 0u64;
            let mut part_number = 1;
            while start < size {
                let end = (start + COPY_PART).min(size) - 1;
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(target)
                    .upload_id(&upload_id)
                    .part_number(part_number)
                    .copy_source(source)
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .send()
                    .await
                    .map_err(classify)?;
                let etag = out.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default();
                parts.push(S3CompletedPart::builder().part_number(part_number).e_tag(etag).build());
                start = end + 1;
                part_number += 1;
            }
            self.complete_full(target, &upload_id, parts).await
        }
        .await;
        if result.is_err() {
            let _ = self.abort_full(target, &upload_id).await;
        }
        result
    }

    pub(super) async fn create_multipart_full(&self, full: &str) -> Result<String, StorageError> {
        let out =
            self.client.create_multipart_upload().bucket(&self.bucket).key(full).send().await.map_err(classify)?;
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StorageError::Backend(anyhow::anyhow!("backend returned no upload id")))
    }

    /// Completes an upload of parts Coffer sent itself: S3 refusing one is a backend fault.
    pub(super) async fn complete_full(
        &self,
        full: &str,
        upload_id: &str,
        parts: Vec<S3CompletedPart>,
    ) -> Result<(), StorageError> {
        self.send_completion(full, upload_id, parts).await.map(drop).map_err(classify)
    }

    async fn send_completion(
        &self,
        full: &str,
        upload_id: &str,
        parts: Vec<S3CompletedPart>,
    ) -> Result<CompleteMultipartUploadOutput, SdkError<CompleteMultipartUploadError, HttpResponse>> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
    }

    pub(super) async fn abort_full(&self, full: &str, upload_id: &str) -> Result<(), StorageError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn kind(&self) -> &'static str {
        "s3"
    }

    fn max_put_bytes(&self) -> u64 {
        self.part_buffers.capacity() as u64 * 10_000
    }

    async fn check(&self) -> Result<(), StorageError> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(|error| match classify(error) {
            StorageError::NotFound => {
                StorageError::Unavailable(anyhow::anyhow!("bucket {:?} does not exist", self.bucket))
            }
            StorageError::Backend(source) => StorageError::Unavailable(source),
            other => other,
        })?;
        Ok(())
    }

    async fn put(&self, key: &str, body: ByteStream, size: Option<u64>) -> Result<u64, StorageError> {
        let full = self.full_key(key)?;
        s3_upload::put(self, &full, body, size).await
    }

    async fn get(&self, key: &str, range: Option<BlobRange>) -> Result<BlobRead, StorageError> {
        let full = self.full_key(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .set_range(range.map(|r| format!("bytes={}-{}", r.start, r.end_inclusive)))
            .send()
            .await
            .map_err(classify)?;
        let content_length = size_of(out.content_length());
        let total_size = out
            .content_range()
            .and_then(|value| value.rsplit_once('/'))
            .and_then(|(_, total)| total.parse().ok())
            .unwrap_or(content_length);
        if let Some(range) = range
            && range.len() != content_length
        {
            return Err(StorageError::InvalidRange);
        }
        let body = futures::stream::unfold(out.body, |mut body| async move {
            body.next().await.map(|chunk| (chunk.map_err(std::io::Error::other), body))
        });
        Ok(BlobRead { body: Box::pin(body), total_size, content_length })
    }

    async fn head(&self, key: &str) -> Result<BlobInfo, StorageError> {
        let full = self.full_key(key)?;
        let out = self.client.head_object().bucket(&self.bucket).key(&full).send().await.map_err(classify)?;
        Ok(BlobInfo { size: size_of(out.content_length()), last_modified: to_utc(out.last_modified()) })
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let full = self.full_key(key)?;
        match self.client.delete_object().bucket(&self.bucket).key(&full).send().await.map_err(classify) {
            Ok(_) | Err(StorageError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<(), StorageError> {
        self.copy_from_bucket(&self.bucket.clone(), from, to).await
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{prefix}", self.prefix))
            .max_keys(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000));
        if let Some(after) = start_after {
            request = request.start_after(format!("{}{after}", self.prefix));
        }
        let out = request.send().await.map_err(classify)?;
        let blobs: Vec<ListedBlob> = out
            .contents()
            .iter()
            .filter_map(|object| {
                Some(ListedBlob {
                    key: self.strip_prefix(object.key()?)?,
                    size: size_of(object.size()),
                    last_modified: to_utc(object.last_modified()),
                })
            })
            .collect();
        let more = out.is_truncated().unwrap_or(false);
        Ok(ListPage { next_start_after: more.then(|| blobs.last().map(|b| b.key.clone())).flatten(), blobs })
    }

    async fn create_multipart(&self, key: &str) -> Result<String, StorageError> {
        let full = self.full_key(key)?;
        self.create_multipart_full(&full).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
        size: Option<u64>,
    ) -> Result<PartInfo, StorageError> {
        let full = self.full_key(key)?;
        s3_upload::upload_part(self, &full, upload_id, part_number, body, size).await
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartInfo>, StorageError> {
        let full = self.full_key(key)?;
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(classify)?;
            parts.extend(out.parts().iter().filter_map(|part| {
                Some(PartInfo {
                    part_number: u32::try_from(part.part_number()?).ok()?,
                    etag: part.e_tag()?.to_owned(),
                    size: size_of(part.size()),
                })
            }));
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) => marker = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(parts)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<(), StorageError> {
        let full = self.full_key(key)?;
        let parts = parts
            .iter()
            .map(|part| {
                S3CompletedPart::builder()
                    .part_number(i32::try_from(part.part_number).unwrap_or(i32::MAX))
                    .e_tag(&part.etag)
                    .build()
            })
            .collect();
        // The client sent these parts: one it replaced meanwhile is its race to retry, not a backend fault.
        self.send_completion(&full, upload_id, parts).await.map(drop).map_err(classify_client_completion)
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        let full = self.full_key(key)?;
        self.abort_full(&full, upload_id).await
    }

    async fn list_multipart_uploads(&self, prefix: &str) -> Result<Vec<OpenMultipart>, StorageError> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(format!("{}{prefix}", self.prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(classify)?;
            uploads.extend(out.uploads().iter().filter_map(|upload| {
                Some(OpenMultipart {
                    key: self.strip_prefix(upload.key()?)?,
                    upload_id: upload.upload_id()?.to_owned(),
                    initiated: to_utc(upload.initiated()),
                })
            }));
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(uploads)
    }

    async fn object_lock(&self) -> bool {
        // `false` when the backend cannot say now (it is asked again next time).
        self.object_lock_answer().await.unwrap_or(false)
    }

    async fn mirror_retention(
        &self,
        key: &str,
        retention: Option<crate::policy::retention::Retention>,
        bypass: bool,
    ) -> Result<(), StorageError> {
        if !self.object_lock_answer().await? {
            return Ok(());
        }
        self.put_retention(&self.full_key(key)?, retention, bypass).await
    }

    async fn mirror_legal_hold(&self, key: &str, on: bool) -> Result<(), StorageError> {
        if !self.object_lock_answer().await? {
            return Ok(());
        }
        self.put_legal_hold(&self.full_key(key)?, on).await
    }

    async fn presign(
        &self,
        key: &str,
        target: PresignTarget,
        window: SigningWindow,
    ) -> Result<PresignedRequest, StorageError> {
        let full = self.full_key(key)?;
        let config = PresigningConfig::builder()
            .start_time(std::time::SystemTime::from(window.from))
            .expires_in(window.lasting)
            .build()
            .map_err(|error| StorageError::Backend(error.into()))?;
        let presigned = match target {
            PresignTarget::Get { content_type, content_disposition } => {
                let request = self
                    .client
                    .get_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .response_content_type(content_type)
                    .response_content_disposition(content_disposition);
                request.presigned(config).await.map_err(classify)?
            }
            PresignTarget::Put => {
                let request = self.client.put_object().bucket(&self.bucket).key(&full);
                request.presigned(config).await.map_err(classify)?
            }
            PresignTarget::UploadPart { upload_id, part_number, content_length } => self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(upload_id)
                .part_number(i32::try_from(part_number).unwrap_or(i32::MAX))
                .content_length(i64::try_from(content_length).unwrap_or(i64::MAX))
                .presigned(config)
                .await
                .map_err(classify)?,
        };
        Ok(PresignedRequest {
            url: presigned.uri().to_owned(),
            method: presigned.method().to_owned(),
            headers: presigned.headers().map(|(name, value)| (name.to_owned(), value.to_owned())).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_not_cut_off_by_the_sdk_stall_check_but_downloads_are() {
        let config = Config {
            s3_bucket: Some("b".into()),
            s3_access_key_id: Some("key".into()),
            s3_secret_access_key: Some(secrecy::SecretString::from("secret")),
            s3_endpoint: Some("http://127.0.0.1:9".into()),
            ..Config::default()
        };
        let store = S3BlobStore::from_config(&config).expect("store");
        let protection = store.client.config().stalled_stream_protection().expect("configured");
        assert!(!protection.upload_enabled());
        assert!(protection.download_enabled());
    }
}
