//! The B5 reference: a bare actix-web server answering with the headers
//! Coffer sends for a small object, and nothing else (no auth, no lookups):
//! 304 to a conditional request (what B5 times), else 200.
//! `cargo run --release --example bare_head -- 127.0.0.1:PORT`

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

async fn head(request: HttpRequest) -> HttpResponse {
    let not_modified = request.headers().contains_key("if-none-match");
    let mut response = HttpResponse::build(if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::OK });
    response
        .insert_header(("content-type", "text/plain"))
        .insert_header(("etag", "\"0d5c5d0b2a5f4f2b8b9f5f8e6a1c3d2e\""))
        .insert_header(("last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"))
        .insert_header(("accept-ranges", "bytes"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("content-disposition", "inline; filename=\"small.txt\""))
        .insert_header(("x-request-id", "00000000-0000-0000-0000-000000000000"));
    // A 304 carries no body. Giving actix one anyway costs it about 7x in
    // throughput, which once made this reference look slower than Coffer.
    if not_modified { response.finish() } else { response.body("hello, cache") }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8099".into());
    HttpServer::new(|| App::new().default_service(web::route().to(head))).bind(bind)?.run().await
}
