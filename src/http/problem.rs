//! RFC 9457 problem documents: every error leaves the server as `application/problem+json`.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::service::ServiceError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document. `type` is a relative URI naming the problem (`/problems/<slug>`).
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<Option<String>>) -> Self {
        Self {
            problem_type: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.extensions.insert(key.to_owned(), value);
        }
        self
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
            .body(serde_json::to_string(self).unwrap_or_default())
    }
}

/// The status, slug and client-facing detail of a service error.
fn describe(error: &ServiceError) -> (StatusCode, &'static str, Option<String>) {
    use ServiceError as E;
    match error {
        E::BadRequest { slug, detail } => (StatusCode::BAD_REQUEST, slug, Some(detail.clone())),
        E::Unauthenticated(detail) => (StatusCode::UNAUTHORIZED, "unauthenticated", Some(detail.clone())),
        E::Forbidden(detail) => (StatusCode::FORBIDDEN, "forbidden", Some(detail.clone())),
        E::NotFound(what) => (StatusCode::NOT_FOUND, "not-found", Some(format!("{what} not found"))),
        E::Conflict { slug, detail } => (StatusCode::CONFLICT, slug, Some(detail.clone())),
        E::Gone(detail) => (StatusCode::GONE, "gone", Some(detail.clone())),
        E::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition-failed", None),
        E::TooLarge { slug, detail } => (StatusCode::PAYLOAD_TOO_LARGE, slug, Some(detail.clone())),
        E::LengthRequired(detail) => (StatusCode::LENGTH_REQUIRED, "length-required", Some(detail.clone())),
        E::UnsupportedMediaType(detail) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", Some(detail.clone()))
        }
        E::RangeNotSatisfiable { size } => {
            (StatusCode::RANGE_NOT_SATISFIABLE, "range-not-satisfiable", Some(format!("the object has {size} bytes")))
        }
        E::Unprocessable(detail) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", Some(detail.clone())),
        E::TooManyRequests { detail, .. } => (StatusCode::TOO_MANY_REQUESTS, "too-many-requests", Some(detail.clone())),
        E::BadGateway(_) => (StatusCode::BAD_GATEWAY, "storage-error", Some("the storage backend failed".into())),
        E::Unavailable(dependency, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            Some(format!("the {dependency} is unavailable; try again shortly")),
        ),
        E::Busy(what) => {
            (StatusCode::SERVICE_UNAVAILABLE, "busy", Some(format!("the {what} is busy; try again shortly")))
        }
        E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", Some("an internal error occurred".into())),
    }
}

impl ResponseError for ServiceError {
    fn status_code(&self) -> StatusCode {
        describe(self).0
    }

    fn error_response(&self) -> HttpResponse {
        error_answer(self, None)
    }
}

/// The problem document of `error`, with one extension member when given
/// (what a client needs to act on whatever the error: a form's stored files).
pub fn error_answer(error: &ServiceError, extension: Option<(&str, serde_json::Value)>) -> HttpResponse {
    let (status, slug, detail) = describe(error);
    let mut problem = Problem::new(status, slug, detail);
    if let Some((key, value)) = extension {
        problem.extensions.insert(key.to_owned(), value);
    }
    use ServiceError as E;
    if let E::BadGateway(cause) | E::Unavailable(_, cause) | E::Internal(cause) = error {
        tracing::error!(error = format!("{cause:#}"), status = status.as_u16(), "request failed");
    }
    let mut response = problem.response();
    let headers = response.headers_mut();
    match error {
        E::TooManyRequests { retry_after, .. } => {
            let seconds = retry_after.as_secs().max(1);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        E::RangeNotSatisfiable { size } => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, value);
            }
        }
        E::Unavailable(..) | E::Busy(_) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        E::Unauthenticated(_) => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"coffer\""));
        }
        _ => {}
    }
    response
}

/// Turns framework-made errors (unknown route, wrong method, extractor failures)
/// that are not problem documents yet into one, keeping their status and
/// headers. A page written for people (a share link's password form) stays.
pub fn problemize(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|value| value.as_bytes());
    if content_type.is_some_and(|value| value.starts_with(PROBLEM_JSON.as_bytes()) || value.starts_with(b"text/html")) {
        return response;
    }
    let status = response.status();
    let slug = match status {
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        s if s.is_server_error() => "internal",
        _ => "bad-request",
    };
    let detail = match status {
        StatusCode::NOT_FOUND => Some("no such route".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => Some(format!("{} is not allowed here", response.request().method())),
        _ => None,
    };
    let (request, original) = response.into_parts();
    let mut problem = Problem::new(status, slug, detail).response();
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(request, problem)
}

/// Extractor errors (JSON, path, query) as 400/413/415 problems with the parser's reason.
pub fn json_error(error: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let problem = match &error {
        J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("JSON bodies are limited to {limit} bytes"),
        ),
        J::ContentType => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected Content-Type: application/json".to_owned(),
        ),
        J::Deserialize(inner) => Problem::new(StatusCode::BAD_REQUEST, "invalid-json", inner.to_string()),
        other => Problem::new(StatusCode::BAD_REQUEST, "invalid-json", other.to_string()),
    };
    actix_web::error::InternalError::from_response(error, problem.response()).into()
}

pub fn path_error(error: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid-path", error.to_string());
    actix_web::error::InternalError::from_response(error, problem.response()).into()
}

pub fn query_error(error: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let problem = Problem::new(StatusCode::BAD_REQUEST, "invalid-query", error.to_string());
    actix_web::error::InternalError::from_response(error, problem.response()).into()
}
