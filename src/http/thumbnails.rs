//! `GET /api/v1/buckets/{bucket}/thumbnails/{key}?size=&format=`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::extract::Caller;
use super::objects::{key_from_path, tag_list};
use crate::media::thumbnail::ThumbFormat;
use crate::service::thumbnails::Thumbnail;
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
    let if_none_match = tag_list(request.headers(), header::IF_NONE_MATCH);
    let thumb = services
        .thumbnail(&caller.ctx, &caller.principal, &path.0, &key, (size, format), if_none_match.as_deref())
        .await?;
    Ok(answer(thumb, CACHE_CONTROL))
}

/// `200` with the thumbnail, or `304` when the client's copy is current.
pub(super) fn answer(thumb: Thumbnail, cache_control: &'static str) -> HttpResponse {
    let mut response = if thumb.bytes.is_some() { HttpResponse::Ok() } else { HttpResponse::NotModified() };
    response
        .insert_header((header::ETAG, thumb.etag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    match thumb.bytes {
        Some(bytes) => response.content_type(thumb.content_type).body(bytes),
        None => response.finish(),
    }
}
