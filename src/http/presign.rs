//! `POST /api/v1/presign` and part presigning.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::extract::{Caller, optional_json};
use crate::config::TransferMode;
use crate::service::{ServiceError, Services};

#[derive(Deserialize)]
pub struct PresignRequest {
    bucket: String,
    key: String,
    method: String,
    expires_in_seconds: i64,
    transfer_mode: Option<TransferMode>,
}

pub async fn presign(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<PresignRequest>,
) -> Result<HttpResponse, ServiceError> {
    let presigned = services
        .presign_object(
            &caller.ctx,
            &caller.principal,
            &body.bucket,
            &body.key,
            &body.method,
            body.expires_in_seconds,
            body.transfer_mode,
        )
        .await?;
    Ok(HttpResponse::Ok().json(presigned))
}

/// The optional body of a part presign: the part's size, which a direct URL is signed for.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PartPresignRequest {
    size: Option<i64>,
}

pub async fn presign_part(
    services: web::Data<Services>,
    caller: Caller,
    path: web::Path<(String, String, i64)>,
    body: web::Bytes,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, upload_id, number) = path.into_inner();
    let request: PartPresignRequest = optional_json(&body)?;
    let presigned =
        services.presign_part(&caller.ctx, &caller.principal, &bucket, &upload_id, number, request.size).await?;
    Ok(HttpResponse::Ok().json(presigned))
}
