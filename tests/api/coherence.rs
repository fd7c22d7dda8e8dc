//! Two replicas on one database and one Redis: a change made through A is
//! what B answers on its very next request (overwrite, delete, grant revoke,
//! user disable, retention), with B's cache warm beforehand. On the embedded
//! defaults the same sequence runs against one instance (its cache must not
//! serve stale authorization either).

use chrono::{Duration, SecondsFormat};
use coffer::domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};
use crate::objects::{object_path, put};

async fn get(app: &TestApp, token: &str, key: &str) -> reqwest::Response {
    app.with_token(Method::GET, &object_path("shared", key), token).send().await.expect("get")
}

/// Reads `key` twice, answered `status` both times: the second read comes
/// from the replica's read memo (bucket, grant and object kept together).
async fn warm(app: &TestApp, token: &str, key: &str, status: u16) {
    for _ in 0..2 {
        assert_eq!(get(app, token, key).await.status(), status, "warming {key}");
    }
}

#[tokio::test]
async fn a_change_on_one_replica_is_seen_on_the_next_request_to_another() {
    let first = spawn_app().await;
    // Replicas need a shared cache to be coherent; without Redis one instance plays both parts.
    let replica = if first.config.redis_url.is_some() { Some(first.replica().await) } else { None };
    let (a, b) = (&first, replica.as_ref().unwrap_or(&first));
    let owner_password = a.create_user("olga", Role::User).await;
    let owner = a.login("olga", &owner_password).await.access;
    let created = a.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "shared"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    let reader_password = a.create_user("rita", Role::User).await;
    let grant = |permission: &'static str| {
        a.with_token(Method::PUT, "/api/v1/buckets/shared/grants/rita", &owner)
            .json(&json!({"permission": permission}))
            .send()
    };
    assert_eq!(grant("read").await.expect("grant").status(), 204);
    let reader = b.login("rita", &reader_password).await.access;
    put(a, &owner, "shared", "doc.txt", b"version 1".to_vec()).await;

    // Warm B, then overwrite on A.
    warm(b, &reader, "doc.txt", 200).await;
    assert_eq!(get(b, &reader, "doc.txt").await.text().await.expect("body"), "version 1");
    put(a, &owner, "shared", "doc.txt", b"version 2".to_vec()).await;
    assert_eq!(get(b, &reader, "doc.txt").await.text().await.expect("body"), "version 2", "overwrite");

    // Delete on A.
    put(a, &owner, "shared", "gone.txt", b"x".to_vec()).await;
    warm(b, &reader, "gone.txt", 200).await;
    let deleted = a.with_token(Method::DELETE, &object_path("shared", "gone.txt"), &owner).send().await;
    assert_eq!(deleted.expect("delete").status(), 204);
    assert_eq!(get(b, &reader, "gone.txt").await.status(), 404, "delete");

    // Retention set on A refuses a delete on B.
    assert_eq!(grant("write").await.expect("grant").status(), 204);
    put(a, &owner, "shared", "kept.txt", b"x".to_vec()).await;
    let until = (a.clock_now() + Duration::days(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let retention = a
        .with_token(Method::PUT, "/api/v1/buckets/shared/retention/kept.txt", &owner)
        .json(&json!({"mode": "GOVERNANCE", "retain_until": until}))
        .send()
        .await;
    assert_eq!(retention.expect("retention").status(), 200);
    let refused = b.with_token(Method::DELETE, &object_path("shared", "kept.txt"), &reader).send().await;
    assert_eq!(refused.expect("delete").status(), StatusCode::CONFLICT, "retention");

    // Grant revoked on A: B denies at once.
    warm(b, &reader, "doc.txt", 200).await;
    let revoked = a.with_token(Method::DELETE, "/api/v1/buckets/shared/grants/rita", &owner).send().await;
    assert_eq!(revoked.expect("revoke").status(), 204);
    assert_eq!(get(b, &reader, "doc.txt").await.status(), 404, "grant revoke");

    // User disabled on A: B refuses the token at once.
    assert_eq!(grant("read").await.expect("grant").status(), 204);
    warm(b, &reader, "doc.txt", 200).await;
    let admin = a.user_session("ada", Role::Admin).await.access;
    let disabled =
        a.with_token(Method::PATCH, "/api/v1/admin/users/rita", &admin).json(&json!({"disabled": true})).send().await;
    assert_eq!(disabled.expect("disable").status(), 200);
    assert_eq!(get(b, &reader, "doc.txt").await.status(), 401, "user disable");
}

async fn listed_keys(app: &TestApp, token: &str) -> Vec<String> {
    let page: serde_json::Value = app.get_json("/api/v1/buckets/cached/objects?prefix=", token).await;
    page["objects"].as_array().expect("objects").iter().map(|o| o["key"].as_str().expect("key").to_owned()).collect()
}

#[tokio::test]
async fn cached_listings_keys_buckets_and_uploads_follow_every_write() {
    let first = spawn_app().await;
    let replica = if first.config.redis_url.is_some() { Some(first.replica().await) } else { None };
    let (a, b) = (&first, replica.as_ref().unwrap_or(&first));
    let owner = a.user_session("owen", Role::User).await.access;
    let created = a.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "cached"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);

    // Listing pages: warm on B, write on A, B lists the change.
    put(a, &owner, "cached", "one.txt", b"1".to_vec()).await;
    assert_eq!(listed_keys(b, &owner).await, ["one.txt"]);
    put(a, &owner, "cached", "two.txt", b"2".to_vec()).await;
    assert_eq!(listed_keys(b, &owner).await, ["one.txt", "two.txt"], "listing after put");
    let deleted = a.with_token(Method::DELETE, &object_path("cached", "one.txt"), &owner).send().await;
    assert_eq!(deleted.expect("delete").status(), 204);
    assert_eq!(listed_keys(b, &owner).await, ["two.txt"], "listing after delete");

    // HEAD metadata: a completed multipart upload on A replaces what B cached.
    let head = |app: &TestApp| app.with_token(Method::HEAD, &object_path("cached", "two.txt"), &owner).send();
    let before = head(b).await.expect("head");
    assert_eq!(before.headers()["content-length"], "1");
    let upload: serde_json::Value = a
        .with_token(Method::POST, "/api/v1/buckets/cached/uploads", &owner)
        .json(&json!({"key": "two.txt"}))
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("json");
    let id = upload["upload_id"].as_str().expect("id");
    let part: serde_json::Value = a
        .with_token(Method::PUT, &format!("/api/v1/buckets/cached/uploads/{id}/parts/1"), &owner)
        .body(b"three".to_vec())
        .send()
        .await
        .expect("part")
        .json()
        .await
        .expect("json");
    let done = a
        .with_token(Method::POST, &format!("/api/v1/buckets/cached/uploads/{id}/complete"), &owner)
        .json(&json!({"parts": [{"part_number": 1, "etag": part["etag"]}]}))
        .send()
        .await;
    assert_eq!(done.expect("complete").status(), 201);
    let after = head(b).await.expect("head");
    assert_eq!(after.headers()["content-length"], "5", "HEAD after a multipart completion");
    assert_ne!(after.headers()["etag"], before.headers()["etag"]);

    // A copy on A onto a key B has cached as absent.
    let copy_head = || b.with_token(Method::HEAD, &object_path("cached", "copy.txt"), &owner).send();
    assert_eq!(copy_head().await.expect("head").status(), 404);
    let copied = a
        .with_token(Method::POST, "/api/v1/buckets/cached/copy/two.txt", &owner)
        .json(&json!({"to_key": "copy.txt"}))
        .send()
        .await;
    assert_eq!(copied.expect("copy").status(), 201);
    assert_eq!(copy_head().await.expect("head").status(), 200, "copy");

    // Legal hold on A: B's HEAD-cached object is not deletable.
    let hold = a
        .with_token(Method::PUT, &format!("/api/v1/buckets/cached/legal-hold/{}", "two.txt"), &owner)
        .json(&json!({"status": "ON"}))
        .send()
        .await;
    assert_eq!(hold.expect("hold").status(), 200);
    let refused = b.with_token(Method::DELETE, &object_path("cached", "two.txt"), &owner).send().await;
    assert_eq!(refused.expect("delete").status(), StatusCode::CONFLICT, "legal hold");

    // An API key revoked on A is refused by B at once, though B just accepted it.
    let key: serde_json::Value = a.create_api_key(&owner, json!({"name": "app"})).await;
    let secret = key["key"].as_str().expect("secret");
    assert_eq!(head(b).await.expect("head").status(), 200);
    let with_key = || b.with_token(Method::HEAD, &object_path("cached", "two.txt"), secret).send();
    assert_eq!(with_key().await.expect("head").status(), 200);
    assert_eq!(with_key().await.expect("head").status(), 200, "served from the warm cache");
    let revoke = a
        .with_token(Method::DELETE, &format!("/api/v1/me/api-keys/{}", key["id"].as_str().expect("id")), &owner)
        .send()
        .await;
    assert_eq!(revoke.expect("revoke").status(), 204);
    assert_eq!(with_key().await.expect("head").status(), 401, "revoked key");

    // A bucket deleted on A is gone on B, and a new one of the same name is empty.
    let other = a.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "brief"})).send().await;
    assert_eq!(other.expect("bucket").status(), 201);
    let brief = || b.with_token(Method::GET, "/api/v1/buckets/brief/objects", &owner).send();
    assert_eq!(brief().await.expect("list").status(), 200);
    let dropped = a.with_token(Method::DELETE, "/api/v1/buckets/brief", &owner).send().await;
    assert_eq!(dropped.expect("drop").status(), 204);
    assert_eq!(brief().await.expect("list").status(), 404, "deleted bucket");
    let again = a.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "brief"})).send().await;
    assert_eq!(again.expect("bucket").status(), 201);
    assert_eq!(brief().await.expect("list").status(), 200, "re-created bucket");

    // A default retention set on A applies to what B writes next (B had the bucket cached).
    put(b, &owner, "brief", "warm.txt", b"w".to_vec()).await;
    let default = a
        .with_token(Method::PUT, "/api/v1/buckets/brief/default-retention", &owner)
        .json(&json!({"mode": "GOVERNANCE", "days": 1}))
        .send()
        .await;
    assert_eq!(default.expect("default").status(), 200);
    assert_eq!(put(b, &owner, "brief", "kept.txt", b"k".to_vec()).await.status(), 201);
    let kept = b.with_token(Method::DELETE, &object_path("brief", "kept.txt"), &owner).send().await;
    assert_eq!(kept.expect("delete").status(), StatusCode::CONFLICT, "default retention");
}

/// A read memo keeps a bucket, a grant and an object together for repeated
/// reads by one user; it never decides for the caller (the decision is made
/// again on every read) and never outlives the bucket it was read from.
#[tokio::test]
async fn a_warm_read_memo_is_decided_again_and_retired_with_its_bucket() {
    let app = spawn_app().await;
    let owner = app.user_session("olga", Role::User).await.access;
    let created = app.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "memo"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    put(&app, &owner, "memo", "doc.txt", b"first bucket".to_vec()).await;
    let read = |token: String| {
        let app = &app;
        async move { app.with_token(Method::GET, &object_path("memo", "doc.txt"), &token).send().await.expect("get") }
    };

    // An admin reads without a grant; demoted, the same token finds nothing.
    let bert = app.user_session("bert", Role::Admin).await.access;
    for _ in 0..2 {
        assert_eq!(read(bert.clone()).await.status(), 200, "an admin reads every bucket");
    }
    let admin = app.user_session("ada", Role::Admin).await.access;
    let demoted =
        app.with_token(Method::PATCH, "/api/v1/admin/users/bert", &admin).json(&json!({"role": "user"})).send().await;
    assert_eq!(demoted.expect("demote").status(), 200);
    assert_eq!(read(bert.clone()).await.status(), 404, "the memo's grant is decided for the demoted role");

    // The bucket deleted and made again under its name: the new object is read, not the memo's.
    for _ in 0..2 {
        assert_eq!(read(owner.clone()).await.text().await.expect("body"), "first bucket");
    }
    let deleted = app.with_token(Method::DELETE, &object_path("memo", "doc.txt"), &owner).send().await;
    assert_eq!(deleted.expect("delete").status(), 204);
    let dropped = app.with_token(Method::DELETE, "/api/v1/buckets/memo", &owner).send().await;
    assert_eq!(dropped.expect("drop").status(), 204);
    let again = app.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "memo"})).send().await;
    assert_eq!(again.expect("bucket").status(), 201);
    put(&app, &owner, "memo", "doc.txt", b"second bucket".to_vec()).await;
    assert_eq!(read(owner.clone()).await.text().await.expect("body"), "second bucket");
}
