//! `/api/v1/auth/*`: login, the MFA step, refresh, logout.

use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::extract::Ctx;
use crate::service::auth::LoginOutcome;
use crate::service::{ServiceError, Services};

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: SecretString,
}

#[derive(Deserialize)]
pub struct MfaRequest {
    mfa_token: String,
    code: String,
}

#[derive(Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

pub async fn login(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ServiceError> {
    Ok(match services.login(&ctx, &body.username, &body.password).await? {
        LoginOutcome::Tokens(tokens) => HttpResponse::Ok().json(tokens),
        LoginOutcome::MfaRequired { mfa_token } => {
            HttpResponse::Ok().json(serde_json::json!({ "mfa_required": true, "mfa_token": mfa_token }))
        }
    })
}

pub async fn mfa(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    body: web::Json<MfaRequest>,
) -> Result<HttpResponse, ServiceError> {
    let tokens = services.complete_mfa(&ctx, &body.mfa_token, &body.code).await?;
    Ok(HttpResponse::Ok().json(tokens))
}

pub async fn refresh(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ServiceError> {
    let tokens = services.refresh(&ctx, &body.refresh_token).await?;
    Ok(HttpResponse::Ok().json(tokens))
}

pub async fn logout(
    services: web::Data<Services>,
    Ctx(ctx): Ctx,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ServiceError> {
    services.logout(&ctx, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}
