//! `GET /api/v1/buckets/{bucket}/thumbnails/{key}?size=&format=`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::extract::Caller;
use super::objects::key_from_path;
use crate::media::thumbnail::ThumbFormat;
use crate::service::{ServiceError, Services};

/// Thumbnails never change under their ETag (it names the source content).
const CACHE_CONTROL: &str = "private, max-age=86400";

#[derive(Deserialize)]
pub struct ThumbQuery {
    size: Option<u32>,
    format: Option<String>,
}

pub async fn get(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<ThumbQuery>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/thumbnails/")?;
    let format = match query.format.as_deref() {
        None => ThumbFormat::Webp,
        Some(raw) => ThumbFormat::parse(raw)
            .ok_or_else(|| ServiceError::bad_request("invalid-format", "format must be webp or jpeg"))?,
    };
    let size = query.size.unwrap_or(256);
    let thumb = services.thumbnail(&caller.ctx, &caller.principal, &path.0, &key, size, format).await?;
    let not_modified = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == thumb.etag || tag.trim() == "*"));
    let mut response = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, thumb.etag.clone()))
        .insert_header((header::CACHE_CONTROL, CACHE_CONTROL))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if not_modified {
        return Ok(response.finish());
    }
    Ok(response.content_type(thumb.content_type).body(thumb.bytes))
}
