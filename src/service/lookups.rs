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
//! Within one request a scope's version is read once and then remembered
//! (`with_request_versions`), and the versions a request will need are read
//! together where it can tell (`prefetch_versions`): a warm read costs few
//! round trips to Redis.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use super::{ServiceResult, Services};
use crate::domain::{BucketName, ObjectKey, Permission, Role, Username};
use crate::metadata::{ApiKeyRecord, BucketRecord, ListQuery, ListResult, ObjectRecord};
use crate::metrics::Metrics;

const ENTRY_TTL: Duration = Duration::from_secs(300);
/// Object metadata and listings change often; a shorter life bounds what an
/// invalidation lost while the cache was unreachable could leave behind.
const OBJECT_TTL: Duration = Duration::from_secs(60);
const LISTING_TTL: Duration = Duration::from_secs(10);
/// How often an API key's `last_used_at` is written at most.
const KEY_TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Longer than any entry, so an entry never outlives the version it hangs on.
const VERSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What authentication needs to know of an account (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub disabled: bool,
    pub token_generation: i64,
}

/// The cache scope of one account's state.
pub(crate) fn user_scope(user_id: i64) -> String {
    format!("user:{user_id}")
}

/// The cache scope of one bucket's grants.
pub(crate) fn bucket_scope(bucket_id: i64) -> String {
    format!("bucket:{bucket_id}")
}

/// The cache scope of a bucket name's record (present or absent).
pub(crate) fn bucket_name_scope(name: &BucketName) -> String {
    format!("bucket-name:{name}")
}

/// The cache scope of one bucket's live objects and listing pages: every
/// object write in the bucket retires it.
pub(crate) fn objects_scope(bucket_id: i64) -> String {
    format!("objects:{bucket_id}")
}

fn digest_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn fresh_version() -> Bytes {
    Bytes::from(uuid::Uuid::new_v4().simple().to_string())
}

fn version_key(scope: &str) -> String {
    format!("ver:{scope}")
}

/// How long a request trusts a version it has read: a long request (an
/// upload) that looks something up again later sees changes made meanwhile.
const REMEMBER_FOR: std::time::Duration = std::time::Duration::from_secs(1);

tokio::task_local! {
    /// The scope versions the current request has read, by scope, with when.
    static REQUEST_VERSIONS: RefCell<HashMap<String, (String, std::time::Instant)>>;
}

/// Runs one request with its own memory of scope versions: lookups of the
/// request within `REMEMBER_FOR` see the scope as it was when first read (or
/// as the request's own writes left it), and read it from the cache once.
pub async fn with_request_versions<F: Future>(request: F) -> F::Output {
    REQUEST_VERSIONS.scope(RefCell::new(HashMap::new()), request).await
}

fn remembered(scope: &str) -> Option<String> {
    let fresh = |(version, at): &(String, std::time::Instant)| (at.elapsed() < REMEMBER_FOR).then(|| version.clone());
    REQUEST_VERSIONS.try_with(|versions| versions.borrow().get(scope).and_then(fresh)).ok().flatten()
}

fn remember(scope: &str, version: Option<String>) {
    let _ = REQUEST_VERSIONS.try_with(|versions| match version {
        Some(version) => versions.borrow_mut().insert(scope.to_owned(), (version, std::time::Instant::now())),
        None => versions.borrow_mut().remove(scope),
    });
}

impl Services {
    /// The current version of `scope`, created if there is none; `None` without a cache.
    async fn version(&self, scope: &str) -> Option<String> {
        if let Some(version) = remembered(scope) {
            return Some(version);
        }
        let key = version_key(scope);
        let version = match self.cache.get(&key).await.ok()? {
            Some(version) => version,
            None => self.cache.set_if_absent(&key, fresh_version(), VERSION_TTL).await.ok()?,
        };
        let version = String::from_utf8(version.to_vec()).ok()?;
        remember(scope, Some(version.clone()));
        Some(version)
    }

    /// Reads the versions of `scopes` in one round trip, for the lookups of
    /// this request that follow (outside a request there is nowhere to keep them).
    pub(crate) async fn prefetch_versions(&self, scopes: &[String]) {
        let in_request = REQUEST_VERSIONS.try_with(|_| ()).is_ok();
        let wanted: Vec<&String> = scopes.iter().filter(|scope| remembered(scope).is_none()).collect();
        if self.config.cache_lookups_disabled || !in_request || wanted.is_empty() {
            return;
        }
        let keys: Vec<String> = wanted.iter().map(|scope| version_key(scope)).collect();
        let Ok(values) = self.cache.get_many(&keys).await else { return };
        for (scope, value) in wanted.into_iter().zip(values) {
            if let Some(version) = value.and_then(|bytes| String::from_utf8(bytes.to_vec()).ok()) {
                remember(scope, Some(version));
            }
        }
    }

    /// Retires every entry of `scope`; call after the write has committed.
    pub(crate) async fn invalidate(&self, scope: &str) {
        let version = fresh_version();
        match self.cache.set(&version_key(scope), version.clone(), VERSION_TTL).await {
            Ok(()) => remember(scope, String::from_utf8(version.to_vec()).ok()),
            Err(error) => {
                remember(scope, None);
                // With the cache down, nothing can be read from it either; entries expire before it returns.
                tracing::warn!(error = %error, scope, "could not invalidate a cache scope");
            }
        }
    }

    async fn cached<T, F>(&self, scope: &str, name: &str, ttl: Duration, load: F) -> ServiceResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = ServiceResult<T>>,
    {
        if self.config.cache_lookups_disabled {
            return load.await;
        }
        let Some(version) = self.version(scope).await else {
            Metrics::count(&self.metrics.cache_lookups, "error");
            return load.await;
        };
        let key = format!("{scope}:{version}:{name}");
        if let Ok(Some(bytes)) = self.cache.get_immutable(&key).await
            && let Ok(value) = serde_json::from_slice(&bytes)
        {
            Metrics::count(&self.metrics.cache_lookups, "hit");
            return Ok(value);
        }
        Metrics::count(&self.metrics.cache_lookups, "miss");
        let value = load.await?;
        if let Ok(bytes) = serde_json::to_vec(&value) {
            let _ = self.cache.set_immutable(&key, Bytes::from(bytes), ttl).await;
        }
        Ok(value)
    }

    /// An account's state for authentication.
    pub(crate) async fn account_state(&self, user_id: i64) -> ServiceResult<Option<AccountState>> {
        self.cached(&user_scope(user_id), "state", ENTRY_TTL, async {
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
        self.cached(&bucket_scope(bucket_id), &format!("grant:{user_id}"), ENTRY_TTL, async {
            Ok(self.store.grant(bucket_id, user_id).await?)
        })
        .await
    }

    /// A bucket by name; absence is cached too, so creating one must invalidate.
    pub(crate) async fn bucket_named(&self, name: &BucketName) -> ServiceResult<Option<BucketRecord>> {
        self.cached(&bucket_name_scope(name), "record", ENTRY_TTL, async { Ok(self.store.bucket_by_name(name).await?) })
            .await
    }

    /// The live version of an object, for reads (writes always ask the database).
    pub(crate) async fn live_object_cached(
        &self,
        bucket_id: i64,
        key: &ObjectKey,
    ) -> ServiceResult<Option<ObjectRecord>> {
        let name = format!("o:{}", digest_hex(key.as_str().as_bytes()));
        self.cached(&objects_scope(bucket_id), &name, OBJECT_TTL, async {
            Ok(self.store.live_object(bucket_id, key).await?)
        })
        .await
    }

    /// One listing page, cached briefly.
    pub(crate) async fn list_cached(&self, bucket_id: i64, query: &ListQuery) -> ServiceResult<ListResult> {
        let name = format!("l:{}", digest_hex(&serde_json::to_vec(query).unwrap_or_default()));
        self.cached(&objects_scope(bucket_id), &name, LISTING_TTL, async {
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
        let owner_key = format!("apikey-owner:{key_hash}");
        let owner = match self.cache.get(&owner_key).await {
            Ok(Some(bytes)) => std::str::from_utf8(&bytes).ok().and_then(|id| id.parse::<i64>().ok()),
            _ => None,
        };
        let Some(user_id) = owner else {
            let record = self.store.api_key_by_hash(key_hash).await?;
            if let Some(record) = &record {
                let _ = self.cache.set(&owner_key, Bytes::from(record.user_id.to_string()), VERSION_TTL).await;
            }
            return Ok(record);
        };
        let record = self
            .cached(&user_scope(user_id), &format!("apikey:{key_hash}"), ENTRY_TTL, async {
                Ok(self.store.api_key_by_hash(key_hash).await?)
            })
            .await?;
        Ok(record.filter(|record| record.user_id == user_id))
    }

    /// Whether this request should record that the key was used: at most once
    /// per minute per key across replicas (the first to claim the minute writes).
    pub(crate) async fn claim_key_touch(&self, key_id: &str) -> bool {
        let mine = fresh_version();
        match self.cache.set_if_absent(&format!("apikey-touch:{key_id}"), mine.clone(), KEY_TOUCH_EVERY).await {
            Ok(stored) => stored == mine,
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_remembers_versions_briefly_and_only_its_own() {
        assert_eq!(remembered("user:1"), None, "outside a request nothing is kept");
        remember("user:1", Some("v1".into()));
        assert_eq!(remembered("user:1"), None);
        with_request_versions(async {
            remember("user:1", Some("v1".into()));
            assert_eq!(remembered("user:1").as_deref(), Some("v1"));
            remember("user:1", None);
            assert_eq!(remembered("user:1"), None, "forgotten after a failed invalidation");
            remember("bucket:2", Some("v2".into()));
            tokio::time::sleep(REMEMBER_FOR + Duration::from_millis(50)).await;
            assert_eq!(remembered("bucket:2"), None, "read again after a while");
        })
        .await;
        with_request_versions(async { assert_eq!(remembered("bucket:2"), None, "each request starts afresh") }).await;
    }
}
