//! `/api/v1/openapi.json` and `/api/docs`: the OpenAPI document, and a plain
//! HTML rendering of it made on the server (no script, no external assets).

use actix_web::HttpResponse;
use actix_web::http::header;

use super::openapi::document;

const PAGE_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'none'";

pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-cache")).json(document())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The operations grouped by path, with their parameters and responses.
pub fn render() -> String {
    let document = document();
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Coffer API</title></head><body><main><h1>Coffer API</h1>\
         <p>The machine-readable document is <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> \
         (OpenAPI 3.1). Send <code>Authorization: Bearer &lt;token&gt;</code> unless an operation says it is public. \
         Errors are <code>application/problem+json</code>.</p>",
    );
    let empty = serde_json::Map::new();
    for (path, item) in document["paths"].as_object().unwrap_or(&empty) {
        for (method, operation) in item.as_object().unwrap_or(&empty) {
            out.push_str(&format!(
                "<section><h2><code>{} {}</code></h2><p>{}{}</p>",
                method.to_uppercase(),
                escape(path),
                escape(operation["summary"].as_str().unwrap_or_default()),
                if operation.get("security").is_some() { " (public)" } else { "" },
            ));
            if let Some(parameters) = operation["parameters"].as_array().filter(|p| !p.is_empty()) {
                out.push_str("<p>Parameters:</p><ul>");
                for parameter in parameters {
                    out.push_str(&format!(
                        "<li><code>{}</code> in {}</li>",
                        escape(parameter["name"].as_str().unwrap_or_default()),
                        escape(parameter["in"].as_str().unwrap_or_default()),
                    ));
                }
                out.push_str("</ul>");
            }
            if let Some(body) = operation["requestBody"]["content"].as_object() {
                let types: Vec<String> = body.keys().map(|k| escape(k)).collect();
                out.push_str(&format!("<p>Body: <code>{}</code></p>", types.join(", ")));
            }
            if let Some(responses) = operation["responses"].as_object() {
                let codes: Vec<&str> = responses.keys().map(String::as_str).collect();
                out.push_str(&format!("<p>Responses: {}</p>", codes.join(", ")));
            }
            out.push_str("</section>");
        }
    }
    out.push_str("</main></body></html>\n");
    out
}

pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_CSP))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(render())
}
