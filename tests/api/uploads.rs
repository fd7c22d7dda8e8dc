//! Resumable multipart uploads over HTTP, the reconciler, and a backend failing mid-upload.

use std::time::Duration;

use coffer::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, problem, spawn_app, spawn_app_with};
use crate::objects::{blob_count, object_path, owner_with_bucket};
use crate::support::{self, proxy::Proxy};

pub(crate) const MIB: usize = 1024 * 1024;

pub(crate) async fn create(app: &TestApp, token: &str, bucket: &str, body: Value) -> reqwest::Response {
    app.with_token(Method::POST, &format!("/api/v1/buckets/{bucket}/uploads"), token)
        .json(&body)
        .send()
        .await
        .expect("create")
}

pub(crate) async fn put_part(
    app: &TestApp,
    token: &str,
    bucket: &str,
    upload: &str,
    n: i64,
    data: Vec<u8>,
) -> reqwest::Response {
    app.with_token(Method::PUT, &format!("/api/v1/buckets/{bucket}/uploads/{upload}/parts/{n}"), token)
        .body(data)
        .send()
        .await
        .expect("part")
}

pub(crate) async fn complete(
    app: &TestApp,
    token: &str,
    bucket: &str,
    upload: &str,
    parts: Value,
) -> reqwest::Response {
    app.with_token(Method::POST, &format!("/api/v1/buckets/{bucket}/uploads/{upload}/complete"), token)
        .json(&json!({ "parts": parts }))
        .send()
        .await
        .expect("complete")
}

pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test]
async fn parts_upload_resume_and_complete_into_one_object() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "hugo", "hugo-files").await;
    let created =
        create(&app, &owner.access, "hugo-files", json!({"key": "big/video.bin", "size": 5 * MIB + 1000})).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    assert_eq!(created["part_size"], 8 * MIB);

    let first = pattern(5 * MIB, 1);
    let last = pattern(1000, 2);
    let response = put_part(&app, &owner.access, "hugo-files", &upload, 2, last.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("etag"), "browsers read the part ETag from the header");
    let etag2 = response.json::<Value>().await.expect("json")["etag"].as_str().expect("etag").to_owned();
    // A first attempt at part 1, then a retry with the real bytes (resume replaces it).
    let stale = put_part(&app, &owner.access, "hugo-files", &upload, 1, pattern(5 * MIB, 9)).await;
    let stale_etag = stale.json::<Value>().await.expect("json")["etag"].as_str().expect("etag").to_owned();
    let retried = put_part(&app, &owner.access, "hugo-files", &upload, 1, first.clone()).await;
    let etag1 = retried.json::<Value>().await.expect("json")["etag"].as_str().expect("etag").to_owned();
    assert_ne!(stale_etag, etag1);

    let listed: Value =
        app.get_json(&format!("/api/v1/buckets/hugo-files/uploads/{upload}/parts"), &owner.access).await;
    assert_eq!(
        listed["parts"],
        json!([{"part_number": 1, "size": 5 * MIB, "etag": etag1}, {"part_number": 2, "size": 1000, "etag": etag2}])
    );
    let stale_list = complete(
        &app,
        &owner.access,
        "hugo-files",
        &upload,
        json!([{"part_number": 1, "etag": stale_etag}, {"part_number": 2, "etag": etag2}]),
    )
    .await;
    assert_eq!(stale_list.status(), 400, "a replaced part's ETag is refused");

    let done = complete(
        &app,
        &owner.access,
        "hugo-files",
        &upload,
        json!([{"part_number": 1, "etag": format!("\"{etag1}\"")}, {"part_number": 2, "etag": etag2}]),
    )
    .await;
    assert_eq!(done.status(), 201);
    let object: Value = done.json().await.expect("json");
    assert_eq!(object["size"], 5 * MIB + 1000);
    assert!(object["etag"].as_str().expect("etag").ends_with("-2"));
    let body = app
        .with_token(Method::GET, &object_path("hugo-files", "big/video.bin"), &owner.access)
        .send()
        .await
        .expect("get");
    let mut expected = first;
    expected.extend_from_slice(&last);
    assert_eq!(Sha256::digest(body.bytes().await.expect("body")), Sha256::digest(&expected));
    let gone = app
        .with_token(Method::GET, &format!("/api/v1/buckets/hugo-files/uploads/{upload}/parts"), &owner.access)
        .send()
        .await;
    assert_eq!(gone.expect("list").status(), 404, "a completed upload is gone");
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], 5 * MIB + 1000, "the replaced part's bytes were credited back");
}

#[tokio::test]
async fn bad_part_numbers_lists_and_lengths_are_refused() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "ines", "ines-files").await;
    let created: Value =
        create(&app, &owner.access, "ines-files", json!({"key": "x"})).await.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    for n in [0, 10_001, -1] {
        assert_eq!(put_part(&app, &owner.access, "ines-files", &upload, n, vec![1]).await.status(), 400, "part {n}");
    }
    let chunked = app
        .with_token(Method::PUT, &format!("/api/v1/buckets/ines-files/uploads/{upload}/parts/1"), &owner.access)
        .body(reqwest::Body::wrap_stream(futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            b"x",
        ))])))
        .send()
        .await
        .expect("part");
    assert_eq!(chunked.status(), 411);
    let small = put_part(&app, &owner.access, "ines-files", &upload, 1, vec![1; 100])
        .await
        .json::<Value>()
        .await
        .expect("json");
    let tail = put_part(&app, &owner.access, "ines-files", &upload, 2, vec![2; 100])
        .await
        .json::<Value>()
        .await
        .expect("json");
    let (e1, e2) = (small["etag"].clone(), tail["etag"].clone());
    for (parts, slug) in [
        (json!([]), "invalid-part-list"),
        (json!([{"part_number": 2, "etag": e2}, {"part_number": 1, "etag": e1}]), "invalid-part-list"),
        (json!([{"part_number": 1, "etag": "nope"}]), "invalid-part-list"),
        (json!([{"part_number": 3, "etag": e2}]), "invalid-part-list"),
        (json!([{"part_number": 1, "etag": e1}, {"part_number": 2, "etag": e2}]), "part-too-small"),
    ] {
        let response = complete(&app, &owner.access, "ines-files", &upload, parts.clone()).await;
        assert_eq!(response.status(), 400, "{parts}");
        assert_eq!(problem(response).await["type"], format!("/problems/{slug}"), "{parts}");
    }
    // One small part alone is a valid (last) part.
    assert_eq!(
        complete(&app, &owner.access, "ines-files", &upload, json!([{"part_number": 1, "etag": e1}])).await.status(),
        201
    );
    let unknown = put_part(&app, &owner.access, "ines-files", "0000", 1, vec![1]).await;
    assert_eq!(unknown.status(), 404);
    let bad_size = create(&app, &owner.access, "ines-files", json!({"key": "y", "size": -5})).await;
    assert_eq!(bad_size.status(), 400);
}

#[tokio::test]
async fn aborting_forgets_parts_and_credits_quota() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "jon", "jon-files").await;
    let created: Value =
        create(&app, &owner.access, "jon-files", json!({"key": "tmp"})).await.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    put_part(&app, &owner.access, "jon-files", &upload, 1, vec![1; 4096]).await;
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], 4096, "parts count against the quota while they wait");
    let other = app.user_session("kim", Role::User).await;
    let path = format!("/api/v1/buckets/jon-files/uploads/{upload}");
    assert_eq!(app.with_token(Method::DELETE, &path, &other.access).send().await.expect("abort").status(), 404);
    assert_eq!(app.with_token(Method::DELETE, &path, &owner.access).send().await.expect("abort").status(), 204);
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], 0);
    assert_eq!(put_part(&app, &owner.access, "jon-files", &upload, 2, vec![1]).await.status(), 404);
    assert!(
        app.services.blobs.list_multipart_uploads("b/").await.expect("uploads").is_empty(),
        "the backend upload is gone"
    );
    let auditor = app.user_session("lea", Role::Auditor).await;
    let page: Value = app.get_json("/api/v1/admin/audit?action=upload.abort", &auditor.access).await;
    assert_eq!(page["events"][0]["actor"], "jon");
}

#[tokio::test]
async fn a_user_keeps_at_most_the_limit_of_unfinished_uploads() {
    let app = spawn_app_with(|config| config.max_open_uploads = 2).await;
    let owner = owner_with_bucket(&app, "ola", "ola-files").await;
    let mut open = Vec::new();
    for n in 0..2 {
        let created: Value =
            create(&app, &owner.access, "ola-files", json!({"key": format!("f{n}")})).await.json().await.expect("json");
        open.push(created["upload_id"].as_str().expect("id").to_owned());
    }
    let refused = create(&app, &owner.access, "ola-files", json!({"key": "f2"})).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(problem(refused).await["type"], "/problems/too-many-uploads");
    let backend = app.services.blobs.list_multipart_uploads("b/").await.expect("uploads");
    assert_eq!(backend.len(), 2, "the refused one left no backend upload behind");

    let path = format!("/api/v1/buckets/ola-files/uploads/{}", open[0]);
    assert_eq!(app.with_token(Method::DELETE, &path, &owner.access).send().await.expect("abort").status(), 204);
    assert_eq!(create(&app, &owner.access, "ola-files", json!({"key": "f2"})).await.status(), 201, "a slot is free");
    let other = owner_with_bucket(&app, "oda", "oda-files").await;
    assert_eq!(create(&app, &other.access, "oda-files", json!({"key": "f"})).await.status(), 201, "their own slots");
}

#[tokio::test]
async fn parts_are_charged_as_they_arrive() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "max", "max-files").await;
    let admin = app.user_session("root", Role::Admin).await;
    app.with_token(Method::PATCH, "/api/v1/admin/users/max", &admin.access)
        .json(&json!({"quota_bytes": 6 * MIB}))
        .send()
        .await
        .expect("quota");
    let declared_too_big = create(&app, &owner.access, "max-files", json!({"key": "a", "size": 7 * MIB})).await;
    assert_eq!(declared_too_big.status(), 413);
    let created: Value =
        create(&app, &owner.access, "max-files", json!({"key": "a"})).await.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    assert_eq!(put_part(&app, &owner.access, "max-files", &upload, 1, vec![1; 5 * MIB]).await.status(), 200);
    let over = put_part(&app, &owner.access, "max-files", &upload, 2, vec![1; 2 * MIB]).await;
    assert_eq!(over.status(), 413);
    assert_eq!(problem(over).await["type"], "/problems/quota-exceeded");
    // A part sent again (its answer lost) fits in place of the one it replaces, and is charged once.
    let again = put_part(&app, &owner.access, "max-files", &upload, 1, vec![2; 5 * MIB]).await;
    assert_eq!(again.status(), 200);
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], 5 * MIB);
    let larger = put_part(&app, &owner.access, "max-files", &upload, 1, vec![3; 6 * MIB + 1]).await;
    assert_eq!(larger.status(), 413, "only up to the quota");
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], 5 * MIB, "the refused one holds nothing");
}

#[tokio::test]
async fn the_reconciler_cleans_up_after_crashes() {
    let app = spawn_app_with(|config| config.reconcile_grace = Duration::from_secs(1)).await;
    let owner = owner_with_bucket(&app, "nils", "nils-files").await;
    let bucket = app
        .services
        .store
        .bucket_by_name(&coffer::domain::BucketName::parse("nils-files").expect("name"))
        .await
        .expect("lookup")
        .expect("bucket");
    // A write that crashed after its bytes landed but before the commit.
    let pending = app
        .services
        .store
        .insert_pending(&coffer::metadata::NewObject {
            bucket_id: bucket.id,
            key: coffer::domain::ObjectKey::parse("crashed").expect("key"),
            blob_key: format!("{}o/crashed", bucket.blob_prefix()),
            content_type: "text/plain".into(),
            owner_id: None,
            reserved_bytes: 0,
            at: app.clock_now(),
        })
        .await
        .expect("pending");
    let bytes = || support::stream_of(b"orphan bytes".to_vec());
    app.services.blobs.put(&pending.blob_key, bytes(), None).await.expect("bytes");
    // Bytes nobody knows about, and a backend multipart upload nobody started through Coffer.
    app.services.blobs.put(&format!("{}o/stray", bucket.blob_prefix()), bytes(), None).await.expect("stray");
    let stray_upload =
        app.services.blobs.create_multipart(&format!("{}o/stray-mp", bucket.blob_prefix())).await.expect("mp");
    // An upload abandoned by its client.
    let created: Value =
        create(&app, &owner.access, "nils-files", json!({"key": "abandoned"})).await.json().await.expect("json");
    put_part(&app, &owner.access, "nils-files", created["upload_id"].as_str().expect("id"), 1, vec![1; 10]).await;
    // A kept object must survive.
    crate::objects::put(&app, &owner.access, "nils-files", "kept", b"keep me".to_vec()).await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.clock.advance(chrono::Duration::days(8));
    let (report, _) = app.services.reconcile(None, None).await.expect("reconcile");
    assert_eq!(report.pending_rolled_back, 1, "{report:?}");
    assert_eq!(report.uploads_aborted, 1, "{report:?}");
    assert!(report.orphans_removed >= 1, "{report:?}");
    assert!(report.backend_uploads_aborted >= 1, "{report:?}");
    assert_eq!(blob_count(&app).await, 1, "only the kept object's bytes remain");
    let open = app.services.blobs.list_multipart_uploads("b/").await.expect("uploads");
    assert!(open.iter().all(|u| u.upload_id != stray_upload), "{open:?}");
    let kept = app.services.store.live_object(bucket.id, &coffer::domain::ObjectKey::parse("kept").expect("key")).await;
    let kept = kept.expect("lookup").expect("the kept object survives");
    let bytes = support::collect(app.services.blobs.get(&kept.blob_key, None).await.expect("bytes").body).await;
    assert_eq!(bytes, b"keep me");
    let again = app.services.reconcile(None, None).await.expect("reconcile").0;
    assert_eq!(again.pending_rolled_back + again.orphans_removed + again.uploads_aborted, 0, "idempotent: {again:?}");
}

#[tokio::test]
async fn a_backend_failing_mid_upload_commits_nothing() {
    let Some(env) = support::s3_env() else { return };
    let target: std::net::SocketAddr =
        env.endpoint.trim_start_matches("http://").parse().expect("loopback S3 endpoint");
    let proxy = Proxy::start(target).await;
    let proxied = support::S3Env { endpoint: format!("http://{}", proxy.addr), ..env };
    let app = spawn_app_with(|config| {
        support::use_s3(config, &proxied, &format!("{}/", support::unique("fault-")));
        config.s3_attempt_timeout = Duration::from_secs(2);
        config.s3_operation_timeout = Duration::from_secs(4);
    })
    .await;
    let owner = owner_with_bucket(&app, "olaf", "olaf-files").await;
    let chunks = futures::stream::unfold(0u32, move |n| async move {
        if n == 40 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(vec![5u8; 512 * 1024])), n + 1))
    });
    let upload = app
        .with_token(Method::PUT, &object_path("olaf-files", "doomed"), &owner.access)
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let cut = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
    };
    let (response, ()) = tokio::join!(upload, cut);
    let status = response.expect("an answer").status().as_u16();
    assert!(status == 502 || status == 503, "{status}");
    proxy.restore();
    let missing =
        app.with_token(Method::GET, &object_path("olaf-files", "doomed"), &owner.access).send().await.expect("get");
    assert_eq!(missing.status(), 404, "nothing was committed");
}

/// Parts may not add up to more than `max_object_bytes`, one by one or together.
#[tokio::test]
async fn uploads_obey_the_object_size_limit() {
    let app = spawn_app_with(|c| c.max_object_bytes = 6 * MIB as u64).await;
    let owner = owner_with_bucket(&app, "ursa", "capped").await.access;
    let created: Value = create(&app, &owner, "capped", json!({"key": "big.bin"})).await.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    let too_big = put_part(&app, &owner, "capped", &upload, 1, pattern(7 * MIB, 1)).await;
    assert_eq!(too_big.status(), 413);
    assert_eq!(problem(too_big).await["type"], "/problems/payload-too-large");
    let mut parts = Vec::new();
    for (n, len) in [(1, 5 * MIB), (2, 2 * MIB)] {
        let part = put_part(&app, &owner, "capped", &upload, n, pattern(len, 2)).await;
        assert_eq!(part.status(), 200);
        let etag: Value = part.json().await.expect("json");
        parts.push(json!({"part_number": n, "etag": etag["etag"]}));
    }
    // 7 MiB staged, more than an object may have: no more parts (a client
    // could otherwise stage 10,000 parts of the limit each).
    let staged = put_part(&app, &owner, "capped", &upload, 3, pattern(MIB, 3)).await;
    assert_eq!(staged.status(), 413);
    assert_eq!(problem(staged).await["type"], "/problems/payload-too-large");
    let refused = complete(&app, &owner, "capped", &upload, json!(parts)).await;
    assert_eq!(refused.status(), 413);
    assert_eq!(problem(refused).await["type"], "/problems/payload-too-large");
    let missing = app.with_token(Method::HEAD, &object_path("capped", "big.bin"), &owner).send().await.expect("head");
    assert_eq!(missing.status(), 404, "nothing was stored");
    let just_one = complete(&app, &owner, "capped", &upload, json!([parts[0].clone()])).await;
    assert_eq!(just_one.status(), 201, "the upload stays usable: 5 MiB fits");

    // A declared size caps what is staged the same way.
    let declared = create(&app, &owner, "capped", json!({"key": "sized.bin", "size": 5 * MIB + 1})).await;
    let declared: Value = declared.json().await.expect("json");
    let upload = declared["upload_id"].as_str().expect("id").to_owned();
    for (n, expected) in [(1, 200), (2, 200), (3, 413)] {
        let part = put_part(&app, &owner, "capped", &upload, n, pattern(5 * MIB, 4)).await;
        assert_eq!(part.status(), expected, "part {n}");
    }
    let listed = app.get_json(&format!("/api/v1/buckets/capped/uploads/{upload}/parts"), &owner).await;
    assert_eq!(listed["parts"].as_array().map(Vec::len), Some(2), "{listed}");
}

/// A bucket's managers see every open upload in it and may abort any, so a
/// writer's forgotten upload never keeps them from deleting the bucket.
#[tokio::test]
async fn managers_list_and_abort_every_upload_in_their_bucket() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "vera", "team").await.access;
    let writer = app.user_session("walt", Role::User).await.access;
    app.grant(&owner, "team", "walt", "write").await;
    let mut ids = Vec::new();
    for (token, key) in [(&writer, "b/walt-1.bin"), (&writer, "c/walt-2.bin"), (&owner, "a/vera.bin")] {
        let created: Value = create(&app, token, "team", json!({"key": key})).await.json().await.expect("json");
        ids.push(created["upload_id"].as_str().expect("id").to_owned());
    }
    let list = |token: String, query: String| {
        let request = app.with_token(Method::GET, &format!("/api/v1/buckets/team/uploads{query}"), &token);
        async move { request.send().await.expect("list").json::<Value>().await.expect("json") }
    };
    let keys = |page: &Value| -> Vec<String> {
        page["uploads"]
            .as_array()
            .expect("uploads")
            .iter()
            .map(|u| u["key"].as_str().expect("key").to_owned())
            .collect()
    };
    let first = list(owner.clone(), "?limit=2".into()).await;
    assert_eq!(keys(&first), ["a/vera.bin", "b/walt-1.bin"]);
    assert_eq!(first["uploads"][1]["mine"], false);
    let cursor = first["next_cursor"].as_str().expect("more");
    let second = list(owner.clone(), format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(keys(&second), ["c/walt-2.bin"]);
    assert!(second["next_cursor"].is_null());
    assert_eq!(
        keys(&list(writer.clone(), String::new()).await),
        ["b/walt-1.bin", "c/walt-2.bin"],
        "writers see their own"
    );
    // Full pages of their own, and no cursor that names someone else's upload.
    let mine = list(writer.clone(), "?limit=1".into()).await;
    assert_eq!(keys(&mine), ["b/walt-1.bin"], "{mine}");
    let cursor = mine["next_cursor"].as_str().expect("more");
    let rest = list(writer.clone(), format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(keys(&rest), ["c/walt-2.bin"], "{rest}");

    let delete_bucket = || app.with_token(Method::DELETE, "/api/v1/buckets/team", &owner).send();
    assert_eq!(delete_bucket().await.expect("delete").status(), 409);
    let strangers_abort = app.with_token(Method::DELETE, &format!("/api/v1/buckets/team/uploads/{}", ids[2]), &writer);
    assert_eq!(strangers_abort.send().await.expect("abort").status(), 404, "a writer aborts only their own");
    for id in &ids {
        let abort = app.with_token(Method::DELETE, &format!("/api/v1/buckets/team/uploads/{id}"), &owner);
        assert_eq!(abort.send().await.expect("abort").status(), 204);
    }
    assert_eq!(delete_bucket().await.expect("delete").status(), 204);
}

/// A part whose client goes away mid-body gives back the quota it reserved
/// at once, not when its upload ends.
#[tokio::test]
async fn a_part_cut_off_mid_body_gives_its_quota_back() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "nora", "nora-files").await;
    let created: Value =
        create(&app, &owner.access, "nora-files", json!({"key": "cut.bin"})).await.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.expect("connect");
    let head = format!(
        "PUT /api/v1/buckets/nora-files/uploads/{upload}/parts/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {}\r\nContent-Length: 6000000\r\n\r\n",
        owner.access
    );
    socket.write_all(head.as_bytes()).await.expect("headers");
    socket.write_all(&vec![7u8; 1_000_000]).await.expect("some body");
    let charged = || async { app.services.store.upload(&upload).await.expect("lookup").expect("upload").charged_bytes };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while charged().await == 0 {
        assert!(std::time::Instant::now() < deadline, "the part never reserved its quota");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(socket);
    while charged().await != 0 {
        assert!(std::time::Instant::now() < deadline, "the cut-off part still holds its quota");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], 0);
}
