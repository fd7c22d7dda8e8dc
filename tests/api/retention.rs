//! Retention and legal hold over HTTP: the mode × bypass matrix, who may
//! change what, every path that could remove a locked object, default
//! retention, bad input, and audit records with old and new values.

use chrono::{Duration, SecondsFormat, Utc};
use coffer::domain::Role;
use coffer::metadata::AuditQuery;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};
use crate::objects::{encode_key, object_path, put};

fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn set_retention(app: &TestApp, token: &str, key: &str, body: Value, bypass: bool) -> reqwest::Response {
    let mut request =
        app.with_token(Method::PUT, &format!("/api/v1/buckets/vault/retention/{}", encode_key(key)), token).json(&body);
    if bypass {
        request = request.header("X-Bypass-Governance-Retention", "true");
    }
    request.send().await.expect("retention")
}

async fn set_hold(app: &TestApp, token: &str, key: &str, status: &str) -> reqwest::Response {
    app.with_token(Method::PUT, &format!("/api/v1/buckets/vault/legal-hold/{}", encode_key(key)), token)
        .json(&json!({ "status": status }))
        .send()
        .await
        .expect("legal hold")
}

async fn delete(app: &TestApp, token: &str, key: &str) -> reqwest::Response {
    app.with_token(Method::DELETE, &object_path("vault", key), token).send().await.expect("delete")
}

async fn assert_locked(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = problem(response).await;
    assert!(body["type"].as_str().unwrap_or_default().ends_with("object-locked"), "{body}");
}

/// Owner (manage), a writer and an admin around the bucket `vault`; their
/// access tokens, fetched again with [`Crew::sessions`] once the clock has moved.
async fn vault(app: &TestApp) -> Crew {
    let owner_password = app.create_user("olga", Role::User).await;
    let owner = app.login("olga", &owner_password).await.access;
    let created = app
        .with_token(Method::POST, "/api/v1/buckets", &owner)
        .json(&json!({ "name": "vault" }))
        .send()
        .await
        .expect("create bucket");
    assert_eq!(created.status(), 201);
    let writer_password = app.create_user("walt", Role::User).await;
    app.grant(&owner, "vault", "walt", "write").await;
    let admin_password = app.create_user("ada", Role::Admin).await;
    Crew { passwords: [owner_password, writer_password, admin_password] }
}

struct Crew {
    passwords: [String; 3],
}

impl Crew {
    /// Fresh access tokens for the owner, the writer and the admin.
    async fn sessions(&self, app: &TestApp) -> (String, String, String) {
        let [owner, writer, admin] = &self.passwords;
        (
            app.login("olga", owner).await.access,
            app.login("walt", writer).await.access,
            app.login("ada", admin).await.access,
        )
    }
}

#[tokio::test]
async fn the_mode_and_bypass_matrix_holds_for_everyone_including_admins() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, writer, admin) = crew.sessions(&app).await;
    let now = app.clock_now();
    let (in_1d, in_2d, in_3d) =
        (rfc3339(now + Duration::days(1)), rfc3339(now + Duration::days(2)), rfc3339(now + Duration::days(3)));
    for key in ["gov.txt", "comp.txt"] {
        assert_eq!(put(&app, &owner, "vault", key, b"keep me".to_vec()).await.status(), 201);
    }

    // Writers may not set retention at all.
    let response =
        set_retention(&app, &writer, "gov.txt", json!({"mode": "GOVERNANCE", "retain_until": in_2d}), false).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // GOVERNANCE: extend freely; shorten/remove/switch only with manage + bypass.
    let set = set_retention(&app, &owner, "gov.txt", json!({"mode": "GOVERNANCE", "retain_until": in_2d}), false).await;
    assert_eq!(set.status(), 200);
    let view: Value = set.json().await.expect("json");
    assert_eq!((view["mode"].as_str(), view["active"].as_bool()), (Some("GOVERNANCE"), Some(true)));
    let shorter = json!({"mode": "GOVERNANCE", "retain_until": in_1d});
    assert_eq!(set_retention(&app, &owner, "gov.txt", shorter.clone(), false).await.status(), 403);
    assert_eq!(set_retention(&app, &writer, "gov.txt", shorter.clone(), true).await.status(), 403);
    assert_eq!(
        set_retention(&app, &owner, "gov.txt", json!({"mode": "COMPLIANCE", "retain_until": in_3d}), false)
            .await
            .status(),
        403
    );
    assert_eq!(
        set_retention(&app, &owner, "gov.txt", json!({"mode": "GOVERNANCE", "retain_until": in_3d}), false)
            .await
            .status(),
        200
    );
    assert_eq!(set_retention(&app, &owner, "gov.txt", shorter, true).await.status(), 200);
    assert_eq!(set_retention(&app, &admin, "gov.txt", json!(null), true).await.status(), 200);
    assert_eq!(delete(&app, &owner, "gov.txt").await.status(), 204, "governance removed with bypass, deletable");

    // A multipart upload begun before the lock, to be completed onto it later.
    let upload: Value = app
        .with_token(Method::POST, "/api/v1/buckets/vault/uploads", &owner)
        .json(&json!({ "key": "comp.txt" }))
        .send()
        .await
        .expect("create upload")
        .json()
        .await
        .expect("json");
    let upload_id = upload["upload_id"].as_str().expect("upload id");
    let part = app
        .with_token(Method::PUT, &format!("/api/v1/buckets/vault/uploads/{upload_id}/parts/1"), &owner)
        .body(b"multipart overwrite".to_vec())
        .send()
        .await
        .expect("part");
    let etag = part.json::<Value>().await.expect("json")["etag"].as_str().expect("etag").to_owned();
    // COMPLIANCE: only extension, for nobody else — admin and bypass included.
    let set =
        set_retention(&app, &owner, "comp.txt", json!({"mode": "COMPLIANCE", "retain_until": in_2d}), false).await;
    assert_eq!(set.status(), 200);
    for (token, bypass) in [(&owner, false), (&owner, true), (&admin, true)] {
        let shorter = json!({"mode": "COMPLIANCE", "retain_until": in_1d});
        assert_eq!(set_retention(&app, token, "comp.txt", shorter, bypass).await.status(), 403);
        assert_eq!(
            set_retention(&app, token, "comp.txt", json!({"mode": "GOVERNANCE", "retain_until": in_3d}), bypass)
                .await
                .status(),
            403
        );
        assert_eq!(set_retention(&app, token, "comp.txt", json!({}), bypass).await.status(), 403);
    }
    assert_eq!(
        set_retention(&app, &admin, "comp.txt", json!({"mode": "COMPLIANCE", "retain_until": in_3d}), false)
            .await
            .status(),
        200
    );
    let current: Value = app.get_json("/api/v1/buckets/vault/retention/comp.txt", &writer).await;
    assert_eq!(current["retain_until"].as_str(), Some(in_3d.as_str()));

    // Every path that would remove it is refused while it lasts.
    assert_locked(delete(&app, &admin, "comp.txt").await).await;
    assert_locked(put(&app, &owner, "vault", "comp.txt", b"overwrite".to_vec()).await).await;
    put(&app, &owner, "vault", "other.txt", b"x".to_vec()).await;
    let copy = app
        .with_token(Method::POST, "/api/v1/buckets/vault/copy/other.txt", &owner)
        .json(&json!({ "to_key": "comp.txt" }))
        .send()
        .await
        .expect("copy");
    assert_locked(copy).await;
    let complete = app
        .with_token(Method::POST, &format!("/api/v1/buckets/vault/uploads/{upload_id}/complete"), &owner)
        .json(&json!({ "parts": [{ "part_number": 1, "etag": etag }] }))
        .send()
        .await
        .expect("complete");
    assert!(complete.status() == StatusCode::CONFLICT, "multipart complete onto a locked key: {}", complete.status());
    let bucket_delete = app.with_token(Method::DELETE, "/api/v1/buckets/vault", &admin).send().await.expect("delete");
    assert_eq!(bucket_delete.status(), StatusCode::CONFLICT);
    let body = app.with_token(Method::GET, &object_path("vault", "comp.txt"), &owner).send().await.expect("get");
    assert_eq!(body.bytes().await.expect("bytes").as_ref(), b"keep me", "the locked bytes are intact");

    // Time, and only time, releases it.
    app.clock.advance(Duration::days(3) + Duration::seconds(1));
    let (owner, _, _) = crew.sessions(&app).await;
    assert_eq!(delete(&app, &owner, "comp.txt").await.status(), 204);

    // The bypass is audited with the old and new values; refusals are audited too.
    let events = app
        .services
        .store
        .audit_query(&AuditQuery { action: Some("object.retention_set".into()), limit: 100, ..Default::default() })
        .await
        .expect("audit");
    let bypassed = events
        .iter()
        .find(|e| e.details["governance_bypassed"] == json!(true) && e.details["new"].is_object())
        .expect("a bypass event");
    assert_eq!(bypassed.details["old"]["retain_until"].as_str().map(|s| &s[..19]), Some(&in_3d[..19]));
    assert_eq!(bypassed.details["new"]["retain_until"].as_str().map(|s| &s[..19]), Some(&in_1d[..19]));
    assert!(events.iter().any(|e| e.outcome == coffer::domain::audit::Outcome::Denied && e.actor == "ada"));
}

#[tokio::test]
async fn legal_hold_is_independent_of_retention_and_bypass_never_lifts_it() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, writer, _) = crew.sessions(&app).await;
    put(&app, &owner, "vault", "evidence.bin", b"exhibit A".to_vec()).await;
    assert_eq!(set_hold(&app, &writer, "evidence.bin", "ON").await.status(), 403);
    let set = set_hold(&app, &owner, "evidence.bin", "ON").await;
    assert_eq!(set.status(), 200);
    assert_eq!(set.json::<Value>().await.expect("json"), json!({"status": "ON"}));
    let until = rfc3339(app.clock_now() + Duration::days(1));
    assert_eq!(
        set_retention(&app, &owner, "evidence.bin", json!({"mode": "GOVERNANCE", "retain_until": until}), false)
            .await
            .status(),
        200
    );
    assert_eq!(set_retention(&app, &owner, "evidence.bin", json!(null), true).await.status(), 200);
    let delete_with_bypass = app
        .with_token(Method::DELETE, &object_path("vault", "evidence.bin"), &owner)
        .header("X-Bypass-Governance-Retention", "true")
        .send()
        .await
        .expect("delete");
    assert_locked(delete_with_bypass).await;
    app.clock.advance(Duration::days(400));
    let (owner, writer, _) = crew.sessions(&app).await;
    assert_locked(delete(&app, &owner, "evidence.bin").await).await;
    let held: Value = app.get_json("/api/v1/buckets/vault/legal-hold/evidence.bin", &writer).await;
    assert_eq!(held, json!({"status": "ON"}));
    assert_eq!(set_hold(&app, &owner, "evidence.bin", "OFF").await.status(), 200);
    assert_eq!(delete(&app, &writer, "evidence.bin").await.status(), 204);
}

/// Concurrent holds and releases are compared and set: the audit trail reads
/// as one chain (each event's `old` is the previous event's `new`) ending in
/// the status the object keeps.
#[tokio::test]
async fn concurrent_legal_hold_changes_audit_what_each_replaced() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, _, _) = crew.sessions(&app).await;
    put(&app, &owner, "vault", "contested.bin", b"exhibit B".to_vec()).await;
    let changes = (0..12).map(|n| set_hold(&app, &owner, "contested.bin", if n % 2 == 0 { "ON" } else { "OFF" }));
    for answer in futures::future::join_all(changes).await {
        assert!(matches!(answer.status().as_u16(), 200 | 409), "{}", answer.status());
    }
    let query =
        AuditQuery { action: Some("object.legal_hold_set".into()), ascending: true, limit: 100, ..Default::default() };
    let events = app.services.store.audit_query(&query).await.expect("audit");
    assert!(!events.is_empty());
    let mut status = json!(false);
    for event in &events {
        assert_eq!(event.details["old"], status, "{:?}", event.details);
        status = event.details["new"].clone();
    }
    let held: Value = app.get_json("/api/v1/buckets/vault/legal-hold/contested.bin", &owner).await;
    assert_eq!(held, json!({ "status": if status == json!(true) { "ON" } else { "OFF" } }));
}

#[tokio::test]
async fn default_retention_applies_to_objects_written_afterwards() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, writer, admin) = crew.sessions(&app).await;
    put(&app, &owner, "vault", "before.txt", b"1".to_vec()).await;
    let path = "/api/v1/buckets/vault/default-retention";
    let refused =
        app.with_token(Method::PUT, path, &writer).json(&json!({"mode": "COMPLIANCE", "days": 1})).send().await;
    assert_eq!(refused.expect("put").status(), 403);
    let set = app.with_token(Method::PUT, path, &owner).json(&json!({"mode": "COMPLIANCE", "days": 1})).send().await;
    assert_eq!(set.expect("put").status(), 200);
    let current: Value = app.get_json(path, &writer).await;
    assert_eq!(current, json!({"mode": "COMPLIANCE", "days": 1}));
    put(&app, &writer, "vault", "after.txt", b"2".to_vec()).await;
    assert_eq!(delete(&app, &owner, "before.txt").await.status(), 204);
    assert_locked(delete(&app, &owner, "after.txt").await).await;
    // Deleting the account that wrote it takes nothing of what it wrote.
    let gone = app.with_token(Method::DELETE, "/api/v1/admin/users/walt", &admin).send().await.expect("delete user");
    assert_eq!(gone.status(), 204);
    let still = app.with_token(Method::GET, &object_path("vault", "after.txt"), &owner).send().await.expect("get");
    assert_eq!(still.bytes().await.expect("bytes").as_ref(), b"2");
    let view: Value = app.get_json("/api/v1/buckets/vault/retention/after.txt", &owner).await;
    assert_eq!(view["mode"], "COMPLIANCE");
    let cleared = app.with_token(Method::PUT, path, &owner).json(&json!(null)).send().await.expect("clear");
    assert_eq!(cleared.status(), 200);
    put(&app, &owner, "vault", "later.txt", b"3".to_vec()).await;
    assert_eq!(delete(&app, &owner, "later.txt").await.status(), 204);
    let zero = app.with_token(Method::PUT, path, &owner).json(&json!({"mode": "COMPLIANCE", "days": 0})).send().await;
    assert_eq!(zero.expect("put").status(), 400);
}

#[tokio::test]
async fn a_default_retention_set_while_an_object_arrives_applies_to_it() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, writer, _) = crew.sessions(&app).await;
    // The write begins (its bucket read, with no rule yet), then stalls mid-body.
    let (sender, body) = futures::channel::mpsc::unbounded::<Result<bytes::Bytes, std::io::Error>>();
    sender.unbounded_send(Ok(bytes::Bytes::from_static(b"first half, "))).expect("send");
    let write = app
        .with_token(Method::PUT, &object_path("vault", "slow.txt"), &writer)
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let rule_then_rest = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let path = "/api/v1/buckets/vault/default-retention";
        let rule = app.with_token(Method::PUT, path, &owner).json(&json!({"mode": "COMPLIANCE", "days": 1}));
        assert_eq!(rule.send().await.expect("rule").status(), 200);
        sender.unbounded_send(Ok(bytes::Bytes::from_static(b"second half"))).expect("send");
        drop(sender);
    };
    let (written, ()) = tokio::join!(write, rule_then_rest);
    assert_eq!(written.expect("put").status(), 201);
    let view: Value = app.get_json("/api/v1/buckets/vault/retention/slow.txt", &owner).await;
    assert_eq!(view["mode"], "COMPLIANCE", "{view}");
    assert_locked(delete(&app, &owner, "slow.txt").await).await;
}

#[tokio::test]
async fn bad_retention_input_gets_a_clear_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, _, _) = crew.sessions(&app).await;
    put(&app, &owner, "vault", "doc.txt", b"x".to_vec()).await;
    let past = rfc3339(app.clock_now() - Duration::hours(1));
    let future = rfc3339(app.clock_now() + Duration::days(1));
    let cases = [
        json!({"mode": "GOVERNANCE"}),
        json!({"retain_until": future}),
        json!({"mode": "GOVERNANCE", "retain_until": past}),
        json!({"mode": "FOREVER", "retain_until": future}),
        json!({"mode": "GOVERNANCE", "retain_until": "next tuesday"}),
        json!({"mode": "GOVERNANCE", "retain_until": future, "extra": 1}),
    ];
    for body in cases {
        let response = set_retention(&app, &owner, "doc.txt", body.clone(), false).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    assert_eq!(set_hold(&app, &owner, "doc.txt", "MAYBE").await.status(), 400);
    assert_eq!(set_hold(&app, &owner, "missing.txt", "ON").await.status(), 404);
    assert_eq!(
        set_retention(&app, &owner, "missing.txt", json!({"mode": "GOVERNANCE", "retain_until": future}), false)
            .await
            .status(),
        404
    );
    assert_eq!(delete(&app, &owner, "doc.txt").await.status(), 204, "nothing was locked by the bad requests");
}

#[tokio::test]
async fn readiness_and_buckets_say_who_enforces_retention() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, _, _) = crew.sessions(&app).await;
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready["retention_enforcement"], "gateway", "neither the filesystem nor Garage has Object Lock");
    let buckets: Value = app.get_json("/api/v1/buckets", &owner).await;
    assert_eq!(buckets["buckets"][0]["retention_enforcement"], "gateway");
}

#[tokio::test]
async fn a_replica_whose_clock_runs_fast_still_honours_retention() {
    let app = spawn_app().await;
    let crew = vault(&app).await;
    let (owner, _, _) = crew.sessions(&app).await;
    assert_eq!(put(&app, &owner, "vault", "deed.txt", b"signed".to_vec()).await.status(), 201);
    let until = rfc3339(app.clock_now() + Duration::hours(1));
    let set = set_retention(&app, &owner, "deed.txt", json!({"mode": "COMPLIANCE", "retain_until": until}), false);
    assert_eq!(set.await.status(), 200);

    // Its own clock reads two hours ahead, past the retention; it follows the database's.
    let fast = app.replica_with_aligned_clock(Duration::hours(2)).await;
    let offset = (fast.clock_now() - app.clock_now()).num_minutes();
    assert!(offset >= 119, "the premise: {offset} minutes ahead");
    let aligned = coffer::clock::Clock::now(&*fast.services.clock);
    assert!((aligned - Utc::now()).num_seconds().abs() < 5, "aligned to {aligned}");
    let (owner_there, _, _) = crew.sessions(&fast).await;
    assert_locked(delete(&fast, &owner_there, "deed.txt").await).await;
    let view: Value = fast.get_json("/api/v1/buckets/vault/retention/deed.txt", &owner_there).await;
    assert_eq!(view["active"], true, "{view}");
    let metrics = fast.get("/metrics").await.text().await.expect("metrics");
    let line = metrics.lines().find(|l| l.starts_with("coffer_clock_offset_milliseconds ")).expect("offset metric");
    let reported: i64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number");
    assert!((reported + 7_200_000).abs() < 5_000, "{line}");
}
