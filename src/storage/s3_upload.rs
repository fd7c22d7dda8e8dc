//! Streaming writes to S3: one streamed PutObject when the length is known
//! (up to `s3_single_put_max_mib`), otherwise multipart with fixed-size parts
//! and a bounded number in flight.
//!
//! Memory per upload is at most `(parts_in_flight + 1) × part_size`: the next
//! part is not read from the client until a slot frees up (backpressure).

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::CompletedPart as S3CompletedPart;
use aws_smithy_types::body::SdkBody;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use http_body_util::StreamBody;
use sync_wrapper::SyncStream;

use super::s3::S3BlobStore;
use super::s3_errors::classify;
use super::{ByteStream, PartInfo, StorageError};

/// Remembers the first error the client's body produced, so a failed request
/// can be blamed on the client (400) rather than the backend (502).
#[derive(Clone, Default)]
struct BodyFault(Arc<Mutex<Option<String>>>);

impl BodyFault {
    fn watch(&self, body: ByteStream) -> ByteStream {
        let fault = self.clone();
        Box::pin(body.inspect_err(move |error| {
            if let Ok(mut slot) = fault.0.lock() {
                slot.get_or_insert_with(|| error.to_string());
            }
        }))
    }

    fn blame(&self, backend_error: StorageError) -> StorageError {
        match self.0.lock().ok().and_then(|slot| slot.clone()) {
            Some(message) => StorageError::Client(std::io::Error::other(message)),
            None => backend_error,
        }
    }
}

/// An SDK body that streams `body` without buffering it.
fn streaming_body(body: ByteStream) -> SdkByteStream {
    let frames = SyncStream::new(body.map_ok(http_body::Frame::data));
    SdkByteStream::new(SdkBody::from_body_1_x(StreamBody::new(frames)))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) async fn put(
    store: &S3BlobStore,
    full: &str,
    body: ByteStream,
    size: Option<u64>,
) -> Result<u64, StorageError> {
    if let Some(size) = size
        && size <= store.single_put_max
    {
        return put_streaming(store, full, body, size).await;
    }
    put_in_parts(store, full, body).await
}

/// One PutObject with a known length: the body streams straight through, no
/// copy, no buffer. The client sets the pace, so the operation may take as
/// long as the configured timeout plus a second per MiB.
async fn put_streaming(store: &S3BlobStore, full: &str, body: ByteStream, size: u64) -> Result<u64, StorageError> {
    let fault = BodyFault::default();
    let allowance = store.operation_timeout + std::time::Duration::from_secs(size >> 20);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(store.connect_timeout)
        .operation_timeout(allowance)
        .operation_attempt_timeout(allowance)
        .build();
    store
        .client
        .put_object()
        .bucket(&store.bucket)
        .key(full)
        .content_length(to_i64(size))
        .body(streaming_body(fault.watch(body)))
        .customize()
        .disable_payload_signing()
        .config_override(aws_sdk_s3::config::Builder::default().timeout_config(timeouts))
        .send()
        .await
        .map_err(|error| fault.blame(classify(error)))?;
    Ok(size)
}

/// Reads up to `part_size` bytes into `buffer`; returns a full part or, at the end, the rest.
async fn next_part(
    body: &mut ByteStream,
    buffer: &mut BytesMut,
    part_size: usize,
) -> Result<Option<Bytes>, StorageError> {
    // One exact allocation per part, not a doubling series of them.
    buffer.reserve(part_size.saturating_sub(buffer.len()));
    while buffer.len() < part_size {
        match body.next().await {
            Some(chunk) => buffer.extend_from_slice(&chunk.map_err(StorageError::Client)?),
            None if buffer.is_empty() => return Ok(None),
            None => return Ok(Some(buffer.split().freeze())),
        }
    }
    Ok(Some(buffer.split_to(part_size).freeze()))
}

async fn put_in_parts(store: &S3BlobStore, full: &str, body: ByteStream) -> Result<u64, StorageError> {
    // `next_part` polls again after the end of the body; fusing makes that well-defined.
    let mut body: ByteStream = Box::pin(body.fuse());
    let part_size = store.part_size;
    let mut buffer = BytesMut::with_capacity(part_size);
    let first = next_part(&mut body, &mut buffer, part_size).await?.unwrap_or_default();
    if first.len() < part_size {
        let size = first.len() as u64;
        store
            .client
            .put_object()
            .bucket(&store.bucket)
            .key(full)
            .body(SdkByteStream::from(first))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(classify)?;
        return Ok(size);
    }
    let upload_id = store.create_multipart_full(full).await?;
    let result = upload_parts(store, full, &upload_id, first, &mut body, &mut buffer).await;
    match result {
        Ok((parts, size)) => match store.complete_full(full, &upload_id, parts).await {
            Ok(()) => Ok(size),
            Err(error) => {
                let _ = store.abort_full(full, &upload_id).await;
                Err(error)
            }
        },
        Err(error) => {
            let _ = store.abort_full(full, &upload_id).await;
            Err(error)
        }
    }
}

async fn upload_parts(
    store: &S3BlobStore,
    full: &str,
    upload_id: &str,
    first: Bytes,
    body: &mut ByteStream,
    buffer: &mut BytesMut,
) -> Result<(Vec<S3CompletedPart>, u64), StorageError> {
    // Parts upload on their own tasks so they progress while the next part is
    // read; dropping the set on error aborts whatever is still running.
    let mut in_flight = tokio::task::JoinSet::new();
    let mut completed = Vec::new();
    let mut total = 0u64;
    let mut part_number: i32 = 1;
    let mut pending = Some(first);
    loop {
        if in_flight.len() >= store.parts_in_flight
            && let Some(done) = in_flight.join_next().await
        {
            completed.push(joined(done)?);
        }
        let part = match pending.take() {
            Some(part) => part,
            None => match next_part(body, buffer, store.part_size).await? {
                Some(part) => part,
                None => break,
            },
        };
        total += part.len() as u64;
        in_flight.spawn(send_part(
            store.client.clone(),
            store.bucket.clone(),
            full.to_owned(),
            upload_id.to_owned(),
            part_number,
            part,
        ));
        part_number += 1;
    }
    while let Some(done) = in_flight.join_next().await {
        completed.push(joined(done)?);
    }
    completed.sort_by_key(|part| part.part_number());
    Ok((completed, total))
}

fn joined<T>(result: Result<Result<T, StorageError>, tokio::task::JoinError>) -> Result<T, StorageError> {
    result.map_err(|error| StorageError::Backend(error.into()))?
}

async fn send_part(
    client: aws_sdk_s3::Client,
    bucket: String,
    full: String,
    upload_id: String,
    part_number: i32,
    part: Bytes,
) -> Result<S3CompletedPart, StorageError> {
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(full)
        .upload_id(upload_id)
        .part_number(part_number)
        .content_length(to_i64(part.len() as u64))
        .body(SdkByteStream::from(part))
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(classify)?;
    Ok(S3CompletedPart::builder().part_number(part_number).set_e_tag(out.e_tag().map(str::to_owned)).build())
}

/// One part of a client-driven multipart upload, streamed when its length is known.
pub(super) async fn upload_part(
    store: &S3BlobStore,
    full: &str,
    upload_id: &str,
    part_number: u32,
    body: ByteStream,
    size: Option<u64>,
) -> Result<PartInfo, StorageError> {
    let number = i32::try_from(part_number).map_err(|_| StorageError::InvalidRange)?;
    let fault = BodyFault::default();
    let (sdk_body, length) = match size {
        Some(size) => (streaming_body(fault.watch(body)), size),
        None => {
            let bytes: BytesMut = body
                .map_err(StorageError::Client)
                .try_fold(BytesMut::new(), |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                })
                .await?;
            let length = bytes.len() as u64;
            (SdkByteStream::from(bytes.freeze()), length)
        }
    };
    let out = store
        .client
        .upload_part()
        .bucket(&store.bucket)
        .key(full)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(to_i64(length))
        .body(sdk_body)
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(|error| fault.blame(classify(error)))?;
    Ok(PartInfo { part_number, etag: out.e_tag().unwrap_or_default().to_owned(), size: length })
}
