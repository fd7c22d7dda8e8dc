//! The audit trail: recorded events, access rules, query, export, verification and tampering.

use chrono::Duration as Span;
use coffer::domain::Role;
use coffer::domain::audit::{AuditEntry, Outcome};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, Tokens, spawn_app};

fn entry(app: &TestApp, n: usize) -> AuditEntry {
    let actions = ["object.get", "object.put", "auth.login", "share.access", "presign.create"];
    AuditEntry {
        at: app.clock_now(),
        actor: format!("user-{}", n % 7),
        action: actions[n % actions.len()].to_owned(),
        bucket: n.is_multiple_of(3).then(|| format!("bucket-{}", n % 4)),
        key: n.is_multiple_of(2).then(|| format!("dir/file-{n}.txt")),
        outcome: if n.is_multiple_of(11) { Outcome::Denied } else { Outcome::Success },
        ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        request_id: Some(format!("req-{n}")),
        details: json!({ "n": n, "nested": { "b": [1, 2], "a": null } }),
    }
}

async fn auditor(app: &TestApp) -> Tokens {
    app.user_session(&format!("auditor-{}", uuid::Uuid::new_v4().simple()), Role::Auditor).await
}

/// The events of one page of the trail, each as `(action, field)`.
async fn events_with(app: &TestApp, token: &str, query: &str, field: &str) -> Vec<(String, String)> {
    let response = app.with_token(Method::GET, &format!("/api/v1/admin/audit?{query}"), token).send().await;
    let page: Value = response.expect("read").json().await.expect("json");
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    page["events"].as_array().expect("events").iter().map(|e| (text(&e["action"]), text(&e[field]))).collect()
}

async fn verify(app: &TestApp, token: &str) -> Value {
    let response = app.with_token(Method::GET, "/api/v1/admin/audit/verify", token).send().await.expect("verify");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// A thousand events of every kind: single appends, batches, and real changes.
async fn seed(app: &TestApp) {
    for n in 0..100 {
        app.services.store.append_audit(&entry(app, n)).await.expect("append");
    }
    let batch: Vec<AuditEntry> = (100..900).map(|n| entry(app, n)).collect();
    app.services.store.append_audit_batch(&batch).await.expect("batch");
    let admin = app.user_session("root", Role::Admin).await;
    for n in 0..20 {
        let name = format!("seeded-{n:02}");
        let created = app
            .with_token(Method::POST, "/api/v1/buckets", &admin.access)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("bucket");
        assert_eq!(created.status(), 201);
    }
    for n in 900..1000 {
        app.services.store.append_audit(&entry(app, n)).await.expect("append");
    }
}

#[tokio::test]
async fn the_chain_verifies_after_a_thousand_mixed_events() {
    let app = spawn_app().await;
    seed(&app).await;
    let auditor = auditor(&app).await;
    let result = verify(&app, &auditor.access).await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(result["checked"].as_u64().expect("checked") >= 1000, "{result}");
    assert_eq!(result["first_bad_id"], Value::Null);
}

async fn tampered(statement: impl Fn(i64) -> String) -> (Value, i64) {
    let app = spawn_app().await;
    seed(&app).await;
    let target = 500;
    app.execute_sql(&statement(target)).await;
    let auditor = auditor(&app).await;
    (verify(&app, &auditor.access).await, target)
}

#[tokio::test]
async fn an_edited_row_is_reported() {
    let (result, target) = tampered(|id| format!("UPDATE audit_events SET actor = 'mallory' WHERE id = {id}")).await;
    assert_eq!((result["ok"].as_bool(), result["first_bad_id"].as_i64()), (Some(false), Some(target)), "{result}");
    let (result, target) = tampered(|id| format!("UPDATE audit_events SET details = '{{}}' WHERE id = {id}")).await;
    assert_eq!(result["first_bad_id"].as_i64(), Some(target), "{result}");
}

#[tokio::test]
async fn a_deleted_row_is_reported() {
    let (result, target) = tampered(|id| format!("DELETE FROM audit_events WHERE id = {id}")).await;
    assert_eq!((result["ok"].as_bool(), result["first_bad_id"].as_i64()), (Some(false), Some(target)), "{result}");
}

#[tokio::test]
async fn swapped_rows_are_reported() {
    // Exchange the contents of two consecutive rows, keeping their ids in place.
    let (result, target) = tampered(|id| {
        let next = id + 1;
        let columns = "at, actor, action, bucket, object_key, outcome, ip, user_agent, request_id, details, prev_hash, hash";
        format!(
            "CREATE TABLE swap_tmp AS SELECT id, {columns} FROM audit_events WHERE id IN ({id}, {next}); \
             UPDATE audit_events SET ({columns}) = (SELECT {columns} FROM swap_tmp WHERE swap_tmp.id = {next}) WHERE id = {id}; \
             UPDATE audit_events SET ({columns}) = (SELECT {columns} FROM swap_tmp WHERE swap_tmp.id = {id}) WHERE id = {next}; \
             DROP TABLE swap_tmp;"
        )
    })
    .await;
    assert_eq!((result["ok"].as_bool(), result["first_bad_id"].as_i64()), (Some(false), Some(target)), "{result}");
}

#[tokio::test]
async fn truncating_the_newest_rows_is_caught_by_the_checkpoint() {
    let app = spawn_app().await;
    seed(&app).await;
    let auditor = auditor(&app).await;
    let checkpoint = app.services.checkpoint_audit(None).await.expect("checkpoint").expect("written");
    // Remove the newest rows and rewind the head so the database alone looks consistent.
    let keep = checkpoint.id - 10;
    app.execute_sql(&format!(
        "DELETE FROM audit_events WHERE id > {keep}; \
         UPDATE audit_chain_head SET last_id = {keep}, last_hash = (SELECT hash FROM audit_events WHERE id = {keep}) WHERE id = 1;"
    ))
    .await;
    let result = verify(&app, &auditor.access).await;
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["first_bad_id"].as_i64(), Some(keep + 1), "{result}");
    assert_eq!(result["checkpoint_id"].as_i64(), Some(checkpoint.id));
    // The next checkpoint (a restarted worker remembers nothing) must not launder the cut.
    let next = app.services.checkpoint_audit(None).await.expect("checkpoint");
    assert_eq!(next, None, "a checkpoint never moves back");
    let again = verify(&app, &auditor.access).await;
    assert_eq!(again["ok"], false, "still caught one interval later: {again}");
    assert_eq!(again["checkpoint_id"].as_i64(), Some(checkpoint.id));
}

#[tokio::test]
async fn concurrent_writers_on_two_instances_form_one_chain() {
    let app = spawn_app().await;
    let replica = app.replica().await;
    let mut tasks = Vec::new();
    for instance in [&app, &replica] {
        for worker in 0..8 {
            let store = instance.services.store.clone();
            let template = entry(instance, worker);
            tasks.push(tokio::spawn(async move {
                for n in 0..25 {
                    let mut event = template.clone();
                    event.request_id = Some(format!("w{worker}-{n}"));
                    store.append_audit(&event).await.expect("append");
                }
            }));
        }
    }
    // Real changes through both instances' HTTP interfaces at the same time.
    let admin_a = app.user_session("root-a", Role::Admin).await;
    let admin_b = app.user_session("root-b", Role::Admin).await;
    let creates = (0..10).map(|n| {
        let (target, token) = if n % 2 == 0 { (&app, &admin_a.access) } else { (&replica, &admin_b.access) };
        target
            .with_token(Method::POST, "/api/v1/buckets", token)
            .json(&json!({ "name": format!("parallel-{n}") }))
            .send()
    });
    for response in futures::future::join_all(creates).await {
        assert_eq!(response.expect("create").status(), 201);
    }
    for task in tasks {
        task.await.expect("writer");
    }
    let auditor = auditor(&replica).await;
    let result = verify(&app, &auditor.access).await;
    assert_eq!(result["ok"], true, "{result}");
    assert!(result["checked"].as_u64().expect("checked") >= 410, "{result}");
}

#[tokio::test]
async fn auditors_read_the_trail_and_nothing_else() {
    let app = spawn_app().await;
    let auditor = auditor(&app).await;
    let user = app.user_session("plain", Role::User).await;
    for path in ["/api/v1/admin/audit", "/api/v1/admin/audit/export", "/api/v1/admin/audit/verify"] {
        let allowed = app.with_token(Method::GET, path, &auditor.access).send().await.expect("auditor");
        assert_eq!(allowed.status(), 200, "{path}");
        let refused = app.with_token(Method::GET, path, &user.access).send().await.expect("user");
        assert_eq!(refused.status(), 403, "{path}");
    }
    // Filters are judged only for those who may read: a probe with a malformed one is refused, and on the record.
    for query in ["cursor=@@@", "since=yesterday", "limit=-1"] {
        for path in ["/api/v1/admin/audit", "/api/v1/admin/audit/export"] {
            let probe = app.with_token(Method::GET, &format!("{path}?{query}"), &user.access).send().await;
            assert_eq!(probe.expect("probe").status(), 403, "{path}?{query}");
            let malformed = app.with_token(Method::GET, &format!("{path}?{query}"), &auditor.access).send().await;
            assert_eq!(malformed.expect("auditor").status(), 400, "{path}?{query}");
        }
    }
    for (method, path, body) in [
        (Method::GET, "/api/v1/admin/users", Value::Null),
        (Method::POST, "/api/v1/buckets", json!({"name": "auditor-bucket"})),
        (Method::POST, "/api/v1/admin/users", json!({"username": "x", "password": "y", "role": "user"})),
    ] {
        let mut request = app.with_token(method, path, &auditor.access);
        if !body.is_null() {
            request = request.json(&body);
        }
        assert_eq!(request.send().await.expect("request").status(), 403, "{path}");
    }
    // The reads and the refusals are themselves in the trail.
    let actions = events_with(&app, &auditor.access, "limit=1000", "outcome").await;
    let has = |action: &str, outcome: &str| actions.contains(&(action.to_owned(), outcome.to_owned()));
    assert!(has("audit.read", "success"));
    assert!(has("audit.read", "denied"), "a user's refused read is recorded: {actions:?}");
    assert!(has("audit.export", "denied"), "and a refused export: {actions:?}");
    assert!(has("bucket.create", "denied"));
    assert!(has("user.create", "denied"));
}

#[tokio::test]
async fn queries_filter_and_page_newest_first() {
    let app = spawn_app().await;
    seed(&app).await;
    let auditor = auditor(&app).await;
    let get = |path: String| {
        let app = &app;
        let token = auditor.access.clone();
        async move {
            let response = app.with_token(Method::GET, &path, &token).send().await.expect("query");
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.expect("json")
        }
    };
    let page = get("/api/v1/admin/audit?actor=user-3&action=object.put&limit=5".into()).await;
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["actor"] == "user-3" && e["action"] == "object.put"));
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let next = get(format!(
        "/api/v1/admin/audit?actor=user-3&action=object.put&limit=5&cursor={}",
        page["next_cursor"].as_str().expect("cursor")
    ))
    .await;
    let next_ids: Vec<i64> =
        next["events"].as_array().expect("events").iter().map(|e| e["id"].as_i64().expect("id")).collect();
    assert!(next_ids.iter().all(|id| id < ids.last().expect("last")), "{next_ids:?}");
    let by_bucket = get("/api/v1/admin/audit?bucket=seeded-07".into()).await;
    assert_eq!(by_bucket["events"][0]["action"], "bucket.create");
    let future = (app.clock_now() + Span::hours(1)).to_rfc3339();
    let empty = get(format!("/api/v1/admin/audit?since={}", urlencode(&future))).await;
    assert_eq!(empty["events"], json!([]));
    let past = (app.clock_now() - Span::hours(1)).to_rfc3339();
    let none_before = get(format!("/api/v1/admin/audit?until={}", urlencode(&past))).await;
    assert_eq!(none_before["events"], json!([]));
    for bad in ["/api/v1/admin/audit?since=yesterday", "/api/v1/admin/audit?cursor=@@@", "/api/v1/admin/audit?limit=-1"]
    {
        let response = app.with_token(Method::GET, bad, &auditor.access).send().await.expect("query");
        assert_eq!(response.status(), 400, "{bad}");
    }
}

fn urlencode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn exports_stream_every_event_as_jsonl_or_csv() {
    let app = spawn_app().await;
    let batch: Vec<AuditEntry> = (0..5000).map(|n| entry(&app, n)).collect();
    app.services.store.append_audit_batch(&batch).await.expect("batch");
    // A hostile name typed at login is recorded as the actor, and must stay inert in CSV.
    let hostile = "=HYPERLINK(\"http://evil\",\"x\"),\"a\"";
    app.post_json("/api/v1/auth/login", json!({"username": hostile, "password": "whatever-password"})).await;
    let auditor = auditor(&app).await;

    let jsonl = app.with_token(Method::GET, "/api/v1/admin/audit/export?format=jsonl", &auditor.access).send().await;
    let jsonl = jsonl.expect("export");
    assert_eq!(jsonl.headers()["content-type"], "application/x-ndjson");
    assert!(jsonl.headers().get("content-length").is_none(), "streamed, not buffered");
    let text = jsonl.text().await.expect("body");
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(lines.len() >= 5001, "{}", lines.len());
    assert!(lines.windows(2).all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()), "oldest first");
    assert!(lines.iter().all(|l| l["hash"].as_str().is_some_and(|h| h.len() == 64)));

    let csv = app.with_token(Method::GET, "/api/v1/admin/audit/export?format=csv", &auditor.access).send().await;
    let csv = csv.expect("export").text().await.expect("body");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(reader.headers().expect("header").get(0), Some("id"));
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("valid csv")).collect();
    assert_eq!(rows.len(), lines.len() + 1, "the JSONL export itself was recorded before the CSV one");
    let hostile_row = rows.iter().find(|r| r[3] == *"auth.login_failed").expect("failed login row");
    assert!(hostile_row[2].starts_with("'="), "formula neutralized: {:?}", &hostile_row[2]);
    assert!(hostile_row[2].contains(",\"a\""), "commas and quotes kept inside one cell");
}

#[tokio::test]
async fn the_cli_verifies_and_purges_with_a_minimum_age() {
    let app = spawn_app().await;
    seed(&app).await;
    let checkpoint = app.services.checkpoint_audit(None).await.expect("checkpoint").expect("written");
    let verified = app.coffer_command().args(["audit", "verify"]).output().expect("run");
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let report: Value = serde_json::from_slice(&verified.stdout).expect("json report");
    assert_eq!((report["ok"].as_bool(), report["first_bad_id"].clone()), (Some(true), Value::Null), "{report}");

    // Events are younger than the default minimum retention (a year): refused.
    let now = chrono::Utc::now().to_rfc3339();
    let refused = app.coffer_command().args(["audit", "purge", "--before", &now]).output().expect("run");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must be kept at least"));

    // With a one-second minimum, events older than a second go; the chain still verifies from its new anchor.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = (chrono::Utc::now() - Span::seconds(1)).to_rfc3339();
    let purged = app
        .coffer_command()
        .env("COFFER_AUDIT_MIN_RETENTION", "1s")
        .args(["audit", "purge", "--before", &before])
        .output()
        .expect("run");
    assert!(purged.status.success(), "{}", String::from_utf8_lossy(&purged.stderr));
    assert!(String::from_utf8_lossy(&purged.stderr).contains("purged"), "{}", String::from_utf8_lossy(&purged.stderr));
    let first_id = app.services.store.audit_anchor().await.expect("anchor").first_id;
    assert!(first_id > 1000, "re-anchored at {first_id}");
    let auditor = auditor(&app).await;
    let result = verify(&app, &auditor.access).await;
    assert_eq!(result["ok"], true, "{result}");
    let purge_events: Value = app.get_json("/api/v1/admin/audit?action=audit.purge", &auditor.access).await;
    assert_eq!(purge_events["events"][0]["actor"], "cli");
    // The purge took the checkpointed event with it; checkpoints go on past it.
    assert!(checkpoint.id < first_id, "checkpoint {} purged", checkpoint.id);
    let next = app.services.checkpoint_audit(Some(checkpoint.id)).await.expect("checkpoint after the purge");
    assert!(next.is_some_and(|c| c.id >= first_id), "the worker checkpoints past a purge");

    app.execute_sql("UPDATE audit_events SET action = 'edited' WHERE action = 'audit.purge'").await;
    let broken = app.coffer_command().args(["audit", "verify"]).output().expect("run");
    assert_eq!(broken.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&broken.stdout).expect("json report");
    assert_eq!(report["ok"], false);
}

/// The CLI reads where a purge cuts before it verifies the chain, and the
/// purge deletes only the events below that cut: an event dated back while
/// the walk runs (past it) is never deleted unseen.
#[tokio::test]
async fn a_purge_deletes_only_below_the_cut_read_before_verification() {
    let app = spawn_app().await;
    seed(&app).await;
    let store = &app.services.store;
    let before = chrono::Utc::now() - Span::hours(1);
    let first_kept = store.audit_first_kept(before).await.expect("cut");
    let (head_id, _) = store.audit_head().await.expect("head");
    assert_eq!(first_kept, 1, "every seeded event is younger than an hour: nothing would go");
    // Mid-walk, all but the newest three events are dated back two hours
    // (`at` is in microseconds): a cut read now would take them.
    app.execute_sql(&format!("UPDATE audit_events SET at = at - 7200000000 WHERE id <= {}", head_id - 3)).await;
    let purge = coffer::service::audit::purge_event(chrono::Utc::now(), before);
    assert_eq!(store.purge_audit(first_kept, &purge).await.expect("purge"), 0, "nothing the walk did not see");
    assert_eq!(store.audit_anchor().await.expect("anchor").first_id, 1);
    // A cut past the chain's end (its newest events cut meanwhile) is refused.
    let (head_id_now, _) = store.audit_head().await.expect("head");
    let refused = store.purge_audit(head_id_now + 2, &purge).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("ends before the cut")));
    // A cut read now takes the dated-back events, and only them.
    let moved = store.audit_first_kept(before).await.expect("cut");
    assert_eq!(moved, head_id - 2);
    let deleted = store.purge_audit(moved, &purge).await.expect("purge at the cut it read");
    assert_eq!(deleted, u64::try_from(head_id - 3).expect("count"));
    assert_eq!(store.audit_anchor().await.expect("anchor").first_id, moved);
}

#[tokio::test]
async fn events_carry_the_id_of_the_request_that_caused_them() {
    let app = spawn_app().await;
    let admin = app.user_session("root", Role::Admin).await;
    let created = app
        .with_token(Method::POST, "/api/v1/buckets", &admin.access)
        .header("X-Request-Id", "trace-bucket-1")
        .json(&json!({ "name": "traced" }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let deleted = app.with_token(Method::DELETE, "/api/v1/buckets/traced", &admin.access).send().await.expect("delete");
    assert_eq!(deleted.status(), 204);
    let generated = deleted.headers()["x-request-id"].to_str().expect("ascii").to_owned();

    let auditor = auditor(&app).await;
    let ids = events_with(&app, &auditor.access, "bucket=traced", "request_id").await;
    assert!(ids.contains(&("bucket.create".into(), "trace-bucket-1".into())), "the client's id: {ids:?}");
    assert!(ids.contains(&("bucket.delete".into(), generated)), "the id Coffer answered with: {ids:?}");
}
