//! Cached lookups on every request's path — the caller's account state, API
//! keys, buckets by name, grants, live objects and listing pages — coherent
//! across replicas sharing Redis.
//!
//! Entries live under a *version* of their scope (`user:{id}`,
//! `bucket:{id}`): readers fetch the version first, then the entry stored
//! under it; writers change the version after their database commit. A reader
//! that loaded old rows while a write was committing stores them under the old
//! version, which nobody reads again — so no stale authorization, ever. When
//! the cache is unreachable, lookups go to the database.
//!
//! Scopes, their versions and how a request reads them (once, together, and
//! from this replica's coherent copies when it holds them) are in `scopes`.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use super::scopes::{
    Key, Scope, VERSION_TTL, bucket_name_scope, bucket_scope, fresh_version, id_key, joined, objects_scope, user_scope,
};
use super::{ServiceResult, Services};
use crate::cache::FastHasher;
use crate::domain::{BucketName, ObjectKey, Permission, Role, Username};
use crate::metadata::{ApiKeyRecord, BucketRecord, ListQuery, ListResult, ObjectRecord};

/// Account state, API keys, grants and buckets: what authorization reads. An
/// invalidation that failed even when retried (the cache unreachable from the
/// writing replica but not from others) is bounded by this lifetime.
const ENTRY_TTL: Duration = Duration::from_secs(60);
/// Object metadata and listings change often; a shorter life bounds what an
/// invalidation lost while the cache was unreachable could leave behind.
const OBJECT_TTL: Duration = Duration::from_secs(60);
const LISTING_TTL: Duration = Duration::from_secs(10);
/// How often an API key's `last_used_at` is written at most.
const KEY_TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Decoded copies kept in process: entries of at most a few hundred bytes.
const DECODED_ENTRIES: usize = 10_000;
const DECODED_TTL: Duration = Duration::from_secs(60);

/// Whether an entry is small enough to keep decoded in process (listing pages are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Small,
    Large,
}

/// What authentication needs to know of an account (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub disabled: bool,
    pub token_generation: i64,
}

fn digest_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An entry decoded in process, and when it was.
type Decoded = (std::time::Instant, Arc<dyn Any + Send + Sync>);

/// What a decoded entry is kept under: its scope, the scope's version and its
/// name (the parts of its cache key, not joined, so a lookup allocates nothing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecodedKey {
    scope: Scope,
    version: Bytes,
    name: Key,
}

/// What this process has seen of facts that rarely change, to save round
/// trips. Only ever a guess or a throttle, never an authorization.
pub struct LocalHints {
    /// Bucket ids by name as last seen. A bucket can be recreated under its
    /// name, so a request checks the id against the bucket record before using it.
    pub(crate) bucket_ids: quick_cache::sync::Cache<BucketName, i64>,
    /// API keys whose `last_used_at` this process knows was written within the minute.
    touched_keys: moka::future::Cache<String, (), FastHasher>,
    /// Small entries already decoded, by their versioned key: an entry never
    /// changes under its key, so a warm lookup neither asks the cache nor parses.
    /// On quick_cache, not moka: several are read per request, and a moka
    /// read (its access log, its housekeeping) cost five times as much.
    decoded: quick_cache::sync::Cache<DecodedKey, Decoded>,
    /// Reads' lookups, kept together (see `read_memo`).
    pub(crate) reads: super::read_memo::ReadMemos,
}

impl Default for LocalHints {
    fn default() -> Self {
        Self {
            decoded: quick_cache::sync::Cache::new(DECODED_ENTRIES),
            reads: super::read_memo::ReadMemos::default(),
            bucket_ids: quick_cache::sync::Cache::new(10_000),
            touched_keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEY_TOUCH_EVERY)
                .build_with_hasher(FastHasher::default()),
        }
    }
}

impl Services {
    /// `load`'s value, cached under the current version of `scope`; small
    /// values are also kept decoded in process.
    async fn cached<T, F>(&self, scope: &Scope, name: &str, ttl: Duration, size: Size, load: F) -> ServiceResult<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: Future<Output = ServiceResult<T>>,
    {
        if self.config.cache_lookups_disabled {
            return load.await;
        }
        let Some(version) = self.version(scope).await else {
            self.metrics.cache_lookup.error.inc();
            return load.await;
        };
        let decoded_key = (size == Size::Small).then(|| DecodedKey {
            scope: scope.clone(),
            version: version.clone(),
            name: Key::from(name),
        });
        if let Some(decoded_key) = &decoded_key
            && let Some((decoded_at, value)) = self.hints.decoded.get(decoded_key)
            && decoded_at.elapsed() < DECODED_TTL
            && let Some(value) = value.downcast_ref::<T>()
        {
            self.metrics.cache_lookup.hit.inc();
            return Ok(value.clone());
        }
        let key = scope.entry_key(std::str::from_utf8(&version).unwrap_or_default(), name);
        let value = match self.cache.get_immutable(&key).await {
            Ok(Some(bytes)) => serde_json::from_slice::<T>(&bytes).ok(),
            _ => None,
        };
        let value = match value {
            Some(value) => {
                self.metrics.cache_lookup.hit.inc();
                value
            }
            None => {
                self.metrics.cache_lookup.miss.inc();
                let value = load.await?;
                if let Ok(bytes) = serde_json::to_vec(&value) {
                    let _ = self.cache.set_immutable(&key, Bytes::from(bytes), ttl).await;
                }
                value
            }
        };
        if let Some(decoded_key) = decoded_key {
            self.hints.decoded.insert(decoded_key, (std::time::Instant::now(), Arc::new(value.clone())));
        }
        Ok(value)
    }

    /// An account's state for authentication.
    pub(crate) async fn account_state(&self, user_id: i64) -> ServiceResult<Option<AccountState>> {
        self.cached(&user_scope(user_id), "state", ENTRY_TTL, Size::Small, async {
            Ok(self.store.user_by_id(user_id).await?.map(|user| AccountState {
                id: user.id,
                username: user.username,
                role: user.role,
                disabled: user.disabled,
                token_generation: user.token_generation,
            }))
        })
        .await
    }

    /// A user's own grant on a bucket.
    pub(crate) async fn grant_of(&self, bucket_id: i64, user_id: i64) -> ServiceResult<Option<Permission>> {
        self.cached(&bucket_scope(bucket_id), &id_key("grant", user_id), ENTRY_TTL, Size::Small, async {
            Ok(self.store.grant(bucket_id, user_id).await?)
        })
        .await
    }

    /// A bucket by name; absence is cached too, so creating one must invalidate.
    pub(crate) async fn bucket_named(&self, name: &BucketName) -> ServiceResult<Option<BucketRecord>> {
        let record = self
            .cached(&bucket_name_scope(name), "record", ENTRY_TTL, Size::Small, async {
                Ok(self.store.bucket_by_name(name).await?)
            })
            .await?;
        if let Some(record) = &record
            && self.hints.bucket_ids.get(name) != Some(record.id)
        {
            self.hints.bucket_ids.insert(name.clone(), record.id);
        }
        Ok(record)
    }

    /// The live version of an object, for reads (writes always ask the database).
    pub(crate) async fn live_object_cached(
        &self,
        bucket_id: i64,
        key: &ObjectKey,
    ) -> ServiceResult<Option<Arc<ObjectRecord>>> {
        // The key itself, not a digest of it: keys are bounded (1 KiB) and
        // hashing every read's key cost more than the rest of the lookup.
        let name = joined(&["o", key.as_str()]);
        self.cached(&objects_scope(bucket_id), &name, OBJECT_TTL, Size::Small, async {
            Ok(self.store.live_object(bucket_id, key).await?.map(Arc::new))
        })
        .await
    }

    /// One listing page, cached briefly.
    pub(crate) async fn list_cached(&self, bucket_id: i64, query: &ListQuery) -> ServiceResult<ListResult> {
        let name = format!("l:{}", digest_hex(&serde_json::to_vec(query).unwrap_or_default()));
        self.cached(&objects_scope(bucket_id), &name, LISTING_TTL, Size::Large, async {
            Ok(self.store.list_objects(bucket_id, query).await?)
        })
        .await
    }

    /// An API key by the digest of its secret. The digest → owner mapping
    /// never changes; the record hangs on its owner's scope, so revoking a key,
    /// disabling its owner or resetting their password retires it.
    pub(crate) async fn api_key_cached(&self, key_hash: &str) -> ServiceResult<Option<ApiKeyRecord>> {
        if self.config.cache_lookups_disabled {
            return Ok(self.store.api_key_by_hash(key_hash).await?);
        }
        let owner_key = joined(&["apikey-owner", key_hash]);
        let owner = match self.cache.get_immutable(&owner_key).await {
            Ok(Some(bytes)) => std::str::from_utf8(&bytes).ok().and_then(|id| id.parse::<i64>().ok()),
            _ => None,
        };
        let Some(user_id) = owner else {
            let record = self.store.api_key_by_hash(key_hash).await?;
            if let Some(record) = &record {
                let _ =
                    self.cache.set_immutable(&owner_key, Bytes::from(record.user_id.to_string()), VERSION_TTL).await;
            }
            return Ok(record);
        };
        self.prefetch_for_caller(user_id).await;
        let record = self
            .cached(&user_scope(user_id), &joined(&["apikey", key_hash]), ENTRY_TTL, Size::Small, async {
                Ok(self.store.api_key_by_hash(key_hash).await?)
            })
            .await?;
        Ok(record.filter(|record| record.user_id == user_id))
    }

    /// Whether this request should record that the key was used: at most once
    /// per minute per key across replicas (the first to claim the minute
    /// writes), and at least once in two minutes while the key is in use.
    pub(crate) async fn claim_key_touch(&self, key_id: &str) -> bool {
        if self.hints.touched_keys.contains_key(key_id) {
            return false;
        }
        let mine = fresh_version();
        let claimed =
            match self.cache.set_if_absent(&format!("apikey-touch:{key_id}"), mine.clone(), KEY_TOUCH_EVERY).await {
                Ok(stored) => stored == mine,
                Err(_) => true,
            };
        self.hints.touched_keys.insert(key_id.to_owned(), ()).await;
        claimed
    }
}
