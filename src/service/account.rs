//! The caller's own account: profile, password, TOTP enrolment, API keys.

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde::Serialize;
use totp_rs::Secret;

use super::auth::API_KEY_PREFIX;
use super::context::{Principal, RequestContext};
use super::identity::{authenticator, digest, random_bytes, random_token, verify_code};
use super::scopes::user_scope;
use super::{ServiceError, ServiceResult, Services};
use crate::domain::audit::Outcome;
use crate::domain::{Scope, Scopes};
use crate::metadata::{ApiKeyRecord, MetaError, ThrottleScope, UserPatch, UserRecord};
use crate::policy::{password, rbac};

pub const RECOVERY_CODES: usize = 10;
const TOTP_SECRET_BYTES: usize = 20;
const MAX_KEY_NAME: usize = 100;
const MAX_KEY_DAYS: u32 = 3650;
/// Live (unrevoked) API keys one user may hold; the list is answered whole.
pub const MAX_LIVE_KEYS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Me {
    pub username: String,
    pub role: crate::domain::Role,
    pub mfa_enabled: bool,
    pub quota_bytes: Option<i64>,
    pub used_bytes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_url: String,
    pub qr_png_base64: String,
}

/// A new API key: the secret is returned once and never stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub record: ApiKeyRecord,
    pub key: String,
}

fn invalid_code() -> ServiceError {
    ServiceError::bad_request("invalid-code", "the code is not valid")
}

impl Services {
    pub(crate) async fn current_user(&self, principal: &Principal) -> ServiceResult<UserRecord> {
        self.store
            .user_by_id(principal.user_id)
            .await?
            .ok_or_else(|| ServiceError::Unauthenticated("the account no longer exists".into()))
    }

    fn require_session(&self, principal: &Principal) -> ServiceResult<()> {
        if rbac::may_manage_own_credentials(principal.subject()) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(
                "credentials can only be changed from a logged-in session, not with an API key".into(),
            ))
        }
    }

    pub async fn me(&self, principal: &Principal) -> ServiceResult<Me> {
        let user = self.current_user(principal).await?;
        Ok(Me {
            username: user.username.to_string(),
            role: user.role,
            mfa_enabled: user.mfa_enabled,
            quota_bytes: user.quota_bytes,
            used_bytes: user.used_bytes,
        })
    }

    /// Changes the caller's password: every credential of the account ends (the
    /// token generation moves on; refresh tokens, pending MFA steps and API
    /// keys are revoked), as the contract has it for a password reset: a key
    /// minted with a stolen session must not outlive the password change.
    pub async fn change_password(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        current: &SecretString,
        new: &SecretString,
    ) -> ServiceResult<()> {
        self.require_session(principal)?;
        let user = self.current_user(principal).await?;
        let account = user.username.as_str();
        let now = self.clock.now();
        let claims =
            self.claim_guess(&[(ThrottleScope::Account, account)], "too many failed attempts; try again later").await?;
        if !self.identity.passwords.verify(current, Some(&user.password_hash)).await? {
            self.guess_was_wrong(claims).await?;
            let event = ctx.event(now, account, "auth.password_change_failed").outcome(Outcome::Denied);
            self.store.append_audit(&event).await?;
            return Err(ServiceError::bad_request("wrong-password", "the current password is not correct"));
        }
        self.guess_was_right(claims).await?;
        self.check_password_policy(new, account)?;
        let patch = UserPatch {
            password_hash: Some(self.identity.passwords.hash(new).await?),
            bump_generation: true,
            revoke_refresh_tokens: true,
            revoke_api_keys: true,
            ..UserPatch::default()
        };
        self.store.update_user(user.id, &patch, &ctx.event(now, account, "auth.password_changed")).await?;
        self.invalidate(&user_scope(user.id)).await;
        Ok(())
    }

    pub(crate) fn check_password_policy(&self, password: &SecretString, username: &str) -> ServiceResult<()> {
        use secrecy::ExposeSecret;
        password::check(password.expose_secret(), username)
            .map_err(|rejection| ServiceError::bad_request("weak-password", rejection.to_string()))
    }

    pub async fn enrol_totp(&self, principal: &Principal) -> ServiceResult<TotpEnrolment> {
        self.require_session(principal)?;
        let user = self.current_user(principal).await?;
        if user.mfa_enabled {
            return Err(ServiceError::conflict("mfa-enabled", "MFA is already enabled; disable it first"));
        }
        let secret = random_bytes::<TOTP_SECRET_BYTES>();
        let sealed = self.identity.totp.seal(user.id, &secret);
        self.store.put_pending_totp(user.id, &sealed, self.clock.now()).await.map_err(|error| match error {
            MetaError::Conflict(_) => ServiceError::conflict("mfa-enabled", "MFA is already enabled"),
            other => other.into(),
        })?;
        let totp = authenticator(&secret, user.username.as_str())
            .ok_or_else(|| ServiceError::internal(anyhow::anyhow!("TOTP parameters rejected")))?;
        Ok(TotpEnrolment {
            secret: Secret::from(secret.to_vec()).to_base32(),
            otpauth_url: totp.to_url().map_err(|e| ServiceError::internal(anyhow::anyhow!("{e:?}")))?,
            qr_png_base64: totp.to_qr_base64().map_err(|e| ServiceError::internal(anyhow::anyhow!("{e:?}")))?,
        })
    }

    /// Turns MFA on after a valid code; returns the recovery codes (shown once).
    pub async fn confirm_totp(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        code: &str,
    ) -> ServiceResult<Vec<String>> {
        self.require_session(principal)?;
        let user = self.current_user(principal).await?;
        let pending = self
            .store
            .totp(user.id)
            .await?
            .filter(|t| !t.confirmed)
            .ok_or_else(|| ServiceError::conflict("no-pending-enrolment", "start an enrolment first"))?;
        let secret = self
            .identity
            .totp
            .open(user.id, &pending.secret_sealed)
            .ok_or_else(|| ServiceError::internal(anyhow::anyhow!("pending TOTP secret cannot be opened")))?;
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or_default();
        let step = verify_code(&secret, code, now).ok_or_else(invalid_code)?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| digest(&c.replace('-', ""))).collect();
        let event = ctx.event(self.clock.now(), user.username.as_str(), "auth.mfa_enabled");
        let checked = (pending.secret_sealed.as_str(), step);
        self.store.confirm_totp(user.id, checked, &hashes, &event).await.map_err(|error| match error {
            MetaError::Conflict("enrolment-replaced") => ServiceError::conflict(
                "enrolment-replaced",
                "another enrolment replaced this one: confirm with a code of its secret",
            ),
            other => other.into(),
        })?;
        Ok(codes)
    }

    pub async fn disable_totp(&self, ctx: &RequestContext, principal: &Principal, code: &str) -> ServiceResult<()> {
        self.require_session(principal)?;
        let user = self.current_user(principal).await?;
        if !user.mfa_enabled {
            return Err(ServiceError::conflict("mfa-disabled", "MFA is not enabled"));
        }
        if self.second_factor(&user, code).await?.is_none() {
            return Err(invalid_code());
        }
        let event = ctx.event(self.clock.now(), user.username.as_str(), "auth.mfa_disabled");
        self.store.delete_totp(user.id, &event).await?;
        Ok(())
    }

    pub async fn create_api_key(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        name: &str,
        expires_in_days: Option<u32>,
        scopes: Option<&[Scope]>,
    ) -> ServiceResult<NewApiKey> {
        self.require_session(principal)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_KEY_NAME || name.chars().any(char::is_control) {
            return Err(ServiceError::bad_request(
                "invalid-name",
                format!("name must be 1 to {MAX_KEY_NAME} printable characters"),
            ));
        }
        let expires_at: Option<DateTime<Utc>> = match expires_in_days {
            Some(days) if (1..=MAX_KEY_DAYS).contains(&days) => {
                Some(self.clock.now() + Duration::days(i64::from(days)))
            }
            Some(_) => {
                return Err(ServiceError::bad_request(
                    "invalid-expiry",
                    format!("expires_in_days must be between 1 and {MAX_KEY_DAYS}"),
                ));
            }
            None => None,
        };
        let scopes = match scopes {
            Some(list) => {
                Scopes::from_list(list).map_err(|e| ServiceError::bad_request("invalid-scopes", e.to_string()))?
            }
            None => Scopes::ALL,
        };
        let key = random_token(API_KEY_PREFIX);
        let record = ApiKeyRecord {
            id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
            user_id: principal.user_id,
            name: name.to_owned(),
            prefix: key[..API_KEY_PREFIX.len() + 8].to_owned(),
            key_hash: digest(&key),
            scopes,
            created_at: self.clock.now(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
            minted_with_mfa: matches!(principal.via, rbac::Via::Session { mfa: true }),
        };
        let event =
            ctx.event(self.clock.now(), principal.username.as_str(), "apikey.create").details(serde_json::json!({
                "id": record.id, "name": record.name, "scopes": scopes.to_string(), "mfa": record.minted_with_mfa
            }));
        let minting = (principal.token_generation, MAX_LIVE_KEYS);
        self.store.insert_api_key(&record, minting, &event).await.map_err(|error| match error {
            MetaError::Conflict("too-many-api-keys") => ServiceError::conflict(
                "too-many-api-keys",
                format!("at most {MAX_LIVE_KEYS} live API keys per user; revoke one first"),
            ),
            // A password change, reset, disable or deletion committed since this session was checked.
            MetaError::Conflict("credentials-changed") | MetaError::NotFound("user") => {
                ServiceError::Unauthenticated("this session ended: the account's credentials changed".into())
            }
            other => other.into(),
        })?;
        Ok(NewApiKey { record, key })
    }

    pub async fn list_api_keys(&self, principal: &Principal) -> ServiceResult<Vec<ApiKeyRecord>> {
        Ok(self.store.list_api_keys(principal.user_id).await?)
    }

    /// From a session, any of one's keys; with an API key, only that key itself
    /// (a leaked key must not be able to revoke the owner's other keys).
    pub async fn revoke_api_key(&self, ctx: &RequestContext, principal: &Principal, id: &str) -> ServiceResult<()> {
        if principal.api_key_id.as_deref() != Some(id) {
            self.require_session(principal)?;
        }
        let event = ctx
            .event(self.clock.now(), principal.username.as_str(), "apikey.revoke")
            .details(serde_json::json!({ "id": id }));
        self.store.revoke_api_key(principal.user_id, id, &event).await?;
        self.invalidate(&user_scope(principal.user_id)).await;
        Ok(())
    }
}

/// 80 random bits as 16 base32 characters, grouped `XXXX-XXXX-XXXX-XXXX`.
fn recovery_code() -> String {
    let encoded = Secret::from(random_bytes::<10>().to_vec()).to_base32();
    encoded.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::recovery_code;

    #[test]
    fn recovery_codes_are_grouped_base32() {
        let code = recovery_code();
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(code.matches('-').count(), 3);
        assert!(code.replace('-', "").bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_ne!(code, recovery_code());
    }
}
