//! `/health/live` and `/health/ready`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::problem::Problem;
use crate::service::Services;

pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
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
