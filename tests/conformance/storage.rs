//! `BlobStore` conformance: filesystem and S3 (Garage) must behave the same.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coffer::config::Config;
use coffer::storage::{self, BlobRange, BlobStore, CompletedPart, PresignTarget, SigningWindow, StorageError};
use sha2::{Digest, Sha256};

use crate::for_each_adapter;
use crate::support::{self, collect, pattern_stream, stream_of};

pub struct Fixture {
    store: Arc<dyn BlobStore>,
    root: Option<tempfile::TempDir>,
}

async fn fs() -> Option<Fixture> {
    let root = tempfile::tempdir().expect("tempdir");
    let config = Config { fs_root: Some(root.path().join("objects")), ..Config::default() };
    let store = storage::from_config(&config).await.expect("fs store");
    Some(Fixture { store, root: Some(root) })
}

async fn s3() -> Option<Fixture> {
    let env = support::s3_env()?;
    let mut config = Config::default();
    support::use_s3(&mut config, &env, &format!("{}/", support::unique("conformance-")));
    let store = storage::from_config(&config).await.expect("s3 store");
    Some(Fixture { store, root: None })
}

for_each_adapter!({ fs, s3 }: [
    put_get_roundtrip,
    large_unknown_length_put_uses_parts,
    declared_length_put_streams,
    range_reads,
    missing_blobs,
    overwrite_replaces,
    list_by_prefix_in_order_with_pages,
    odd_keys_are_contained,
    failed_put_leaves_nothing,
    copy_duplicates,
    multipart_lifecycle,
    completing_with_a_stale_part_loses_nothing,
    multipart_abort_and_listing,
    presign_where_supported,
    readiness_check,
]);

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

async fn put_get_roundtrip(f: &Fixture) {
    let data = b"hello coffer".to_vec();
    let written = f.store.put("a/hello.txt", stream_of(data.clone()), None).await.expect("put");
    assert_eq!(written, data.len() as u64);
    let read = f.store.get("a/hello.txt", None).await.expect("get");
    assert_eq!(read.total_size, data.len() as u64);
    assert_eq!(read.content_length, data.len() as u64);
    assert_eq!(collect(read.body).await, data);
    assert_eq!(f.store.head("a/hello.txt").await.expect("head").size, data.len() as u64);
    f.store.delete("a/hello.txt").await.expect("delete");
    assert!(matches!(f.store.head("a/hello.txt").await, Err(StorageError::NotFound)));
}

async fn large_unknown_length_put_uses_parts(f: &Fixture) {
    // 12 MiB + 5 bytes with no declared size: more than two 5 MiB parts on S3.
    let size = 12 * 1024 * 1024 + 5;
    let written = f.store.put("big", pattern_stream(size, 256 * 1024), None).await.expect("put");
    assert_eq!(written, size);
    let read = f.store.get("big", None).await.expect("get");
    assert_eq!(read.total_size, size);
    let expected = collect(pattern_stream(size, 256 * 1024)).await;
    assert_eq!(sha(&collect(read.body).await), sha(&expected));
}

async fn declared_length_put_streams(f: &Fixture) {
    let size = 3 * 1024 * 1024 + 1;
    let written = f.store.put("declared", pattern_stream(size, 100_000), Some(size)).await.expect("put");
    assert_eq!(written, size);
    assert_eq!(f.store.head("declared").await.expect("head").size, size);
}

async fn range_reads(f: &Fixture) {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    f.store.put("ranged", stream_of(data.clone()), None).await.expect("put");
    for (start, end) in [(0u64, 0u64), (100, 199), (9_999, 9_999), (5_000, 9_999)] {
        let read = f.store.get("ranged", Some(BlobRange { start, end_inclusive: end })).await.expect("range get");
        assert_eq!(read.total_size, 10_000);
        assert_eq!(read.content_length, end - start + 1);
        assert_eq!(collect(read.body).await, data[start as usize..=end as usize]);
    }
    let beyond = f.store.get("ranged", Some(BlobRange { start: 10_000, end_inclusive: 10_010 })).await;
    assert!(matches!(beyond, Err(StorageError::InvalidRange)), "{:?}", beyond.err());
}

async fn missing_blobs(f: &Fixture) {
    assert!(matches!(f.store.get("nope", None).await, Err(StorageError::NotFound)));
    assert!(matches!(f.store.head("nope").await, Err(StorageError::NotFound)));
    f.store.delete("nope").await.expect("deleting a missing blob succeeds");
}

async fn overwrite_replaces(f: &Fixture) {
    f.store.put("k", stream_of(b"first".to_vec()), None).await.expect("put 1");
    f.store.put("k", stream_of(b"second!".to_vec()), None).await.expect("put 2");
    assert_eq!(collect(f.store.get("k", None).await.expect("get").body).await, b"second!");
}

async fn list_by_prefix_in_order_with_pages(f: &Fixture) {
    let keys = ["p/b", "p/a", "p/c/d", "p/é", "q/x", "p"];
    for key in keys {
        f.store.put(key, stream_of(key.as_bytes().to_vec()), None).await.expect("put");
    }
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = f.store.list("p/", after.as_deref(), 2).await.expect("list");
        assert!(page.blobs.len() <= 2);
        listed.extend(page.blobs.iter().map(|b| b.key.clone()));
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, vec!["p/a", "p/b", "p/c/d", "p/é"]);
    let everything = f.store.list("", None, 100).await.expect("list all");
    assert_eq!(everything.blobs.len(), keys.len());
    assert_eq!(everything.blobs.iter().find(|b| b.key == "p/b").map(|b| b.size), Some(3));
}

async fn odd_keys_are_contained(f: &Fixture) {
    let keys = ["../../escape", "a\\b", "..\\..\\x", "dir/../../up", "./.", "sp ace/%41", "x/", &"long/".repeat(180)];
    for key in keys {
        f.store.put(key, stream_of(key.as_bytes().to_vec()), None).await.expect("put odd key");
        assert_eq!(collect(f.store.get(key, None).await.expect("get").body).await, key.as_bytes());
    }
    let listed: Vec<String> =
        f.store.list("", None, 1000).await.expect("list").blobs.into_iter().map(|b| b.key).collect();
    for key in keys {
        assert!(listed.iter().any(|k| k == key), "{key:?} missing from listing");
    }
    if let Some(root) = &f.root {
        // Nothing may be written outside the store's directory.
        let outside: Vec<_> =
            walk(root.path()).into_iter().filter(|p| !p.starts_with(root.path().join("objects"))).collect();
        assert!(outside.is_empty(), "files escaped the root: {outside:?}");
        let parent = root.path().parent().expect("parent");
        assert!(!parent.join("escape").exists() && !parent.join("up").exists());
    }
    for bad in ["", "nul\0byte", &"x".repeat(1025)] {
        let result = f.store.put(bad, stream_of(b"x".to_vec()), None).await;
        assert!(matches!(result, Err(StorageError::InvalidKey(_))), "{bad:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn failed_put_leaves_nothing(f: &Fixture) {
    // The body fails before its declared length (a client gone mid-upload), or with no length declared.
    for size_hint in [None, Some(7 * 1024 * 1024)] {
        let good = pattern_stream(6 * 1024 * 1024, 64 * 1024);
        let failing = futures::StreamExt::chain(
            good,
            futures::stream::iter([Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away"))]),
        );
        let result = f.store.put("interrupted", Box::pin(failing), size_hint).await;
        assert!(matches!(result, Err(StorageError::Client(_))), "{:?}", result.err());
        assert!(matches!(f.store.head("interrupted").await, Err(StorageError::NotFound)));
    }
    assert!(f.store.list("interrupted", None, 10).await.expect("list").blobs.is_empty());
    assert!(f.store.list_multipart_uploads("interrupted").await.expect("uploads").is_empty());
}

async fn copy_duplicates(f: &Fixture) {
    f.store.put("src/ü file", stream_of(b"copy me".to_vec()), None).await.expect("put");
    f.store.copy("src/ü file", "dst/copied").await.expect("copy");
    assert_eq!(collect(f.store.get("dst/copied", None).await.expect("get").body).await, b"copy me");
    assert!(f.store.copy("src/missing", "dst/x").await.is_err());
}

async fn multipart_lifecycle(f: &Fixture) {
    let upload = f.store.create_multipart("mp/object").await.expect("create");
    let part1 = collect(pattern_stream(5 * 1024 * 1024, 65_536)).await;
    let part2 = b"tail bytes".to_vec();
    let p2 = f
        .store
        .upload_part("mp/object", &upload, 2, stream_of(part2.clone()), Some(part2.len() as u64))
        .await
        .expect("part 2");
    let p1 = f
        .store
        .upload_part("mp/object", &upload, 1, stream_of(part1.clone()), Some(part1.len() as u64))
        .await
        .expect("part 1");
    assert_eq!(p1.size, part1.len() as u64);
    let parts = f.store.list_parts("mp/object", &upload).await.expect("list parts");
    assert_eq!(parts.iter().map(|p| p.part_number).collect::<Vec<_>>(), vec![1, 2]);
    assert!(matches!(f.store.head("mp/object").await, Err(StorageError::NotFound)), "invisible before complete");
    let completed = [
        CompletedPart { part_number: 1, etag: p1.etag.clone() },
        CompletedPart { part_number: 2, etag: p2.etag.clone() },
    ];
    f.store.complete_multipart("mp/object", &upload, &completed).await.expect("complete");
    let mut expected = part1;
    expected.extend_from_slice(&part2);
    let read = f.store.get("mp/object", None).await.expect("get");
    assert_eq!(read.total_size, expected.len() as u64);
    assert_eq!(sha(&collect(read.body).await), sha(&expected));
    // A completion sent again (its first answer lost) and a listing find the
    // upload gone (S3's NoSuchUpload; some S3s answer a repeated completion
    // as the first), never a backend fault; the assembled object stays.
    let again = f.store.complete_multipart("mp/object", &upload, &completed).await;
    assert!(matches!(again, Ok(()) | Err(StorageError::NotFound)), "{again:?}");
    let listed = f.store.list_parts("mp/object", &upload).await;
    assert!(matches!(&listed, Err(StorageError::NotFound)) || listed.as_ref().is_ok_and(Vec::is_empty), "{listed:?}");
    assert_eq!(f.store.head("mp/object").await.expect("head").size, expected.len() as u64);
}

/// A part replaced after it was listed is named to the completion with its
/// old ETag: a `PartMismatch` (409 for the client), and the upload stays
/// open and completes with the ETag it now has.
async fn completing_with_a_stale_part_loses_nothing(f: &Fixture) {
    let upload = f.store.create_multipart("mp3/object").await.expect("create");
    let first =
        f.store.upload_part("mp3/object", &upload, 1, stream_of(b"first".to_vec()), Some(5)).await.expect("part");
    let resent =
        f.store.upload_part("mp3/object", &upload, 1, stream_of(b"again".to_vec()), Some(5)).await.expect("part");
    assert_ne!(first.etag, resent.etag);
    let stale = [CompletedPart { part_number: 1, etag: first.etag }];
    let result = f.store.complete_multipart("mp3/object", &upload, &stale).await;
    assert!(matches!(result, Err(StorageError::PartMismatch(_))), "{result:?}");
    assert!(matches!(f.store.head("mp3/object").await, Err(StorageError::NotFound)));
    let current = [CompletedPart { part_number: 1, etag: resent.etag }];
    f.store.complete_multipart("mp3/object", &upload, &current).await.expect("complete");
    assert_eq!(collect(f.store.get("mp3/object", None).await.expect("get").body).await, b"again");
}

async fn multipart_abort_and_listing(f: &Fixture) {
    let upload = f.store.create_multipart("mp2/abandoned").await.expect("create");
    f.store.upload_part("mp2/abandoned", &upload, 1, stream_of(b"x".to_vec()), Some(1)).await.expect("part");
    let open = f.store.list_multipart_uploads("mp2/").await.expect("list uploads");
    assert!(open.iter().any(|u| u.upload_id == upload && u.key == "mp2/abandoned"), "{open:?}");
    f.store.abort_multipart("mp2/abandoned", &upload).await.expect("abort");
    f.store.abort_multipart("mp2/abandoned", &upload).await.expect("abort twice");
    let open = f.store.list_multipart_uploads("mp2/").await.expect("list uploads");
    assert!(!open.iter().any(|u| u.upload_id == upload));
    assert!(matches!(f.store.head("mp2/abandoned").await, Err(StorageError::NotFound)));
}

/// Valid from now, for a minute.
fn a_minute() -> SigningWindow {
    SigningWindow { from: chrono::Utc::now(), lasting: Duration::from_secs(60) }
}

async fn presign_where_supported(f: &Fixture) {
    f.store.put("presigned", stream_of(b"signed bytes".to_vec()), None).await.expect("put");
    let target = PresignTarget::Get {
        content_type: "text/plain".into(),
        content_disposition: "attachment; filename=\"notes.txt\"".into(),
    };
    let result = f.store.presign("presigned", target, a_minute()).await;
    match f.store.kind() {
        "fs" => assert!(matches!(result, Err(StorageError::Unsupported(_)))),
        _ => {
            let request = result.expect("presign");
            let client = reqwest::Client::builder().no_proxy().build().expect("client");
            let fetched = client.get(&request.url).send().await.expect("fetch");
            assert_eq!(fetched.headers()["content-type"], "text/plain", "served as the object's type");
            assert_eq!(fetched.headers()["content-disposition"], "attachment; filename=\"notes.txt\"");
            let body = fetched.bytes().await.expect("body");
            assert_eq!(body, Bytes::from_static(b"signed bytes"));
            let put = f.store.presign("presigned-put", PresignTarget::Put, a_minute()).await.expect("presign put");
            let status = client.put(&put.url).body("uploaded").send().await.expect("put").status();
            assert!(status.is_success(), "{status}");
            assert_eq!(collect(f.store.get("presigned-put", None).await.expect("get").body).await, b"uploaded");
        }
    }
}

async fn readiness_check(f: &Fixture) {
    f.store.check().await.expect("reachable store passes its check");
}
