//! Per-address rate limits on every limited route (per-user limits are
//! applied by the `Caller` extractor once the caller is known), with
//! `RateLimit-Limit/Remaining/Reset` on responses and 429 + `Retry-After`.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use super::extract::request_context;
use crate::service::rate_limits::{Admission, RouteClass};
use crate::service::{ServiceError, Services};

fn seconds_up(micros: i64) -> u64 {
    u64::try_from(micros.max(0)).unwrap_or(0).div_ceil(1_000_000)
}

/// Writes the `RateLimit-*` headers of an admission.
pub fn rate_headers(headers: &mut HeaderMap, admission: &Admission) {
    let pairs = [
        ("ratelimit-limit", u64::from(admission.quota.limit)),
        ("ratelimit-remaining", u64::from(admission.decision.remaining)),
        ("ratelimit-reset", seconds_up(admission.decision.reset_micros)),
    ];
    for (name, value) in pairs {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// The 429 for a refused admission.
pub fn refusal(admission: &Admission) -> ServiceError {
    ServiceError::TooManyRequests {
        detail: format!("more than {} requests per minute; slow down", admission.quota.limit),
        retry_after: std::time::Duration::from_secs(seconds_up(admission.decision.retry_after_micros).max(1)),
    }
}

pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let class = RouteClass::of(request.method().as_str(), request.path());
    let services = request.app_data::<web::Data<Services>>().cloned();
    let (Some(class), Some(services)) = (class, services) else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    if !services.is_limited(class) {
        return Ok(next.call(request).await?.map_into_boxed_body());
    }
    let ip = request_context(request.request()).ip.unwrap_or_else(|| "unknown".into());
    let Some(admission) = services.admit(class, &format!("ip:{ip}")).await else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    if !admission.decision.allowed {
        crate::metrics::Metrics::count(&services.metrics.rate_limited, class.as_str());
        let mut response = request.error_response(refusal(&admission));
        rate_headers(response.headers_mut(), &admission);
        return Ok(response.map_into_boxed_body());
    }
    let mut response = next.call(request).await?.map_into_boxed_body();
    if !response.headers().contains_key("ratelimit-limit") {
        rate_headers(response.headers_mut(), &admission);
    }
    Ok(response)
}
