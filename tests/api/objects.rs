//! Objects over HTTP: streamed writes and reads, digests, ranges, conditional
//! reads, keys, listing, copy, delete, quotas, form uploads (writes that race
//! or name a version: `object_races.rs`).

use std::time::Duration;

use base64::Engine;
use coffer::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, Tokens, problem, spawn_app};
use crate::object_streams::raw_request;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// Percent-encodes a key for the URL path, keeping `/` as a separator.
pub fn encode_key(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(key, SET).to_string()
}

pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/api/v1/buckets/{bucket}/objects/{}", encode_key(key))
}

/// A user with a session and a bucket of their own.
pub async fn owner_with_bucket(app: &TestApp, user: &str, bucket: &str) -> Tokens {
    let tokens = app.user_session(user, Role::User).await;
    let created = app
        .with_token(Method::POST, "/api/v1/buckets", &tokens.access)
        .json(&json!({ "name": bucket }))
        .send()
        .await
        .expect("create bucket");
    assert_eq!(created.status(), 201);
    tokens
}

pub async fn put(app: &TestApp, token: &str, bucket: &str, key: &str, body: Vec<u8>) -> reqwest::Response {
    app.with_token(Method::PUT, &object_path(bucket, key), token).body(body).send().await.expect("put")
}

pub async fn get(app: &TestApp, token: &str, bucket: &str, key: &str) -> reqwest::Response {
    app.with_token(Method::GET, &object_path(bucket, key), token).send().await.expect("get")
}

pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[tokio::test]
async fn put_then_get_streams_the_same_bytes_with_the_right_headers() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "olive", "olive-files").await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let created = app
        .with_token(Method::PUT, &object_path("olive-files", "reports/2024/q1.bin"), &owner.access)
        .header("content-type", "application/x-custom")
        .body(data.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(created.status(), 201);
    assert!(created.headers().contains_key("etag"));
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["key"], "reports/2024/q1.bin");
    assert_eq!(body["size"], 3_000_000);
    assert_eq!(body["sha256"], sha256(&data));
    assert_eq!(body["content_type"], "application/x-custom");

    let response = get(&app, &owner.access, "olive-files", "reports/2024/q1.bin").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-length"], "3000000");
    assert_eq!(headers["content-type"], "application/x-custom");
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["etag"].to_str().expect("ascii"), format!("\"{}\"", body["etag"].as_str().expect("etag")));
    assert!(headers.contains_key("last-modified"));
    assert!(headers["content-disposition"].to_str().expect("ascii").starts_with("attachment;"));
    assert!(headers["content-security-policy"].to_str().expect("ascii").contains("sandbox"));
    assert_eq!(sha256(&response.bytes().await.expect("body")), sha256(&data));

    let head =
        app.with_token(Method::HEAD, &object_path("olive-files", "reports/2024/q1.bin"), &owner.access).send().await;
    let head = head.expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "3000000");
    assert!(head.bytes().await.expect("empty").is_empty());
}

#[tokio::test]
async fn content_types_are_sniffed_and_risky_ones_are_attachments() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "pablo", "pablo-files").await;
    let cases: [(&str, &[u8], &str, &str); 5] = [
        ("photo.png", PNG, "image/png", "inline"),
        ("not-really.png", b"plain text, no magic", "application/octet-stream", "attachment"),
        ("notes.txt", b"just words", "text/plain", "inline"),
        ("page.html", b"<html><script>alert(1)</script></html>", "text/html", "attachment"),
        ("drawing.svg", b"<svg onload=alert(1)/>", "image/svg+xml", "attachment"),
    ];
    for (key, bytes, expected_type, disposition) in cases {
        let created: Value =
            put(&app, &owner.access, "pablo-files", key, bytes.to_vec()).await.json().await.expect("json");
        assert_eq!(created["content_type"], expected_type, "{key}");
        let response = get(&app, &owner.access, "pablo-files", key).await;
        let value = response.headers()["content-disposition"].to_str().expect("ascii").to_owned();
        assert!(value.starts_with(disposition), "{key}: {value}");
    }
    let forced = app
        .with_token(Method::GET, &format!("{}?download=1", object_path("pablo-files", "photo.png")), &owner.access)
        .send()
        .await
        .expect("get");
    assert!(forced.headers()["content-disposition"].to_str().expect("ascii").starts_with("attachment"));
    put(&app, &owner.access, "pablo-files", "dossier/résumé final.png", PNG.to_vec()).await;
    let unicode = get(&app, &owner.access, "pablo-files", "dossier/résumé final.png").await;
    let value = unicode.headers()["content-disposition"].to_str().expect("ascii").to_owned();
    assert!(value.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%20final.png"), "{value}");
    let invalid = app
        .with_token(Method::PUT, &object_path("pablo-files", "x"), &owner.access)
        .header("content-type", "not a type")
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(invalid.status(), 400);
}

#[tokio::test]
async fn digests_are_verified_and_a_mismatch_stores_nothing() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "quentin", "quentin-files").await;
    let data = b"integrity matters".to_vec();
    let good_md5 = base64::engine::general_purpose::STANDARD.encode(md5_of(&data));
    let wrong_md5 = base64::engine::general_purpose::STANDARD.encode(md5_of(b"other"));
    let send = |key: &'static str, header: &'static str, value: String| {
        app.with_token(Method::PUT, &object_path("quentin-files", key), &owner.access)
            .header(header, value)
            .body(data.clone())
            .send()
    };
    let bad = send("bad-md5", "content-md5", wrong_md5).await.expect("put");
    assert_eq!(bad.status(), 400);
    assert_eq!(problem(bad).await["type"], "/problems/bad-digest");
    let bad_sha = send("bad-sha", "x-checksum-sha256", sha256(b"other")).await.expect("put");
    assert_eq!(bad_sha.status(), 400);
    let garbage = send("garbage", "content-md5", "!!".into()).await.expect("put");
    assert_eq!(garbage.status(), 400);
    for key in ["bad-md5", "bad-sha", "garbage"] {
        assert_eq!(get(&app, &owner.access, "quentin-files", key).await.status(), 404, "{key} must not exist");
    }
    assert_eq!(send("good-md5", "content-md5", good_md5).await.expect("put").status(), 201);
    assert_eq!(send("good-sha", "x-checksum-sha256", sha256(&data)).await.expect("put").status(), 201);
    let listing: Value = app.get_json("/api/v1/buckets/quentin-files/objects", &owner.access).await;
    let keys: Vec<&str> =
        listing["objects"].as_array().expect("objects").iter().map(|o| o["key"].as_str().expect("key")).collect();
    assert_eq!(keys, ["good-md5", "good-sha"]);
    assert_eq!(blob_count(&app).await, 2, "rejected uploads left no bytes behind");
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

/// Objects stored in the backend under bucket data (excludes audit checkpoints).
pub async fn blob_count(app: &TestApp) -> usize {
    app.services.blobs.list("b/", None, 1000).await.expect("list blobs").blobs.len()
}

#[tokio::test]
async fn ranges_follow_rfc_9110() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "sven", "sven-files").await;
    put(&app, &owner.access, "sven-files", "digits", b"0123456789".to_vec()).await;
    let ranged = |range: &'static str| {
        app.with_token(Method::GET, &object_path("sven-files", "digits"), &owner.access).header("range", range).send()
    };
    let partial = ranged("bytes=2-5").await.expect("get");
    assert_eq!(partial.status(), 206);
    assert_eq!(partial.headers()["content-range"], "bytes 2-5/10");
    assert_eq!(partial.headers()["content-length"], "4");
    assert_eq!(partial.text().await.expect("body"), "2345");
    assert_eq!(ranged("bytes=-3").await.expect("get").text().await.expect("body"), "789");
    assert_eq!(ranged("bytes=7-").await.expect("get").text().await.expect("body"), "789");
    assert_eq!(ranged("bytes=8-100").await.expect("get").text().await.expect("body"), "89");
    for ignored in ["bytes=5-2", "bytes=0-1,4-5", "lines=1-2", "bytes=x-y"] {
        let response = ranged(ignored).await.expect("get");
        assert_eq!(response.status(), 200, "{ignored}");
        assert_eq!(response.text().await.expect("body"), "0123456789");
    }
    for unsatisfiable in ["bytes=-0", "bytes=10-", "bytes=99-100"] {
        let response = ranged(unsatisfiable).await.expect("get");
        assert_eq!(response.status(), 416, "{unsatisfiable}");
        assert_eq!(response.headers()["content-range"], "bytes */10");
    }
    // Only GET has ranges (RFC 9110 §14.2): a HEAD describes the whole object whatever it asks.
    for range in ["bytes=0-0", "bytes=99-"] {
        let head = app.with_token(Method::HEAD, &object_path("sven-files", "digits"), &owner.access);
        let response = head.header("range", range).send().await.expect("head");
        assert_eq!(response.status(), 200, "{range}");
        assert_eq!(response.headers()["content-length"], "10", "{range}");
        assert!(!response.headers().contains_key("content-range"), "{range}");
    }
    // An empty object's suffix range is satisfiable, and served whole.
    put(&app, &owner.access, "sven-files", "empty", Vec::new()).await;
    let empty = app.with_token(Method::GET, &object_path("sven-files", "empty"), &owner.access);
    let response = empty.header("range", "bytes=-5").send().await.expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "0");
}

#[tokio::test]
async fn conditional_requests_and_authorization_comes_first() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "tess", "tess-files").await;
    let created: Value =
        put(&app, &owner.access, "tess-files", "doc", b"content".to_vec()).await.json().await.expect("json");
    let etag = format!("\"{}\"", created["etag"].as_str().expect("etag"));
    let conditional = |token: &str, header: &'static str, value: String| {
        app.with_token(Method::GET, &object_path("tess-files", "doc"), token).header(header, value).send()
    };
    let not_modified = conditional(&owner.access, "if-none-match", etag.clone()).await.expect("get");
    assert_eq!(not_modified.status(), 304);
    // A cache replaces its stored headers with a 304's (RFC 9111 §4.3.4), so
    // the 304 repeats the object's own CSP: a revalidated copy stays sandboxed.
    let csp = not_modified.headers()["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("sandbox"), "{csp}");
    assert_eq!(not_modified.headers()["etag"].to_str().expect("ascii"), etag);
    assert_eq!(conditional(&owner.access, "if-none-match", "\"other\"".into()).await.expect("get").status(), 200);
    assert_eq!(conditional(&owner.access, "if-match", "\"other\"".into()).await.expect("get").status(), 412);
    assert_eq!(conditional(&owner.access, "if-match", etag.clone()).await.expect("get").status(), 200);
    let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
    let past = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(3600));
    assert_eq!(conditional(&owner.access, "if-modified-since", future).await.expect("get").status(), 304);
    assert_eq!(conditional(&owner.access, "if-unmodified-since", past).await.expect("get").status(), 412);
    // A stranger learns nothing, not even through a matching validator (MinIO CVE-2024-36107).
    let stranger = app.user_session("ugo", Role::User).await;
    for (header, value) in [("if-none-match", etag.clone()), ("if-match", "\"x\"".to_owned())] {
        let response = conditional(&stranger.access, header, value).await.expect("get");
        assert_eq!(response.status(), 404, "{header}");
        assert!(response.headers().get("etag").is_none());
    }
    let head =
        app.with_token(Method::HEAD, &object_path("tess-files", "doc"), &stranger.access).send().await.expect("head");
    assert_eq!(head.status(), 404);
}

#[tokio::test]
async fn grants_decide_who_reads_and_writes() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "vic", "vic-files").await;
    let reader = app.user_session("wes", Role::User).await;
    app.grant(&owner.access, "vic-files", "wes", "read").await;
    put(&app, &owner.access, "vic-files", "shared.txt", b"hi".to_vec()).await;
    assert_eq!(get(&app, &reader.access, "vic-files", "shared.txt").await.status(), 200);
    assert_eq!(put(&app, &reader.access, "vic-files", "mine.txt", b"x".to_vec()).await.status(), 403);
    let delete = app.with_token(Method::DELETE, &object_path("vic-files", "shared.txt"), &reader.access).send().await;
    assert_eq!(delete.expect("delete").status(), 403);
    let outsider = app.user_session("xia", Role::User).await;
    assert_eq!(put(&app, &outsider.access, "vic-files", "x", b"x".to_vec()).await.status(), 404);
    assert_eq!(put(&app, &outsider.access, "no-such-bucket", "x", b"x".to_vec()).await.status(), 404);
    let anonymous = app.client.put(app.url(&object_path("vic-files", "x"))).body("x").send().await.expect("put");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn keys_follow_the_contract_and_odd_ones_stay_contained() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "yara", "yara-files").await;
    let long = "k".repeat(1025);
    for raw_path in ["a/../b", "..", ".", "a//b", "%2Fleading", "nul%00byte", "new%0Aline", &long, "a/./b", "x/.."] {
        let path = format!("/api/v1/buckets/yara-files/objects/{raw_path}");
        // Sent byte for byte: HTTP clients would resolve the dot segments themselves.
        let (status, body) = raw_request(&app, "PUT", &path, &owner.access, b"x").await;
        assert_eq!(status, 400, "{raw_path}: {body}");
        assert!(body.contains("/problems/invalid-key"), "{raw_path}: {body}");
    }
    let odd = ["back\\slash\\..\\..\\escape", "ünïcødé/ファイル.txt", "percent%41", "sp ace", "folder/", "a:b?c#d"];
    for key in odd {
        let response = put(&app, &owner.access, "yara-files", key, key.as_bytes().to_vec()).await;
        assert_eq!(response.status(), 201, "{key}");
        assert_eq!(get(&app, &owner.access, "yara-files", key).await.text().await.expect("body"), key);
    }
    // An encoded and a plain slash name the same key.
    let encoded = app
        .with_token(
            Method::GET,
            "/api/v1/buckets/yara-files/objects/%C3%BCn%C3%AFc%C3%B8d%C3%A9%2F%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.txt",
            &owner.access,
        )
        .send()
        .await
        .expect("get");
    assert_eq!(encoded.status(), 200);
    if app.config.storage == coffer::config::StorageKind::Fs {
        let root = app.config.effective_fs_root();
        let parent = root.parent().expect("parent").to_path_buf();
        assert!(!parent.join("escape").exists() && !root.join("escape").exists());
    }
}

#[tokio::test]
async fn listings_page_through_prefixes_and_folders() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "zeno", "zeno-files").await;
    for key in ["a.txt", "docs/1.txt", "docs/2.txt", "docs/deep/3.txt", "photos/x.png", "z.txt"] {
        put(&app, &owner.access, "zeno-files", key, b"x".to_vec()).await;
    }
    let list = |query: String| {
        let app = &app;
        let token = owner.access.clone();
        async move {
            let response = app
                .with_token(Method::GET, &format!("/api/v1/buckets/zeno-files/objects?{query}"), &token)
                .send()
                .await;
            let response = response.expect("list");
            assert_eq!(response.status(), 200, "{query}");
            response.json::<Value>().await.expect("json")
        }
    };
    let top = list("delimiter=/".into()).await;
    let keys: Vec<&str> =
        top["objects"].as_array().expect("objects").iter().map(|o| o["key"].as_str().expect("key")).collect();
    assert_eq!(keys, ["a.txt", "z.txt"]);
    assert_eq!(top["prefixes"], json!(["docs/", "photos/"]));
    assert!(top["objects"][0]["last_modified"].is_string() && top["objects"][0]["etag"].is_string());
    let docs = list("prefix=docs/&delimiter=/".into()).await;
    assert_eq!(docs["prefixes"], json!(["docs/deep/"]));
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = list(format!("limit=2{cursor}")).await;
        all.extend(
            page["objects"].as_array().expect("objects").iter().map(|o| o["key"].as_str().expect("key").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(all, ["a.txt", "docs/1.txt", "docs/2.txt", "docs/deep/3.txt", "photos/x.png", "z.txt"]);
    let clamped = app.get_json("/api/v1/buckets/zeno-files/objects?limit=5000", &owner.access).await;
    assert_eq!(clamped["objects"].as_array().map(Vec::len), Some(6), "a limit over 1000 is clamped, not refused");
    for bad in ["limit=0", "cursor=%%%"] {
        let response = app
            .with_token(Method::GET, &format!("/api/v1/buckets/zeno-files/objects?{bad}"), &owner.access)
            .send()
            .await;
        assert_eq!(response.expect("list").status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn copy_delete_and_bucket_deletion() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "abel", "abel-src").await;
    let created = app
        .with_token(Method::POST, "/api/v1/buckets", &owner.access)
        .json(&json!({"name": "abel-dst"}))
        .send()
        .await
        .expect("bucket");
    assert_eq!(created.status(), 201);
    put(&app, &owner.access, "abel-src", "orig/file.bin", b"copy payload".to_vec()).await;
    let copy = |to_bucket: Value, to_key: &str| {
        app.with_token(Method::POST, "/api/v1/buckets/abel-src/copy/orig/file.bin", &owner.access)
            .json(&json!({"to_bucket": to_bucket, "to_key": to_key}))
            .send()
    };
    assert_eq!(copy(Value::Null, "same/bucket.bin").await.expect("copy").status(), 201);
    assert_eq!(copy(json!("abel-dst"), "other/bucket.bin").await.expect("copy").status(), 201);
    assert_eq!(
        get(&app, &owner.access, "abel-dst", "other/bucket.bin").await.text().await.expect("body"),
        "copy payload"
    );
    let missing = app
        .with_token(Method::POST, "/api/v1/buckets/abel-src/copy/nope", &owner.access)
        .json(&json!({"to_key": "x"}))
        .send()
        .await
        .expect("copy");
    assert_eq!(missing.status(), 404);

    let not_empty =
        app.with_token(Method::DELETE, "/api/v1/buckets/abel-dst", &owner.access).send().await.expect("delete");
    assert_eq!(not_empty.status(), 409);
    let path = object_path("abel-dst", "other/bucket.bin");
    assert_eq!(app.with_token(Method::DELETE, &path, &owner.access).send().await.expect("delete").status(), 204);
    assert_eq!(app.with_token(Method::DELETE, &path, &owner.access).send().await.expect("delete").status(), 404);
    assert_eq!(get(&app, &owner.access, "abel-dst", "other/bucket.bin").await.status(), 404);
    let emptied =
        app.with_token(Method::DELETE, "/api/v1/buckets/abel-dst", &owner.access).send().await.expect("delete");
    assert_eq!(emptied.status(), 204);
    assert_eq!(blob_count(&app).await, 2, "the deleted object's bytes are gone");
}

#[tokio::test]
async fn overwrites_replace_and_free_the_old_bytes() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "bea", "bea-files").await;
    for version in ["one", "two", "three"] {
        assert_eq!(put(&app, &owner.access, "bea-files", "doc", version.as_bytes().to_vec()).await.status(), 201);
    }
    assert_eq!(get(&app, &owner.access, "bea-files", "doc").await.text().await.expect("body"), "three");
    assert_eq!(blob_count(&app).await, 1);
}

#[tokio::test]
async fn quotas_refuse_what_does_not_fit_and_keep_nothing() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "cleo", "cleo-files").await;
    let admin = app.user_session("root", Role::Admin).await;
    let set_quota = app
        .with_token(Method::PATCH, "/api/v1/admin/users/cleo", &admin.access)
        .json(&json!({"quota_bytes": 100}))
        .send()
        .await
        .expect("patch");
    assert_eq!(set_quota.status(), 200);
    assert_eq!(put(&app, &owner.access, "cleo-files", "a", vec![1; 80]).await.status(), 201);
    let over = put(&app, &owner.access, "cleo-files", "b", vec![1; 30]).await;
    assert_eq!(over.status(), 413);
    assert_eq!(problem(over).await["type"], "/problems/quota-exceeded");
    assert_eq!(get(&app, &owner.access, "cleo-files", "b").await.status(), 404);
    // Overwriting frees the old version's bytes first.
    assert_eq!(put(&app, &owner.access, "cleo-files", "a", vec![2; 95]).await.status(), 201);
    // A body of unknown length is cut off at the quota.
    let chunks = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![3u8; 10]))));
    let chunked = app
        .with_token(Method::PUT, &object_path("cleo-files", "stream"), &owner.access)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("put");
    assert_eq!(chunked.status(), 413);
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!((me["used_bytes"].as_i64(), me["quota_bytes"].as_i64()), (Some(95), Some(100)));
    assert_eq!(blob_count(&app).await, 1);

    // At 95 of 100 bytes, replacing one's own 95 bytes fits, whichever way it comes.
    let same_size = futures::stream::iter((0..5).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![4u8; 19]))));
    let chunked_overwrite = app
        .with_token(Method::PUT, &object_path("cleo-files", "a"), &owner.access)
        .body(reqwest::Body::wrap_stream(same_size))
        .send()
        .await
        .expect("put");
    assert_eq!(chunked_overwrite.status(), 201, "a body of unknown length replacing its own version");
    let copy_onto_itself = app
        .with_token(Method::POST, "/api/v1/buckets/cleo-files/copy/a", &owner.access)
        .json(&json!({"to_key": "a"}))
        .send()
        .await
        .expect("copy");
    assert_eq!(copy_onto_itself.status(), 201, "a copy onto itself changes nothing");
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"].as_i64(), Some(95));
}

#[tokio::test]
async fn form_uploads_store_every_file_under_a_prefix() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "dora", "dora-files").await;
    let form = reqwest::multipart::Form::new()
        .text("prefix", "inbox/")
        .part("file", reqwest::multipart::Part::bytes(PNG.to_vec()).file_name("pixel.png"))
        .part("file", reqwest::multipart::Part::bytes(b"notes".to_vec()).file_name("../../sub/ünïcødé.txt"))
        .part("file", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("<img src=x onerror=alert(1)>.png"));
    let response = app
        .with_token(Method::POST, "/api/v1/buckets/dora-files/objects", &owner.access)
        .multipart(form)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    let keys: Vec<&str> =
        body["objects"].as_array().expect("objects").iter().map(|o| o["key"].as_str().expect("key")).collect();
    assert_eq!(keys, ["inbox/pixel.png", "inbox/sub/ünïcødé.txt", "inbox/<img src=x onerror=alert(1)>.png"]);
    assert_eq!(body["objects"][0]["content_type"], "image/png");
    let empty = app
        .with_token(Method::POST, "/api/v1/buckets/dora-files/objects", &owner.access)
        .multipart(reqwest::multipart::Form::new().text("prefix", "x/"))
        .send()
        .await
        .expect("post");
    assert_eq!(empty.status(), 400);

    let broken = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"kept".to_vec()).file_name("kept.txt"))
        .part("file", reqwest::multipart::Part::bytes(b"lost".to_vec()));
    let refused = app
        .with_token(Method::POST, "/api/v1/buckets/dora-files/objects", &owner.access)
        .multipart(broken)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 400);
    let refused = problem(refused).await;
    let detail = refused["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("no filename") && detail.contains("stored: kept.txt"), "{detail}");
    assert_eq!(refused["stored"], json!(["kept.txt"]), "named for machines too, whatever the error");
    assert_eq!(
        get(&app, &owner.access, "dora-files", "kept.txt").await.status(),
        200,
        "what the problem names is there"
    );
}
