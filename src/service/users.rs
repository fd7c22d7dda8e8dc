//! Administration of accounts: list, create, read, change, delete, reset MFA.
//! Also the first-admin path used by `coffer user create`.

use secrecy::SecretString;

use super::context::{Principal, RequestContext};
use super::identity::PasswordHasher;
use super::scopes::user_scope;
use super::{ServiceError, ServiceResult, Services};
use crate::clock::Clock;
use crate::domain::audit::{AuditEntry, Outcome};
use crate::domain::{Role, Username};
use crate::metadata::{MetaError, MetaResult, MetadataStore, NewUser, UserPatch, UserRecord};
use crate::policy::{password, rbac};

pub const MAX_PAGE: usize = 1000;

/// What an admin may change; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub quota_bytes: Option<Option<i64>>,
    pub password: Option<SecretString>,
}

fn parse_username(raw: &str) -> ServiceResult<Username> {
    Username::parse(raw).map_err(|e| ServiceError::bad_request("invalid-username", e.to_string()))
}

fn check_quota(quota: Option<i64>) -> ServiceResult<()> {
    match quota {
        Some(q) if q < 0 => Err(ServiceError::bad_request("invalid-quota", "quota_bytes must be 0 or more, or null")),
        _ => Ok(()),
    }
}

fn last_admin(error: MetaError) -> ServiceError {
    match error {
        MetaError::Conflict("last admin") => {
            ServiceError::conflict("last-admin", "the last active admin cannot be demoted, disabled or deleted")
        }
        MetaError::Conflict("user") => ServiceError::conflict("user-exists", "a user with this name already exists"),
        other => other.into(),
    }
}

/// Creates an account after checking name and password policy; shared by the
/// admin API and the CLI (which has no `Services`, no storage, no cache).
pub async fn create_account(
    store: &dyn MetadataStore,
    hasher: &PasswordHasher,
    clock: &dyn Clock,
    audit: AuditEntry,
    (username, password_text, role, quota_bytes): (&str, &SecretString, Role, Option<i64>),
) -> ServiceResult<UserRecord> {
    use secrecy::ExposeSecret;
    let username = parse_username(username)?;
    password::check(password_text.expose_secret(), username.as_str())
        .map_err(|rejection| ServiceError::bad_request("weak-password", rejection.to_string()))?;
    check_quota(quota_bytes)?;
    let user = NewUser {
        password_hash: hasher.hash(password_text).await?,
        username: username.clone(),
        role,
        quota_bytes,
        at: clock.now(),
    };
    let audit = audit.details(serde_json::json!({ "username": username, "role": role, "quota_bytes": quota_bytes }));
    store.create_user(&user, &audit).await.map_err(last_admin)
}

impl Services {
    /// Admin-only gate, recorded when refused.
    pub(crate) async fn require_admin(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        action: &str,
    ) -> ServiceResult<()> {
        if rbac::may_administer(principal.subject(), self.config.require_mfa_for_admins) {
            return Ok(());
        }
        let reason = match principal.role {
            Role::Admin if self.config.require_mfa_for_admins => {
                "administration needs a session that passed MFA, or a read and write API key created by one"
            }
            Role::Admin => "administration needs a session, or an API key with read and write scopes",
            _ => "administrators only",
        };
        Err(self.deny(ctx, principal, action, None, None, ServiceError::Forbidden(reason.into())).await)
    }

    /// Records a refused attempt in the audit trail and hands back the error to return.
    pub(crate) async fn deny(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        action: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        error: ServiceError,
    ) -> ServiceError {
        let mut event = ctx
            .event(self.clock.now(), principal.username.as_str(), action)
            .outcome(Outcome::Denied)
            .details(serde_json::json!({ "reason": error.to_string() }));
        event.bucket = bucket.map(str::to_owned);
        event.key = key.map(str::to_owned);
        if let Err(audit_error) = self.store.append_audit(&event).await {
            tracing::warn!(error = %audit_error, action, "could not record a denied attempt");
        }
        error
    }

    async fn user_named(&self, raw: &str) -> ServiceResult<UserRecord> {
        let name = parse_username(raw)?;
        self.store.user_by_name(&name).await?.ok_or(ServiceError::NotFound("user"))
    }

    pub async fn list_users(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> ServiceResult<(Vec<UserRecord>, Option<String>)> {
        self.require_admin(ctx, principal, "user.list").await?;
        let after = after.map(parse_username).transpose()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut users = self.store.list_users(after.as_ref(), limit + 1).await?;
        let next = (users.len() > limit).then(|| {
            users.truncate(limit);
            users.last().map(|u| u.username.to_string())
        });
        Ok((users, next.flatten()))
    }

    pub async fn create_user(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        request: (&str, &SecretString, Role, Option<i64>),
    ) -> ServiceResult<UserRecord> {
        self.require_admin(ctx, principal, "user.create").await?;
        let audit = ctx.event(self.clock.now(), principal.username.as_str(), "user.create");
        create_account(&*self.store, &self.identity.passwords, &*self.clock, audit, request).await
    }

    pub async fn get_user(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        username: &str,
    ) -> ServiceResult<UserRecord> {
        self.require_admin(ctx, principal, "user.get").await?;
        self.user_named(username).await
    }

    /// Disabling or setting a password revokes every session and API key at once.
    pub async fn update_user(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        username: &str,
        changes: UserChanges,
    ) -> ServiceResult<UserRecord> {
        self.require_admin(ctx, principal, "user.update").await?;
        let user = self.user_named(username).await?;
        if let Some(quota) = changes.quota_bytes {
            check_quota(quota)?;
        }
        let password_hash = match &changes.password {
            Some(password) => {
                self.check_password_policy(password, user.username.as_str())?;
                Some(self.identity.passwords.hash(password).await?)
            }
            None => None,
        };
        let revoke = changes.disabled == Some(true) || password_hash.is_some();
        let patch = UserPatch {
            role: changes.role,
            disabled: changes.disabled,
            quota_bytes: changes.quota_bytes,
            bump_generation: revoke,
            revoke_refresh_tokens: revoke,
            revoke_api_keys: revoke,
            password_hash,
        };
        let audit =
            ctx.event(self.clock.now(), principal.username.as_str(), "user.update").details(serde_json::json!({
                "username": user.username,
                "role": changes.role,
                "disabled": changes.disabled,
                "quota_bytes": changes.quota_bytes,
                "password_reset": changes.password.is_some(),
            }));
        let updated = self.store.update_user(user.id, &patch, &audit).await;
        let updated = self.refused_for_the_last_admin(&audit, updated).await?;
        self.invalidate(&user_scope(user.id)).await;
        Ok(updated)
    }

    pub async fn delete_user(&self, ctx: &RequestContext, principal: &Principal, username: &str) -> ServiceResult<()> {
        self.require_admin(ctx, principal, "user.delete").await?;
        let user = self.user_named(username).await?;
        let audit = ctx
            .event(self.clock.now(), principal.username.as_str(), "user.delete")
            .details(serde_json::json!({ "username": user.username }));
        let deleted = self.store.delete_user(user.id, &audit).await;
        self.refused_for_the_last_admin(&audit, deleted).await?;
        self.invalidate(&user_scope(user.id)).await;
        Ok(())
    }

    /// A change's store answer in client terms. A refusal under the last-admin
    /// rule rolled its transaction back, audit row included: it is recorded
    /// again as denied, with what was asked, like every other refusal.
    async fn refused_for_the_last_admin<T>(&self, asked: &AuditEntry, answer: MetaResult<T>) -> ServiceResult<T> {
        let error = match answer {
            Err(error @ MetaError::Conflict("last admin")) => last_admin(error),
            other => return other.map_err(last_admin),
        };
        let mut denied = asked.clone().outcome(Outcome::Denied);
        denied.details["reason"] = serde_json::json!(error.to_string());
        if let Err(audit_error) = self.store.append_audit(&denied).await {
            tracing::warn!(error = %audit_error, action = %asked.action, "could not record a denied attempt");
        }
        Err(error)
    }

    pub async fn reset_mfa(&self, ctx: &RequestContext, principal: &Principal, username: &str) -> ServiceResult<()> {
        self.require_admin(ctx, principal, "user.mfa_reset").await?;
        let user = self.user_named(username).await?;
        let audit = ctx
            .event(self.clock.now(), principal.username.as_str(), "user.mfa_reset")
            .details(serde_json::json!({ "username": user.username }));
        self.store.delete_totp(user.id, &audit).await?;
        Ok(())
    }
}
