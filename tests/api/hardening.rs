//! Production hardening over HTTP: security headers on every response, CORS
//! off by default and from the allow-list, the content origin, request-size
//! limits and slow-client timeouts, and the metric families operators use.

use std::io::{Read, Write};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::objects::{owner_with_bucket, put};

const APP_ORIGIN: &str = "https://app.example";

fn assert_hardened(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("cross-origin-opener-policy"), "same-origin", "{what}");
    assert!(get("permissions-policy").contains("camera=()"), "{what}");
    let csp = get("content-security-policy");
    for directive in ["frame-ancestors 'none'", "base-uri 'none'"] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(csp.contains("object-src 'none'") || csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(headers.get("server").is_none(), "{what}: no Server banner");
    assert!(headers.get("x-request-id").is_some(), "{what}");
}

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "hana", "hardened").await.access;
    assert_eq!(put(&app, &owner, "hardened", "page.html", b"<script>1</script>".to_vec()).await.status(), 201);
    let object = app.with_token(Method::GET, "/api/v1/buckets/hardened/objects/page.html", &owner).send().await;
    let object = object.expect("get");
    assert_eq!(object.status(), 200);
    assert_hardened(&object, "object download");
    let csp = object.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("sandbox"), "the object's own CSP is kept: {csp}");

    for (path, status) in [
        ("/health/live", 200),
        ("/metrics", 200),
        ("/api/v1/me", 401),
        ("/api/v1/no/such/route", 404),
        ("/api/v1/openapi.json", 200),
        ("/api/docs", 200),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        assert_hardened(&response, path);
        assert!(response.headers().get("strict-transport-security").is_none(), "no HSTS over plain HTTP");
    }
    let wrong_method = app.client.patch(app.url("/health/live")).send().await.expect("patch");
    assert_eq!(wrong_method.status(), 405);
    assert_hardened(&wrong_method, "405");
}

#[tokio::test]
async fn hsts_is_sent_behind_tls_and_can_be_turned_off() {
    let app = spawn_app_with(|c| c.public_url = Some("https://coffer.example".into())).await;
    let response = app.get("/health/live").await;
    let hsts = response.headers()["strict-transport-security"].to_str().expect("hsts").to_owned();
    assert_eq!(hsts, "max-age=31536000; includeSubDomains");

    let proxied = spawn_app_with(|c| c.trust_forwarded_for = true).await;
    let plain = proxied.get("/health/live").await;
    assert!(plain.headers().get("strict-transport-security").is_none());
    let tls = proxied.client.get(proxied.url("/health/live")).header("x-forwarded-proto", "https").send().await;
    assert!(tls.expect("get").headers().get("strict-transport-security").is_some(), "TLS-terminating proxy");

    let off = spawn_app_with(|c| {
        c.public_url = Some("https://coffer.example".into());
        c.hsts_max_age = Duration::ZERO;
    })
    .await;
    assert!(off.get("/health/live").await.headers().get("strict-transport-security").is_none());
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;
    let response = preflight(&app, "/api/v1/buckets", APP_ORIGIN).await;
    assert!(response.headers().get("access-control-allow-origin").is_none());
    let get = app.client.get(app.url("/api/v1/me")).header("origin", APP_ORIGIN).send().await.expect("get");
    assert!(get.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_answers_only_allowed_app_origins() {
    let app = spawn_app_with(|c| c.cors_allowed_origins = format!("{APP_ORIGIN}, http://localhost:5173")).await;
    let allowed = preflight(&app, "/api/v1/buckets/b1/objects/a.txt", APP_ORIGIN).await;
    assert_eq!(allowed.status(), 204);
    assert_eq!(allowed.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert!(allowed.headers()["access-control-allow-methods"].to_str().expect("methods").contains("PUT"));
    assert!(allowed.headers()["access-control-allow-headers"].to_str().expect("headers").contains("authorization"));
    assert!(allowed.headers().get("access-control-allow-credentials").is_none(), "bearer tokens, no cookies");

    let stranger = preflight(&app, "/api/v1/buckets", "https://evil.example").await;
    assert!(stranger.headers().get("access-control-allow-origin").is_none());

    let owner = owner_with_bucket(&app, "cora", "cors-bucket").await.access;
    let listed = app.with_token(Method::GET, "/api/v1/buckets", &owner).header("origin", APP_ORIGIN).send().await;
    let listed = listed.expect("list");
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert!(listed.headers()["access-control-expose-headers"].to_str().expect("expose").contains("etag"));
    assert!(listed.headers()["vary"].to_str().expect("vary").contains("Origin"));
}

async fn presigned_get(app: &TestApp, token: &str) -> String {
    let body = json!({"bucket": "links", "key": "cat.txt", "method": "GET", "expires_in_seconds": 300});
    let response = app.with_token(Method::POST, "/api/v1/presign", token).json(&body).send().await.expect("presign");
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    body["url"].as_str().expect("url").to_owned()
}

#[tokio::test]
async fn presigned_and_share_links_work_cross_origin_when_configured() {
    let app = spawn_app_with(|c| c.cors_links_any_origin = true).await;
    let owner = owner_with_bucket(&app, "lina", "links").await.access;
    assert_eq!(put(&app, &owner, "links", "cat.txt", b"meow".to_vec()).await.status(), 201);
    let url = presigned_get(&app, &owner).await;
    let got = app.client.get(&url).header("origin", "https://anywhere.example").send().await.expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["access-control-allow-origin"], "*");
    // The API itself stays closed to other origins.
    let api = app.with_token(Method::GET, "/api/v1/buckets", &owner).header("origin", "https://anywhere.example");
    assert!(api.send().await.expect("list").headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn downloads_and_share_links_use_the_content_origin() {
    let app = spawn_app_with(|c| c.content_origin = Some("https://content.example".into())).await;
    let owner = owner_with_bucket(&app, "cody", "links").await.access;
    assert_eq!(put(&app, &owner, "links", "cat.txt", b"meow".to_vec()).await.status(), 201);
    let url = presigned_get(&app, &owner).await;
    assert!(url.starts_with("https://content.example/api/v1/buckets/links/objects/cat.txt?"), "{url}");
    let share = json!({"bucket": "links", "key": "cat.txt", "expires_in_seconds": 600});
    let response = app.with_token(Method::POST, "/api/v1/shares", &owner).json(&share).send().await.expect("share");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["url"].as_str().expect("url").starts_with("https://content.example/s/"), "{body}");
    let upload = json!({"bucket": "links", "key": "new.txt", "method": "PUT", "expires_in_seconds": 300});
    let response = app.with_token(Method::POST, "/api/v1/presign", &owner).json(&upload).send().await;
    let body: serde_json::Value = response.expect("presign").json().await.expect("json");
    assert!(body["url"].as_str().expect("url").starts_with(&app.address), "uploads stay on the API origin");
}

#[tokio::test]
async fn oversized_json_and_headers_are_refused() {
    let app = spawn_app_with(|c| c.max_json_bytes = 2048).await;
    let big = json!({"username": "x".repeat(4096), "password": "y"});
    let response = app.post_json("/api/v1/auth/login", big).await;
    assert_eq!(response.status(), 413);
    assert_hardened(&response, "413");

    let huge = "h".repeat(20 * 1024);
    let response = app.client.get(app.url("/health/live")).header("x-padding", huge).send().await.expect("get");
    assert_eq!(response.status(), 431);
    let body: serde_json::Value = response.json().await.expect("problem");
    assert_eq!(body["type"], "/problems/headers-too-large");
}

#[tokio::test]
async fn objects_over_the_size_limit_are_refused_before_reading_them() {
    let app = spawn_app_with(|c| c.max_object_bytes = 1024).await;
    let owner = owner_with_bucket(&app, "olga", "limited").await.access;
    let response = put(&app, &owner, "limited", "big.bin", vec![7; 4096]).await;
    assert_eq!(response.status(), 413);
}

/// A slowloris client sends its request head byte by byte and never finishes.
#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    let app = spawn_app_with(|c| c.client_request_timeout = Duration::from_millis(500)).await;
    let port = app.port;
    let outcome = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("write");
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let timed_out = read
            .as_ref()
            .is_err_and(|e| matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut));
        (timed_out, String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
    })
    .await
    .expect("join");
    let (timed_out, answer, waited) = outcome;
    assert!(!timed_out, "the server closed the connection");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(waited < Duration::from_secs(5), "cut off after the timeout, not the read timeout: {waited:?}");
}

/// A client that stops sending its upload's body is cut off after
/// `client_body_timeout`, with a 400, and nothing is stored; the connection
/// does not stay open until the backend's own timeouts.
#[tokio::test]
async fn an_upload_whose_client_stops_sending_is_ended_and_nothing_is_stored() {
    let app = spawn_app_with(|c| c.client_body_timeout = Duration::from_millis(700)).await;
    let owner = owner_with_bucket(&app, "stella", "stalled").await.access;
    let port = app.port;
    let token = owner.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let head = format!(
            "PUT /api/v1/buckets/stalled/objects/half.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 1000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("head");
        stream.write_all(&[7; 100]).expect("first bytes");
        let started = std::time::Instant::now();
        let mut answer = [0u8; 4096];
        let read = stream.read(&mut answer).expect("an answer before the read timeout");
        (String::from_utf8_lossy(&answer[..read]).into_owned(), started.elapsed())
    })
    .await
    .expect("join");
    let (answer, waited) = outcome;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("upload-interrupted"), "{answer}");
    assert!(waited >= Duration::from_millis(600) && waited < Duration::from_secs(10), "answered after {waited:?}");
    let missing = crate::objects::get(&app, &owner, "stalled", "half.bin").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn metrics_cover_the_listed_families() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "mona", "measured").await.access;
    assert_eq!(put(&app, &owner, "measured", "a.txt", b"hello".to_vec()).await.status(), 201);
    let text = app.get("/metrics").await.text().await.expect("text");
    for family in [
        "coffer_http_request_body_bytes_total",
        "coffer_http_response_body_bytes_total",
        "coffer_active_uploads",
        "coffer_storage_operation_duration_seconds_count{operation=\"put\"}",
        "coffer_cache_lookups_total",
        "coffer_cache_operation_duration_seconds_count{operation=",
        "coffer_database_operation_duration_seconds_count{operation=\"commit_object\"}",
        "coffer_logins_total",
        "coffer_build_info",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
}

/// CSRF: browsers attach cookies by themselves, never `Authorization`. Every
/// state-changing API route authenticates by bearer token only, so a request
/// carrying a valid token in a cookie (what a forged cross-site request could
/// carry at best) is refused. The refresh-token cookie routes (`/auth/*`) and
/// share links (the URL is the credential) are tested on their own.
#[tokio::test]
async fn state_changing_routes_ignore_cookies() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "carl", "cookies").await.access;
    let cookie = format!("access_token={owner}; token={owner}; coffer_session={owner}");
    let mut checked = 0;
    for (method, template) in coffer::http::routes::ROUTES {
        let public =
            template.starts_with("/api/v1/auth/") || template.starts_with("/s/") || !template.starts_with("/api/v1/");
        if public || matches!(*method, "GET" | "HEAD") {
            continue;
        }
        let path = coffer::http::routes::openapi_path(template)
            .replace("{bucket}", "cookies")
            .replace("{key}", "a.txt")
            .replace("{username}", "carl")
            .replace("{upload_id}", "u1")
            .replace("{n}", "1")
            .replace("{id}", "x1");
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .header("cookie", &cookie)
            .header("origin", "https://evil.example")
            .header("content-type", "application/json")
            .body(r#"{"name":"stolen","permission":"manage"}"#)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401, "{method} {path} must need a bearer token");
        checked += 1;
    }
    assert!(checked > 25, "only {checked} routes checked");
}

/// Found by `tests/fuzz.rs`: a query parameter whose name has a multi-byte
/// character across byte 9 used to panic the presign-signature parser.
#[tokio::test]
async fn a_non_ascii_query_name_is_an_ordinary_refusal() {
    let app = spawn_app().await;
    let port = app.port;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let request =
            "GET /api/v1/buckets/b1/objects/a.txt?X-Coffer\u{e9}=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("join");
    let status_line = answer.lines().next().unwrap_or_default().to_owned();
    assert!(status_line.starts_with("HTTP/1.1 4"), "{status_line:?}");
    assert_eq!(app.get("/health/live").await.status(), 200);
}

/// An S3 backend stores a streamed body in at most 10,000 parts: a body that
/// could never fit is refused from its declared length, before it is read,
/// not with a 502 after tens of GiB.
#[tokio::test]
async fn a_put_larger_than_the_backend_takes_in_one_request_is_refused_up_front() {
    let Some(env) = crate::support::s3_env() else { return };
    let app = spawn_app_with(|config| crate::support::use_s3(config, &env, "x/")).await;
    let owner = owner_with_bucket(&app, "huge", "huge-files").await.access;
    let too_big = app.services.blobs.max_put_bytes() + 1;
    assert!(too_big < app.config.max_object_bytes, "the backend, not max_object_bytes, is the bound here");
    let port = app.port;
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let head = format!(
            "PUT /api/v1/buckets/huge-files/objects/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {owner}\r\n\
             Content-Length: {too_big}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("write");
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).expect("status line");
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("join");
    assert_eq!(answer, "HTTP/1.1 413");
}

/// A stored script is never loaded as one: a page pointing `<script>` (or a
/// style sheet, or a worker) at an object, a share link or a signed URL is
/// refused, while navigations, downloads, media and plain clients are served.
#[tokio::test]
async fn stored_content_is_never_loaded_as_a_script() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "sid", "sid-files").await;
    let stored = app
        .with_token(Method::PUT, "/api/v1/buckets/sid-files/objects/x.js", &owner.access)
        .header("content-type", "application/javascript")
        .body("alert(document.domain)")
        .send()
        .await
        .expect("put");
    assert_eq!(stored.status(), 201);
    let link = app.with_token(Method::POST, "/api/v1/shares", &owner.access);
    let link = link.json(&json!({"bucket": "sid-files", "key": "x.js", "max_downloads": 1})).send().await;
    let link: serde_json::Value = link.expect("share").json().await.expect("json");
    let link = link["url"].as_str().expect("url").to_owned();
    let signed = app.with_token(Method::POST, "/api/v1/presign", &owner.access);
    let signed =
        signed.json(&json!({"bucket": "sid-files", "key": "x.js", "method": "GET", "expires_in_seconds": 600}));
    let signed = signed.send().await;
    let signed: serde_json::Value = signed.expect("presign").json().await.expect("json");
    let signed = signed["url"].as_str().expect("url").to_owned();
    let plain = crate::helpers::client();
    for destination in ["script", "style", "worker", "serviceworker"] {
        let direct = app.with_token(Method::GET, "/api/v1/buckets/sid-files/objects/x.js", &owner.access);
        let direct = direct.header("sec-fetch-dest", destination).send().await.expect("get");
        assert_eq!(direct.status(), 403, "{destination}");
        let shared = plain.get(&link).header("sec-fetch-dest", destination).send().await.expect("share");
        assert_eq!(shared.status(), 403, "{destination} through a link");
        let presigned = plain.get(&signed).header("sec-fetch-dest", destination).send().await.expect("signed");
        assert_eq!(presigned.status(), 403, "{destination} through a signed URL");
    }
    for destination in ["document", "empty", "image", "video"] {
        let direct = app.with_token(Method::GET, "/api/v1/buckets/sid-files/objects/x.js", &owner.access);
        let direct = direct.header("sec-fetch-dest", destination).send().await.expect("get");
        assert_eq!(direct.status(), 200, "{destination}");
    }
    let download = plain.get(&link).header("sec-fetch-dest", "document").send().await.expect("download");
    assert_eq!(download.status(), 200, "the refusals took none of the link's one download");
    assert_eq!(
        download.headers()["content-disposition"].to_str().expect("disposition").split(';').next(),
        Some("attachment")
    );
}
