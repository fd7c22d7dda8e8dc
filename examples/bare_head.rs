//! The B5 reference: a bare actix-web server answering with the headers
//! Coffer sends for a small object, and nothing else (no auth, no lookups):
//! 304 to a conditional request (what B5 times), else 200. The security
//! headers come from Coffer's own `harden` and CSP constant, so the two
//! answers carry the same header set (bench/cache.py checks that they do).
//! `cargo run --release --example bare_head -- 127.0.0.1:PORT`

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use coffer::http::objects::OBJECT_CSP;
use coffer::http::request_id::REQUEST_ID;
use coffer::http::security::harden;

async fn head(request: HttpRequest) -> HttpResponse {
    let not_modified = request.headers().contains_key("if-none-match");
    let mut response = HttpResponse::build(if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::OK });
    response
        .insert_header((header::ETAG, "\"84a315e553102967663d15f366b38f32898328d402e76116c1e8c4be8236182c\""))
        .insert_header((header::LAST_MODIFIED, "Tue, 01 Dec 2026 00:00:00 GMT"))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(OBJECT_CSP)))
        .insert_header((REQUEST_ID, "00000000-0000-0000-0000-000000000000"));
    if !not_modified {
        response
            .insert_header((header::CONTENT_TYPE, "text/plain"))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .insert_header((header::CONTENT_DISPOSITION, "inline; filename=\"small.txt\""));
    }
    // A 304 carries no body. Giving actix one anyway costs it about 7x in
    // throughput, which once made this reference look slower than Coffer.
    let mut response = if not_modified { response.finish() } else { response.body("hello, cache") };
    harden(response.headers_mut(), None);
    response
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8099".into());
    HttpServer::new(|| App::new().default_service(web::route().to(head))).bind(bind)?.run().await
}
