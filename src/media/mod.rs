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
