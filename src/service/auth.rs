//! Authentication use cases: login (with lockout), the MFA step, refresh-token
//! rotation with reuse detection, logout, and turning a bearer credential into a `Principal`.

use chrono::Duration;
use secrecy::SecretString;
use serde::Serialize;

use super::context::{Principal, RequestContext};
use super::identity::{AccessClaims, digest, random_token, verify_code};
use super::{ServiceError, ServiceResult, Services};
use crate::domain::Username;
use crate::domain::audit::Outcome;
use crate::metadata::{MetaError, RefreshTokenRecord, RefreshUse, ThrottleScope, UserRecord};
use crate::policy::rbac::Via;

pub const API_KEY_PREFIX: &str = "cfk_";
const REFRESH_PREFIX: &str = "cfr_";
const MFA_PREFIX: &str = "cfm_";
const MFA_CHALLENGE_TTL: Duration = Duration::minutes(5);
pub const MFA_MAX_FAILURES: i64 = 5;
const BAD_CREDENTIALS: &str = "invalid username or password";

#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

#[derive(Debug, Clone)]
pub enum LoginOutcome {
    Tokens(TokenPair),
    MfaRequired { mfa_token: String },
}

fn unauthenticated(detail: &str) -> ServiceError {
    ServiceError::Unauthenticated(detail.to_owned())
}

pub(super) fn chrono_duration(duration: std::time::Duration) -> Duration {
    Duration::from_std(duration).unwrap_or(Duration::MAX)
}

/// A write that needs the user's row, made while the user was being deleted
/// (the pin finds no row, or the challenge's reference fails): the login is over.
fn account_gone(error: MetaError) -> ServiceError {
    match error {
        MetaError::NotFound("user") | MetaError::Dangling("mfa challenge") => {
            ServiceError::Unauthenticated("the account no longer exists".into())
        }
        other => other.into(),
    }
}

impl Services {
    /// Records a refused login (metrics and audit; the guess was counted when claimed).
    async fn login_failed(&self, ctx: &RequestContext, account: &str, reason: &str) -> ServiceResult<()> {
        crate::metrics::Metrics::count(&self.metrics.logins, "failure");
        let event = ctx
            .event(self.clock.now(), account, "auth.login_failed")
            .outcome(Outcome::Denied)
            .details(serde_json::json!({ "reason": reason }));
        self.store.append_audit(&event).await?;
        Ok(())
    }

    /// Stores the password again under the current parameters, unless the
    /// hash changed meanwhile (a reset). Best effort: the login goes on
    /// either way, and the next one tries again.
    async fn rehash_password(&self, user: &UserRecord, password: &SecretString) {
        let rehashed = match self.identity.passwords.hash(password).await {
            Ok(hash) => hash,
            Err(error) => return tracing::warn!(error = %error, "could not rehash a password"),
        };
        if let Err(error) = self.store.replace_password_hash(user.id, &user.password_hash, &rehashed).await {
            tracing::warn!(error = %error, "could not store a rehashed password");
        }
    }

    pub async fn login(
        &self,
        ctx: &RequestContext,
        username: &str,
        password: &SecretString,
    ) -> ServiceResult<LoginOutcome> {
        // Throttle by what was typed (bounded), so unknown names lock like real ones.
        // Control characters dropped: no name has them, and PostgreSQL cannot store a NUL.
        let account: String = username.trim().to_lowercase().chars().filter(|c| !c.is_control()).take(128).collect();
        // The address first: a guess it refuses is not counted against the account.
        let address = ctx.ip.as_deref().map(super::rate_limits::address_key);
        let mut subjects = Vec::with_capacity(2);
        if let Some(address) = &address {
            subjects.push((ThrottleScope::Ip, address.as_ref()));
        }
        subjects.push((ThrottleScope::Account, account.as_str()));
        let claims = match self.claim_guess(&subjects, "too many failed logins; try again later").await {
            Ok(claims) => claims,
            Err(throttled) => {
                self.login_failed(ctx, &account, "locked").await?;
                return Err(throttled);
            }
        };
        let user = match Username::parse(username.trim()) {
            Ok(name) => self.store.user_by_name(&name).await?,
            Err(_) => None,
        };
        let verified =
            self.identity.passwords.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        let user = match user {
            Some(user) if verified => user,
            _ => {
                self.guess_was_wrong(claims).await?;
                self.login_failed(ctx, &account, "bad_credentials").await?;
                return Err(unauthenticated(BAD_CREDENTIALS));
            }
        };
        self.guess_was_right(claims).await?;
        if user.disabled {
            let event = ctx
                .event(self.clock.now(), user.username.as_str(), "auth.login_failed")
                .outcome(Outcome::Denied)
                .details(serde_json::json!({ "reason": "disabled" }));
            self.store.append_audit(&event).await?;
            return Err(ServiceError::Forbidden("this account is disabled".into()));
        }
        if !self.identity.passwords.is_current(&user.password_hash) {
            self.rehash_password(&user, password).await;
        }
        if user.mfa_enabled {
            let mfa_token = random_token(MFA_PREFIX);
            let expires = self.clock.now() + MFA_CHALLENGE_TTL;
            let challenged = (user.id, user.token_generation);
            match self.store.create_mfa_challenge(&digest(&mfa_token), challenged, expires).await {
                // The password was reset, or the account disabled, since it was checked.
                Err(MetaError::Conflict("credentials-changed")) => {
                    self.login_failed(ctx, &account, "credentials_changed").await?;
                    return Err(unauthenticated(BAD_CREDENTIALS));
                }
                opened => opened.map_err(account_gone)?,
            }
            let event = ctx.event(self.clock.now(), user.username.as_str(), "auth.mfa_challenge");
            self.store.append_audit(&event).await?;
            return Ok(LoginOutcome::MfaRequired { mfa_token });
        }
        let tokens = self.issue_tokens(&user, false, None).await?;
        crate::metrics::Metrics::count(&self.metrics.logins, "success");
        let event = ctx
            .event(self.clock.now(), user.username.as_str(), "auth.login")
            .details(serde_json::json!({"mfa": false}));
        self.store.append_audit(&event).await?;
        Ok(LoginOutcome::Tokens(tokens))
    }

    /// Checks a second-factor code. Wrong codes are counted per account across
    /// MFA challenges and MFA changes; past the lockout threshold every code is
    /// refused (429) until the lock ends, so guessing does not scale with logins.
    pub(crate) async fn second_factor(&self, user: &UserRecord, code: &str) -> ServiceResult<Option<&'static str>> {
        let subject = user.id.to_string();
        let claims = self
            .claim_guess(&[(ThrottleScope::SecondFactor, subject.as_str())], "too many wrong codes; try again later")
            .await?;
        let method = self.check_second_factor(user, code).await?;
        match method {
            Some(_) => self.guess_was_right(claims).await?,
            None => self.guess_was_wrong(claims).await?,
        }
        Ok(method)
    }

    /// Checks a TOTP code (each time step accepted once) or an unused recovery code.
    async fn check_second_factor(&self, user: &UserRecord, code: &str) -> ServiceResult<Option<&'static str>> {
        let Some(totp) = self.store.totp(user.id).await?.filter(|t| t.confirmed) else {
            return Ok(None);
        };
        let secret = self.identity.totp.open(user.id, &totp.secret_sealed).ok_or_else(|| {
            ServiceError::internal(anyhow::anyhow!("TOTP secret of user {} cannot be opened", user.id))
        })?;
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or_default();
        if let Some(step) = verify_code(&secret, code, now) {
            return Ok(self.store.advance_totp_step(user.id, step).await?.then_some("totp"));
        }
        let normalized: String = code.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_uppercase();
        if normalized.len() == 16
            && self.store.use_recovery_code(user.id, &digest(&normalized), self.clock.now()).await?
        {
            return Ok(Some("recovery_code"));
        }
        Ok(None)
    }

    pub async fn complete_mfa(&self, ctx: &RequestContext, mfa_token: &str, code: &str) -> ServiceResult<TokenPair> {
        let hash = digest(mfa_token);
        let now = self.clock.now();
        // The attempt is counted before the code is checked; a right code then deletes the challenge.
        let challenge = self
            .store
            .claim_mfa_attempt(&hash, now, MFA_MAX_FAILURES)
            .await?
            .ok_or_else(|| unauthenticated("the MFA step expired or failed too often; log in again"))?;
        // Under the credentials the step was opened with: a reset or disable
        // committed meanwhile (even while this request ran) ends it. Tokens are
        // issued under the generation checked here, so a reset committed after
        // this check revokes them with the rest.
        let user = self
            .store
            .user_by_id(challenge.user_id)
            .await?
            .filter(|u| !u.disabled && u.token_generation == challenge.generation)
            .ok_or_else(|| unauthenticated("the MFA step expired or failed too often; log in again"))?;
        let Some(method) = self.second_factor(&user, code).await? else {
            let failures = challenge.failures;
            if failures >= MFA_MAX_FAILURES {
                self.store.delete_mfa_challenge(&hash).await?;
            }
            let event = ctx
                .event(now, user.username.as_str(), "auth.mfa_failed")
                .outcome(Outcome::Denied)
                .details(serde_json::json!({ "failures": failures }));
            self.store.append_audit(&event).await?;
            return Err(unauthenticated("invalid code"));
        };
        self.store.delete_mfa_challenge(&hash).await?;
        let tokens = self.issue_tokens(&user, true, None).await?;
        crate::metrics::Metrics::count(&self.metrics.logins, "success");
        let event = ctx
            .event(now, user.username.as_str(), "auth.login")
            .details(serde_json::json!({"mfa": true, "method": method}));
        self.store.append_audit(&event).await?;
        Ok(tokens)
    }

    pub async fn refresh(&self, ctx: &RequestContext, refresh_token: &str) -> ServiceResult<TokenPair> {
        let now = self.clock.now();
        match self.store.use_refresh_token(&digest(refresh_token), now).await? {
            RefreshUse::Rotated(previous) => {
                let user = self
                    .store
                    .user_by_id(previous.user_id)
                    .await?
                    .filter(|u| !u.disabled && u.token_generation == previous.generation)
                    .ok_or_else(|| unauthenticated("the session has been revoked; log in again"))?;
                self.issue_tokens(&user, previous.mfa, Some(previous.family_id)).await
            }
            RefreshUse::Reused { family_id, user_id } => {
                let actor = match self.store.user_by_id(user_id).await? {
                    Some(user) => user.username.to_string(),
                    None => format!("user:{user_id}"),
                };
                let event = ctx
                    .event(now, &actor, "auth.refresh_reused")
                    .outcome(Outcome::Denied)
                    .details(serde_json::json!({ "family": family_id }));
                self.store.append_audit(&event).await?;
                Err(unauthenticated("this refresh token was already used; the session has been revoked"))
            }
            RefreshUse::Invalid => Err(unauthenticated("invalid or expired refresh token")),
        }
    }

    pub async fn logout(&self, ctx: &RequestContext, refresh_token: &str) -> ServiceResult<()> {
        let now = self.clock.now();
        if let Some(user_id) = self.store.revoke_refresh_family(&digest(refresh_token), now).await? {
            let actor = self
                .store
                .user_by_id(user_id)
                .await?
                .map_or_else(|| format!("user:{user_id}"), |u| u.username.to_string());
            self.store.append_audit(&ctx.event(now, &actor, "auth.logout")).await?;
        }
        Ok(())
    }

    async fn issue_tokens(&self, user: &UserRecord, mfa: bool, family: Option<String>) -> ServiceResult<TokenPair> {
        let now = self.clock.now();
        let ttl = chrono_duration(self.config.access_token_ttl);
        let claims = AccessClaims {
            sub: user.id.to_string(),
            name: user.username.to_string(),
            role: user.role,
            generation: user.token_generation,
            mfa,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
            aud: super::identity::AUDIENCE.to_owned(),
            iss: super::identity::ISSUER.to_owned(),
        };
        let refresh_token = random_token(REFRESH_PREFIX);
        self.store
            .insert_refresh_token(&RefreshTokenRecord {
                token_hash: digest(&refresh_token),
                family_id: family.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
                user_id: user.id,
                generation: user.token_generation,
                mfa,
                created_at: now,
                expires_at: now + chrono_duration(self.config.refresh_token_ttl),
            })
            .await
            .map_err(account_gone)?;
        Ok(TokenPair {
            access_token: self.identity.jwt.sign(&claims),
            refresh_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl.as_secs(),
        })
    }

    /// Resolves a bearer credential (access token or API key). Every failure is
    /// the same 401; a disabled user or a bumped token generation fails at once.
    pub async fn authenticate(&self, ctx: &RequestContext, bearer: &str) -> ServiceResult<Principal> {
        let result = if bearer.starts_with(API_KEY_PREFIX) {
            // Boxed: its future is four times the session path's, which would
            // otherwise carry it too (and outgrow glibc's per-thread cache).
            Box::pin(self.authenticate_api_key(bearer)).await
        } else {
            self.authenticate_jwt(bearer).await
        };
        if let Err(ServiceError::Unauthenticated(reason)) = &result {
            let event = ctx
                .event(self.clock.now(), "anonymous", "auth.token_rejected")
                .outcome(Outcome::Denied)
                .details(serde_json::json!({ "reason": reason }));
            self.store.append_audit(&event).await?;
        }
        result
    }

    async fn authenticate_jwt(&self, token: &str) -> ServiceResult<Principal> {
        let invalid = || unauthenticated("invalid or expired access token");
        let claims = self.identity.jwt.verify(token, self.clock.now()).ok_or_else(invalid)?;
        let user_id: i64 = claims.sub.parse().map_err(|_| invalid())?;
        self.prefetch_for_caller(user_id).await;
        let user = self
            .account_state(user_id)
            .await?
            // The name too: an id is never handed out twice (restores continue
            // after the dump's last), but a token must not outlive the
            // account it was issued to should one ever be.
            .filter(|u| !u.disabled && u.token_generation == claims.generation && u.username.as_str() == claims.name)
            .ok_or_else(invalid)?;
        Ok(Principal {
            user_id: user.id,
            username: user.username,
            role: user.role,
            via: Via::Session { mfa: claims.mfa },
            api_key_id: None,
            token_generation: user.token_generation,
            actor_label: None,
        })
    }

    async fn authenticate_api_key(&self, key: &str) -> ServiceResult<Principal> {
        let invalid = || unauthenticated("invalid, expired or revoked API key");
        let now = self.clock.now();
        let record = self
            .api_key_cached(&digest(key))
            .await?
            .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now))
            .ok_or_else(invalid)?;
        let user = self.account_state(record.user_id).await?.filter(|u| !u.disabled).ok_or_else(invalid)?;
        if self.claim_key_touch(&record.id).await {
            self.store.touch_api_key(&record.id, now, Duration::minutes(1)).await?;
        }
        Ok(Principal {
            user_id: user.id,
            username: user.username,
            role: user.role,
            via: Via::ApiKey { scopes: record.scopes, mfa: record.minted_with_mfa },
            api_key_id: Some(record.id),
            token_generation: user.token_generation,
            actor_label: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{MetaError, ServiceError, account_gone};

    #[test]
    fn a_login_whose_account_went_meanwhile_is_unauthenticated() {
        for gone in [MetaError::NotFound("user"), MetaError::Dangling("mfa challenge")] {
            assert!(matches!(account_gone(gone), ServiceError::Unauthenticated(_)));
        }
        assert!(!matches!(account_gone(MetaError::NotFound("share")), ServiceError::Unauthenticated(_)));
    }
}
