//! Retention, legal hold and default retention (`/buckets/{b}/retention/{key}`,
//! `/legal-hold/{key}`, `/default-retention`), lifecycle rules and runs.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::extract::Caller;
use super::objects::key_from_path;
use crate::metadata::{DefaultRetention, RetentionMode};
use crate::policy::lifecycle::LifecycleRule;
use crate::policy::retention::Retention;
use crate::service::{ServiceError, Services};

const BYPASS_HEADER: &str = "x-bypass-governance-retention";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    mode: Option<RetentionMode>,
    retain_until: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalHoldBody {
    status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleBody {
    rules: Vec<LifecycleRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    dry_run: bool,
    as_of: Option<DateTime<Utc>>,
}

fn requested(body: Option<RetentionBody>) -> Result<Option<Retention>, ServiceError> {
    match body.map(|b| (b.mode, b.retain_until)) {
        None | Some((None, None)) => Ok(None),
        Some((Some(mode), Some(retain_until))) => Ok(Some(Retention { mode, retain_until })),
        Some(_) => Err(ServiceError::bad_request(
            "invalid-retention",
            "give both mode and retain_until, or neither to remove the retention",
        )),
    }
}

fn bypass(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(BYPASS_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn hold_view(on: bool) -> serde_json::Value {
    serde_json::json!({ "status": if on { "ON" } else { "OFF" } })
}

pub async fn get_retention(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/retention/")?;
    let bucket = path.into_inner().0;
    let view = services.object_retention(&caller.ctx, &caller.principal, &bucket, &key).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn put_retention(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Option<RetentionBody>>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/retention/")?;
    let bucket = path.into_inner().0;
    let wanted = requested(body.into_inner())?;
    let view =
        services.set_object_retention(&caller.ctx, &caller.principal, &bucket, &key, wanted, bypass(&request)).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn get_legal_hold(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/legal-hold/")?;
    let bucket = path.into_inner().0;
    let view = services.object_retention(&caller.ctx, &caller.principal, &bucket, &key).await?;
    Ok(HttpResponse::Ok().json(hold_view(view.legal_hold)))
}

pub async fn put_legal_hold(
    services: web::Data<Services>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<LegalHoldBody>,
) -> Result<HttpResponse, ServiceError> {
    let key = key_from_path(&request, "/legal-hold/")?;
    let bucket = path.into_inner().0;
    let on = match body.status.as_str() {
        "ON" => true,
        "OFF" => false,
        _ => return Err(ServiceError::bad_request("invalid-legal-hold", "status must be \"ON\" or \"OFF\"")),
    };
    let view = services.set_legal_hold(&caller.ctx, &caller.principal, &bucket, &key, on).await?;
    Ok(HttpResponse::Ok().json(hold_view(view.legal_hold)))
}

pub async fn get_default_retention(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let current = services.default_retention_of(&caller.ctx, &caller.principal, &bucket).await?;
    Ok(HttpResponse::Ok().json(current))
}

pub async fn put_default_retention(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
    body: web::Json<Option<DefaultRetention>>,
) -> Result<HttpResponse, ServiceError> {
    let set = services.set_default_retention(&caller.ctx, &caller.principal, &bucket, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(set))
}

pub async fn get_lifecycle(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let rules = services.lifecycle_rules(&caller.ctx, &caller.principal, &bucket).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rules": rules })))
}

pub async fn put_lifecycle(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
    body: web::Json<LifecycleBody>,
) -> Result<HttpResponse, ServiceError> {
    let rules = services.set_lifecycle_rules(&caller.ctx, &caller.principal, &bucket, body.into_inner().rules).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rules": rules })))
}

pub async fn delete_lifecycle(
    services: web::Data<Services>,
    caller: Caller,
    bucket: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    services.set_lifecycle_rules(&caller.ctx, &caller.principal, &bucket, Vec::new()).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn run_lifecycle(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<RunBody>,
) -> Result<HttpResponse, ServiceError> {
    let report = services.run_lifecycle_for(&caller.ctx, &caller.principal, body.dry_run, body.as_of).await?;
    Ok(HttpResponse::Ok().json(report))
}
