//! Share links: `/api/v1/shares` to manage them, `/s/{token}` to open them —
//! the object, or for a browser without the password a small HTML page asking
//! for it (strict CSP: no script at all; the form posts back here).

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::cursor;
use super::extract::{Caller, Ctx};
use super::objects::{object_response, read_request_of, refuse_active_loads};
use crate::service::shares::{NewShare, ShareOpen, SharedFile};
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

/// `?bucket=` narrows the list to one bucket (everyone's links there, for its managers).
#[derive(Deserialize)]
pub struct BucketFilter {
    bucket: Option<String>,
}

pub async fn list(
    services: web::Data<Services>,
    caller: Caller,
    page: web::Query<cursor::Page>,
    filter: web::Query<BucketFilter>,
) -> Result<HttpResponse, ServiceError> {
    let after = page.after()?;
    let page = (after.as_deref(), page.limit());
    let (shares, next) = services.list_shares(&caller.ctx, &caller.principal, filter.bucket.as_deref(), page).await?;
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

/// The page that asks for a link's password: the file's name and size, no
/// preview (behind a password, a preview would be the content).
fn password_page(file: &SharedFile, wrong: bool) -> HttpResponse {
    let notice = if wrong { "<p role=\"alert\">That password is not right. Try again.</p>" } else { "" };
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>Shared file — Coffer</title></head>\
         <body><main><h1>{name}</h1><p>{size}</p>{notice}\
         <form method=\"post\"><label for=\"password\">This link is protected. Password</label> \
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"off\" required autofocus> \
         <button type=\"submit\">Download</button></form></main></body></html>\n",
        name = escape(&file.file_name),
        size = human_size(file.size),
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

/// `?download=1` asks for `Content-Disposition: attachment`, as on the object route.
#[derive(Deserialize)]
pub struct ShareQuery {
    download: Option<String>,
}

impl ShareQuery {
    fn forces_download(&self) -> bool {
        self.download.as_deref().is_some_and(|v| v != "0" && v != "false")
    }
}

async fn open(
    services: &Services,
    ctx: &crate::service::RequestContext,
    request: &HttpRequest,
    (token, query): (&str, &ShareQuery),
    password: Option<SecretString>,
    head_only: bool,
) -> Result<HttpResponse, ServiceError> {
    refuse_active_loads(request.headers())?;
    let read_request = read_request_of(request.headers(), head_only);
    let html = wants_html(request.headers());
    match services.open_share(ctx, token, password.as_ref(), &read_request).await? {
        ShareOpen::Object(read) => {
            let mut response = object_response(read, query.forces_download());
            if password.is_some() {
                // What a password guards is not kept on disk by the browser either.
                response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            }
            Ok(response)
        }
        ShareOpen::NeedsPassword(file) if html => Ok(password_page(&file, false)),
        ShareOpen::WrongPassword(file) if html => Ok(password_page(&file, true)),
        ShareOpen::NeedsPassword(_) => {
            Err(ServiceError::Unauthenticated("this link needs a password (header X-Share-Password)".into()))
        }
        ShareOpen::WrongPassword(_) => Err(ServiceError::Unauthenticated("wrong password for this link".into())),
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
    query: web::Query<ShareQuery>,
) -> Result<HttpResponse, ServiceError> {
    open(&services, &ctx, &request, (&token, &query), header_password(&request), false).await
}

pub async fn head(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    token: web::Path<String>,
    query: web::Query<ShareQuery>,
) -> Result<HttpResponse, ServiceError> {
    open(&services, &ctx, &request, (&token, &query), header_password(&request), true).await
}

/// `GET /s/{token}/thumbnail`: a 256 px preview of a shared image (behind a
/// password, only with `X-Share-Password`).
pub async fn thumbnail(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let password = header_password(&request);
    let if_none_match = super::objects::tag_list(request.headers(), header::IF_NONE_MATCH);
    let thumb = services.share_thumbnail(&ctx, &token, password.as_ref(), if_none_match.as_deref()).await?;
    // Behind a password, never reused from a cache without it; otherwise
    // revalidated on every use, so a revoked link stops showing at once.
    let cache = if password.is_some() { "no-store" } else { "private, no-cache" };
    Ok(super::thumbnails::answer(thumb, cache))
}

/// The password page's form posts here.
pub async fn post(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    request: HttpRequest,
    token: web::Path<String>,
    query: web::Query<ShareQuery>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, ServiceError> {
    open(&services, &ctx, &request, (&token, &query), Some(form.into_inner().password), false).await
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
