//! Redis cache adapter: one multiplexed, auto-reconnecting connection with
//! short timeouts, and coherent local copies of scope versions (`coherent`).

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::coherent::Coherence;
use super::{Cache, CacheError};
use crate::policy::rate::{self, Quota, RateDecision};

const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// Local copies of immutable entries: bounded in bytes and in age.
const LOCAL_BYTES: u64 = 64 << 20;
const LOCAL_TTL: Duration = Duration::from_secs(60);

/// After a failure, Redis is left alone this long (requests bypass the cache meanwhile).
const BREAKER_OPEN: Duration = Duration::from_secs(5);

/// GCRA in one atomic step on Redis' own clock; returns the stored TAT before
/// this request (or -1) and now, in microseconds. Same rule as `policy::rate::decide`.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local stored = tonumber(redis.call('GET', KEYS[1]))
local tat = stored or now
if tat < now then tat = now end
local nxt = tat + interval
if nxt - now <= tolerance then
  redis.call('SET', KEYS[1], nxt, 'PX', math.floor((nxt - now) / 1000) + 1)
end
return {stored or -1, now}
";

pub struct RedisCache {
    connection: ConnectionManager,
    namespace: String,
    gcra: redis::Script,
    /// Milliseconds after `started` until which the breaker is open: on the
    /// monotonic clock, so that a wall clock stepped back (NTP) cannot keep
    /// Redis bypassed for as long as the step.
    open_until: AtomicI64,
    started: std::time::Instant,
    /// Immutable entries already fetched, so a warm lookup costs one round trip (its version), not two.
    local: moka::future::Cache<String, Bytes, super::FastHasher>,
    coherence: Coherence,
}

/// A TTL as Redis' `PX` takes it: whole milliseconds, at least one.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unavailable(error: redis::RedisError) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

impl RedisCache {
    /// Connects to Redis at `url`. Unreachable, it is refused only where the
    /// cache is `required`; elsewhere Coffer starts with the cache bypassed
    /// (the breaker open, readiness `degraded`) and uses it once Redis answers,
    /// as after an outage that began later.
    pub async fn connect(url: &str, namespace: &str, required: bool) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
        let cache = Self::with_connection(client, connection, namespace);
        let mut probe = cache.connection.clone();
        if let Err(error) = redis::cmd("PING").query_async::<()>(&mut probe).await {
            if required {
                return Err(unavailable(error));
            }
            tracing::warn!(error = %error, "redis is unreachable: starting with the cache bypassed");
            cache.attempted(async { Err::<(), _>(error) }).await.ok();
        }
        Ok(cache)
    }

    fn with_connection(client: redis::Client, connection: ConnectionManager, namespace: &str) -> Self {
        Self {
            coherence: Coherence::start(client, connection.clone(), namespace),
            connection,
            namespace: namespace.to_owned(),
            gcra: redis::Script::new(GCRA),
            open_until: AtomicI64::new(0),
            started: std::time::Instant::now(),
            local: moka::future::Cache::builder()
                .max_capacity(LOCAL_BYTES)
                .weigher(|key: &String, value: &Bytes| u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX))
                .time_to_live(LOCAL_TTL)
                .build_with_hasher(super::FastHasher::default()),
        }
    }

    /// Runs one Redis call unless the breaker is open; a failure opens it.
    async fn guarded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, CacheError> {
        if self.breaker_open() {
            return Err(CacheError::Unavailable("circuit open after a recent failure".into()));
        }
        self.attempted(call).await
    }

    /// Runs one Redis call even with the breaker open (invalidations: skipping
    /// one leaves other replicas serving what a write just changed); a failure
    /// (re)opens it.
    async fn attempted<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, CacheError> {
        call.await.map_err(|error| {
            let until = self.elapsed_millis() + BREAKER_OPEN.as_millis() as i64;
            self.open_until.store(until, Ordering::Relaxed);
            tracing::warn!(error = %error, "redis failed; bypassing it for {}s", BREAKER_OPEN.as_secs());
            unavailable(error)
        })
    }

    fn elapsed_millis(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.namespace)
    }
}

#[async_trait]
impl Cache for RedisCache {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn breaker_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) > self.elapsed_millis()
    }

    async fn release(&self) {
        self.coherence.release().await;
    }

    fn copies_leased(&self) -> bool {
        self.coherence.near().leased(std::time::Instant::now())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        let mut connection = self.connection.clone();
        let value: Option<Vec<u8>> = self.guarded(connection.get(self.key(key))).await?;
        Ok(value.map(Bytes::from))
    }

    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.clone();
        let names: Vec<String> = keys.iter().map(|key| self.key(key)).collect();
        // MGET answers one array for any number of keys (GET of one key would not).
        let values: Vec<Option<Vec<u8>>> =
            self.guarded(redis::cmd("MGET").arg(&names).query_async(&mut connection)).await?;
        Ok(values.into_iter().map(|value| value.map(Bytes::from)).collect())
    }

    fn coherent_epoch(&self) -> Option<u64> {
        self.coherence.near().epoch(std::time::Instant::now())
    }

    fn coherent_copies(&self, keys: &[&str]) -> Option<super::Copies> {
        let now = std::time::Instant::now();
        let near = self.coherence.near();
        keys.iter().map(|key| near.get(key, now)).collect()
    }

    async fn get_coherent(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let now = std::time::Instant::now();
        let near = self.coherence.near();
        let mut values: Vec<Option<Bytes>> = keys.iter().map(|key| near.get(key, now)).collect();
        let missing: smallvec::SmallVec<[usize; 4]> = (0..keys.len()).filter(|&at| values[at].is_none()).collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let ticket = near.ticket();
        let wanted: smallvec::SmallVec<[&str; 4]> = missing.iter().map(|&at| keys[at]).collect();
        let fetched = self.get_many(&wanted).await?;
        near.fill(ticket, wanted.iter().zip(&fetched).filter_map(|(key, value)| Some((*key, value.clone()?))), now);
        for (at, value) in missing.into_iter().zip(fetched) {
            values[at] = value;
        }
        Ok(values)
    }

    async fn set_coherent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let millis = ttl_millis(ttl);
        let full_key = self.key(key);
        let invocation = self.coherence.publish(&full_key, key, value.as_ref(), millis);
        // Before publishing: a failed publish must not leave this replica's
        // copy of the old version answering its own next reads.
        self.coherence.near().invalidate(key);
        let seq: u64 = self.attempted(invocation.invoke_async(&mut connection)).await?;
        self.coherence.await_acknowledgements(seq).await;
        Ok(())
    }

    async fn get_immutable(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        if let Some(local) = self.local.get(key).await {
            return Ok(Some(local));
        }
        let value = self.get(key).await?;
        if let Some(value) = &value {
            self.local.insert(key.to_owned(), value.clone()).await;
        }
        Ok(value)
    }

    async fn set_immutable(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.local.insert(key.to_owned(), value.clone()).await;
        self.set(key, value, ttl).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let millis = ttl_millis(ttl);
        let _: () = self.guarded(connection.pset_ex(self.key(key), value.as_ref(), millis)).await?;
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<Bytes, CacheError> {
        let mut connection = self.connection.clone();
        let millis = ttl_millis(ttl);
        let key = self.key(key);
        // SET NX GET answers the value already there (Redis 7), or nil when ours was stored.
        let mut command = redis::cmd("SET");
        command.arg(&key).arg(value.as_ref()).arg("NX").arg("GET").arg("PX").arg(millis);
        let existing: Option<Vec<u8>> = self.guarded(command.query_async(&mut connection)).await?;
        Ok(existing.map_or(value, Bytes::from))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let _: () = self.guarded(connection.del(self.key(key))).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        // Always asks Redis (the breaker does not apply), so readiness sees recovery at once.
        let _: String = redis::cmd("PING").query_async(&mut connection).await.map_err(unavailable)?;
        self.open_until.store(0, Ordering::Relaxed);
        Ok(())
    }

    async fn admit(&self, key: &str, quota: Quota) -> Result<RateDecision, CacheError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.gcra.key(self.key(key));
        invocation.arg(quota.interval_micros()).arg(quota.tolerance_micros());
        let (stored, now): (i64, i64) = self.guarded(invocation.invoke_async(&mut connection)).await?;
        Ok(rate::decide(quota, (stored >= 0).then_some(stored), now))
    }
}
