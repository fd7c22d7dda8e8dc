//! Completions sent again: after their upload committed (the answer lost),
//! after an assembly that could not commit, and after the reconciler handed
//! a cut-short completion back to its client.

use std::time::Duration;

use coffer::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, problem, spawn_app, spawn_app_with};
use crate::objects::{object_path, owner_with_bucket};
use crate::uploads::{MIB, complete, create, pattern, put_part};

#[tokio::test]
async fn a_completion_sent_again_after_its_commit_gets_the_object_it_committed() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "rhea", "rhea-files").await.access;
    let writer = app.user_session("remo", Role::User).await.access;
    app.grant(&owner, "rhea-files", "remo", "write").await;
    let created: Value =
        create(&app, &owner, "rhea-files", json!({"key": "done.bin"})).await.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    let part = put_part(&app, &owner, "rhea-files", &upload, 1, pattern(1000, 3)).await;
    let etag = part.json::<Value>().await.expect("json")["etag"].as_str().expect("etag").to_owned();
    let list = json!([{"part_number": 1, "etag": etag}]);
    let first = complete(&app, &owner, "rhea-files", &upload, list.clone()).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");

    // The first answer was lost: the same completion again is answered as it was.
    let again =
        complete(&app, &owner, "rhea-files", &upload, json!([{"part_number": 1, "etag": format!("\"{etag}\"")}])).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    let other_list = complete(&app, &owner, "rhea-files", &upload, json!([{"part_number": 1, "etag": "0".repeat(32)}]));
    let other_list = other_list.await;
    assert_eq!(other_list.status(), 409);
    assert_eq!(problem(other_list).await["type"], "/problems/upload-completed");
    let stranger = complete(&app, &writer, "rhea-files", &upload, list.clone()).await;
    assert_eq!(stranger.status(), 404, "only its starter (or an admin) sees a completed upload");
    let second_bucket = app.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "rhea-more"}));
    assert_eq!(second_bucket.send().await.expect("bucket").status(), 201);
    let other_bucket = complete(&app, &owner, "rhea-more", &upload, list.clone()).await;
    assert_eq!(other_bucket.status(), 404, "an upload is completed in its own bucket only");
    let admin = app.user_session("ada", Role::Admin).await.access;
    let by_admin = complete(&app, &admin, "rhea-files", &upload, list.clone()).await;
    assert_eq!(by_admin.status(), 201, "admins see every completed upload");
    assert_eq!(by_admin.json::<Value>().await.expect("json"), first);

    // Once the key holds another object, the completion cannot be answered with its own.
    let newer = crate::objects::put(&app, &writer, "rhea-files", "done.bin", b"newer".to_vec()).await;
    assert_eq!(newer.status(), 201);
    let replaced = complete(&app, &owner, "rhea-files", &upload, list.clone()).await;
    assert_eq!(replaced.status(), 409);
    assert_eq!(problem(replaced).await["type"], "/problems/upload-completed");

    // A remembered completion does not keep its bucket from being deleted.
    let elsewhere = owner_with_bucket(&app, "sven", "sven-files").await.access;
    let created: Value =
        create(&app, &elsewhere, "sven-files", json!({"key": "gone.bin"})).await.json().await.expect("json");
    let gone = created["upload_id"].as_str().expect("id").to_owned();
    let part = put_part(&app, &elsewhere, "sven-files", &gone, 1, pattern(10, 4)).await;
    let etag = part.json::<Value>().await.expect("json")["etag"].as_str().expect("etag").to_owned();
    let done = complete(&app, &elsewhere, "sven-files", &gone, json!([{"part_number": 1, "etag": etag}])).await;
    assert_eq!(done.status(), 201);
    let object = app.with_token(Method::DELETE, &object_path("sven-files", "gone.bin"), &elsewhere).send().await;
    assert_eq!(object.expect("delete").status(), 204);
    let bucket = app.with_token(Method::DELETE, "/api/v1/buckets/sven-files", &elsewhere).send().await;
    assert_eq!(bucket.expect("delete").status(), 204);

    // Forgotten after a day, even before the reconciler deletes it (tokens
    // expire sooner: an admin's new session asks).
    app.clock.advance(chrono::Duration::hours(23));
    assert_eq!(app.services.reconcile(None, None).await.expect("reconcile").0.completions_forgotten, 0);
    let admin = app.user_session("bea", Role::Admin).await.access;
    let remembered = complete(&app, &admin, "rhea-files", &upload, list.clone()).await;
    assert_eq!(remembered.status(), 409, "remembered for a day");
    app.clock.advance(chrono::Duration::hours(2));
    let admin = app.user_session("cleo", Role::Admin).await.access;
    assert_eq!(complete(&app, &admin, "rhea-files", &upload, list).await.status(), 404);
    assert_eq!(app.services.reconcile(None, None).await.expect("reconcile").0.completions_forgotten, 1);
}

/// How far a completion got after the backend assembled its parts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Assembly {
    /// Its commit failed (the database gone) and the upload was reopened.
    Reopened,
    /// Its commit failed and so did the reopen: the upload stays completing.
    Stuck,
    /// Coffer never heard of the assembly (a timeout, then S3 finished).
    Unheard,
}

/// Starts an upload of `parts` and lets a completion of the `assembled` ones
/// go as `how` says: the backend upload is gone, the object assembled,
/// nothing committed. Returns the upload's id, the list naming
/// every part for a completion, and the assembled bytes.
async fn assembled_but_not_committed(
    app: &TestApp,
    token: &str,
    (bucket, key): (&str, &str),
    parts: &[Vec<u8>],
    (assembled, how): (&[usize], Assembly),
) -> (String, Vec<Value>, Vec<u8>) {
    let created: Value = create(app, token, bucket, json!({ "key": key })).await.json().await.expect("json");
    let upload_id = created["upload_id"].as_str().expect("id").to_owned();
    let mut listed = Vec::new();
    for (n, data) in (1..).zip(parts) {
        let part: Value = put_part(app, token, bucket, &upload_id, n, data.clone()).await.json().await.expect("json");
        listed.push(json!({ "part_number": n, "etag": part["etag"] }));
    }
    let store = &app.services.store;
    let upload = store.upload(&upload_id).await.expect("lookup").expect("the upload");
    let stored = store.upload_parts(&upload_id).await.expect("parts");
    let chosen: Vec<_> = assembled.iter().map(|&i| &stored[i]).collect();
    let etag = coffer::service::uploads::multipart_etag(&chosen.iter().map(|p| p.etag.clone()).collect::<Vec<_>>());
    let size = chosen.iter().map(|p| p.size).sum();
    let started = app.clock_now();
    if how != Assembly::Unheard {
        assert!(store.start_completion(&upload_id, started, (&etag, size)).await.expect("start").is_some());
    }
    let backend_parts: Vec<coffer::storage::CompletedPart> = chosen
        .iter()
        .map(|p| coffer::storage::CompletedPart {
            part_number: u32::try_from(p.part_number).expect("number"),
            etag: p.backend_etag.clone(),
        })
        .collect();
    app.services
        .blobs
        .complete_multipart(&upload.blob_key, &upload.backend_upload_id, &backend_parts)
        .await
        .expect("assembled by the backend");
    if how == Assembly::Reopened {
        assert!(store.reopen_upload(&upload_id, started, app.clock_now(), Some(&etag)).await.expect("reopen"));
    }
    let bytes = assembled.iter().flat_map(|&i| parts[i].iter().copied()).collect();
    (upload_id, listed, bytes)
}

async fn object_bytes(app: &TestApp, token: &str, bucket: &str, key: &str) -> Vec<u8> {
    let response = app.with_token(Method::GET, &object_path(bucket, key), token).send().await.expect("get");
    assert_eq!(response.status(), 200);
    response.bytes().await.expect("body").to_vec()
}

/// A completion sent again after its first attempt assembled the object but
/// could not commit it finds the backend upload gone and the object
/// assembled: it commits those bytes instead of failing for ever. Another
/// list of parts, even one of the same size, does not pass for it.
#[tokio::test]
async fn a_completion_sent_again_commits_what_its_first_attempt_assembled() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "lene", "lene-files").await;
    let parts = [pattern(5 * MIB, 3), pattern(5 * MIB, 4), pattern(5 * MIB, 5)];
    let (upload, listed, expected) = assembled_but_not_committed(
        &app,
        &owner.access,
        ("lene-files", "clip.bin"),
        &parts,
        (&[0, 1], Assembly::Reopened),
    )
    .await;
    for other in [json!([listed[0], listed[2]]), json!([listed[0]])] {
        let refused = complete(&app, &owner.access, "lene-files", &upload, other).await;
        assert_eq!(problem(refused).await["type"], "/problems/upload-assembled");
    }
    let done = complete(&app, &owner.access, "lene-files", &upload, json!([listed[0], listed[1]])).await;
    assert_eq!(done.status(), 201, "{:?}", done.text().await);
    let object = object_bytes(&app, &owner.access, "lene-files", "clip.bin").await;
    assert_eq!(Sha256::digest(object), Sha256::digest(&expected));
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], expected.len(), "the part left out is credited back");

    // An assembly Coffer never heard of is known by its size only.
    let (unheard, listed, expected) = assembled_but_not_committed(
        &app,
        &owner.access,
        ("lene-files", "unheard.bin"),
        &parts,
        (&[0, 2], Assembly::Unheard),
    )
    .await;
    let refused = complete(&app, &owner.access, "lene-files", &unheard, json!([listed[0]])).await;
    assert_eq!(problem(refused).await["type"], "/problems/upload-assembled");
    let done = complete(&app, &owner.access, "lene-files", &unheard, json!([listed[0], listed[2]])).await;
    assert_eq!(done.status(), 201, "{:?}", done.text().await);
    let object = object_bytes(&app, &owner.access, "lene-files", "unheard.bin").await;
    assert_eq!(Sha256::digest(object), Sha256::digest(&expected));

    // Aborting an upload an earlier completion assembled removes those bytes too.
    let (other, _, _) = assembled_but_not_committed(
        &app,
        &owner.access,
        ("lene-files", "gone.bin"),
        &parts[..1],
        (&[0], Assembly::Reopened),
    )
    .await;
    let blob_key = app.services.store.upload(&other).await.expect("lookup").expect("upload").blob_key;
    let path = format!("/api/v1/buckets/lene-files/uploads/{other}");
    let aborted = app.with_token(Method::DELETE, &path, &owner.access).send().await.expect("abort");
    assert_eq!(aborted.status(), 204);
    let head = app.services.blobs.head(&blob_key).await;
    assert!(matches!(head, Err(coffer::storage::StorageError::NotFound)), "{head:?}");
}

/// A completion cut short (a crash, the database gone) is handed back to its
/// client by the reconciler while the backend holds the assembled object or
/// the parts, so that a retried completion finishes; one with nothing left to
/// complete is aborted.
#[tokio::test]
async fn the_reconciler_reopens_completions_cut_short_for_their_clients() {
    let app = spawn_app_with(|config| config.reconcile_grace = Duration::from_secs(1)).await;
    let owner = owner_with_bucket(&app, "mira", "mira-files").await;
    // Parts of one size: a list other than the one assembled adds up to the same size.
    let (assembled, listed, expected) = assembled_but_not_committed(
        &app,
        &owner.access,
        ("mira-files", "film.bin"),
        &[pattern(5 * MIB, 3), pattern(5 * MIB, 4), pattern(5 * MIB, 5)],
        (&[0, 1], Assembly::Stuck),
    )
    .await;
    let parts = json!([listed[0], listed[1]]);
    // An assembly never heard of, then a completion of another size that got stuck.
    let (unheard, unheard_listed, _) = assembled_but_not_committed(
        &app,
        &owner.access,
        ("mira-files", "mixed.bin"),
        &[pattern(5 * MIB, 6), pattern(5 * MIB, 7)],
        (&[0, 1], Assembly::Unheard),
    )
    .await;
    assert!(
        app.services.store.start_completion(&unheard, app.clock_now(), ("other", 5)).await.expect("start").is_some()
    );
    let start = |key: &'static str| {
        let token = owner.access.clone();
        let app = &app;
        async move {
            let created: Value =
                create(app, &token, "mira-files", json!({ "key": key })).await.json().await.expect("json");
            created["upload_id"].as_str().expect("id").to_owned()
        }
    };
    let waiting = start("waiting.bin").await;
    let part: Value =
        put_part(&app, &owner.access, "mira-files", &waiting, 1, b"waiting".to_vec()).await.json().await.expect("json");
    let empty = start("empty.bin").await;
    for upload in [&waiting, &empty] {
        assert!(app.services.store.start_completion(upload, app.clock_now(), ("?", 7)).await.expect("start").is_some());
    }
    let busy = complete(&app, &owner.access, "mira-files", &assembled, parts.clone()).await;
    assert_eq!(busy.status(), 409, "a completion in progress is left alone");

    app.clock.advance(chrono::Duration::seconds(5));
    let (report, _) = app.services.reconcile(None, None).await.expect("reconcile");
    assert_eq!((report.uploads_reopened, report.uploads_aborted), (3, 1), "{report:?}");
    let done = complete(&app, &owner.access, "mira-files", &unheard, Value::Array(unheard_listed)).await;
    assert_eq!(done.status(), 201, "not bound to the stuck completion's list of another size");
    let other = complete(&app, &owner.access, "mira-files", &assembled, json!([listed[0], listed[2]])).await;
    assert_eq!(problem(other).await["type"], "/problems/upload-assembled", "the stuck completion's list is kept");
    let done = complete(&app, &owner.access, "mira-files", &assembled, parts).await;
    assert_eq!(done.status(), 201, "{:?}", done.text().await);
    assert_eq!(
        Sha256::digest(object_bytes(&app, &owner.access, "mira-files", "film.bin").await),
        Sha256::digest(&expected)
    );
    let done =
        complete(&app, &owner.access, "mira-files", &waiting, json!([{ "part_number": 1, "etag": part["etag"] }]))
            .await;
    assert_eq!(done.status(), 201, "{:?}", done.text().await);
    assert_eq!(object_bytes(&app, &owner.access, "mira-files", "waiting.bin").await, b"waiting");
    assert!(app.services.store.upload(&empty).await.expect("lookup").is_none(), "aborted");
}

/// A commit that fails with the database going away after the backend
/// assembled the parts: the upload is reopened (`503`), and a completion
/// sent again with the same list commits the assembled object without
/// assembling anew; another list of the same size is refused.
#[tokio::test]
async fn a_completion_whose_commit_failed_is_finished_by_its_retry() {
    let app = spawn_app().await;
    // The failure is a PostgreSQL trigger raising "admin shutdown" on the object's insert.
    if app.services.store.engine() != "postgres" {
        return;
    }
    let owner = owner_with_bucket(&app, "olga", "olga-files").await;
    let created: Value =
        create(&app, &owner.access, "olga-files", json!({"key": "kept.bin"})).await.json().await.expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    let parts = [pattern(5 * MIB, 8), pattern(5 * MIB, 9), pattern(5 * MIB, 10)];
    let mut listed = Vec::new();
    for (n, data) in (1..).zip(&parts) {
        let part: Value =
            put_part(&app, &owner.access, "olga-files", &upload, n, data.clone()).await.json().await.expect("json");
        listed.push(json!({ "part_number": n, "etag": part["etag"] }));
    }
    app.execute_sql(
        "CREATE FUNCTION refuse_objects() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'going away' USING ERRCODE = '57P01'; END $$; \
         CREATE TRIGGER refuse_objects BEFORE INSERT ON objects FOR EACH ROW EXECUTE FUNCTION refuse_objects();",
    )
    .await;
    let failed = complete(&app, &owner.access, "olga-files", &upload, json!([listed[0], listed[1]])).await;
    assert_eq!(failed.status(), 503, "{:?}", failed.text().await);
    let row = app.services.store.upload(&upload).await.expect("lookup").expect("reopened, not aborted");
    assert_eq!(row.state, coffer::metadata::UploadState::Open);
    assert!(row.assembled_etag.is_some(), "the assembled list is recorded");
    app.execute_sql("DROP TRIGGER refuse_objects ON objects").await;

    let other = complete(&app, &owner.access, "olga-files", &upload, json!([listed[0], listed[2]])).await;
    assert_eq!(problem(other).await["type"], "/problems/upload-assembled");
    let done = complete(&app, &owner.access, "olga-files", &upload, json!([listed[0], listed[1]])).await;
    assert_eq!(done.status(), 201, "{:?}", done.text().await);
    let mut expected = parts[0].clone();
    expected.extend_from_slice(&parts[1]);
    let object = object_bytes(&app, &owner.access, "olga-files", "kept.bin").await;
    assert_eq!(Sha256::digest(object), Sha256::digest(&expected));
    let me: Value = app.get_json("/api/v1/me", &owner.access).await;
    assert_eq!(me["used_bytes"], expected.len(), "the part left out is credited back");
}
