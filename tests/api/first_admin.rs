//! The bootstrap path a person follows with curl: first admin by CLI, log in,
//! enrol TOTP (codes from an RFC 6238 generator), create a user, grant a bucket,
//! log in as that user.

use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{spawn_app, strong_password};

fn code_at(secret: &str, unix: i64) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).expect("base32"))
        .build()
        .expect("totp");
    totp.generate(u64::try_from(unix).expect("positive")).to_string()
}

fn create_with_cli(app: &crate::helpers::TestApp, username: &str, password: &str) -> std::process::Output {
    let mut command = app.coffer_command();
    command.args(["user", "create", username, "--role", "admin", "--password-stdin"]);
    crate::helpers::run_with_input(&mut command, &format!("{password}\n"))
}

#[tokio::test]
async fn first_admin_by_cli_then_everything_by_http() {
    let app = spawn_app().await;
    let weak = create_with_cli(&app, "root", "password");
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10 characters"));
    let admin_password = strong_password();
    let created = create_with_cli(&app, "root", &admin_password);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let login: Value = app
        .post_json("/api/v1/auth/login", json!({"username": "root", "password": admin_password}))
        .await
        .json()
        .await
        .expect("login");
    let admin = login["access_token"].as_str().expect("access token").to_owned();
    let auth = |method: reqwest::Method, path: &str, token: &str| app.with_token(method, path, token);

    let enrolment: Value = auth(reqwest::Method::POST, "/api/v1/me/mfa/totp", &admin)
        .send()
        .await
        .expect("enrol")
        .json()
        .await
        .expect("json");
    let secret = enrolment["secret"].as_str().expect("secret").to_owned();
    let now = app.clock_now().timestamp();
    let confirm = auth(reqwest::Method::POST, "/api/v1/me/mfa/totp/confirm", &admin)
        .json(&json!({"code": code_at(&secret, now)}))
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirm.status(), 200);

    app.clock.advance(chrono::Duration::seconds(30));
    let step_one: Value = app
        .post_json("/api/v1/auth/login", json!({"username": "root", "password": admin_password}))
        .await
        .json()
        .await
        .expect("login");
    assert_eq!(step_one["mfa_required"], true);
    let step_two: Value = app
        .post_json(
            "/api/v1/auth/mfa",
            json!({"mfa_token": step_one["mfa_token"], "code": code_at(&secret, app.clock_now().timestamp())}),
        )
        .await
        .json()
        .await
        .expect("mfa");
    let admin = step_two["access_token"].as_str().expect("access token").to_owned();

    let user_password = strong_password();
    let user = auth(reqwest::Method::POST, "/api/v1/admin/users", &admin)
        .json(&json!({"username": "wendy", "password": user_password, "role": "user"}))
        .send()
        .await
        .expect("create user");
    assert_eq!(user.status(), 201);
    let bucket =
        auth(reqwest::Method::POST, "/api/v1/buckets", &admin).json(&json!({"name": "team-share"})).send().await;
    assert_eq!(bucket.expect("bucket").status(), 201);
    let grant = auth(reqwest::Method::PUT, "/api/v1/buckets/team-share/grants/wendy", &admin)
        .json(&json!({"permission": "write"}))
        .send()
        .await
        .expect("grant");
    assert_eq!(grant.status(), 204);

    let wendy = app.login("wendy", &user_password).await;
    let buckets: Value = auth(reqwest::Method::GET, "/api/v1/buckets", &wendy.access)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(buckets["buckets"][0]["name"], "team-share");
    assert_eq!(buckets["buckets"][0]["permission"], "write");
}
