//! The keyed audit chain: someone who can write the database but does not
//! hold the master key can neither edit nor append an event, nor move or
//! unseal the anchor, without verification saying so; a chain from before
//! the key (an upgrade) stays keyless until `coffer audit seal`, and a
//! process with another master key refuses to write into a sealed chain.

use coffer::domain::Role;
use coffer::domain::audit::AuditRecord;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, Tokens, run_with_input, spawn_app};

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

/// Runs `coffer <args>` and answers whether it succeeded and its stderr.
fn run_cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = app.coffer_command().args(args).output().expect("run");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

async fn create_bucket(app: &TestApp, admin: &Tokens, name: &str) -> AuditRecord {
    let created = app.with_token(Method::POST, "/api/v1/buckets", &admin.access).json(&json!({ "name": name }));
    assert_eq!(created.send().await.expect("create").status(), 201);
    records(app).await.pop().expect("the bucket's event")
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
async fn a_new_database_is_keyed_from_its_first_event() {
    let app = spawn_app().await;
    trail(&app).await;
    let anchor = app.services.store.audit_anchor().await.expect("anchor");
    assert_eq!(anchor.keyed_from, Some(1), "sealed before any event was written");
    assert!(anchor.seal_holds(app.services.store.chain_key()));
    for record in records(&app).await {
        assert_ne!(record.hash, keyless_hash(&record), "event {} is keyed", record.id);
    }
    assert_eq!(verify_cli(&app)["keyed_from"], 1);
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
    assert!(report["reason"].as_str().is_some_and(|r| r.contains("without the key")), "{report}");
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
    let (purged, stderr) = run_cli(&app, &["audit", "purge", "--before", "2000-01-01T00:00:00Z"]);
    assert!(!purged && stderr.contains("another master key"), "the CLI refuses to write: {stderr}");
    // And the store itself never re-seals a moved anchor where a purge moves it.
    let before = chrono::Utc::now();
    let first_kept = app.services.store.audit_first_kept(before).await.expect("cut");
    let purge = coffer::service::audit::purge_event(before, before);
    let refused = app.services.store.purge_audit(first_kept, &purge).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("seal")), "purged past a moved anchor");
    assert_eq!(app.services.store.audit_anchor().await.expect("anchor").first_id, kept.id, "nothing moved");
}

/// Rewrites the chain as an older Coffer left it: every event hashed without a key, no seal.
async fn unkey(app: &TestApp) {
    let mut prev = coffer::domain::audit::GENESIS_HASH.to_owned();
    let mut statements = String::new();
    for mut record in records(app).await {
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
}

#[tokio::test]
async fn a_chain_from_before_the_key_is_keyed_only_once_sealed_and_stays_so() {
    let app = spawn_app().await;
    let admin = trail(&app).await;
    unkey(&app).await;
    assert_eq!(verify_cli(&app)["ok"], true, "the keyless chain verifies");

    // A start (here: `coffer migrate`) never seals a chain that has events:
    // replicas of the older version may still be appending keyless ones.
    let (migrated, stderr) = run_cli(&app, &["migrate"]);
    assert!(migrated, "{stderr}");
    assert_eq!(app.services.store.audit_anchor().await.expect("anchor").keyed_from, None);
    let unsealed = create_bucket(&app, &admin, "delta").await;
    assert_eq!(unsealed.hash, keyless_hash(&unsealed), "keyless until sealed");

    let (sealed, stderr) = run_cli(&app, &["audit", "seal"]);
    assert!(sealed, "{stderr}");
    let (head_id, _) = app.services.store.audit_head().await.expect("head");
    let anchor = app.services.store.audit_anchor().await.expect("anchor");
    assert_eq!(anchor.keyed_from, Some(head_id + 1));
    let keyed = create_bucket(&app, &admin, "epsilon").await;
    assert_ne!(keyed.hash, keyless_hash(&keyed), "keyed once sealed");
    let report = verify_cli(&app);
    assert_eq!((report["ok"].as_bool(), report["keyed_from"].as_i64()), (Some(true), Some(head_id + 1)), "{report}");
    let (again, stderr) = run_cli(&app, &["audit", "seal"]);
    assert!(again && stderr.contains("already sealed"), "sealing again changes nothing: {stderr}");
    assert_eq!(app.services.store.audit_anchor().await.expect("anchor"), anchor);

    // Unsealing, to append keyless events again, is caught: the seal's own
    // checkpoint recorded the chain as keyed, and no start seals it again.
    app.execute_sql("UPDATE audit_anchor SET keyed_from = NULL, seal = NULL WHERE id = 1").await;
    let (migrated, stderr) = run_cli(&app, &["migrate"]);
    assert!(migrated, "{stderr}");
    assert_eq!(app.services.store.audit_anchor().await.expect("anchor").keyed_from, None, "not re-sealed");
    let checkpointed = app.services.checkpoint_audit(None).await.expect("checkpoint");
    assert_eq!(checkpointed, None, "the unsealed chain is not checkpointed as good");
    let report = verify_cli(&app);
    assert_eq!(report["ok"], false, "{report}");
    assert!(report["reason"].as_str().is_some_and(|r| r.contains("checkpoint")), "{report}");
}

#[tokio::test]
async fn a_process_with_another_master_key_writes_nothing_into_a_sealed_chain() {
    let app = spawn_app().await;
    trail(&app).await;
    let before = app.services.store.audit_head().await.expect("head");
    let other_key = "ab".repeat(32);
    let mut command = app.coffer_command();
    command.env("COFFER_MASTER_KEY", &other_key).args(["user", "create", "mallory", "--password-stdin"]);
    let created = run_with_input(&mut command, "a long enough password\n");
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(!created.status.success() && stderr.contains("another master key"), "{stderr}");
    assert_eq!(app.services.store.audit_head().await.expect("head"), before, "nothing appended");

    // Commands that only read never create a key of their own.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let output = app.coffer_command().env("COFFER_DATA_DIR", elsewhere.path()).args(["audit", "verify"]).output();
    output.expect("run");
    assert!(!elsewhere.path().join("master.key").exists(), "verify created a master key");
    // Without any key, verification says so rather than blaming another key.
    let output = app
        .coffer_command()
        .env("COFFER_DATA_DIR", elsewhere.path())
        .env("COFFER_DATABASE_URL", app.config.effective_database_url())
        .args(["audit", "verify"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("no master key is configured"), "{stderr}");
    assert!(!elsewhere.path().join("master.key").exists(), "verify created a master key");

    // Verification still runs with the wrong key, and says what is wrong.
    let output =
        app.coffer_command().env("COFFER_MASTER_KEY", &other_key).args(["audit", "verify"]).output().expect("run");
    let report: Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert!(!output.status.success());
    assert!(report["reason"].as_str().is_some_and(|r| r.contains("another master key")), "{report}");
    assert_eq!(verify_cli(&app)["ok"], true, "and the chain itself is intact");
}

#[tokio::test]
async fn no_start_seals_an_anchor_moved_while_unsealed() {
    let app = spawn_app().await;
    trail(&app).await;
    // A database writer unseals the chain, moves its anchor past the oldest
    // events and makes the head look empty, hoping a start seals that.
    let kept = records(&app).await.remove(2);
    app.execute_sql(&format!(
        "UPDATE audit_anchor SET keyed_from = NULL, seal = NULL, first_id = {id}, prev_hash = '{prev}' WHERE id = 1; \
         UPDATE audit_chain_head SET last_id = 0, last_hash = '{genesis}' WHERE id = 1",
        id = kept.id,
        prev = kept.prev_hash,
        genesis = coffer::domain::audit::GENESIS_HASH
    ))
    .await;
    let (migrated, stderr) = run_cli(&app, &["migrate"]);
    assert!(migrated, "{stderr}");
    let anchor = app.services.store.audit_anchor().await.expect("anchor");
    assert_eq!((anchor.keyed_from, anchor.seal), (None, None), "a start sealed a chain that was not untouched");
}

#[tokio::test]
async fn only_serve_or_a_brand_new_embedded_install_makes_a_master_key() {
    let app = spawn_app().await;
    trail(&app).await;
    // The servers' database, from a directory without their key.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let database = app.config.effective_database_url();
    let command = |args: &[&str]| {
        let mut command = app.coffer_command();
        command.env("COFFER_DATA_DIR", elsewhere.path()).env("COFFER_DATABASE_URL", &database).args(args);
        command.output().expect("run")
    };
    let created = command(&["lifecycle", "run", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(!created.status.success() && stderr.contains("no master key"), "{stderr}");
    let migrated = command(&["migrate"]);
    assert!(migrated.status.success(), "migrate writes no event: {}", String::from_utf8_lossy(&migrated.stderr));
    assert!(!elsewhere.path().join("master.key").exists(), "a command made a master key of its own");

    // A brand-new embedded install: the first admin comes before the first
    // start, and the key made for it is the one the server will use.
    let fresh = tempfile::tempdir().expect("tempdir");
    let in_fresh = || {
        let mut command = app.coffer_command();
        command.env("COFFER_DATA_DIR", fresh.path()).env_remove("COFFER_DATABASE_URL").env_remove("COFFER_STORAGE");
        command
    };
    let mut first_admin = in_fresh();
    first_admin.args(["user", "create", "root", "--role", "admin", "--password-stdin"]);
    let output = run_with_input(&mut first_admin, "Tr0ub4dor&3-brand-new-install\n");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(fresh.path().join("master.key").exists());
    let verified = in_fresh().args(["audit", "verify"]).output().expect("run");
    let report: Value = serde_json::from_slice(&verified.stdout).expect("json report");
    assert_eq!((report["ok"].as_bool(), report["keyed_from"].as_i64()), (Some(true), Some(1)), "{report}");
}

/// Checkpoints go on past a purge only when a sealed anchor vouches for it:
/// on a keyless chain, an anchor moved past the checkpointed event is what
/// deleting the oldest events to hide them looks like.
#[tokio::test]
async fn checkpoints_stop_when_a_keyless_anchor_is_moved_past_them() {
    let app = spawn_app().await;
    let admin = trail(&app).await;
    unkey(&app).await;
    let checkpoint = app.services.checkpoint_audit(None).await.expect("checkpoint").expect("written");
    create_bucket(&app, &admin, "later").await;
    let checkpointed = records(&app).await.into_iter().find(|r| r.id == checkpoint.id).expect("checkpointed event");
    app.execute_sql(&format!(
        "DELETE FROM audit_events WHERE id <= {id}; UPDATE audit_anchor SET first_id = {next}, prev_hash = '{hash}' WHERE id = 1",
        id = checkpoint.id,
        next = checkpoint.id + 1,
        hash = checkpointed.hash
    ))
    .await;
    let next = app.services.checkpoint_audit(Some(checkpoint.id)).await.expect("checkpoint");
    assert!(next.is_none(), "checkpointed past events removed without the key: {next:?}");
}
