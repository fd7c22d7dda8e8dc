//! Share links: `/api/v1/shares` to manage them, `/s/{token}` to open them —
//! the object, or for a browser without the password a small HTML page asking
//! for it (strict CSP: no script at all; the form posts back here).

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::cursor;
use super::extract::{Caller, Ctx};
use super::objects::{object_response, read_request_of};
use crate::service::shares::{NewShare, ShareOpen};
use crate::service::{ServiceError, Services};

const PAGE_CSP: &str =
    "default-src 'none'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Deserialize)]
pub struct CreateShare {
    bucket: String,
    key: String,
    expires_in_seconds: Option<i64>,
    password: Option<SecretString>,
    max_downloads: Option<i64>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    password: SecretString,
}

pub async fn create(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<CreateShare>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let request = NewShare {
        bucket: body.bucket,
        key: body.key,
        expires_in_seconds: body.expires_in_seconds,
        password: body.password,
        max_downloads: body.max_downloads,
    };
    let created = services.create_share(&caller.ctx, &caller.principal, request).await?;
    Ok(HttpResponse::Created().json(created))
}

pub async fn list(
    services: web::Data<Services>,
    caller: Caller,
    page: web::Query<cursor::Page>,
) -> Result<HttpResponse, ServiceError> {
    let after = page.after()?;
    let (shares, next) = services.list_shares(&caller.principal, after.as_deref(), page.limit()).await?;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "shares": shares, "next_cursor": next.as_deref().map(cursor::encode) })))
}

pub async fn revoke(
    services: web::Data<Services>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    services.revoke_share(&caller.ctx, &caller.principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"))
}

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

fn human_size(bytes: i64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} bytes") } else { format!("{value:.1} {}", units[unit]) }
}

fn password_page(file_name: &str, size: i64, preview: Option<&str>, wrong: bool) -> HttpResponse {
    let notice = if wrong { "<p role=\"alert\">That password is not right. Try again.</p>" } else { "" };
    // Relative to `/s/{token}`: the token never has to be written into the page.
    let preview = match preview {
        Some(token) => {
            format!("<p><img src=\"{}/thumbnail\" alt=\"Preview\" style=\"max-width:256px\"></p>", escape(token))
        }
        None => String::new(),
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>Shared file — Coffer</title></head>\
         <body><main><h1>{name}</h1><p>{size}</p>{preview}{notice}\
         <form method=\"post\"><label for=\"password\">This link is protected. Password</label> \
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"off\" required autofocus> \
         <button type=\"submit\">Download</button></form></main></body></html>\n",
        name = escape(file_name),
        size = human_size(size),
    );
    let status = if wrong { actix_web::http::StatusCode::UNAUTHORIZED } else { actix_web::http::StatusCode::OK };
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn open(
    services: &Services,
    ctx: &crate::service::RequestContext,
    request: &HttpRequest,
    token: &str,
    password: Option<SecretString>,
    head_only: bool,
) -> Result<HttpResponse, ServiceError> {
    let read_request = read_request_of(request.headers(), head_only);
    let html = wants_html(request.headers());
    match services.open_share(ctx, token, password.as_ref(), &read_request).await {
        Ok(ShareOpen::Object(read)) => Ok(object_response(read, false)),
        Ok(ShareOpen::NeedsPassword { file_name, size, content_type }) if html => {
            let preview = crate::service::shares::previewable(&content_type).then_some(token);
            Ok(password_page(&file_name, size, preview, false))
        }
        Ok(ShareOpen::NeedsPassword { .. }) => {
            Err(ServiceError::Unauthenticated("this link needs a password (header X-Share-Password)".into()))
        }
        Err(ServiceError::Unauthenticated(_)) if html && password.is_some() => {
            // Re-ask, keeping what the page showed; a wrong password costs a throttled attempt either way.
            Ok(password_page("this file", 0, None, true))
        }
        Err(error) => Err(error),
    }
}

/// The password of `X-Share-Password`, read as UTF-8: passwords may be any
/// Unicode, which `HeaderValue::to_str` (visible ASCII only) would drop.
fn header_password(request: &HttpRequest) -> Option<SecretString> {
    let value = request.headers().get("x-share-password")?;
    Some(SecretString::from(String::from_utf8_lossy(value.as_bytes()).into_owned()))
}

pub async fn get(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    open(&services, &ctx, &request, &token, header_password(&request), false).await
}

pub async fn head(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    open(&services, &ctx, &request, &token, header_password(&request), true).await
}

/// `GET /s/{token}/thumbnail`: the preview on the password page.
pub async fn thumbnail(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    token: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let thumb = services.share_thumbnail(&ctx, &token).await?;
    Ok(HttpResponse::Ok()
        .content_type(thumb.content_type)
        .insert_header((header::ETAG, thumb.etag))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(thumb.bytes))
}

/// The password page's form posts here.
pub async fn post(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    token: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ServiceError> {
    open(&services, &ctx, &request, &token, Some(form.into_inner().password), false).await
}

#[cfg(test)]
mod tests {
    use super::{escape, human_size};

    #[test]
    fn names_are_escaped_and_sizes_readable() {
        assert_eq!(escape("<img src=x onerror=alert(1)>.png"), "&lt;img src=x onerror=alert(1)&gt;.png");
        assert_eq!(escape("\"quoted\" & 'single'"), "&quot;quoted&quot; &amp; &#39;single&#39;");
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
