//! In-process cache on moka: bounded by entry count, per-entry TTL.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache as Moka;

use super::{Cache, CacheError, FastHasher};
use crate::policy::rate::{Quota, RateDecision};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

pub struct MemoryCache {
    entries: Moka<String, Entry, FastHasher>,
    rates: super::LocalRates,
}

impl MemoryCache {
    pub fn new(max_entries: u64) -> Self {
        Self {
            entries: Moka::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build_with_hasher(FastHasher::default()),
            rates: super::LocalRates::default(),
        }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.entries.get(key).await.map(|entry| entry.value))
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.entries.insert(key.to_owned(), Entry { value, ttl }).await;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<Bytes, CacheError> {
        let entry = self.entries.entry(key.to_owned()).or_insert_with(async { Entry { value, ttl } }).await;
        Ok(entry.into_value().value)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.invalidate(key).await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }

    async fn admit(&self, key: &str, quota: Quota) -> Result<RateDecision, CacheError> {
        Ok(self.rates.admit(key, quota))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_and_forgets() {
        let cache = MemoryCache::new(10);
        cache.set("k", Bytes::from_static(b"v"), Duration::from_secs(60)).await.expect("set");
        assert_eq!(cache.get("k").await.expect("get"), Some(Bytes::from_static(b"v")));
        cache.delete("k").await.expect("delete");
        assert_eq!(cache.get("k").await.expect("get"), None);
    }
}
