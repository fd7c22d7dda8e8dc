//! `/api/v1/buckets/{bucket}/uploads…`: resumable multipart uploads.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::body::byte_stream;
use super::cursor;
use super::extract::Caller;
use crate::metadata::UploadPartRecord;
use crate::service::objects::ObjectView;
use crate::service::{ServiceError, Services};

#[derive(Deserialize)]
pub struct NewUpload {
    key: String,
    content_type: Option<String>,
    size: Option<i64>,
}

#[derive(Deserialize)]
pub struct PartRef {
    part_number: i64,
    etag: String,
}

#[derive(Deserialize)]
pub struct Completion {
    parts: Vec<PartRef>,
}

fn part_view(part: &UploadPartRecord) -> serde_json::Value {
    serde_json::json!({ "part_number": part.part_number, "size": part.size, "etag": part.etag })
}

pub async fn list(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
    page: web::Query<cursor::Page>,
) -> Result<HttpResponse, ServiceError> {
    let after = page.after()?;
    let (uploads, next) =
        services.list_uploads(&caller.ctx, &caller.principal, &bucket, after.as_deref(), page.limit()).await?;
    let uploads: Vec<serde_json::Value> = uploads
        .iter()
        .map(|u| {
            serde_json::json!({
                "upload_id": u.id, "key": u.key, "part_size": u.part_size, "size": u.declared_size,
                "created_at": u.created_at, "mine": u.owner_id == Some(caller.principal.user_id),
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "uploads": uploads, "next_cursor": next.as_deref().map(cursor::encode) })))
}

pub async fn create(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
    body: web::Json<NewUpload>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let upload = services
        .create_upload(&caller.ctx, &caller.principal, &bucket, &body.key, body.content_type, body.size)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "upload_id": upload.id, "key": upload.key, "part_size": upload.part_size,
    })))
}

pub async fn put_part(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    path: web::Path<(String, String, i64)>,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, upload_id, number) = path.into_inner();
    let length = match request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
        Some(value) => {
            Some(value.parse().map_err(|_| ServiceError::bad_request("invalid-length", "invalid Content-Length"))?)
        }
        None => None,
    };
    let part = services
        .upload_part(
            &caller.ctx,
            &caller.principal,
            &bucket,
            &upload_id,
            number,
            byte_stream(payload, services.config.client_body_timeout),
            length,
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", part.etag)))
        .json(serde_json::json!({ "etag": part.etag })))
}

pub async fn list_parts(
    services: web::Data<Services>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, upload_id) = path.into_inner();
    let (upload, parts) = services.list_upload_parts(&caller.ctx, &caller.principal, &bucket, &upload_id).await?;
    let parts: Vec<serde_json::Value> = parts.iter().map(part_view).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "upload_id": upload.id, "key": upload.key, "part_size": upload.part_size, "parts": parts,
    })))
}

pub async fn complete(
    services: web::Data<Services>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Completion>,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, upload_id) = path.into_inner();
    let parts: Vec<(i64, String)> = body.parts.iter().map(|p| (p.part_number, p.etag.clone())).collect();
    // Assembling may take minutes; a client that gives up waiting must not
    // cancel it halfway (leaving the upload stuck `completing`): it runs as
    // its own task, which the request only awaits.
    let services = services.into_inner();
    let completion = tokio::spawn(async move {
        services.complete_upload(&caller.ctx, &caller.principal, &bucket, &upload_id, &parts).await
    });
    let object = completion.await.map_err(|error| ServiceError::internal(anyhow::anyhow!(error)))??;
    Ok(HttpResponse::Created().json(ObjectView::from(&object)))
}

pub async fn abort(
    services: web::Data<Services>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, upload_id) = path.into_inner();
    services.abort_upload(&caller.ctx, &caller.principal, &bucket, &upload_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
