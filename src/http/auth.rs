//! `/api/v1/auth/*`: login, the MFA step, refresh, logout — with the refresh
//! token in the JSON body, or (browser sessions) in an HttpOnly cookie.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::extract::{Ctx, optional_json};
use crate::service::auth::{LoginOutcome, TokenPair};
use crate::service::{ServiceError, Services};

/// The header a browser sends to keep its refresh token in a cookie.
pub const SESSION_HEADER: &str = "x-coffer-session";
/// The cookie holding the refresh token of a browser session.
pub const REFRESH_COOKIE: &str = "coffer_refresh";
const COOKIE_PATH: &str = "/api/v1/auth";

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: SecretString,
}

#[derive(Deserialize)]
pub struct MfaRequest {
    mfa_token: String,
    code: String,
}

#[derive(Deserialize, Default)]
struct RefreshRequest {
    refresh_token: Option<String>,
}

/// Whether the request asks for a cookie session (`X-Coffer-Session: cookie`).
fn cookie_mode(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("cookie"))
}

/// `scheme://host[:port]` of a URL (no path).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |slash| &url[..after_scheme + slash])
}

/// CSRF check for cookie-authenticated requests: an `Origin`, when sent, must be
/// this server's own (its public URL, or the `Host` it was reached at).
fn same_origin(services: &Services, request: &HttpRequest) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if origin.eq_ignore_ascii_case(origin_of(&services.public_url())) {
        return true;
    }
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, authority), (Some(host), Some(authority)) if host.eq_ignore_ascii_case(authority))
}

fn refresh_cookie(services: &Services, value: String, max_age: time::Duration) -> Cookie<'static> {
    let mut cookie = Cookie::build(REFRESH_COOKIE, value)
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(max_age)
        .finish();
    if services.public_url().starts_with("https://") {
        cookie.set_secure(true);
    }
    cookie
}

/// Answers a token pair: as issued, or — for a cookie session — with the
/// refresh token moved into the cookie.
fn tokens_response(services: &Services, request: &HttpRequest, tokens: TokenPair) -> HttpResponse {
    if !cookie_mode(request) {
        return HttpResponse::Ok().json(tokens);
    }
    let lifetime =
        time::Duration::seconds(i64::try_from(services.config.refresh_token_ttl.as_secs()).unwrap_or(i64::MAX));
    let cookie = refresh_cookie(services, tokens.refresh_token, lifetime);
    HttpResponse::Ok().cookie(cookie).insert_header((header::CACHE_CONTROL, "no-store")).json(serde_json::json!({
        "access_token": tokens.access_token,
        "token_type": tokens.token_type,
        "expires_in": tokens.expires_in,
    }))
}

/// The refresh token of a refresh/logout request: the body's, else (cookie
/// sessions only, after the CSRF check) the cookie's.
fn presented_token(services: &Services, request: &HttpRequest, body: &[u8]) -> Result<String, ServiceError> {
    let parsed: RefreshRequest = optional_json(body)?;
    if let Some(token) = parsed.refresh_token {
        return Ok(token);
    }
    if !cookie_mode(request) {
        return Err(ServiceError::bad_request("invalid-json", "refresh_token is required"));
    }
    if !same_origin(services, request) {
        return Err(ServiceError::Forbidden("cross-origin session request refused".into()));
    }
    request
        .cookie(REFRESH_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ServiceError::Unauthenticated("no session cookie; log in again".into()))
}

pub async fn login(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ServiceError> {
    Ok(match services.login(&ctx, &body.username, &body.password).await? {
        LoginOutcome::Tokens(tokens) => tokens_response(&services, &request, tokens),
        LoginOutcome::MfaRequired { mfa_token } => {
            HttpResponse::Ok().json(serde_json::json!({ "mfa_required": true, "mfa_token": mfa_token }))
        }
    })
}

pub async fn mfa(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    body: web::Json<MfaRequest>,
) -> Result<HttpResponse, ServiceError> {
    let tokens = services.complete_mfa(&ctx, &body.mfa_token, &body.code).await?;
    Ok(tokens_response(&services, &request, tokens))
}

pub async fn refresh(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ServiceError> {
    let token = presented_token(&services, &request, &body)?;
    let tokens = services.refresh(&ctx, &token).await?;
    Ok(tokens_response(&services, &request, tokens))
}

pub async fn logout(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ServiceError> {
    let token = match presented_token(&services, &request, &body) {
        // Logging out without a session cookie still clears whatever is left.
        Err(ServiceError::Unauthenticated(_)) if cookie_mode(&request) => None,
        other => Some(other?),
    };
    if let Some(token) = token {
        services.logout(&ctx, &token).await?;
    }
    let mut response = HttpResponse::NoContent();
    if cookie_mode(&request) {
        response.cookie(refresh_cookie(&services, String::new(), time::Duration::ZERO));
    }
    Ok(response.finish())
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn origin_drops_the_path() {
        assert_eq!(origin_of("https://files.example.com/base"), "https://files.example.com");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
