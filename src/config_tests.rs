//! Unit tests of the configuration: defaults, validation, redaction, README coverage.

use super::*;

#[test]
fn defaults_are_embedded() {
    let config = Config::default();
    config.validate().expect("defaults validate");
    assert_eq!(config.bind_addr().expect("bind").port(), 8080);
    assert!(config.effective_database_url().ends_with("data/coffer.db"));
    assert_eq!(config.effective_fs_root(), PathBuf::from("./data/objects"));
    assert_eq!(config.effective_public_url(), "http://127.0.0.1:8080");
}

#[test]
fn s3_requires_bucket_and_credentials() {
    let config = Config { storage: StorageKind::S3, ..Config::default() };
    let error = config.validate().expect_err("must fail");
    assert_eq!(error.key, "s3_bucket");
}

#[test]
fn bad_bind_names_the_key() {
    let config = Config { bind: "nonsense".into(), ..Config::default() };
    let error = config.validate().expect_err("must fail");
    assert_eq!(error.to_string(), "invalid configuration: bind: \"nonsense\" is not a host:port socket address");
}

#[test]
fn cache_bounds_must_admit_something() {
    for (config, key) in [
        (Config { cache_max_entries: 0, ..Config::default() }, "cache_max_entries"),
        (Config { cache_max_mib: 0, ..Config::default() }, "cache_max_mib"),
    ] {
        assert_eq!(config.validate().expect_err("must fail").key, key);
    }
}

#[test]
fn redacted_toml_hides_secrets() {
    let config = Config {
        database_url: Some("postgres://app:hunter2secret@db/coffer".to_owned().into()),
        s3_secret_access_key: Some("s3cr3t-value".to_owned().into()),
        redis_url: Some("redis://:pw@redis".to_owned().into()),
        ..Config::default()
    };
    let printed = config.to_redacted_toml();
    assert!(!printed.contains("hunter2secret"), "{printed}");
    assert!(!printed.contains("s3cr3t-value"), "{printed}");
    assert!(printed.contains("postgres://app:[redacted]@db/coffer"), "{printed}");
    assert!(printed.contains("s3_secret_access_key = \"[redacted]\""), "{printed}");
    assert!(!format!("{config:?}").contains("hunter2secret"));
}

#[test]
fn origins_are_checked() {
    assert!(is_origin("https://app.example"));
    assert!(is_origin("http://127.0.0.1:5173"));
    assert!(!is_origin("app.example"));
    assert!(!is_origin("https://app.example/path"));
    let config = Config { cors_allowed_origins: "https://a.example, https://b.example/".into(), ..Config::default() };
    assert_eq!(config.cors_origins(), vec!["https://a.example", "https://b.example"]);
    let bad = Config { cors_allowed_origins: "*".into(), ..Config::default() };
    assert_eq!(bad.validate().expect_err("must fail").key, "cors_allowed_origins");
}

#[test]
fn url_redaction_keeps_passwordless_urls() {
    assert_eq!(redact_url_password("sqlite://./data/coffer.db"), "sqlite://./data/coffer.db");
    assert_eq!(redact_url_password("postgres://root@127.0.0.1/test"), "postgres://root@127.0.0.1/test");
    assert_eq!(redact_url_password("postgres://u:p@ss@h/db"), "postgres://u:[redacted]@h/db", "a password with an @");
}

mod documentation {
    use super::super::Config;

    #[test]
    fn readme_documents_every_key() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let keys = serde_json::to_value(Config::default()).expect("serialize");
        for key in keys.as_object().expect("table").keys() {
            let env = format!("`COFFER_{}`", key.to_uppercase());
            assert!(readme.contains(&format!("| `{key}` | {env} |")), "README lacks a row for {key}");
        }
    }
}

#[test]
fn durations_stay_within_what_the_clock_can_add() {
    let huge = Duration::from_secs(1_000_000 * 365 * 24 * 3600);
    let window = Config { lockout_window: huge, ..Config::default() };
    assert_eq!(window.validate().expect_err("must fail").key, "lockout_window");
    let retention = Config { audit_min_retention: huge, ..Config::default() };
    assert_eq!(retention.validate().expect_err("must fail").key, "audit_min_retention");
    let instant = Config { shutdown_timeout: Duration::ZERO, ..Config::default() };
    assert_eq!(instant.validate().expect_err("must fail").key, "shutdown_timeout");
    let open = Config { metrics_token: Some(String::new().into()), ..Config::default() };
    assert_eq!(open.validate().expect_err("must fail").key, "metrics_token");
    let guessable = Config { metrics_token: Some("hunter2".into()), ..Config::default() };
    assert_eq!(guessable.validate().expect_err("must fail").key, "metrics_token");
    assert!(Config { metrics_token: Some("s".repeat(16).into()), ..Config::default() }.validate().is_ok());
    assert!(Config::default().validate().is_ok());
}
