//! Presigned URLs: plain clients, tamper resistance (fuzzed), expiry, revocation,
//! key rotation, presigned PUT through every normal check, parts, direct mode.

use chrono::Duration as Span;
use chrono::SubsecRound;
use coffer::domain::Role;
use proptest::strategy::{Strategy, ValueTree};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{TestApp, Tokens, spawn_app, spawn_app_with};
use crate::objects::{object_path, owner_with_bucket, put};
use crate::support;

async fn presign(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.with_token(Method::POST, "/api/v1/presign", token).json(&body).send().await.expect("presign")
}

async fn presigned_url(app: &TestApp, token: &str, bucket: &str, key: &str, method: &str, seconds: i64) -> String {
    let response =
        presign(app, token, json!({"bucket": bucket, "key": key, "method": method, "expires_in_seconds": seconds}))
            .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["method"], method);
    body["url"].as_str().expect("url").to_owned()
}

/// Starts a multipart upload of `key`: its id.
async fn open_upload(app: &TestApp, token: &str, bucket: &str, key: &str) -> String {
    let created = app
        .with_token(Method::POST, &format!("/api/v1/buckets/{bucket}/uploads"), token)
        .json(&json!({"key": key}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.expect("json")["upload_id"].as_str().expect("id").to_owned()
}

/// PUTs `body` to a direct part URL (S3's own): the part's ETag, as the backend gave it.
async fn put_direct_part(url: &str, body: Vec<u8>) -> String {
    let part = crate::helpers::client().put(url).body(body).send().await.expect("put");
    assert!(part.status().is_success(), "{}", part.status());
    part.headers()["etag"].to_str().expect("ascii").to_owned()
}

/// A second instance of `app` whose transfer mode is `direct`.
async fn direct_replica(app: &TestApp) -> TestApp {
    let mut config = app.config.clone();
    config.transfer_mode = coffer::config::TransferMode::Direct;
    config.bind = "127.0.0.1:0".into();
    app.replica_with(config).await
}

/// A direct URL for part 1 under `parts_path`, signed for `size` bytes.
async fn presign_direct_part(direct: &TestApp, token: &str, parts_path: &str, size: i64) -> Value {
    let response = direct
        .with_token(Method::POST, &format!("{parts_path}/1/presign"), token)
        .json(&json!({ "size": size }))
        .send()
        .await
        .expect("presign");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Completes `upload` from its part 1 with `etag`.
async fn complete_one_part(app: &TestApp, token: &str, bucket: &str, upload: &str, etag: &str) -> reqwest::Response {
    app.with_token(Method::POST, &format!("/api/v1/buckets/{bucket}/uploads/{upload}/complete"), token)
        .json(&json!({"parts": [{"part_number": 1, "etag": etag}]}))
        .send()
        .await
        .expect("complete")
}

async fn with_object(app: &TestApp, user: &str, bucket: &str) -> Tokens {
    let owner = owner_with_bucket(app, user, bucket).await;
    assert_eq!(put(app, &owner.access, bucket, "docs/report 1.txt", b"0123456789".to_vec()).await.status(), 201);
    owner
}

#[tokio::test]
async fn a_plain_client_reads_through_a_presigned_get() {
    let app = spawn_app().await;
    let owner = with_object(&app, "pia", "pia-files").await;
    let url = presigned_url(&app, &owner.access, "pia-files", "docs/report 1.txt", "GET", 300).await;
    assert!(url.starts_with(&app.address), "{url}");
    let plain = crate::helpers::client();
    let response = plain.get(&url).send().await.expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "0123456789");
    let ranged = plain.get(&url).header("range", "bytes=2-4").send().await.expect("get");
    assert_eq!((ranged.status().as_u16(), ranged.text().await.expect("body")), (206, "234".to_owned()));
    let etag = plain.get(&url).send().await.expect("get").headers()["etag"].clone();
    let cached = plain.get(&url).header("if-none-match", etag).send().await.expect("get");
    assert_eq!(cached.status(), 304);
    assert_eq!(plain.put(&url).body("x").send().await.expect("put").status(), 403, "a GET URL does not allow PUT");
    assert_eq!(plain.head(&url).send().await.expect("head").status(), 403, "nor HEAD");

    app.clock.advance(Span::seconds(301));
    assert_eq!(plain.get(&url).send().await.expect("get").status(), 403, "expired");
}

/// Replaces the character at `index` with another of the same class (so the URL keeps its shape).
fn mutate(url: &str, index: usize, pick: usize) -> Option<String> {
    let bytes = url.as_bytes();
    let original = bytes[index];
    let alphabet: &[u8] = if original.is_ascii_digit() {
        b"0123456789"
    } else if original.is_ascii_lowercase() {
        b"abcdefghijklmnopqrstuvwxyz"
    } else if original.is_ascii_uppercase() {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    } else {
        return None;
    };
    let replacement = alphabet[pick % alphabet.len()];
    (replacement != original).then(|| {
        let mut mutated = bytes.to_vec();
        mutated[index] = replacement;
        String::from_utf8(mutated).expect("ascii")
    })
}

#[tokio::test]
async fn a_thousand_mutations_of_a_signed_url_are_all_refused() {
    let app = spawn_app().await;
    let owner = with_object(&app, "quin", "quin-files").await;
    // A sibling the mutations could land on, to prove signatures bind the exact key.
    put(&app, &owner.access, "quin-files", "docs/report 2.txt", b"other".to_vec()).await;
    let url = presigned_url(&app, &owner.access, "quin-files", "docs/report 1.txt", "GET", 3600).await;
    let start = url.find("/objects/").expect("object path") + "/objects/".len();
    let plain = crate::helpers::client();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let positions =
        proptest::collection::vec((start..url.len(), 0usize..64), 1400).new_tree(&mut runner).expect("tree").current();
    let mut tried = 0;
    let mut refused = 0;
    for (index, pick) in positions {
        let Some(mutated) = mutate(&url, index, pick) else { continue };
        tried += 1;
        let status = plain.get(&mutated).send().await.expect("get").status().as_u16();
        assert!(!(200..400).contains(&status), "mutation accepted ({status}): {mutated}");
        if status == 403 {
            refused += 1;
        }
        if tried == 1000 {
            break;
        }
    }
    assert_eq!(tried, 1000);
    assert_eq!(refused, 1000, "every mutation of key, expiry, signer, key id or signature is a 403");
    assert_eq!(plain.get(&url).send().await.expect("get").status(), 200, "the original still works");
}

#[tokio::test]
async fn presigned_puts_pass_every_normal_check_and_are_audited() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "rhea", "rhea-files").await;
    let url = presigned_url(&app, &owner.access, "rhea-files", "incoming/upload.bin", "PUT", 600).await;
    let plain = crate::helpers::client();
    let created = plain.put(&url).body(vec![9u8; 1000]).send().await.expect("put");
    assert_eq!(created.status(), 201);
    let body =
        app.with_token(Method::GET, &object_path("rhea-files", "incoming/upload.bin"), &owner.access).send().await;
    assert_eq!(body.expect("get").bytes().await.expect("body").len(), 1000);

    let admin = app.user_session("root", Role::Admin).await;
    app.with_token(Method::PATCH, "/api/v1/admin/users/rhea", &admin.access)
        .json(&json!({"quota_bytes": 1500}))
        .send()
        .await
        .expect("quota");
    let over = plain.put(&url).body(vec![1u8; 2000]).send().await.expect("put");
    assert_eq!(over.status(), 413, "quota applies to presigned PUTs");
    let bad_key_url = presign(
        &app,
        &owner.access,
        json!({"bucket": "rhea-files", "key": "a/../b", "method": "PUT", "expires_in_seconds": 60}),
    )
    .await;
    assert_eq!(bad_key_url.status(), 400);

    let auditor = app.user_session("sage", Role::Auditor).await;
    let page: Value = app.get_json("/api/v1/admin/audit?bucket=rhea-files", &auditor.access).await;
    let events = page["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["action"] == "presign.create" && e["actor"] == "rhea"));
    assert!(events.iter().any(|e| e["action"] == "object.put" && e["actor"] == "presign:rhea"));
}

#[tokio::test]
async fn disabling_resetting_or_revoking_voids_urls_at_once() {
    let app = spawn_app().await;
    let admin = app.user_session("root", Role::Admin).await;
    let owner = with_object(&app, "tara", "tara-files").await;
    let plain = crate::helpers::client();
    let key: Value = app.create_api_key(&owner.access, json!({"name": "signer"})).await;
    let api_key = key["key"].as_str().expect("key").to_owned();
    let by_key = presigned_url(&app, &api_key, "tara-files", "docs/report 1.txt", "GET", 3600).await;
    let by_session = presigned_url(&app, &owner.access, "tara-files", "docs/report 1.txt", "GET", 3600).await;
    assert_eq!(plain.get(&by_key).send().await.expect("get").status(), 200);
    let revoke = app
        .with_token(Method::DELETE, &format!("/api/v1/me/api-keys/{}", key["id"].as_str().expect("id")), &owner.access)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 204);
    assert_eq!(plain.get(&by_key).send().await.expect("get").status(), 403, "revoking the key voids its URLs");
    assert_eq!(plain.get(&by_session).send().await.expect("get").status(), 200);

    let patch =
        |body: Value| app.with_token(Method::PATCH, "/api/v1/admin/users/tara", &admin.access).json(&body).send();
    assert_eq!(patch(json!({"password": crate::helpers::strong_password()})).await.expect("reset").status(), 200);
    assert_eq!(plain.get(&by_session).send().await.expect("get").status(), 403, "a password reset voids URLs");

    let second = app.user_session("uri", Role::User).await;
    let created = app
        .with_token(Method::POST, "/api/v1/buckets", &second.access)
        .json(&json!({"name": "uri-files"}))
        .send()
        .await;
    assert_eq!(created.expect("bucket").status(), 201);
    put(&app, &second.access, "uri-files", "x", b"x".to_vec()).await;
    let url = presigned_url(&app, &second.access, "uri-files", "x", "GET", 3600).await;
    let disable = app
        .with_token(Method::PATCH, "/api/v1/admin/users/uri", &admin.access)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("disable");
    assert_eq!(disable.status(), 200);
    assert_eq!(plain.get(&url).send().await.expect("get").status(), 403, "a disabled signer's URLs die");

    // The answer never tells which check failed, so made-up URLs cannot probe
    // accounts; the trail keeps the reason for authentic URLs refused (the
    // revoked key's), not for a disabled signer's (disabling changes the
    // generation the signature binds, as a forgery would not match either).
    let disabled = crate::helpers::problem(plain.get(&url).send().await.expect("get")).await;
    let signer_of = |url: &str| {
        url.split("X-Coffer-Signer=").nth(1).and_then(|rest| rest.split('&').next()).expect("signer").to_owned()
    };
    let signer = signer_of(&url);
    let made_up = url.replace(&format!("X-Coffer-Signer={signer}"), "X-Coffer-Signer=987654");
    let unknown = crate::helpers::problem(plain.get(&made_up).send().await.expect("get")).await;
    assert_eq!(disabled["detail"], "the signed URL is not valid");
    assert_eq!(unknown["detail"], disabled["detail"]);
    let page: Value = app.get_json("/api/v1/admin/audit?action=presign.rejected", &admin.access).await;
    let events = page["events"].as_array().expect("events");
    let actors: Vec<&str> = events.iter().filter_map(|e| e["actor"].as_str()).collect();
    assert_eq!(actors, [format!("presign:{}", signer_of(&by_key))], "only the revoked key's URL");
    assert_eq!(events[0]["details"]["reason"], "the API key that signed this URL was revoked");

    // A forged signature under an existing signer's name writes nothing: the
    // signature is checked before the signer's standing, and only an
    // authentic URL's refusal is audited.
    let signature = url.split("X-Coffer-Signature=").nth(1).and_then(|rest| rest.split('&').next()).expect("sig");
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    let forged = url.replace(signature, &format!("{flipped}{}", &signature[1..]));
    let rejected = || async {
        let page: Value = app.get_json("/api/v1/admin/audit?action=presign.rejected", &admin.access).await;
        page["events"].as_array().expect("events").len()
    };
    let before = rejected().await;
    let answer = crate::helpers::problem(plain.get(&forged).send().await.expect("get")).await;
    assert_eq!(answer["detail"], "the signed URL is not valid");
    assert_eq!(rejected().await, before, "nothing recorded for a forgery");
}

#[tokio::test]
async fn the_previous_signing_key_works_only_during_the_grace_period() {
    let first_key = support::unique("");
    let key_a = format!("{first_key}{first_key}");
    let app = spawn_app_with(|config| config.presign_key = Some(SecretString::from(key_a.clone()))).await;
    let owner = with_object(&app, "vera", "vera-files").await;
    let url = presigned_url(&app, &owner.access, "vera-files", "docs/report 1.txt", "GET", 86_400).await;
    let mut rotated_config = app.config.clone();
    rotated_config.bind = "127.0.0.1:0".into();
    let second = support::unique("");
    rotated_config.presign_key = Some(SecretString::from(format!("{second}{second}")));
    rotated_config.presign_previous_key = Some(SecretString::from(key_a));
    rotated_config.presign_previous_key_until = Some(chrono::Utc::now() + Span::hours(1));
    let rotated = app.replica_with(rotated_config).await;
    let on_rotated = url.replace(&app.address, &rotated.address);
    let plain = crate::helpers::client();
    assert_eq!(
        plain.get(&on_rotated).send().await.expect("get").status(),
        200,
        "old URLs work during the grace period"
    );
    let fresh = presigned_url(&rotated, &owner.access, "vera-files", "docs/report 1.txt", "GET", 86_400).await;
    assert!(!fresh.contains(&url[url.find("KeyId=").expect("key id")..]), "new URLs carry the new key id");
    rotated.clock.advance(Span::hours(2));
    assert_eq!(plain.get(&on_rotated).send().await.expect("get").status(), 403, "old URLs die after the grace period");
    assert_eq!(plain.get(&fresh).send().await.expect("get").status(), 200, "new ones keep working");
}

#[tokio::test]
async fn presign_requests_are_validated_and_authorized() {
    let app = spawn_app().await;
    let owner = with_object(&app, "wren", "wren-files").await;
    let reader = app.user_session("xena", Role::User).await;
    for body in [
        json!({"bucket": "wren-files", "key": "x", "method": "GET", "expires_in_seconds": 0}),
        json!({"bucket": "wren-files", "key": "x", "method": "GET", "expires_in_seconds": 604_801}),
        json!({"bucket": "wren-files", "key": "x", "method": "DELETE", "expires_in_seconds": 60}),
    ] {
        assert_eq!(presign(&app, &owner.access, body.clone()).await.status(), 400, "{body}");
    }
    let seven_days = json!({"bucket": "wren-files", "key": "x", "method": "GET", "expires_in_seconds": 604_800});
    assert_eq!(presign(&app, &owner.access, seven_days).await.status(), 200);
    let stranger =
        json!({"bucket": "wren-files", "key": "docs/report 1.txt", "method": "GET", "expires_in_seconds": 60});
    assert_eq!(presign(&app, &reader.access, stranger).await.status(), 404);
    let direct = json!({"bucket": "wren-files", "key": "docs/report 1.txt", "method": "GET", "expires_in_seconds": 60, "transfer_mode": "direct"});
    let refused = presign(&app, &owner.access, direct).await.status().as_u16();
    assert!(refused == 400 || refused == 403, "direct mode is off by default: {refused}");
}

#[tokio::test]
async fn parts_can_be_uploaded_to_presigned_urls() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "yuki", "yuki-files").await;
    let created: Value = app
        .with_token(Method::POST, "/api/v1/buckets/yuki-files/uploads", &owner.access)
        .json(&json!({"key": "video.bin"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let upload = created["upload_id"].as_str().expect("id").to_owned();
    let presigned: Value = app
        .with_token(
            Method::POST,
            &format!("/api/v1/buckets/yuki-files/uploads/{upload}/parts/1/presign"),
            &owner.access,
        )
        .send()
        .await
        .expect("presign")
        .json()
        .await
        .expect("json");
    assert_eq!(presigned["method"], "PUT");
    let url = presigned["url"].as_str().expect("url");
    let part = crate::helpers::client().put(url).body(vec![3u8; 4096]).send().await.expect("put");
    assert_eq!(part.status(), 200);
    let etag = part.json::<Value>().await.expect("json")["etag"].clone();
    let elsewhere = url.replace("/parts/1?", "/parts/2?");
    assert_eq!(crate::helpers::client().put(&elsewhere).body("x").send().await.expect("put").status(), 403);
    let done = app
        .with_token(Method::POST, &format!("/api/v1/buckets/yuki-files/uploads/{upload}/complete"), &owner.access)
        .json(&json!({"parts": [{"part_number": 1, "etag": etag}]}))
        .send()
        .await
        .expect("complete");
    assert_eq!(done.status(), 201);
    let auditor = app.user_session("tove", Role::Auditor).await;
    let page: Value =
        app.get_json("/api/v1/admin/audit?bucket=yuki-files&action=presign.create", &auditor.access).await;
    let issued = page["events"].as_array().expect("events");
    assert!(
        issued.iter().any(|e| e["details"]["upload_id"] == upload.as_str() && e["details"]["part_number"] == 1),
        "issuing a part URL is audited: {issued:?}"
    );
}

#[tokio::test]
async fn direct_mode_hands_out_the_backends_own_urls() {
    let Some(_) = support::s3_env() else { return };
    let app = spawn_app_with(|config| config.allow_direct_transfer = true).await;
    let owner = with_object(&app, "zola", "zola-files").await;
    let response = presign(
        &app,
        &owner.access,
        json!({"bucket": "zola-files", "key": "docs/report 1.txt", "method": "GET", "expires_in_seconds": 300, "transfer_mode": "direct"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let url = body["url"].as_str().expect("url").to_owned();
    assert_eq!(body["transfer_mode"], "direct");
    assert!(url.starts_with(app.config.s3_endpoint.as_deref().expect("endpoint")), "{url}");
    assert!(url.contains("X-Amz-Signature="));
    assert_eq!(crate::helpers::client().get(&url).send().await.expect("get").text().await.expect("body"), "0123456789");

    // boto3's own HTTP stack consumes the URL (when boto3 is installed: the test command installs it).
    let script = "import sys, botocore.awsrequest, botocore.httpsession\n\
                  request = botocore.awsrequest.AWSRequest(method='GET', url=sys.argv[1]).prepare()\n\
                  response = botocore.httpsession.URLLib3Session().send(request)\n\
                  assert response.status_code == 200, response.status_code\n\
                  sys.stdout.write(response.content.decode())";
    let has_boto3 =
        std::process::Command::new("python3").args(["-c", "import boto3"]).status().is_ok_and(|s| s.success());
    assert!(has_boto3 || !support::services_required(), "boto3 is required on the real-services pass");
    if has_boto3 {
        let output = std::process::Command::new("python3").args(["-c", script, &url]).output().expect("python3");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "0123456789");
    }

    // Direct parts: the client PUTs to S3, Coffer learns the parts from the backend at completion.
    let upload = open_upload(&app, &owner.access, "zola-files", "direct.bin").await;
    let direct = direct_replica(&app).await;
    let parts_path = format!("/api/v1/buckets/zola-files/uploads/{upload}/parts");
    let presigned = presign_direct_part(&direct, &owner.access, &parts_path, 2048).await;
    assert_eq!(presigned["headers"]["content-length"], "2048", "{presigned}");
    let backend_etag = put_direct_part(presigned["url"].as_str().expect("url"), vec![4u8; 2048]).await;
    let done = complete_one_part(&direct, &owner.access, "zola-files", &upload, &backend_etag).await;
    assert_eq!(done.status(), 201);
    assert_eq!(done.json::<Value>().await.expect("json")["size"], 2048);

    // Signed at Coffer's time (aligned to the database's), not the host's:
    // the URL lasts exactly until the `expires_at` it was handed out with.
    app.clock.advance(chrono::Duration::hours(3));
    let later_owner = with_object(&app, "zeno", "zeno-files").await;
    let later = presign(
        &app,
        &later_owner.access,
        json!({"bucket": "zeno-files", "key": "docs/report 1.txt", "method": "GET", "expires_in_seconds": 300, "transfer_mode": "direct"}),
    )
    .await;
    let later: Value = later.json().await.expect("json");
    let url = reqwest::Url::parse(later["url"].as_str().expect("url")).expect("a URL");
    let query = |name: &str| url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned());
    let signed_at = chrono::NaiveDateTime::parse_from_str(&query("X-Amz-Date").expect("date"), "%Y%m%dT%H%M%SZ");
    let lasting = query("X-Amz-Expires").expect("expires").parse::<i64>().expect("seconds");
    let expires_at: chrono::DateTime<chrono::Utc> =
        later["expires_at"].as_str().expect("expires_at").parse().expect("time");
    assert_eq!(signed_at.expect("date").and_utc() + chrono::Duration::seconds(lasting), expires_at.trunc_subsecs(0));

    // S3's own URL cannot check the key at use: it is signed to end with it.
    let key: Value = app.create_api_key(&later_owner.access, json!({"name": "a day", "expires_in_days": 1})).await;
    let week = json!({"bucket": "zeno-files", "key": "docs/report 1.txt", "method": "GET", "expires_in_seconds": 604_800, "transfer_mode": "direct"});
    let by_key: Value = presign(&app, key["key"].as_str().expect("key"), week).await.json().await.expect("json");
    let url = reqwest::Url::parse(by_key["url"].as_str().expect("url")).expect("a URL");
    let lasting = url.query_pairs().find(|(name, _)| name == "X-Amz-Expires").expect("expires").1.parse::<i64>();
    assert!(lasting.expect("seconds") <= 86_400, "{url}");
}

/// A direct part never passes through Coffer, so its URL is signed for an
/// exact size that is reserved against the quota when the URL is issued: a
/// quota cannot be outrun by parts sent straight to S3 and never completed.
#[tokio::test]
async fn direct_part_urls_are_signed_for_a_size_reserved_against_the_quota() {
    let Some(_) = support::s3_env() else { return };
    const KIB: i64 = 1024;
    let app = spawn_app_with(|config| config.transfer_mode = coffer::config::TransferMode::Direct).await;
    let owner = owner_with_bucket(&app, "yves", "yves-files").await;
    // Where direct is the default, a PUT that names no mode still gets a (gateway) URL.
    let put_url = |mode: Option<&str>| {
        let mut body = json!({"bucket": "yves-files", "key": "via-url.txt", "method": "PUT", "expires_in_seconds": 60});
        if let Some(mode) = mode {
            body["transfer_mode"] = json!(mode);
        }
        presign(&app, &owner.access, body)
    };
    let plain = put_url(None).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.json::<Value>().await.expect("json")["transfer_mode"], "gateway");
    assert_eq!(put_url(Some("direct")).await.status(), 400, "asked for explicitly, it is refused");
    let admin = app.user_session("root", Role::Admin).await;
    let quota = app
        .with_token(Method::PATCH, "/api/v1/admin/users/yves", &admin.access)
        .json(&json!({"quota_bytes": 10 * KIB}))
        .send()
        .await
        .expect("quota");
    assert!(quota.status().is_success(), "{}", quota.status());
    let used = || async { app.get_json("/api/v1/me", &owner.access).await["used_bytes"].as_i64().expect("used") };
    let sign = |upload: String, part: i64, body: Option<Value>| {
        let request = app.with_token(
            Method::POST,
            &format!("/api/v1/buckets/yves-files/uploads/{upload}/parts/{part}/presign"),
            &owner.access,
        );
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move { request.send().await.expect("presign") }
    };
    let upload = open_upload(&app, &owner.access, "yves-files", "direct.bin").await;

    let no_size = sign(upload.clone(), 1, None).await;
    assert_eq!(no_size.status(), 400);
    assert_eq!(no_size.json::<Value>().await.expect("json")["type"], "/problems/part-size-required");
    assert_eq!(sign(upload.clone(), 1, Some(json!({"size": -1}))).await.status(), 400);
    assert_eq!(sign(upload.clone(), 1, Some(json!({"sise": 1}))).await.status(), 400, "unknown field");

    let first = sign(upload.clone(), 1, Some(json!({"size": 6 * KIB}))).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    assert_eq!(used().await, 6 * KIB, "reserved when the URL is issued");
    // Signing the same part again, even for less, reserves nothing more and gives nothing back.
    assert_eq!(sign(upload.clone(), 1, Some(json!({"size": 6 * KIB}))).await.status(), 200);
    assert_eq!(sign(upload.clone(), 1, Some(json!({"size": KIB}))).await.status(), 200);
    assert_eq!(used().await, 6 * KIB);
    let over = sign(upload.clone(), 2, Some(json!({"size": 5 * KIB}))).await;
    assert_eq!(over.status(), 413, "6 + 5 KiB exceed the 10 KiB quota");
    assert_eq!(over.json::<Value>().await.expect("json")["type"], "/problems/quota-exceeded");
    assert_eq!(used().await, 6 * KIB);

    // S3 holds the URL to its signed length.
    let url = first["url"].as_str().expect("url");
    let longer = crate::helpers::client().put(url).body(vec![7u8; 9 * 1024]).send().await.expect("put");
    assert!(longer.status().is_client_error(), "a body longer than signed: {}", longer.status());
    let etag = put_direct_part(url, vec![7u8; 6 * 1024]).await;
    let done = complete_one_part(&app, &owner.access, "yves-files", &upload, &etag).await;
    assert_eq!(done.status(), 201);
    assert_eq!(used().await, 6 * KIB, "completion charges the object's size in place of the reservation");

    // An aborted upload gives its reservations back.
    let abandoned = open_upload(&app, &owner.access, "yves-files", "abandoned.bin").await;
    assert_eq!(sign(abandoned.clone(), 1, Some(json!({"size": 4 * KIB}))).await.status(), 200);
    assert_eq!(used().await, 10 * KIB);
    let aborted = app
        .with_token(Method::DELETE, &format!("/api/v1/buckets/yves-files/uploads/{abandoned}"), &owner.access)
        .send()
        .await
        .expect("abort");
    assert_eq!(aborted.status(), 204);
    assert_eq!(used().await, 6 * KIB);
}

/// A part re-sent straight to S3 after Coffer received it through the
/// gateway: the backend's part is the one listed and completed.
#[tokio::test]
async fn a_part_resent_directly_replaces_the_one_received_through_the_gateway() {
    let Some(_) = support::s3_env() else { return };
    let app = spawn_app_with(|config| config.allow_direct_transfer = true).await;
    let owner = owner_with_bucket(&app, "xena", "xena-files").await;
    let upload = open_upload(&app, &owner.access, "xena-files", "twice.bin").await;
    let parts_path = format!("/api/v1/buckets/xena-files/uploads/{upload}/parts");
    let through_gateway =
        app.with_token(Method::PUT, &format!("{parts_path}/1"), &owner.access).body(vec![1u8; 1000]).send().await;
    assert_eq!(through_gateway.expect("put").status(), 200);
    let listed: Value = app.get_json(&parts_path, &owner.access).await;
    assert_eq!(listed["parts"].as_array().map(Vec::len), Some(1), "listed once: {listed}");
    assert_eq!(listed["parts"][0]["size"], 1000);

    let direct = direct_replica(&app).await;
    let presigned = presign_direct_part(&direct, &owner.access, &parts_path, 700).await;
    let etag = put_direct_part(presigned["url"].as_str().expect("url"), vec![2u8; 700]).await;
    let listed: Value = app.get_json(&parts_path, &owner.access).await;
    assert_eq!(listed["parts"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["parts"][0]["size"], 700, "the backend's part: {listed}");
    let done = complete_one_part(&app, &owner.access, "xena-files", &upload, etag.trim_matches('"')).await;
    assert_eq!(done.status(), 201);
    assert_eq!(done.json::<Value>().await.expect("json")["size"], 700);
    let body = app.with_token(Method::GET, &object_path("xena-files", "twice.bin"), &owner.access).send().await;
    assert_eq!(body.expect("get").bytes().await.expect("body").as_ref(), &[2u8; 700][..]);
}

/// A URL never outlives the API key that signs it: one asked for longer
/// expires with the key (the backend's own URLs could not tell otherwise).
#[tokio::test]
async fn urls_signed_by_a_key_expire_with_it() {
    let app = spawn_app().await;
    let owner = with_object(&app, "kit", "kit-files").await;
    let key: Value = app.create_api_key(&owner.access, json!({"name": "for a day", "expires_in_days": 1})).await;
    let key_expiry: chrono::DateTime<chrono::Utc> =
        key["expires_at"].as_str().expect("expires_at").parse().expect("time");
    let week =
        json!({"bucket": "kit-files", "key": "docs/report 1.txt", "method": "GET", "expires_in_seconds": 604_800});
    let capped: Value =
        presign(&app, key["key"].as_str().expect("key"), week.clone()).await.json().await.expect("json");
    let expires_at: chrono::DateTime<chrono::Utc> =
        capped["expires_at"].as_str().expect("expires_at").parse().expect("time");
    // (The database keeps microseconds.)
    assert!((expires_at - key_expiry).abs() < Span::milliseconds(1), "capped at the key's expiry: {expires_at}");
    let by_session: Value = presign(&app, &owner.access, week).await.json().await.expect("json");
    let session_expiry: chrono::DateTime<chrono::Utc> =
        by_session["expires_at"].as_str().expect("at").parse().expect("time");
    assert_eq!(session_expiry - app.clock_now(), Span::days(7), "a session's URL lasts what it asked for");
}
