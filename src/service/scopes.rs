//! Cache scopes, the keys they are spelled as, and their *versions*: where
//! versions live (in process, or in the shared cache and this replica's
//! coherent copies of it), how a request reads them once and remembers them,
//! and how a write retires a scope.

use bytes::Bytes;
use compact_str::CompactString;
use smallvec::{SmallVec, smallvec};

use super::Services;
use super::republish::Republisher;
use super::request_memory::{self, remember, remembered, remembered_each};
use crate::domain::BucketName;

/// A cache scope or key. The ones a warm read builds ("user:7",
/// "ver:objects:12", "o:photo.jpg") fit in 24 bytes and stay off the heap:
/// a read builds about twenty, and their allocations were a fifth of its cost.
pub(crate) type Key = CompactString;

/// Longer than any entry, so an entry never outlives the version it hangs on.
pub(crate) const VERSION_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// `parts` joined by `:`, the separator of every cache key. Short keys are
/// assembled on the stack and copied once (a warm read builds about twenty;
/// appending part by part cost three times as much).
pub(super) fn joined(parts: &[&str]) -> Key {
    let len = parts.iter().map(|part| part.len()).sum::<usize>() + parts.len().saturating_sub(1);
    let mut stack = [0u8; 64];
    if len <= stack.len() {
        let mut at = 0;
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                stack[at] = b':';
                at += 1;
            }
            stack[at..at + part.len()].copy_from_slice(part.as_bytes());
            at += part.len();
        }
        // UTF-8 parts joined by an ASCII colon are UTF-8.
        return std::str::from_utf8(&stack[..at]).map(Key::from).unwrap_or_default();
    }
    let mut key = String::with_capacity(len);
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            key.push(':');
        }
        key.push_str(part);
    }
    Key::from(key)
}

pub(super) fn id_key(prefix: &str, id: i64) -> Key {
    joined(&[prefix, itoa::Buffer::new().format(id)])
}

/// A cache scope: what entries hang on, and what a write retires. Compared
/// and hashed as it is; spelled out (`user:7`) only in the keys sent to the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// One account's state and API keys.
    User(i64),
    /// One bucket's grants.
    Bucket(i64),
    /// One bucket's live objects and listing pages: every object write in the bucket retires it.
    Objects(i64),
    /// A bucket name's record (present or absent).
    BucketName(Key),
}

impl Scope {
    fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Bucket(_) => "bucket",
            Self::Objects(_) => "objects",
            Self::BucketName(_) => "bucket-name",
        }
    }

    /// `ver:` and the kind, spelled out once rather than joined on every read.
    fn version_prefix(&self) -> &'static str {
        match self {
            Self::User(_) => "ver:user",
            Self::Bucket(_) => "ver:bucket",
            Self::Objects(_) => "ver:objects",
            Self::BucketName(_) => "ver:bucket-name",
        }
    }

    /// The scope's identity as text: an id written into `number`, or a name.
    fn ident<'a>(&'a self, number: &'a mut itoa::Buffer) -> &'a str {
        match self {
            Self::User(id) | Self::Bucket(id) | Self::Objects(id) => number.format(*id),
            Self::BucketName(name) => name.as_str(),
        }
    }

    /// The cache key of the scope's version: `ver:user:7`.
    fn version_key(&self) -> Key {
        joined(&[self.version_prefix(), self.ident(&mut itoa::Buffer::new())])
    }

    /// The cache key of an entry under a version of the scope: `user:7:{version}:state`.
    pub(super) fn entry_key(&self, version: &str, name: &str) -> Key {
        joined(&[self.kind(), self.ident(&mut itoa::Buffer::new()), version, name])
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind(), self.ident(&mut itoa::Buffer::new()))
    }
}

/// The cache scope of one account's state.
pub(crate) fn user_scope(user_id: i64) -> Scope {
    Scope::User(user_id)
}

/// The cache scope of one bucket's grants.
pub(crate) fn bucket_scope(bucket_id: i64) -> Scope {
    Scope::Bucket(bucket_id)
}

/// The cache scope of a bucket name's record (present or absent).
pub(crate) fn bucket_name_scope(name: &BucketName) -> Scope {
    Scope::BucketName(Key::from(name.as_str()))
}

/// The cache scope of one bucket's live objects and listing pages.
pub(crate) fn objects_scope(bucket_id: i64) -> Scope {
    Scope::Objects(bucket_id)
}

/// The scopes a read in a bucket looks up under: its name's record, its grants and its objects.
pub(crate) fn bucket_read_scopes(name: &BucketName, bucket_id: i64) -> [Scope; 3] {
    [bucket_name_scope(name), bucket_scope(bucket_id), objects_scope(bucket_id)]
}

pub(crate) fn fresh_version() -> Bytes {
    Bytes::from(uuid::Uuid::new_v4().simple().to_string())
}

/// Scope versions kept in this process: plenty for every account and bucket
/// in use; one that falls out only retires its scope's entries early.
const LOCAL_SCOPE_VERSIONS: usize = 100_000;

/// Where scope versions live. With a shared cache, in the cache (`ver:user:7`),
/// where every replica sees them, read once per request through the cache's
/// coherent copies (a round trip only for those this replica lacks), and
/// remembered by scope while the copies' epoch holds (`SeenVersions`).
/// With the cache in this process every write that retires a scope is made
/// here too, so they are kept here by scope: no key to spell out, nothing to
/// batch (a warm read spent a tenth of its instructions on that).
pub(crate) enum ScopeVersions {
    Shared(SeenVersions, Republisher),
    Local(quick_cache::sync::Cache<Scope, Bytes>),
}

impl ScopeVersions {
    pub(crate) fn for_cache(cache: &dyn crate::cache::Cache) -> Self {
        if cache.is_local() {
            Self::Local(quick_cache::sync::Cache::new(LOCAL_SCOPE_VERSIONS))
        } else {
            Self::Shared(SeenVersions::default(), Republisher::default())
        }
    }
}

/// How long a version read from the copies is reused, at most, while their
/// epoch holds: the epoch is what keeps it right; this only bounds the age
/// of anything it might miss, as the copies' own time to live does.
const SEEN_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Versions read from the shared cache's coherent copies, by scope, with the
/// copies' epoch at the time (`Cache::coherent_epoch`): reused while the
/// epoch is unchanged, so a warm read neither spells out nor looks up the
/// versions' string keys (~2,600 of its instructions on Redis).
pub(crate) struct SeenVersions(quick_cache::sync::Cache<Scope, (u64, std::time::Instant, Bytes)>);

impl Default for SeenVersions {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(LOCAL_SCOPE_VERSIONS))
    }
}

impl SeenVersions {
    /// The versions of every one of `scopes` seen under `epoch` within
    /// `SEEN_FOR` of `now`, or `None` if any is missing.
    fn all(&self, scopes: &[&Scope], epoch: u64, now: std::time::Instant) -> Option<SmallVec<[Bytes; 4]>> {
        scopes
            .iter()
            .map(|scope| {
                let (seen_epoch, seen_at, version) = self.0.get(*scope)?;
                (seen_epoch == epoch && now.saturating_duration_since(seen_at) < SEEN_FOR).then_some(version)
            })
            .collect()
    }

    fn record(&self, scope: &Scope, epoch: u64, now: std::time::Instant, version: Bytes) {
        self.0.insert(scope.clone(), (epoch, now, version));
    }
}

/// The version of `scope` in `versions`, created if there is none.
fn local_version(versions: &quick_cache::sync::Cache<Scope, Bytes>, scope: &Scope) -> Bytes {
    if let Some(version) = versions.get(scope) {
        return version;
    }
    let Ok(version) = versions.get_or_insert_with(scope, || Ok::<_, std::convert::Infallible>(fresh_version()));
    version
}

impl Services {
    /// The current version of `scope`, created if there is none; `None` without a cache.
    pub(crate) async fn version(&self, scope: &Scope) -> Option<Bytes> {
        if let ScopeVersions::Local(versions) = &self.scope_versions {
            return Some(local_version(versions, scope));
        }
        if let Some(version) = remembered(scope) {
            return Some(version);
        }
        let key = scope.version_key();
        // `if let`, not `match`: its scrutinee is dropped before `else`, so
        // the copies are not kept in this future across the await.
        let found = if let Some(mut copies) = self.cache.coherent_copies(&[&key]) {
            copies.pop()
        } else {
            self.cache.get_coherent(&[&key]).await.ok()?.pop().flatten()
        };
        let version = match found {
            Some(version) => version,
            None => self.cache.set_if_absent(&key, fresh_version(), VERSION_TTL).await.ok()?,
        };
        std::str::from_utf8(&version).ok()?;
        remember(scope, Some(version.clone()));
        Some(version)
    }

    /// `version` of each of `scopes`, taking what the request already read in one look.
    pub(crate) async fn versions_of<const N: usize>(&self, scopes: &[Scope; N]) -> [Option<Bytes>; N] {
        if let ScopeVersions::Local(versions) = &self.scope_versions {
            return scopes.each_ref().map(|scope| Some(local_version(versions, scope)));
        }
        let mut found = remembered_each(scopes);
        for (scope, slot) in scopes.iter().zip(&mut found) {
            if slot.is_none() {
                *slot = self.version(scope).await;
            }
        }
        found
    }

    /// Whether scope versions are fetched from a shared cache, so that a
    /// request gains from reading all it needs in one round trip.
    fn versions_are_fetched(&self) -> bool {
        !self.config.cache_lookups_disabled && matches!(self.scope_versions, ScopeVersions::Shared(..))
    }

    /// Tells the lookups of the current request which bucket its path names, so
    /// that its versions are read together with the caller's (an invalid name
    /// is ignored; versions kept in process need no such help).
    pub fn name_request_bucket(&self, name: &str) {
        if self.versions_are_fetched()
            && let Ok(name) = BucketName::parse(name)
        {
            let _ = request_memory::try_with(|memory| memory.borrow_mut().bucket = Some(name));
        }
    }

    /// Reads in one round trip the versions a request by `user_id` will need:
    /// the caller's account and, when the path names a bucket, the bucket's
    /// name and (under the id last seen for that name) its grants and objects.
    pub(crate) async fn prefetch_for_caller(&self, user_id: i64) {
        if !self.versions_are_fetched() {
            return;
        }
        let mut scopes: SmallVec<[Scope; 4]> = smallvec![user_scope(user_id)];
        let _ = request_memory::try_with(|memory| {
            if let Some(name) = &memory.borrow().bucket {
                match self.hints.bucket_ids.get(name) {
                    Some(id) => scopes.extend(bucket_read_scopes(name, id)),
                    None => scopes.push(bucket_name_scope(name)),
                }
            }
        });
        self.prefetch_versions(&scopes).await;
    }

    /// Reads the versions of `scopes` in one round trip, for the lookups of
    /// this request that follow (outside a request there is nowhere to keep
    /// them). Versions kept in process need no fetching.
    pub(crate) async fn prefetch_versions(&self, scopes: &[Scope]) {
        if !self.versions_are_fetched() {
            return;
        }
        // One look at the request's memory before and one after (each costs a
        // task-local access); the lists live on the stack: at most four scopes.
        let now = std::time::Instant::now();
        let Some(wanted) = request_memory::try_with(|memory| {
            let memory = memory.borrow();
            scopes.iter().filter(|scope| memory.version_at(scope, now).is_none()).collect::<SmallVec<[&Scope; 4]>>()
        }) else {
            return;
        };
        if wanted.is_empty() {
            return;
        }
        let ScopeVersions::Shared(seen, _) = &self.scope_versions else { return };
        if self.remember_seen_versions(seen, &wanted, now) {
            return;
        }
        let keys: SmallVec<[Key; 4]> = wanted.iter().map(|scope| scope.version_key()).collect();
        let key_refs: SmallVec<[&str; 4]> = keys.iter().map(Key::as_str).collect();
        // Answered from this process's copies when it holds them all (the
        // warm path: nothing awaited, nothing timed), else by the cache.
        // (`if let` for the reason given in `version`.)
        let values: SmallVec<[Option<Bytes>; 4]> =
            if let Some(copies) = self.coherent_copies_seen(seen, &wanted, &key_refs, now) {
                copies.into_iter().map(Some).collect()
            } else {
                let Ok(values) = self.cache.get_coherent(&key_refs).await else { return };
                SmallVec::from_vec(values)
            };
        let _ = request_memory::try_with(|memory| {
            let mut memory = memory.borrow_mut();
            for (scope, value) in wanted.into_iter().zip(values) {
                if let Some(version) = value.filter(|bytes| std::str::from_utf8(bytes).is_ok()) {
                    memory.remember_at(scope, Some(version), now);
                }
            }
        });
    }

    /// Puts in the request's memory the versions of `scopes` seen under the
    /// copies' current epoch, if every one was; whether it did. Synchronous,
    /// so that nothing of it is kept in the caller's future.
    fn remember_seen_versions(&self, seen: &SeenVersions, scopes: &[&Scope], now: std::time::Instant) -> bool {
        let Some(versions) = self.cache.coherent_epoch().and_then(|epoch| seen.all(scopes, epoch, now)) else {
            return false;
        };
        self.metrics.cache_copies_used.inc();
        let _ = request_memory::try_with(|memory| {
            let mut memory = memory.borrow_mut();
            for (scope, version) in scopes.iter().zip(versions) {
                memory.remember_at(scope, Some(version), now);
            }
        });
        true
    }

    /// `Cache::coherent_copies` of `keys` (the versions of `scopes`), each
    /// also recorded in `seen` under the epoch read before them.
    fn coherent_copies_seen(
        &self,
        seen: &SeenVersions,
        scopes: &[&Scope],
        keys: &[&str],
        now: std::time::Instant,
    ) -> Option<crate::cache::Copies> {
        let epoch = self.cache.coherent_epoch();
        let copies = self.cache.coherent_copies(keys)?;
        if let Some(epoch) = epoch {
            for (scope, version) in scopes.iter().zip(&copies) {
                if std::str::from_utf8(version).is_ok() {
                    seen.record(scope, epoch, now, version.clone());
                }
            }
        }
        Some(copies)
    }

    /// Retires every entry of `scope`; call after the write has committed.
    pub(crate) async fn invalidate(&self, scope: &Scope) {
        let version = fresh_version();
        let republisher = match &self.scope_versions {
            ScopeVersions::Local(versions) => {
                versions.insert(scope.clone(), version);
                return;
            }
            ScopeVersions::Shared(_, republisher) => republisher.clone(),
        };
        // Published from a task of its own, so a handler dropped once its write
        // committed (the client gone) still invalidates. Another replica with
        // a working link to the cache would go on reading the old version:
        // invalidations are tried even with the breaker open, and one the
        // cache refuses is published again in the background (`republish`).
        let (answer, answered) = tokio::sync::oneshot::channel();
        let (cache, key, first) = (self.cache.clone(), scope.version_key(), version.clone());
        tokio::spawn(async move {
            let published = cache.set_coherent(&key, first, VERSION_TTL).await;
            if published.is_err() {
                republisher.missed(cache, key);
            }
            let _ = answer.send(published.map_err(|error| error.to_string()));
        });
        match answered.await {
            Ok(Ok(())) => remember(scope, Some(version)),
            Ok(Err(error)) => {
                remember(scope, None);
                tracing::warn!(error = %error, scope = %scope, "could not invalidate a cache scope; trying again in the background");
            }
            Err(_) => remember(scope, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_their_parts_with_colons() {
        assert_eq!(joined(&["ver", "user:7"]), "ver:user:7");
        assert_eq!(user_scope(-3).to_string(), "user:-3");
        assert_eq!(objects_scope(42).version_key(), "ver:objects:42");
        assert_eq!(bucket_scope(5).entry_key("v1", "grant:7"), "bucket:5:v1:grant:7");
        let name = BucketName::parse("photos").expect("a bucket name");
        assert_eq!(bucket_name_scope(&name).entry_key("v2", "record"), "bucket-name:photos:v2:record");
        assert_eq!(joined(&["o", "a:b/c"]), "o:a:b/c");
        assert_eq!(joined(&[]), "");
        let long = "k".repeat(100);
        assert_eq!(joined(&["o", &long]), format!("o:{long}"), "longer than the stack buffer");
        assert_eq!(joined(&["é", "ü"]), "é:ü");
    }
}
