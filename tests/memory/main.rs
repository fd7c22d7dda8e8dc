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
}
