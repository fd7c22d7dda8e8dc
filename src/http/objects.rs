//! `/api/v1/buckets/{bucket}/objects…` and `/copy/{key}`: object I/O.

use std::borrow::Cow;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;

use super::body::byte_stream;
use super::cursor;
use super::extract::Caller;
use crate::domain::conditional::{ValidatorText, WriteConditions};
use crate::metadata::ObjectRecord;
use crate::policy::content::content_disposition;
use crate::service::objects::{ListRequest, ObjectRead, ObjectView, PutRequest, ReadOutcome, ReadRequest};
use crate::service::{ServiceError, Services};

/// Objects are served so that nothing in them can run in Coffer's origin.
pub const OBJECT_CSP: &str = "default-src 'none'; sandbox; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";
const MAX_FORM_FILES: usize = 1000;
const MAX_FORM_TEXT: usize = 4096;

/// The object key: the raw path after `marker`, percent-decoded exactly once
/// (borrowed from the path when it has nothing to decode).
pub fn key_from_path<'a>(request: &'a HttpRequest, marker: &str) -> Result<Cow<'a, str>, ServiceError> {
    let path = request.uri().path();
    let missing = || ServiceError::bad_request("invalid-key", "missing object key");
    // `/api/v1/buckets/{bucket}{marker}{key}`: skip the bucket, whose name may equal the marker.
    let after_buckets = path.strip_prefix("/api/v1/buckets/").ok_or_else(missing)?;
    let after_bucket = &after_buckets[after_buckets.find('/').ok_or_else(missing)?..];
    let raw = after_bucket.strip_prefix(marker).ok_or_else(missing)?;
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ServiceError::bad_request("invalid-key", "the object key is not valid UTF-8"))
}

/// A header's text. Bytes beyond visible ASCII are kept (lossily), so that a
/// malformed value is refused by its parser (400) instead of read as absent:
/// a garbled `Content-MD5` must not store an unchecked object.
fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers.get(name).map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

fn put_request(headers: &HeaderMap) -> Result<PutRequest, ServiceError> {
    let content_length = match header_text(headers, header::CONTENT_LENGTH) {
        Some(value) => {
            Some(value.parse().map_err(|_| ServiceError::bad_request("invalid-length", "invalid Content-Length"))?)
        }
        None => None,
    };
    Ok(PutRequest {
        content_length,
        content_type: header_text(headers, header::CONTENT_TYPE),
        content_md5: header_text(headers, "content-md5"),
        checksum_sha256: header_text(headers, "x-checksum-sha256"),
        conditions: write_conditions(headers),
    })
}

/// `If-Match`, `If-None-Match` and `If-Unmodified-Since` of a write. Repeated
/// lines of a list header are one list (RFC 9110 §5.3); a tag that is not
/// UTF-8 stays present and matches nothing, so it fails rather than vanishes.
fn write_conditions(headers: &HeaderMap) -> WriteConditions {
    WriteConditions {
        if_match: tag_list(headers, header::IF_MATCH).map(Cow::into_owned),
        if_none_match: tag_list(headers, header::IF_NONE_MATCH).map(Cow::into_owned),
        if_unmodified_since: headers
            .get(header::IF_UNMODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(http_date),
    }
}

const PRIVATE_NO_CACHE: HeaderValue = HeaderValue::from_static("private, no-cache");
const SEC_FETCH_DEST: header::HeaderName = header::HeaderName::from_static("sec-fetch-dest");

/// Stored content is never loaded by a page as a script, a style sheet or a
/// worker. `nosniff` lets a stored `application/javascript` run wherever a
/// `<script>` points at it, the UI's own `script-src 'self'` included, and
/// the sandboxing CSP and `attachment` bind only documents. Browsers say
/// what a request is for in `Sec-Fetch-Dest` (clients that send none, and
/// navigations, downloads, media and `fetch`, are served).
pub fn refuse_active_loads(headers: &HeaderMap) -> Result<(), ServiceError> {
    let destination = headers.get(SEC_FETCH_DEST).map(HeaderValue::as_bytes).unwrap_or_default();
    match destination {
        b"script" | b"style" | b"worker" | b"sharedworker" | b"serviceworker" | b"audioworklet" | b"paintworklet"
        | b"xslt" | b"json" => {
            Err(ServiceError::Forbidden("stored content is not served as a script, style sheet or worker".into()))
        }
        _ => Ok(()),
    }
}
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const OBJECT_CSP_VALUE: HeaderValue = HeaderValue::from_static(OBJECT_CSP);

fn created(object: &ObjectRecord) -> HttpResponse {
    let mut response = HttpResponse::Created();
    let etag = object.etag.as_deref().map(ValidatorText::quoted_etag);
    if let Some(etag) = etag.and_then(|etag| HeaderValue::from_maybe_shared(etag).ok()) {
        response.insert_header((header::ETAG, etag));
    }
    response.json(ObjectView::from(object))
}

pub async fn put(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    bucket: web::Path<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/objects/")?;
    let put = put_request(request.headers())?;
    let body = byte_stream(payload, services.config.client_body_timeout);
    let object = services.put_object(&caller.ctx, &caller.principal, &bucket.0, &key, body, &put).await?;
    Ok(created(&object))
}

/// `multipart/form-data`: an optional `prefix` field, then one or more `file` parts.
pub async fn post_form(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
    form: Multipart,
) -> Result<HttpResponse, ServiceError> {
    let mut stored = Vec::new();
    if let Err(error) = store_form_files(&services, &caller, &bucket, form, &mut stored).await {
        if stored.is_empty() {
            return Err(error);
        }
        // Named in every problem (a 503 as well as a 400): what the client need not resend.
        let keys: Vec<&str> = stored.iter().map(|o| o.key.as_str()).collect();
        return Ok(super::problem::error_answer(&naming_stored(error, &stored), Some(("stored", keys.into()))));
    }
    if stored.is_empty() {
        return Err(ServiceError::bad_request("invalid-form", "no file part in the form"));
    }
    Ok(HttpResponse::Created().json(serde_json::json!({ "objects": stored })))
}

/// Keys a problem names of the files a form stored before it failed.
const NAMED_STORED_FILES: usize = 20;

/// An error after some files of a form were stored. They are kept (each is a
/// whole object, and one may have replaced an older one, which cannot be
/// undone), so the problem names them (every one in its `stored` member, the
/// first few in a 4xx's detail) and the client resends only the rest.
fn naming_stored(error: ServiceError, stored: &[ObjectView]) -> ServiceError {
    if stored.is_empty() {
        return error;
    }
    let mut keys = stored.iter().take(NAMED_STORED_FILES).map(|o| o.key.as_str()).collect::<Vec<_>>().join(", ");
    if stored.len() > NAMED_STORED_FILES {
        keys.push_str(&format!(" and {} more", stored.len() - NAMED_STORED_FILES));
    }
    let note = format!("; the {} file(s) before it were stored: {keys}", stored.len());
    match error {
        ServiceError::BadRequest { slug, detail } => ServiceError::BadRequest { slug, detail: detail + &note },
        ServiceError::Conflict { slug, detail } => ServiceError::Conflict { slug, detail: detail + &note },
        ServiceError::TooLarge { slug, detail } => ServiceError::TooLarge { slug, detail: detail + &note },
        other => other,
    }
}

/// A body that is not a form at all is of the wrong media type (415); a broken form is a 400.
fn form_error(error: actix_multipart::MultipartError) -> ServiceError {
    use actix_multipart::MultipartError as E;
    match error {
        E::ContentTypeMissing | E::ContentTypeParse | E::ContentTypeIncompatible => {
            ServiceError::UnsupportedMediaType("the body must be multipart/form-data".into())
        }
        other => ServiceError::bad_request("invalid-form", other.to_string()),
    }
}

/// Stores each `file` part of `form` as it arrives, under the `prefix` field's value.
async fn store_form_files(
    services: &Services,
    caller: &Caller,
    bucket: &str,
    mut form: Multipart,
    stored: &mut Vec<ObjectView>,
) -> Result<(), ServiceError> {
    let mut prefix = String::new();
    while let Some(field) = form.next().await {
        let mut field = field.map_err(form_error)?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "prefix" => {
                let mut text = Vec::new();
                while let Some(chunk) = field.next().await {
                    text.extend_from_slice(
                        &chunk.map_err(|e| ServiceError::bad_request("invalid-form", e.to_string()))?,
                    );
                    if text.len() > MAX_FORM_TEXT {
                        return Err(ServiceError::bad_request("invalid-form", "the prefix field is too long"));
                    }
                }
                prefix = String::from_utf8(text)
                    .map_err(|_| ServiceError::bad_request("invalid-form", "prefix is not UTF-8"))?;
            }
            "file" => {
                if stored.len() == MAX_FORM_FILES {
                    return Err(ServiceError::bad_request(
                        "invalid-form",
                        format!("at most {MAX_FORM_FILES} files per request"),
                    ));
                }
                let filename = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(str::to_owned)
                    .ok_or_else(|| ServiceError::bad_request("invalid-form", "a file part has no filename"))?;
                let key = crate::service::objects::key_for_upload(&prefix, &filename)?;
                let content_type =
                    field.content_type().map(ToString::to_string).filter(|t| t != "application/octet-stream");
                let put = PutRequest { content_type, ..PutRequest::default() };
                let object = services
                    .put_object(
                        &caller.ctx,
                        &caller.principal,
                        bucket,
                        key.as_str(),
                        byte_stream(field, services.config.client_body_timeout),
                        &put,
                    )
                    .await?;
                stored.push(ObjectView::from(&object));
            }
            other => return Err(ServiceError::bad_request("invalid-form", format!("unexpected form field {other:?}"))),
        }
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    download: Option<String>,
}

/// The conditional and range headers of a read, borrowed from `headers`.
pub fn read_request_of(headers: &HeaderMap, head_only: bool) -> ReadRequest<'_> {
    let text = |name| headers.get(name).and_then(|value: &HeaderValue| value.to_str().ok());
    // Entity tags may hold bytes beyond ASCII (obs-text). Such a tag matches
    // none of ours, but it must still count: an If-Match that vanished would
    // let the request through instead of failing it with 412.
    let tags = |name| {
        headers.get(name).map(|value: &HeaderValue| std::str::from_utf8(value.as_bytes()).unwrap_or(UNREADABLE_TAG))
    };
    ReadRequest {
        head_only,
        range: text(header::RANGE),
        if_match: tag_list(headers, header::IF_MATCH),
        if_none_match: tag_list(headers, header::IF_NONE_MATCH),
        if_modified_since: text(header::IF_MODIFIED_SINCE).and_then(http_date),
        if_unmodified_since: text(header::IF_UNMODIFIED_SINCE).and_then(http_date),
        if_range: tags(header::IF_RANGE),
    }
}

/// An entity-tag list header: its one line as is (no copy), repeated lines
/// joined into one list (RFC 9110 §5.3), so no line is ignored.
pub(super) fn tag_list(headers: &HeaderMap, name: header::HeaderName) -> Option<Cow<'_, str>> {
    fn text(value: &HeaderValue) -> &str {
        std::str::from_utf8(value.as_bytes()).unwrap_or(UNREADABLE_TAG)
    }
    let mut lines = headers.get_all(name);
    let first = text(lines.next()?);
    match lines.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut joined = format!("{first}, {}", text(second));
            for line in lines {
                joined.push_str(", ");
                joined.push_str(text(line));
            }
            Some(Cow::Owned(joined))
        }
    }
}

/// Stands for an entity tag that is not UTF-8; no stored tag (a hex digest) equals it.
const UNREADABLE_TAG: &str = "\"not-utf-8\"";

fn http_date(text: &str) -> Option<DateTime<Utc>> {
    httpdate::parse_http_date(text).ok().map(DateTime::<Utc>::from)
}

/// Status, validators and safety headers of an object read; the body streams.
pub fn object_response(read: ObjectRead, force_download: bool) -> HttpResponse {
    let object = &read.object;
    let size = u64::try_from(object.size).unwrap_or(0);
    let status = match read.outcome {
        ReadOutcome::Full => StatusCode::OK,
        ReadOutcome::Partial { .. } => StatusCode::PARTIAL_CONTENT,
        ReadOutcome::NotModified => StatusCode::NOT_MODIFIED,
    };
    let mut response = HttpResponse::build(status);
    let validators = &read.validators;
    if let Some(etag) = validators.etag.clone().and_then(|etag| HeaderValue::from_maybe_shared(etag).ok()) {
        response.insert_header((header::ETAG, etag));
    }
    if let Ok(last_modified) = HeaderValue::from_maybe_shared(validators.last_modified.clone()) {
        response.insert_header((header::LAST_MODIFIED, last_modified));
    }
    // A 304's headers replace a cache's stored ones (RFC 9111 §4.3.4): it
    // repeats the sandboxing CSP, or a revalidated copy would lose it.
    response
        .insert_header((header::CACHE_CONTROL, PRIVATE_NO_CACHE))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, NOSNIFF))
        .insert_header((header::CONTENT_SECURITY_POLICY, OBJECT_CSP_VALUE));
    if read.outcome == ReadOutcome::NotModified {
        return response.finish();
    }
    let length = match read.outcome {
        ReadOutcome::Partial { start, end_inclusive } => {
            response.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end_inclusive}/{size}")));
            end_inclusive - start + 1
        }
        _ => size,
    };
    let content_type =
        HeaderValue::from_str(&object.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    response
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            content_disposition(&object.content_type, object.key.file_name(), force_download),
        ))
        .no_chunking(length);
    match read.body {
        Some(body) => response.streaming(body),
        None => response.streaming(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>()),
    }
}

async fn read(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    query: &DownloadQuery,
    head_only: bool,
) -> Result<HttpResponse, ServiceError> {
    // The route's segments borrowed, not deserialized into two strings.
    let bucket = request.match_info().get("bucket").unwrap_or_default();
    let key = key_from_path(&request, "/objects/")?;
    refuse_active_loads(request.headers())?;
    let read_request = read_request_of(request.headers(), head_only);
    // Boxed apart from the handler's future: each stays under the size glibc
    // serves from its per-thread cache (1 KiB); one future of twice that
    // took the slow path of malloc and free on every request.
    let read = Box::pin(services.read_object(&caller.ctx, &caller.principal, bucket, &key, &read_request)).await?;
    let force = query.download.as_deref().is_some_and(|v| v != "0" && v != "false");
    Ok(object_response(read, force))
}

pub async fn get(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ServiceError> {
    // Boxed apart from the extractors' future, for the reason given in `read`.
    Box::pin(read(services, caller, request, &query, false)).await
}

pub async fn head(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ServiceError> {
    // Boxed apart from the extractors' future, for the reason given in `read`.
    Box::pin(read(services, caller, request, &query, true)).await
}

pub async fn delete(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/objects/")?;
    let conditions = write_conditions(request.headers());
    services.delete_object(&caller.ctx, &caller.principal, &path.0, &key, &conditions).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct ListParams {
    prefix: Option<String>,
    delimiter: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ServiceError> {
    let params = params.into_inner();
    let request = ListRequest {
        after: params.cursor.as_deref().map(cursor::decode).transpose()?,
        prefix: params.prefix,
        delimiter: params.delimiter,
        limit: params.limit,
    };
    let page = services.list_objects(&caller.ctx, &caller.principal, &bucket, request).await?;
    let objects: Vec<serde_json::Value> = page
        .objects
        .iter()
        .map(|o| {
            serde_json::json!({
                "key": o.key, "size": o.size, "etag": o.etag, "content_type": o.content_type, "last_modified": o.created_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "objects": objects,
        "prefixes": page.prefixes,
        "next_cursor": page.next_after.as_deref().map(cursor::encode),
    })))
}

#[derive(Deserialize)]
pub struct CopyBody {
    to_bucket: Option<String>,
    to_key: String,
}

pub async fn copy(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<CopyBody>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/copy/")?;
    let object = services
        .copy_object(&caller.ctx, &caller.principal, &path.0, &key, body.to_bucket.as_deref(), &body.to_key)
        .await?;
    Ok(created(&object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(header::HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn read_requests_borrow_their_headers() {
        let map = headers(&[
            ("if-none-match", "\"a\""),
            ("if-none-match", "\"b\""),
            ("if-match", "\"c\""),
            ("range", "bytes=0-9"),
            ("if-range", "\"d\""),
            ("if-modified-since", "Tue, 01 Dec 2026 00:00:00 GMT"),
            ("if-unmodified-since", "not a date"),
            ("user-agent", "curl/8"),
        ]);
        let read = read_request_of(&map, true);
        assert!(read.head_only);
        assert_eq!(read.if_none_match.as_deref(), Some("\"a\", \"b\""), "repeated lines are one list");
        assert_eq!(read.if_match.as_deref(), Some("\"c\""));
        assert_eq!(read.range, Some("bytes=0-9"));
        assert_eq!(read.if_range, Some("\"d\""));
        assert_eq!(read.if_modified_since.map(|at| at.timestamp()), Some(1_796_083_200));
        assert_eq!(read.if_unmodified_since, None, "an unparsable date is ignored");
        let plain = headers(&[("accept", "*/*")]);
        let none = read_request_of(&plain, false);
        assert!(!none.head_only && none.if_none_match.is_none() && none.range.is_none());
    }
}
