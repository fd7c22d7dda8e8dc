//! Memory bounds, measured on this process alone (one test, scenarios run in
//! sequence so nothing else allocates meanwhile): streaming a 1 GiB object
//! through each blob store and exporting 100,000 audit events must not grow
//! the resident set with the data size.

#[path = "../api/helpers.rs"]
#[allow(dead_code, reason = "the API tests' helper; this binary uses a few of its functions")]
mod helpers;
#[path = "../support/mod.rs"]
mod support;

use coffer::config::Config;
use coffer::domain::Role;
use coffer::domain::audit::{AuditEntry, Outcome};
use coffer::storage;
use futures::StreamExt;
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak counter, runs `work`, and returns how far the peak rose above the start (bytes).
async fn peak_growth<F: std::future::Future<Output = ()>>(work: F) -> u64 {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    assert!(reset, "this test needs Linux's /proc/self/clear_refs");
    let baseline = status_kib("VmRSS:");
    work.await;
    status_kib("VmHWM:").saturating_sub(baseline) * 1024
}

async fn stream_a_gibibyte(store: &dyn storage::BlobStore) {
    let size = 1024 * MIB;
    let written = store.put("memory/one-gib", support::pattern_stream(size, 1024 * 1024), None).await.expect("put");
    assert_eq!(written, size);
    let read = store.get("memory/one-gib", None).await.expect("get");
    let mut hasher = Sha256::new();
    let mut body = read.body;
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        total += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(total, size);
    store.delete("memory/one-gib").await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_whatever_the_data_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs_config = Config { fs_root: Some(dir.path().join("objects")), ..Config::default() };
    let fs_store = storage::from_config(&fs_config).await.expect("fs store");
    let growth = peak_growth(stream_a_gibibyte(&*fs_store)).await;
    println!("filesystem: 1 GiB in and out, peak RSS growth {} MiB", growth / MIB);
    assert!(growth < 64 * MIB, "filesystem streaming grew RSS by {} MiB", growth / MIB);

    if let Some(env) = support::s3_env() {
        let mut s3_config = Config::default();
        support::use_s3(&mut s3_config, &env, &format!("{}/", support::unique("memory-")));
        s3_config.s3_part_size_mib = 8;
        let s3_store = storage::from_config(&s3_config).await.expect("s3 store");
        let growth = peak_growth(stream_a_gibibyte(&*s3_store)).await;
        println!("s3: 1 GiB in and out, peak RSS growth {} MiB", growth / MIB);
        assert!(growth < 64 * MIB, "S3 streaming grew RSS by {} MiB", growth / MIB);
    }

    let app = helpers::spawn_app().await;
    let now = app.clock_now();
    for batch in 0..20 {
        let entries: Vec<AuditEntry> = (0..5000)
            .map(|n| AuditEntry {
                at: now,
                actor: format!("actor-{}", n % 13),
                action: "object.get".into(),
                bucket: Some("bulk".into()),
                key: Some(format!("folder/{batch}/{n}.bin")),
                outcome: Outcome::Success,
                ip: Some("127.0.0.1".into()),
                user_agent: Some("memory-test".into()),
                request_id: Some(format!("{batch}-{n}")),
                details: serde_json::json!({ "size": n, "padding": "x".repeat(100) }),
            })
            .collect();
        app.services.store.append_audit_batch(&entries).await.expect("seed");
    }
    let auditor = app.user_session("memory-auditor", Role::Auditor).await;
    let mut lines = 0usize;
    let growth = peak_growth(async {
        let response = app
            .with_token(reqwest::Method::GET, "/api/v1/admin/audit/export?format=jsonl", &auditor.access)
            .send()
            .await
            .expect("export");
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            lines += chunk.expect("chunk").iter().filter(|b| **b == b'\n').count();
        }
    })
    .await;
    println!("audit export: {lines} events, peak RSS growth {} MiB", growth / MIB);
    assert!(lines >= 100_000, "{lines}");
    assert!(growth < 32 * MIB, "exporting 100,000 events grew RSS by {} MiB (about 30 MiB of JSON)", growth / MIB);
    drop(app);

    let growth = peak_growth(multipart_upload_over_five_gib()).await;
    println!("multipart upload of 5 GiB + 1 MiB over HTTP (filesystem): peak RSS growth {} MiB", growth / MIB);
    assert!(growth < 64 * MIB, "the 5 GiB upload grew RSS by {} MiB", growth / MIB);
}

/// 5 GiB + 1 MiB through the resumable-upload API into the filesystem backend.
async fn multipart_upload_over_five_gib() {
    let app = helpers::spawn_app_with(|config| {
        config.storage = coffer::config::StorageKind::Fs;
        config.fs_root = None;
    })
    .await;
    let owner = app.user_session("bulk-uploader", Role::User).await;
    let bucket = app
        .with_token(reqwest::Method::POST, "/api/v1/buckets", &owner.access)
        .json(&serde_json::json!({ "name": "bulk" }))
        .send()
        .await
        .expect("bucket");
    assert_eq!(bucket.status(), 201);
    let total = 5 * 1024 * MIB + MIB;
    let created: serde_json::Value = app
        .with_token(reqwest::Method::POST, "/api/v1/buckets/bulk/uploads", &owner.access)
        .json(&serde_json::json!({ "key": "huge.bin", "size": total }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let upload = created["upload_id"].as_str().expect("upload id").to_owned();
    let part_size = 512 * MIB;
    let mut parts = Vec::new();
    let mut sent = 0;
    let mut number = 1;
    while sent < total {
        let size = part_size.min(total - sent);
        let body = reqwest::Body::wrap_stream(support::pattern_stream(size, 1024 * 1024));
        let response = app
            .with_token(
                reqwest::Method::PUT,
                &format!("/api/v1/buckets/bulk/uploads/{upload}/parts/{number}"),
                &owner.access,
            )
            .header("content-length", size.to_string())
            .body(body)
            .send()
            .await
            .expect("part");
        assert_eq!(response.status(), 200, "part {number}");
        let etag = response.json::<serde_json::Value>().await.expect("json")["etag"].clone();
        parts.push(serde_json::json!({ "part_number": number, "etag": etag }));
        sent += size;
        number += 1;
    }
    let done = app
        .with_token(reqwest::Method::POST, &format!("/api/v1/buckets/bulk/uploads/{upload}/complete"), &owner.access)
        .json(&serde_json::json!({ "parts": parts }))
        .send()
        .await
        .expect("complete");
    assert_eq!(done.status(), 201);
    let object: serde_json::Value = done.json().await.expect("json");
    assert_eq!(object["size"].as_u64(), Some(total));
    let head = app
        .with_token(reqwest::Method::HEAD, "/api/v1/buckets/bulk/objects/huge.bin", &owner.access)
        .send()
        .await
        .expect("head");
    assert_eq!(head.headers()["content-length"].to_str().ok(), Some(total.to_string().as_str()));
    let ranged = app
        .with_token(reqwest::Method::GET, "/api/v1/buckets/bulk/objects/huge.bin", &owner.access)
        .header("range", format!("bytes={}-{}", total - 16, total - 1))
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.expect("tail").len(), 16);
}
