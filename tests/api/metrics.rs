//! `/metrics`: Prometheus text with the families operators alert on, route
//! templates instead of keys, and an optional bearer token.

use coffer::domain::Role;
use reqwest::Method;

use crate::helpers::{spawn_app, spawn_app_with};
use crate::objects::{owner_with_bucket, put};

#[tokio::test]
async fn metrics_are_scraped_with_route_templates_and_no_keys() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "mia", "metered").await.access;
    put(&app, &owner, "metered", "private/salary-2026.xlsx", b"secret numbers".to_vec()).await;
    let got = app.with_token(Method::GET, "/api/v1/buckets/metered/objects/private/salary-2026.xlsx", &owner).send();
    assert_eq!(got.await.expect("get").status(), 200);
    let failed =
        app.post_json("/api/v1/auth/login", serde_json::json!({"username": "mia", "password": "wrong wrong wrong"}));
    assert_eq!(failed.await.status(), 401);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("type").starts_with("text/plain"));
    let text = response.text().await.expect("text");
    for family in [
        "coffer_build_info",
        "coffer_http_requests_total",
        "coffer_http_request_duration_seconds_bucket",
        "coffer_cache_lookups_total",
        "coffer_cache_breaker_open",
        "coffer_logins_total",
        "coffer_thumbnails_rendered_total",
        "coffer_lifecycle_bytes_freed_total",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
    assert!(text.contains(r#"route="/api/v1/buckets/{bucket}/objects/{key:.*}""#), "{text}");
    assert!(text.contains(r#"kind="failure""#), "failed login counted");
    assert!(!text.contains("salary") && !text.contains("metered"), "no keys or bucket names in labels");
}

#[tokio::test]
async fn a_metrics_token_keeps_the_page_private() {
    let app = spawn_app_with(|c| c.metrics_token = Some(secrecy::SecretString::from("scrape-me-please"))).await;
    let refused = app.get("/metrics").await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"), "a 401 names its scheme");
    let user = app.user_session("ulla", Role::User).await.access;
    assert_eq!(app.with_token(Method::GET, "/metrics", &user).send().await.expect("get").status(), 401);
    let scraped = app.with_token(Method::GET, "/metrics", "scrape-me-please").send().await.expect("get");
    assert_eq!(scraped.status(), 200);
    // The scheme in any case, as for every other bearer token (RFC 9110 §11.1).
    let lowercase = app.client.get(app.url("/metrics")).header("authorization", "bearer  scrape-me-please");
    assert_eq!(lowercase.send().await.expect("get").status(), 200);
}

/// How many calls of each cache operation `/metrics` has counted.
async fn cache_calls(app: &crate::helpers::TestApp, operation: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    let series = format!(r#"coffer_cache_operation_duration_seconds_count{{operation="{operation}"}}"#);
    text.lines().find_map(|line| line.strip_prefix(series.as_str())?.trim().parse().ok()).unwrap_or(0)
}

/// How many times the app read scope versions together: from the cache, or
/// from this replica's coherent copies of it (counted, not timed).
async fn version_reads(app: &crate::helpers::TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    let copies =
        text.lines().find_map(|line| line.strip_prefix("coffer_cache_copies_used_total ")?.parse::<u64>().ok());
    cache_calls(app, "get_coherent").await + copies.unwrap_or(0)
}

/// How many batched reads a warm read makes: the four scope versions it
/// needs, in one call on a shared cache (answered from this replica's
/// coherent copies once warm: `near_copies`); none in process, where the
/// versions are kept beside the cache rather than in it.
fn version_batches(app: &crate::helpers::TestApp) -> u64 {
    if coffer::cache::Cache::is_local(app.services.cache.as_ref()) { 0 } else { 1 }
}

/// A warm read of object metadata needs four scope versions (account, bucket
/// name, grants, objects): all are read together, in one round trip.
#[tokio::test]
async fn a_warm_read_fetches_its_versions_in_one_call() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "vera", "versions").await.access;
    let stored = put(&app, &owner, "versions", "a.txt", b"small".to_vec()).await;
    let etag = stored.headers()["etag"].to_str().expect("etag").to_owned();
    let read = || {
        app.with_token(Method::GET, "/api/v1/buckets/versions/objects/a.txt", &owner)
            .header("if-none-match", etag.clone())
            .send()
    };
    assert_eq!(read().await.expect("warm-up").status(), 304);
    let (gets, batches) = (cache_calls(&app, "get").await, version_reads(&app).await);
    assert_eq!(read().await.expect("read").status(), 304);
    let gets = cache_calls(&app, "get").await - gets;
    let batches = version_reads(&app).await - batches;
    assert_eq!((gets, batches), (0, version_batches(&app)), "account, bucket-name, grant and object versions together");
}

/// With an API key, the key's owner and the minute's `last_used_at` claim are
/// remembered in process: a warm read still costs one call to the cache.
#[tokio::test]
async fn a_warm_read_with_an_api_key_costs_one_call() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "kai", "keyed").await.access;
    let stored = put(&app, &owner, "keyed", "a.txt", b"small".to_vec()).await;
    let etag = stored.headers()["etag"].to_str().expect("etag").to_owned();
    let created: serde_json::Value = app
        .with_token(Method::POST, "/api/v1/me/api-keys", &owner)
        .json(&serde_json::json!({"name": "reader", "scopes": ["read"]}))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("json");
    let key = created["key"].as_str().expect("key").to_owned();
    let read = || {
        app.with_token(Method::GET, "/api/v1/buckets/keyed/objects/a.txt", &key)
            .header("if-none-match", etag.clone())
            .send()
    };
    assert_eq!(read().await.expect("warm-up").status(), 304);
    let operations = ["get", "get_many", "set_if_absent", "set"];
    let mut before = Vec::new();
    for operation in operations {
        before.push(cache_calls(&app, operation).await);
    }
    let versions_before = version_reads(&app).await;
    assert_eq!(read().await.expect("read").status(), 304);
    let mut calls = Vec::new();
    for (operation, before) in operations.iter().zip(before) {
        calls.push((*operation, cache_calls(&app, operation).await - before));
    }
    calls.push(("versions", version_reads(&app).await - versions_before));
    let expected = [("get", 0), ("get_many", 0), ("set_if_absent", 0), ("set", 0), ("versions", version_batches(&app))];
    assert_eq!(calls, expected);
}
