//! The `Cache` port: namespaced byte values with TTLs, in process (quick_cache) or in Redis.

mod coherent;
pub mod instrumented;
mod memory;
mod near;
mod rates;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use secrecy::ExposeSecret;

pub use memory::MemoryCache;
pub use rates::LocalRates;
pub use redis::RedisCache;

/// The hasher of Coffer's in-process caches: seeded per process, so a client
/// that names buckets and keys cannot aim collisions, and several times
/// cheaper than SipHash, which was a tenth of a warm read's instructions.
pub type FastHasher = foldhash::fast::RandomState;

use crate::config::Config;
use crate::policy::rate::{Quota, RateDecision};

/// Values read from local copies, in the order of their keys (a request
/// reads at most four scope versions, kept on the stack).
pub type Copies = smallvec::SmallVec<[Bytes; 4]>;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Cache: Send + Sync {
    /// `memory` or `redis`.
    fn kind(&self) -> &'static str;
    /// Whether the cache lives in this process alone (no other replica sees it).
    fn is_local(&self) -> bool {
        false
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError>;
    /// Reads several keys at once (one round trip on a shared adapter), in order.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    /// Reads a value that never changes once stored under its key (an entry
    /// under a cache version): a shared adapter may answer from a local copy.
    async fn get_immutable(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.get(key).await
    }
    /// Stores a value for `get_immutable`.
    async fn set_immutable(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.set(key, value, ttl).await
    }
    /// Reads keys written only by `set_coherent` (scope versions), in order.
    /// A shared adapter may answer from copies in this process, kept only
    /// while every writer waits for them to go (see `coherent`).
    async fn get_coherent(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.get_many(keys).await
    }
    /// What `get_coherent` would answer for `keys` from this process's copies
    /// alone, when it holds a copy of every one: no round trip, nothing to
    /// await. `None` sends the caller to `get_coherent`.
    fn coherent_copies(&self, _keys: &[&str]) -> Option<Copies> {
        None
    }
    /// While `coherent_copies` may answer, a number that stays the same
    /// only as long as no copy it could answer from has been removed or
    /// changed: a value it gave after this returned `n` may be reused while
    /// this still returns `n` (read it before the copies). `None` otherwise.
    fn coherent_epoch(&self) -> Option<u64> {
        None
    }
    /// Stores a key read by `get_coherent`; returns once no replica can
    /// answer the value it replaces.
    async fn set_coherent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.set(key, value, ttl).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError>;
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
    /// Stores `value` unless the key holds one; returns what the key holds afterwards.
    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<Bytes, CacheError>;
    async fn ping(&self) -> Result<(), CacheError>;
    /// Gives up what this process holds in a shared cache (a lease other
    /// replicas' writes would wait on) before it exits.
    async fn release(&self) {}
    /// Whether calls are being short-circuited after a recent failure.
    fn breaker_open(&self) -> bool {
        false
    }
    /// Whether `get_coherent` may answer from copies in this process now (a
    /// shared adapter holding its lease).
    fn copies_leased(&self) -> bool {
        false
    }
    /// Counts one request of `key` against `quota`, atomically across every
    /// replica that shares this cache (GCRA, see `policy::rate`).
    async fn admit(&self, key: &str, quota: Quota) -> Result<RateDecision, CacheError>;
}

/// Redis when `redis_url` is set, else the in-process cache.
pub async fn from_config(config: &Config) -> Result<Arc<dyn Cache>, CacheError> {
    Ok(match &config.redis_url {
        Some(url) => {
            Arc::new(RedisCache::connect(url.expose_secret(), &config.cache_namespace, config.cache_required).await?)
        }
        None => Arc::new(MemoryCache::new(config.cache_max_entries, config.cache_max_mib.saturating_mul(1 << 20))),
    })
}
