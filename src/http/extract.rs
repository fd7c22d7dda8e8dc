//! Extractors: `Ctx` (request facts) for every handler, `Caller` (an
//! authenticated principal — by bearer token, API key or gateway-signed URL)
//! for every protected one. Deny by default: a handler without `Caller` is
//! public, so only health, login and share links go without it.

use std::future::{Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use compact_str::CompactString;

use crate::service::signing::SignedParams;
use crate::service::{Principal, RequestContext, ServiceError, Services};

/// Request facts (client address, user agent, request id) for audit and throttling.
pub struct Ctx(pub RequestContext);

/// An address as text; IPv4 by hand (and inline), as `Display` costs a request's worth of formatting.
fn ip_text(ip: std::net::IpAddr) -> CompactString {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = [0u8; 15];
            let mut len = 0;
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                let mut number = itoa::Buffer::new();
                let digits = number.format(octet).as_bytes();
                text[len..len + digits.len()].copy_from_slice(digits);
                len += digits.len();
            }
            CompactString::from_utf8(&text[..len]).unwrap_or_default()
        }
        std::net::IpAddr::V6(v6) => compact_str::format_compact!("{v6}"),
    }
}

/// The client address the trusted proxy in front of us saw: the last entry of
/// the last `X-Forwarded-For` line, which that proxy appended. Entries before it
/// (and `Forwarded`, which proxies often pass through untouched) are whatever
/// the client sent, so they are never believed. Not an address: none.
fn forwarded_client(headers: &header::HeaderMap) -> Option<std::net::IpAddr> {
    let last_line = headers.get_all("x-forwarded-for").last()?.to_str().ok()?;
    last_line.rsplit(',').next()?.trim().parse().ok()
}

/// Bytes of the `User-Agent` kept for audit records.
const MAX_USER_AGENT: usize = 256;

pub fn request_context(request: &HttpRequest) -> RequestContext {
    let trust_forwarded =
        request.app_data::<web::Data<Services>>().is_some_and(|services| services.config.trust_forwarded_for);
    let peer = || request.peer_addr().map(|addr| ip_text(addr.ip()));
    let ip = if trust_forwarded { forwarded_client(request.headers()).map(ip_text).or_else(peer) } else { peer() };
    RequestContext {
        ip,
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v[..v.floor_char_boundary(MAX_USER_AGENT)].to_owned()),
        request_id: crate::service::current_request_id(),
    }
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(request_context(request))))
    }
}

/// An authenticated caller with the request's facts.
pub struct Caller {
    pub principal: Principal,
    pub ctx: RequestContext,
}

/// The token of an `Authorization: Bearer …` header. Read as bytes and
/// checked as UTF-8 once: `HeaderValue::to_str` tests a token byte by byte,
/// which cost a warm read 3,600 instructions.
pub(super) fn bearer(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|&byte| byte == b' ')?;
    let (scheme, token) = (&value[..space], value[space + 1..].trim_ascii());
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then(|| std::str::from_utf8(token).ok())?
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The request itself (a reference count), not copies of its token and path.
        let request = request.clone();
        Box::pin(async move { Ok(authenticate_caller(&request).await?) })
    }
}

/// The caller of `request`, by bearer token (session or API key) or by a
/// gateway-signed URL, once the per-user rate limit of its route admits it.
async fn authenticate_caller(request: &HttpRequest) -> Result<Caller, ServiceError> {
    let services = request
        .app_data::<web::Data<Services>>()
        .ok_or_else(|| ServiceError::internal(anyhow::anyhow!("services missing")))?;
    let ctx = request_context(request);
    if let Some(bucket) = request.match_info().get("bucket") {
        services.name_request_bucket(bucket);
    }
    let mut counted_as = "user";
    let principal = match bearer(request) {
        Some(token) => services.authenticate(&ctx, token).await?,
        // Boxed: the rarer path keeps its large future out of every request's.
        None => match SignedParams::from_query(request.query_string()) {
            Ok(Some(params)) => {
                // Whoever holds a signed URL acts as its signer, but must not spend the signer's own quota.
                counted_as = "signed";
                let (method, path) = (request.method().as_str(), request.uri().path());
                Box::pin(services.authenticate_signed(&ctx, method, path, &params)).await?
            }
            Ok(None) => return Err(ServiceError::Unauthenticated("missing bearer token".into())),
            Err(tampered) => return Err(ServiceError::Forbidden(tampered.to_string())),
        },
    };
    let class =
        crate::service::rate_limits::RouteClass::of(request.method().as_str(), request.match_info().as_str(), false)
            .filter(|class| services.is_limited(*class));
    if let Some(class) = class
        && let Some(admission) = services.admit(class, &format!("{counted_as}:{}", principal.user_id)).await
    {
        // The edge answers with whichever of this and the address's is tighter.
        request.extensions_mut().insert(super::rate_limit::UserAdmission(admission));
        if !admission.decision.allowed {
            crate::metrics::Metrics::count(&services.metrics.rate_limited, "user");
            return Err(super::rate_limit::refusal(&admission));
        }
    }
    Ok(Caller { principal, ctx })
}

/// A JSON body that may be left out: empty (or blank) is `T::default()`,
/// anything else must parse (`400 invalid-json` otherwise).
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ServiceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ServiceError::bad_request("invalid-json", format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{bearer, forwarded_client, ip_text};
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;

    #[test]
    fn only_the_address_the_proxy_appended_is_believed() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            map
        };
        let client = |pairs| forwarded_client(&headers(pairs)).map(|ip| ip.to_string());
        assert_eq!(client(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]).as_deref(), Some("203.0.113.9"));
        assert_eq!(
            client(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "2001:db8::1")]).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(client(&[("forwarded", "for=1.2.3.4")]), None, "Forwarded is not believed");
        assert_eq!(client(&[("x-forwarded-for", "203.0.113.9, not-an-address")]), None);
        assert_eq!(client(&[]), None);
    }

    fn bearer_of(value: &[u8]) -> Option<String> {
        let header = actix_web::http::header::HeaderValue::from_bytes(value).expect("header");
        let request =
            actix_web::test::TestRequest::default().insert_header(("authorization", header)).to_http_request();
        bearer(&request).map(str::to_owned)
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(bearer_of(b"Bearer abc.def").as_deref(), Some("abc.def"));
        assert_eq!(bearer_of(b"bearer   abc \t").as_deref(), Some("abc"), "scheme in any case, token trimmed");
        assert_eq!(bearer_of(b"Basic abc"), None);
        assert_eq!(bearer_of(b"Bearer"), None);
        assert_eq!(bearer_of(b"Bearer    "), None);
        assert_eq!(bearer_of(b"Bearer \xff\xfe"), None, "not UTF-8");
        let request = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(bearer(&request), None);
    }

    #[test]
    fn user_agents_are_kept_up_to_a_limit() {
        let context = |agent: &str| {
            let request =
                actix_web::test::TestRequest::default().insert_header(("user-agent", agent)).to_http_request();
            super::request_context(&request).user_agent
        };
        assert_eq!(context("curl/8.5.0").as_deref(), Some("curl/8.5.0"));
        let long = "M".repeat(300);
        assert_eq!(context(&long).as_deref(), Some(&long[..super::MAX_USER_AGENT]));
        let request = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(super::request_context(&request).user_agent, None);
    }

    proptest! {
        #[test]
        fn addresses_read_as_their_display(bits in any::<u32>(), v6 in any::<u128>()) {
            let v4 = std::net::IpAddr::V4(std::net::Ipv4Addr::from(bits));
            prop_assert_eq!(ip_text(v4), v4.to_string());
            let v6 = std::net::IpAddr::V6(std::net::Ipv6Addr::from(v6));
            prop_assert_eq!(ip_text(v6), v6.to_string());
        }
    }
}
