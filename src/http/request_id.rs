//! Request ids (a valid incoming `X-Request-Id` is echoed, else a fresh
//! UUIDv7) and the active-upload gauge; `edge` puts them on every request
//! (the id travels with the request's task: `service::within_request`).

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderName;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Accept ids a proxy or client might send, but nothing that could forge log lines.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

thread_local! {
    /// Each worker thread orders its own ids: `Uuid::now_v7` shares one
    /// context behind a mutex that every request of every worker would take.
    static ID_CONTEXT: uuid::ContextV7 = const { uuid::ContextV7::new() };
}

/// A fresh id: a UUIDv7 (time-ordered), written without the formatting machinery.
fn new_request_id() -> std::sync::Arc<str> {
    let context = uuid::timestamp::context::ThreadLocalContext::new(&ID_CONTEXT);
    let id = uuid::Uuid::new_v7(uuid::Timestamp::now(context));
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    std::sync::Arc::from(&*id.hyphenated().encode_lower(&mut text))
}

/// The request's id: a valid incoming `X-Request-Id`, or a fresh one.
pub(super) fn incoming_or_new(request: &ServiceRequest) -> std::sync::Arc<str> {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| acceptable(value))
        .map_or_else(new_request_id, std::sync::Arc::from)
}

/// The body length the client declared (0 when it declared none).
pub(super) fn declared_length(request: &ServiceRequest) -> u64 {
    request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        // A client may declare anything: no more than any body may be (5 TiB), so the counter cannot wrap.
        .map_or(0, |declared| declared.min(5 << 40))
}

/// Counts an upload as active until its request finishes (or is dropped).
pub(super) struct UploadGuard(actix_web::web::Data<crate::service::Services>);

impl UploadGuard {
    pub(super) fn start(services: actix_web::web::Data<crate::service::Services>) -> Self {
        services.metrics.active_uploads.inc();
        Self(services)
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.metrics.active_uploads.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_safe_ids_are_echoed() {
        assert!(acceptable("0190c6d2-7c1a-7e4b-9a8e-3f1b2c4d5e6f"));
        assert!(acceptable("trace:abc/123"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("x\ny"));
        assert!(!acceptable(&"a".repeat(129)));
    }

    #[test]
    fn fresh_ids_are_hyphenated_v7_uuids() {
        let id = super::new_request_id();
        let parsed = uuid::Uuid::parse_str(&id).expect("a uuid");
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(&*id, parsed.hyphenated().to_string());
        assert!(acceptable(&id));
        let ids: Vec<_> = (0..1000).map(|_| super::new_request_id()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "one worker's ids sort in the order they were made");
    }
}
