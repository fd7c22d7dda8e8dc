//! `/api/v1/me/*`: the caller's profile, password, TOTP and API keys.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::extract::Caller;
use crate::domain::Scope;
use crate::metadata::ApiKeyRecord;
use crate::service::{ServiceError, Services};

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: SecretString,
    new_password: SecretString,
}

#[derive(Deserialize)]
pub struct Code {
    code: String,
}

#[derive(Deserialize)]
pub struct NewKey {
    name: String,
    expires_in_days: Option<u32>,
    scopes: Option<Vec<Scope>>,
}

#[derive(Serialize)]
struct KeyView {
    id: String,
    name: String,
    prefix: String,
    scopes: Vec<Scope>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    /// Created in a session that passed MFA (what `require_mfa_for_admins` asks of admin keys).
    mfa: bool,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(key: ApiKeyRecord) -> Self {
        Self {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            scopes: key.scopes.to_list(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
            mfa: key.minted_with_mfa,
        }
    }
}

pub async fn me(services: web::Data<Services>, caller: Caller) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(services.me(&caller.principal).await?))
}

pub async fn change_password(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, ServiceError> {
    services.change_password(&caller.ctx, &caller.principal, &body.current_password, &body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn enrol_totp(services: web::Data<Services>, caller: Caller) -> Result<HttpResponse, ServiceError> {
    Ok(HttpResponse::Ok().json(services.enrol_totp(&caller.principal).await?))
}

pub async fn confirm_totp(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<Code>,
) -> Result<HttpResponse, ServiceError> {
    let codes = services.confirm_totp(&caller.ctx, &caller.principal, &body.code).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "recovery_codes": codes })))
}

pub async fn disable_totp(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<Code>,
) -> Result<HttpResponse, ServiceError> {
    services.disable_totp(&caller.ctx, &caller.principal, &body.code).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn create_api_key(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let created = services
        .create_api_key(&caller.ctx, &caller.principal, &body.name, body.expires_in_days, body.scopes.as_deref())
        .await?;
    let mut view = serde_json::to_value(KeyView::from(created.record)).map_err(ServiceError::internal)?;
    view["key"] = serde_json::Value::String(created.key);
    Ok(HttpResponse::Created().json(view))
}

pub async fn list_api_keys(services: web::Data<Services>, caller: Caller) -> Result<HttpResponse, ServiceError> {
    let keys: Vec<KeyView> = services.list_api_keys(&caller.principal).await?.into_iter().map(KeyView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "api_keys": keys })))
}

pub async fn revoke_api_key(
    services: web::Data<Services>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    services.revoke_api_key(&caller.ctx, &caller.principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
