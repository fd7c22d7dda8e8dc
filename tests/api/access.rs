//! Access control and administration over HTTP: grants and bucket visibility,
//! admin rules (last admin, user management), MFA for administration,
//! password policy, malformed requests, and secrets kept out of the logs.

use std::time::Duration;

use chrono::Duration as Span;
use coffer::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{captured_logs, problem, spawn_app, strong_password};
use crate::identity::{enable_mfa, login_body};

#[tokio::test]
async fn buckets_are_invisible_without_a_grant_and_grants_need_manage() {
    let app = spawn_app().await;
    let owner = app.user_session("mona", Role::User).await;
    let other = app.user_session("ned", Role::User).await;
    let auditor = app.user_session("olga", Role::Auditor).await;
    let created = app
        .with_token(Method::POST, "/api/v1/buckets", &owner.access)
        .json(&json!({"name": "mona-photos"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<Value>().await.expect("json")["permission"], "manage");
    let again = app
        .with_token(Method::POST, "/api/v1/buckets", &owner.access)
        .json(&json!({"name": "mona-photos"}))
        .send()
        .await
        .expect("create");
    assert_eq!(again.status(), 409);

    let listed: Value = app.get_json("/api/v1/buckets", &other.access).await;
    assert_eq!(listed["buckets"], json!([]));
    for (method, path) in [
        (Method::GET, "/api/v1/buckets/mona-photos/grants"),
        (Method::DELETE, "/api/v1/buckets/mona-photos"),
        (Method::GET, "/api/v1/buckets/no-such-bucket/grants"),
    ] {
        let response = app.with_token(method, path, &other.access).send().await.expect("request");
        assert_eq!(response.status(), 404, "{path}: no existence leak");
    }
    let self_grant = app
        .with_token(Method::PUT, "/api/v1/buckets/mona-photos/grants/ned", &other.access)
        .json(&json!({"permission": "manage"}))
        .send()
        .await
        .expect("grant");
    assert_eq!(self_grant.status(), 404);

    let grant = |token: &str, user: &str, permission: &str| {
        app.with_token(Method::PUT, &format!("/api/v1/buckets/mona-photos/grants/{user}"), token)
            .json(&json!({"permission": permission}))
            .send()
    };
    assert_eq!(grant(&owner.access, "ned", "write").await.expect("grant").status(), 204);
    let listed: Value = app.get_json("/api/v1/buckets", &other.access).await;
    assert_eq!(listed["buckets"][0]["permission"], "write");
    // With write, ned sees the bucket but cannot grant, not even to himself.
    assert_eq!(grant(&other.access, "ned", "manage").await.expect("grant").status(), 403);
    assert_eq!(grant(&other.access, "olga", "read").await.expect("grant").status(), 403);
    assert_eq!(grant(&owner.access, "nobody", "read").await.expect("grant").status(), 404);
    assert_eq!(grant(&owner.access, "mona", "read").await.expect("grant").status(), 403, "no self-demotion either");
    // A manager by grant manages others, but not the bucket's creator.
    assert_eq!(grant(&owner.access, "ned", "manage").await.expect("grant").status(), 204);
    assert_eq!(grant(&other.access, "mona", "read").await.expect("grant").status(), 403, "the creator keeps manage");
    let unseat = app.with_token(Method::DELETE, "/api/v1/buckets/mona-photos/grants/mona", &other.access);
    assert_eq!(unseat.send().await.expect("revoke").status(), 403);
    let grants: Value = app.get_json("/api/v1/buckets/mona-photos/grants", &owner.access).await;
    let names: Vec<&str> =
        grants["grants"].as_array().expect("list").iter().map(|g| g["username"].as_str().expect("name")).collect();
    assert_eq!(names, ["mona", "ned"]);
    let revoke = app.with_token(Method::DELETE, "/api/v1/buckets/mona-photos/grants/ned", &owner.access).send().await;
    assert_eq!(revoke.expect("revoke").status(), 204);
    let after: Value = app.get_json("/api/v1/buckets", &other.access).await;
    assert_eq!(after["buckets"], json!([]), "revocation is effective on the next request");

    // Auditors do not touch buckets; invalid names are 400.
    let auditor_create = app
        .with_token(Method::POST, "/api/v1/buckets", &auditor.access)
        .json(&json!({"name": "audit-bucket"}))
        .send()
        .await
        .expect("create");
    assert_eq!(auditor_create.status(), 403);
    let invalid = app
        .with_token(Method::POST, "/api/v1/buckets", &owner.access)
        .json(&json!({"name": "Not_Valid"}))
        .send()
        .await
        .expect("create");
    assert_eq!(invalid.status(), 400);
    assert_eq!(
        app.with_token(Method::DELETE, "/api/v1/buckets/mona-photos", &owner.access)
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
}

#[tokio::test]
async fn admin_rules_last_admin_and_user_management() {
    let app = spawn_app().await;
    let admin = app.user_session("root", Role::Admin).await;
    let user = app.user_session("pete", Role::User).await;
    let auditor = app.user_session("quinn", Role::Auditor).await;
    for token in [&user.access, &auditor.access] {
        let response = app.with_token(Method::GET, "/api/v1/admin/users", token).send().await.expect("list");
        assert_eq!(response.status(), 403);
    }
    let demote_self = app
        .with_token(Method::PATCH, "/api/v1/admin/users/root", &admin.access)
        .json(&json!({"role": "user"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(demote_self.status(), 409);
    assert_eq!(problem(demote_self).await["type"], "/problems/last-admin");
    let disable_self = app
        .with_token(Method::PATCH, "/api/v1/admin/users/root", &admin.access)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("patch");
    assert_eq!(disable_self.status(), 409);
    // Refused changes leave a trace, as every other refusal does.
    let denied: Value = app.get_json("/api/v1/admin/audit?action=user.update", &admin.access).await;
    let denied: Vec<&Value> =
        denied["events"].as_array().expect("events").iter().filter(|e| e["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(denied.iter().all(|e| e["details"]["username"] == "root" && e["details"]["reason"].is_string()));
    assert_eq!(
        app.with_token(Method::DELETE, "/api/v1/admin/users/root", &admin.access)
            .send()
            .await
            .expect("delete")
            .status(),
        409
    );

    let created = app
        .with_token(Method::POST, "/api/v1/admin/users", &admin.access)
        .json(&json!({"username": "Rita", "password": strong_password(), "role": "user", "quota_bytes": 1000}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let rita: Value = created.json().await.expect("json");
    assert_eq!((rita["username"].as_str(), rita["quota_bytes"].as_i64()), (Some("rita"), Some(1000)));
    assert!(rita.get("password_hash").is_none());
    let duplicate = app
        .with_token(Method::POST, "/api/v1/admin/users", &admin.access)
        .json(&json!({"username": "RITA", "password": strong_password(), "role": "user"}))
        .send()
        .await
        .expect("create");
    assert_eq!(duplicate.status(), 409);
    let unlimited = app
        .with_token(Method::PATCH, "/api/v1/admin/users/rita", &admin.access)
        .json(&json!({"quota_bytes": null}))
        .send()
        .await
        .expect("patch");
    assert_eq!(unlimited.json::<Value>().await.expect("json")["quota_bytes"], Value::Null);
    let role_only = app
        .with_token(Method::PATCH, "/api/v1/admin/users/rita", &admin.access)
        .json(&json!({"role": "auditor"}))
        .send()
        .await
        .expect("patch");
    let role_only: Value = role_only.json().await.expect("json");
    assert_eq!((role_only["role"].as_str(), &role_only["quota_bytes"]), (Some("auditor"), &Value::Null));
    let unknown_field = app
        .with_token(Method::PATCH, "/api/v1/admin/users/rita", &admin.access)
        .json(&json!({"rolee": "admin"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(unknown_field.status(), 400);

    // Paginated listing.
    let page: Value = app.get_json("/api/v1/admin/users?limit=2", &admin.access).await;
    let cursor = page["next_cursor"].as_str().expect("more");
    let rest: Value = app.get_json(&format!("/api/v1/admin/users?limit=10&cursor={cursor}"), &admin.access).await;
    let mut names: Vec<String> = page["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["username"].as_str().expect("name").to_owned())
        .collect();
    names.extend(
        rest["users"].as_array().expect("users").iter().map(|u| u["username"].as_str().expect("name").to_owned()),
    );
    assert_eq!(names, ["pete", "quinn", "rita", "root"]);
    assert_eq!(rest["next_cursor"], Value::Null);

    // A second admin may now be demoted; get/delete/reset-mfa answer.
    assert_eq!(
        app.with_token(Method::GET, "/api/v1/admin/users/rita", &admin.access).send().await.expect("get").status(),
        200
    );
    assert_eq!(
        app.with_token(Method::POST, "/api/v1/admin/users/rita/reset-mfa", &admin.access)
            .send()
            .await
            .expect("reset")
            .status(),
        204
    );
    assert_eq!(
        app.with_token(Method::DELETE, "/api/v1/admin/users/rita", &admin.access)
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert_eq!(
        app.with_token(Method::GET, "/api/v1/admin/users/rita", &admin.access).send().await.expect("get").status(),
        404
    );
}

#[tokio::test]
async fn mfa_can_be_required_for_administration() {
    let app = crate::helpers::spawn_app_with(|config| config.require_mfa_for_admins = true).await;
    let password = app.create_user("sam", Role::Admin).await;
    let session = app.login("sam", &password).await;
    let refused = app.with_token(Method::GET, "/api/v1/admin/users", &session.access).send().await.expect("list");
    assert_eq!(refused.status(), 403);
    // A key created by that session carries no more assurance than the session.
    let weak_key = app.create_api_key(&session.access, json!({"name": "weak"})).await;
    assert_eq!(weak_key["mfa"], false, "{weak_key}");
    let weak_key = weak_key["key"].as_str().expect("key");
    for path in ["/api/v1/admin/users", "/api/v1/admin/audit"] {
        let refused = app.with_token(Method::GET, path, weak_key).send().await.expect("admin read");
        assert_eq!(refused.status(), 403, "{path}");
    }
    let run = app.with_token(Method::POST, "/api/v1/admin/lifecycle/run", weak_key).json(&json!({"dry_run": false}));
    assert_eq!(run.send().await.expect("run").status(), 403);
    let bucket = app.with_token(Method::POST, "/api/v1/buckets", weak_key).json(&json!({"name": "sam-keys"}));
    assert_eq!(bucket.send().await.expect("bucket").status(), 201, "its bucket access is the admin's");
    let (secret, _) = enable_mfa(&app, &session.access).await;
    let strong = app.login_with_mfa("sam", &password, &secret, Span::seconds(30)).await;
    let allowed = app.with_token(Method::GET, "/api/v1/admin/users", &strong).send().await.expect("list");
    assert_eq!(allowed.status(), 200);
    let strong_key = app.create_api_key(&strong, json!({"name": "strong"})).await;
    assert_eq!(strong_key["mfa"], true, "{strong_key}");
    for path in ["/api/v1/admin/users", "/api/v1/admin/audit"] {
        let key = strong_key["key"].as_str().expect("key");
        let allowed = app.with_token(Method::GET, path, key).send().await.expect("admin read");
        assert_eq!(allowed.status(), 200, "{path}");
    }
    let keys = app.get_json("/api/v1/me/api-keys", &strong).await;
    let flags: Vec<_> =
        keys["api_keys"].as_array().expect("keys").iter().map(|k| (k["name"].clone(), k["mfa"].clone())).collect();
    assert_eq!(flags, [(json!("weak"), json!(false)), (json!("strong"), json!(true))]);
    // Admin reset-mfa turns it off for that user.
    let other = app.create_user("tina", Role::Admin).await;
    let tina = app.login("tina", &other).await;
    enable_mfa(&app, &tina.access).await;
    let reset =
        app.with_token(Method::POST, "/api/v1/admin/users/tina/reset-mfa", &strong).send().await.expect("reset");
    assert_eq!(reset.status(), 204);
    assert_eq!(login_body(&app, "tina", &other).await.1["token_type"], "Bearer");
}

#[tokio::test]
async fn password_policy_is_enforced_with_reasons() {
    let app = spawn_app().await;
    let password = app.create_user("uma", Role::User).await;
    let session = app.login("uma", &password).await;
    let change = |current: &str, new: String| {
        app.with_token(Method::POST, "/api/v1/me/password", &session.access)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    for (new, reason) in [
        ("short".to_owned(), "at least 10 characters"),
        ("x".repeat(1025), "at most 1024 characters"),
        ("uma".to_owned() + "", "at least 10"),
        ("qwertyuiop".to_owned(), "too common"),
        ("Iloveyou123".to_owned(), "too common"),
    ] {
        let response = change(&password, new.clone()).await.expect("change");
        assert_eq!(response.status(), 400, "{new}");
        let body = problem(response).await;
        assert_eq!(body["type"], "/problems/weak-password");
        assert!(body["detail"].as_str().unwrap_or_default().contains(reason), "{body}");
    }
    let same_as_name = app.create_user("longusername1", Role::User).await;
    let other = app.login("longusername1", &same_as_name).await;
    let response = app
        .with_token(Method::POST, "/api/v1/me/password", &other.access)
        .json(&json!({"current_password": same_as_name, "new_password": "LongUserName1"}))
        .send()
        .await
        .expect("change");
    assert!(problem(response).await["detail"].as_str().unwrap_or_default().contains("username"));
    let wrong_current = change("not-my-password", strong_password()).await.expect("change");
    assert_eq!(wrong_current.status(), 400);
    // A good change ends existing sessions.
    let new_password = format!("{}-ünïcødé", strong_password());
    assert_eq!(change(&password, new_password.clone()).await.expect("change").status(), 204);
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &session.access).send().await.expect("me").status(), 401);
    assert_eq!(app.post_json("/api/v1/auth/refresh", json!({"refresh_token": session.refresh})).await.status(), 401);
    assert_eq!(login_body(&app, "uma", &new_password).await.0, 200);
}

#[tokio::test]
async fn malformed_requests_are_4xx_problems() {
    let app = spawn_app().await;
    let raw = |body: &'static str, content_type: &'static str| {
        app.client.post(app.url("/api/v1/auth/login")).header("content-type", content_type).body(body).send()
    };
    let cases = [
        (raw("{not json", "application/json").await.expect("send"), 400),
        (raw(r#"{"username": 5}"#, "application/json").await.expect("send"), 400),
        (raw(r#"{"username":"a","password":"b"}"#, "text/plain").await.expect("send"), 415),
    ];
    for (response, status) in cases {
        assert_eq!(response.status(), status);
        problem(response).await;
    }
    let huge = format!(r#"{{"username":"a","password":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await;
    let response = response.expect("send");
    assert_eq!(response.status(), 413);
    assert_eq!(problem(response).await["type"], "/problems/payload-too-large");
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let app = spawn_app().await;
    let password = app.create_user("vera", Role::User).await;
    let session = app.login("vera", &password).await;
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    login_body(&app, "vera", &wrong).await;
    let key: Value = app.create_api_key(&session.access, json!({"name": "logged?"})).await;
    let key = key["key"].as_str().expect("key").to_owned();
    app.with_token(Method::GET, "/api/v1/me", &key).send().await.expect("me");
    let (secret, recovery) = enable_mfa(&app, &session.access).await;
    let refreshed: Value = app
        .post_json("/api/v1/auth/refresh", json!({"refresh_token": session.refresh}))
        .await
        .json()
        .await
        .expect("json");
    let vera = coffer::domain::Username::parse("vera").expect("name");
    let hash = app.services.store.user_by_name(&vera).await.expect("user").expect("exists").password_hash;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let logs = captured_logs();
    assert!(logs.contains("auth.login"), "the capture works: {}", logs.len());
    let audit_lines = logs.lines().filter(|l| l.contains(r#""target":"audit""#) && l.contains("apikey.create")).count();
    assert!(audit_lines >= 1, "audit records are emitted as structured events with target `audit`");
    for secret_value in [
        password.as_str(),
        wrong.as_str(),
        session.access.as_str(),
        session.refresh.as_str(),
        refreshed["refresh_token"].as_str().unwrap_or("missing"),
        key.as_str(),
        secret.as_str(),
        recovery[0].as_str(),
        hash.as_str(),
    ] {
        assert!(!logs.contains(secret_value), "a secret leaked into the logs: {secret_value}");
    }
}

/// A version whose bytes could not be removed stays `deleting` until the
/// reconciler's grace ends (a day); a bucket that looks empty is deletable at
/// once all the same, and those bytes go with it.
#[tokio::test]
async fn a_bucket_that_looks_empty_can_be_deleted_at_once() {
    let app = spawn_app().await;
    let owner = crate::objects::owner_with_bucket(&app, "rhea", "rhea-files").await;
    let put = crate::objects::put(&app, &owner.access, "rhea-files", "stuck.txt", b"bytes".to_vec()).await;
    assert_eq!(put.status(), 201);
    let delete_bucket = || app.with_token(Method::DELETE, "/api/v1/buckets/rhea-files", &owner.access).send();
    assert_eq!(delete_bucket().await.expect("delete").status(), 409, "a live object keeps the bucket");
    let bucket =
        app.services.store.bucket_by_name(&coffer::domain::BucketName::parse("rhea-files").expect("name")).await;
    let bucket = bucket.expect("bucket").expect("rhea-files");
    let key = coffer::domain::ObjectKey::parse("stuck.txt").expect("key");
    let stuck = app.services.store.live_object(bucket.id, &key).await.expect("object").expect("stuck.txt");
    // As if the removal of its bytes had failed after the delete committed.
    app.execute_sql(&format!("UPDATE objects SET state = 'deleting' WHERE id = {}", stuck.id)).await;
    assert_eq!(delete_bucket().await.expect("delete").status(), 204);
    assert!(app.services.blobs.get(&stuck.blob_key, None).await.is_err(), "its bytes went too");
}
