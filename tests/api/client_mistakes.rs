//! Malformed client input answered as the client's mistake on every backend:
//! a 4xx problem, never a 500, and never read as if it were absent.

use coffer::domain::Role;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::json;

use crate::helpers::{problem, spawn_app};
use crate::objects::{get, object_path, owner_with_bucket, put};

/// The last path segment of a problem's `type`.
async fn slug(response: reqwest::Response) -> String {
    let body = problem(response).await;
    body["type"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned()
}

/// PostgreSQL cannot store a NUL character; SQLite can. Either way a NUL in a
/// name, id, cursor or filter is the client's mistake.
#[tokio::test]
async fn nul_characters_in_names_ids_cursors_and_filters_are_client_errors() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "nula", "nula-files").await;
    let admin = app.user_session("nuladmin", Role::Admin).await;

    let login =
        app.post_json("/api/v1/auth/login", json!({"username": "nula\u{0}", "password": "not-the-password"})).await;
    assert_eq!(login.status(), 401, "an unknown name, as any other");
    problem(login).await;

    for (token, method, path) in [
        (&owner.access, Method::DELETE, "/api/v1/shares/%00"),
        (&owner.access, Method::DELETE, "/api/v1/me/api-keys/%00"),
        (&owner.access, Method::DELETE, "/api/v1/buckets/nula-files/uploads/%00"),
    ] {
        let response = app.with_token(method.clone(), path, token).send().await.expect("send");
        let status = response.status().as_u16();
        assert!(matches!(status, 400 | 404), "{method} {path}: {status}");
        problem(response).await;
    }

    let cursor = app.with_token(Method::GET, "/api/v1/buckets/nula-files/objects?cursor=AA", &owner.access);
    let cursor = cursor.send().await.expect("list");
    assert_eq!(cursor.status(), 400);
    assert_eq!(slug(cursor).await, "invalid-cursor");

    for filter in ["actor=%00", "action=a%00b", "bucket=%1F", &format!("actor={}", "a".repeat(257))] {
        let audit = app.with_token(Method::GET, &format!("/api/v1/admin/audit?{filter}"), &admin.access);
        let audit = audit.send().await.expect("audit");
        assert_eq!(audit.status(), 400, "{filter}");
        assert_eq!(slug(audit).await, "invalid-filter");
    }
}

/// A checksum or type header that is not ASCII is refused, not skipped.
#[tokio::test]
async fn garbled_upload_headers_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "gabe", "gabe-files").await;
    let garbled = HeaderValue::from_bytes(b"\xe9t\xe9").expect("obs-text is a valid header value");
    for (header, expected) in
        [("content-md5", "bad-digest"), ("x-checksum-sha256", "bad-digest"), ("content-type", "invalid-content-type")]
    {
        let stored = app
            .with_token(Method::PUT, &object_path("gabe-files", "garbled.txt"), &owner.access)
            .header(header, garbled.clone())
            .body("checked bytes")
            .send()
            .await
            .expect("put");
        assert_eq!(stored.status(), 400, "{header}");
        assert_eq!(slug(stored).await, expected, "{header}");
    }
    assert_eq!(get(&app, &owner.access, "gabe-files", "garbled.txt").await.status(), 404, "nothing was stored");
}

/// An `If-Match` whose tag is not ASCII matches no object: 412, not the object.
#[tokio::test]
async fn an_if_match_beyond_ascii_fails_the_precondition() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "iris", "iris-files").await;
    assert_eq!(put(&app, &owner.access, "iris-files", "tagged.txt", b"tagged".to_vec()).await.status(), 201);
    for tag in [&b"\"\xc3\xa9t\xc3\xa9\""[..], &b"\"\xe9t\xe9\""[..]] {
        let read = app
            .with_token(Method::GET, &object_path("iris-files", "tagged.txt"), &owner.access)
            .header("if-match", HeaderValue::from_bytes(tag).expect("obs-text"))
            .send()
            .await
            .expect("get");
        assert_eq!(read.status(), 412, "{tag:?}");
    }
}

/// A retention that would outlive every reader (year 9999) is refused.
#[tokio::test]
async fn retention_beyond_a_century_is_refused() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "rhea", "rhea-files").await;
    assert_eq!(put(&app, &owner.access, "rhea-files", "kept.txt", b"kept".to_vec()).await.status(), 201);
    let retain = |until: String| {
        app.with_token(Method::PUT, "/api/v1/buckets/rhea-files/retention/kept.txt", &owner.access)
            .json(&json!({"mode": "COMPLIANCE", "retain_until": until}))
            .send()
    };
    let forever = retain("9999-12-31T00:00:00Z".into()).await.expect("retention");
    assert_eq!(forever.status(), 400);
    assert_eq!(slug(forever).await, "invalid-retention");
    let in_a_year = (app.clock_now() + chrono::Duration::days(365)).to_rfc3339();
    assert_eq!(retain(in_a_year).await.expect("retention").status(), 200);
}

/// Share passwords may be any Unicode; sent raw in the header, they open the link.
#[tokio::test]
async fn a_unicode_share_password_works_in_the_header() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "uma", "uma-files").await;
    assert_eq!(put(&app, &owner.access, "uma-files", "secret.txt", b"behind a password".to_vec()).await.status(), 201);
    let created = app
        .with_token(Method::POST, "/api/v1/shares", &owner.access)
        .json(&json!({"bucket": "uma-files", "key": "secret.txt", "password": "mot de passe é ✓"}))
        .send()
        .await
        .expect("share");
    assert_eq!(created.status(), 201);
    let url = created.json::<serde_json::Value>().await.expect("json")["url"].as_str().expect("url").to_owned();
    let password = HeaderValue::from_bytes("mot de passe é ✓".as_bytes()).expect("UTF-8 bytes are obs-text");
    let opened = reqwest::Client::new().get(&url).header("x-share-password", password).send().await.expect("get");
    assert_eq!(opened.status(), 200);
    assert_eq!(opened.text().await.expect("body"), "behind a password");
}

/// A user holds a bounded number of live API keys (their list is answered whole).
#[tokio::test]
async fn api_keys_per_user_are_bounded_and_revoking_one_makes_room() {
    let app = spawn_app().await;
    let session = app.user_session("kira", Role::User).await;
    let create = |name: String| {
        app.with_token(Method::POST, "/api/v1/me/api-keys", &session.access).json(&json!({ "name": name })).send()
    };
    let mut first_id = String::new();
    for n in 0..coffer::service::account::MAX_LIVE_KEYS {
        let created = create(format!("key {n}")).await.expect("create");
        assert_eq!(created.status(), 201, "key {n}");
        if n == 0 {
            first_id = created.json::<serde_json::Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
        }
    }
    let refused = create("one too many".into()).await.expect("create");
    assert_eq!(refused.status(), 409);
    assert_eq!(slug(refused).await, "too-many-api-keys");
    let revoked = app.with_token(Method::DELETE, &format!("/api/v1/me/api-keys/{first_id}"), &session.access);
    assert_eq!(revoked.send().await.expect("revoke").status(), 204);
    assert_eq!(create("in its place".into()).await.expect("create").status(), 201);
}

/// A form upload whose body is not a form is of the wrong media type.
#[tokio::test]
async fn a_form_upload_that_is_not_a_form_is_415() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "fern", "fern-files").await;
    let sent = app
        .with_token(Method::POST, "/api/v1/buckets/fern-files/objects", &owner.access)
        .json(&json!({"file": "not a form"}))
        .send()
        .await
        .expect("post");
    assert_eq!(sent.status(), 415);
    problem(sent).await;
}

/// U+10FFFF, the highest code point, is a valid key character and delimiter;
/// a prefix ending in it has no successor to skip to. Listings still end and
/// never list a key twice or one outside the prefix.
#[tokio::test]
async fn listings_end_at_the_highest_code_point() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "maxi", "maxi-files").await;
    let top = '\u{10FFFF}';
    for key in [format!("p{top}a"), format!("p{top}b"), format!("p{top}c{top}d"), "q".to_owned()] {
        assert_eq!(put(&app, &owner.access, "maxi-files", &key, b"x".to_vec()).await.status(), 201);
    }
    let encoded_top = "%F4%8F%BF%BF";
    let pages = async {
        let mut seen = Vec::new();
        for query in [format!("delimiter={encoded_top}"), format!("prefix=p{encoded_top}")] {
            let mut cursor: Option<String> = None;
            let mut listed = Vec::new();
            loop {
                let more = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
                let path = format!("/api/v1/buckets/maxi-files/objects?limit=1&{query}{more}");
                let page: serde_json::Value = app.get_json(&path, &owner.access).await;
                for prefix in page["prefixes"].as_array().expect("prefixes") {
                    listed.push(format!("prefix:{}", prefix.as_str().expect("prefix")));
                }
                for object in page["objects"].as_array().expect("objects") {
                    listed.push(object["key"].as_str().expect("key").to_owned());
                }
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
                assert!(listed.len() < 20, "the listing makes progress: {listed:?}");
            }
            seen.push(listed);
        }
        seen
    };
    let seen = tokio::time::timeout(std::time::Duration::from_secs(20), pages).await.expect("listings end");
    assert_eq!(seen[0], [format!("prefix:p{top}"), "q".to_owned()]);
    assert_eq!(
        seen[1],
        [format!("p{top}a"), format!("p{top}b"), format!("p{top}c{top}d")],
        "nothing outside the prefix"
    );
}
