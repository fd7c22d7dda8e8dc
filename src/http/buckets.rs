//! `/api/v1/buckets` and grants.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::extract::Caller;
use crate::domain::Permission;
use crate::metadata::DefaultRetention;
use crate::service::{ServiceError, Services};

#[derive(Deserialize)]
pub struct NewBucket {
    name: String,
    default_retention: Option<DefaultRetention>,
}

#[derive(Deserialize)]
pub struct GrantBody {
    permission: Permission,
}

pub async fn list(services: web::Data<Services>, caller: Caller) -> Result<HttpResponse, ServiceError> {
    let buckets = services.list_buckets(&caller.principal).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "buckets": buckets })))
}

pub async fn create(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<NewBucket>,
) -> Result<HttpResponse, ServiceError> {
    let bucket = services.create_bucket(&caller.ctx, &caller.principal, &body.name, body.default_retention).await?;
    Ok(HttpResponse::Created().json(bucket))
}

pub async fn delete(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    services.delete_bucket(&caller.ctx, &caller.principal, &bucket).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_grants(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let grants: Vec<serde_json::Value> = services
        .list_grants(&caller.ctx, &caller.principal, &bucket)
        .await?
        .into_iter()
        .map(|g| serde_json::json!({ "username": g.username, "permission": g.permission, "created_at": g.created_at }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "grants": grants })))
}

pub async fn set_grant(
    services: web::Data<Services>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<GrantBody>,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, username) = path.into_inner();
    services.set_grant(&caller.ctx, &caller.principal, &bucket, &username, body.permission).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn remove_grant(
    services: web::Data<Services>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    let (bucket, username) = path.into_inner();
    services.remove_grant(&caller.ctx, &caller.principal, &bucket, &username).await?;
    Ok(HttpResponse::NoContent().finish())
}
