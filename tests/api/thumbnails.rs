//! Thumbnails over HTTP: sizes and formats, validators, EXIF orientations
//! 1-8, refusals (415/422) for what is not a safe image, one render for many
//! concurrent requests, and never a stale thumbnail after an overwrite.

use std::io::Cursor;

use coffer::domain::Role;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::objects::{encode_key, owner_with_bucket};

fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// A `w`×`h` image, red in its top-left quadrant, grey elsewhere.
fn marked(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        if x < w / 2 && y < h / 2 { Rgb([220, 20, 20]) } else { Rgb([128, 128, 128]) }
    }))
}

/// A JPEG carrying an EXIF orientation tag (APP1 right after SOI).
fn jpeg_with_orientation(image: &DynamicImage, orientation: u16) -> Vec<u8> {
    let jpeg = encoded(image, ImageFormat::Jpeg);
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&u16::try_from(app1.len() + 2).expect("short").to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

async fn upload(app: &TestApp, token: &str, key: &str, body: Vec<u8>, content_type: &str) {
    let response = app
        .with_token(Method::PUT, &format!("/api/v1/buckets/pics/objects/{}", encode_key(key)), token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), 201);
}

async fn thumb(app: &TestApp, token: &str, key: &str, query: &str) -> reqwest::Response {
    app.with_token(Method::GET, &format!("/api/v1/buckets/pics/thumbnails/{}?{query}", encode_key(key)), token)
        .send()
        .await
        .expect("thumbnail")
}

async fn decoded(response: reqwest::Response) -> DynamicImage {
    assert_eq!(response.status(), 200);
    image::load_from_memory(&response.bytes().await.expect("bytes")).expect("an image")
}

#[tokio::test]
async fn thumbnails_fit_the_size_in_either_format_with_validators() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "pia", "pics").await.access;
    upload(&app, &owner, "wide.png", encoded(&marked(600, 300), ImageFormat::Png), "image/png").await;
    let response = thumb(&app, &owner, "wide.png", "size=128").await;
    assert_eq!(response.headers()["content-type"], "image/webp");
    assert_eq!(response.headers()["cache-control"], "private, max-age=86400");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let etag = response.headers()["etag"].to_str().expect("etag").to_owned();
    let image = decoded(response).await;
    assert_eq!((image.width(), image.height()), (128, 64));
    let again = app
        .with_token(Method::GET, "/api/v1/buckets/pics/thumbnails/wide.png?size=128", &owner)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let jpeg = thumb(&app, &owner, "wide.png", "size=64&format=jpeg").await;
    assert_eq!(jpeg.headers()["content-type"], "image/jpeg");
    assert_eq!(decoded(jpeg).await.width(), 64);
    let default_size = decoded(thumb(&app, &owner, "wide.png", "").await).await;
    assert_eq!(default_size.width(), 256);
    let never_upscaled = decoded(thumb(&app, &owner, "wide.png", "size=1024").await).await;
    assert_eq!((never_upscaled.width(), never_upscaled.height()), (600, 300));
    for bad in ["size=100", "size=-1", "format=gif", "size=huge"] {
        assert_eq!(thumb(&app, &owner, "wide.png", bad).await.status(), 400, "{bad}");
    }
    let stranger = app.user_session("sam", Role::User).await.access;
    assert_eq!(thumb(&app, &stranger, "wide.png", "size=64").await.status(), 404);
    assert_eq!(thumb(&app, &owner, "missing.png", "size=64").await.status(), 404);
}

#[tokio::test]
async fn every_exif_orientation_is_applied() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "pia", "pics").await.access;
    // Where the red top-left quadrant of the stored pixels ends up once displayed.
    let expected = [
        (1, (128, 64), "top-left"),
        (2, (128, 64), "top-right"),
        (3, (128, 64), "bottom-right"),
        (4, (128, 64), "bottom-left"),
        (5, (64, 128), "top-left"),
        (6, (64, 128), "top-right"),
        (7, (64, 128), "bottom-right"),
        (8, (64, 128), "bottom-left"),
    ];
    for (orientation, size, corner) in expected {
        let key = format!("o{orientation}.jpg");
        upload(&app, &owner, &key, jpeg_with_orientation(&marked(800, 400), orientation), "image/jpeg").await;
        let image = decoded(thumb(&app, &owner, &key, "size=128").await).await.to_rgb8();
        assert_eq!(image.dimensions(), size, "orientation {orientation}");
        let (w, h) = image.dimensions();
        let red_at = |x: u32, y: u32| image.get_pixel(x, y)[0] > 180 && image.get_pixel(x, y)[1] < 90;
        let corners = [
            ("top-left", w / 4, h / 4),
            ("top-right", 3 * w / 4, h / 4),
            ("bottom-left", w / 4, 3 * h / 4),
            ("bottom-right", 3 * w / 4, 3 * h / 4),
        ];
        for (name, x, y) in corners {
            assert_eq!(red_at(x, y), name == corner, "orientation {orientation}: {name}");
        }
    }
}

#[tokio::test]
async fn unsafe_or_broken_images_are_refused_clearly() {
    let app = spawn_app_with(|config| config.thumbnail_max_source_mib = 1).await;
    let owner = owner_with_bucket(&app, "pia", "pics").await.access;
    // Over the source limit: a video is still "not an image" (415), an image is "too large" (422).
    upload(&app, &owner, "clip.mp4", vec![0; (1 << 20) + 1], "video/mp4").await;
    let mut huge = encoded(&marked(64, 64), ImageFormat::Png);
    huge.resize((1 << 20) + 1, 0);
    upload(&app, &owner, "huge.png", huge, "image/png").await;
    upload(&app, &owner, "notes.txt", b"hello, not an image".to_vec(), "text/plain").await;
    upload(&app, &owner, "big.png", vec![b'x'; 1 << 20], "image/png").await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>"#;
    upload(&app, &owner, "logo.svg", svg.to_vec(), "image/svg+xml").await;
    // A PNG header declaring 100,000 × 100,000 pixels and nothing else.
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    upload(&app, &owner, "bomb.png", bomb, "image/png").await;
    let jpeg = encoded(&marked(900, 600), ImageFormat::Jpeg);
    upload(&app, &owner, "cut.jpg", jpeg[..jpeg.len() / 2].to_vec(), "image/jpeg").await;
    let expected = [
        ("notes.txt", 415),
        ("big.png", 415),
        ("logo.svg", 415),
        ("bomb.png", 422),
        ("cut.jpg", 422),
        ("clip.mp4", 415),
        ("huge.png", 422),
    ];
    for (key, status) in expected {
        let response = thumb(&app, &owner, key, "size=64").await;
        assert_eq!(response.status(), status, "{key}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{key}");
    }
}

#[tokio::test]
async fn many_concurrent_requests_render_once() {
    // No background jobs, so every render counted is one of these requests.
    let app = spawn_app_with(|config| config.run_workers = false).await;
    let owner = owner_with_bucket(&app, "pia", "pics").await.access;
    upload(&app, &owner, "big.jpg", encoded(&marked(2400, 1600), ImageFormat::Jpeg), "image/jpeg").await;
    let before = app.services.metrics.thumbnails_rendered.get();
    let requests = (0..100).map(|_| thumb(&app, &owner, "big.jpg", "size=512"));
    let responses = futures::future::join_all(requests).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(app.services.metrics.thumbnails_rendered.get() - before, 1, "one decode for 100 requests");
}

#[tokio::test]
async fn an_overwritten_image_never_shows_its_old_thumbnail() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "pia", "pics").await.access;
    let solid = |color: [u8; 3]| DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 300, Rgb(color)));
    upload(&app, &owner, "avatar.png", encoded(&solid([250, 0, 0]), ImageFormat::Png), "image/png").await;
    let red = decoded(thumb(&app, &owner, "avatar.png", "size=64").await).await.to_rgb8();
    assert!(red.get_pixel(10, 10)[0] > 200);
    upload(&app, &owner, "avatar.png", encoded(&solid([0, 0, 250]), ImageFormat::Png), "image/png").await;
    let blue = decoded(thumb(&app, &owner, "avatar.png", "size=64").await).await.to_rgb8();
    assert!(blue.get_pixel(10, 10)[2] > 200 && blue.get_pixel(10, 10)[0] < 50, "{:?}", blue.get_pixel(10, 10));
}

/// An image deleted between the lookup and the render answers 404, not a
/// storage error; bytes missing under a live object are a storage fault
/// (502), never hidden as a 404. Neither answer is remembered.
#[tokio::test]
async fn a_source_removed_before_its_render_is_not_found() {
    let app = spawn_app().await;
    let owner = owner_with_bucket(&app, "gus", "pics").await.access;
    let image = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 300, Rgb([0, 200, 0])));
    let bytes = encoded(&image, ImageFormat::Png);
    let live = || async {
        let name = coffer::domain::BucketName::parse("pics").expect("name");
        let bucket = app.services.store.bucket_by_name(&name).await.expect("bucket").expect("pics");
        let key = coffer::domain::ObjectKey::parse("gone.png").expect("key");
        app.services.store.live_object(bucket.id, &key).await.expect("object").expect("gone.png")
    };
    let head = || app.with_token(Method::HEAD, "/api/v1/buckets/pics/objects/gone.png", &owner).send();

    // Bytes gone under a row that is still live: a fault of the storage.
    upload(&app, &owner, "gone.png", bytes.clone(), "image/png").await;
    app.services.blobs.delete(&live().await.blob_key).await.expect("remove the bytes");
    let response = thumb(&app, &owner, "gone.png", "size=64").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);

    // Deleted after the lookup: the request holds the cached record of an
    // object whose row and bytes went behind it.
    upload(&app, &owner, "gone.png", bytes.clone(), "image/png").await;
    let object = live().await;
    assert_eq!(head().await.expect("head").status(), 200, "the lookup is cached");
    app.services.blobs.delete(&object.blob_key).await.expect("remove the bytes");
    app.execute_sql(&format!("DELETE FROM objects WHERE id = {}", object.id)).await;
    let response = thumb(&app, &owner, "gone.png", "size=64").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    upload(&app, &owner, "gone.png", bytes, "image/png").await;
    decoded(thumb(&app, &owner, "gone.png", "size=64").await).await;
}

async fn stored_thumbnail(app: &TestApp, sha256: &str) -> bool {
    app.services.blobs.get(&format!("t/{sha256}/256.webp"), None).await.is_ok()
}

#[tokio::test]
async fn queued_thumbnails_survive_a_restart_and_go_with_their_source() {
    let first = spawn_app_with(|config| config.run_workers = false).await;
    let owner = owner_with_bucket(&first, "pia", "pics").await.access;
    let response = first
        .with_token(Method::PUT, "/api/v1/buckets/pics/objects/new.jpg", &owner)
        .header("content-type", "image/jpeg")
        .body(encoded(&marked(1200, 800), ImageFormat::Jpeg))
        .send()
        .await
        .expect("put");
    let sha256 = response.json::<serde_json::Value>().await.expect("json")["sha256"].as_str().expect("sha").to_owned();
    upload(&first, &owner, "notes.txt", b"not an image".to_vec(), "text/plain").await;
    assert_eq!(first.services.store.pending_jobs().await.expect("jobs"), 1, "one job, for the image only");
    first.stop_gracefully().await;

    // The next instance finds the job in the database and prepares the thumbnail unasked.
    let mut config = first.config.clone();
    config.run_workers = true;
    config.job_poll_interval = std::time::Duration::from_millis(100);
    config.bind = "127.0.0.1:0".into();
    let second = first.replica_with(config).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while second.services.store.pending_jobs().await.expect("jobs") > 0 {
        assert!(std::time::Instant::now() < deadline, "the queued job never ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stored_thumbnail(&second, &sha256).await, "the 256 px thumbnail was stored");
    assert_eq!(second.services.metrics.thumbnails_rendered.get(), 1);
    let owner = {
        let password = second.create_user("pia2", Role::User).await;
        let token = second.login("pia2", &password).await.access;
        let grant = second
            .with_token(Method::PUT, "/api/v1/buckets/pics/grants/pia2", &owner)
            .json(&serde_json::json!({"permission": "write"}))
            .send()
            .await
            .expect("grant");
        assert_eq!(grant.status(), 204);
        token
    };
    assert_eq!(decoded(thumb(&second, &owner, "new.jpg", "size=256").await).await.width(), 256);
    assert_eq!(second.services.metrics.thumbnails_rendered.get(), 1, "served from what the job made");

    let deleted = second.with_token(Method::DELETE, "/api/v1/buckets/pics/objects/new.jpg", &owner).send().await;
    assert_eq!(deleted.expect("delete").status(), 204);
    assert!(!stored_thumbnail(&second, &sha256).await, "thumbnails go with the last copy of their source");
}

/// Thumbnails go by the bytes, not the declared type: a PNG stored as
/// `application/octet-stream` gets them, and they go with it.
#[tokio::test]
async fn thumbnails_of_content_declared_otherwise_go_with_it() {
    let app = spawn_app_with(|config| config.run_workers = false).await;
    let owner = owner_with_bucket(&app, "pia", "pics").await.access;
    let response = app
        .with_token(Method::PUT, "/api/v1/buckets/pics/objects/raw.bin", &owner)
        .header("content-type", "application/octet-stream")
        .body(encoded(&marked(600, 400), ImageFormat::Png))
        .send()
        .await
        .expect("put");
    let sha256 = response.json::<serde_json::Value>().await.expect("json")["sha256"].as_str().expect("sha").to_owned();
    assert_eq!(decoded(thumb(&app, &owner, "raw.bin", "size=256").await).await.width(), 256);
    assert!(stored_thumbnail(&app, &sha256).await);
    let deleted = app.with_token(Method::DELETE, "/api/v1/buckets/pics/objects/raw.bin", &owner).send().await;
    assert_eq!(deleted.expect("delete").status(), 204);
    assert!(!stored_thumbnail(&app, &sha256).await, "no thumbnail outlives its only source");
    let left = app.services.blobs.list(&format!("t/{sha256}/"), None, 100).await.expect("list").blobs;
    assert!(left.is_empty(), "{left:?}");
}

/// With every render slot taken for longer than a render may take, a request
/// that needs one answers 503 with `Retry-After`, and that answer is not
/// remembered: once a slot is free the thumbnail is made.
#[tokio::test]
async fn a_busy_renderer_answers_503_and_remembers_nothing() {
    let app = spawn_app_with(|config| {
        config.thumbnail_timeout = std::time::Duration::from_secs(1);
        config.run_workers = false; // no queued render takes a slot first
    })
    .await;
    let owner = owner_with_bucket(&app, "bo", "pics").await.access;
    let png = encoded(&marked(300, 200), ImageFormat::Png);
    upload(&app, &owner, "busy.png", png.clone(), "image/png").await;
    let slots = app.services.thumbnails.pool.clone();
    let every_slot = u32::try_from(app.services.config.effective_thumbnail_workers()).expect("a few slots");
    let taken = slots.acquire_many(every_slot).await.expect("every slot");
    // A client naming the thumbnail's ETag (the source's SHA-256, size and
    // format) is answered without a render; `*` asks whether one exists.
    let conditional = |tags: String| {
        app.with_token(Method::GET, "/api/v1/buckets/pics/thumbnails/busy.png?size=64", &owner)
            .header("if-none-match", tags)
    };
    let etag = format!("\"{}-64-webp\"", crate::objects::sha256(&png));
    let current = conditional(format!("\"other\", W/{etag}")).send().await.expect("conditional");
    assert_eq!(current.status(), StatusCode::NOT_MODIFIED, "no render needed");
    assert_eq!(current.headers()["etag"].to_str().expect("etag"), etag);
    let any = conditional("*".into()).send().await.expect("conditional");
    assert_eq!(any.status(), 503, "`*` needs the thumbnail to exist");
    let busy = thumb(&app, &owner, "busy.png", "size=64").await;
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "5");
    let problem: serde_json::Value = busy.json().await.expect("problem+json");
    assert_eq!(problem["type"], "/problems/busy");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains(r#"coffer_thumbnail_lookups_total{kind="busy"} 2"#), "counted as busy: {metrics}");
    drop(taken);
    let image = decoded(thumb(&app, &owner, "busy.png", "size=64").await).await;
    assert_eq!((image.width(), image.height()), (64, 43));
}

/// A render past `thumbnail_timeout` answers 422 but runs on: what it makes
/// is stored and served once it ends, without a second render.
#[tokio::test]
async fn a_render_past_its_time_budget_is_served_once_it_ends() {
    let app = spawn_app_with(|config| {
        config.thumbnail_timeout = std::time::Duration::from_millis(100); // the least allowed
        config.run_workers = false;
    })
    .await;
    let owner = owner_with_bucket(&app, "cy", "pics").await.access;
    // 24 Mpx: decoding alone takes longer than 100 ms.
    upload(&app, &owner, "large.png", encoded(&marked(6000, 4000), ImageFormat::Png), "image/png").await;
    assert_eq!(thumb(&app, &owner, "large.png", "size=64").await.status(), 422);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let served = loop {
        let response = thumb(&app, &owner, "large.png", "size=64").await;
        if response.status() == 200 {
            break decoded(response).await;
        }
        assert_eq!(response.status(), 422, "until the render ends");
        assert!(std::time::Instant::now() < deadline, "the render never ended");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((served.width(), served.height()), (64, 43));
    assert_eq!(app.services.metrics.thumbnails_rendered.get(), 1, "rendered once");
}

/// A request that goes away while its render runs (a client gone) leaves
/// the render to finish and its thumbnail stored: the next request renders
/// nothing. The service's future is dropped once the render holds its slot.
#[tokio::test]
async fn a_render_whose_request_went_away_is_kept() {
    let app = spawn_app_with(|config| {
        config.thumbnail_timeout = std::time::Duration::from_secs(30);
        config.run_workers = false;
    })
    .await;
    if app.config.storage != coffer::config::StorageKind::Fs {
        // The slot is taken before the source is read; only a local read is
        // surely over a moment later, while the render runs on for long after.
        return;
    }
    let owner = owner_with_bucket(&app, "cyra", "pics").await.access;
    upload(&app, &owner, "large.png", encoded(&marked(6000, 4000), ImageFormat::Png), "image/png").await;
    let principal = app.services.authenticate(&Default::default(), &owner).await.expect("principal");
    let pool = app.services.thumbnails.pool.clone();
    let slots = pool.available_permits();
    let wanted = (64, coffer::media::thumbnail::ThumbFormat::Webp);
    let ctx = coffer::service::RequestContext::default();
    let render = app.services.thumbnail(&ctx, &principal, "pics", "large.png", wanted, None);
    let rendering = async {
        while pool.available_permits() == slots {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await; // the source is read, the render runs
    };
    tokio::select! {
        _ = render => panic!("the render ended before its request could go away"),
        () = rendering => {}
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pool.available_permits() < slots {
        assert!(std::time::Instant::now() < deadline, "the render never ended");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Stored once the slot is freed.
    while app.services.blobs.list("t/", None, 10).await.expect("list").blobs.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the thumbnail was never stored");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let response = thumb(&app, &owner, "large.png", "size=64&format=webp").await;
    assert_eq!(response.status(), 200);
    let served = decoded(response).await;
    assert_eq!((served.width(), served.height()), (64, 43));
    // Counted where a request waited for a render: none did, the stored one was served.
    assert_eq!(app.services.metrics.thumbnails_rendered.get(), 0, "not rendered again");
}
