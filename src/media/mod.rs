//! Media derived from objects: thumbnails (rendering, plus the shared state
//! that bounds and de-duplicates the work).

pub mod thumbnail;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct ThumbStats {
    pub renders: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub render_micros: AtomicU64,
}

impl ThumbStats {
    pub fn renders(&self) -> u64 {
        self.renders.load(Ordering::Relaxed)
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
    pub stats: ThumbStats,
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
            limits: ImageLimits {
                max_pixels: config.thumbnail_max_pixels,
                max_side: config.thumbnail_max_side,
                // Decoded RGBA at the pixel limit, plus room for the decoder's own buffers.
                max_alloc: config.thumbnail_max_pixels * 4 + (64 << 20),
            },
            max_source_bytes: config.thumbnail_max_source_mib * 1024 * 1024,
            timeout: config.thumbnail_timeout,
            stats: ThumbStats::default(),
        }
    }
}
