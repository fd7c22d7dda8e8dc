//! `Cache` conformance: the in-process adapter and Redis must behave the same
//! for values, TTLs, set-if-absent, immutable entries, namespaces and GCRA
//! admission.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coffer::cache::{Cache, MemoryCache, RedisCache};
use coffer::policy::rate::Quota;

use crate::for_each_adapter;
use crate::support;

pub struct Fixture {
    cache: Arc<dyn Cache>,
    /// A second handle on the same store under another namespace (Redis only).
    neighbour: Option<Arc<dyn Cache>>,
}

async fn memory() -> Option<Fixture> {
    Some(Fixture { cache: Arc::new(MemoryCache::new(1000, 16 << 20)), neighbour: None })
}

async fn redis() -> Option<Fixture> {
    let url = support::redis_url()?;
    let cache = RedisCache::connect(&url, &support::unique("conformance-"), true).await.expect("redis");
    let neighbour = RedisCache::connect(&url, &support::unique("conformance-"), true).await.expect("redis");
    Some(Fixture { cache: Arc::new(cache), neighbour: Some(Arc::new(neighbour)) })
}

for_each_adapter!({ memory, redis }: [
    values_hit_miss_and_delete,
    values_expire_with_their_ttl,
    set_if_absent_keeps_the_first_value,
    immutable_entries_read_back,
    many_keys_read_in_order,
    namespaces_do_not_see_each_other,
    admission_allows_the_quota_then_refuses,
]);

const MINUTE: Duration = Duration::from_secs(60);

async fn values_hit_miss_and_delete(f: &Fixture) {
    let cache = &f.cache;
    assert_eq!(cache.get("absent").await.expect("get"), None, "miss");
    cache.set("k", Bytes::from_static(b"one"), MINUTE).await.expect("set");
    assert_eq!(cache.get("k").await.expect("get"), Some(Bytes::from_static(b"one")), "hit");
    cache.set("k", Bytes::from_static(b"two"), MINUTE).await.expect("set");
    assert_eq!(cache.get("k").await.expect("get"), Some(Bytes::from_static(b"two")), "overwritten");
    cache.delete("k").await.expect("delete");
    assert_eq!(cache.get("k").await.expect("get"), None, "deleted");
    cache.ping().await.expect("ping");
}

async fn values_expire_with_their_ttl(f: &Fixture) {
    f.cache.set("brief", Bytes::from_static(b"x"), Duration::from_millis(200)).await.expect("set");
    assert!(f.cache.get("brief").await.expect("get").is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(f.cache.get("brief").await.expect("get"), None, "expired");
}

async fn set_if_absent_keeps_the_first_value(f: &Fixture) {
    let first = f.cache.set_if_absent("once", Bytes::from_static(b"first"), MINUTE).await.expect("first");
    assert_eq!(first, Bytes::from_static(b"first"));
    let second = f.cache.set_if_absent("once", Bytes::from_static(b"second"), MINUTE).await.expect("second");
    assert_eq!(second, Bytes::from_static(b"first"), "the stored value wins");
    assert_eq!(f.cache.get("once").await.expect("get"), Some(Bytes::from_static(b"first")));
}

async fn immutable_entries_read_back(f: &Fixture) {
    assert_eq!(f.cache.get_immutable("v1:entry").await.expect("get"), None);
    f.cache.set_immutable("v1:entry", Bytes::from_static(b"state"), MINUTE).await.expect("set");
    assert_eq!(f.cache.get_immutable("v1:entry").await.expect("get"), Some(Bytes::from_static(b"state")));
    // Stored in the shared store too, not only locally.
    assert_eq!(f.cache.get("v1:entry").await.expect("get"), Some(Bytes::from_static(b"state")));
}

async fn many_keys_read_in_order(f: &Fixture) {
    f.cache.set("m1", Bytes::from_static(b"one"), MINUTE).await.expect("set");
    f.cache.set("m3", Bytes::from_static(b"three"), MINUTE).await.expect("set");
    let keys = ["m1", "m2", "m3"];
    let values = f.cache.get_many(&keys).await.expect("get_many");
    assert_eq!(values, vec![Some(Bytes::from_static(b"one")), None, Some(Bytes::from_static(b"three"))]);
    assert_eq!(f.cache.get_many(&keys[..1]).await.expect("one key"), vec![Some(Bytes::from_static(b"one"))]);
    assert!(f.cache.get_many(&[]).await.expect("no keys").is_empty());
}

async fn namespaces_do_not_see_each_other(f: &Fixture) {
    let Some(neighbour) = &f.neighbour else { return };
    f.cache.set("shared-name", Bytes::from_static(b"mine"), MINUTE).await.expect("set");
    assert_eq!(neighbour.get("shared-name").await.expect("get"), None);
}

async fn admission_allows_the_quota_then_refuses(f: &Fixture) {
    let quota = Quota::per_minute(5);
    for n in 0..5 {
        let decision = f.cache.admit("rl:test", quota).await.expect("admit");
        assert!(decision.allowed, "request {n} is within the quota");
        assert_eq!(decision.remaining, 4 - n);
    }
    let refused = f.cache.admit("rl:test", quota).await.expect("admit");
    assert!(!refused.allowed, "the sixth is refused");
    assert!(refused.retry_after_micros > 0 && refused.retry_after_micros <= 12_000_000);
    assert!(f.cache.admit("rl:other", quota).await.expect("admit").allowed, "keys are independent");
}
