//! The embedded web UI: the SPA's files from `web/dist` at `/` and `/assets/*`,
//! `index.html` for every other browser path, a strict CSP on all of it.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

/// The built SPA (`npm run build` in `web/`). Debug builds read it from disk.
#[derive(RustEmbed)]
#[folder = "web/dist/"]
#[allow_missing = true]
struct Dist;

/// The policy of every UI response: scripts and styles only from this origin.
pub const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'self'";

/// `UI_CSP`, letting video and audio previews play from the content origin
/// when one is configured (their signed URLs point there).
pub fn ui_csp(content_origin: Option<&str>) -> std::borrow::Cow<'static, str> {
    match content_origin.map(|origin| origin.trim_end_matches('/')).filter(|origin| !origin.is_empty()) {
        Some(origin) => UI_CSP.replace("media-src 'self' blob:;", &format!("media-src 'self' blob: {origin};")).into(),
        None => UI_CSP.into(),
    }
}

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Coffer: UI not built</title></head><body><h1>UI not built</h1>\
<p>This Coffer binary was built without its web UI: install Node 20 and run \
<code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>, then rebuild Coffer \
(<code>cargo build</code> does both when <code>npm</code> is on the PATH).</p>\
<p>The HTTP API under <code>/api/v1</code> works regardless.</p></body></html>";

/// Paths that belong to the API and never fall back to the SPA.
fn is_reserved(path: &str) -> bool {
    ["/api/", "/s/", "/health/", "/metrics"].iter().any(|prefix| path.starts_with(prefix))
        || matches!(path, "/api" | "/s" | "/health")
}

fn with_headers(mut builder: actix_web::HttpResponseBuilder, cache: &str, csp: &str) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, cache.to_owned()));
    builder
}

fn index(csp: &str) -> HttpResponse {
    let Some(file) = Dist::get("index.html") else {
        // 200: error statuses would be turned into problem documents on the way out.
        return with_headers(HttpResponse::Ok(), "no-cache", csp)
            .content_type("text/html; charset=utf-8")
            .body(NOT_BUILT);
    };
    // A HEAD answer is sent without the body but with its length (actix drops the bytes).
    with_headers(HttpResponse::Ok(), "no-cache", csp)
        .content_type("text/html; charset=utf-8")
        .body(file.data.into_owned())
}

fn asset(request: &HttpRequest, path: &str, csp: &str) -> HttpResponse {
    let Some(file) = Dist::get(path) else {
        return HttpResponse::NotFound().finish();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let matches = request.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    // Vite names every file under assets/ by its content hash: cache forever.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    if matches {
        return with_headers(HttpResponse::NotModified(), cache, csp).insert_header((header::ETAG, etag)).finish();
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    with_headers(HttpResponse::Ok(), cache, csp)
        .content_type(mime.essence_str())
        .insert_header((header::ETAG, etag))
        .body(file.data.into_owned())
}

/// Default service: files of the SPA, else `index.html` for browser paths
/// (client-side routes), else the usual 404.
pub async fn serve(request: HttpRequest) -> HttpResponse {
    let path = request.path().to_owned();
    if !matches!(*request.method(), Method::GET | Method::HEAD) || is_reserved(&path) {
        return HttpResponse::NotFound().finish();
    }
    let services = request.app_data::<actix_web::web::Data<crate::service::Services>>();
    let csp = ui_csp(services.and_then(|s| s.config.content_origin.as_deref()));
    let relative = path.trim_start_matches('/');
    if relative.is_empty() || relative == "index.html" {
        return index(&csp);
    }
    if relative.starts_with("assets/") || Dist::get(relative).is_some() {
        return asset(&request, relative, &csp);
    }
    index(&csp)
}

#[cfg(test)]
mod tests {
    use super::{UI_CSP, is_reserved, ui_csp};

    #[test]
    fn media_may_come_from_the_content_origin() {
        assert_eq!(ui_csp(None), UI_CSP);
        let csp = ui_csp(Some("https://content.example/"));
        assert!(csp.contains("media-src 'self' blob: https://content.example;"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "scripts stay this origin's: {csp}");
    }

    #[test]
    fn api_paths_never_fall_back_to_the_spa() {
        for path in ["/api/v1/nope", "/api", "/s/abc", "/health/live", "/metrics"] {
            assert!(is_reserved(path), "{path}");
        }
        for path in ["/", "/files/bucket/a", "/admin/users", "/account", "/shares"] {
            assert!(!is_reserved(path), "{path}");
        }
    }
}
