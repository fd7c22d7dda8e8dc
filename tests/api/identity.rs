//! Identity and access over HTTP: login, lockout, tokens, MFA, API keys, grants, admin rules.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration as Span;
use coffer::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{TestApp, problem, spawn_app, strong_password};

pub(crate) fn totp_code(secret_base32: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret_base32).expect("base32 secret"))
        .build()
        .expect("totp");
    totp.generate(u64::try_from(at.timestamp()).expect("after epoch")).to_string()
}

/// Enrols and confirms TOTP for a session; returns (secret, recovery codes).
pub(crate) async fn enable_mfa(app: &TestApp, access: &str) -> (String, Vec<String>) {
    let enrol = app.with_token(Method::POST, "/api/v1/me/mfa/totp", access).send().await.expect("enrol");
    assert_eq!(enrol.status(), 200);
    let enrolment: Value = enrol.json().await.expect("json");
    let secret = enrolment["secret"].as_str().expect("secret").to_owned();
    assert!(enrolment["otpauth_url"].as_str().expect("url").starts_with("otpauth://totp/Coffer"));
    let png = base64::engine::general_purpose::STANDARD
        .decode(enrolment["qr_png_base64"].as_str().expect("qr"))
        .expect("base64");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let code = totp_code(&secret, app.clock_now());
    let confirm =
        app.with_token(Method::POST, "/api/v1/me/mfa/totp/confirm", access).json(&json!({"code": code})).send().await;
    let confirm = confirm.expect("confirm");
    assert_eq!(confirm.status(), 200);
    let body: Value = confirm.json().await.expect("json");
    let codes: Vec<String> =
        body["recovery_codes"].as_array().expect("codes").iter().map(|c| c.as_str().expect("str").to_owned()).collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

pub(crate) async fn login_body(app: &TestApp, username: &str, password: &str) -> (u16, Value) {
    let response = app.post_json("/api/v1/auth/login", json!({"username": username, "password": password})).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn login_issues_tokens_that_open_me() {
    let app = spawn_app().await;
    let password = app.create_user("alice", Role::User).await;
    let (status, body) = login_body(&app, "Alice", &password).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let access = body["access_token"].as_str().expect("token");
    let me: Value = app.get_json("/api/v1/me", access).await;
    assert_eq!(
        me,
        json!({"username": "alice", "role": "user", "mfa_enabled": false, "quota_bytes": null, "used_bytes": 0})
    );
    let anonymous = app.get("/api/v1/me").await;
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = spawn_app().await;
    let password = app.create_user("bob", Role::User).await;
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = login_body(&app, "bob", "not-the-password!").await;
        wrong.push(started.elapsed());
        assert_eq!(status, 401);
        let started = Instant::now();
        let (status, other) = login_body(&app, "nobody-here", "not-the-password!").await;
        unknown.push(started.elapsed());
        assert_eq!(status, 401);
        assert_eq!(body, other, "same body for both");
    }
    wrong.sort();
    unknown.sort();
    let ratio = unknown[1].as_secs_f64() / wrong[1].as_secs_f64();
    assert!((0.33..3.0).contains(&ratio), "median timings differ too much: {wrong:?} vs {unknown:?}");
    assert_eq!(login_body(&app, "bob", &password).await.0, 200);
}

#[tokio::test]
async fn five_failures_lock_the_account_until_the_window_passes() {
    let app = spawn_app().await;
    let password = app.create_user("carol", Role::User).await;
    for attempt in 1..=5 {
        assert_eq!(login_body(&app, "carol", "wrong-password-123").await.0, 401, "attempt {attempt}");
    }
    let locked = app.post_json("/api/v1/auth/login", json!({"username": "carol", "password": password})).await;
    assert_eq!(locked.status(), 429, "locked even with the right password");
    let retry_after: u64 = locked.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((800..=900).contains(&retry_after), "{retry_after}");
    app.clock.advance(Span::minutes(14));
    assert_eq!(login_body(&app, "carol", &password).await.0, 429);
    app.clock.advance(Span::minutes(2));
    assert_eq!(login_body(&app, "carol", &password).await.0, 200, "unlocked after 15 minutes");
    // Another account is not affected by carol's lock.
    let dave = app.create_user("dave", Role::User).await;
    assert_eq!(login_body(&app, "dave", &dave).await.0, 200);
}

#[tokio::test]
async fn the_client_address_is_throttled_with_a_higher_threshold() {
    let app = spawn_app_with_ip_threshold(8).await;
    let password = app.create_user("erin", Role::User).await;
    for n in 0..8 {
        assert_eq!(login_body(&app, &format!("probe-{n}"), "wrong-password-123").await.0, 401);
    }
    assert_eq!(login_body(&app, "erin", &password).await.0, 429, "address locked after 8 failures on many names");
}

async fn spawn_app_with_ip_threshold(threshold: u32) -> TestApp {
    crate::helpers::spawn_app_with(|config| config.ip_lockout_threshold = threshold).await
}

#[tokio::test]
async fn disabled_users_are_refused_and_their_credentials_die_at_once() {
    let app = spawn_app().await;
    let admin = app.user_session("root", Role::Admin).await;
    let password = app.create_user("frank", Role::User).await;
    let tokens = app.login("frank", &password).await;
    let key: Value = app.create_api_key(&tokens.access, json!({"name": "ci"})).await;
    let key = key["key"].as_str().expect("key").to_owned();
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &key).send().await.expect("me").status(), 200);
    let patch = app
        .with_token(Method::PATCH, "/api/v1/admin/users/frank", &admin.access)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patch.status(), 200);
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &tokens.access).send().await.expect("me").status(), 401);
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &key).send().await.expect("me").status(), 401);
    let refresh = app.post_json("/api/v1/auth/refresh", json!({"refresh_token": tokens.refresh})).await;
    assert_eq!(refresh.status(), 401);
    let (status, body) = login_body(&app, "frank", &password).await;
    assert_eq!((status, body["detail"].as_str()), (403, Some("this account is disabled")));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let first = app.user_session("gina", Role::User).await;
    let second: Value = app
        .post_json("/api/v1/auth/refresh", json!({"refresh_token": first.refresh}))
        .await
        .json()
        .await
        .expect("json");
    let second_refresh = second["refresh_token"].as_str().expect("rotated").to_owned();
    assert_ne!(second_refresh, first.refresh);
    let access = second["access_token"].as_str().expect("access");
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", access).send().await.expect("me").status(), 200);
    // Presenting the spent token again revokes every token of the family.
    let reused = app.post_json("/api/v1/auth/refresh", json!({"refresh_token": first.refresh})).await;
    assert_eq!(reused.status(), 401);
    let after = app.post_json("/api/v1/auth/refresh", json!({"refresh_token": second_refresh})).await;
    assert_eq!(after.status(), 401, "the newest token of the family died too");
    // Logout revokes a family; an unknown token still answers 204.
    let password = reset_password(&app, "gina").await;
    let session = app.login("gina", &password).await;
    assert_eq!(app.post_json("/api/v1/auth/logout", json!({"refresh_token": session.refresh})).await.status(), 204);
    assert_eq!(app.post_json("/api/v1/auth/refresh", json!({"refresh_token": session.refresh})).await.status(), 401);
    assert_eq!(app.post_json("/api/v1/auth/logout", json!({"refresh_token": "cfr_unknown"})).await.status(), 204);
}

async fn admin_principal(app: &TestApp) -> coffer::service::Principal {
    let tokens = app.user_session(&format!("admin-{}", uuid::Uuid::new_v4().simple()), Role::Admin).await;
    app.services.authenticate(&Default::default(), &tokens.access).await.expect("admin principal")
}

#[tokio::test]
async fn bad_access_tokens_are_401() {
    let app = spawn_app().await;
    let tokens = app.user_session("hank", Role::User).await;
    let parts: Vec<&str> = tokens.access.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("claims");
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let hs512_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
    let mut elevated = claims.clone();
    elevated["role"] = json!("admin");
    let elevated = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&elevated).expect("json"));
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not the server key, not at all!!"),
    )
    .expect("sign");
    let forged = [
        format!("{none_header}.{}.", parts[1]),
        format!("{hs512_header}.{}.{}", parts[1], parts[2]),
        format!("{}.{elevated}.{}", parts[0], parts[2]),
        wrong_key,
        "garbage".to_owned(),
    ];
    for token in forged {
        let response = app.with_token(Method::GET, "/api/v1/me", &token).send().await.expect("me");
        assert_eq!(response.status(), 401, "{token}");
        assert_eq!(problem(response).await["type"], "/problems/unauthenticated");
    }
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &tokens.access).send().await.expect("me").status(), 200);
    app.clock.advance(Span::minutes(16));
    assert_eq!(
        app.with_token(Method::GET, "/api/v1/me", &tokens.access).send().await.expect("me").status(),
        401,
        "expired"
    );
}

#[tokio::test]
async fn totp_mfa_codes_work_once_and_recovery_codes_once() {
    let app = spawn_app().await;
    let password = app.create_user("ivy", Role::User).await;
    let session = app.login("ivy", &password).await;
    let (secret, recovery) = enable_mfa(&app, &session.access).await;
    let me: Value = app.get_json("/api/v1/me", &session.access).await;
    assert_eq!(me["mfa_enabled"], true);

    // The password alone now only yields an mfa_token.
    app.clock.advance(Span::seconds(30));
    let (status, body) = login_body(&app, "ivy", &password).await;
    assert_eq!((status, &body["mfa_required"]), (200, &json!(true)));
    assert!(body.get("access_token").is_none());
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let code = totp_code(&secret, app.clock_now());
    let ok = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.expect("json");
    assert!(tokens["access_token"].is_string());

    // The same code is refused for the rest of its window, even in a new login.
    let (_, body) = login_body(&app, "ivy", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let replay = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(replay.status(), 401);
    // A recovery code works once.
    let recovery_ok = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": recovery[0]})).await;
    assert_eq!(recovery_ok.status(), 200);
    let (_, body) = login_body(&app, "ivy", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let recovery_again = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": recovery[0]})).await;
    assert_eq!(recovery_again.status(), 401);
    let lowercase = recovery[1].to_lowercase();
    assert_eq!(
        app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": lowercase})).await.status(),
        200
    );

    // Disabling needs a valid (fresh) code.
    let fresh = app.login_with_mfa("ivy", &password, &secret, Span::seconds(30)).await;
    let wrong =
        app.with_token(Method::DELETE, "/api/v1/me/mfa/totp", &fresh).json(&json!({"code": "000000"})).send().await;
    assert_eq!(wrong.expect("disable").status(), 400);
    app.clock.advance(Span::seconds(30));
    let code = totp_code(&secret, app.clock_now());
    let disable =
        app.with_token(Method::DELETE, "/api/v1/me/mfa/totp", &fresh).json(&json!({"code": code})).send().await;
    assert_eq!(disable.expect("disable").status(), 204);
    assert_eq!(login_body(&app, "ivy", &password).await.1["token_type"], "Bearer");
}

impl TestApp {
    /// Logs in through the MFA step after moving the clock on by `wait` (a fresh time step).
    pub(crate) async fn login_with_mfa(&self, username: &str, password: &str, secret: &str, wait: Span) -> String {
        self.clock.advance(wait);
        let (_, body) = login_body(self, username, password).await;
        let mfa_token = body["mfa_token"].as_str().expect("mfa token");
        let code = totp_code(secret, self.clock_now());
        let response = self.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
        let tokens: Value = response.json().await.expect("json");
        tokens["access_token"].as_str().expect("access").to_owned()
    }
}

#[tokio::test]
async fn an_mfa_token_dies_after_five_wrong_codes_or_five_minutes() {
    let app = spawn_app().await;
    let password = app.create_user("jack", Role::User).await;
    let session = app.login("jack", &password).await;
    let (secret, _) = enable_mfa(&app, &session.access).await;
    app.clock.advance(Span::seconds(30));
    let (_, body) = login_body(&app, "jack", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    for _ in 0..5 {
        let wrong = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": "123456"})).await;
        assert_eq!(wrong.status(), 401);
    }
    let code = totp_code(&secret, app.clock_now());
    let dead = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(dead.status(), 401, "the right code no longer helps");

    let (_, body) = login_body(&app, "jack", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    app.clock.advance(Span::minutes(6));
    let code = totp_code(&secret, app.clock_now());
    let expired = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(expired.status(), 401);
}

/// Guesses sent all at once get no more tries than guesses sent one by one:
/// each attempt is used up before its code is checked.
#[tokio::test]
async fn parallel_guesses_get_five_tries_in_all() {
    let app = spawn_app().await;
    let password = app.create_user("jill", Role::User).await;
    let session = app.login("jill", &password).await;
    let (secret, _) = enable_mfa(&app, &session.access).await;
    app.clock.advance(Span::seconds(30));
    let (_, body) = login_body(&app, "jill", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let guesses = (0..20).map(|_| app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": "zzzzzz"})));
    for answer in futures::future::join_all(guesses).await {
        assert_eq!(answer.status(), 401);
    }
    let query = coffer::metadata::AuditQuery {
        actor: Some("jill".into()),
        action: Some("auth.mfa_failed".into()),
        limit: 100,
        ..Default::default()
    };
    let checked = app.services.store.audit_query(&query).await.expect("audit").len();
    assert_eq!(checked, 5, "only five of the twenty codes were checked");
    let code = totp_code(&secret, app.clock_now());
    let dead = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(dead.status(), 401, "the challenge is spent");
}

/// Wrong codes count per account, whichever step they came through: a fresh
/// login does not buy more guesses, and neither does `DELETE /me/mfa/totp`.
#[tokio::test]
async fn wrong_codes_lock_the_second_factor_across_challenges() {
    let app = spawn_app().await;
    let password = app.create_user("kira", Role::User).await;
    let session = app.login("kira", &password).await;
    let (secret, _) = enable_mfa(&app, &session.access).await;
    for _ in 0..4 {
        let wrong = app.with_token(Method::DELETE, "/api/v1/me/mfa/totp", &session.access);
        assert_eq!(wrong.json(&json!({"code": "zzzzzz"})).send().await.expect("disable").status(), 400);
    }
    app.clock.advance(Span::seconds(30));
    let (_, body) = login_body(&app, "kira", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let fifth = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": "zzzzzz"})).await;
    assert_eq!(fifth.status(), 401);
    let (_, body) = login_body(&app, "kira", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let code = totp_code(&secret, app.clock_now());
    let locked = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(locked.status(), 429, "even the right code waits for the lock to end");
    assert!(locked.headers().contains_key("retry-after"));
    app.clock.advance(Span::minutes(16));
    let (_, body) = login_body(&app, "kira", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let code = totp_code(&secret, app.clock_now());
    let ok = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(ok.status(), 200, "the lock ends");
}

#[tokio::test]
async fn api_keys_are_scoped_hashed_and_revocable() {
    let app = spawn_app().await;
    let session = app.user_session("kate", Role::User).await;
    let create = |scopes: Value| {
        app.with_token(Method::POST, "/api/v1/me/api-keys", &session.access)
            .json(&json!({"name": "app", "scopes": scopes, "expires_in_days": 30}))
            .send()
    };
    let read_key: Value = create(json!(["read"])).await.expect("create").json().await.expect("json");
    let read_secret = read_key["key"].as_str().expect("key").to_owned();
    assert!(read_secret.starts_with("cfk_") && read_secret.len() >= 4 + 22, "≥128 bits");
    assert!(read_secret.starts_with(read_key["prefix"].as_str().expect("prefix")));
    assert_eq!(read_key["scopes"], json!(["read"]));

    // Read keys list but cannot create buckets; no key can mint keys.
    assert_eq!(app.with_token(Method::GET, "/api/v1/buckets", &read_secret).send().await.expect("list").status(), 200);
    let denied = app
        .with_token(Method::POST, "/api/v1/buckets", &read_secret)
        .json(&json!({"name": "from-read-key"}))
        .send()
        .await
        .expect("create bucket");
    assert_eq!(denied.status(), 403);
    let write_key: Value = create(json!(["write", "read"])).await.expect("create").json().await.expect("json");
    let write_secret = write_key["key"].as_str().expect("key");
    let bucket = app
        .with_token(Method::POST, "/api/v1/buckets", write_secret)
        .json(&json!({"name": "from-write-key"}))
        .send()
        .await
        .expect("create bucket");
    assert_eq!(bucket.status(), 201);
    let mint = app
        .with_token(Method::POST, "/api/v1/me/api-keys", write_secret)
        .json(&json!({"name": "more"}))
        .send()
        .await
        .expect("mint");
    assert_eq!(mint.status(), 403);

    // Listing never shows secrets; the database holds only a digest.
    let listed = app.with_token(Method::GET, "/api/v1/me/api-keys", &session.access).send().await.expect("list");
    let listed_text = listed.text().await.expect("text");
    assert!(!listed_text.contains(&read_secret) && listed_text.contains("\"last_used_at\""));
    let kate = app.services.store.user_by_name(&coffer::domain::Username::parse("kate").expect("name")).await;
    let stored = app.services.store.list_api_keys(kate.expect("user").expect("exists").id).await.expect("keys");
    assert!(stored.iter().all(|k| k.key_hash.len() == 64 && !read_secret.contains(&k.key_hash)));

    // Revocation works at once; others' keys cannot be revoked.
    let id = read_key["id"].as_str().expect("id");
    let other = app.user_session("liam", Role::User).await;
    let path = format!("/api/v1/me/api-keys/{id}");
    assert_eq!(app.with_token(Method::DELETE, &path, &other.access).send().await.expect("revoke").status(), 404);
    assert_eq!(app.with_token(Method::DELETE, &path, &session.access).send().await.expect("revoke").status(), 204);
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &read_secret).send().await.expect("me").status(), 401);

    // Expiry and invalid requests.
    let expiring: Value = create(json!(["read"])).await.expect("create").json().await.expect("json");
    app.clock.advance(Span::days(31));
    let expired = app.with_token(Method::GET, "/api/v1/me", expiring["key"].as_str().expect("key")).send().await;
    assert_eq!(expired.expect("me").status(), 401);
    let password = reset_password(&app, "kate").await;
    let session = app.login("kate", &password).await;
    for bad in [json!({"name": ""}), json!({"name": "x", "scopes": []}), json!({"name": "x", "expires_in_days": 0})] {
        let response = app
            .with_token(Method::POST, "/api/v1/me/api-keys", &session.access)
            .json(&bad)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 400, "{bad}");
    }
}

pub(crate) async fn reset_password(app: &TestApp, username: &str) -> String {
    let password = strong_password();
    let admin = admin_principal(app).await;
    let changes = coffer::service::users::UserChanges { password: Some(password.clone().into()), ..Default::default() };
    app.services.update_user(&Default::default(), &admin, username, changes).await.expect("reset");
    password
}

/// Guesses sent all at once are each counted before the password is hashed:
/// twenty parallel wrong passwords get five checks, and the lock they set
/// holds for the right password too.
#[tokio::test]
async fn parallel_login_guesses_get_five_checks() {
    let app = spawn_app().await;
    let password = app.create_user("lena", Role::User).await;
    let guesses = (0..20).map(|n| {
        app.post_json("/api/v1/auth/login", json!({"username": "lena", "password": format!("wrong guess {n}")}))
    });
    let statuses: Vec<u16> = futures::future::join_all(guesses).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
    assert_eq!(login_body(&app, "lena", &password).await.0, 429, "locked even with the right password");
    let query = coffer::metadata::AuditQuery {
        actor: Some("lena".into()),
        action: Some("auth.login_failed".into()),
        limit: 100,
        ..Default::default()
    };
    let failed = app.services.store.audit_query(&query).await.expect("audit");
    let checked = failed.iter().filter(|e| e.details["reason"] == "bad_credentials").count();
    assert_eq!(checked, 5, "only five of the twenty passwords were checked");
}

/// A password change ends every credential, as a reset does: API keys (one
/// minted with a stolen session must not outlive the change) and MFA steps
/// begun under the old password.
#[tokio::test]
async fn a_password_change_ends_api_keys_and_pending_mfa_steps() {
    let app = spawn_app().await;
    let password = app.create_user("mona", Role::User).await;
    let session = app.login("mona", &password).await;
    let created: Value = app.create_api_key(&session.access, json!({"name": "minted"})).await;
    let key = created["key"].as_str().expect("key").to_owned();
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &key).send().await.expect("me").status(), 200);
    let new_password = strong_password();
    let changed = app
        .with_token(Method::POST, "/api/v1/me/password", &session.access)
        .json(&json!({"current_password": password, "new_password": new_password}))
        .send()
        .await
        .expect("change");
    assert_eq!(changed.status(), 204);
    assert_eq!(app.with_token(Method::GET, "/api/v1/me", &key).send().await.expect("me").status(), 401);

    let session = app.login("mona", &new_password).await;
    let (secret, _) = enable_mfa(&app, &session.access).await;
    app.clock.advance(Span::seconds(30));
    let (_, body) = login_body(&app, "mona", &new_password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    let admin = app.user_session("root", Role::Admin).await;
    let reset = app
        .with_token(Method::PATCH, "/api/v1/admin/users/mona", &admin.access)
        .json(&json!({"password": strong_password()}))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), 200);
    let code = totp_code(&secret, app.clock_now());
    let step = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(step.status(), 401, "the MFA step begun before the reset ended with it");
}

/// A reset committed while the step's own request runs (its attempt claimed,
/// the user not yet read) ends the step too: staged by moving the token
/// generation on without the reset's cleanup of open steps.
#[tokio::test]
async fn an_mfa_step_completes_only_under_the_credentials_it_began_with() {
    let app = spawn_app().await;
    let password = app.create_user("mila", Role::User).await;
    let session = app.login("mila", &password).await;
    let (secret, _) = enable_mfa(&app, &session.access).await;
    app.clock.advance(Span::seconds(30));
    let (_, body) = login_body(&app, "mila", &password).await;
    let mfa_token = body["mfa_token"].as_str().expect("mfa token").to_owned();
    app.execute_sql("UPDATE users SET token_generation = token_generation + 1 WHERE username = 'mila'").await;
    let code = totp_code(&secret, app.clock_now());
    let step = app.post_json("/api/v1/auth/mfa", json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(step.status(), 401, "no tokens under credentials the step never saw");
}

/// A hash made under other parameters (older, weaker settings) is replaced
/// under the current ones at the next right login; answers that carry
/// credentials are never cached.
#[tokio::test]
async fn old_hashes_are_upgraded_at_login_and_token_answers_are_not_cached() {
    use argon2::password_hash::PasswordHasher as _;
    let app = spawn_app().await;
    app.create_user("nina", Role::User).await;
    let legacy = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8192, 3, 1, None).expect("params"),
    );
    let old_hash = legacy.hash_password(b"an older password!").expect("hash").to_string();
    app.execute_sql(&format!("UPDATE users SET password_hash = '{old_hash}' WHERE username = 'nina'")).await;
    let login =
        app.post_json("/api/v1/auth/login", json!({"username": "nina", "password": "an older password!"})).await;
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let name = coffer::domain::Username::parse("nina").expect("name");
    let user = app.services.store.user_by_name(&name).await.expect("user").expect("nina");
    assert!(user.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", user.password_hash);
    assert_eq!(login_body(&app, "nina", "an older password!").await.0, 200, "the new hash verifies");
}
