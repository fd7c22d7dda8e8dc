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

fn with_headers(mut builder: actix_web::HttpResponseBuilder, cache: &str) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, UI_CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, cache.to_owned()));
    builder
}

fn index(request: &HttpRequest) -> HttpResponse {
    let Some(file) = Dist::get("index.html") else {
        // 200: error statuses would be turned into problem documents on the way out.
        return with_headers(HttpResponse::Ok(), "no-cache").content_type("text/html; charset=utf-8").body(NOT_BUILT);
    };
    let body = if request.method() == Method::HEAD { Vec::new() } else { file.data.into_owned() };
    with_headers(HttpResponse::Ok(), "no-cache").content_type("text/html; charset=utf-8").body(body)
}

fn asset(request: &HttpRequest, path: &str) -> HttpResponse {
    let Some(file) = Dist::get(path) else {
        return HttpResponse::NotFound().finish();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let matches = request.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    // Vite names every file under assets/ by its content hash: cache forever.
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    if matches {
        return with_headers(HttpResponse::NotModified(), cache).insert_header((header::ETAG, etag)).finish();
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let body = if request.method() == Method::HEAD { Vec::new() } else { file.data.into_owned() };
    with_headers(HttpResponse::Ok(), cache)
        .content_type(mime.essence_str())
        .insert_header((header::ETAG, etag))
        .body(body)
}

/// Default service: files of the SPA, else `index.html` for browser paths
/// (client-side routes), else the usual 404.
pub async fn serve(request: HttpRequest) -> HttpResponse {
    let path = request.path().to_owned();
    if !matches!(*request.method(), Method::GET | Method::HEAD) || is_reserved(&path) {
        return HttpResponse::NotFound().finish();
    }
    let relative = path.trim_start_matches('/');
    if relative.is_empty() || relative == "index.html" {
        return index(&request);
    }
    if relative.starts_with("assets/") || Dist::get(relative).is_some() {
        return asset(&request, relative);
    }
    index(&request)
}

#[cfg(test)]
mod tests {
    use super::is_reserved;

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
