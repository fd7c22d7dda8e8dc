//! Dependencies failing at run time: readiness names them, and recovery needs no restart.

use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::helpers::{problem, spawn_app_with};
use crate::support::{self, proxy::Proxy};

async fn wait_for_status(
    app: &crate::helpers::TestApp,
    path: &str,
    status: u16,
    within: Duration,
) -> reqwest::Response {
    let deadline = Instant::now() + within;
    loop {
        let response = app.get(path).await;
        if response.status() == status || Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn unreachable_s3_endpoint_fails_readiness_naming_storage() {
    let app = spawn_app_with(|config| {
        let env = support::S3Env {
            endpoint: "http://127.0.0.1:1".into(),
            region: "garage".into(),
            bucket: "nowhere".into(),
            access_key_id: "GKnothing".into(),
            secret_access_key: "nothing".into(),
        };
        support::use_s3(config, &env, "x/");
        config.s3_connect_timeout = Duration::from_millis(300);
    })
    .await;
    let started = Instant::now();
    let response = app.get("/health/ready").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status(), 503);
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap_or_default().starts_with("storage:"), "{body}");
    assert_ne!(body["checks"]["storage"], "ok");
    assert_eq!(body["checks"]["database"], "ok");
}

#[tokio::test]
async fn wrong_s3_credentials_fail_readiness() {
    let Some(mut env) = support::s3_env() else { return };
    env.secret_access_key = "definitely-not-the-secret".into();
    let app = spawn_app_with(|config| support::use_s3(config, &env, "x/")).await;
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 503);
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap_or_default().contains("storage"), "{body}");
    assert_eq!(body["checks"]["storage"], "unavailable", "the reason is logged, not published");
    assert!(!body.to_string().contains(&env.bucket), "no backend names in a public answer: {body}");
}

#[tokio::test]
async fn database_outage_is_reported_and_recovers_without_restart() {
    let Some(admin) = support::postgres_admin_url() else { return };
    let url = support::create_database(&admin, "coffer_api_").await;
    let target: std::net::SocketAddr = "127.0.0.1:5432".parse().expect("addr");
    let proxy = Proxy::start(target).await;
    let proxied = url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(proxied, url, "COFFER_TEST_DATABASE_URL must point at 127.0.0.1:5432");
    let app = spawn_app_with(|config| config.database_url = Some(SecretString::from(proxied))).await;
    assert_eq!(app.get("/health/ready").await.status(), 200);

    proxy.cut();
    let started = Instant::now();
    let response = wait_for_status(&app, "/health/ready", 503, Duration::from_secs(5)).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let body = problem(response).await;
    assert!(body["detail"].as_str().unwrap_or_default().starts_with("database:"), "{body}");
    let started = Instant::now();
    let login =
        app.post_json("/api/v1/auth/login", serde_json::json!({"username": "x", "password": "yyyyyyyyyyyy"})).await;
    assert_eq!(login.status(), 503, "requests answer 503 while the database is away");
    assert!(started.elapsed() < Duration::from_secs(6), "fast failure: {:?}", started.elapsed());
    assert_eq!(problem(login).await["type"], "/problems/unavailable");

    proxy.restore();
    let response = wait_for_status(&app, "/health/ready", 200, Duration::from_secs(10)).await;
    assert_eq!(response.status(), 200, "recovers once the database is back");
    drop(app);
    support::drop_database_blocking(admin, url);
}
