//! `/api/v1/admin/users/*`: account administration.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use super::cursor;
use super::extract::Caller;
use crate::domain::Role;
use crate::metadata::UserRecord;
use crate::service::users::UserChanges;
use crate::service::{ServiceError, Services};

#[derive(Serialize)]
pub struct UserView {
    username: String,
    role: Role,
    disabled: bool,
    mfa_enabled: bool,
    quota_bytes: Option<i64>,
    used_bytes: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(user: UserRecord) -> Self {
        Self {
            username: user.username.to_string(),
            role: user.role,
            disabled: user.disabled,
            mfa_enabled: user.mfa_enabled,
            quota_bytes: user.quota_bytes,
            used_bytes: user.used_bytes,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Deserialize)]
pub struct NewUser {
    username: String,
    password: SecretString,
    role: Role,
    quota_bytes: Option<i64>,
}

/// `null` and absent differ for `quota_bytes`: null means unlimited.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    role: Option<Role>,
    disabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    quota_bytes: Option<Option<i64>>,
    password: Option<SecretString>,
}

pub async fn list(
    services: web::Data<Services>,
    caller: Caller,
    page: web::Query<cursor::Page>,
) -> Result<HttpResponse, ServiceError> {
    let after = page.after()?;
    let (users, next) = services.list_users(&caller.ctx, &caller.principal, after.as_deref(), page.limit()).await?;
    let users: Vec<UserView> = users.into_iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({ "users": users, "next_cursor": next.as_deref().map(cursor::encode) })))
}

pub async fn create(
    services: web::Data<Services>,
    caller: Caller,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ServiceError> {
    let user = services
        .create_user(&caller.ctx, &caller.principal, (&body.username, &body.password, body.role, body.quota_bytes))
        .await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

pub async fn get(
    services: web::Data<Services>,
    caller: Caller,
    username: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    let user = services.get_user(&caller.ctx, &caller.principal, &username).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

pub async fn patch(
    services: web::Data<Services>,
    caller: Caller,
    username: web::Path<String>,
    body: web::Json<Patch>,
) -> Result<HttpResponse, ServiceError> {
    let body = body.into_inner();
    let changes = UserChanges {
        role: body.role,
        disabled: body.disabled,
        quota_bytes: body.quota_bytes,
        password: body.password,
    };
    let user = services.update_user(&caller.ctx, &caller.principal, &username, changes).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

pub async fn delete(
    services: web::Data<Services>,
    caller: Caller,
    username: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    services.delete_user(&caller.ctx, &caller.principal, &username).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn reset_mfa(
    services: web::Data<Services>,
    caller: Caller,
    username: web::Path<String>,
) -> Result<HttpResponse, ServiceError> {
    services.reset_mfa(&caller.ctx, &caller.principal, &username).await?;
    Ok(HttpResponse::NoContent().finish())
}
