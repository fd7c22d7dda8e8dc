//! Writes that race or name the version they read: create-only writes,
//! racing first writes, a read racing an overwrite, and conditional writes
//! that never lose an update.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::objects::{get, object_path, owner_with_bucket, put};

#[tokio::test]
async fn create_only_puts_fail_when_the_key_exists() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "rosa", "rosa-files").await;
    let create_only = || {
        app.with_token(Method::PUT, &object_path("rosa-files", "once"), &owner.access)
            .header("if-none-match", "*")
            .body("v1")
            .send()
    };
    assert_eq!(create_only().await.expect("put").status(), 201);
    assert_eq!(create_only().await.expect("put").status(), 412);
    assert_eq!(get(&app, &owner.access, "rosa-files", "once").await.text().await.expect("body"), "v1");
}

/// Racing create-only writes of one new key: one wins, the rest are told the
/// key exists (412), never a generic conflict.
#[tokio::test]
async fn racing_create_only_writes_have_one_winner() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "tess", "tess-files").await;
    let attempts = (0..12).map(|n| {
        app.with_token(Method::PUT, &object_path("tess-files", "race"), &owner.access)
            .header("if-none-match", "*")
            .body(format!("writer {n}"))
            .send()
    });
    let mut statuses: Vec<u16> =
        futures::future::join_all(attempts).await.into_iter().map(|r| r.expect("put").status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 412), "{statuses:?}");
}

/// Racing unconditional first writes of one new key, PUTs alone or PUTs and
/// copies onto it: every one succeeds (the last to commit is live), none is
/// refused with a conflict.
#[tokio::test]
async fn racing_first_writes_of_a_key_all_succeed() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "theo", "theo-files").await;
    assert_eq!(put(&app, &owner.access, "theo-files", "source", b"copied".to_vec()).await.status(), 201);
    for round in 0..12 {
        let key = format!("race-{round}");
        let with_copies = round % 2 == 1;
        let writes = (0..6).map(|n| {
            let request = if with_copies && n % 2 == 0 {
                app.with_token(Method::POST, "/api/v1/buckets/theo-files/copy/source", &owner.access)
                    .json(&json!({ "to_key": key }))
            } else {
                app.with_token(Method::PUT, &object_path("theo-files", &key), &owner.access).body(format!("writer {n}"))
            };
            request.send()
        });
        let mut answers = Vec::new();
        for response in futures::future::join_all(writes).await {
            let response = response.expect("write");
            answers.push((response.status().as_u16(), response.text().await.expect("body")));
        }
        assert!(answers.iter().all(|(status, _)| *status == 201), "round {round}: {answers:?}");
        let body = get(&app, &owner.access, "theo-files", &key).await.text().await.expect("body");
        assert!(body.starts_with("writer ") || (with_copies && body == "copied"), "{body}");
    }
}

/// A read that looked up a version whose bytes then went (overwritten
/// meanwhile) is answered with the version live now, not a 404.
#[tokio::test]
async fn a_read_racing_an_overwrite_gets_the_new_version() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "ula", "ula-files").await;
    assert_eq!(put(&app, &owner.access, "ula-files", "a.txt", b"old bytes".to_vec()).await.status(), 201);
    assert_eq!(put(&app, &owner.access, "ula-files", "b.txt", b"new bytes".to_vec()).await.status(), 201);
    assert_eq!(get(&app, &owner.access, "ula-files", "a.txt").await.text().await.expect("body"), "old bytes");
    let name = coffer::domain::BucketName::parse("ula-files").expect("name");
    let bucket = app.services.store.bucket_by_name(&name).await.expect("bucket").expect("ula-files");
    let (a, b) = (
        coffer::domain::ObjectKey::parse("a.txt").expect("key"),
        coffer::domain::ObjectKey::parse("b.txt").expect("key"),
    );
    let old = app.services.store.live_object(bucket.id, &a).await.expect("object").expect("a.txt");
    let new = app.services.store.live_object(bucket.id, &b).await.expect("object").expect("b.txt");
    // The overwrite as the reader meets it: its looked-up version (cached)
    // retired and its bytes gone, another version live under the key.
    app.services.blobs.delete(&old.blob_key).await.expect("remove the old bytes");
    app.execute_sql(&format!(
        "UPDATE objects SET state = 'deleting' WHERE id = {}; UPDATE objects SET object_key = 'a.txt' WHERE id = {}",
        old.id, new.id
    ))
    .await;
    let response = get(&app, &owner.access, "ula-files", "a.txt").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], format!("\"{}\"", new.etag.as_deref().expect("etag")));
    assert_eq!(response.text().await.expect("body"), "new bytes");
}

/// A writer that names the version it read (`If-Match`, `If-Unmodified-Since`)
/// never replaces or deletes one written since: no lost updates.
#[tokio::test]
async fn conditional_writes_never_lose_an_update() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "ruth", "ruth-files").await;
    let write = |method: Method, headers: &[(&'static str, String)], body: &'static str| {
        let mut request = app.with_token(method, &object_path("ruth-files", "doc"), &owner.access).body(body);
        for (name, value) in headers {
            request = request.header(*name, value.clone());
        }
        async move { request.send().await.expect("write") }
    };
    let etag = |response: &reqwest::Response| response.headers()["etag"].to_str().expect("etag").to_owned();
    let missing = write(Method::PUT, &[("if-match", "*".into())], "v0").await;
    assert_eq!(missing.status(), 412, "If-Match needs a live version");
    let first = write(Method::PUT, &[], "v1").await;
    let v1 = etag(&first);
    let second = write(Method::PUT, &[("if-match", v1.clone())], "v2").await;
    assert_eq!(second.status(), 201, "the version it read is still live");
    let v2 = etag(&second);
    let lost = write(Method::PUT, &[("if-match", v1.clone())], "v3").await;
    assert_eq!(lost.status(), 412, "v2 was written since v1 was read");
    let repeated = write(Method::PUT, &[("if-match", "\"nope\"".into()), ("if-match", v2.clone())], "v3").await;
    assert_eq!(repeated.status(), 201, "repeated If-Match lines are one list");
    let v3 = etag(&repeated);
    let stale_date = write(Method::PUT, &[("if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT".into())], "v4").await;
    assert_eq!(stale_date.status(), 412);
    let not_that = write(Method::PUT, &[("if-none-match", v3.clone())], "v4").await;
    assert_eq!(not_that.status(), 412, "If-None-Match naming the live version");
    assert_eq!(get(&app, &owner.access, "ruth-files", "doc").await.text().await.expect("body"), "v3");
    let stale_delete = write(Method::DELETE, &[("if-match", v2)], "").await;
    assert_eq!(stale_delete.status(), 412);
    assert_eq!(write(Method::DELETE, &[("if-match", v3)], "").await.status(), 204);
    assert_eq!(get(&app, &owner.access, "ruth-files", "doc").await.status(), 404);
}

/// A copy whose source is overwritten while it runs loses the bytes it
/// looked up (the overwrite removes them at commit): it starts again from the
/// version live then, and never answers 404 for a key that exists. Staged on
/// SQLite: the copy looked its source up and waits for the write lock this
/// test holds while it retires that version and deletes its bytes.
#[tokio::test]
async fn a_copy_whose_source_was_overwritten_meanwhile_copies_the_live_version() {
    use sqlx::Connection;
    let app = spawn_app().await;
    let url = app.config.effective_database_url();
    if !url.starts_with("sqlite:") {
        return; // The write lock that stages the race is SQLite's.
    }
    let owner = owner_with_bucket(&app, "cora", "cora-files").await;
    assert_eq!(put(&app, &owner.access, "cora-files", "src", b"old bytes".to_vec()).await.status(), 201);
    assert_eq!(put(&app, &owner.access, "cora-files", "next", b"new bytes".to_vec()).await.status(), 201);
    let name = coffer::domain::BucketName::parse("cora-files").expect("name");
    let bucket = app.services.store.bucket_by_name(&name).await;
    let bucket = bucket.expect("bucket").expect("cora-files");
    let live = |key: &'static str| {
        let store = app.services.store.clone();
        let key_name = coffer::domain::ObjectKey::parse(key).expect("key");
        async move { store.live_object(bucket.id, &key_name).await.expect("object").expect(key) }
    };
    let (old, new) = (live("src").await, live("next").await);

    let mut writer = sqlx::SqliteConnection::connect(&url).await.expect("connect");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await.expect("take the write lock");
    let copy = app
        .with_token(Method::POST, "/api/v1/buckets/cora-files/copy/src", &owner.access)
        .json(&json!({ "to_key": "dst" }))
        .send();
    let overwrite = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await; // the copy has looked `src` up
        let retire = "UPDATE objects SET state = 'deleting' WHERE id = $1";
        sqlx::query(retire).bind(old.id).execute(&mut writer).await.expect("retire");
        let promote = "UPDATE objects SET object_key = 'src' WHERE id = $1";
        sqlx::query(promote).bind(new.id).execute(&mut writer).await.expect("promote");
        app.services.blobs.delete(&old.blob_key).await.expect("remove the old bytes");
        sqlx::query("COMMIT").execute(&mut writer).await.expect("commit");
    };
    let (copied, ()) = tokio::join!(copy, overwrite);
    assert_eq!(copied.expect("copy").status(), 201);
    let body = get(&app, &owner.access, "cora-files", "dst").await.text().await.expect("body");
    assert_eq!(body, "new bytes");
}

/// A hold set on the key while an upload's parts are assembled refuses the
/// completion, but keeps what was assembled: completed again once the hold
/// is lifted, the upload becomes the object. Staged on SQLite: the
/// completion checked the key and waits for the write lock this test holds
/// while it sets the hold.
#[tokio::test]
async fn a_completion_refused_by_a_hold_set_meanwhile_keeps_the_upload() {
    use sqlx::Connection;
    let app = spawn_app().await;
    let url = app.config.effective_database_url();
    if !url.starts_with("sqlite:") {
        return; // The write lock that stages the race is SQLite's.
    }
    let owner = owner_with_bucket(&app, "hana", "hana-files").await;
    assert_eq!(put(&app, &owner.access, "hana-files", "doc", b"first".to_vec()).await.status(), 201);
    let created = crate::uploads::create(&app, &owner.access, "hana-files", json!({"key": "doc"})).await;
    let created: Value = created.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    let part = crate::uploads::put_part(&app, &owner.access, "hana-files", &upload, 1, b"second".to_vec()).await;
    let etag = part.headers()["etag"].to_str().expect("etag").to_owned();
    let parts = json!([{"part_number": 1, "etag": etag}]);
    let name = coffer::domain::BucketName::parse("hana-files").expect("name");
    let bucket = app.services.store.bucket_by_name(&name).await.expect("bucket").expect("hana-files");
    let key = coffer::domain::ObjectKey::parse("doc").expect("key");
    let live = app.services.store.live_object(bucket.id, &key).await.expect("live").expect("doc");

    let mut writer = sqlx::SqliteConnection::connect(&url).await.expect("connect");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await.expect("take the write lock");
    let completion = crate::uploads::complete(&app, &owner.access, "hana-files", &upload, parts.clone());
    let hold = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await; // the completion has checked the key
        let held = "UPDATE objects SET legal_hold = TRUE WHERE id = $1";
        sqlx::query(held).bind(live.id).execute(&mut writer).await.expect("hold");
        sqlx::query("COMMIT").execute(&mut writer).await.expect("commit");
    };
    let (refused, ()) = tokio::join!(completion, hold);
    assert_eq!(refused.status(), 409);
    assert_eq!(crate::helpers::problem(refused).await["type"], "/problems/object-locked");
    let held = get(&app, &owner.access, "hana-files", "doc").await.text().await.expect("body");
    assert_eq!(held, "first", "the held version stays");

    let release = app.with_token(Method::PUT, "/api/v1/buckets/hana-files/legal-hold/doc", &owner.access);
    assert_eq!(release.json(&json!({"status": "OFF"})).send().await.expect("release").status(), 200);
    let completed = crate::uploads::complete(&app, &owner.access, "hana-files", &upload, parts).await;
    assert_eq!(completed.status(), 201, "the assembled bytes waited");
    let body = get(&app, &owner.access, "hana-files", "doc").await.text().await.expect("body");
    assert_eq!(body, "second");
}
