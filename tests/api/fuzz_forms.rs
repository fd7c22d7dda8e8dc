//! Fuzzing the multipart form upload over HTTP: random boundaries, part
//! headers, names, file names, truncations and garbage never produce a 5xx,
//! and the server keeps answering. Cases: `FUZZ_FORM_CASES` (default 48).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;

use crate::helpers::spawn_app;
use crate::objects::owner_with_bucket;

#[derive(Debug, Clone)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    extra_header: Option<String>,
    body: Vec<u8>,
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("file".to_owned()),
        Just("prefix".to_owned()),
        Just("../".to_owned()),
        Just("a/b".to_owned()),
        Just("\"".to_owned()),
        Just(";".to_owned()),
        Just("%00".to_owned()),
        Just("\u{202e}".to_owned()),
        "[a-z0-9._-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect::<String>()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(piece(), 0..4).prop_map(|p| p.concat())
}

fn part() -> impl Strategy<Value = Part> {
    (
        prop_oneof![Just("file".to_owned()), Just("prefix".to_owned()), text()],
        proptest::option::of(text()),
        proptest::option::of(prop_oneof![Just("image/png".to_owned()), Just("text/html".to_owned()), text()]),
        proptest::option::of(text()),
        proptest::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|(name, filename, content_type, extra_header, body)| Part {
            name,
            filename,
            content_type,
            extra_header,
            body,
        })
}

fn form() -> impl Strategy<Value = (String, Vec<u8>)> {
    ("[A-Za-z0-9'()+_,./:=?-]{1,70}", proptest::collection::vec(part(), 0..4), any::<u16>(), any::<bool>()).prop_map(
        |(boundary, parts, cut, closed)| {
            let mut body = Vec::new();
            for part in &parts {
                body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
                if let Some(filename) = &part.filename {
                    disposition.push_str(&format!("; filename=\"{filename}\""));
                }
                body.extend_from_slice(disposition.as_bytes());
                body.extend_from_slice(b"\r\n");
                if let Some(content_type) = &part.content_type {
                    body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
                }
                if let Some(extra) = &part.extra_header {
                    body.extend_from_slice(format!("{extra}\r\n").as_bytes());
                }
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(&part.body);
                body.extend_from_slice(b"\r\n");
            }
            if closed {
                body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            } else {
                let keep = usize::from(cut) % (body.len() + 1);
                body.truncate(keep);
            }
            (boundary, body)
        },
    )
}

#[tokio::test]
async fn random_multipart_forms_never_cause_server_errors() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "fuzzy", "fuzzed").await.access;
    let cases: usize = std::env::var("FUZZ_FORM_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    let mut runner = TestRunner::deterministic();
    let strategy = form();
    for case in 0..cases {
        let (boundary, body) = strategy.new_tree(&mut runner).expect("tree").current();
        let content_type = if case % 7 == 0 {
            "multipart/form-data".to_owned()
        } else {
            format!("multipart/form-data; boundary={boundary}")
        };
        let response = app
            .with_token(Method::POST, "/api/v1/buckets/fuzzed/objects", &owner)
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .expect("response");
        let status = response.status();
        assert!(
            status.is_success() || status.is_client_error(),
            "case {case}: {status} for boundary {boundary:?} body {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(app.get("/health/live").await.status(), 200);
}
