//! The one middleware every request passes: request id, span and metrics;
//! the head size limit and CORS; the per-address rate limit; problem+json for
//! every error status; the security headers. One layer instead of four, so a
//! request pays for one boxed future and one dispatch, not four of each.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use tracing::Instrument;

use super::request_id::{REQUEST_ID, UploadGuard};
use super::security::Hardening;
use super::{problem, rate_limit, routes};
use crate::service::Services;
use crate::service::rate_limits::RouteClass;

pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(services) = request.app_data::<web::Data<Services>>().cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let id = super::request_id::incoming_or_new(&request);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        route = tracing::field::Empty,
    );
    let started = Instant::now();
    // The decoded path the router matches on: `/%61pi/…` is `/api/…` and must be limited as such.
    let path = request.match_info().as_str();
    let carries_share_password = path.starts_with("/s/") && request.headers().contains_key("x-share-password");
    let class = RouteClass::of(request.method().as_str(), path, carries_share_password);
    let _upload = (class == Some(RouteClass::Upload)).then(|| UploadGuard::start(services.clone()));
    services.metrics.bytes_received.inc_by(super::request_id::declared_length(&request));

    let hardening = Hardening::of(&services.config, &request);
    let mut response = match hardening.answer_early(&services.config, &request) {
        Some(early) => request.into_response(early).map_into_boxed_body(),
        None => {
            let handling = handle(&services, class, request, next).instrument(span.clone());
            crate::service::within_request(id.clone(), handling).await?
        }
    };
    hardening.apply(response.headers_mut());

    let route = response.request().app_data::<routes::RouteTemplate>().map_or("unmatched", |template| template.0);
    span.record("route", route);
    // Tokens, TOTP secrets, recovery codes and new API keys: never kept by a cache (RFC 6749 §5.1).
    if route.starts_with("/api/v1/auth/") || route.starts_with("/api/v1/me") {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let status = response.status().as_u16();
    if let actix_web::body::BodySize::Sized(size) = response.response().body().size() {
        services.metrics.bytes_sent.inc_by(size);
    }
    let seconds = started.elapsed().as_secs_f64();
    services.metrics.observe_request(response.request().method().as_str(), route, status, seconds);
    span.in_scope(|| tracing::info!(status, latency_ms = seconds * 1000.0, "request completed"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// The rate limit, the app, and problem+json for whatever error status it answered with.
async fn handle(
    services: &Services,
    class: Option<RouteClass>,
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let admission = match class {
        Some(class) => match rate_limit::admit_address(services, class, &request).await {
            Ok(admission) => admission,
            Err(refused) => return Ok(rate_limit::refused(request, &refused)),
        },
        None => None,
    };
    // Handlers' and extractors' errors arrive here as responses already; an
    // `Err` could only come from a service below and is passed on as is.
    let mut response = next.call(request).await?.map_into_boxed_body();
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        response = problem::problemize(response);
    }
    // Both limits count on the same routes: a request without an address
    // admission (an unlimited route) has no user admission either.
    if let Some(address) = admission
        && !response.headers().contains_key("ratelimit-limit")
    {
        let user = response.request().extensions().get::<rate_limit::UserAdmission>().map(|user| user.0);
        rate_limit::rate_headers(response.headers_mut(), &rate_limit::tighter(address, user));
    }
    Ok(response)
}
