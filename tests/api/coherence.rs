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
    assert_eq!(get(b, &reader, "doc.txt").await.text().await.expect("body"), "version 1");
    put(a, &owner, "shared", "doc.txt", b"version 2".to_vec()).await;
    assert_eq!(get(b, &reader, "doc.txt").await.text().await.expect("body"), "version 2", "overwrite");

    // Delete on A.
    put(a, &owner, "shared", "gone.txt", b"x".to_vec()).await;
    assert_eq!(get(b, &reader, "gone.txt").await.status(), 200);
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
    assert_eq!(get(b, &reader, "doc.txt").await.status(), 200);
    let revoked = a.with_token(Method::DELETE, "/api/v1/buckets/shared/grants/rita", &owner).send().await;
    assert_eq!(revoked.expect("revoke").status(), 204);
    assert_eq!(get(b, &reader, "doc.txt").await.status(), 404, "grant revoke");

    // User disabled on A: B refuses the token at once.
    assert_eq!(grant("read").await.expect("grant").status(), 204);
    assert_eq!(get(b, &reader, "doc.txt").await.status(), 200);
    let admin = a.user_session("ada", Role::Admin).await.access;
    let disabled =
        a.with_token(Method::PATCH, "/api/v1/admin/users/rita", &admin).json(&json!({"disabled": true})).send().await;
    assert_eq!(disabled.expect("disable").status(), 200);
    assert_eq!(get(b, &reader, "doc.txt").await.status(), 401, "user disable");
}
