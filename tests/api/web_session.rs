//! Browser sessions: with `X-Coffer-Session: cookie` the refresh token lives in
//! an HttpOnly, SameSite=Strict cookie scoped to `/api/v1/auth`; cookie-based
//! refresh and logout need that header and a same-origin (or absent) `Origin`.

use reqwest::header::{COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app, spawn_app_with};

const SESSION: (&str, &str) = ("X-Coffer-Session", "cookie");

/// The `Set-Cookie` header for `coffer_refresh`, if any.
fn refresh_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("coffer_refresh="))
        .map(str::to_owned)
}

/// `name=value` of a `Set-Cookie` header (what a browser sends back).
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_owned()
}

async fn cookie_login(app: &TestApp, username: &str) -> (Value, String) {
    let password = app.create_user(username, coffer::domain::Role::User).await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header(SESSION.0, SESSION.1)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let cookie = refresh_cookie(&response).expect("refresh cookie");
    let body: Value = response.json().await.expect("json");
    (body, cookie)
}

async fn cookie_refresh(app: &TestApp, cookie: &str, origin: Option<&str>) -> reqwest::Response {
    let mut request =
        app.client.post(app.url("/api/v1/auth/refresh")).header(SESSION.0, SESSION.1).header(COOKIE, pair(cookie));
    if let Some(origin) = origin {
        request = request.header(ORIGIN, origin);
    }
    request.send().await.expect("refresh")
}

#[tokio::test]
async fn login_sets_an_http_only_strict_cookie_instead_of_a_body_token() {
    let app = spawn_app().await;
    let (body, cookie) = cookie_login(&app, "carol").await;
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "refresh token must not be in the body: {body}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/api/v1/auth"), "{cookie}");
    let ttl = app.config.refresh_token_ttl.as_secs();
    assert!(cookie.contains(&format!("Max-Age={ttl}")), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-http deployments cannot use Secure cookies: {cookie}");
    assert!(pair(&cookie).len() > "coffer_refresh=".len());

    // Without the header, the contract's JSON body is unchanged.
    let password = app.create_user("dave", coffer::domain::Role::User).await;
    let plain = app.post_json("/api/v1/auth/login", json!({"username": "dave", "password": password})).await;
    assert!(refresh_cookie(&plain).is_none());
    let plain: Value = plain.json().await.expect("json");
    assert!(plain["refresh_token"].is_string());
}

#[tokio::test]
async fn the_cookie_rotates_on_refresh_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let (_, first) = cookie_login(&app, "erin").await;
    let same_origin = app.address.clone();
    let refreshed = cookie_refresh(&app, &first, Some(&same_origin)).await;
    assert_eq!(refreshed.status(), 200);
    let second = refresh_cookie(&refreshed).expect("rotated cookie");
    assert_ne!(pair(&first), pair(&second));
    let body: Value = refreshed.json().await.expect("json");
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none());
    let me = app.with_token(reqwest::Method::GET, "/api/v1/me", body["access_token"].as_str().expect("token"));
    assert_eq!(me.send().await.expect("me").status(), 200);

    // Presenting the first cookie again is reuse: the whole family dies.
    assert_eq!(cookie_refresh(&app, &first, None).await.status(), 401);
    assert_eq!(cookie_refresh(&app, &second, None).await.status(), 401);
}

#[tokio::test]
async fn logout_revokes_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    let (_, cookie) = cookie_login(&app, "frank").await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header(SESSION.0, SESSION.1)
        .header(COOKIE, pair(&cookie))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 204);
    let cleared = refresh_cookie(&response).expect("clearing cookie");
    assert!(cleared.starts_with("coffer_refresh=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert!(cleared.contains("Path=/api/v1/auth"), "{cleared}");
    assert_eq!(cookie_refresh(&app, &cookie, None).await.status(), 401);

    // Logging out with no cookie left still answers 204 and clears it.
    let again = app.client.post(app.url("/api/v1/auth/logout")).header(SESSION.0, SESSION.1).send().await;
    assert_eq!(again.expect("logout").status(), 204);
}

#[tokio::test]
async fn a_foreign_origin_cannot_use_the_cookie() {
    let app = spawn_app().await;
    let (_, cookie) = cookie_login(&app, "grace").await;
    let foreign = cookie_refresh(&app, &cookie, Some("https://evil.example")).await;
    assert_eq!(foreign.status(), 403);
    assert!(refresh_cookie(&foreign).is_none());
    let problem = problem(foreign).await;
    assert_eq!(problem["status"], 403);

    let logout = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header(SESSION.0, SESSION.1)
        .header(COOKIE, pair(&cookie))
        .header(ORIGIN, "http://127.0.0.1:1")
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 403);

    // The refused attempts consumed nothing: the same-origin browser carries on.
    assert_eq!(cookie_refresh(&app, &cookie, Some(&app.address)).await.status(), 200);
}

#[tokio::test]
async fn without_the_header_the_cookie_is_ignored() {
    let app = spawn_app().await;
    let (_, cookie) = cookie_login(&app, "heidi").await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .header(COOKIE, pair(&cookie))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("refresh");
    assert_eq!(response.status(), 400);
    assert!(refresh_cookie(&response).is_none());
    let logout = app.client.post(app.url("/api/v1/auth/logout")).header(COOKIE, pair(&cookie)).send().await;
    assert_eq!(logout.expect("logout").status(), 400);
    // The session survived both attempts.
    assert_eq!(cookie_refresh(&app, &cookie, None).await.status(), 200);
}

#[tokio::test]
async fn https_deployments_get_secure_cookies_and_their_public_origin() {
    let app = spawn_app_with(|config| config.public_url = Some("https://files.example.com/".into())).await;
    let (_, cookie) = cookie_login(&app, "ivan").await;
    assert!(cookie.contains("Secure"), "{cookie}");
    let refreshed = cookie_refresh(&app, &cookie, Some("https://files.example.com")).await;
    assert_eq!(refreshed.status(), 200);
    assert!(refresh_cookie(&refreshed).is_some_and(|c| c.contains("Secure")));
}

#[tokio::test]
async fn the_ui_is_served_with_a_strict_csp_and_api_paths_stay_problems() {
    let app = spawn_app().await;
    for path in ["/", "/files/some-bucket/a/b", "/admin/audit"] {
        let response = app.get(path).await;
        let csp = response.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(csp, coffer::http::ui::UI_CSP, "{path}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        let cache = response.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(cache, "no-cache", "{path}");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/html"), "{path}: {content_type}");
        // Either the built app or the page saying how to build it.
        assert_eq!(response.status(), 200, "{path}");
        let page = response.text().await.expect("page");
        assert!(page.contains("<div id=\"root\">") || page.contains("UI not built"), "{path}: {page}");
        // HEAD announces what GET sends (RFC 9110 §9.3.2), without sending it.
        let head = app.client.head(app.url(path)).send().await.expect("head");
        let length = head.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(length, Some(page.len().to_string()), "{path}");
    }
    for path in ["/api/v1/no-such-route", "/s/", "/health/nope"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        problem(response).await;
    }
    assert_eq!(app.get("/assets/no-such-file.js").await.status(), 404);
    let posted = app.client.post(app.url("/files")).send().await.expect("post");
    assert_eq!(posted.status(), 404);
}
