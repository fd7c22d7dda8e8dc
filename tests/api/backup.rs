//! `coffer backup` / `coffer restore`: a dump loads into a fresh database of
//! either engine (SQLite always; PostgreSQL when the run has one), holds the
//! same rows, keeps its audit chain verifiable and serves the same accounts
//! and objects; a truncated dump or a non-empty target is refused and
//! changes nothing.

use std::collections::BTreeSet;
use std::path::Path;

use coffer::domain::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::objects::{get, object_path, put};
use crate::support::{create_database, postgres_admin_url};

fn coffer(app: &TestApp, database_url: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = app.coffer_command();
    if let Some(url) = database_url {
        command.env("COFFER_DATABASE_URL", url);
    }
    command.args(args).output().expect("run coffer")
}

fn succeed(output: std::process::Output, what: &str) {
    assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
}

/// The row lines of a dump, order-free (engines order text differently).
fn rows(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("read dump");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.first().is_some_and(|l| l.contains("\"coffer_backup\":1")), "header");
    assert!(lines.last().is_some_and(|l| l.contains("\"end\":true")), "trailer");
    lines[1..lines.len() - 1].iter().map(|l| (*l).to_owned()).collect()
}

#[tokio::test]
async fn a_backup_restores_into_a_fresh_database_of_either_engine() {
    let app = spawn_app().await;
    let password = app.create_user("bea", Role::User).await;
    let token = app.login("bea", &password).await.access;
    let created = app.with_token(Method::POST, "/api/v1/buckets", &token).json(&json!({"name": "kept"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    assert_eq!(put(&app, &token, "kept", "notes/a.txt", b"restored bytes".to_vec()).await.status(), 201);
    let key = app.with_token(Method::POST, "/api/v1/me/api-keys", &token).json(&json!({"name": "app"})).send().await;
    assert_eq!(key.expect("key").status(), 201);

    let dir = tempfile::tempdir().expect("dir");
    let dump = dir.path().join("coffer.jsonl");
    succeed(coffer(&app, None, &["backup", "--out", dump.to_str().expect("path")]), "backup");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dump).expect("dump").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the dump holds password hashes: owner-only");
    }
    let original = rows(&dump);
    assert!(original.iter().any(|r| r.contains("\"table\":\"users\"") && r.contains("\"bea\"")));
    assert!(original.iter().any(|r| r.contains("\"table\":\"audit_events\"")));

    let mut targets = vec![format!("sqlite://{}/restored.db", dir.path().display())];
    if let Some(admin) = postgres_admin_url() {
        targets.push(create_database(&admin, "coffer_backup_test").await);
    }
    for (n, target) in targets.iter().enumerate() {
        let restored = coffer(&app, Some(target), &["restore", "--from", dump.to_str().expect("path")]);
        succeed(restored, "restore");
        succeed(coffer(&app, Some(target), &["audit", "verify"]), "audit verify after restore");
        let again = dir.path().join(format!("again-{n}.jsonl"));
        succeed(coffer(&app, Some(target), &["backup", "--out", again.to_str().expect("path")]), "second backup");
        assert_eq!(rows(&again), original, "a restored database dumps the same rows ({target})");
        let twice = coffer(&app, Some(target), &["restore", "--from", dump.to_str().expect("path")]);
        assert!(!twice.status.success(), "a database holding data is refused");
        assert!(String::from_utf8_lossy(&twice.stderr).contains("empty database"));
    }

    // A dump made by SQLite loads into PostgreSQL too (the first pass loaded whatever this run's engine made).
    if let Some(admin) = postgres_admin_url() {
        let from_sqlite = dir.path().join("again-0.jsonl");
        let target = create_database(&admin, "coffer_backup_test").await;
        succeed(coffer(&app, Some(&target), &["restore", "--from", from_sqlite.to_str().expect("path")]), "restore");
        let after = dir.path().join("from-sqlite.jsonl");
        succeed(coffer(&app, Some(&target), &["backup", "--out", after.to_str().expect("path")]), "backup");
        assert_eq!(rows(&after), original, "SQLite → PostgreSQL");
    }

    // The restored SQLite database serves the same account and object over the same storage.
    let (data_dir, storage_config) = (app.config.data_dir.clone(), app.config.clone());
    let restored_url = targets[0].clone();
    let served = spawn_app_with(move |config| {
        let fresh_redis = config.redis_url.clone();
        let namespace = config.cache_namespace.clone();
        *config = storage_config;
        config.data_dir = data_dir;
        config.bind = "127.0.0.1:0".into();
        config.database_url = Some(restored_url.into());
        config.redis_url = fresh_redis;
        config.cache_namespace = namespace;
    })
    .await;
    let token = served.login("bea", &password).await.access;
    let body = get(&served, &token, "kept", "notes/a.txt").await.bytes().await.expect("body");
    assert_eq!(&body[..], b"restored bytes");
    let listed = served.with_token(Method::GET, &object_path("kept", "notes/a.txt"), &token).send().await;
    assert_eq!(listed.expect("get").status(), 200);
}

#[tokio::test]
async fn a_truncated_backup_is_refused_and_leaves_the_target_empty() {
    let app = spawn_app().await;
    app.create_user("tom", Role::User).await;
    let dir = tempfile::tempdir().expect("dir");
    let dump = dir.path().join("coffer.jsonl");
    succeed(coffer(&app, None, &["backup", "--out", dump.to_str().expect("path")]), "backup");
    let text = std::fs::read_to_string(&dump).expect("read");
    let without_trailer: Vec<&str> = text.lines().collect();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, without_trailer[..without_trailer.len() - 1].join("\n")).expect("write");
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "{\"not\": \"a backup\"}\n").expect("write");

    let target = format!("sqlite://{}/target.db", dir.path().display());
    for (file, message) in [(&cut, "incomplete"), (&garbage, "not a Coffer backup")] {
        let refused = coffer(&app, Some(&target), &["restore", "--from", file.to_str().expect("path")]);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains(message), "{message}");
    }
    // Nothing of the refused loads stayed behind: the whole file still restores.
    succeed(coffer(&app, Some(&target), &["restore", "--from", dump.to_str().expect("path")]), "restore");
    assert!(!dir.path().join("coffer.jsonl.partial").exists());
}

/// A backup of an older schema holds columns (and tables) a later migration
/// dropped: they are left out, where the same in a current backup is refused.
#[tokio::test]
async fn an_older_schemas_backup_restores_without_what_was_dropped_since() {
    let app = spawn_app().await;
    app.create_user("una", Role::User).await;
    let dir = tempfile::tempdir().expect("dir");
    let dump = dir.path().join("coffer.jsonl");
    succeed(coffer(&app, None, &["backup", "--out", dump.to_str().expect("path")]), "backup");
    let text = std::fs::read_to_string(&dump).expect("read");
    let mut lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let current = lines[0]["schema"].as_i64().expect("schema");
    let users = lines.iter().position(|l| l["table"] == "users").expect("a users row");
    lines[users]["row"]["password_failures"] = json!(0);
    let rows = lines.len() - 2;
    lines.insert(rows + 1, json!({"table": "legacy_counters", "row": {"id": 1}}));
    let trailer = lines.len() - 1;
    lines[trailer]["rows"] = json!(rows + 1);
    let mut write = |schema: i64, name: &str| {
        lines[0]["schema"] = json!(schema);
        let path = dir.path().join(name);
        let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        std::fs::write(&path, text.join("\n") + "\n").expect("write");
        path
    };
    let as_current = write(current, "current.jsonl");
    let target = |name: &str| format!("sqlite://{}/{name}.db", dir.path().display());
    let refused = coffer(&app, Some(&target("refused")), &["restore", "--from", as_current.to_str().expect("path")]);
    assert!(!refused.status.success(), "a current backup with a column this schema lacks is not one of ours");
    let as_older = write(current - 1, "older.jsonl");
    let restored = coffer(&app, Some(&target("older")), &["restore", "--from", as_older.to_str().expect("path")]);
    succeed(restored, "restore of an older schema's backup");
}

/// Ids continue after the last one the source handed out, deleted rows
/// included: an access token of a deleted account never comes back to life
/// as a new account that would otherwise get the same id after a restore.
#[tokio::test]
async fn a_restore_never_hands_out_an_id_again() {
    let app = spawn_app().await;
    let admin_password = app.create_user("root", Role::Admin).await;
    let admin = app.login("root", &admin_password).await.access;
    let password = app.create_user("gone", Role::User).await;
    let stale = app.login("gone", &password).await.access;
    let deleted = app.with_token(Method::DELETE, "/api/v1/admin/users/gone", &admin).send().await.expect("delete");
    assert_eq!(deleted.status(), 204);

    let dir = tempfile::tempdir().expect("dir");
    let dump = dir.path().join("coffer.jsonl");
    succeed(coffer(&app, None, &["backup", "--out", dump.to_str().expect("path")]), "backup");
    let text = std::fs::read_to_string(&dump).expect("read dump");
    assert!(text.lines().last().is_some_and(|l| l.contains("\"identities\":{")), "the trailer records identities");

    let mut targets = vec![format!("sqlite://{}/restored.db", dir.path().display())];
    if let Some(admin_url) = postgres_admin_url() {
        targets.push(create_database(&admin_url, "coffer_backup_test").await);
    }
    for target in targets {
        succeed(coffer(&app, Some(&target), &["restore", "--from", dump.to_str().expect("path")]), "restore");
        let storage_config = app.config.clone();
        let target_url = target.clone();
        let served = spawn_app_with(move |config| {
            let (redis, namespace) = (config.redis_url.clone(), config.cache_namespace.clone());
            *config = storage_config;
            config.bind = "127.0.0.1:0".into();
            config.database_url = Some(target_url.into());
            config.redis_url = redis;
            config.cache_namespace = namespace;
        })
        .await;
        served.create_user("gone", Role::User).await;
        let me = served.with_token(Method::GET, "/api/v1/me", &stale).send().await.expect("me");
        assert_eq!(me.status(), 401, "a deleted account's token opened a new one ({target})");
    }
}
