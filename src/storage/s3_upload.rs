//! Streaming writes to S3: one streamed PutObject when the length is known
//! (up to `s3_single_put_max_mib`), otherwise multipart with fixed-size parts
//! and a bounded number in flight.
//!
//! Memory per upload is at most `(parts_in_flight + 1) × part_size`: the next
//! part is not read from the client until a slot frees up (backpressure).
//! Parts are copied into reused buffers (see `PartBuffers`).

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::CompletedPart as S3CompletedPart;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::StreamBody;
use sync_wrapper::SyncStream;

use super::part_buffers::PartBuffers;
use super::s3::S3BlobStore;
use super::s3_errors::{classify, classify_streamed};
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

/// Timeouts for a request whose body the client sends at its own pace: the
/// configured operation timeout plus a second per 64 KiB, per attempt and in
/// all. A client stalled altogether is cut off sooner, by the idle body
/// timeout; this bound only has to let a slow but steady one finish (a
/// second per MiB failed a 1 GiB upload at 5 Mbit/s after 22 minutes).
fn paced_by_the_client(store: &S3BlobStore, size: u64) -> aws_sdk_s3::config::Builder {
    let allowance = store.operation_timeout + std::time::Duration::from_secs(size >> 16);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(store.connect_timeout)
        .operation_timeout(allowance)
        .operation_attempt_timeout(allowance)
        .build();
    aws_sdk_s3::config::Builder::default().timeout_config(timeouts)
}

/// One PutObject with a known length: the body streams straight through, no
/// copy, no buffer. The client sets the pace, so the operation may take as
/// long as the configured timeout plus a second per 64 KiB.
async fn put_streaming(store: &S3BlobStore, full: &str, body: ByteStream, size: u64) -> Result<u64, StorageError> {
    let fault = BodyFault::default();
    store
        .client
        .put_object()
        .bucket(&store.bucket)
        .key(full)
        .content_length(to_i64(size))
        .body(streaming_body(fault.watch(body)))
        .customize()
        .disable_payload_signing()
        .config_override(paced_by_the_client(store, size))
        .send()
        .await
        .map_err(|error| fault.blame(classify_streamed(error)))?;
    Ok(size)
}

/// One part's bytes, in a pooled buffer (see `PartBuffers`).
#[derive(Clone, Default)]
struct Part {
    bytes: Bytes,
}

impl Part {
    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// An SDK body over the bytes, rebuilt (cheaply: a `Bytes` clone) for retries.
    fn body(&self) -> SdkByteStream {
        let bytes = self.bytes.clone();
        SdkByteStream::new(SdkBody::retryable(move || SdkBody::from(bytes.clone())))
    }
}

/// An SDK body over received chunks, rebuilt (cheaply: `Bytes` clones) for retries.
fn chunks_body(chunks: Vec<Bytes>) -> SdkByteStream {
    SdkByteStream::new(SdkBody::retryable(move || {
        let frames = futures::stream::iter(
            chunks.clone().into_iter().map(|chunk| Ok::<_, std::io::Error>(http_body::Frame::data(chunk))),
        );
        SdkBody::from_body_1_x(StreamBody::new(SyncStream::new(frames)))
    }))
}

/// Reads up to a buffer's capacity; returns a full part or, at the end, the rest.
/// Bytes past the part boundary wait in `carry` for the next part.
async fn next_part(
    body: &mut ByteStream,
    carry: &mut Option<Bytes>,
    buffers: &Arc<PartBuffers>,
) -> Result<Option<Part>, StorageError> {
    let mut buffer = buffers.take();
    while buffer.room() > 0 {
        let mut chunk = match carry.take() {
            Some(chunk) => chunk,
            None => match body.next().await {
                Some(chunk) => chunk.map_err(StorageError::Client)?,
                None => break,
            },
        };
        if chunk.len() > buffer.room() {
            *carry = Some(chunk.split_off(buffer.room()));
        }
        buffer.extend(&chunk);
    }
    Ok((!buffer.is_empty()).then(|| Part { bytes: buffer.freeze() }))
}

async fn put_in_parts(store: &S3BlobStore, full: &str, body: ByteStream) -> Result<u64, StorageError> {
    // `next_part` polls again after the end of the body; fusing makes that well-defined.
    let mut body: ByteStream = Box::pin(body.fuse());
    let mut carry = None;
    let first = next_part(&mut body, &mut carry, &store.part_buffers).await?.unwrap_or_default();
    if first.len() < store.part_buffers.capacity() {
        let size = first.len() as u64;
        store
            .client
            .put_object()
            .bucket(&store.bucket)
            .key(full)
            .content_length(to_i64(size))
            .body(first.body())
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(classify)?;
        return Ok(size);
    }
    let upload_id = store.create_multipart_full(full).await?;
    let result = upload_parts(store, full, &upload_id, first, &mut body, &mut carry).await;
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
    first: Part,
    body: &mut ByteStream,
    carry: &mut Option<Bytes>,
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
            None => match next_part(body, carry, &store.part_buffers).await? {
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
    part: Part,
) -> Result<S3CompletedPart, StorageError> {
    let out = client
        .upload_part()
        .bucket(bucket)
        .key(full)
        .upload_id(upload_id)
        .part_number(part_number)
        .content_length(to_i64(part.len() as u64))
        .body(part.body())
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
    let streamed = size.is_some();
    let (sdk_body, length) = match size {
        Some(size) => (streaming_body(fault.watch(body)), size),
        None => {
            // Bounded by the part size the service enforces; kept as the chunks it arrived in.
            let chunks: Vec<Bytes> = body.map_err(StorageError::Client).try_collect().await?;
            let length = chunks.iter().map(|chunk| chunk.len() as u64).sum();
            (chunks_body(chunks), length)
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
        .config_override(paced_by_the_client(store, length))
        .send()
        .await
        .map_err(|error| fault.blame(if streamed { classify_streamed(error) } else { classify(error) }))?;
    Ok(PartInfo { part_number, etag: out.e_tag().unwrap_or_default().to_owned(), size: length })
}

#[cfg(test)]
mod part_tests {
    use super::*;

    #[tokio::test]
    async fn parts_are_cut_at_exact_boundaries_from_any_chunking() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for chunk_size in [1, 7, 64, 333, 1000] {
            let chunks: Vec<Result<Bytes, std::io::Error>> =
                data.chunks(chunk_size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            let mut body: ByteStream = Box::pin(futures::stream::iter(chunks).fuse());
            let mut carry = None;
            let buffers = PartBuffers::new(300, 2);
            let (mut lengths, mut joined) = (Vec::new(), Vec::new());
            while let Some(part) = next_part(&mut body, &mut carry, &buffers).await.expect("part") {
                lengths.push(part.len());
                joined.extend_from_slice(&part.bytes);
            }
            assert_eq!(buffers.idle(), 1, "each part's buffer went back once its bytes were dropped");
            assert_eq!(lengths, [300, 300, 300, 100], "chunks of {chunk_size}");
            assert_eq!(joined, data);
        }
    }
}
