//! The keyed audit chain: someone who can write the database but does not
//! hold the master key can neither edit nor append an event, nor move the
//! anchor, without verification saying so; a chain from before the key
//! (an upgrade) verifies and is keyed from its next event on.

use coffer::domain::Role;
use coffer::domain::audit::AuditRecord;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, Tokens, spawn_app};

/// The hash anyone can compute: SHA-256 over the link and the record, as
/// events were hashed before the chain was keyed.
fn keyless_hash(record: &AuditRecord) -> String {
    let canonical = json!([
        record.id,
        record.at.timestamp_micros(),
        record.actor,
        record.action,
        record.bucket,
        record.key,
        record.outcome.as_str(),
        record.ip,
        record.user_agent,
        record.request_id,
        record.details.to_string(),
    ]);
    hex::encode(Sha256::digest(format!("{}{canonical}", record.prev_hash)))
}

async fn records(app: &TestApp) -> Vec<AuditRecord> {
    app.services.store.audit_after(0, 10_000).await.expect("read the chain")
}

/// Verification as `coffer audit verify` reports it.
fn verify_cli(app: &TestApp) -> Value {
    let output = app.coffer_command().args(["audit", "verify"]).output().expect("run");
    serde_json::from_slice(&output.stdout).expect("json report")
}

/// A trail of a few real events: an admin, buckets made and deleted.
async fn trail(app: &TestApp) -> Tokens {
    let admin = app.user_session("root", Role::Admin).await;
    for name in ["alpha", "beta", "gamma"] {
        let created = app.with_token(Method::POST, "/api/v1/buckets", &admin.access).json(&json!({"name": name}));
        assert_eq!(created.send().await.expect("create").status(), 201);
    }
    assert_eq!(verify_cli(app)["ok"], true);
    admin
}

#[tokio::test]
async fn an_event_rehashed_without_the_key_fails_verification() {
    let app = spawn_app().await;
    trail(&app).await;
    let mut last = records(&app).await.pop().expect("an event");
    last.action = "bucket.forged".into();
    let forged = keyless_hash(&last);
    app.execute_sql(&format!(
        "UPDATE audit_events SET action = 'bucket.forged', hash = '{forged}' WHERE id = {id}; \
         UPDATE audit_chain_head SET last_hash = '{forged}' WHERE id = 1",
        id = last.id
    ))
    .await;
    let report = verify_cli(&app);
    assert_eq!((report["ok"].as_bool(), report["first_bad_id"].as_i64()), (Some(false), Some(last.id)), "{report}");
}

#[tokio::test]
async fn an_anchor_moved_past_deleted_events_fails_verification() {
    let app = spawn_app().await;
    trail(&app).await;
    let kept = records(&app).await.remove(2);
    app.execute_sql(&format!(
        "DELETE FROM audit_events WHERE id < {id}; \
         UPDATE audit_anchor SET first_id = {id}, prev_hash = '{prev}' WHERE id = 1",
        id = kept.id,
        prev = kept.prev_hash
    ))
    .await;
    let report = verify_cli(&app);
    assert_eq!(report["ok"], false, "{report}");
    assert!(report["reason"].as_str().is_some_and(|r| r.contains("anchor")), "{report}");
}

#[tokio::test]
async fn a_chain_from_before_the_key_is_sealed_and_keyed_from_its_next_event() {
    let app = spawn_app().await;
    let admin = trail(&app).await;
    // As an older Coffer left it: every event hashed without a key, no seal.
    let mut prev = coffer::domain::audit::GENESIS_HASH.to_owned();
    let mut statements = String::new();
    for mut record in records(&app).await {
        record.prev_hash.clone_from(&prev);
        prev = keyless_hash(&record);
        statements.push_str(&format!(
            "UPDATE audit_events SET prev_hash = '{}', hash = '{prev}' WHERE id = {};",
            record.prev_hash, record.id
        ));
    }
    statements.push_str(&format!(
        "UPDATE audit_chain_head SET last_hash = '{prev}' WHERE id = 1; \
         UPDATE audit_anchor SET keyed_from = NULL, seal = NULL WHERE id = 1"
    ));
    app.execute_sql(&statements).await;
    let (head_id, _) = app.services.store.audit_head().await.expect("head");

    // The first start after the upgrade (here: migrating again) seals the anchor.
    app.services.store.migrate().await.expect("migrate");
    let anchor = app.services.store.audit_anchor().await.expect("anchor");
    assert_eq!(anchor.keyed_from, head_id + 1);
    assert_eq!(verify_cli(&app)["ok"], true, "the keyless past verifies");

    let created = app.with_token(Method::POST, "/api/v1/buckets", &admin.access).json(&json!({"name": "delta"}));
    assert_eq!(created.send().await.expect("create").status(), 201);
    let newest = records(&app).await.pop().expect("newest");
    assert!(newest.id > head_id);
    assert_ne!(newest.hash, keyless_hash(&newest), "new events are keyed");
    assert_eq!(verify_cli(&app)["ok"], true, "{}", verify_cli(&app));
}
