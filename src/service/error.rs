//! The one error type every use case returns; `http/problem.rs` turns it into problem+json.

use std::time::Duration;

use crate::metadata::MetaError;
use crate::storage::StorageError;

/// What `NotFound` names when an object's bytes are missing from storage.
pub(crate) const OBJECT_DATA: &str = "object data";

/// What went wrong, in terms a client can act on. Internal causes are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400 with a stable problem slug (e.g. `invalid-key`) and a human reason.
    #[error("{detail}")]
    BadRequest { slug: &'static str, detail: String },
    /// 401: missing, invalid or expired credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: absent, or not visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409 with a slug (`bucket-exists`, `bucket-not-empty`, `object-locked`, ...).
    #[error("{detail}")]
    Conflict { slug: &'static str, detail: String },
    /// 410: a link that existed but is expired, revoked or used up.
    #[error("{0}")]
    Gone(String),
    /// 412: a precondition header did not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 413 with a slug (`payload-too-large`, `quota-exceeded`).
    #[error("{detail}")]
    TooLarge { slug: &'static str, detail: String },
    /// 411: the body must declare its length.
    #[error("{0}")]
    LengthRequired(String),
    /// 415: the content is of a type this operation does not accept.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 416: the requested range lies outside an object of `size` bytes.
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    /// 422: well-formed request, content that cannot be processed.
    #[error("{0}")]
    Unprocessable(String),
    /// 429: throttled; retry after the given time.
    #[error("{detail}")]
    TooManyRequests { detail: String, retry_after: Duration },
    /// 502: the storage backend answered wrongly.
    #[error("storage backend error")]
    BadGateway(#[source] anyhow::Error),
    /// 503: a dependency (`database`, `storage`, `cache`) is unreachable.
    #[error("{0} unavailable")]
    Unavailable(&'static str, #[source] anyhow::Error),
    /// 503: every slot of a bounded resource (the thumbnail renderer) stayed
    /// taken; load, not a fault, so it is counted rather than logged.
    #[error("{0} busy")]
    Busy(&'static str),
    /// 500: a bug or an unexpected state; the cause is logged with the request id.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ServiceError {
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest { slug, detail: detail.into() }
    }

    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { slug, detail: detail.into() }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }
}

impl From<MetaError> for ServiceError {
    fn from(error: MetaError) -> Self {
        match error {
            MetaError::NotFound(what) => Self::NotFound(what),
            MetaError::Conflict(what) => Self::conflict("conflict", format!("{what} already exists")),
            // Every reference but a bucket's objects (checked where buckets are
            // deleted) points from what is written to its bucket or user.
            MetaError::Dangling(_) => Self::NotFound("bucket or user"),
            MetaError::InvalidText(what) => Self::bad_request(
                "invalid-text",
                format!("the {what} asked for contains a character that cannot be stored (NUL)"),
            ),
            MetaError::Unavailable(source) => Self::Unavailable("database", source.into()),
            MetaError::Integrity(what) => Self::Internal(anyhow::anyhow!(what)),
            MetaError::Other(source) => Self::Internal(source.into()),
        }
    }
}

impl From<StorageError> for ServiceError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound => Self::NotFound(OBJECT_DATA),
            StorageError::InvalidKey(reason) => Self::bad_request("invalid-key", reason),
            StorageError::Unavailable(source) => Self::Unavailable("storage", source),
            StorageError::Unsupported(what) => Self::bad_request("unsupported", what),
            StorageError::InvalidRange => Self::bad_request("invalid-range", "invalid byte range"),
            StorageError::PartMismatch(_) => Self::conflict(
                "parts-changed",
                "a part changed while the upload was being completed; list the parts, send again any part \
                 that is missing, and complete again",
            ),
            StorageError::Client(source) => Self::BadRequest {
                slug: "upload-interrupted",
                detail: format!("request body could not be read: {source}"),
            },
            StorageError::Backend(source) => Self::BadGateway(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_changed_under_a_completion_is_a_conflict_to_retry() {
        let error = ServiceError::from(StorageError::PartMismatch("part 1".into()));
        assert!(matches!(error, ServiceError::Conflict { slug: "parts-changed", .. }), "{error:?}");
        let error = ServiceError::from(StorageError::Backend(anyhow::anyhow!("boom")));
        assert!(matches!(error, ServiceError::BadGateway(_)), "{error:?}");
    }

    #[test]
    fn a_write_under_a_deleted_bucket_is_not_found_not_a_conflict() {
        let error = ServiceError::from(MetaError::Dangling("upload"));
        assert!(matches!(error, ServiceError::NotFound("bucket or user")), "{error:?}");
        let error = ServiceError::from(MetaError::Conflict("upload"));
        assert!(matches!(error, ServiceError::Conflict { slug: "conflict", .. }), "{error:?}");
    }
}
