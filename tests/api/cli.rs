//! The binary itself: exit codes, one-line errors, redaction, graceful shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn coffer(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    for (name, _) in std::env::vars() {
        if name.starts_with("COFFER_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command.current_dir(dir).stdin(Stdio::null());
    command
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_is_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = coffer(dir.path()).arg("--version").output().expect("run");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("coffer {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn invalid_configuration_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.toml"), "bindd = \"127.0.0.1:1\"\n").expect("write");
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("COFFER_BIND", "nonsense")], vec!["config", "print"], "bind"),
        (vec![("COFFER_STORAGE", "s3")], vec!["config", "print"], "s3_bucket"),
        (vec![("COFFER_STORAGE", "tape")], vec!["config", "print"], "storage"),
        (vec![("COFFER_DATABASE_MAX_CONNECTIONS", "many")], vec!["config", "print"], "database_max_connections"),
        (vec![], vec!["--config", "bad.toml", "config", "print"], "bindd"),
        (vec![], vec!["--config", "missing.toml", "config", "print"], "--config"),
    ];
    for (env, args, key) in cases {
        let output = coffer(dir.path()).envs(env.clone()).args(&args).output().expect("run");
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{env:?} {args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(key), "{key} named in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn config_print_redacts_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = coffer(dir.path())
        .env("COFFER_DATABASE_URL", "postgres://app:hunter2-secret@db.internal/coffer")
        .env("COFFER_S3_SECRET_ACCESS_KEY", "s3-very-secret")
        .args(["config", "print"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr_of(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("bind = \"127.0.0.1:8080\""), "{printed}");
    assert!(printed.contains("postgres://app:[redacted]@db.internal/coffer"), "{printed}");
    assert!(!printed.contains("hunter2-secret") && !printed.contains("s3-very-secret"), "{printed}");

    let in_query = coffer(dir.path())
        .env("COFFER_DATABASE_URL", "postgres://db.internal/coffer?user=app&password=hunter3-secret&sslmode=require")
        .args(["config", "print"])
        .output()
        .expect("run");
    let printed = String::from_utf8_lossy(&in_query.stdout);
    assert!(printed.contains("?user=app&password=[redacted]&sslmode=require"), "{printed}");
    assert!(!printed.contains("hunter3-secret"), "{printed}");
}

#[test]
fn a_secret_of_digits_is_never_echoed_and_can_be_quoted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let numeric = coffer(dir.path()).env("COFFER_METRICS_TOKEN", "0082374982374982").args(["config", "print"]).output();
    let numeric = numeric.expect("run");
    assert!(!numeric.status.success(), "leading zeros would be lost: refused");
    let stderr = stderr_of(&numeric);
    assert!(stderr.contains("metrics_token") && !stderr.contains("82374982374982"), "{stderr}");
    let quoted =
        coffer(dir.path()).env("COFFER_METRICS_TOKEN", "\"0082374982374982\"").args(["config", "print"]).output();
    let quoted = quoted.expect("run");
    assert!(quoted.status.success(), "{}", stderr_of(&quoted));
}

#[test]
fn unreachable_database_at_start_exits_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let output = coffer(dir.path())
        .env("COFFER_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("COFFER_DATABASE_ACQUIRE_TIMEOUT", "2s")
        .env("COFFER_BIND", "127.0.0.1:0")
        .output()
        .expect("run");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("error: cannot open the database (postgres)")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = coffer(dir.path()).arg("migrate").output().expect("run");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(dir.path().join("data/coffer.db").exists());
    let again = coffer(dir.path()).arg("migrate").output().expect("run");
    assert!(again.status.success(), "migrating twice is fine");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = coffer(dir.path())
        .env("COFFER_BIND", format!("127.0.0.1:{port}"))
        .env("COFFER_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let client = crate::helpers::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("http://127.0.0.1:{port}/health/ready")).send().await.map(|r| r.status()).ok()
        != Some(reqwest::StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join");
    assert!(output.status.success(), "exit status {:?}", output.status);
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(logs.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "JSON logs: {logs}");
    assert!(logs.contains("coffer stopped gracefully"), "{logs}");
}

/// A rollback: the previous release opens a database that a newer one
/// migrated further (migrations only add; drops come a release later).
#[tokio::test]
async fn a_database_a_newer_release_migrated_still_opens() {
    let app = crate::helpers::spawn_app().await;
    let checksum = if app.config.effective_database_url().starts_with("sqlite:") { "X'00'" } else { "'\\x00'::bytea" };
    app.execute_sql(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101, 'from a newer release', TRUE, {checksum}, 0)"
    ))
    .await;
    let output = app.coffer_command().arg("migrate").output().expect("run");
    assert!(output.status.success(), "{}", stderr_of(&output));
}
