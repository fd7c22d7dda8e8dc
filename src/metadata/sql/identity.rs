// Credentials and login state, shared by both adapters (included with `Store` and `begin_write` in scope).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::audit::AuditEntry;
use crate::metadata::error::sql_err;
use crate::metadata::rows::{ApiKeyRow, RefreshRow, records};
use crate::metadata::time::{from_micros, to_micros};
use crate::metadata::{
    ApiKeyRecord, AttemptClaim, IdentityStore, MetaError, MetaResult, MfaChallenge, RefreshTokenRecord, RefreshUse,
    Settle, ThrottleRule, ThrottleScope, TotpRecord,
};

use super::audit::commit_audited;

/// Takes `LOCK_REFRESH_FAMILY` for `family_id` inside `tx` (where the engine needs one).
async fn lock_family(tx: &mut sqlx::Transaction<'static, super::Db>, family_id: &str) -> MetaResult<()> {
    if let Some(lock) = LOCK_REFRESH_FAMILY {
        sqlx::query(lock).bind(family_id).fetch_all(&mut **tx).await.map_err(sql_err("refresh family"))?;
    }
    Ok(())
}

/// Takes `lock` (`LOCK_USER` or `PIN_USER`) on user `user_id` inside `tx`:
/// writes touching a user's rows start with it (see `LOCK_USER`).
async fn lock_user(tx: &mut sqlx::Transaction<'static, super::Db>, lock: &'static str, user_id: i64) -> MetaResult<()> {
    let found: Option<(i64,)> =
        sqlx::query_as(lock).bind(user_id).fetch_optional(&mut **tx).await.map_err(sql_err("user"))?;
    found.map(|_| ()).ok_or(MetaError::NotFound("user"))
}

/// Locks user `user_id` (as `LOCK_USER`) and checks that its credentials are
/// still those a session was issued under: the same token generation, not
/// disabled (`Conflict("credentials-changed")` otherwise). What is written
/// next in `tx` then either precedes a password reset or disable, which
/// revokes it, or sees it and is refused.
async fn credentials_still_stand(
    tx: &mut sqlx::Transaction<'static, super::Db>,
    user_id: i64,
    generation: i64,
) -> MetaResult<()> {
    lock_user(tx, LOCK_USER, user_id).await?;
    let (current, disabled): (i64, bool) =
        sqlx::query_as("SELECT token_generation, disabled FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(sql_err("user"))?;
    if current != generation || disabled {
        return Err(MetaError::Conflict("credentials-changed"));
    }
    Ok(())
}

/// The family and user of a refresh token, with the user's row pinned and
/// then the family locked (the order every write takes them in); `None` for
/// an unknown token or a user deleted meanwhile.
async fn lock_family_of(
    tx: &mut sqlx::Transaction<'static, super::Db>,
    token_hash: &str,
) -> MetaResult<Option<(String, i64)>> {
    let known: Option<(String, i64)> =
        sqlx::query_as("SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&mut **tx)
            .await
            .map_err(sql_err("refresh token"))?;
    let Some((family_id, user_id)) = known else {
        return Ok(None);
    };
    match lock_user(tx, PIN_USER, user_id).await {
        Err(MetaError::NotFound(_)) => return Ok(None),
        other => other?,
    }
    lock_family(tx, &family_id).await?;
    Ok(Some((family_id, user_id)))
}

#[async_trait]
impl IdentityStore for Store {
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        lock_user(&mut tx, PIN_USER, token.user_id).await?;
        lock_family(&mut tx, &token.family_id).await?;
        sqlx::query(concat!("INSERT INTO refresh_tokens (", refresh_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(&token.token_hash)
            .bind(&token.family_id)
            .bind(token.user_id)
            .bind(token.generation)
            .bind(token.mfa)
            .bind(to_micros(token.created_at))
            .bind(to_micros(token.expires_at))
            .execute(&mut *tx)
            .await
            .map_err(sql_err("refresh token"))?;
        // A family revoked (reuse detected, logout) while this successor was being
        // issued takes the successor with it: it is born revoked.
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $3 WHERE token_hash = $1 AND EXISTS \
             (SELECT 1 FROM refresh_tokens AS sibling WHERE sibling.family_id = $2 AND sibling.revoked_at IS NOT NULL)",
        )
        .bind(&token.token_hash)
        .bind(&token.family_id)
        .bind(to_micros(token.created_at))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("refresh token"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(())
    }

    async fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> MetaResult<RefreshUse> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        // Locks in the order every other write takes them: the user's row,
        // then the family's tokens by hash, and only then the spend itself (a
        // spend that lost a race keeps its row lock, which taken first would
        // be out of order).
        let Some((family_id, user_id)) = lock_family_of(&mut tx, token_hash).await? else {
            return Ok(RefreshUse::Invalid);
        };
        let spent: Option<RefreshRow> = sqlx::query_as(concat!(
            "UPDATE refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 RETURNING ",
            refresh_columns!()
        ))
        .bind(token_hash)
        .bind(to_micros(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql_err("refresh token"))?;
        let outcome = match spent {
            Some(row) => RefreshUse::Rotated(row.into()),
            None => {
                let state: Option<(Option<i64>, Option<i64>)> =
                    sqlx::query_as("SELECT used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1")
                        .bind(token_hash)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(sql_err("refresh token"))?;
                match state {
                    Some((used, revoked)) if used.is_some() || revoked.is_some() => {
                        sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
                            .bind(&family_id)
                            .bind(to_micros(now))
                            .execute(&mut *tx)
                            .await
                            .map_err(sql_err("refresh token"))?;
                        RefreshUse::Reused { family_id, user_id }
                    }
                    _ => RefreshUse::Invalid,
                }
            }
        };
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(outcome)
    }

    async fn revoke_refresh_family(&self, token_hash: &str, now: DateTime<Utc>) -> MetaResult<Option<i64>> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let Some((family_id, user_id)) = lock_family_of(&mut tx, token_hash).await? else {
            return Ok(None);
        };
        sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
            .bind(&family_id)
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(sql_err("refresh token"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(Some(user_id))
    }

    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        (generation, max_live): (i64, usize),
        audit: &AuditEntry,
    ) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        credentials_still_stand(&mut tx, key.user_id, generation).await?;
        let (live,): (i64,) = sqlx::query_as("SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL")
            .bind(key.user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql_err("api key"))?;
        if usize::try_from(live).unwrap_or(usize::MAX) >= max_live {
            return Err(MetaError::Conflict("too-many-api-keys"));
        }
        sqlx::query(concat!(
            "INSERT INTO api_keys (",
            api_key_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9)"
        ))
        .bind(&key.id)
        .bind(key.user_id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.key_hash)
        .bind(key.scopes.to_string())
        .bind(to_micros(key.created_at))
        .bind(key.expires_at.map(to_micros))
        .bind(key.minted_with_mfa)
        .execute(&mut *tx)
        .await
        .map_err(sql_err("api key"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> MetaResult<Option<ApiKeyRecord>> {
        let row: Option<ApiKeyRow> =
            sqlx::query_as(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE key_hash = $1"))
                .bind(key_hash)
                .fetch_optional(self.pool())
                .await
                .map_err(sql_err("api key"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn api_key_by_id(&self, id: &str) -> MetaResult<Option<ApiKeyRecord>> {
        let row: Option<ApiKeyRow> = sqlx::query_as(concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("api key"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_api_keys(&self, user_id: i64) -> MetaResult<Vec<ApiKeyRecord>> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("api key"))?;
        records(rows)
    }

    async fn revoke_api_key(&self, user_id: i64, id: &str, audit: &AuditEntry) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let revoked =
            sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
                .bind(id)
                .bind(user_id)
                .bind(to_micros(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(sql_err("api key"))?;
        if revoked.rows_affected() == 0 {
            return Err(MetaError::NotFound("api key"));
        }
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn touch_api_key(&self, id: &str, now: DateTime<Utc>, every: chrono::Duration) -> MetaResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(id)
            .bind(to_micros(now))
            .bind(to_micros(now - every))
            .execute(self.pool())
            .await
            .map_err(sql_err("api key"))?;
        Ok(())
    }

    async fn put_pending_totp(&self, user_id: i64, secret_sealed: &str, now: DateTime<Utc>) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let existing: Option<(bool,)> = sqlx::query_as("SELECT confirmed FROM totp_credentials WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql_err("totp"))?;
        if existing.is_some_and(|(confirmed,)| confirmed) {
            return Err(MetaError::Conflict("mfa"));
        }
        sqlx::query(
            "INSERT INTO totp_credentials (user_id, secret_sealed, confirmed, last_step, created_at) \
             VALUES ($1, $2, FALSE, 0, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at",
        )
        .bind(user_id)
        .bind(secret_sealed)
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await
        .map_err(sql_err("totp"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(())
    }

    async fn totp(&self, user_id: i64) -> MetaResult<Option<TotpRecord>> {
        let row: Option<(String, bool, i64)> =
            sqlx::query_as("SELECT secret_sealed, confirmed, last_step FROM totp_credentials WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await
                .map_err(sql_err("totp"))?;
        Ok(row.map(|(secret_sealed, confirmed, last_step)| TotpRecord { user_id, secret_sealed, confirmed, last_step }))
    }

    async fn confirm_totp(
        &self,
        user_id: i64,
        (secret_sealed, step): (&str, i64),
        recovery_hashes: &[String],
        audit: &AuditEntry,
    ) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        lock_user(&mut tx, LOCK_USER, user_id).await?;
        let confirmed = sqlx::query(
            "UPDATE totp_credentials SET confirmed = TRUE, last_step = $2 \
             WHERE user_id = $1 AND NOT confirmed AND secret_sealed = $3",
        )
        .bind(user_id)
        .bind(step)
        .bind(secret_sealed)
        .execute(&mut *tx)
        .await
        .map_err(sql_err("totp"))?;
        if confirmed.rows_affected() == 0 {
            let pending: Option<(bool,)> = sqlx::query_as("SELECT confirmed FROM totp_credentials WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql_err("totp"))?;
            return Err(match pending {
                Some((false,)) => MetaError::Conflict("enrolment-replaced"),
                _ => MetaError::NotFound("pending totp enrolment"),
            });
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("recovery code"))?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(sql_err("recovery code"))?;
        }
        sqlx::query("UPDATE users SET mfa_enabled = TRUE WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("user"))?;
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn advance_totp_step(&self, user_id: i64, step: i64) -> MetaResult<bool> {
        let advanced =
            sqlx::query("UPDATE totp_credentials SET last_step = $2 WHERE user_id = $1 AND confirmed AND last_step < $2")
                .bind(user_id)
                .bind(step)
                .execute(self.pool())
                .await
                .map_err(sql_err("totp"))?;
        Ok(advanced.rows_affected() == 1)
    }

    async fn delete_totp(&self, user_id: i64, audit: &AuditEntry) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        lock_user(&mut tx, LOCK_USER, user_id).await?;
        for statement in [
            "UPDATE users SET mfa_enabled = FALSE WHERE id = $1",
            "DELETE FROM totp_credentials WHERE user_id = $1",
            "DELETE FROM recovery_codes WHERE user_id = $1",
            "DELETE FROM mfa_challenges WHERE user_id = $1",
        ] {
            sqlx::query(statement).bind(user_id).execute(&mut *tx).await.map_err(sql_err("totp"))?;
        }
        commit_audited(tx, &self.chain, audit).await?;
        Ok(())
    }

    async fn use_recovery_code(&self, user_id: i64, code_hash: &str, now: DateTime<Utc>) -> MetaResult<bool> {
        let used = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(to_micros(now))
        .execute(self.pool())
        .await
        .map_err(sql_err("recovery code"))?;
        Ok(used.rows_affected() == 1)
    }

    async fn create_mfa_challenge(
        &self,
        token_hash: &str,
        (user_id, generation): (i64, i64),
        expires_at: DateTime<Utc>,
    ) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        credentials_still_stand(&mut tx, user_id, generation).await?;
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, expires_at, failures, generation) VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(to_micros(expires_at))
        .bind(generation)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("mfa challenge"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(())
    }

    async fn claim_mfa_attempt(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        max_attempts: i64,
    ) -> MetaResult<Option<MfaChallenge>> {
        let row: Option<(i64, i64, i64, i64)> = sqlx::query_as(
            "UPDATE mfa_challenges SET failures = failures + 1 \
             WHERE token_hash = $1 AND expires_at > $2 AND failures < $3 \
             RETURNING user_id, failures, expires_at, generation",
        )
        .bind(token_hash)
        .bind(to_micros(now))
        .bind(max_attempts)
        .fetch_optional(self.pool())
        .await
        .map_err(sql_err("mfa challenge"))?;
        Ok(row.map(|(user_id, failures, expires_at, generation)| MfaChallenge {
            user_id,
            generation,
            failures,
            expires_at: from_micros(expires_at),
        }))
    }

    async fn delete_mfa_challenge(&self, token_hash: &str) -> MetaResult<()> {
        sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1")
            .bind(token_hash)
            .execute(self.pool())
            .await
            .map_err(sql_err("mfa challenge"))?;
        Ok(())
    }

    async fn claim_attempt(
        &self,
        scope: ThrottleScope,
        subject: &str,
        now: DateTime<Utc>,
        rule: ThrottleRule,
    ) -> MetaResult<AttemptClaim> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        // The row, created if new and locked until commit (PostgreSQL's row
        // lock; SQLite's write transactions are serial): claims take turns.
        let (failures, window_start, locked_until): (i64, i64, Option<i64>) = sqlx::query_as(
            "INSERT INTO login_throttle (scope, subject, failures, window_start, locked_until) VALUES ($1, $2, 0, $3, NULL) \
             ON CONFLICT (scope, subject) DO UPDATE SET subject = excluded.subject \
             RETURNING failures, window_start, locked_until",
        )
        .bind(scope.as_str())
        .bind(subject)
        .bind(to_micros(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err("login throttle"))?;
        if let Some(until) = locked_until.map(from_micros).filter(|until| *until > now) {
            tx.commit().await.map_err(sql_err("transaction"))?;
            return Ok(AttemptClaim::Locked { until });
        }
        let window_passed = from_micros(window_start) < now.checked_sub_signed(rule.window).unwrap_or(now);
        let failures = if window_passed { 0 } else { failures };
        if failures >= rule.threshold {
            // As many guesses as the window allows are being checked right now:
            // this one waits for their outcome (a second), not for a lock.
            tx.commit().await.map_err(sql_err("transaction"))?;
            return Ok(AttemptClaim::Locked { until: now + chrono::Duration::seconds(1) });
        }
        let window_start = if window_passed { to_micros(now) } else { window_start };
        sqlx::query(
            "UPDATE login_throttle SET failures = $3, window_start = $4, locked_until = NULL \
             WHERE scope = $1 AND subject = $2",
        )
        .bind(scope.as_str())
        .bind(subject)
        .bind(failures + 1)
        .bind(window_start)
        .execute(&mut *tx)
        .await
        .map_err(sql_err("login throttle"))?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        Ok(AttemptClaim::Allowed)
    }

    async fn settle_attempt(
        &self,
        scope: ThrottleScope,
        subject: &str,
        outcome: Settle,
        (now, rule): (DateTime<Utc>, ThrottleRule),
    ) -> MetaResult<()> {
        let statement = match outcome {
            Settle::Reset => "UPDATE login_throttle SET failures = 0 WHERE scope = $1 AND subject = $2",
            Settle::Refund => {
                "UPDATE login_throttle SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END \
                 WHERE scope = $1 AND subject = $2"
            }
            // The guess stays counted; the one that finds the window's count
            // reached locks the subject (and a new window begins after the lock).
            Settle::Failed => {
                "UPDATE login_throttle SET \
                 locked_until = CASE WHEN failures >= $3 THEN $4 ELSE locked_until END, \
                 window_start = CASE WHEN failures >= $3 THEN $5 ELSE window_start END, \
                 failures = CASE WHEN failures >= $3 THEN 0 ELSE failures END \
                 WHERE scope = $1 AND subject = $2"
            }
        };
        let mut query = sqlx::query(statement).bind(scope.as_str()).bind(subject);
        if outcome == Settle::Failed {
            let until = now.checked_add_signed(rule.lock_for).unwrap_or(DateTime::<Utc>::MAX_UTC);
            query = query.bind(rule.threshold).bind(to_micros(until)).bind(to_micros(now));
        }
        query.execute(self.pool()).await.map_err(sql_err("login throttle"))?;
        Ok(())
    }

    async fn purge_expired_identity(&self, now: DateTime<Utc>, window_start_before: DateTime<Utc>) -> MetaResult<u64> {
        let now = to_micros(now);
        let mut purged = 0;
        // A family goes whole, once its newest token expired: a used token of a
        // live family is what detects its reuse.
        let families = "DELETE FROM refresh_tokens WHERE family_id IN \
             (SELECT family_id FROM refresh_tokens GROUP BY family_id HAVING MAX(expires_at) < $1)";
        for statement in [families, "DELETE FROM mfa_challenges WHERE expires_at < $1"] {
            let done = sqlx::query(statement).bind(now).execute(self.pool()).await.map_err(sql_err("identity purge"))?;
            purged += done.rows_affected();
        }
        let done = sqlx::query(
            "DELETE FROM login_throttle WHERE window_start < $1 AND (locked_until IS NULL OR locked_until < $2)",
        )
        .bind(to_micros(window_start_before))
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(sql_err("identity purge"))?;
        purged += done.rows_affected();
        Ok(purged)
    }
}
