//! What one request carries while it runs: its id, the scope versions it has
//! read (so a request reads each scope's version once, and sees its own
//! writes) and the bucket its path names (so the caller's prefetch can batch it).

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use super::scopes::Scope;
use crate::domain::BucketName;

/// How long a request trusts a version it has read: a long request (an
/// upload) that looks something up again later sees changes made meanwhile.
const REMEMBER_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// A scope version a request has read, and when.
struct RememberedVersion {
    scope: Scope,
    version: Bytes,
    at: std::time::Instant,
}

/// What one request carries (see `within_request`).
#[derive(Default)]
pub(super) struct RequestMemory {
    /// Kept here rather than in the HTTP request's extensions, a map each
    /// request would allocate and clear (~1,000 instructions of a warm read).
    request_id: Option<Arc<str>>,
    /// The scope versions the request has read: a handful, so a list.
    versions: Vec<RememberedVersion>,
    /// The bucket the request's path names, if any.
    pub(super) bucket: Option<BucketName>,
}

tokio::task_local! {
    static REQUEST: RefCell<RequestMemory>;
}

/// Runs one request, known by `request_id`, with its own memory of scope
/// versions: lookups of the request within `REMEMBER_FOR` see the scope as it
/// was when first read (or as the request's own writes left it), and read it
/// from the cache once.
pub async fn within_request<F: Future>(request_id: Arc<str>, request: F) -> F::Output {
    let memory = RequestMemory { request_id: Some(request_id), ..RequestMemory::default() };
    REQUEST.scope(RefCell::new(memory), request).await
}

/// The id of the request running on this task (`None` outside `within_request`).
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST.try_with(|memory| memory.borrow().request_id.clone()).ok().flatten()
}

impl RequestMemory {
    /// The version of `scope` this request read less than `REMEMBER_FOR` before `now`.
    pub(super) fn version_at(&self, scope: &Scope, now: std::time::Instant) -> Option<&Bytes> {
        let entry = self.versions.iter().find(|entry| entry.scope == *scope)?;
        (now.saturating_duration_since(entry.at) < REMEMBER_FOR).then_some(&entry.version)
    }

    pub(super) fn remember_at(&mut self, scope: &Scope, version: Option<Bytes>, now: std::time::Instant) {
        let existing = self.versions.iter().position(|entry| entry.scope == *scope);
        match (version, existing) {
            (Some(version), Some(index)) => {
                let entry = &mut self.versions[index];
                entry.version = version;
                entry.at = now;
            }
            (Some(version), None) => self.versions.push(RememberedVersion { scope: scope.clone(), version, at: now }),
            (None, Some(index)) => {
                self.versions.swap_remove(index);
            }
            (None, None) => {}
        }
    }
}

pub(super) fn remembered(scope: &Scope) -> Option<Bytes> {
    REQUEST.try_with(|memory| memory.borrow().version_at(scope, std::time::Instant::now()).cloned()).ok().flatten()
}

/// What `remembered` gives for each of `scopes`, from one look at the request's memory.
pub(super) fn remembered_each<const N: usize>(scopes: &[Scope; N]) -> [Option<Bytes>; N] {
    let now = std::time::Instant::now();
    REQUEST
        .try_with(|memory| {
            let memory = memory.borrow();
            scopes.each_ref().map(|scope| memory.version_at(scope, now).cloned())
        })
        .unwrap_or_else(|_| std::array::from_fn(|_| None))
}

pub(super) fn remember(scope: &Scope, version: Option<Bytes>) {
    let now = std::time::Instant::now();
    let _ = REQUEST.try_with(|memory| memory.borrow_mut().remember_at(scope, version, now));
}

/// Runs `f` on the current request's memory; `None` outside a request.
pub(super) fn try_with<R>(f: impl FnOnce(&RefCell<RequestMemory>) -> R) -> Option<R> {
    REQUEST.try_with(f).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::service::scopes::{bucket_scope, user_scope};

    #[tokio::test]
    async fn a_request_remembers_versions_briefly_and_only_its_own() {
        assert_eq!(remembered(&user_scope(1)), None, "outside a request nothing is kept");
        remember(&user_scope(1), Some(Bytes::from_static(b"v1")));
        assert_eq!(remembered(&user_scope(1)), None);
        within_request(Arc::from("r1"), async {
            assert_eq!(current_request_id().as_deref(), Some("r1"));
            remember(&user_scope(1), Some(Bytes::from_static(b"v1")));
            assert_eq!(remembered(&user_scope(1)).as_deref(), Some(&b"v1"[..]));
            remember(&user_scope(1), None);
            assert_eq!(remembered(&user_scope(1)), None, "forgotten after a failed invalidation");
            remember(&bucket_scope(2), Some(Bytes::from_static(b"v2")));
            tokio::time::sleep(REMEMBER_FOR + Duration::from_millis(50)).await;
            assert_eq!(remembered(&bucket_scope(2)), None, "read again after a while");
        })
        .await;
        within_request(Arc::from("r2"), async {
            assert_eq!(remembered(&bucket_scope(2)), None, "each request starts afresh");
            assert_eq!(current_request_id().as_deref(), Some("r2"));
        })
        .await;
        assert_eq!(current_request_id(), None, "outside a request there is no id");
    }
}
