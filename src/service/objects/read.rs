//! Reading objects: authorization first, then preconditions, ranges, bytes;
//! and listing from the metadata database.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::parse_key;
use crate::domain::conditional::{ValidatorText, etag_matches};
use crate::domain::{ByteRange, Permission, RangeOutcome};
use crate::metadata::{ListQuery, ObjectRecord};
use crate::policy::rbac::{self, Decision};
use crate::service::context::{Principal, RequestContext};
use crate::service::{ServiceError, ServiceResult, Services};
use crate::storage::{BlobRange, ByteStream};

pub const MAX_LIST: usize = 1000;
const DEFAULT_LIST: usize = 100;

/// The conditional and range headers of a read, borrowed from the request.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest<'a> {
    /// HEAD: metadata only, the storage backend is not touched.
    pub head_only: bool,
    pub range: Option<&'a str>,
    /// Entity-tag lists: one header line borrowed, repeated lines joined.
    pub if_match: Option<Cow<'a, str>>,
    pub if_none_match: Option<Cow<'a, str>>,
    pub if_modified_since: Option<DateTime<Utc>>,
    pub if_unmodified_since: Option<DateTime<Utc>>,
    pub if_range: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Full,
    Partial { start: u64, end_inclusive: u64 },
    NotModified,
}

pub struct ObjectRead {
    /// Shared with the lookup cache: a warm read does not copy the record.
    pub object: std::sync::Arc<ObjectRecord>,
    /// The object's `ETag` and `Last-Modified`, kept by a warm read's memo.
    pub validators: ValidatorText,
    pub outcome: ReadOutcome,
    /// `None` for HEAD and 304.
    pub body: Option<ByteStream>,
}

/// A listing request as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    /// Decoded cursor: the last key or prefix of the previous page.
    pub after: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub objects: Vec<ObjectRecord>,
    pub prefixes: Vec<String>,
    pub next_after: Option<String>,
}

/// The validators an answer about `object` carries.
pub(crate) fn validator_text(object: &ObjectRecord) -> ValidatorText {
    ValidatorText::new(object.etag.as_deref(), object.created_at)
}

/// HTTP dates have whole seconds; compare at that resolution.
fn seconds(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

/// RFC 9110 §13.2.2 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
fn preconditions(object: &ObjectRecord, request: &ReadRequest<'_>) -> Result<Option<ReadOutcome>, ServiceError> {
    let etag = object.etag.as_deref().unwrap_or_default();
    let modified = seconds(object.created_at);
    if let Some(header) = request.if_match.as_deref() {
        if !etag_matches(header, etag, false) {
            return Err(ServiceError::PreconditionFailed);
        }
    } else if let Some(since) = request.if_unmodified_since
        && modified > seconds(since)
    {
        return Err(ServiceError::PreconditionFailed);
    }
    if let Some(header) = request.if_none_match.as_deref() {
        if etag_matches(header, etag, true) {
            return Ok(Some(ReadOutcome::NotModified));
        }
    } else if let Some(since) = request.if_modified_since
        && modified <= seconds(since)
    {
        return Ok(Some(ReadOutcome::NotModified));
    }
    Ok(None)
}

/// What a read would send (`Full` or `Partial`), as far as the request and
/// the record decide it; `None` for a `HEAD`, a `304`/`412` precondition or
/// a `416` range. Only a backend failure can still make it send nothing.
pub(crate) fn bytes_to_send(object: &ObjectRecord, request: &ReadRequest<'_>) -> Option<ReadOutcome> {
    if request.head_only || !matches!(preconditions(object, request), Ok(None)) {
        return None;
    }
    range_of(object, request).ok()
}

/// The range to serve, honouring `If-Range` (a stale validator means the whole body).
fn range_of(object: &ObjectRecord, request: &ReadRequest<'_>) -> Result<ReadOutcome, ServiceError> {
    let Some(header) = request.range else {
        return Ok(ReadOutcome::Full);
    };
    if let Some(validator) = request.if_range {
        let etag = object.etag.as_deref().unwrap_or_default();
        let current = if validator.trim_start().starts_with('"') {
            etag_matches(validator, etag, false)
        } else {
            httpdate::parse_http_date(validator)
                .map(|date| DateTime::<Utc>::from(date).timestamp() == seconds(object.created_at))
                .unwrap_or(false)
        };
        if !current {
            return Ok(ReadOutcome::Full);
        }
    }
    let size = u64::try_from(object.size).unwrap_or(0);
    Ok(match ByteRange::parse_header(header).map(|r| r.resolve(size)) {
        None | Some(RangeOutcome::Full) => ReadOutcome::Full,
        Some(RangeOutcome::Partial { start, end_inclusive }) => ReadOutcome::Partial { start, end_inclusive },
        Some(RangeOutcome::Unsatisfiable) => return Err(ServiceError::RangeNotSatisfiable { size }),
    })
}

impl Services {
    /// GET and HEAD. Access is decided before any precondition is evaluated
    /// or metadata answered, so nothing leaks to those who may not read.
    pub async fn read_object(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        request: &ReadRequest<'_>,
    ) -> ServiceResult<ObjectRead> {
        if let Some(memo) = self.read_memo(principal.user_id, bucket, key).await
            && rbac::bucket_access(principal.subject(), memo.grant, Permission::Read) == Decision::Allow
        {
            let (object, validators) = (Arc::clone(&memo.object), memo.validators.clone());
            return self
                .open_object(ctx, principal.actor(), object, validators, request, memo.bucket.name.as_str())
                .await;
        }
        // Boxed: with it inline this future outgrew glibc's per-thread cache (see `http::objects`).
        Box::pin(self.read_object_looked_up(ctx, principal, bucket, key, request)).await
    }

    /// `read_object` without a usable memo: every lookup, then a memo for the next read.
    async fn read_object_looked_up(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        request: &ReadRequest<'_>,
    ) -> ServiceResult<ObjectRead> {
        let versions = self.read_versions(bucket).await;
        let (bucket, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Read, "object.get").await?;
        let object_key = parse_key(key)?;
        let object = self.live_object_cached(bucket.id, &object_key).await?.ok_or(ServiceError::NotFound("object"))?;
        if let Some(versions) = versions {
            let grant = self.grant_of(bucket.id, principal.user_id).await?;
            self.remember_read(principal.user_id, key, versions, &bucket, grant, &object);
        }
        let validators = validator_text(&object);
        self.open_object(ctx, principal.actor(), object, validators, request, bucket.name.as_str()).await
    }

    /// Preconditions, range and bytes of an object the caller may read. GETs
    /// that return bytes are audited (queued, see `ReadLog`).
    pub(crate) async fn open_object(
        &self,
        ctx: &RequestContext,
        actor: &str,
        object: std::sync::Arc<ObjectRecord>,
        validators: ValidatorText,
        request: &ReadRequest<'_>,
        bucket_name: &str,
    ) -> ServiceResult<ObjectRead> {
        self.open_version(ctx, actor, object, validators, request, bucket_name, true).await
    }

    /// `open_object`; `reopen`: whether a version whose bytes went since it
    /// was looked up (overwritten or deleted meanwhile) may give way, once,
    /// to the version live now. A read claimed against this very version (a
    /// share link's) may not: it is `404` instead, as the live version's size
    /// or validators may differ from what was claimed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open_version(
        &self,
        ctx: &RequestContext,
        actor: &str,
        object: std::sync::Arc<ObjectRecord>,
        validators: ValidatorText,
        request: &ReadRequest<'_>,
        bucket_name: &str,
        reopen: bool,
    ) -> ServiceResult<ObjectRead> {
        if let Some(outcome) = preconditions(&object, request)? {
            return Ok(ObjectRead { object, validators, outcome, body: None });
        }
        // Range is defined for GET alone (RFC 9110 §14.2): a HEAD describes the whole object.
        if request.head_only {
            return Ok(ObjectRead { object, validators, outcome: ReadOutcome::Full, body: None });
        }
        let outcome = range_of(&object, request)?;
        let range = match outcome {
            ReadOutcome::Partial { start, end_inclusive } => Some(BlobRange { start, end_inclusive }),
            _ => None,
        };
        let read = match self.blobs.get(&object.blob_key, range).await {
            Ok(read) => read,
            Err(crate::storage::StorageError::NotFound) => {
                let live = match reopen {
                    true => self.store.live_object(object.bucket_id, &object.key).await?,
                    false => None,
                };
                let Some(live) = live.filter(|live| live.id != object.id) else {
                    return Err(ServiceError::NotFound("object"));
                };
                let validators = validator_text(&live);
                let live = std::sync::Arc::new(live);
                let reopened = self.open_version(ctx, actor, live, validators, request, bucket_name, false);
                return Box::pin(reopened).await;
            }
            Err(other) => return Err(other.into()),
        };
        let event = ctx
            .event(self.clock.now(), actor, "object.get")
            .bucket(bucket_name)
            .key(object.key.as_str())
            .details(serde_json::json!({ "bytes": read.content_length, "range": request.range.is_some() }));
        self.reads.record(event);
        Ok(ObjectRead { object, validators, outcome, body: Some(read.body) })
    }

    pub async fn list_objects(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        request: ListRequest,
    ) -> ServiceResult<ListPage> {
        let (bucket, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Read, "object.list").await?;
        let ListRequest { prefix, delimiter, after, limit } = request;
        let prefix = prefix.unwrap_or_default();
        if prefix.len() > crate::domain::object_key::MAX_KEY_BYTES || prefix.chars().any(char::is_control) {
            return Err(ServiceError::bad_request(
                "invalid-prefix",
                "prefix must be at most 1024 bytes without control characters",
            ));
        }
        let delimiter = delimiter.filter(|d| !d.is_empty());
        if delimiter.as_ref().is_some_and(|d| d.len() > 32) {
            return Err(ServiceError::bad_request("invalid-delimiter", "delimiter must be at most 32 bytes"));
        }
        // Like every other list, a page larger than the most one can be is clamped.
        let limit = limit.unwrap_or(DEFAULT_LIST).min(MAX_LIST);
        if limit == 0 {
            return Err(ServiceError::bad_request("invalid-limit", format!("limit must be between 1 and {MAX_LIST}")));
        }
        let query = ListQuery { prefix, delimiter, after, limit };
        let result = self.list_cached(bucket.id, &query).await?;
        Ok(ListPage { objects: result.objects, prefixes: result.prefixes, next_after: result.next_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ObjectKey;
    use crate::metadata::ObjectState;

    fn object() -> ObjectRecord {
        let at = DateTime::from_timestamp(1_700_000_000, 500_000_000).expect("time");
        ObjectRecord {
            id: 1,
            bucket_id: 1,
            key: ObjectKey::parse("a").expect("key"),
            blob_key: "b".into(),
            state: ObjectState::Committed,
            size: 100,
            etag: Some("abc".into()),
            sha256: None,
            content_type: "text/plain".into(),
            owner_id: None,
            created_at: at,
            updated_at: at,
            retention_mode: None,
            retain_until: None,
            legal_hold: false,
        }
    }

    fn at(seconds: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(seconds, 0)
    }

    #[test]
    fn precondition_order_follows_rfc_9110() {
        let o = object();
        let req = |f: fn(&mut ReadRequest<'static>)| {
            let mut r = ReadRequest::default();
            f(&mut r);
            r
        };
        assert!(matches!(
            preconditions(&o, &req(|r| r.if_match = Some("\"nope\"".into()))),
            Err(ServiceError::PreconditionFailed)
        ));
        assert!(matches!(preconditions(&o, &req(|r| r.if_match = Some("\"abc\"".into()))), Ok(None)));
        assert!(matches!(
            preconditions(&o, &req(|r| r.if_unmodified_since = at(1_699_999_999))),
            Err(ServiceError::PreconditionFailed)
        ));
        assert!(
            matches!(preconditions(&o, &req(|r| r.if_unmodified_since = at(1_700_000_000))), Ok(None)),
            "same second"
        );
        assert!(matches!(
            preconditions(&o, &req(|r| r.if_none_match = Some("W/\"abc\"".into()))),
            Ok(Some(ReadOutcome::NotModified))
        ));
        assert!(matches!(
            preconditions(&o, &req(|r| r.if_modified_since = at(1_700_000_000))),
            Ok(Some(ReadOutcome::NotModified))
        ));
        assert!(matches!(preconditions(&o, &req(|r| r.if_modified_since = at(1_699_999_999))), Ok(None)));
        // If-None-Match wins over If-Modified-Since.
        let both = req(|r| {
            r.if_none_match = Some("\"other\"".into());
            r.if_modified_since = at(1_800_000_000);
        });
        assert!(matches!(preconditions(&o, &both), Ok(None)));
    }

    #[test]
    fn ranges_and_if_range() {
        let o = object();
        let mut r = ReadRequest { range: Some("bytes=10-19"), ..ReadRequest::default() };
        assert_eq!(range_of(&o, &r).ok(), Some(ReadOutcome::Partial { start: 10, end_inclusive: 19 }));
        r.if_range = Some("\"stale\"");
        assert_eq!(range_of(&o, &r).ok(), Some(ReadOutcome::Full));
        r.if_range = Some("\"abc\"");
        assert_eq!(range_of(&o, &r).ok(), Some(ReadOutcome::Partial { start: 10, end_inclusive: 19 }));
        let unsatisfiable = ReadRequest { range: Some("bytes=100-"), ..ReadRequest::default() };
        assert!(matches!(range_of(&o, &unsatisfiable), Err(ServiceError::RangeNotSatisfiable { size: 100 })));
    }
}
