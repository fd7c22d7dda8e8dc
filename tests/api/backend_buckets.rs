//! `s3_bucket_per_coffer_bucket`: each Coffer bucket in a backend bucket of
//! its own, created and removed with it; objects, multipart uploads, copies
//! across buckets and the reconciler's scan all work across them.

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use coffer::domain::BucketName;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::objects::{object_path, owner_with_bucket, put};

fn backend(app: &TestApp) -> aws_sdk_s3::Client {
    use secrecy::ExposeSecret;
    let config = &app.config;
    let credentials = Credentials::new(
        config.s3_access_key_id.clone().unwrap_or_default(),
        config.s3_secret_access_key.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default(),
        None,
        None,
        "test",
    );
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let sdk = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(config.s3_region.clone()))
        .credentials_provider(credentials)
        .endpoint_url(config.s3_endpoint.clone().unwrap_or_default())
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(sdk)
}

async fn backend_bucket(app: &TestApp, name: &str) -> String {
    let bucket = app.services.store.bucket_by_name(&BucketName::parse(name).expect("name")).await;
    let id = bucket.expect("lookup").expect("bucket").id;
    format!("{}-b{id}", app.config.s3_bucket.clone().unwrap_or_default())
}

#[tokio::test]
async fn each_coffer_bucket_lives_in_a_backend_bucket_of_its_own() {
    if crate::support::s3_env().is_none() {
        return; // An S3 mode: nothing to check on the filesystem backend.
    }
    let app = spawn_app_with(|c| c.s3_bucket_per_coffer_bucket = true).await;
    let owner = owner_with_bucket(&app, "bea", "photos").await.access;
    let created =
        app.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "archive"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    let client = backend(&app);
    let photos = backend_bucket(&app, "photos").await;
    client.head_bucket().bucket(&photos).send().await.expect("the backend bucket was created");

    assert_eq!(put(&app, &owner, "photos", "cat.txt", b"meow".to_vec()).await.status(), 201);
    let listed = client.list_objects_v2().bucket(&photos).prefix(&app.config.s3_prefix).send().await.expect("list");
    assert_eq!(listed.contents().len(), 1, "the bytes are in the photos backend bucket");
    let got = app.with_token(Method::GET, &object_path("photos", "cat.txt"), &owner).send().await.expect("get");
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), b"meow");

    // Copy across Coffer buckets = across backend buckets.
    let copied = app
        .with_token(Method::POST, "/api/v1/buckets/photos/copy/cat.txt", &owner)
        .json(&json!({"to_bucket": "archive", "to_key": "cat-copy.txt"}))
        .send()
        .await
        .expect("copy");
    assert_eq!(copied.status(), 201);
    let got = app.with_token(Method::GET, &object_path("archive", "cat-copy.txt"), &owner).send().await.expect("get");
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), b"meow");

    // A multipart upload, completed.
    let upload: Value = app
        .with_token(Method::POST, "/api/v1/buckets/photos/uploads", &owner)
        .json(&json!({"key": "big.bin"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = upload["upload_id"].as_str().expect("id");
    let part = app
        .with_token(Method::PUT, &format!("/api/v1/buckets/photos/uploads/{id}/parts/1"), &owner)
        .body(b"part one".to_vec())
        .send()
        .await
        .expect("part");
    let etag = part.json::<Value>().await.expect("json")["etag"].as_str().expect("etag").to_owned();
    let done = app
        .with_token(Method::POST, &format!("/api/v1/buckets/photos/uploads/{id}/complete"), &owner)
        .json(&json!({"parts": [{"part_number": 1, "etag": etag}]}))
        .send()
        .await
        .expect("complete");
    assert_eq!(done.status(), 201);

    // The reconciler sees every backend bucket and keeps what is referenced.
    let (report, _) = app.services.reconcile(None, None).await.expect("reconcile");
    let report = serde_json::to_value(&report).expect("report");
    assert_eq!(report["orphans_removed"].as_u64().unwrap_or(0), 0, "{report}");
    let (mut keys, mut cursor) = (Vec::new(), None);
    loop {
        let page = app.services.blobs.list("b/", cursor.as_deref(), 100).await.expect("list");
        keys.extend(page.blobs.into_iter().map(|b| b.key));
        match page.next_start_after {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let photos_id = photos.rsplit("-b").next().expect("id");
    let archive = backend_bucket(&app, "archive").await;
    let archive_id = archive.rsplit("-b").next().expect("id");
    for id in [photos_id, archive_id] {
        assert!(keys.iter().any(|k| k.starts_with(&format!("b/{id}/o/"))), "bucket {id} is scanned: {keys:?}");
    }

    // Emptied and deleted, the Coffer bucket takes its backend bucket along.
    for key in ["cat.txt", "big.bin"] {
        let deleted = app.with_token(Method::DELETE, &object_path("photos", key), &owner).send().await;
        assert_eq!(deleted.expect("delete").status(), 204);
    }
    let deleted = app.with_token(Method::DELETE, "/api/v1/buckets/photos", &owner).send().await.expect("delete");
    assert_eq!(deleted.status(), 204);
    let listed = client.list_objects_v2().bucket(&photos).prefix(&app.config.s3_prefix).send().await;
    assert!(listed.map(|l| l.contents().is_empty()).unwrap_or(true), "nothing of ours is left in it");
}
