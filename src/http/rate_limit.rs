//! Per-address rate limits on every limited route (per-user limits are
//! applied by the `Caller` extractor once the caller is known), with
//! `RateLimit-Limit/Remaining/Reset` on responses and 429 + `Retry-After`.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

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

/// The per-user admission of a request (set by the `Caller` extractor).
#[derive(Debug, Clone, Copy)]
pub struct UserAdmission(pub Admission);

/// The admission a response's `RateLimit-*` headers describe: a refused one,
/// else the one with fewer requests left (per address or per user).
pub fn tighter(address: Admission, user: Option<Admission>) -> Admission {
    match user {
        Some(user) if !user.decision.allowed || user.decision.remaining < address.decision.remaining => user,
        _ => address,
    }
}

/// The 429 for a refused admission.
pub fn refusal(admission: &Admission) -> ServiceError {
    ServiceError::TooManyRequests {
        detail: format!("more than {} requests per minute; slow down", admission.quota.limit),
        retry_after: std::time::Duration::from_secs(seconds_up(admission.decision.retry_after_micros).max(1)),
    }
}

/// Counts the request against its address's limit for `class`: `Ok(None)`
/// when the class is unlimited, `Err` with the refused admission when over.
pub(super) async fn admit_address(
    services: &Services,
    class: RouteClass,
    request: &ServiceRequest,
) -> Result<Option<Admission>, Admission> {
    if !services.is_limited(class) {
        return Ok(None);
    }
    let ip = request_context(request.request()).ip.unwrap_or_else(|| "unknown".into());
    let key = crate::service::rate_limits::address_key(&ip);
    match services.admit(class, &format!("ip:{key}")).await {
        Some(admission) if !admission.decision.allowed => {
            crate::metrics::Metrics::count(&services.metrics.rate_limited, class.as_str());
            Err(admission)
        }
        admission => Ok(admission),
    }
}

/// The 429 problem for a refused admission, with its `RateLimit-*` headers.
pub(super) fn refused(request: ServiceRequest, admission: &Admission) -> ServiceResponse<BoxBody> {
    let mut response = request.error_response(refusal(admission));
    rate_headers(response.headers_mut(), admission);
    response.map_into_boxed_body()
}
