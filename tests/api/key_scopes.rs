//! What an API key's scopes allow beyond plain reads and writes: a read key of
//! a bucket's manager cannot lock objects, revoke its owner's other keys or
//! run lifecycle expiry; a write-only key stores but never reads.

use coffer::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::objects::{owner_with_bucket, put};

/// A new key of the session's user: (id, secret).
async fn key(app: &TestApp, session: &str, scopes: &[&str]) -> (String, String) {
    let created: Value = app.create_api_key(session, json!({ "name": scopes.join("+"), "scopes": scopes })).await;
    (created["id"].as_str().expect("id").to_owned(), created["key"].as_str().expect("key").to_owned())
}

async fn status(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> u16 {
    let request = app.with_token(method, path, token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("request").status().as_u16()
}

#[tokio::test]
async fn a_read_key_of_a_manager_stays_a_reader() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "quinn", "quinn-vault").await;
    assert_eq!(put(&app, &owner.access, "quinn-vault", "deed.txt", b"deed".to_vec()).await.status(), 201);
    let (_, read_key) = key(&app, &owner.access, &["read"]).await;
    let (_, write_key) = key(&app, &owner.access, &["read", "write"]).await;
    let until = (chrono::Utc::now() + chrono::Duration::days(3650)).to_rfc3339();
    let lock = json!({ "mode": "COMPLIANCE", "retain_until": until });
    let retention = "/api/v1/buckets/quinn-vault/retention/deed.txt";
    let hold = "/api/v1/buckets/quinn-vault/legal-hold/deed.txt";

    assert_eq!(status(&app, Method::PUT, retention, &read_key, Some(lock.clone())).await, 403);
    assert_eq!(status(&app, Method::PUT, hold, &read_key, Some(json!({"status": "ON"}))).await, 403);
    assert_eq!(status(&app, Method::GET, retention, &read_key, None).await, 200, "reading retention is a read");
    let listed: Value = app.get_json("/api/v1/buckets", &read_key).await;
    assert_eq!(listed["buckets"][0]["permission"], "read", "the key's scope caps the listed permission");
    let nothing_locked: Value = app.get_json(retention, &owner.access).await;
    assert_eq!(nothing_locked["active"], false);
    assert_eq!(nothing_locked["legal_hold"], false);

    assert_eq!(status(&app, Method::PUT, hold, &write_key, Some(json!({"status": "ON"}))).await, 200);
    assert_eq!(status(&app, Method::PUT, hold, &read_key, Some(json!({"status": "OFF"}))).await, 403);
}

#[tokio::test]
async fn a_write_only_key_stores_but_never_reads() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "dora", "dora-drop").await;
    let (_, drop_key) = key(&app, &owner.access, &["write"]).await;
    let object = "/api/v1/buckets/dora-drop/objects/log.txt";
    let stored = app.with_token(Method::PUT, object, &drop_key).body("line 1").send().await.expect("put");
    assert_eq!(stored.status(), 201, "it writes");
    assert_eq!(status(&app, Method::GET, object, &drop_key, None).await, 403);
    assert_eq!(status(&app, Method::HEAD, object, &drop_key, None).await, 403);
    assert_eq!(status(&app, Method::GET, "/api/v1/buckets/dora-drop/objects", &drop_key, None).await, 403);
    assert_eq!(status(&app, Method::GET, "/api/v1/buckets/dora-drop/thumbnails/log.txt", &drop_key, None).await, 403);
    assert_eq!(status(&app, Method::GET, "/api/v1/buckets/dora-drop/retention/log.txt", &drop_key, None).await, 403);
    let copy = json!({"to_key": "copied.txt"});
    let copied = status(&app, Method::POST, "/api/v1/buckets/dora-drop/copy/log.txt", &drop_key, Some(copy)).await;
    assert_eq!(copied, 403, "a copy reads its source");
    let share = json!({"bucket": "dora-drop", "key": "log.txt"});
    assert_eq!(status(&app, Method::POST, "/api/v1/shares", &drop_key, Some(share)).await, 403);
    let presign =
        |method: &str| json!({"bucket": "dora-drop", "key": "log.txt", "method": method, "expires_in_seconds": 60});
    assert_eq!(status(&app, Method::POST, "/api/v1/presign", &drop_key, Some(presign("GET"))).await, 403);
    assert_eq!(status(&app, Method::POST, "/api/v1/presign", &drop_key, Some(presign("PUT"))).await, 200);
    // A manager's write-only key still manages what it writes.
    let hold = "/api/v1/buckets/dora-drop/legal-hold/log.txt";
    assert_eq!(status(&app, Method::PUT, hold, &drop_key, Some(json!({"status": "ON"}))).await, 200);
    let held: Value = app.get_json("/api/v1/buckets/dora-drop/retention/log.txt", &owner.access).await;
    assert_eq!(held["legal_hold"], true);
    // But it never hands out access: granting gives reads away.
    let _ = app.user_session("mallory", Role::User).await;
    let grant = "/api/v1/buckets/dora-drop/grants/mallory";
    assert_eq!(status(&app, Method::PUT, grant, &drop_key, Some(json!({"permission": "manage"}))).await, 403);
    assert_eq!(status(&app, Method::GET, "/api/v1/buckets/dora-drop/grants", &drop_key, None).await, 403);
    assert_eq!(status(&app, Method::PUT, grant, &owner.access, Some(json!({"permission": "read"}))).await, 204);
    assert_eq!(status(&app, Method::DELETE, grant, &drop_key, None).await, 403);
    let body = app.with_token(Method::GET, object, &owner.access).send().await.expect("get").text().await;
    assert_eq!(body.expect("body"), "line 1", "its owner reads it");

    let admin = app.user_session("root", Role::Admin).await;
    let (_, admin_drop) = key(&app, &admin.access, &["write"]).await;
    assert_eq!(status(&app, Method::GET, "/api/v1/admin/users", &admin_drop, None).await, 403);
    assert_eq!(status(&app, Method::GET, "/api/v1/admin/audit", &admin_drop, None).await, 403);
    let admin_grant = "/api/v1/buckets/dora-drop/grants/root";
    let granted = status(&app, Method::PUT, admin_grant, &admin_drop, Some(json!({"permission": "read"}))).await;
    assert_eq!(granted, 403, "not even an admin's write-only key");
}

#[tokio::test]
async fn a_key_revokes_only_itself() {
    let app = spawn_app().await;
    let owner = app.user_session("rhea", Role::User).await;
    let (read_id, read_key) = key(&app, &owner.access, &["read"]).await;
    let (write_id, write_key) = key(&app, &owner.access, &["read", "write"]).await;
    let other = format!("/api/v1/me/api-keys/{write_id}");
    assert_eq!(status(&app, Method::DELETE, &other, &read_key, None).await, 403);
    assert_eq!(status(&app, Method::GET, "/api/v1/me", &write_key, None).await, 200, "the other key still works");
    let own = format!("/api/v1/me/api-keys/{read_id}");
    assert_eq!(status(&app, Method::DELETE, &own, &read_key, None).await, 204);
    assert_eq!(status(&app, Method::GET, "/api/v1/me", &read_key, None).await, 401, "revoked");
    assert_eq!(status(&app, Method::DELETE, &other, &owner.access, None).await, 204, "a session revokes any");
}

#[tokio::test]
async fn expiring_objects_needs_more_than_an_admins_read_key() {
    let app = spawn_app().await;
    let admin = app.user_session("sage", Role::Admin).await;
    let (_, read_key) = key(&app, &admin.access, &["read"]).await;
    let (_, write_key) = key(&app, &admin.access, &["read", "write"]).await;
    let run = "/api/v1/admin/lifecycle/run";
    assert_eq!(status(&app, Method::POST, run, &read_key, Some(json!({"dry_run": false}))).await, 403);
    assert_eq!(status(&app, Method::POST, run, &read_key, Some(json!({"dry_run": true}))).await, 200);
    assert_eq!(status(&app, Method::POST, run, &write_key, Some(json!({"dry_run": false}))).await, 200);
}

#[tokio::test]
async fn share_links_are_revoked_and_listed_only_by_keys_that_read() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "sasha", "sasha-links").await;
    assert_eq!(put(&app, &owner.access, "sasha-links", "plan.txt", b"plan".to_vec()).await.status(), 201);
    let share = |token: &str| {
        let body = json!({"bucket": "sasha-links", "key": "plan.txt"});
        let request = app.with_token(Method::POST, "/api/v1/shares", token).json(&body);
        async move {
            let created: Value = request.send().await.expect("share").json().await.expect("json");
            created["id"].as_str().expect("id").to_owned()
        }
    };
    let link = share(&owner.access).await;
    let revoke = |id: &str| format!("/api/v1/shares/{id}");

    let admin = app.user_session("root", Role::Admin).await;
    let (_, admin_reader) = key(&app, &admin.access, &["read"]).await;
    let (_, admin_drop) = key(&app, &admin.access, &["write"]).await;
    assert_eq!(
        status(&app, Method::DELETE, &revoke(&link), &admin_reader, None).await,
        404,
        "a read key never manages"
    );
    assert_eq!(status(&app, Method::DELETE, &revoke(&link), &admin_drop, None).await, 404, "a write key never shares");
    let (_, owner_drop) = key(&app, &owner.access, &["write"]).await;
    assert_eq!(status(&app, Method::GET, "/api/v1/shares", &owner_drop, None).await, 403);
    assert_eq!(status(&app, Method::DELETE, &revoke(&link), &owner_drop, None).await, 403);
    let listed: Value = app.get_json("/api/v1/shares", &owner.access).await;
    assert_eq!(listed["shares"][0]["revoked"], false, "the link survived every refusal");

    let (_, owner_reader) = key(&app, &owner.access, &["read"]).await;
    assert_eq!(status(&app, Method::GET, "/api/v1/shares", &owner_reader, None).await, 200);
    assert_eq!(status(&app, Method::DELETE, &revoke(&link), &owner_reader, None).await, 204, "its creator's own");
    let second = share(&owner.access).await;
    assert_eq!(status(&app, Method::DELETE, &revoke(&second), &admin.access, None).await, 204, "an admin's session");
    let refusals: Value = app.get_json("/api/v1/admin/audit?action=share.revoke", &admin.access).await;
    let denied = refusals["events"].as_array().expect("events").iter().filter(|e| e["outcome"] == "denied").count();
    assert_eq!(denied, 3, "{refusals}");
}
