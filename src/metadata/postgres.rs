//! PostgreSQL adapter: a bounded pool with a short acquire timeout, so a dead database fails fast.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Transaction};

use super::{MetaError, MetaResult, MetadataStore, PoolSettings};
use crate::domain::audit::ChainKey;

pub(super) type Db = sqlx::Postgres;

pub struct PostgresStore {
    pool: Pool<Db>,
    chain: ChainKey,
}

pub(super) type Store = PostgresStore;

impl PostgresStore {
    pub(super) async fn connect(url: &str, settings: &PoolSettings, chain: ChainKey) -> MetaResult<Self> {
        let options = PgConnectOptions::from_str(url).map_err(MetaError::Other)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(MetaError::Unavailable)?;
        Ok(Self { pool, chain })
    }

    pub(super) fn pool(&self) -> &Pool<Db> {
        &self.pool
    }
}

/// Row locks (`FOR UPDATE`) serialize what must be serialized; the default
/// READ COMMITTED transaction is enough.
pub(super) async fn begin_write(pool: &Pool<Db>) -> Result<Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// Locks the audit chain head row until commit, so appends from every
/// replica form one chain. The anchor changes only under this lock, and is
/// read by a statement of its own after it: under READ COMMITTED a statement
/// that waited for the lock still sees the rows of other tables as they were
/// when it began.
pub(super) const LOCK_CHAIN_HEAD: &str = "SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE";

/// Locks a refresh family's tokens until commit. Issuing a successor and
/// revoking the family both take it first, so whichever comes second sees
/// the other's work: a successor issued while its family is revoked is
/// revoked with it (without the lock, READ COMMITTED lets each statement
/// miss the other's uncommitted row).
pub(super) const LOCK_REFRESH_FAMILY: Option<&str> =
    Some("SELECT token_hash FROM refresh_tokens WHERE family_id = $1 ORDER BY token_hash FOR UPDATE");

/// Locks every live refresh token of a user until commit, in the order
/// `LOCK_REFRESH_FAMILY` takes a family's: revoking them all and issuing a
/// successor then wait for each other instead of deadlocking, and a successor
/// issued meanwhile is revoked with the rest (or born revoked).
pub(super) const LOCK_USER_REFRESH_TOKENS: Option<&str> = Some(
    "SELECT token_hash FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY token_hash FOR UPDATE",
);

/// Locks a user's row against other writes to it until commit (not against
/// new rows that refer to it). Writes to a user's row and to rows that hang
/// off it (second factors, sessions) take it first: the order a deletion takes
/// them in (the user, then its cascade), so they queue instead of deadlocking.
pub(super) const LOCK_USER: &str = "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE";

/// Keeps a user's row from being deleted until commit without holding up
/// other writes to it: taken before rows that refer to the user are locked
/// and written (issuing a refresh token), for the same order.
pub(super) const PIN_USER: &str = "SELECT id FROM users WHERE id = $1 FOR KEY SHARE";

/// Locks a user's uploads, then objects, in id order, before a deletion
/// takes the user's row: the order writes that charge a quota take them
/// (upload, then object rows oldest first, then the owner).
pub(super) const LOCK_OWNED_ROWS: &[&str] = &[
    "SELECT id FROM uploads WHERE owner_id = $1 ORDER BY id FOR UPDATE",
    "SELECT id FROM objects WHERE owner_id = $1 ORDER BY id FOR UPDATE",
];

/// Locks a pending object and the live object it will replace, in id order,
/// before a commit charges the owner: the order a user's deletion takes them.
pub(super) const LOCK_COMMIT_ROWS: Option<&str> = Some(
    "SELECT id FROM objects WHERE id = $1 OR (bucket_id = $2 AND object_key = $3 AND state = 'committed') \
     ORDER BY id FOR UPDATE",
);

/// Leases due jobs; rows another replica is claiming right now are skipped,
/// not waited for (so concurrent claimers share the queue instead of colliding).
pub(super) const CLAIM_JOBS: &str = "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM jobs WHERE run_after <= $3 \
                  AND (locked_until IS NULL OR locked_until < $3) ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
     AND (locked_until IS NULL OR locked_until < $3) \
     RETURNING id, kind, payload, attempts";

mod users {
    use super::{Db, LOCK_OWNED_ROWS, LOCK_USER_REFRESH_TOKENS, Store, begin_write};
    include!("sql/users.rs");
}
mod identity {
    use super::{LOCK_REFRESH_FAMILY, LOCK_USER, PIN_USER, Store, begin_write};
    include!("sql/identity.rs");
}
mod buckets {
    use super::{Store, begin_write};
    include!("sql/buckets.rs");
}
mod objects {
    use super::{Db, LOCK_COMMIT_ROWS, Store, begin_write};
    include!("sql/objects.rs");
}
mod uploads {
    use super::{Db, LOCK_USER, Store, begin_write};
    include!("sql/uploads.rs");
}
mod shares {
    use super::{Store, begin_write};
    include!("sql/shares.rs");
}
mod governance {
    use super::Store;
    include!("sql/governance.rs");
}
mod jobs {
    use super::{CLAIM_JOBS, Store};
    include!("sql/jobs.rs");
}
mod audit {
    use super::{Db, LOCK_CHAIN_HEAD, Store, begin_write};
    include!("sql/audit.rs");
}
mod backup {
    use super::{Db, Store, begin_write};
    const ENGINE: &str = "postgres";
    /// One consistent snapshot that never blocks writers.
    const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const LIST_TABLES: &str = "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'";
    const TABLE_COLUMNS: &str = "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position";
    /// The last value the identity's sequence gave (`NULL` before the first).
    const LAST_IDENTITY: &str = "SELECT pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id')::regclass)";
    /// Ids continue after the larger of the file's last one (`$1`) and the
    /// largest restored; a sequence with neither stays unused.
    const CONTINUE_IDENTITY: &[&str] = &["SELECT setval(pg_get_serial_sequence('{table}', 'id'), last) \
         FROM (SELECT GREATEST($1::BIGINT, COALESCE(MAX(id), 0)) AS last FROM {table}) AS restored WHERE last > 0"];
    include!("sql/backup.rs");
}

#[async_trait]
impl MetadataStore for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> MetaResult<()> {
        // A database migrated by a newer release still opens (a rollback):
        // migrations add, and drop only one release later.
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await.map_err(|error| MetaError::Other(error.into()))
    }

    fn chain_key(&self) -> &ChainKey {
        &self.chain
    }

    async fn ping(&self) -> MetaResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|error| MetaError::from_sqlx(error, "database"))
    }

    async fn database_now(&self) -> MetaResult<chrono::DateTime<chrono::Utc>> {
        let (micros,): (i64,) = sqlx::query_as("SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT")
            .fetch_one(&self.pool)
            .await
            .map_err(|error| MetaError::from_sqlx(error, "database"))?;
        Ok(crate::metadata::time::from_micros(micros))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
