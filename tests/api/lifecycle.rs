//! Lifecycle over HTTP and the CLI: rule validation, dry runs (also as of a
//! future time) equal to the real run, locked objects skipped, abandoned
//! uploads aborted, and one run per interval across two replicas.

use std::time::Duration as StdDuration;

use chrono::{Duration, SecondsFormat};
use coffer::domain::Role;
use coffer::metadata::AuditQuery;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::objects::{object_path, owner_with_bucket, put};

async fn set_rules(app: &TestApp, token: &str, rules: Value) -> reqwest::Response {
    app.with_token(Method::PUT, "/api/v1/buckets/logs/lifecycle", token)
        .json(&json!({ "rules": rules }))
        .send()
        .await
        .expect("lifecycle")
}

async fn run(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.with_token(Method::POST, "/api/v1/admin/lifecycle/run", token).json(&body).send().await.expect("run")
}

fn keys(report: &Value, field: &str) -> Vec<String> {
    report[field].as_array().expect(field).iter().map(|o| o["key"].as_str().expect("key").to_owned()).collect()
}

async fn audit_count(app: &TestApp, action: &str) -> usize {
    let query = AuditQuery { action: Some(action.into()), limit: 1000, ..Default::default() };
    app.services.store.audit_query(&query).await.expect("audit").len()
}

const RULES: &str = r#"[
    {"id": "old-logs", "prefix": "app/", "enabled": true, "expire_after_days": 7, "abort_incomplete_uploads_after_days": 2},
    {"id": "paused", "prefix": "", "enabled": false, "expire_after_days": 1}
]"#;

#[tokio::test]
async fn rules_are_validated_and_only_managers_set_them() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "lena", "logs").await.access;
    let other = app.user_session("otto", Role::User).await.access;
    let bad = [
        json!([{"id": "a", "enabled": true, "expire_after_days": 1}, {"id": "a", "enabled": true, "expire_after_days": 2}]),
        json!([{"id": "a", "enabled": true, "expire_after_days": 0}]),
        json!([{"id": "a", "enabled": true}]),
        json!([{"id": "", "enabled": true, "expire_after_days": 1}]),
        json!([{"id": "a", "enabled": true, "expire_after_days": -1}]),
        json!([{"id": "a", "enabled": "yes", "expire_after_days": 1}]),
        json!([{"id": "a", "enabled": true, "expire_after_days": 1, "surprise": true}]),
    ];
    for rules in bad {
        let response = set_rules(&app, &owner, rules.clone()).await;
        assert_eq!(response.status(), 400, "{rules}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(set_rules(&app, &other, serde_json::from_str(RULES).expect("rules")).await.status(), 404);
    let set = set_rules(&app, &owner, serde_json::from_str(RULES).expect("rules")).await;
    assert_eq!(set.status(), 200);
    let got: Value = app.get_json("/api/v1/buckets/logs/lifecycle", &owner).await;
    assert_eq!(got["rules"][0]["id"], "old-logs");
    assert_eq!(got["rules"][1]["enabled"], false);
    let deleted =
        app.with_token(Method::DELETE, "/api/v1/buckets/logs/lifecycle", &owner).send().await.expect("delete");
    assert_eq!(deleted.status(), 204);
    let got: Value = app.get_json("/api/v1/buckets/logs/lifecycle", &owner).await;
    assert_eq!(got["rules"], json!([]));
}

#[tokio::test]
async fn a_dry_run_reports_exactly_what_the_real_run_then_does() {
    let app = spawn_app().await;
    let owner_password = app.create_user("lena", Role::User).await;
    let owner = app.login("lena", &owner_password).await.access;
    let created = app.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "logs"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    let admin_password = app.create_user("ada", Role::Admin).await;
    let admin = app.login("ada", &admin_password).await.access;
    for key in ["app/a.log", "app/b.log", "app/held.log", "keep/c.log"] {
        assert_eq!(put(&app, &owner, "logs", key, b"log line".to_vec()).await.status(), 201);
    }
    let hold = app
        .with_token(Method::PUT, "/api/v1/buckets/logs/legal-hold/app/held.log", &owner)
        .json(&json!({"status": "ON"}))
        .send()
        .await
        .expect("hold");
    assert_eq!(hold.status(), 200);
    let upload = app
        .with_token(Method::POST, "/api/v1/buckets/logs/uploads", &owner)
        .json(&json!({"key": "app/big.bin"}))
        .send()
        .await
        .expect("upload");
    assert_eq!(upload.status(), 201);
    assert_eq!(set_rules(&app, &owner, serde_json::from_str(RULES).expect("rules")).await.status(), 200);

    // Non-admins cannot run; as_of is for dry runs only.
    assert_eq!(run(&app, &owner, json!({"dry_run": true})).await.status(), 403);
    let in_8d = (app.clock_now() + Duration::days(8)).to_rfc3339_opts(SecondsFormat::Secs, true);
    assert_eq!(run(&app, &admin, json!({"dry_run": false, "as_of": in_8d})).await.status(), 400);

    // Today nothing is due; as of next week the old logs would go.
    let today: Value = run(&app, &admin, json!({"dry_run": true})).await.json().await.expect("json");
    assert!(keys(&today, "expired").is_empty() && today["aborted_uploads"] == 0, "{today}");
    let preview: Value = run(&app, &admin, json!({"dry_run": true, "as_of": in_8d})).await.json().await.expect("json");
    assert_eq!(keys(&preview, "expired"), ["app/a.log", "app/b.log"]);
    assert_eq!(keys(&preview, "skipped_locked"), ["app/held.log"]);
    assert_eq!(preview["aborted_uploads"], 1);
    assert_eq!(audit_count(&app, "lifecycle.expire").await, 0, "a dry run changes nothing");

    app.clock.advance(Duration::days(8));
    let (owner, admin) =
        (app.login("lena", &owner_password).await.access, app.login("ada", &admin_password).await.access);
    let dry: Value = run(&app, &admin, json!({"dry_run": true})).await.json().await.expect("json");
    let real_response = run(&app, &admin, json!({"dry_run": false})).await;
    assert_eq!(real_response.status(), 200);
    let real: Value = real_response.json().await.expect("json");
    for field in ["expired", "skipped_locked"] {
        assert_eq!(keys(&dry, field), keys(&real, field), "{field}");
    }
    assert_eq!((&dry["aborted_uploads"], &dry["bytes_freed"]), (&real["aborted_uploads"], &real["bytes_freed"]));
    assert_eq!(keys(&real, "expired"), keys(&preview, "expired"), "the preview foresaw it");

    for (key, status) in [("app/a.log", 404), ("app/b.log", 404), ("app/held.log", 200), ("keep/c.log", 200)] {
        let got = app.with_token(Method::GET, &object_path("logs", key), &owner).send().await.expect("get");
        assert_eq!(got.status(), status, "{key}");
    }
    assert_eq!(audit_count(&app, "lifecycle.expire").await, 2);
    let expire = app
        .services
        .store
        .audit_query(&AuditQuery { action: Some("lifecycle.expire".into()), limit: 1, ..Default::default() })
        .await
        .expect("audit");
    assert_eq!(expire[0].actor, "lifecycle");
    assert_eq!(expire[0].details["rule"], "old-logs");
    let again: Value = run(&app, &admin, json!({"dry_run": false})).await.json().await.expect("json");
    assert!(keys(&again, "expired").is_empty(), "a second run finds nothing new: {again}");
}

#[tokio::test]
async fn the_cli_runs_the_rules_once() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "lena", "logs").await.access;
    put(&app, &owner, "logs", "app/a.log", b"x".to_vec()).await;
    assert_eq!(set_rules(&app, &owner, serde_json::from_str(RULES).expect("rules")).await.status(), 200);
    let as_of = (chrono::Utc::now() + Duration::days(30)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let output = app.coffer_command().args(["lifecycle", "run", "--dry-run", "--as-of", &as_of]).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(keys(&report, "expired"), ["app/a.log"]);
    let refused = app.coffer_command().args(["lifecycle", "run", "--as-of", &as_of]).output().expect("run");
    assert_eq!(refused.status.code(), Some(2), "--as-of needs --dry-run");
    let real = app.coffer_command().args(["lifecycle", "run"]).output().expect("run");
    assert!(real.status.success());
    let report: Value = serde_json::from_slice(&real.stdout).expect("json report");
    assert!(keys(&report, "expired").is_empty(), "nothing is due today");
}

#[tokio::test]
async fn two_replicas_run_the_schedule_once() {
    let fast = |config: &mut coffer::config::Config| config.lifecycle_interval = StdDuration::from_secs(1);
    let first = spawn_app_with(fast).await;
    let mut config = first.config.clone();
    config.bind = "127.0.0.1:0".into();
    let second = first.replica_with(config).await;
    let owner = owner_with_bucket(&first, "lena", "logs").await.access;
    for n in 0..5 {
        put(&first, &owner, "logs", &format!("app/{n}.log"), b"x".to_vec()).await;
    }
    assert_eq!(set_rules(&first, &owner, serde_json::from_str(RULES).expect("rules")).await.status(), 200);
    // Both replicas see the same time; their schedule leases are held until that time moves.
    for app in [&first, &second] {
        app.clock.advance(Duration::days(10));
    }
    let deadline = std::time::Instant::now() + StdDuration::from_secs(20);
    while audit_count(&first, "lifecycle.expire").await < 5 {
        assert!(std::time::Instant::now() < deadline, "the schedule never ran");
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    // Several more ticks of both replicas' schedules.
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    assert_eq!(audit_count(&first, "lifecycle.expire").await, 5, "each object expired once");
    assert_eq!(audit_count(&first, "lifecycle.run").await, 1, "one replica ran, once");
}

#[tokio::test]
async fn a_run_waits_for_the_one_in_progress_even_on_its_own_replica() {
    let app = spawn_app().await;
    let admin = app.user_session("root", Role::Admin).await.access;
    let now = app.clock_now();
    // The scheduled run of this very replica, in progress.
    let lease = coffer::service::lifecycle::RUN_LEASE;
    let taken = app.services.store.acquire_lease(lease, &app.services.instance, now, now + Duration::hours(1)).await;
    assert!(taken.expect("lease"));
    let refused = run(&app, &admin, json!({"dry_run": false})).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.json::<Value>().await.expect("problem")["type"], "/problems/lifecycle-running");
    assert_eq!(run(&app, &admin, json!({"dry_run": true})).await.status(), 200, "a dry run changes nothing");
    app.services.store.release_lease(lease, &app.services.instance).await.expect("release");
    assert_eq!(run(&app, &admin, json!({"dry_run": false})).await.status(), 200);
}
