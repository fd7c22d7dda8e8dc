//! In-process cache: bounded by entry count and by bytes, per-entry TTL.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{Cache, CacheError};
use crate::policy::rate::{Quota, RateDecision};

#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires_at: Instant,
}

impl Entry {
    fn new(value: Bytes, ttl: Duration) -> Self {
        let now = Instant::now();
        Self { value, expires_at: now.checked_add(ttl).unwrap_or(now + Duration::from_secs(365 * 24 * 3600)) }
    }

    fn live(self) -> Option<Bytes> {
        (self.expires_at > Instant::now()).then_some(self.value)
    }
}

/// Bounded by entry count and by bytes (S3-FIFO eviction); an expired
/// entry reads as absent and is replaced by the next write. On quick_cache
/// rather than moka: every request reads a few versions here, and a moka
/// read with per-entry expiry cost three times as much.
pub struct MemoryCache {
    entries: quick_cache::sync::Cache<String, Entry, EntryWeight>,
    rates: super::LocalRates,
}

/// What an entry holds besides its key's and value's bytes (the entry, the
/// key's header, its slot), so that tiny entries are not counted as free.
const ENTRY_OVERHEAD: u64 = 64;

/// An entry's bytes, but never less than the budget's share of one entry,
/// so the byte budget bounds the entry count too: small entries (versions)
/// are bounded by count, large ones (listing pages) by bytes.
#[derive(Clone)]
struct EntryWeight {
    floor: u64,
}

impl quick_cache::Weighter<String, Entry> for EntryWeight {
    fn weight(&self, key: &String, entry: &Entry) -> u64 {
        (key.len() as u64 + entry.value.len() as u64 + ENTRY_OVERHEAD).max(self.floor)
    }
}

impl MemoryCache {
    /// At most `max_entries` entries and `max_bytes` of keys and values;
    /// an entry too large for its shard's share of the bytes is not kept.
    pub fn new(max_entries: u64, max_bytes: u64) -> Self {
        let (max_entries, max_bytes) = (max_entries.max(1), max_bytes.max(1));
        let weigher = EntryWeight { floor: (max_bytes / max_entries).max(1) };
        let estimated = usize::try_from(max_entries).unwrap_or(usize::MAX);
        let entries = quick_cache::sync::Cache::with(
            estimated,
            max_bytes,
            weigher,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        Self { entries, rates: super::LocalRates::default() }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.entries.get(key).and_then(Entry::live))
    }

    /// One clock read and no per-key future: every request reads several versions.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let now = Instant::now();
        Ok(keys
            .iter()
            .map(|key| self.entries.get(*key).filter(|entry| entry.expires_at > now).map(|entry| entry.value))
            .collect())
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.entries.insert(key.to_owned(), Entry::new(value, ttl));
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<Bytes, CacheError> {
        let stored =
            self.entries.get_or_insert_with(key, || Ok::<_, std::convert::Infallible>(Entry::new(value.clone(), ttl)));
        let Ok(stored) = stored;
        if let Some(live) = stored.live() {
            return Ok(live);
        }
        // Expired: replace it. Two callers racing here may each see their own
        // value; for versions that only costs a miss (no one reads the loser's).
        self.entries.insert(key.to_owned(), Entry::new(value.clone(), ttl));
        Ok(value)
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.remove(key);
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
        let cache = MemoryCache::new(10, 1 << 20);
        cache.set("k", Bytes::from_static(b"v"), Duration::from_secs(60)).await.expect("set");
        assert_eq!(cache.get("k").await.expect("get"), Some(Bytes::from_static(b"v")));
        cache.delete("k").await.expect("delete");
        assert_eq!(cache.get("k").await.expect("get"), None);
    }

    #[tokio::test]
    async fn bytes_and_entries_are_both_bounded() {
        let pages = MemoryCache::new(1_000, 64 * 1024);
        let page = Bytes::from(vec![b'x'; 4096]);
        for n in 0..200 {
            pages.set(&format!("page-{n}"), page.clone(), Duration::from_secs(60)).await.expect("set");
        }
        assert!(pages.entries.weight() <= 64 * 1024, "held {} bytes", pages.entries.weight());
        assert!((1..=16).contains(&pages.entries.len()), "held {} pages of 4 KiB", pages.entries.len());

        let versions = MemoryCache::new(10, 1 << 20);
        for n in 0..200 {
            versions
                .set(&format!("version-{n}"), Bytes::from_static(b"1"), Duration::from_secs(60))
                .await
                .expect("set");
        }
        assert!((1..=10).contains(&versions.entries.len()), "held {} entries", versions.entries.len());
    }

    #[tokio::test]
    async fn expired_entries_read_as_absent_and_are_replaced() {
        let cache = MemoryCache::new(10, 1 << 20);
        cache.set("k", Bytes::from_static(b"old"), Duration::from_millis(30)).await.expect("set");
        let kept = cache.set_if_absent("k", Bytes::from_static(b"new"), Duration::from_secs(60)).await.expect("keep");
        assert_eq!(kept, Bytes::from_static(b"old"), "a live entry stays");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(cache.get("k").await.expect("get"), None);
        let stored = cache.set_if_absent("k", Bytes::from_static(b"new"), Duration::from_secs(60)).await.expect("set");
        assert_eq!(stored, Bytes::from_static(b"new"));
        assert_eq!(cache.get("k").await.expect("get"), Some(Bytes::from_static(b"new")));
    }

    #[tokio::test]
    async fn the_first_writer_wins_while_the_entry_lives() {
        let cache = std::sync::Arc::new(MemoryCache::new(10, 1 << 20));
        let writers = (0..8u8).map(|n| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.set_if_absent("v", Bytes::from(vec![n]), Duration::from_secs(60)).await })
        });
        let seen: std::collections::HashSet<Bytes> =
            futures::future::join_all(writers).await.into_iter().map(|r| r.expect("join").expect("set")).collect();
        assert_eq!(seen.len(), 1, "every writer sees the same value");
    }
}
