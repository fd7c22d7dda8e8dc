//! Media derived from objects: thumbnails (rendering, plus the shared state
//! that bounds and de-duplicates the work).

mod jpeg;
mod reduce;
pub mod thumbnail;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::config::Config;
use thumbnail::ImageLimits;

/// Why a thumbnail could not be had, cheap to clone between the requests
/// that waited on the same render.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ThumbFailure {
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the storage backend failed: {0}")]
    Storage(String),
    /// The source's bytes were removed (its object deleted or overwritten)
    /// before they could be read.
    #[error("the image was removed while its thumbnail was being made")]
    SourceGone,
    /// Every render slot stayed taken for as long as a render may take.
    #[error("every thumbnail renderer is busy")]
    Busy,
    /// The render took longer than `thumbnail_timeout` (422). Perhaps only
    /// because the machine was busy: remembered for `TIMED_OUT_FOR` only.
    #[error("the image took too long to render")]
    TimedOut,
}

/// How long a render that timed out is not tried again.
pub const TIMED_OUT_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Verdicts are kept for the cache's hour, but a timeout for `TIMED_OUT_FOR`.
struct VerdictExpiry;

impl moka::Expiry<String, Result<Bytes, ThumbFailure>> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        value: &Result<Bytes, ThumbFailure>,
        _: std::time::Instant,
    ) -> Option<std::time::Duration> {
        matches!(value, Err(ThumbFailure::TimedOut)).then_some(TIMED_OUT_FOR)
    }
}

/// In-process cache (which also makes concurrent requests for one missing
/// thumbnail wait on a single render), the bounded render pool, limits.
pub struct Thumbnails {
    pub cache: moka::future::Cache<String, Result<Bytes, ThumbFailure>>,
    pub pool: Arc<Semaphore>,
    pub limits: ImageLimits,
    pub max_source_bytes: u64,
    pub timeout: std::time::Duration,
}

impl Thumbnails {
    pub fn new(config: &Config) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(config.thumbnail_cache_mib * 1024 * 1024)
            .weigher(|key: &String, value: &Result<Bytes, ThumbFailure>| {
                let size = key.len() + value.as_ref().map_or(64, Bytes::len);
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .time_to_live(std::time::Duration::from_secs(3600))
            .expire_after(VerdictExpiry)
            .build();
        Self {
            cache,
            pool: Arc::new(Semaphore::new(config.effective_thumbnail_workers())),
            limits: ImageLimits::from_config(config),
            max_source_bytes: config.thumbnail_max_source_mib * 1024 * 1024,
            timeout: config.thumbnail_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moka::Expiry;

    #[test]
    fn a_timeout_is_remembered_for_a_minute_and_other_verdicts_for_the_hour() {
        let key = "digest/256.webp".to_owned();
        let now = std::time::Instant::now();
        let expiry = |value| VerdictExpiry.expire_after_create(&key, &value, now);
        assert_eq!(expiry(Err(ThumbFailure::TimedOut)), Some(TIMED_OUT_FOR));
        assert_eq!(expiry(Err(ThumbFailure::Unprocessable("corrupt".into()))), None, "the hour's time to live");
        assert_eq!(expiry(Ok(Bytes::from_static(b"webp"))), None);
    }
}
