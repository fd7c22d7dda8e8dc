//! Cache invalidations Redis refused, published again in the background:
//! one retrier per scope version key however many writes missed it, each
//! try under a fresh version (a late success must never bring back a
//! version entries were once cached under).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::scopes::{Key, VERSION_TTL, fresh_version};
use crate::cache::Cache;

/// Waits between tries: while the breaker is open (5 s) each try fails at
/// once, so these outlast it and then a short outage (a minute in all).
const WAITS: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(32),
];

/// Version keys with a retrier running, and whether a write missed the
/// cache again since that retrier's last try.
#[derive(Default, Clone)]
pub(crate) struct Republisher(Arc<Mutex<HashMap<Key, bool>>>);

impl Republisher {
    fn pending(&self) -> MutexGuard<'_, HashMap<Key, bool>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `key` gets a fresh version once the cache takes one again: a retrier
    /// starts, or the one running goes round once more.
    pub(crate) fn missed(&self, cache: Arc<dyn Cache>, key: Key) {
        {
            let mut pending = self.pending();
            if let Some(missed_again) = pending.get_mut(&key) {
                *missed_again = true;
                return;
            }
            pending.insert(key.clone(), false);
        }
        let republisher = self.clone();
        tokio::spawn(async move { republisher.republish(&*cache, key).await });
    }

    async fn republish(&self, cache: &dyn Cache, key: Key) {
        for wait in WAITS {
            tokio::time::sleep(wait).await;
            self.pending().insert(key.clone(), false);
            if cache.set_coherent(&key, fresh_version(), VERSION_TTL).await.is_ok() {
                let mut pending = self.pending();
                if pending.get(&key) == Some(&false) {
                    pending.remove(&key);
                    return;
                }
            }
        }
        self.pending().remove(&key);
        tracing::error!(key = %key, "gave up invalidating a cache scope; its entries expire on their own");
    }

    /// Version keys waiting for a retry (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.pending().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryCache;

    #[tokio::test]
    async fn many_misses_of_one_key_share_one_retrier() {
        let cache: Arc<dyn Cache> = Arc::new(MemoryCache::new(100, 1 << 20));
        let republisher = Republisher::default();
        for _ in 0..50 {
            republisher.missed(cache.clone(), Key::from("ver:objects:1"));
        }
        republisher.missed(cache.clone(), Key::from("ver:user:2"));
        assert_eq!(republisher.waiting(), 2, "one retrier per key");
        // The first try (after a second) covers every miss before it.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(republisher.waiting(), 0);
        for key in ["ver:objects:1", "ver:user:2"] {
            let published = cache.get(key).await.expect("get").expect("a version");
            assert_eq!(published.len(), 32, "a fresh version of {key}");
        }
    }
}
