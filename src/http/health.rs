//! `/health/live` and `/health/ready`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::problem::Problem;
use crate::service::{ServiceError, Services};

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /metrics`: Prometheus text; behind a bearer token when `metrics_token` is set.
pub async fn metrics(
    services: web::Data<Services>,
    request: actix_web::HttpRequest,
) -> Result<HttpResponse, ServiceError> {
    if let Some(expected) = &services.config.metrics_token {
        let given = super::extract::bearer(&request).unwrap_or_default();
        let expected = secrecy::ExposeSecret::expose_secret(expected).as_bytes();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected)) {
            return Err(ServiceError::Unauthenticated("metrics need the metrics token".into()));
        }
    }
    services.metrics.cache_breaker_open.set(i64::from(services.cache.breaker_open()));
    services.metrics.cache_copies_leased.set(i64::from(services.cache.copies_leased()));
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(services.metrics.render()))
}

pub async fn ready(services: web::Data<Services>) -> HttpResponse {
    let readiness = services.readiness().await;
    if readiness.is_ready() {
        HttpResponse::Ok().json(serde_json::json!({
            "status": "ok",
            "checks": readiness.checks,
            "retention_enforcement": readiness.retention_enforcement,
        }))
    } else {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", readiness.failures())
            .with("checks", &readiness.checks)
            .response()
    }
}
