//! Health endpoints, request ids and problem+json for framework errors.

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn live_and_ready_answer_200() {
    let app = spawn_app().await;
    let live = app.get("/health/live").await;
    assert_eq!(live.status(), 200);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    for check in ["database", "storage", "cache"] {
        assert_eq!(body["checks"][check], "ok", "{body}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let generated = app.get("/health/live").await;
    let id = generated.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let echoed = app.client.get(app.url("/nope")).header("X-Request-Id", "trace-42").send().await.expect("send");
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");
    let hostile = app.client.get(app.url("/health/live")).header("X-Request-Id", "bad id\twith tab").send().await;
    let replaced = hostile.expect("send").headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "unsafe ids are replaced: {replaced}");
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn_app().await;
    // Other unknown GET paths are the web UI's client-side routes (index.html).
    let response = app.get("/api/v1/no/such/route").await;
    assert_eq!(response.status(), 404);
    let body = problem(response).await;
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "/problems/not-found");
}

#[tokio::test]
async fn wrong_methods_are_405_problems() {
    let app = spawn_app().await;
    let response = app.client.post(app.url("/health/live")).send().await.expect("send");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET", "the methods the route has");
    let body = problem(response).await;
    assert_eq!(body["type"], "/problems/method-not-allowed");

    let objects = app.client.patch(app.url("/api/v1/buckets/b1/objects/a/b.txt")).send().await.expect("send");
    assert_eq!(objects.status(), 405);
    assert_eq!(objects.headers()["allow"], "GET, HEAD, PUT, DELETE");
    assert_eq!(problem(objects).await["detail"], "PATCH is not allowed here");
}
