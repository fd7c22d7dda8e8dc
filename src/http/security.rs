//! Response hardening and cross-origin rules: security headers on every
//! response (a default CSP only where the handler set none), HSTS behind
//! TLS, the request-head size limit, and CORS from the configured allow-list.

use actix_web::HttpResponse;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};

use super::problem::Problem;
use crate::config::Config;

/// The CSP of responses that did not set their own (JSON, problems, metrics).
pub const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

// No `interest-cohort`: FLoC is gone, and Chromium logs the unknown feature as an error.
const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), \
     microphone=(), payment=(), usb=()";

const ALLOW_METHODS: &str = "GET, HEAD, PUT, POST, PATCH, DELETE";
const ALLOW_HEADERS: &str = "authorization, content-type, content-md5, x-checksum-sha256, if-none-match, \
     if-match, if-modified-since, range, x-request-id, x-share-password, x-bypass-governance-retention";
const EXPOSE_HEADERS: &str = "etag, content-range, content-length, content-disposition, last-modified, location, \
     retry-after, x-request-id, ratelimit-limit, ratelimit-remaining, ratelimit-reset";

/// Whether the deployment is reached over TLS (then HSTS is sent).
fn behind_tls(config: &Config, request: &actix_web::HttpRequest) -> bool {
    if config.public_url.as_deref().is_some_and(|url| url.starts_with("https://")) {
        return true;
    }
    config.trust_forwarded_for
        && request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

const PERMISSIONS_POLICY_HEADER: HeaderName = HeaderName::from_static("permissions-policy");
const OPENER_POLICY_HEADER: HeaderName = HeaderName::from_static("cross-origin-opener-policy");

/// Headers every response carries, built at compile time (no per-response validation).
const FIXED_HEADERS: [(HeaderName, HeaderValue); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (PERMISSIONS_POLICY_HEADER, HeaderValue::from_static(PERMISSIONS_POLICY)),
    (OPENER_POLICY_HEADER, HeaderValue::from_static("same-origin")),
];

const DEFAULT_CSP_VALUE: HeaderValue = HeaderValue::from_static(DEFAULT_CSP);

/// Adds the headers every response carries; keeps a CSP the handler chose.
pub fn harden(headers: &mut HeaderMap, hsts_max_age: Option<u64>) {
    for (name, value) in FIXED_HEADERS {
        headers.insert(name, value);
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, DEFAULT_CSP_VALUE);
    }
    if let Some(max_age) = hsts_max_age
        && let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}; includeSubDomains"))
    {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
    headers.remove(header::SERVER);
}

/// What a response's headers need to know of its request, read before the
/// request is handed on: HSTS (behind TLS) and the CORS origin to allow.
pub(super) struct Hardening {
    hsts: Option<u64>,
    cors: Option<String>,
}

impl Hardening {
    pub(super) fn of(config: &Config, request: &ServiceRequest) -> Self {
        let hsts = (!config.hsts_max_age.is_zero() && behind_tls(config, request.request()))
            .then_some(config.hsts_max_age.as_secs());
        Self { hsts, cors: cors_origin(config, request) }
    }

    /// The answer given without calling the app: 431 for an over-long head,
    /// 204 for an allowed CORS preflight.
    pub(super) fn answer_early(&self, config: &Config, request: &ServiceRequest) -> Option<HttpResponse> {
        if head_size(request) > config.max_header_bytes {
            let problem = Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers-too-large",
                Some(format!("request headers are limited to {} bytes", config.max_header_bytes)),
            );
            return Some(problem.response());
        }
        let preflight =
            request.method() == Method::OPTIONS && request.headers().contains_key("access-control-request-method");
        let origin = self.cors.as_deref().filter(|_| preflight)?;
        let mut response = HttpResponse::NoContent().finish();
        allow_preflight(response.headers_mut(), origin);
        Some(response)
    }

    /// The security headers, and CORS's on an actual (not preflight) response.
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        if let Some(origin) = &self.cors
            && !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        {
            allow_actual(headers, origin);
        }
        harden(headers, self.hsts);
    }
}

/// Bytes of the request line and headers as received (approximately: name, value, separators).
fn head_size(request: &ServiceRequest) -> usize {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(uri.path().len(), |target| target.as_str().len());
    let line = request.method().as_str().len() + target + 12;
    line + request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum::<usize>()
}

/// The `Access-Control-Allow-Origin` value for this request, if CORS allows it.
fn cors_origin(config: &Config, request: &ServiceRequest) -> Option<String> {
    let origin = request.headers().get(header::ORIGIN)?.to_str().ok()?;
    if config.cors_origins().iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
        return Some(origin.to_owned());
    }
    let is_link = request.path().starts_with("/s/") || request.query_string().contains("X-Coffer-Signature=");
    (config.cors_links_any_origin && is_link).then(|| "*".to_owned())
}

fn vary_origin(headers: &mut HeaderMap) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn allow_preflight(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    vary_origin(headers);
}

fn allow_actual(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    vary_origin(headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_csp_wins_over_the_default() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'self'"));
        headers.insert(header::SERVER, HeaderValue::from_static("actix-web/4"));
        harden(&mut headers, None);
        assert_eq!(headers.get(header::CONTENT_SECURITY_POLICY).expect("csp"), "default-src 'self'");
        assert!(headers.get(header::SERVER).is_none());
        assert!(headers.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        let mut plain = HeaderMap::new();
        harden(&mut plain, Some(60));
        assert_eq!(plain.get(header::CONTENT_SECURITY_POLICY).expect("csp"), DEFAULT_CSP);
        assert_eq!(plain.get(header::STRICT_TRANSPORT_SECURITY).expect("hsts"), "max-age=60; includeSubDomains");
    }
}
