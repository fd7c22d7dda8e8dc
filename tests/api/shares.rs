//! Share links: plain access, download limits under concurrency, passwords
//! (page, header, form, throttling), expiry, revocation, audit.

use chrono::Duration as Span;
use coffer::domain::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, Tokens, problem, spawn_app};
use crate::objects::{owner_with_bucket, put};

async fn share(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.with_token(Method::POST, "/api/v1/shares", token).json(&body).send().await.expect("share")
}

async fn share_url(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let response = share(app, token, body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    (created["id"].as_str().expect("id").to_owned(), created["url"].as_str().expect("url").to_owned())
}

async fn setup(app: &TestApp, user: &str) -> Tokens {
    let owner = owner_with_bucket(app, user, &format!("{user}-files")).await;
    assert_eq!(
        put(
            app,
            &owner.access,
            &format!("{user}-files"),
            "<img src=x onerror=alert(1)>.png",
            b"PNG-ish bytes".to_vec()
        )
        .await
        .status(),
        201
    );
    owner
}

fn plain() -> reqwest::Client {
    crate::helpers::client()
}

#[tokio::test]
async fn links_serve_the_object_to_anyone_who_has_them() {
    let app = spawn_app().await;
    let owner = setup(&app, "anna").await;
    let (_, url) =
        share_url(&app, &owner.access, json!({"bucket": "anna-files", "key": "<img src=x onerror=alert(1)>.png"}))
            .await;
    assert!(url.starts_with(&format!("{}/s/cfs_", app.address)) && url.len() > 40, "{url}");
    let response = plain().get(&url).send().await.expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.text().await.expect("body"), "PNG-ish bytes");
    assert_eq!(plain().get(format!("{}/s/cfs_not-a-real-token", app.address)).send().await.expect("get").status(), 404);
    let missing = share(&app, &owner.access, json!({"bucket": "anna-files", "key": "nope"})).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_one_download_link_serves_exactly_one_of_twenty_concurrent_requests() {
    let app = spawn_app().await;
    let owner = setup(&app, "bert").await;
    let (_, url) = share_url(
        &app,
        &owner.access,
        json!({"bucket": "bert-files", "key": "<img src=x onerror=alert(1)>.png", "max_downloads": 1}),
    )
    .await;
    let client = plain();
    let requests = (0..20).map(|_| client.get(&url).send());
    let statuses: Vec<u16> =
        futures::future::join_all(requests).await.into_iter().map(|r| r.expect("get").status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 410), "{statuses:?}");
    assert_eq!(client.get(&url).send().await.expect("get").status(), 410);
}

#[tokio::test]
async fn passwords_are_asked_for_checked_and_throttled() {
    let app = spawn_app().await;
    let owner = setup(&app, "cara").await;
    let (_, url) = share_url(
        &app,
        &owner.access,
        json!({"bucket": "cara-files", "key": "<img src=x onerror=alert(1)>.png", "password": "open sesame"}),
    )
    .await;
    let client = plain();
    let page = client.get(&url).header("accept", "text/html").send().await.expect("page");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("<form method=\"post\"") && html.contains("type=\"password\""));
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;.png") && !html.contains("<img"),
        "file name escaped: {html}"
    );
    assert!(!html.contains("<script"));

    let api = client.get(&url).send().await.expect("get");
    assert_eq!(api.status(), 401);
    problem(api).await;
    let with_header = client.get(&url).header("x-share-password", "open sesame").send().await.expect("get");
    assert_eq!(with_header.headers()["cache-control"], "no-store", "what a password guards is not cached");
    assert_eq!(with_header.text().await.expect("body"), "PNG-ish bytes");
    let with_form = client.post(&url).form(&[("password", "open sesame")]).send().await.expect("post");
    assert_eq!(with_form.status(), 200);
    let wrong_page = client.post(&url).header("accept", "text/html").form(&[("password", "nope")]).send().await;
    let wrong_page = wrong_page.expect("post");
    assert_eq!(wrong_page.status(), 401);
    assert!(wrong_page.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let html = wrong_page.text().await.expect("html");
    assert!(html.contains("not right") && html.contains("<form"), "the form again, for a browser: {html}");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.png"), "with the file's name: {html}");
    for _ in 0..4 {
        let wrong = client.get(&url).header("x-share-password", "wrong").send().await.expect("get");
        assert_eq!(wrong.status(), 401);
    }
    let locked = client.get(&url).header("x-share-password", "open sesame").send().await.expect("get");
    assert_eq!(locked.status(), 429, "throttled after five wrong passwords, even with the right one");
    assert!(locked.headers().contains_key("retry-after"));
    app.clock.advance(Span::minutes(16));
    let later = client.get(&url).header("x-share-password", "open sesame").send().await.expect("get");
    assert_eq!(later.status(), 200);
}

#[tokio::test]
async fn expired_revoked_and_used_up_links_are_gone() {
    let app = spawn_app().await;
    let owner = setup(&app, "dino").await;
    let key = "<img src=x onerror=alert(1)>.png";
    let (_, expiring) =
        share_url(&app, &owner.access, json!({"bucket": "dino-files", "key": key, "expires_in_seconds": 60})).await;
    let (revoked_id, revoked) = share_url(&app, &owner.access, json!({"bucket": "dino-files", "key": key})).await;
    let client = plain();
    assert_eq!(client.get(&expiring).send().await.expect("get").status(), 200);
    assert_eq!(client.head(&expiring).send().await.expect("head").status(), 200);
    for attempt in ["first", "retried"] {
        let revoke =
            app.with_token(Method::DELETE, &format!("/api/v1/shares/{revoked_id}"), &owner.access).send().await;
        assert_eq!(revoke.expect("revoke").status(), 204, "{attempt} revoke");
    }
    let gone = client.get(&revoked).send().await.expect("get");
    assert_eq!(gone.status(), 410);
    problem(gone).await;
    app.clock.advance(Span::seconds(61));
    assert_eq!(client.get(&expiring).send().await.expect("get").status(), 410);

    for bad in [json!({"expires_in_seconds": 0}), json!({"max_downloads": 0}), json!({"password": ""})] {
        let mut body = json!({"bucket": "dino-files", "key": key});
        body.as_object_mut().expect("object").extend(bad.as_object().expect("object").clone());
        assert_eq!(share(&app, &owner.access, body.clone()).await.status(), 400, "{body}");
    }
}

#[tokio::test]
async fn owners_list_and_revoke_and_others_cannot() {
    let app = spawn_app().await;
    let owner = setup(&app, "emma").await;
    let key = "<img src=x onerror=alert(1)>.png";
    let (id, url) = share_url(
        &app,
        &owner.access,
        json!({"bucket": "emma-files", "key": key, "max_downloads": 3, "password": "pw"}),
    )
    .await;
    let listed: Value = app.get_json("/api/v1/shares", &owner.access).await;
    assert_eq!(listed["shares"][0]["id"], id.as_str());
    assert_eq!(listed["shares"][0]["bucket"], "emma-files");
    assert_eq!(listed["shares"][0]["has_password"], true);
    assert!(!listed.to_string().contains(url.rsplit('/').next().expect("token")), "tokens are never listed");
    let stranger = app.user_session("finn", Role::User).await;
    let refused = app.with_token(Method::DELETE, &format!("/api/v1/shares/{id}"), &stranger.access).send().await;
    assert_eq!(refused.expect("revoke").status(), 404);
    let admin = app.user_session("root", Role::Admin).await;
    let by_admin = app.with_token(Method::DELETE, &format!("/api/v1/shares/{id}"), &admin.access).send().await;
    assert_eq!(by_admin.expect("revoke").status(), 204);
    let auditor = app.user_session("gwen", Role::Auditor).await;
    plain().get(&url).header("x-share-password", "pw").send().await.expect("get");
    let page: Value = app.get_json("/api/v1/admin/audit", &auditor.access).await;
    let actions: Vec<(&str, &str)> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["action"].as_str().expect("action"), e["outcome"].as_str().expect("outcome")))
        .collect();
    for expected in [("share.create", "success"), ("share.revoke", "success"), ("share.access", "denied")] {
        assert!(actions.contains(&expected), "{expected:?} missing from {actions:?}");
    }
}

#[tokio::test]
async fn a_link_dies_when_its_creator_loses_access() {
    let app = spawn_app().await;
    let owner = setup(&app, "hugh").await;
    let reader = app.user_session("iris", Role::User).await;
    app.with_token(Method::PUT, "/api/v1/buckets/hugh-files/grants/iris", &owner.access)
        .json(&json!({"permission": "read"}))
        .send()
        .await
        .expect("grant");
    let (_, url) =
        share_url(&app, &reader.access, json!({"bucket": "hugh-files", "key": "<img src=x onerror=alert(1)>.png"}))
            .await;
    assert_eq!(plain().get(&url).send().await.expect("get").status(), 200);
    app.with_token(Method::DELETE, "/api/v1/buckets/hugh-files/grants/iris", &owner.access)
        .send()
        .await
        .expect("revoke");
    assert_eq!(plain().get(&url).send().await.expect("get").status(), 410);
}

/// Behind a password the preview is the content (a scanned ID card): it
/// needs the password like the file, and the password page shows none.
#[tokio::test]
async fn previews_of_images_need_what_the_file_needs() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "pam", "pam-files").await;
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_rgb8(600, 400).write_to(&mut png, image::ImageFormat::Png).expect("png");
    let uploaded = app
        .with_token(Method::PUT, "/api/v1/buckets/pam-files/objects/holiday.png", &owner.access)
        .header("content-type", "image/png")
        .body(png.into_inner())
        .send()
        .await
        .expect("put");
    assert_eq!(uploaded.status(), 201);
    put(&app, &owner.access, "pam-files", "notes.txt", b"text".to_vec()).await;
    let protected = |key: &str| json!({"bucket": "pam-files", "key": key, "password": "correct horse battery"});
    let (image_id, image_url) = share_url(&app, &owner.access, protected("holiday.png")).await;
    let (open_id, open_url) =
        share_url(&app, &owner.access, json!({"bucket": "pam-files", "key": "holiday.png"})).await;
    let (_, text_url) = share_url(&app, &owner.access, json!({"bucket": "pam-files", "key": "notes.txt"})).await;
    let client = reqwest::Client::new();

    let page = client.get(&image_url).header("accept", "text/html").send().await.expect("page");
    assert!(!page.text().await.expect("html").contains("<img"), "no preview on the password page");
    let refused = client.get(format!("{image_url}/thumbnail")).send().await.expect("preview");
    assert_eq!(refused.status(), 401, "a protected preview needs the password");
    let wrong = client.get(format!("{image_url}/thumbnail")).header("x-share-password", "guess").send().await;
    assert_eq!(wrong.expect("preview").status(), 401);
    let preview = client
        .get(format!("{image_url}/thumbnail"))
        .header("x-share-password", "correct horse battery")
        .send()
        .await
        .expect("preview");
    assert_eq!(preview.status(), 200);
    assert_eq!(preview.headers()["content-type"], "image/webp");
    assert_eq!(preview.headers()["cache-control"], "no-store", "a cached preview would skip the password");
    let preview = image::load_from_memory(&preview.bytes().await.expect("bytes")).expect("an image");
    assert_eq!((preview.width(), preview.height()), (256, 171));
    let open = client.get(format!("{open_url}/thumbnail")).send().await.expect("preview");
    assert_eq!(open.status(), 200, "a link without a password previews to whoever holds it");
    assert_eq!(open.headers()["cache-control"], "private, no-cache", "revalidated, so a revocation shows at once");
    let etag = open.headers()["etag"].clone();
    let revalidate = || client.get(format!("{open_url}/thumbnail")).header("if-none-match", etag.clone()).send();
    assert_eq!(revalidate().await.expect("preview").status(), 304);
    assert_eq!(client.get(format!("{text_url}/thumbnail")).send().await.expect("preview").status(), 415);

    // A preview is not a download, and dies with the link.
    let revoked = app.with_token(Method::DELETE, &format!("/api/v1/shares/{image_id}"), &owner.access).send().await;
    assert_eq!(revoked.expect("revoke").status(), 204);
    let gone = client.get(format!("{image_url}/thumbnail")).header("x-share-password", "correct horse battery");
    assert_eq!(gone.send().await.expect("preview").status(), 410);
    let revoked = app.with_token(Method::DELETE, &format!("/api/v1/shares/{open_id}"), &owner.access).send().await;
    assert_eq!(revoked.expect("revoke").status(), 204);
    assert_eq!(revalidate().await.expect("preview").status(), 410, "the browser's copy is not confirmed");
}

/// Guesses sent all at once are each counted before they are checked: twenty
/// parallel wrong passwords get five checks, the rest (and then even the right
/// password) wait for the lock; every refusal is recorded under the bucket.
#[tokio::test]
async fn parallel_password_guesses_get_five_checks() {
    let app = spawn_app().await;
    let owner = setup(&app, "olga").await;
    let key = "<img src=x onerror=alert(1)>.png";
    let (id, url) =
        share_url(&app, &owner.access, json!({"bucket": "olga-files", "key": key, "password": "open sesame"})).await;
    let client = plain();
    let guesses = (0..20).map(|n| client.get(&url).header("x-share-password", format!("guess {n}")).send());
    let statuses: Vec<u16> =
        futures::future::join_all(guesses).await.into_iter().map(|r| r.expect("get").status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");
    let right = client.get(&url).header("x-share-password", "open sesame").send().await.expect("get");
    assert_eq!(right.status(), 429, "locked, even for the right password");
    let query = coffer::metadata::AuditQuery {
        actor: Some(format!("share:{id}")),
        bucket: Some("olga-files".into()),
        limit: 100,
        ..Default::default()
    };
    let refusals = app.services.store.audit_query(&query).await.expect("audit");
    let reasons: Vec<&str> = refusals.iter().filter_map(|e| e.details["reason"].as_str()).collect();
    assert_eq!(reasons.iter().filter(|r| **r == "wrong password").count(), 5, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| **r == "locked").count(), 16, "{reasons:?}");
}

/// A one-download link refuses the others before reading anything: the audit
/// shows one read, not one per request.
/// Revalidations (`304`) and unsatisfiable ranges (`416`) send no bytes, so
/// they never hold a download of a one-download link, even for a moment: the
/// real download racing them is served every round.
#[tokio::test]
async fn requests_that_send_no_bytes_never_take_the_last_download() {
    let app = spawn_app().await;
    let owner = setup(&app, "gina").await;
    let key = "<img src=x onerror=alert(1)>.png";
    let client = plain();
    let (_, probe) = share_url(&app, &owner.access, json!({"bucket": "gina-files", "key": key})).await;
    let etag = client.head(&probe).send().await.expect("head").headers()["etag"].to_str().expect("etag").to_owned();
    for round in 0..8 {
        let (_, url) =
            share_url(&app, &owner.access, json!({"bucket": "gina-files", "key": key, "max_downloads": 1})).await;
        let revalidations = (0..12).map(|n| {
            let request = if n % 2 == 0 {
                client.get(&url).header("If-None-Match", &etag)
            } else {
                client.get(&url).header("Range", "bytes=100-")
            };
            request.send()
        });
        let (download, others) = tokio::join!(client.get(&url).send(), futures::future::join_all(revalidations));
        assert_eq!(download.expect("get").status(), 200, "round {round}: the download was refused");
        for other in others {
            let status = other.expect("revalidate").status().as_u16();
            assert!([304, 416, 410].contains(&status), "round {round}: {status}");
        }
        assert_eq!(client.get(&url).send().await.expect("get").status(), 410, "round {round}: used up");
    }
}

#[tokio::test]
async fn refused_downloads_are_not_recorded_as_reads() {
    let app = spawn_app().await;
    let owner = setup(&app, "pia").await;
    let key = "<img src=x onerror=alert(1)>.png";
    let (id, url) =
        share_url(&app, &owner.access, json!({"bucket": "pia-files", "key": key, "max_downloads": 1})).await;
    let client = plain();
    let head = client.head(&url).send().await.expect("head");
    assert_eq!(head.status(), 200, "a HEAD uses no download");
    let requests = (0..10).map(|_| client.get(&url).send());
    let served =
        futures::future::join_all(requests).await.into_iter().filter(|r| r.as_ref().expect("get").status() == 200);
    assert_eq!(served.count(), 1);
    let auditor = app.user_session("pias-auditor", Role::Auditor).await;
    let reads: Value =
        app.get_json(&format!("/api/v1/admin/audit?actor=share:{id}&action=object.get"), &auditor.access).await;
    assert_eq!(reads["events"].as_array().map(Vec::len), Some(1), "{reads}");
}

/// A link made with an API key lives no longer than the key; `?download=1`
/// asks for an attachment, as on the object route.
#[tokio::test]
async fn a_link_made_with_an_api_key_dies_with_the_key() {
    let app = spawn_app().await;
    let owner = setup(&app, "quin").await;
    let created: Value = app.create_api_key(&owner.access, json!({"name": "sharer", "scopes": ["read"]})).await;
    let key_secret = created["key"].as_str().expect("key");
    let body = json!({"bucket": "quin-files", "key": "<img src=x onerror=alert(1)>.png"});
    let (_, url) = share_url(&app, key_secret, body).await;
    let attachment = plain().get(format!("{url}?download=1")).send().await.expect("get");
    assert_eq!(attachment.status(), 200);
    let disposition = attachment.headers()["content-disposition"].to_str().expect("ascii").to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    let key_id = created["id"].as_str().expect("id");
    let revoked = app.with_token(Method::DELETE, &format!("/api/v1/me/api-keys/{key_id}"), &owner.access).send().await;
    assert_eq!(revoked.expect("revoke").status(), 204);
    assert_eq!(plain().get(&url).send().await.expect("get").status(), 410);
}

#[tokio::test]
async fn the_share_list_pages_newest_first_with_a_cursor() {
    use base64::Engine;
    let app = spawn_app().await;
    let owner = setup(&app, "gwen").await;
    // Made at three instants, two of them shared: ties are ordered by id.
    let mut created = Vec::new();
    for n in 0..5 {
        if n % 2 == 0 {
            app.clock.advance(Span::seconds(1));
        }
        let body = json!({"bucket": "gwen-files", "key": "<img src=x onerror=alert(1)>.png"});
        let (id, _) = share_url(&app, &owner.access, body).await;
        created.push((n / 2, id));
    }
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let page: Value = app.get_json(&format!("/api/v1/shares?limit=2{query}"), &owner.access).await;
        pages += 1;
        let shares = page["shares"].as_array().expect("shares");
        assert!(shares.len() <= 2, "a page holds at most `limit` shares");
        assert!(shares.iter().all(|s| s["bucket"] == "gwen-files"));
        listed.extend(shares.iter().map(|s| s["id"].as_str().expect("id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the pages end");
    }
    assert_eq!(pages, 3);
    created.sort_by(|a, b| b.cmp(a));
    let newest_first: Vec<String> = created.into_iter().map(|(_, id)| id).collect();
    assert_eq!(listed, newest_first, "every share once, newest first");
    let all: Value = app.get_json("/api/v1/shares", &owner.access).await;
    let in_one_page: Vec<&str> =
        all["shares"].as_array().expect("shares").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(in_one_page, listed, "pages join up to the same order as one page");
    assert!(all["next_cursor"].is_null());

    let forged = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    for bad in ["!!!".to_owned(), forged("no-colon"), forged("soon:abc"), forged("1:")] {
        let response = app
            .with_token(Method::GET, &format!("/api/v1/shares?cursor={bad}"), &owner.access)
            .send()
            .await
            .expect("list");
        assert_eq!(response.status(), 400, "cursor {bad}");
        assert!(problem(response).await["type"].as_str().unwrap_or_default().ends_with("/invalid-cursor"));
    }
}

/// Managers see every link on their bucket (and may revoke them); readers
/// see their own there; without `bucket`, the caller's own everywhere.
#[tokio::test]
async fn managers_list_every_link_on_their_bucket() {
    let app = spawn_app().await;
    let owner = setup(&app, "tess").await;
    let reader = app.user_session("ugo", Role::User).await;
    app.with_token(Method::PUT, "/api/v1/buckets/tess-files/grants/ugo", &owner.access)
        .json(&json!({"permission": "read"}))
        .send()
        .await
        .expect("grant");
    let key = "<img src=x onerror=alert(1)>.png";
    let (readers_link, _) = share_url(&app, &reader.access, json!({"bucket": "tess-files", "key": key})).await;
    // The test clock stands still: without a step, ties would be ordered by (random) id.
    app.clock.advance(Span::seconds(1));
    let (owners_link, _) = share_url(&app, &owner.access, json!({"bucket": "tess-files", "key": key})).await;
    let ids = |page: &Value| -> Vec<String> {
        page["shares"].as_array().expect("shares").iter().map(|s| s["id"].as_str().expect("id").to_owned()).collect()
    };
    let managed: Value = app.get_json("/api/v1/shares?bucket=tess-files", &owner.access).await;
    assert_eq!(ids(&managed), [owners_link.clone(), readers_link.clone()], "newest first, everyone's");
    assert_eq!(managed["shares"][1]["created_by"], "ugo");
    let own: Value = app.get_json("/api/v1/shares?bucket=tess-files&limit=1", &reader.access).await;
    assert_eq!(ids(&own), std::slice::from_ref(&readers_link), "a reader sees only their own");
    assert!(own["next_cursor"].is_null());
    let mine: Value = app.get_json("/api/v1/shares", &owner.access).await;
    assert_eq!(ids(&mine), [owners_link], "without a bucket, the caller's own");
    let stranger = app.user_session("vera", Role::User).await;
    let hidden = app.with_token(Method::GET, "/api/v1/shares?bucket=tess-files", &stranger.access).send().await;
    assert_eq!(hidden.expect("list").status(), 404, "a bucket one cannot read does not exist");
    let revoked = app.with_token(Method::DELETE, &format!("/api/v1/shares/{readers_link}"), &owner.access).send().await;
    assert_eq!(revoked.expect("revoke").status(), 204, "found by listing, revoked by the manager");
}

/// A range from the first byte counts as a download; ranges from further on
/// continue one (a resumed download, a seek, a segment) and share a budget
/// of downloads × size bytes, so they neither use a link up nor read past it.
#[tokio::test]
async fn ranges_continue_a_download_within_the_links_bytes() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "rhea", "rhea-files").await;
    assert_eq!(put(&app, &owner.access, "rhea-files", "digits.txt", b"0123456789".to_vec()).await.status(), 201);
    let link = json!({"bucket": "rhea-files", "key": "digits.txt", "max_downloads": 1});
    let (id, url) = share_url(&app, &owner.access, link.clone()).await;
    let client = plain();
    let ranged = |range: &'static str| client.get(&url).header("Range", range).send();
    let read = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    };
    assert_eq!(read(ranged("bytes=0-3").await.expect("get")).await, (206, "0123".to_owned()), "the download");
    assert_eq!(read(ranged("bytes=4-").await.expect("get")).await, (206, "456789".to_owned()), "resumed");
    assert_eq!(read(ranged("bytes=2-5").await.expect("get")).await, (206, "2345".to_owned()), "a seek back");
    assert_eq!(ranged("bytes=9-").await.expect("get").status(), 410, "ten bytes of ranges were sent");
    assert_eq!(client.get(&url).send().await.expect("get").status(), 410, "the one download is used");
    assert_eq!(ranged("bytes=0-0").await.expect("get").status(), 410, "from the first byte is a download");
    assert_eq!(client.head(&url).send().await.expect("head").status(), 410);
    let listed: Value = app.get_json("/api/v1/shares", &owner.access).await;
    let listed = listed["shares"].as_array().expect("shares").iter().find(|s| s["id"] == id.as_str()).cloned();
    assert_eq!(listed.expect("listed")["downloads"], 1);

    // Concurrent continuations of a one-download link: exactly the budget's worth is served.
    let (_, url) = share_url(&app, &owner.access, link).await;
    assert_eq!(client.get(&url).send().await.expect("get").status(), 200);
    let requests = (0..20).map(|_| client.get(&url).header("Range", "bytes=5-").send());
    let statuses: Vec<u16> =
        futures::future::join_all(requests).await.into_iter().map(|r| r.expect("get").status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 206).count(), 2, "2 × 5 bytes of 10: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 206 || *s == 410), "{statuses:?}");

    // A link with nothing left for a range refuses it before asking for the password.
    let guarded = json!({"bucket": "rhea-files", "key": "digits.txt", "max_downloads": 1, "password": "pw"});
    let (_, url) = share_url(&app, &owner.access, guarded).await;
    let with = |password: &'static str, range: &'static str| {
        client.get(&url).header("X-Share-Password", password).header("Range", range).send()
    };
    assert_eq!(with("pw", "bytes=0-").await.expect("get").status(), 206);
    assert_eq!(with("pw", "bytes=1-").await.expect("get").status(), 206, "9 of its 10 bytes");
    assert_eq!(with("wrong", "bytes=1-").await.expect("get").status(), 410);
    assert_eq!(with("wrong", "bytes=9-").await.expect("get").status(), 401, "1 byte is left");
}
