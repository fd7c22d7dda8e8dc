//! Objects over HTTP, the connection's side: clients that vanish mid-upload,
//! graceful shutdown with uploads in flight, bodies of unknown length, audit.

use std::time::Duration;

use coffer::domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::objects::{blob_count, get, object_path, owner_with_bucket, put, sha256};

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "emil", "emil-files").await;
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.expect("connect");
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 10000000\r\n\r\n",
        object_path("emil-files", "half.bin"),
        owner.access
    );
    socket.write_all(head.as_bytes()).await.expect("headers");
    socket.write_all(&vec![7u8; 2_000_000]).await.expect("some body");
    drop(socket);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pending =
            app.services.store.stale_objects(chrono::Utc::now() + chrono::Duration::days(1), 10).await.expect("rows");
        if pending.is_empty() && blob_count(&app).await == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the interrupted write was not cleaned up: {pending:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&app, &owner.access, "emil-files", "half.bin").await.status(), 404);
}

#[tokio::test]
async fn object_events_are_audited() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "finn", "finn-files").await;
    put(&app, &owner.access, "finn-files", "a", b"1".to_vec()).await;
    get(&app, &owner.access, "finn-files", "a").await.bytes().await.expect("body");
    app.with_token(Method::POST, "/api/v1/buckets/finn-files/copy/a", &owner.access)
        .json(&json!({"to_key": "b"}))
        .send()
        .await
        .expect("copy");
    let elsewhere = app.with_token(Method::POST, "/api/v1/buckets", &owner.access).json(&json!({"name": "finn-tmp"}));
    assert_eq!(elsewhere.send().await.expect("bucket").status(), 201);
    let copied_out = app
        .with_token(Method::POST, "/api/v1/buckets/finn-files/copy/a", &owner.access)
        .json(&json!({"to_bucket": "finn-tmp", "to_key": "c"}))
        .send()
        .await
        .expect("copy");
    assert_eq!(copied_out.status(), 201);
    app.with_token(Method::DELETE, &object_path("finn-files", "a"), &owner.access).send().await.expect("delete");
    let auditor = app.user_session("gail", Role::Auditor).await;
    let page: Value = app.get_json("/api/v1/admin/audit?bucket=finn-files", &auditor.access).await;
    let actions: Vec<&str> =
        page["events"].as_array().expect("events").iter().map(|e| e["action"].as_str().expect("action")).collect();
    for expected in ["bucket.create", "object.put", "object.get", "object.copy", "object.delete"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let get_event =
        page["events"].as_array().expect("events").iter().find(|e| e["action"] == "object.get").expect("get");
    assert_eq!((get_event["actor"].as_str(), get_event["key"].as_str()), (Some("finn"), Some("a")));
    // A copy out of the bucket reads its source there: the source bucket's trail shows it.
    let copied_to: Vec<&Value> =
        page["events"].as_array().expect("events").iter().filter_map(|e| e["details"].get("copied_to")).collect();
    assert!(copied_to.contains(&&json!({"bucket": "finn-tmp", "key": "c"})), "{copied_to:?}");
}

#[tokio::test]
async fn shutdown_lets_in_flight_uploads_finish() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "gus", "gus-files").await;
    let chunks = futures::stream::unfold(0, |n| async move {
        if n == 10 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(vec![n as u8; 1000])), n + 1))
    });
    let upload = app
        .with_token(Method::PUT, &object_path("gus-files", "slow"), &owner.access)
        .header("content-length", "10000")
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let stop = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        app.stop_gracefully().await;
    };
    let (response, ()) = tokio::join!(upload, stop);
    let response = response.expect("the in-flight request completes");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.json::<Value>().await.expect("json")["size"], 10_000);
}

/// One HTTP/1.1 request written verbatim to the socket; returns status and body.
pub async fn raw_request(app: &TestApp, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.expect("write head");
    socket.write_all(body).await.expect("write body");
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn bodies_of_unknown_length_larger_than_a_part_stream_through() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "hana", "hana-files").await;
    // 12 MiB + 7 bytes with chunked transfer encoding: several backend parts on S3.
    let total = 12 * 1024 * 1024 + 7;
    let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        data.chunks(300_000).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let response = app
        .with_token(Method::PUT, &object_path("hana-files", "chunked.bin"), &owner.access)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 201);
    let body = get(&app, &owner.access, "hana-files", "chunked.bin").await.bytes().await.expect("body");
    assert_eq!(sha256(&body), sha256(&data));
}

/// Garage sends without `TCP_NODELAY`: on a kept-alive backend connection
/// each small response waited ~40 ms for Coffer's delayed ACK until the S3
/// client's sockets asked for immediate ACKs (`storage::s3_http`). On the
/// filesystem backend this is simply fast.
#[tokio::test]
async fn small_reads_do_not_wait_for_delayed_acks() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "hal", "hal-files").await;
    put(&app, &owner.access, "hal-files", "small.bin", vec![5u8; 4096]).await;
    let mut took = Vec::new();
    for _ in 0..12 {
        let started = std::time::Instant::now();
        let response = get(&app, &owner.access, "hal-files", "small.bin").await;
        assert_eq!(response.bytes().await.expect("body").len(), 4096);
        took.push(started.elapsed());
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(median < Duration::from_millis(30), "median of 12 small GETs {median:?}: {took:?}");
}
