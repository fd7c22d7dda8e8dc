//! Coherent local copies of scope versions over Redis (`cache::coherent`): a
//! warm read on a replica asks Redis nothing, a change made on another
//! replica still shows on the next request, and a writer waits for every
//! leaseholder to acknowledge its change, or for that lease to end. Each
//! test runs its own Redis, so Redis' command counts are its own.

use std::time::{Duration, Instant};

use coffer::domain::Role;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::{PrivateRedis, TestApp, free_port, spawn_app_with};
use crate::objects::{get, owner_with_bucket, put};

/// A Redis of the test's own, a connection to it, and an app using it with
/// rate limits off (their scripts would read and write Redis on every request).
async fn app_on_private_redis() -> (PrivateRedis, redis::aio::MultiplexedConnection, TestApp) {
    let port = free_port();
    let server = PrivateRedis::start(port);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("redis url");
    let connection = client.get_multiplexed_async_connection().await.expect("redis connection");
    let app = spawn_app_with(|c| {
        c.redis_url = Some(SecretString::from(format!("redis://127.0.0.1:{port}")));
        c.rate_limit_api_per_minute = 0;
    })
    .await;
    (server, connection, app)
}

/// How many `GET` and `MGET` commands Redis has answered: the reads of cached lookups.
async fn lookups_answered(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let stats: String = redis::cmd("INFO").arg("commandstats").query_async(redis).await.expect("INFO");
    stats
        .lines()
        .filter(|line| line.starts_with("cmdstat_get:") || line.starts_with("cmdstat_mget:"))
        .filter_map(|line| line.split("calls=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// How many times `/metrics` says the app answered scope versions from its copies alone.
async fn copies_used(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines().find_map(|line| line.strip_prefix("coffer_cache_copies_used_total ")?.parse().ok()).unwrap_or(0)
}

async fn body(app: &TestApp, token: &str, key: &str) -> String {
    let response = get(app, token, "near", key).await;
    assert_eq!(response.status(), StatusCode::OK, "{key}");
    response.text().await.expect("body")
}

/// Reads `doc.txt` (expecting `expected`) from `app` `reads` times and answers how many lookups
/// Redis answered meanwhile and how many reads used copies alone. A lease may
/// lapse on a loaded machine (a renewal starved past `LEASE`), and the app then
/// rightly asks Redis again, so up to five such windows are tried and the first
/// that asked Redis nothing is answered: an app without copies never has one.
async fn warm_reads(
    redis: &mut redis::aio::MultiplexedConnection,
    app: &TestApp,
    token: &str,
    expected: &str,
    reads: u64,
) -> (u64, u64) {
    let mut window = (u64::MAX, 0);
    for _ in 0..5 {
        let (lookups_before, copies_before) = (lookups_answered(redis).await, copies_used(app).await);
        for _ in 0..reads {
            assert_eq!(body(app, token, "doc.txt").await, expected);
        }
        window = (lookups_answered(redis).await - lookups_before, copies_used(app).await - copies_before);
        if window.0 == 0 {
            break;
        }
    }
    window
}

#[tokio::test]
async fn warm_reads_on_a_replica_ask_redis_nothing_yet_see_a_change_made_elsewhere_at_once() {
    let (_redis, mut redis, a) = app_on_private_redis().await;
    let b = a.replica().await;
    let token = owner_with_bucket(&a, "nina", "near").await.access;
    assert_eq!(put(&a, &token, "near", "doc.txt", b"version 1".to_vec()).await.status(), StatusCode::CREATED);
    for _ in 0..5 {
        body(&b, &token, "doc.txt").await;
    }

    let metrics = b.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.lines().any(|line| line == "coffer_cache_copies_leased 1"), "B holds its lease");
    let (lookups, copies) = warm_reads(&mut redis, &b, &token, "version 1", 20).await;
    assert_eq!(lookups, 0, "B answered its warm reads from its own copies");
    assert!(copies >= 20, "each warm read took the path that awaits nothing");

    assert_eq!(put(&a, &token, "near", "doc.txt", b"version 2".to_vec()).await.status(), StatusCode::CREATED);
    assert_eq!(body(&b, &token, "doc.txt").await, "version 2", "overwritten on A, read on B");
    let deleted = a.with_token(Method::DELETE, &crate::objects::object_path("near", "doc.txt"), &token).send().await;
    assert_eq!(deleted.expect("delete").status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&b, &token, "near", "doc.txt").await.status(), StatusCode::NOT_FOUND, "deleted on A");

    // B warm again, then the caller is disabled on A: B refuses the token on its next request.
    assert_eq!(put(&a, &token, "near", "kept.txt", b"kept".to_vec()).await.status(), StatusCode::CREATED);
    for _ in 0..3 {
        body(&b, &token, "kept.txt").await;
    }
    let admin = a.user_session("ada", Role::Admin).await.access;
    let disabled =
        a.with_token(Method::PATCH, "/api/v1/admin/users/nina", &admin).json(&json!({"disabled": true})).send().await;
    assert_eq!(disabled.expect("disable").status(), StatusCode::OK);
    assert_eq!(get(&b, &token, "near", "kept.txt").await.status(), StatusCode::UNAUTHORIZED, "disabled on A");
}

#[tokio::test]
async fn a_leaseholder_that_never_acknowledges_holds_writes_only_until_its_lease_ends() {
    let (_redis, mut redis, a) = app_on_private_redis().await;
    let token = a.user_session("gina", Role::User).await.access;
    let create = |name: &'static str| {
        a.with_token(Method::POST, "/api/v1/buckets", &token).json(&json!({ "name": name })).send()
    };
    let started = Instant::now();
    assert_eq!(create("quick").await.expect("bucket").status(), StatusCode::CREATED);
    assert!(started.elapsed() < Duration::from_secs(1), "no other leaseholder: {:?}", started.elapsed());

    // A replica that Redis counts as leased for 1.5 s more and that never acknowledges anything.
    let _: i64 = redis::cmd("EVAL")
        .arg("local t = redis.call('TIME') return redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + 1500, 'ghost')")
        .arg(1)
        .arg(format!("{}:near:leases", a.config.cache_namespace))
        .query_async(&mut redis)
        .await
        .expect("ghost lease");
    let started = Instant::now();
    assert_eq!(create("held").await.expect("bucket").status(), StatusCode::CREATED);
    let held = started.elapsed();
    assert!(held >= Duration::from_millis(1200), "the write waited for the ghost's lease: {held:?}");
    assert!(held < Duration::from_secs(4), "but no longer: {held:?}");

    let started = Instant::now();
    assert_eq!(create("free").await.expect("bucket").status(), StatusCode::CREATED);
    assert!(started.elapsed() < Duration::from_secs(1), "the ghost's lease has ended: {:?}", started.elapsed());
}

#[tokio::test]
async fn copies_go_when_redis_loses_the_state_they_rely_on() {
    let (_redis, mut redis, a) = app_on_private_redis().await;
    let token = owner_with_bucket(&a, "fay", "near").await.access;
    assert_eq!(put(&a, &token, "near", "doc.txt", b"kept".to_vec()).await.status(), StatusCode::CREATED);
    for _ in 0..5 {
        body(&a, &token, "doc.txt").await;
    }
    assert_eq!(warm_reads(&mut redis, &a, &token, "kept", 1).await.0, 0, "warm: answered from copies");

    // Flushed (or evicted, or failed over): the next lease renewal notices and the copies go.
    let _: () = redis::cmd("FLUSHALL").query_async(&mut redis).await.expect("FLUSHALL");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = lookups_answered(&mut redis).await;
    assert_eq!(body(&a, &token, "doc.txt").await, "kept");
    assert!(lookups_answered(&mut redis).await > before, "versions read from Redis again");
}

async fn leaseholders(redis: &mut redis::aio::MultiplexedConnection, app: &TestApp) -> usize {
    let key = format!("{}:near:leases", app.config.cache_namespace);
    redis::cmd("ZCARD").arg(key).query_async(redis).await.expect("ZCARD")
}

#[tokio::test]
async fn a_replica_that_stops_gracefully_leaves_the_lease_set_at_once() {
    let (_redis, mut redis, a) = app_on_private_redis().await;
    let b = a.replica().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while leaseholders(&mut redis, &a).await < 2 {
        assert!(Instant::now() < deadline, "both replicas lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.stop_gracefully().await;
    let deadline = Instant::now() + Duration::from_secs(1);
    while leaseholders(&mut redis, &a).await > 1 {
        // Well before its 2 s lease would have run out.
        assert!(Instant::now() < deadline, "B left the lease set on shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `ver:user:*` scope versions in Redis, by key.
async fn user_versions(redis: &mut redis::aio::MultiplexedConnection) -> std::collections::BTreeMap<String, String> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*ver:user:*").query_async(redis).await.expect("KEYS");
    let mut versions = std::collections::BTreeMap::new();
    for key in keys {
        let value: Option<String> = redis::cmd("GET").arg(&key).query_async(redis).await.expect("GET");
        versions.insert(key, value.unwrap_or_default());
    }
    versions
}

/// An invalidation Redis could not take (unreachable while the change
/// committed) is published from the background once Redis is back, instead
/// of being left to the entries' lifetime.
#[tokio::test]
async fn an_invalidation_redis_missed_is_published_once_it_is_back() {
    let port = free_port();
    let _server = PrivateRedis::start(port);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("redis url");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis connection");
    let proxy = crate::support::proxy::Proxy::start(([127, 0, 0, 1], port).into()).await;
    let app = spawn_app_with(|c| {
        c.redis_url = Some(SecretString::from(format!("redis://{}", proxy.addr)));
        c.rate_limit_api_per_minute = 0;
    })
    .await;
    let admin = app.user_session("root", Role::Admin).await.access;
    let vic = app.user_session("vic", Role::User).await.access;
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &vic).send().await.expect("me").status(), 200);
    let before = user_versions(&mut redis).await;
    assert!(!before.is_empty(), "vic's reads gave their scope a version");

    proxy.cut();
    let patch = app.with_token(Method::PATCH, "/api/v1/admin/users/vic", &admin).json(&json!({"quota_bytes": 1000}));
    assert_eq!(patch.send().await.expect("patch").status(), 200, "the change commits while Redis is away");
    assert_eq!(user_versions(&mut redis).await, before, "Redis heard nothing");
    proxy.restore();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let after = user_versions(&mut redis).await;
        let changed = before.iter().filter(|(key, value)| after.get(*key) != Some(*value)).count();
        if changed >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the missed invalidation was never published: {before:?} → {after:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
