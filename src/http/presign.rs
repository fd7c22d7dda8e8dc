//! `POST /api/v1/presign` and part presigning.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::extract::Caller;
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

pub async fn presign_part(
    services: web::Data<Services>,
    caller: Caller,
    path: web::Path<(String, String, i64)>,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, upload_id, number) = path.into_inner();
    let presigned = services.presign_part(&caller.ctx, &caller.principal, &bucket, &upload_id, number).await?;
    Ok(HttpResponse::Ok().json(presigned))
}
