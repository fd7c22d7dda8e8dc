// Accounts, shared by both adapters (included with `Db`, `Store`, `begin_write`
// and `LOCK_USER_REFRESH_TOKENS` in scope).

use async_trait::async_trait;
use sqlx::Transaction;

use crate::domain::Username;
use crate::domain::audit::AuditEntry;
use crate::metadata::error::sql_err;
use crate::metadata::rows::{UserRow, records};
use crate::metadata::time::to_micros;
use crate::metadata::{MetaError, MetaResult, NewUser, UserPatch, UserRecord, UserStore};

use super::audit::{append_in_tx, commit_audited};

const ACTIVE_ADMINS: &str = "SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled";

/// Fails the transaction if it would leave no enabled admin. Runs after the
/// audit append has taken the chain-head lock, so it sees every committed
/// change of concurrent writers (which also hold that lock to commit).
async fn ensure_an_admin_remains(tx: &mut Transaction<'static, Db>, had_admins: bool) -> MetaResult<()> {
    let (admins,): (i64,) = sqlx::query_as(ACTIVE_ADMINS)
        .fetch_one(&mut **tx)
        .await
        .map_err(sql_err("user"))?;
    if had_admins && admins == 0 {
        return Err(MetaError::Conflict("last admin"));
    }
    Ok(())
}

#[async_trait]
impl UserStore for Store {
    async fn create_user(&self, user: &NewUser, audit: &AuditEntry) -> MetaResult<UserRecord> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let row: UserRow = sqlx::query_as(concat!(
            "INSERT INTO users (username, password_hash, role, quota_bytes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING ",
            user_columns!()
        ))
        .bind(user.username.as_str())
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(user.quota_bytes)
        .bind(to_micros(user.at))
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_err("user"))?;
        commit_audited(tx, &self.chain, audit).await?;
        row.try_into()
    }

    async fn user_by_name(&self, username: &Username) -> MetaResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1"))
            .bind(username.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("user"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn user_by_id(&self, id: i64) -> MetaResult<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(sql_err("user"))?;
        row.map(TryInto::try_into).transpose()
    }

    async fn list_users(&self, after: Option<&Username>, limit: usize) -> MetaResult<Vec<UserRecord>> {
        let rows: Vec<UserRow> = sqlx::query_as(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username > $1 ORDER BY username LIMIT $2"
        ))
        .bind(after.map_or("", Username::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(sql_err("user"))?;
        records(rows)
    }

    async fn update_user(&self, id: i64, patch: &UserPatch, audit: &AuditEntry) -> MetaResult<UserRecord> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let (before,): (i64,) = sqlx::query_as(ACTIVE_ADMINS)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql_err("user"))?;
        let row: Option<UserRow> = sqlx::query_as(concat!(
            "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled), \
             quota_bytes = CASE WHEN $4 THEN $5 ELSE quota_bytes END, \
             password_hash = COALESCE($6, password_hash), \
             token_generation = token_generation + $7, updated_at = $8 \
             WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(id)
        .bind(patch.role.map(|role| role.as_str()))
        .bind(patch.disabled)
        .bind(patch.quota_bytes.is_some())
        .bind(patch.quota_bytes.flatten())
        .bind(patch.password_hash.as_deref())
        .bind(i64::from(patch.bump_generation))
        .bind(to_micros(audit.at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(sql_err("user"))?;
        let row = row.ok_or(MetaError::NotFound("user"))?;
        let at = to_micros(audit.at);
        if patch.revoke_refresh_tokens {
            if let Some(lock) = LOCK_USER_REFRESH_TOKENS {
                sqlx::query(lock).bind(id).fetch_all(&mut *tx).await.map_err(sql_err("refresh token"))?;
            }
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(sql_err("refresh token"))?;
            sqlx::query("DELETE FROM mfa_challenges WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(sql_err("mfa challenge"))?;
        }
        if patch.revoke_api_keys {
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(sql_err("api key"))?;
        }
        let record = append_in_tx(&mut tx, &self.chain, audit).await?;
        ensure_an_admin_remains(&mut tx, before > 0).await?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        crate::metadata::emit_audit(&record);
        row.try_into()
    }

    async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> MetaResult<bool> {
        let replaced = sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
            .bind(id)
            .bind(old)
            .bind(new)
            .execute(self.pool())
            .await
            .map_err(sql_err("user"))?;
        Ok(replaced.rows_affected() == 1)
    }

    async fn delete_user(&self, id: i64, audit: &AuditEntry) -> MetaResult<()> {
        let mut tx = begin_write(self.pool()).await.map_err(sql_err("transaction"))?;
        let (before,): (i64,) = sqlx::query_as(ACTIVE_ADMINS)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql_err("user"))?;
        // Uploads and objects before the user's row, in the order writes that
        // charge a quota take them (see `LOCK_OWNED_ROWS`): the cascade below
        // would otherwise hold the user's row while waiting for theirs.
        for &lock in LOCK_OWNED_ROWS {
            sqlx::query(lock).bind(id).fetch_all(&mut *tx).await.map_err(sql_err("user"))?;
        }
        for statement in [
            "UPDATE uploads SET owner_id = NULL WHERE owner_id = $1",
            "UPDATE objects SET owner_id = NULL WHERE owner_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await.map_err(sql_err("user"))?;
        }
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("user"))?;
        if deleted.rows_affected() == 0 {
            return Err(MetaError::NotFound("user"));
        }
        let record = append_in_tx(&mut tx, &self.chain, audit).await?;
        ensure_an_admin_remains(&mut tx, before > 0).await?;
        tx.commit().await.map_err(sql_err("transaction"))?;
        crate::metadata::emit_audit(&record);
        Ok(())
    }

    async fn count_active_admins(&self) -> MetaResult<i64> {
        let (admins,): (i64,) = sqlx::query_as(ACTIVE_ADMINS)
            .fetch_one(self.pool())
            .await
            .map_err(sql_err("user"))?;
        Ok(admins)
    }
}
