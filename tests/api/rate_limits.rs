//! Rate limits: 429 with `Retry-After` and `RateLimit-*` headers, per
//! address and per user, shared by replicas through Redis; and Coffer keeps
//! serving, limits still enforced, while its Redis is down, recovering
//! without a restart.

use std::time::{Duration, Instant};

use coffer::domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PrivateRedis, TestApp, free_port, problem, spawn_app_with};

async fn login_attempt(app: &TestApp, from: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", from)
        .json(&json!({"username": "nobody", "password": "wrong password here"}))
        .send()
        .await
        .expect("login")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[tokio::test]
async fn addresses_get_429_with_headers_once_over_the_limit() {
    let app = spawn_app_with(|c| {
        c.rate_limit_auth_per_minute = 3;
        c.trust_forwarded_for = true;
    })
    .await;
    for remaining in ["2", "1", "0"] {
        let response = login_attempt(&app, "203.0.113.7").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&response, "ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(header(&response, "ratelimit-remaining").as_deref(), Some(remaining));
    }
    let refused = login_attempt(&app, "203.0.113.7").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&refused, "retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(problem(refused).await["status"], 429);
    // The router decodes `%61` to `a`: an encoded path reaches login and is counted as login.
    let encoded = app
        .client
        .post(app.url("/%61pi/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"username": "nobody", "password": "wrong password here"}))
        .send()
        .await
        .expect("login");
    assert_eq!(encoded.status(), StatusCode::TOO_MANY_REQUESTS, "an encoded path is no way around the limit");
    assert_eq!(login_attempt(&app, "198.51.100.1").await.status(), StatusCode::UNAUTHORIZED, "other addresses go on");
    assert_eq!(app.get("/health/ready").await.status(), 200, "health is never limited");
}

#[tokio::test]
async fn users_are_limited_wherever_they_come_from_and_replicas_share_the_count() {
    let app = spawn_app_with(|c| {
        c.rate_limit_api_per_minute = 4;
        c.trust_forwarded_for = true;
    })
    .await;
    let alice = app.user_session("alice", Role::User).await.access;
    let bob = app.user_session("bob", Role::User).await.access;
    let me = |token: &str, from: &str| {
        app.with_token(Method::GET, "/api/v1/me", token).header("x-forwarded-for", from.to_owned()).send()
    };
    for n in 0..4 {
        let allowed = me(&alice, &format!("192.0.2.{n}")).await.expect("me");
        assert_eq!(allowed.status(), 200);
        // The headers tell the tighter budget: the user's, here.
        assert_eq!(header(&allowed, "ratelimit-remaining"), Some((3 - n).to_string()), "request {n}");
    }
    let refused = me(&alice, "192.0.2.200").await.expect("me");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "a fresh address does not reset a user's count");
    assert!(header(&refused, "retry-after").is_some());
    assert_eq!(header(&refused, "ratelimit-remaining").as_deref(), Some("0"), "the budget that refused it");
    assert_eq!(me(&bob, "192.0.2.201").await.expect("me").status(), 200);

    if app.config.redis_url.is_some() {
        // The same Redis: bob's count continues on the other replica.
        let mut config = app.config.clone();
        config.bind = "127.0.0.1:0".into();
        let other = app.replica_with(config).await;
        for n in 0..3 {
            let response = other
                .with_token(Method::GET, "/api/v1/me", &bob)
                .header("x-forwarded-for", format!("192.0.2.{}", 50 + n))
                .send();
            assert_eq!(response.await.expect("me").status(), 200);
        }
        let response = other.with_token(Method::GET, "/api/v1/me", &bob).header("x-forwarded-for", "192.0.2.99").send();
        assert_eq!(response.await.expect("me").status(), StatusCode::TOO_MANY_REQUESTS, "shared through Redis");
    }
}

async fn cache_check(app: &TestApp) -> (u16, String) {
    let response = app.get("/health/ready").await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["checks"]["cache"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn coffer_serves_and_limits_while_redis_is_down_and_recovers() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let app = spawn_app_with(|c| {
        c.redis_url = Some(secrecy::SecretString::from(format!("redis://127.0.0.1:{port}")));
        c.rate_limit_auth_per_minute = 3;
    })
    .await;
    let token = app.user_session("alice", Role::User).await.access;
    assert_eq!(cache_check(&app).await, (200, "ok".to_owned()));

    redis.stop();
    let started = Instant::now();
    let me = app.with_token(Method::GET, "/api/v1/me", &token).send().await.expect("me");
    assert_eq!(me.status(), 200, "served without the cache");
    assert!(started.elapsed() < Duration::from_secs(3), "no long wait on a dead Redis: {:?}", started.elapsed());
    assert_eq!(cache_check(&app).await, (200, "degraded".to_owned()));
    // Limits stay enforced, in process: alice's login used 1 of 3 auth requests before Redis went away,
    // and this replica now counts on its own.
    let statuses: Vec<u16> = futures::future::join_all((0..5).map(|_| async {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"username": "nobody", "password": "wrong password here"}))
            .send()
            .await
            .expect("login")
            .status()
            .as_u16()
    }))
    .await;
    assert!(statuses.contains(&429), "still limited: {statuses:?}");

    let _redis = PrivateRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while cache_check(&app).await != (200, "ok".to_owned()) {
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let me = app.with_token(Method::GET, "/api/v1/me", &token).send().await.expect("me");
    assert_eq!(me.status(), 200);
}

/// A replica started while Redis is away (a pod rescheduled during an
/// outage) serves with the cache bypassed and uses Redis once it answers;
/// where the cache is required, it refuses to start instead.
#[tokio::test]
async fn coffer_starts_while_redis_is_down_and_uses_it_once_it_is_up() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let config = |required: bool| {
        let url = url.clone();
        move |c: &mut coffer::config::Config| {
            c.redis_url = Some(secrecy::SecretString::from(url));
            c.cache_required = required;
        }
    };
    let (mut required, _dir, _database) = crate::helpers::test_config().await;
    config(true)(&mut required);
    let clock = std::sync::Arc::new(coffer::clock::SystemClock);
    let refused = coffer::startup::build_services(required, clock).await;
    assert!(
        matches!(refused, Err(coffer::startup::StartupError::Cache(_))),
        "a required cache that is unreachable stops the start"
    );

    let app = spawn_app_with(config(false)).await;
    assert_eq!(cache_check(&app).await, (200, "degraded".to_owned()));
    let token = app.user_session("alice", Role::User).await.access;
    let me = app.with_token(Method::GET, "/api/v1/me", &token).send().await.expect("me");
    assert_eq!(me.status(), 200, "served without the cache");

    let _redis = PrivateRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while cache_check(&app).await != (200, "ok".to_owned()) {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut redis = client.get_multiplexed_async_connection().await.expect("redis connection");
    let me = app.with_token(Method::GET, "/api/v1/me", &token).send().await.expect("me");
    assert_eq!(me.status(), 200);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut redis).await.expect("keys");
    assert!(!keys.is_empty(), "the cache is in use once Redis answers");
}

/// Whoever holds a signed URL acts as its signer, but is counted apart: a
/// published link fetched flat out never locks the signer out of the API.
#[tokio::test]
async fn signed_url_traffic_does_not_spend_the_signers_quota() {
    let app = spawn_app_with(|c| {
        c.rate_limit_api_per_minute = 6;
        c.trust_forwarded_for = true;
    })
    .await;
    let alice = crate::objects::owner_with_bucket(&app, "alice", "alice-files").await.access;
    let put = crate::objects::put(&app, &alice, "alice-files", "pub.txt", b"public".to_vec()).await;
    assert_eq!(put.status(), 201);
    let presigned: Value = app
        .with_token(Method::POST, "/api/v1/presign", &alice)
        .header("x-forwarded-for", "192.0.2.1")
        .json(&json!({"bucket": "alice-files", "key": "pub.txt", "method": "GET", "expires_in_seconds": 600}))
        .send()
        .await
        .expect("presign")
        .json()
        .await
        .expect("json");
    let url = presigned["url"].as_str().expect("url").to_owned();
    let fetch = |n: u32| app.client.get(&url).header("x-forwarded-for", format!("198.51.100.{n}")).send();
    for n in 0..6 {
        assert_eq!(fetch(n).await.expect("fetch").status(), 200, "fetch {n}");
    }
    assert_eq!(fetch(99).await.expect("fetch").status(), StatusCode::TOO_MANY_REQUESTS, "the link has its own limit");
    let me = app.with_token(Method::GET, "/api/v1/me", &alice).header("x-forwarded-for", "192.0.2.2").send();
    assert_eq!(me.await.expect("me").status(), 200, "alice herself is not locked out");
}

/// A share password sent as a header (GET, HEAD) is a guess like a posted
/// one: it counts in the `auth` class, not in the much larger `api` one.
#[tokio::test]
async fn share_password_headers_are_limited_as_logins() {
    let app = spawn_app_with(|c| {
        c.rate_limit_auth_per_minute = 3;
        c.trust_forwarded_for = true;
    })
    .await;
    let owner = crate::objects::owner_with_bucket(&app, "sven", "sven-files").await.access;
    assert_eq!(crate::objects::put(&app, &owner, "sven-files", "a.txt", b"secret".to_vec()).await.status(), 201);
    let created: Value = app
        .with_token(Method::POST, "/api/v1/shares", &owner)
        .json(&json!({"bucket": "sven-files", "key": "a.txt", "password": "open sesame"}))
        .send()
        .await
        .expect("share")
        .json()
        .await
        .expect("json");
    let url = created["url"].as_str().expect("url").to_owned();
    let guess = |method: Method| {
        app.client.request(method, &url).header("x-forwarded-for", "203.0.113.9").header("x-share-password", "guess")
    };
    for method in [Method::GET, Method::HEAD, Method::GET] {
        let response = guess(method).send().await.expect("guess");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&response, "ratelimit-limit").as_deref(), Some("3"), "counted as auth");
    }
    assert_eq!(guess(Method::HEAD).send().await.expect("guess").status(), StatusCode::TOO_MANY_REQUESTS);
    let without = app.client.get(&url).header("x-forwarded-for", "203.0.113.9").send().await.expect("get");
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED, "opening the link without a guess is an api request");
}
