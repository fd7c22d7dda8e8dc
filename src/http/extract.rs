//! Extractors: `Ctx` (request facts) for every handler, `Caller` (an
//! authenticated principal — by bearer token, API key or gateway-signed URL)
//! for every protected one. Deny by default: a handler without `Caller` is
//! public, so only health, login and share links go without it.

use std::future::{Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use super::request_id::RequestId;
use crate::service::signing::SignedParams;
use crate::service::{Principal, RequestContext, ServiceError, Services};

/// Request facts (client address, user agent, request id) for audit and throttling.
pub struct Ctx(pub RequestContext);

/// An address as text; IPv4 by hand, as `Display` costs a request's worth of formatting.
fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    text.push('.');
                }
                text.push_str(itoa::Buffer::new().format(octet));
            }
            text
        }
        std::net::IpAddr::V6(v6) => v6.to_string(),
    }
}

pub fn request_context(request: &HttpRequest) -> RequestContext {
    let trust_forwarded =
        request.app_data::<web::Data<Services>>().is_some_and(|services| services.config.trust_forwarded_for);
    let ip = if trust_forwarded {
        request.connection_info().realip_remote_addr().map(str::to_owned)
    } else {
        request.peer_addr().map(|addr| ip_text(addr.ip()))
    };
    RequestContext {
        ip,
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        request_id: request.extensions().get::<RequestId>().map(|id| id.0.clone()),
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

fn bearer(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

impl FromRequest for Caller {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let services = request.app_data::<web::Data<Services>>().cloned();
        let ctx = request_context(request);
        let token = bearer(request);
        let class = crate::service::rate_limits::RouteClass::of(request.method().as_str(), request.path())
            .filter(|class| services.as_ref().is_some_and(|s| s.is_limited(*class)));
        let bucket = request.match_info().get("bucket").map(str::to_owned);
        let signed = match (&token, SignedParams::from_query(request.query_string())) {
            (Some(_), _) | (None, Ok(None)) => Ok(None),
            (None, Ok(Some(params))) => {
                Ok(Some((params, request.method().to_string(), request.uri().path().to_owned())))
            }
            (None, Err(tampered)) => Err(ServiceError::Forbidden(tampered.to_string())),
        };
        Box::pin(async move {
            let services = services.ok_or_else(|| ServiceError::internal(anyhow::anyhow!("services missing")))?;
            if let Some(bucket) = &bucket {
                crate::service::name_request_bucket(bucket);
            }
            let principal = match (token, signed?) {
                (Some(token), _) => services.authenticate(&ctx, &token).await?,
                (None, Some((params, method, path))) => {
                    services.authenticate_signed(&ctx, &method, &path, &params).await?
                }
                (None, None) => return Err(ServiceError::Unauthenticated("missing bearer token".into()).into()),
            };
            if let Some(class) = class
                && let Some(admission) = services.admit(class, &format!("user:{}", principal.user_id)).await
                && !admission.decision.allowed
            {
                crate::metrics::Metrics::count(&services.metrics.rate_limited, "user");
                return Err(super::rate_limit::refusal(&admission).into());
            }
            Ok(Self { principal, ctx })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ip_text;
    use proptest::prelude::*;

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
