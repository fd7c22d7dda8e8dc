//! A `Cache` decorator that times every cache call by operation and counts
//! failures, for `/metrics`; answers from local coherent copies are counted,
//! not timed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;

use super::{Cache, CacheError};
use crate::metrics::{CallTimer, Metrics};
use crate::policy::rate::{Quota, RateDecision};

pub struct Instrumented {
    inner: Arc<dyn Cache>,
    timer: CallTimer,
    copies_used: Counter,
}

impl Instrumented {
    pub fn wrap(inner: Arc<dyn Cache>, metrics: &Metrics) -> Arc<dyn Cache> {
        Arc::new(Self {
            inner,
            timer: CallTimer::new(&metrics.cache_seconds, &metrics.cache_errors),
            copies_used: metrics.cache_copies_used.clone(),
        })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        self.timer.time(operation, call).await
    }
}

#[async_trait]
impl Cache for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.timed("get", self.inner.get(key)).await
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.timed("get_many", self.inner.get_many(keys)).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.timed("set", self.inner.set(key, value, ttl)).await
    }

    // Forwarded explicitly: the trait's defaults would skip the adapter's local copies.
    async fn get_immutable(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.timed("get_immutable", self.inner.get_immutable(key)).await
    }

    async fn set_immutable(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.timed("set_immutable", self.inner.set_immutable(key, value, ttl)).await
    }

    async fn get_coherent(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.timed("get_coherent", self.inner.get_coherent(keys)).await
    }

    fn coherent_epoch(&self) -> Option<u64> {
        self.inner.coherent_epoch()
    }

    /// Counted, not timed: answered from memory, a timing would only add
    /// to the work it measures (~700 instructions per warm read).
    fn coherent_copies(&self, keys: &[&str]) -> Option<super::Copies> {
        let copies = self.inner.coherent_copies(keys);
        if copies.is_some() {
            self.copies_used.inc();
        }
        copies
    }

    async fn set_coherent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.timed("set_coherent", self.inner.set_coherent(key, value, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.timed("delete", self.inner.delete(key)).await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<Bytes, CacheError> {
        self.timed("set_if_absent", self.inner.set_if_absent(key, value, ttl)).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.timed("ping", self.inner.ping()).await
    }

    fn breaker_open(&self) -> bool {
        self.inner.breaker_open()
    }

    fn copies_leased(&self) -> bool {
        self.inner.copies_leased()
    }

    async fn release(&self) {
        self.inner.release().await;
    }

    async fn admit(&self, key: &str, quota: Quota) -> Result<RateDecision, CacheError> {
        self.timed("admit", self.inner.admit(key, quota)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::cache::MemoryCache;

    /// Counts the calls that reach the adapter's own immutable-entry methods.
    struct Counting {
        inner: MemoryCache,
        immutable_calls: AtomicUsize,
    }

    #[async_trait]
    impl Cache for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            self.inner.get(key).await
        }
        async fn get_immutable(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            self.immutable_calls.fetch_add(1, Ordering::Relaxed);
            self.inner.get(key).await
        }
        async fn set_immutable(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
            self.immutable_calls.fetch_add(1, Ordering::Relaxed);
            self.inner.set(key, value, ttl).await
        }
        async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
            self.inner.set(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<(), CacheError> {
            self.inner.delete(key).await
        }
        async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<Bytes, CacheError> {
            self.inner.set_if_absent(key, value, ttl).await
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Ok(())
        }
        async fn admit(&self, key: &str, quota: Quota) -> Result<RateDecision, CacheError> {
            self.inner.admit(key, quota).await
        }
    }

    #[tokio::test]
    async fn immutable_entries_reach_the_adapter() {
        let counting =
            Arc::new(Counting { inner: MemoryCache::new(10, 1 << 20), immutable_calls: AtomicUsize::new(0) });
        let metrics = Metrics::new();
        let cache = Instrumented::wrap(counting.clone(), &metrics);
        cache.set_immutable("v:e", Bytes::from_static(b"x"), Duration::from_secs(60)).await.expect("set");
        assert_eq!(cache.get_immutable("v:e").await.expect("get"), Some(Bytes::from_static(b"x")));
        assert_eq!(counting.immutable_calls.load(Ordering::Relaxed), 2, "forwarded, not the trait defaults");
    }
}
