//! Test environment shared by the test binaries: which real services to use
//! (`COFFER_TEST_DATABASE_URL`, `COFFER_TEST_REDIS_URL`, `COFFER_TEST_S3_*`),
//! and per-test isolation (a fresh database, an S3 prefix, a Redis namespace).
#![allow(dead_code)]

use std::sync::OnceLock;

use coffer::config::{Config, StorageKind};
use secrecy::SecretString;

/// Set by the test command's real-services pass: missing services are then a failure, not a skip.
pub fn services_required() -> bool {
    std::env::var("COFFER_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn postgres_admin_url() -> Option<String> {
    let url = var("COFFER_TEST_DATABASE_URL");
    assert!(url.is_some() || !services_required(), "COFFER_TEST_DATABASE_URL is required");
    url
}

pub fn redis_url() -> Option<String> {
    let url = var("COFFER_TEST_REDIS_URL");
    assert!(url.is_some() || !services_required(), "COFFER_TEST_REDIS_URL is required");
    url
}

pub struct S3Env {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub fn s3_env() -> Option<S3Env> {
    let env = (|| {
        Some(S3Env {
            endpoint: var("COFFER_TEST_S3_ENDPOINT")?,
            region: var("COFFER_TEST_S3_REGION").unwrap_or_else(|| "garage".into()),
            bucket: var("COFFER_TEST_S3_BUCKET")?,
            access_key_id: var("COFFER_TEST_S3_ACCESS_KEY_ID")?,
            secret_access_key: var("COFFER_TEST_S3_SECRET_ACCESS_KEY")?,
        })
    })();
    assert!(env.is_some() || !services_required(), "COFFER_TEST_S3_* are required");
    env
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Points `config` at S3 under a fresh prefix.
pub fn use_s3(config: &mut Config, env: &S3Env, prefix: &str) {
    config.storage = StorageKind::S3;
    config.s3_endpoint = Some(env.endpoint.clone());
    config.s3_region = env.region.clone();
    config.s3_bucket = Some(env.bucket.clone());
    config.s3_access_key_id = Some(env.access_key_id.clone());
    config.s3_secret_access_key = Some(SecretString::from(env.secret_access_key.clone()));
    config.s3_force_path_style = true;
    config.s3_prefix = prefix.to_owned();
    config.s3_part_size_mib = 5;
}

/// The admin URL with its database name replaced.
pub fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |i| i + 2) => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

static STALE_DROPPED: OnceLock<()> = OnceLock::new();

/// The test process that made a database named `{family}{pid}_{uuid}`.
fn maker_pid(name: &str, family: &str) -> Option<u32> {
    name.strip_prefix(family)?.split_once('_')?.0.parse().ok()
}

/// A database of `family` whose maker is gone. Another run's databases stay,
/// even of the same binary: a developer's run beside CI's once dropped CI's
/// in mid-test. (PostgreSQL is local to the tests, so `/proc` tells.)
fn is_leftover(name: &str, family: &str) -> bool {
    maker_pid(name, family).is_none_or(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Creates a fresh PostgreSQL database for one test; leftovers of earlier
/// runs of this binary (same `family`, their process gone) are dropped first, once.
pub async fn create_database(admin_url: &str, family: &str) -> String {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url).await.expect("connect to PostgreSQL");
    if STALE_DROPPED.get().is_none() {
        let stale: Vec<(String,)> = sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{family}%"))
            .fetch_all(&mut admin)
            .await
            .expect("list databases");
        let _ = STALE_DROPPED.set(());
        for (name,) in stale.into_iter().filter(|(name,)| is_leftover(name, family)) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                .execute(&mut admin)
                .await;
        }
    }
    let name = format!("{family}{}_{}", std::process::id(), uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("create database");
    with_database(admin_url, &name)
}

/// Drops a database made by `create_database`, from any context (used in `Drop`).
pub fn drop_database_blocking(admin_url: String, url: String) {
    let Some(name) = url.rsplit('/').next().map(|n| n.split('?').next().unwrap_or(n).to_owned()) else {
        return;
    };
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut admin)
                    .await;
            }
        });
    })
    .join();
}

/// A stream of `total` bytes in `chunk`-sized pieces of a repeating pattern, allocation-free.
pub fn pattern_stream(total: u64, chunk: usize) -> coffer::storage::ByteStream {
    let block = bytes::Bytes::from((0..chunk).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let chunks = total / chunk as u64;
    let rest = (total % chunk as u64) as usize;
    let full = futures::stream::iter((0..chunks).map(move |_| Ok(block.clone())));
    let tail_block = bytes::Bytes::from((0..rest).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let tail = futures::stream::iter((rest > 0).then_some(Ok(tail_block)));
    Box::pin(futures::StreamExt::chain(full, tail))
}

pub fn stream_of(data: Vec<u8>) -> coffer::storage::ByteStream {
    Box::pin(futures::stream::iter(
        data.chunks(64 * 1024).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect::<Vec<_>>(),
    ))
}

pub async fn collect(stream: coffer::storage::ByteStream) -> Vec<u8> {
    use futures::TryStreamExt;
    stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .expect("read stream")
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(with_database("postgres://root@127.0.0.1:5432/test", "x"), "postgres://root@127.0.0.1:5432/x");
        assert_eq!(with_database("postgres://root@h/test?sslmode=disable", "x"), "postgres://root@h/x?sslmode=disable");
        assert_eq!(with_database("postgres://root@h", "x"), "postgres://root@h/x");
    }

    #[test]
    fn only_databases_whose_maker_is_gone_are_leftovers() {
        let family = "coffer_api_";
        let live = format!("{family}{}_0123abcd", std::process::id());
        assert!(!super::is_leftover(&live, family), "a running process's database stays");
        assert!(super::is_leftover(&format!("{family}{}_0123abcd", u32::MAX), family), "no such process");
        assert!(super::is_leftover("coffer_api_3979fcaa8f194a769f06b1daa3c52a9c", family), "the older naming");
    }
}
pub mod proxy;
