//! SQLite adapter: WAL, foreign keys, busy timeout; writes take the lock up front.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Transaction};

use super::{MetaError, MetaResult, MetadataStore, PoolSettings};
use crate::domain::audit::ChainKey;

pub(super) type Db = sqlx::Sqlite;

pub struct SqliteStore {
    pool: Pool<Db>,
    chain: ChainKey,
}

pub(super) type Store = SqliteStore;

impl SqliteStore {
    pub(super) async fn connect(url: &str, settings: &PoolSettings, chain: ChainKey) -> MetaResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(MetaError::Other)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|error| MetaError::Unavailable(sqlx::Error::Io(error)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            // Each connection has a thread, started by whichever task connects.
            .after_connect(|_, _| {
                Box::pin(async {
                    crate::cpu_pinning::release_threads_named("sqlx-sqlite");
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(MetaError::Unavailable)?;
        Ok(Self { pool, chain })
    }

    pub(super) fn pool(&self) -> &Pool<Db> {
        &self.pool
    }
}

/// Write transactions take SQLite's write lock at BEGIN, so two writers never
/// deadlock upgrading read locks; the busy timeout queues them instead.
pub(super) async fn begin_write(pool: &Pool<Db>) -> Result<Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Reads the audit chain head inside a write transaction (already exclusive here).
pub(super) const LOCK_CHAIN_HEAD: &str = "SELECT last_id, last_hash FROM audit_chain_head WHERE id = 1";

/// Nothing to lock: a write transaction is already exclusive here.
pub(super) const LOCK_REFRESH_FAMILY: Option<&str> = None;
pub(super) const LOCK_USER_REFRESH_TOKENS: Option<&str> = None;

/// A write transaction is already exclusive: these only tell whether the user is still there.
pub(super) const LOCK_USER: &str = "SELECT id FROM users WHERE id = $1";
pub(super) const PIN_USER: &str = LOCK_USER;

pub(super) const LOCK_OWNED_ROWS: &[&str] = &[];

pub(super) const LOCK_COMMIT_ROWS: Option<&str> = None;

/// Leases due jobs (SQLite writes are serialized, so no row locking is needed).
pub(super) const CLAIM_JOBS: &str = "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM jobs WHERE run_after <= $3 \
                  AND (locked_until IS NULL OR locked_until < $3) ORDER BY id LIMIT $4) \
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
    const ENGINE: &str = "sqlite";
    /// A deferred transaction reads one snapshot (WAL) from its first read on.
    const BEGIN_SNAPSHOT: &str = "BEGIN";
    const LIST_TABLES: &str = "SELECT name FROM sqlite_master WHERE type = 'table'";
    const TABLE_COLUMNS: &str = "SELECT name, type FROM pragma_table_info($1) ORDER BY cid";
    /// AUTOINCREMENT keeps the largest id it gave in `sqlite_sequence`.
    const LAST_IDENTITY: &str = "SELECT seq FROM sqlite_sequence WHERE name = '{table}'";
    /// Ids continue after the larger of the file's last one (`$1`) and the
    /// rows restored (inserting them already raised `seq` to their largest).
    const CONTINUE_IDENTITY: &[&str] = &[
        "INSERT INTO sqlite_sequence (name, seq) SELECT '{table}', $1 \
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = '{table}') \
         AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = '{table}' AND sql LIKE '%AUTOINCREMENT%')",
        "UPDATE sqlite_sequence SET seq = MAX(seq, $1, (SELECT COALESCE(MAX(id), 0) FROM {table})) \
         WHERE name = '{table}'",
    ];
    include!("sql/backup.rs");
}

#[async_trait]
impl MetadataStore for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> MetaResult<()> {
        // A database migrated by a newer release still opens (a rollback):
        // migrations add, and drop only one release later.
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
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
        let (micros,): (i64,) =
            sqlx::query_as("SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000000.0) AS INTEGER)")
                .fetch_one(&self.pool)
                .await
                .map_err(|error| MetaError::from_sqlx(error, "database"))?;
        Ok(crate::metadata::time::from_micros(micros))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
