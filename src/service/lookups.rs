//! Cached lookups on every request's path — the caller's account state and
//! their grant on a bucket — coherent across replicas sharing Redis.
//!
//! Entries live under a *version* of their scope (`user:{id}`,
//! `bucket:{id}`): readers fetch the version first, then the entry stored
//! under it; writers change the version after their database commit. A reader
//! that loaded old rows while a write was committing stores them under the old
//! version, which nobody reads again — so no stale authorization, ever. When
//! the cache is unreachable, lookups go to the database.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ServiceResult, Services};
use crate::domain::{Permission, Role, Username};
use crate::metrics::Metrics;

const ENTRY_TTL: Duration = Duration::from_secs(300);
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

fn fresh_version() -> Bytes {
    Bytes::from(uuid::Uuid::new_v4().simple().to_string())
}

impl Services {
    /// The current version of `scope`, created if there is none; `None` without a cache.
    async fn version(&self, scope: &str) -> Option<String> {
        let key = format!("ver:{scope}");
        let version = match self.cache.get(&key).await.ok()? {
            Some(version) => version,
            None => self.cache.set_if_absent(&key, fresh_version(), VERSION_TTL).await.ok()?,
        };
        String::from_utf8(version.to_vec()).ok()
    }

    /// Retires every entry of `scope`; call after the write has committed.
    pub(crate) async fn invalidate(&self, scope: &str) {
        if let Err(error) = self.cache.set(&format!("ver:{scope}"), fresh_version(), VERSION_TTL).await {
            // With the cache down, nothing can be read from it either; entries expire before it returns.
            tracing::warn!(error = %error, scope, "could not invalidate a cache scope");
        }
    }

    async fn cached<T, F>(&self, scope: &str, name: &str, load: F) -> ServiceResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = ServiceResult<T>>,
    {
        let Some(version) = self.version(scope).await else {
            Metrics::count(&self.metrics.cache_lookups, "error");
            return load.await;
        };
        let key = format!("{scope}:{version}:{name}");
        if let Ok(Some(bytes)) = self.cache.get(&key).await
            && let Ok(value) = serde_json::from_slice(&bytes)
        {
            Metrics::count(&self.metrics.cache_lookups, "hit");
            return Ok(value);
        }
        Metrics::count(&self.metrics.cache_lookups, "miss");
        let value = load.await?;
        if let Ok(bytes) = serde_json::to_vec(&value) {
            let _ = self.cache.set(&key, Bytes::from(bytes), ENTRY_TTL).await;
        }
        Ok(value)
    }

    /// An account's state for authentication.
    pub(crate) async fn account_state(&self, user_id: i64) -> ServiceResult<Option<AccountState>> {
        self.cached(&user_scope(user_id), "state", async {
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
        self.cached(&bucket_scope(bucket_id), &format!("grant:{user_id}"), async {
            Ok(self.store.grant(bucket_id, user_id).await?)
        })
        .await
    }
}
