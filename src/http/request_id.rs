//! Request ids and access logs: one span per request carrying its id, and
//! `X-Request-Id` on every response (a valid incoming id is echoed).

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, stored in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub std::sync::Arc<str>);

/// Accept ids a proxy or client might send, but nothing that could forge log lines.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

/// A fresh id: a UUIDv7 (time-ordered), written without the formatting machinery.
fn new_request_id() -> std::sync::Arc<str> {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    std::sync::Arc::from(&*uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text))
}

pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| acceptable(value))
        .map_or_else(new_request_id, std::sync::Arc::from);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = tracing::field::Empty,
    );
    let started = Instant::now();
    let services = request.app_data::<actix_web::web::Data<crate::service::Services>>().cloned();
    let is_upload = crate::service::rate_limits::RouteClass::of(request.method().as_str(), request.path())
        == Some(crate::service::rate_limits::RouteClass::Upload);
    let _upload = services.as_ref().filter(|_| is_upload).map(|s| UploadGuard::start(s.clone()));
    if let Some(services) = &services {
        let declared = request
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        services.metrics.bytes_received.inc_by(declared.unwrap_or(0));
    }
    // Handlers' and extractors' errors arrive here as responses already; an
    // `Err` could only come from a middleware below and is passed on as is.
    let handling = next.call(request).instrument(span.clone());
    let mut response = crate::service::with_request_versions(handling).await?.map_into_boxed_body();
    let route =
        response.request().app_data::<super::routes::RouteTemplate>().map_or("unmatched", |template| template.0);
    span.record("route", route);
    let status = response.status().as_u16();
    if let Some(services) = &services {
        if let actix_web::body::BodySize::Sized(size) = response.response().body().size() {
            services.metrics.bytes_sent.inc_by(size);
        }
        let seconds = started.elapsed().as_secs_f64();
        services.metrics.observe_request(response.request().method().as_str(), route, status, seconds);
    }
    span.in_scope(|| {
        tracing::info!(status, latency_ms = started.elapsed().as_secs_f64() * 1000.0, "request completed");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// Counts an upload as active until its request finishes (or is dropped).
struct UploadGuard(actix_web::web::Data<crate::service::Services>);

impl UploadGuard {
    fn start(services: actix_web::web::Data<crate::service::Services>) -> Self {
        services.metrics.active_uploads.inc();
        Self(services)
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.metrics.active_uploads.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_safe_ids_are_echoed() {
        assert!(acceptable("0190c6d2-7c1a-7e4b-9a8e-3f1b2c4d5e6f"));
        assert!(acceptable("trace:abc/123"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\ny"));
        assert!(!acceptable(&"a".repeat(129)));
    }

    #[test]
    fn fresh_ids_are_hyphenated_v7_uuids() {
        let id = super::new_request_id();
        let parsed = uuid::Uuid::parse_str(&id).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(&*id, parsed.hyphenated().to_string());
        assert!(acceptable(&id));
    }
}
