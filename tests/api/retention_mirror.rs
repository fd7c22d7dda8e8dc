//! Mirroring to a backend with S3 Object Lock (moto's S3 server; Garage has
//! none): retention and legal holds set through Coffer are also set on the
//! backend object, and readiness says `gateway+backend`.

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
use chrono::{Duration, SecondsFormat};
use coffer::domain::{BucketName, ObjectKey, Role};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::objects::put;
use crate::support::proxy::Proxy;
use crate::support::{S3Env, services_required, unique, use_s3};

fn backend_client(endpoint: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .http_client(http)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// moto's client and the settings of a new moto bucket with Object Lock
/// named `prefix…`; none (the test skips) where moto is not configured.
async fn locked_backend(prefix: &str) -> Option<(aws_sdk_s3::Client, S3Env)> {
    let Ok(endpoint) = std::env::var("COFFER_TEST_MOTO_ENDPOINT") else {
        assert!(!services_required(), "COFFER_TEST_MOTO_ENDPOINT is required with the real services");
        return None;
    };
    let client = backend_client(&endpoint);
    let bucket = unique(prefix);
    client
        .create_bucket()
        .bucket(&bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create a bucket with Object Lock");
    let env = S3Env {
        endpoint,
        region: "us-east-1".into(),
        bucket,
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
    };
    Some((client, env))
}

#[tokio::test]
async fn retention_and_legal_holds_reach_a_backend_with_object_lock() {
    let Some((client, env)) = locked_backend("lock-").await else { return };
    let backend_bucket = env.bucket.clone();
    let app = spawn_app_with(|config| use_s3(config, &env, "mirror/")).await;
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready["retention_enforcement"], "gateway+backend", "{ready}");

    let owner = app.user_session("olga", Role::User).await.access;
    let created = app.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "vault"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    assert_eq!(put(&app, &owner, "vault", "contract.pdf", b"%PDF-1.7 signed".to_vec()).await.status(), 201);
    let until = app.clock_now() + Duration::days(2);
    let set = app
        .with_token(Method::PUT, "/api/v1/buckets/vault/retention/contract.pdf", &owner)
        .json(&json!({"mode": "GOVERNANCE", "retain_until": until.to_rfc3339_opts(SecondsFormat::Secs, true)}))
        .send()
        .await
        .expect("retention");
    assert_eq!(set.status(), 200);
    let hold = app
        .with_token(Method::PUT, "/api/v1/buckets/vault/legal-hold/contract.pdf", &owner)
        .json(&json!({"status": "ON"}))
        .send()
        .await
        .expect("hold");
    assert_eq!(hold.status(), 200);

    let bucket = app.services.store.bucket_by_name(&BucketName::parse("vault").expect("name")).await;
    let bucket = bucket.expect("bucket").expect("exists");
    let object = app.services.store.live_object(bucket.id, &ObjectKey::parse("contract.pdf").expect("key")).await;
    let backend_key = format!("mirror/{}", object.expect("object").expect("live").blob_key);
    // moto answers GetObjectRetention with the object; HEAD carries the same facts.
    let head = client.head_object().bucket(&backend_bucket).key(&backend_key).send().await.expect("head");
    assert_eq!(head.object_lock_mode, Some(aws_sdk_s3::types::ObjectLockMode::Governance));
    let mirrored_until = head.object_lock_retain_until_date.expect("date").secs();
    assert!((mirrored_until - until.timestamp()).abs() <= 1, "{mirrored_until} vs {}", until.timestamp());
    let status = head.object_lock_legal_hold_status;
    assert_eq!(status, Some(ObjectLockLegalHoldStatus::On));
}

/// moto's client, the main bucket (with Object Lock) and an app giving each
/// Coffer bucket a backend bucket of its own; none where moto is not configured.
async fn routed_app(prefix: &str) -> Option<(aws_sdk_s3::Client, String, TestApp)> {
    let (client, env) = locked_backend(prefix).await?;
    let app = spawn_app_with(|config| {
        use_s3(config, &env, "routed/");
        config.s3_bucket_per_coffer_bucket = true;
    })
    .await;
    Some((client, env.bucket, app))
}

/// A Coffer bucket `name` of `owner` and the name of its own backend bucket.
async fn routed_bucket(app: &TestApp, owner: &str, main_bucket: &str, name: &str) -> String {
    let created = app.with_token(Method::POST, "/api/v1/buckets", owner).json(&json!({ "name": name })).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    let bucket = app.services.store.bucket_by_name(&BucketName::parse(name).expect("name")).await;
    format!("{main_bucket}-b{}", bucket.expect("bucket").expect("exists").id)
}

async fn hold(app: &TestApp, owner: &str, bucket: &str, key: &str) {
    let path = format!("/api/v1/buckets/{bucket}/legal-hold/{key}");
    let held = app.with_token(Method::PUT, &path, owner).json(&json!({"status": "ON"})).send().await;
    assert_eq!(held.expect("hold").status(), 200);
}

#[tokio::test]
async fn backend_buckets_of_their_own_get_object_lock_from_the_main_one() {
    let Some((client, main_bucket, app)) = routed_app("lockmain-").await else { return };
    let owner = app.user_session("olga", Role::User).await.access;
    let own_bucket = routed_bucket(&app, &owner, &main_bucket, "vault").await;
    let lock = client.get_object_lock_configuration().bucket(&own_bucket).send().await.expect("lock configuration");
    let enabled = lock.object_lock_configuration().and_then(|c| c.object_lock_enabled()).map(|e| e.as_str());
    assert_eq!(enabled, Some("Enabled"));

    assert_eq!(put(&app, &owner, "vault", "deed.pdf", b"%PDF-1.7".to_vec()).await.status(), 201);
    hold(&app, &owner, "vault", "deed.pdf").await;
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready["retention_enforcement"], "gateway+backend", "{ready}");
    let listed = client.list_objects_v2().bucket(&own_bucket).send().await.expect("list");
    let key = listed.contents().first().and_then(|o| o.key()).expect("the object is in its own bucket").to_owned();
    let head = client.head_object().bucket(&own_bucket).key(&key).send().await.expect("head");
    assert_eq!(head.object_lock_legal_hold_status, Some(ObjectLockLegalHoldStatus::On), "mirrored");
}

#[tokio::test]
async fn a_backend_bucket_without_object_lock_is_not_reported_as_enforcing() {
    let Some((client, main_bucket, app)) = routed_app("lockold-").await else { return };
    let owner = app.user_session("omar", Role::User).await.access;
    // As Coffer made them before 2026-12-07: the bucket's own backend bucket has no Object Lock.
    let own_bucket = routed_bucket(&app, &owner, &main_bucket, "archive").await;
    client.delete_bucket().bucket(&own_bucket).send().await.expect("delete the empty bucket");
    client.create_bucket().bucket(&own_bucket).send().await.expect("create it without Object Lock");

    // A replica started since (this one remembers what it asked at the bucket's creation).
    let app = app.replica().await;
    assert_eq!(put(&app, &owner, "archive", "deed.pdf", b"%PDF-1.7".to_vec()).await.status(), 201);
    hold(&app, &owner, "archive", "deed.pdf").await;
    let status = app.get_json("/api/v1/buckets/archive/legal-hold/deed.pdf", &owner).await;
    assert_eq!(status["status"], "ON", "Coffer enforces it alone");
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready["retention_enforcement"], "gateway", "{ready}");
    let blocked = app.with_token(Method::DELETE, "/api/v1/buckets/archive/objects/deed.pdf", &owner).send().await;
    assert_eq!(blocked.expect("delete").status(), 409);
}

/// A legal hold set while the backend was unreachable is enforced by Coffer
/// at once and queued; the job puts it on the backend object once it is back.
#[tokio::test]
async fn a_mirror_the_backend_missed_is_retried_as_a_job() {
    let Some((client, mut env)) = locked_backend("retry-").await else { return };
    let moto = env.endpoint.trim_start_matches("http://").trim_end_matches('/');
    let proxy = Proxy::start(moto.parse().expect("moto's address")).await;
    env.endpoint = format!("http://{}", proxy.addr);
    let app = spawn_app_with(|config| {
        use_s3(config, &env, "retry/");
        config.run_workers = false; // the test runs the jobs
    })
    .await;
    let owner = app.user_session("olga", Role::User).await.access;
    let created = app.with_token(Method::POST, "/api/v1/buckets", &owner).json(&json!({"name": "vault"})).send().await;
    assert_eq!(created.expect("bucket").status(), 201);
    assert_eq!(put(&app, &owner, "vault", "ledger.csv", b"a,b\n1,2\n".to_vec()).await.status(), 201);
    let ready: Value = app.get("/health/ready").await.json().await.expect("json");
    assert_eq!(ready["retention_enforcement"], "gateway+backend", "{ready}");

    proxy.cut();
    hold(&app, &owner, "vault", "ledger.csv").await;
    let delete = app.with_token(Method::DELETE, "/api/v1/buckets/vault/objects/ledger.csv", &owner).send().await;
    assert_eq!(delete.expect("delete").status(), 409, "Coffer holds it meanwhile");
    proxy.restore();

    assert_eq!(app.services.run_jobs(10).await.expect("jobs"), 1, "one mirror was queued");
    let bucket = app.services.store.bucket_by_name(&BucketName::parse("vault").expect("name")).await;
    let bucket = bucket.expect("bucket").expect("exists");
    let object = app.services.store.live_object(bucket.id, &ObjectKey::parse("ledger.csv").expect("key")).await;
    let backend_key = format!("retry/{}", object.expect("object").expect("live").blob_key);
    let head = client.head_object().bucket(&env.bucket).key(&backend_key).send().await.expect("head");
    assert_eq!(head.object_lock_legal_hold_status, Some(ObjectLockLegalHoldStatus::On));
    assert_eq!(app.services.run_jobs(10).await.expect("jobs"), 0, "the job is done");
}
