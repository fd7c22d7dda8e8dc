//! Thumbnails of objects: authorized like reads (not audited: derived data),
//! keyed by the source's content digest so an overwrite can never be served a
//! stale one, found in the in-process cache, then in Redis (shared by
//! replicas, small ones only), then in the object store under `t/`, else
//! rendered once on the bounded pool however many ask at once.

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;

use super::context::{Principal, RequestContext};
use super::objects::parse_key;
use super::{ServiceError, ServiceResult, Services};
use crate::domain::Permission;
use crate::domain::conditional::etag_matches;
use crate::media::ThumbFailure;
use crate::media::thumbnail::{self, SIZES, ThumbError, ThumbFormat};
use crate::metadata::{ObjectRecord, ObjectState};
use crate::storage::{BlobRange, StorageError};

/// A thumbnail and the validator that names it.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// `None` when the copy the client holds (`If-None-Match`) is current:
    /// a 304, for which nothing was rendered or fetched.
    pub bytes: Option<Bytes>,
    /// The `ETag`, quoted.
    pub etag: String,
    pub content_type: &'static str,
}

/// Thumbnails up to this size are shared through Redis.
const SHARED_MAX_BYTES: usize = 256 * 1024;
const SHARED_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What thumbnails of an object are keyed by: its content, never its name.
fn content_digest(object: &ObjectRecord) -> String {
    object.sha256.clone().or_else(|| object.etag.clone()).unwrap_or_else(|| object.id.to_string())
}

/// Backend key of a thumbnail: by source digest, size and format.
fn blob_key(digest: &str, size: u32, format: ThumbFormat) -> String {
    format!("t/{}", cache_key(digest, size, format))
}

/// In-process cache key of a thumbnail (or of why there is none).
fn cache_key(digest: &str, size: u32, format: ThumbFormat) -> String {
    format!("{digest}/{size}.{}", format.as_str())
}

impl From<ThumbFailure> for ServiceError {
    fn from(failure: ThumbFailure) -> Self {
        match failure {
            ThumbFailure::Unsupported(why) => ServiceError::UnsupportedMediaType(why),
            ThumbFailure::Unprocessable(why) => ServiceError::Unprocessable(why),
            ThumbFailure::Storage(why) => ServiceError::BadGateway(anyhow::anyhow!(why)),
            ThumbFailure::SourceGone => ServiceError::NotFound("object"),
            ThumbFailure::Busy => ServiceError::Busy("thumbnail renderer"),
            ThumbFailure::TimedOut => ServiceError::Unprocessable(failure.to_string()),
        }
    }
}

impl Services {
    pub async fn thumbnail(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        (size, format): (u32, ThumbFormat),
        if_none_match: Option<&str>,
    ) -> ServiceResult<Thumbnail> {
        let (bucket, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Read, "object.thumbnail").await?;
        if !SIZES.contains(&size) {
            return Err(ServiceError::bad_request("invalid-size", format!("size must be one of {SIZES:?}")));
        }
        let key = parse_key(key)?;
        let object = self.live_object_cached(bucket.id, &key).await?.ok_or(ServiceError::NotFound("object"))?;
        if object.content_type.starts_with("image/svg") {
            return Err(ServiceError::UnsupportedMediaType("SVG images are never rasterized".into()));
        }
        self.thumbnail_of(&object, (size, format), if_none_match).await
    }

    /// The thumbnail of an object the caller may already read. Its `ETag`
    /// follows from the source's digest, so a client that names it in
    /// `If-None-Match` is answered before any render (`*` still needs one:
    /// it asks whether a thumbnail exists at all).
    pub(crate) async fn thumbnail_of(
        &self,
        object: &ObjectRecord,
        (size, format): (u32, ThumbFormat),
        if_none_match: Option<&str>,
    ) -> ServiceResult<Thumbnail> {
        let tag = format!("{}-{size}-{}", content_digest(object), format.as_str());
        let current = if_none_match.is_some_and(|header| etag_matches(header, &tag, true));
        let named = current && if_none_match.is_some_and(|header| header.trim() != "*");
        let bytes = if named { None } else { Some(self.cached_thumbnail(object, size, format).await?) };
        Ok(Thumbnail {
            bytes: bytes.filter(|_| !current),
            etag: format!("\"{tag}\""),
            content_type: format.content_type(),
        })
    }

    /// The thumbnail from the cache, the store, or one render shared by every
    /// concurrent caller.
    pub(crate) async fn cached_thumbnail(
        &self,
        object: &ObjectRecord,
        size: u32,
        format: ThumbFormat,
    ) -> Result<Bytes, ThumbFailure> {
        let digest = content_digest(object);
        let cache_key = cache_key(&digest, size, format);
        let thumbs = &self.thumbnails;
        let mut missed = false;
        let result = thumbs
            .cache
            .get_with(cache_key.clone(), async {
                missed = true;
                self.stored_or_rendered(object, &digest, size, format).await
            })
            .await;
        let outcome = match (&result, missed) {
            (Err(ThumbFailure::Busy), _) => "busy",
            (_, true) => "miss",
            (_, false) => "hit",
        };
        crate::metrics::Metrics::count(&self.metrics.thumbnail_lookups, outcome);
        if let Err(ThumbFailure::Storage(_) | ThumbFailure::SourceGone | ThumbFailure::Busy) = &result {
            // Only the content's own verdicts are worth remembering.
            thumbs.cache.invalidate(&cache_key).await;
        }
        match result {
            Err(ThumbFailure::SourceGone) => self.source_gone_or_missing(object, &digest, size, format).await,
            other => other,
        }
    }

    /// After a render found no source bytes: gone with this object (deleted or
    /// overwritten meanwhile, a 404), gone with another object of the same
    /// content whose render this one shared (render this one's own), or
    /// missing under a live object (a storage fault, logged).
    async fn source_gone_or_missing(
        &self,
        object: &ObjectRecord,
        digest: &str,
        size: u32,
        format: ThumbFormat,
    ) -> Result<Bytes, ThumbFailure> {
        let still_live = match self.store.object_by_id(object.id).await {
            Ok(current) => current.is_some_and(|c| c.state == ObjectState::Committed && c.blob_key == object.blob_key),
            Err(error) => return Err(ThumbFailure::Storage(error.to_string())),
        };
        if !still_live {
            return Err(ThumbFailure::SourceGone);
        }
        match self.stored_or_rendered(object, digest, size, format).await {
            Err(ThumbFailure::SourceGone) => {
                tracing::error!(object_id = object.id, blob_key = object.blob_key, "a live object's bytes are missing");
                Err(ThumbFailure::Storage("the object's bytes are missing".into()))
            }
            other => other,
        }
    }

    /// Drops the stored thumbnails of a removed version once no object has its
    /// content. Whatever its declared type: thumbnails go by the bytes, so a PNG
    /// stored as `application/octet-stream` may have some too.
    pub(crate) async fn forget_thumbnails(&self, object: &ObjectRecord) {
        let digest = content_digest(object);
        match self.store.content_in_use(&digest).await {
            Ok(false) => {}
            Ok(true) => return,
            Err(error) => {
                tracing::warn!(error = %error, "could not check whether thumbnails are still needed");
                return;
            }
        }
        for size in SIZES {
            for format in [ThumbFormat::Webp, ThumbFormat::Jpeg] {
                self.thumbnails.cache.invalidate(&cache_key(&digest, size, format)).await;
            }
        }
        // One listing finds what was rendered (most content never is), rather than a delete per size and format.
        let stored = match self.blobs.list(&format!("t/{digest}/"), None, SIZES.len() * 2).await {
            Ok(page) => page.blobs,
            Err(error) => {
                tracing::warn!(error = %error, "could not list stored thumbnails");
                return;
            }
        };
        for thumbnail in stored {
            match self.blobs.delete(&thumbnail.key).await {
                Ok(()) | Err(StorageError::NotFound) => {}
                Err(error) => tracing::warn!(error = %error, "could not remove a stored thumbnail"),
            }
        }
    }

    async fn stored_or_rendered(
        &self,
        object: &ObjectRecord,
        digest: &str,
        size: u32,
        format: ThumbFormat,
    ) -> Result<Bytes, ThumbFailure> {
        let key = blob_key(digest, size, format);
        // Content-addressed, so a shared copy can never be stale.
        let shared = self.cache.kind() == "redis";
        let shared_key = format!("thumb:{key}");
        if shared && let Ok(Some(bytes)) = self.cache.get(&shared_key).await {
            return Ok(bytes);
        }
        let share = |bytes: &Bytes| {
            let bytes = bytes.clone();
            let shared_key = shared_key.clone();
            async move {
                if shared && bytes.len() <= SHARED_MAX_BYTES {
                    let _ = self.cache.set(&shared_key, bytes, SHARED_TTL).await;
                }
            }
        };
        match self.read_whole(&key, None, 0).await {
            Ok(stored) => {
                share(&stored).await;
                return Ok(stored);
            }
            Err(StorageError::NotFound) => {}
            Err(error) => return Err(ThumbFailure::Storage(error.to_string())),
        }
        let rendered = self.render(object, size, format).await?;
        share(&rendered).await;
        let body: crate::storage::ByteStream = Box::pin(futures::stream::iter([Ok(rendered.clone())]));
        if let Err(error) = self.blobs.put(&key, body, Some(rendered.len() as u64)).await {
            tracing::warn!(error = %error, key, "could not store a thumbnail; it will be rendered again");
        }
        Ok(rendered)
    }

    /// A small blob (a thumbnail, or a source under the size limit), or the
    /// given range of one, read into one buffer of `expected` bytes (one copy).
    async fn read_whole(&self, key: &str, range: Option<BlobRange>, expected: u64) -> Result<Bytes, StorageError> {
        let mut body = self.blobs.get(key, range).await?.body;
        let mut whole = BytesMut::with_capacity(usize::try_from(expected).unwrap_or_default());
        while let Some(chunk) = body.try_next().await.map_err(|e| StorageError::Backend(e.into()))? {
            whole.extend_from_slice(&chunk);
        }
        Ok(whole.freeze())
    }

    /// A render past its time budget, or whose request went away, runs on (it
    /// holds its slot until it ends): what it makes is stored for the next
    /// request, and a verdict on the content (corrupt, unsupported) is
    /// remembered as a timely one would be; its "took too long" is forgotten
    /// once it ends. So the same thumbnail is never rendered twice at once,
    /// nor again for each request that gives up on it.
    fn finish_in_background(&self, job: RenderJob, digest: &str, size: u32, format: ThumbFormat) {
        let (blobs, verdicts) = (self.blobs.clone(), self.thumbnails.cache.clone());
        let (key, verdict_key) = (blob_key(digest, size, format), cache_key(digest, size, format));
        let finish = async move {
            match verdict_of(job.await) {
                Ok(rendered) => {
                    let length = rendered.len() as u64;
                    let body: crate::storage::ByteStream = Box::pin(futures::stream::iter([Ok(rendered)]));
                    if let Err(error) = blobs.put(&key, body, Some(length)).await {
                        tracing::warn!(error = %error, key, "could not store a thumbnail rendered in the background");
                    }
                    verdicts.invalidate(&verdict_key).await;
                }
                Err(verdict) => verdicts.insert(verdict_key, Err(verdict)).await,
            }
        };
        // Also from `Drop`, where no runtime may be left (a server stopping): then nothing is kept.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(finish);
        }
    }

    async fn render(&self, object: &ObjectRecord, size: u32, format: ThumbFormat) -> Result<Bytes, ThumbFailure> {
        let thumbs = &self.thumbnails;
        // The slot is taken before the source is read: at most one source per
        // render slot is in memory. Waiting for one is bounded like a render
        // (a 503 with `Retry-After` then), so requests never queue unseen.
        let permit = match tokio::time::timeout(thumbs.timeout, thumbs.pool.clone().acquire_owned()).await {
            Ok(permit) => permit.map_err(|e| ThumbFailure::Storage(e.to_string()))?,
            Err(_) => return Err(ThumbFailure::Busy),
        };
        let storage = |e: StorageError| match e {
            // Deleted or overwritten since the request looked the object up.
            StorageError::NotFound => ThumbFailure::SourceGone,
            other => ThumbFailure::Storage(other.to_string()),
        };
        let size_bytes = u64::try_from(object.size).unwrap_or_default();
        // What is not an image at all is 415 whatever its size; only then does a big image get 422.
        if size_bytes > thumbnail::SIGNATURE_BYTES {
            let head = BlobRange { start: 0, end_inclusive: thumbnail::SIGNATURE_BYTES - 1 };
            let head =
                self.read_whole(&object.blob_key, Some(head), thumbnail::SIGNATURE_BYTES).await.map_err(storage)?;
            thumbnail::sniff(&head).map_err(|e| ThumbFailure::Unsupported(e.to_string()))?;
        }
        if size_bytes > thumbs.max_source_bytes {
            return Err(ThumbFailure::Unprocessable(format!(
                "images over {} bytes get no thumbnail",
                thumbs.max_source_bytes
            )));
        }
        let source = self.read_whole(&object.blob_key, None, size_bytes).await.map_err(storage)?;
        let limits = thumbs.limits;
        let started = std::time::Instant::now();
        // The permit goes with the job: a render past its time budget still holds its slot until it ends.
        let job = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            // Started by a worker that may be pinned to one CPU: renders may use them all.
            crate::cpu_pinning::release_current_thread();
            thumbnail::render(&source, size, format, &limits)
        });
        let mut unfinished =
            Unfinished { services: self, job: Some(job), digest: content_digest(object), size, format };
        let job = unfinished.job.as_mut().map(|job| tokio::time::timeout(thumbs.timeout, job));
        let outcome = match job {
            Some(waiting) => waiting.await,
            None => return Err(ThumbFailure::Storage("the render was not started".into())),
        };
        self.metrics.thumbnails_rendered.inc();
        self.metrics.thumbnail_seconds.observe(started.elapsed().as_secs_f64());
        match outcome {
            // `unfinished` hands the job on to the background when dropped.
            Err(_) => Err(ThumbFailure::TimedOut),
            Ok(result) => {
                unfinished.job = None;
                verdict_of(result)
            }
        }
    }
}

type RenderJob = tokio::task::JoinHandle<Result<Vec<u8>, ThumbError>>;

/// A render still running: dropped before its outcome was taken (past its
/// time budget, or its request gone), it finishes in the background.
struct Unfinished<'a> {
    services: &'a Services,
    job: Option<RenderJob>,
    digest: String,
    size: u32,
    format: ThumbFormat,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            self.services.finish_in_background(job, &self.digest, self.size, self.format);
        }
    }
}

/// What a finished render gives a request.
fn verdict_of(result: Result<Result<Vec<u8>, ThumbError>, tokio::task::JoinError>) -> Result<Bytes, ThumbFailure> {
    match result {
        Err(join) => Err(ThumbFailure::Unprocessable(format!("the renderer failed: {join}"))),
        Ok(Err(ThumbError::Unsupported)) => Err(ThumbFailure::Unsupported(ThumbError::Unsupported.to_string())),
        Ok(Err(other)) => Err(ThumbFailure::Unprocessable(other.to_string())),
        Ok(Ok(bytes)) => Ok(Bytes::from(bytes)),
    }
}
