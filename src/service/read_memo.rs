//! One memo per (caller, bucket, object key) for reads: the bucket record,
//! the caller's grant and the live object together, kept under the versions
//! of the three scopes they hang on. A warm read compares three versions (read
//! with the caller's, together from a shared cache's coherent copies, or in
//! process) instead of looking up three entries; a write that retires any of
//! the scopes retires the memo.
//!
//! The versions are captured *before* the lookups whose results the memo
//! keeps: data loaded afterwards is at least as new as they are, so a memo
//! can be too new for its versions (and then is never used) but never too old.

use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Services;
use super::scopes::{Key, bucket_read_scopes};
use crate::domain::{BucketName, Permission};
use crate::metadata::{BucketRecord, ObjectRecord};

const READ_MEMOS: usize = 10_000;
/// As long as an entry stays decoded in process (see `lookups`).
const MEMO_TTL: Duration = Duration::from_secs(60);

/// What a read of one object by one user looked up, and under which versions.
pub(crate) struct ReadMemo {
    pub bucket: BucketRecord,
    pub grant: Option<Permission>,
    pub object: Arc<ObjectRecord>,
    pub validators: crate::domain::conditional::ValidatorText,
    /// The versions of the bucket's name, grants and objects scopes, in that order.
    versions: [Bytes; 3],
    at: Instant,
}

#[derive(PartialEq, Eq, Hash)]
struct MemoKey {
    user_id: i64,
    bucket: Key,
    key: Key,
}

/// A `MemoKey` borrowed from the request (hashes as a `MemoKey` does), so a lookup copies nothing.
#[derive(Hash)]
struct MemoKeyRef<'a> {
    user_id: i64,
    bucket: &'a str,
    key: &'a str,
}

impl quick_cache::Equivalent<MemoKey> for MemoKeyRef<'_> {
    fn equivalent(&self, memo: &MemoKey) -> bool {
        self.user_id == memo.user_id && self.bucket == memo.bucket && self.key == memo.key
    }
}

/// The memos of this process.
pub struct ReadMemos(quick_cache::sync::Cache<MemoKey, Arc<ReadMemo>>);

impl Default for ReadMemos {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(READ_MEMOS))
    }
}

/// The versions a read of `bucket` is about to look up under, taken before
/// the lookups (see the module's note). `None` until the bucket's id has been seen.
pub(crate) struct ReadVersions {
    bucket_id: i64,
    versions: [Bytes; 3],
}

impl Services {
    /// The memo of an earlier read of `key` in `bucket` by `user_id`, if every
    /// scope it hangs on still has the version it was read under.
    pub(crate) async fn read_memo(&self, user_id: i64, bucket: &str, key: &str) -> Option<Arc<ReadMemo>> {
        if self.config.cache_lookups_disabled {
            return None;
        }
        let memo = self.hints.reads.0.get(&MemoKeyRef { user_id, bucket, key })?;
        if memo.at.elapsed() >= MEMO_TTL {
            return None;
        }
        let current = self.versions_of(&bucket_read_scopes(&memo.bucket.name, memo.bucket.id)).await;
        if current.iter().zip(&memo.versions).any(|(current, kept)| current.as_ref() != Some(kept)) {
            return None;
        }
        // The three lookups the memo answers count as the cache hits they replace.
        self.metrics.cache_lookup.hit.inc_by(3);
        Some(memo)
    }

    /// The current versions of the scopes a read of `bucket` will look up under.
    pub(crate) async fn read_versions(&self, bucket: &str) -> Option<ReadVersions> {
        if self.config.cache_lookups_disabled {
            return None;
        }
        let name = BucketName::parse(bucket).ok()?;
        let bucket_id = self.hints.bucket_ids.get(&name)?;
        let [name, grants, objects] = self.versions_of(&bucket_read_scopes(&name, bucket_id)).await;
        Some(ReadVersions { bucket_id, versions: [name?, grants?, objects?] })
    }

    /// Keeps what a read looked up under the versions taken before it (by `read_versions`).
    pub(crate) fn remember_read(
        &self,
        user_id: i64,
        key: &str,
        taken: ReadVersions,
        bucket: &BucketRecord,
        grant: Option<Permission>,
        object: &Arc<ObjectRecord>,
    ) {
        if taken.bucket_id != bucket.id {
            return;
        }
        let memo = ReadMemo {
            bucket: bucket.clone(),
            grant,
            object: Arc::clone(object),
            validators: super::objects::validator_text(object),
            versions: taken.versions,
            at: Instant::now(),
        };
        let memo_key = MemoKey { user_id, bucket: Key::from(bucket.name.as_str()), key: Key::from(key) };
        self.hints.reads.0.insert(memo_key, Arc::new(memo));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, RandomState};

    #[test]
    fn a_borrowed_key_hashes_and_compares_as_the_stored_one() {
        let stored = MemoKey { user_id: 7, bucket: Key::from("photos"), key: Key::from("a/b.jpg") };
        let borrowed = MemoKeyRef { user_id: 7, bucket: "photos", key: "a/b.jpg" };
        let hasher = RandomState::new();
        assert_eq!(hasher.hash_one(&stored), hasher.hash_one(&borrowed));
        assert!(quick_cache::Equivalent::equivalent(&borrowed, &stored));
        for other in [
            MemoKeyRef { user_id: 8, bucket: "photos", key: "a/b.jpg" },
            MemoKeyRef { user_id: 7, bucket: "photo", key: "sa/b.jpg" },
            MemoKeyRef { user_id: 7, bucket: "photos", key: "a/b.jpeg" },
        ] {
            assert!(!quick_cache::Equivalent::equivalent(&other, &stored));
        }
    }
}
