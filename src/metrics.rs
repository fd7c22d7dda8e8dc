//! Prometheus metrics: one registry per running server (so test instances in
//! one process do not mix), rendered as text for `GET /metrics`. Labels are
//! route templates and small enums, never keys or names.

use std::collections::HashMap;
use std::sync::RwLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

/// The `cache_lookups` counters, resolved once: several lookups run per
/// request, and finding a labelled counter hashes its labels every time.
#[derive(Clone)]
pub struct LookupCounters {
    pub hit: Counter,
    pub miss: Counter,
    pub error: Counter,
}

/// One route's request counter and latency histogram for a method and status class.
#[derive(Clone)]
struct RequestSeries {
    method: String,
    status_class: u16,
    requests: Counter,
    seconds: Histogram,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// The series of `http_requests` and `http_seconds` by route, resolved
    /// once: finding a labelled series clones and hashes its labels, which
    /// cost a warm read more than the rest of its access log.
    request_series: RwLock<HashMap<String, Vec<RequestSeries>, crate::cache::FastHasher>>,
    /// `hit`, `miss`, `error` for the versioned lookups.
    pub cache_lookups: Family<KindLabel, Counter>,
    pub cache_lookup: LookupCounters,
    pub cache_breaker_open: Gauge,
    pub cache_copies_leased: Gauge,
    /// Sets of scope versions answered from this replica's coherent copies, without a round trip.
    pub cache_copies_used: Counter,
    /// Refusals by route class.
    pub rate_limited: Family<KindLabel, Counter>,
    /// `success`, `failure`.
    pub logins: Family<KindLabel, Counter>,
    pub thumbnails_rendered: Counter,
    pub thumbnail_seconds: Histogram,
    /// `hit` (cache or store), `miss` (rendered, or refused by the content),
    /// `busy` (every render slot stayed taken: a 503).
    pub thumbnail_lookups: Family<KindLabel, Counter>,
    /// `expired`, `skipped_locked`, `aborted_upload`.
    pub lifecycle_actions: Family<KindLabel, Counter>,
    pub lifecycle_bytes_freed: Counter,
    /// Request bodies by declared length, response bodies by known size.
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    /// Upload-class requests (object PUTs, form uploads, parts) in progress.
    pub active_uploads: Gauge,
    /// The correction applied to this replica's clock to follow the database's.
    pub clock_offset_milliseconds: Gauge,
    /// Object-store calls by operation, and their failures.
    pub storage_seconds: Family<OperationLabel, Histogram, fn() -> Histogram>,
    pub storage_errors: Family<OperationLabel, Counter>,
    /// Cache calls (in process or Redis) by operation, and their failures.
    pub cache_seconds: Family<OperationLabel, Histogram, fn() -> Histogram>,
    pub cache_errors: Family<OperationLabel, Counter>,
    /// Metadata-database calls by store operation, and their faults (an
    /// unreachable or failing database, not `NotFound` or `Conflict` answers).
    pub database_seconds: Family<OperationLabel, Histogram, fn() -> Histogram>,
    pub database_errors: Family<OperationLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

/// Times calls of one dependency by operation and counts the failed ones
/// (the object store and the cache decorators share it).
#[derive(Clone)]
pub struct CallTimer {
    seconds: Family<OperationLabel, Histogram, fn() -> Histogram>,
    errors: Family<OperationLabel, Counter>,
    /// `seconds` by operation, resolved once (operations are a fixed set of names).
    resolved: std::sync::Arc<RwLock<HashMap<&'static str, Histogram, crate::cache::FastHasher>>>,
}

impl CallTimer {
    pub fn new(
        seconds: &Family<OperationLabel, Histogram, fn() -> Histogram>,
        errors: &Family<OperationLabel, Counter>,
    ) -> Self {
        Self { seconds: seconds.clone(), errors: errors.clone(), resolved: std::sync::Arc::default() }
    }

    pub async fn time<T, E>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.time_counting(operation, call, |_| true).await
    }

    /// Like `time`, counting only the errors `is_fault` picks.
    pub async fn time_counting<T, E>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, E>>,
        is_fault: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.observe(operation, started.elapsed().as_secs_f64());
        if result.as_ref().is_err_and(is_fault) {
            self.errors.get_or_create(&OperationLabel { operation }).inc();
        }
        result
    }

    fn observe(&self, operation: &'static str, seconds: f64) {
        if let Ok(resolved) = self.resolved.read()
            && let Some(histogram) = resolved.get(operation)
        {
            histogram.observe(seconds);
            return;
        }
        let histogram = self.seconds.get_or_create(&OperationLabel { operation }).clone();
        histogram.observe(seconds);
        if let Ok(mut resolved) = self.resolved.write() {
            resolved.insert(operation, histogram);
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("coffer");
        let cache_lookups = Family::<KindLabel, Counter>::default();
        let resolve = |kind| cache_lookups.get_or_create(&KindLabel { kind }).clone();
        let cache_lookup = LookupCounters { hit: resolve("hit"), miss: resolve("miss"), error: resolve("error") };
        let metrics = Self {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
            request_series: RwLock::default(),
            cache_lookups,
            cache_lookup,
            cache_breaker_open: Gauge::default(),
            cache_copies_leased: Gauge::default(),
            cache_copies_used: Counter::default(),
            rate_limited: Family::default(),
            logins: Family::default(),
            thumbnails_rendered: Counter::default(),
            thumbnail_seconds: latency_histogram(),
            thumbnail_lookups: Family::default(),
            lifecycle_actions: Family::default(),
            lifecycle_bytes_freed: Counter::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            active_uploads: Gauge::default(),
            clock_offset_milliseconds: Gauge::default(),
            storage_seconds: Family::new_with_constructor(latency_histogram),
            storage_errors: Family::default(),
            cache_seconds: Family::new_with_constructor(latency_histogram),
            cache_errors: Family::default(),
            database_seconds: Family::new_with_constructor(latency_histogram),
            database_errors: Family::default(),
        };
        let build = Family::<Vec<(String, String)>, Gauge>::default();
        build.get_or_create(&vec![("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]).set(1);
        registry.register("build_info", "Coffer's version", build);
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status class",
            metrics.http_requests.clone(),
        );
        registry.register("http_request_duration_seconds", "HTTP request latency", metrics.http_seconds.clone());
        registry.register("cache_lookups", "Cached lookups by result", metrics.cache_lookups.clone());
        registry.register(
            "cache_breaker_open",
            "1 while Redis is bypassed after a failure",
            metrics.cache_breaker_open.clone(),
        );
        registry.register(
            "cache_copies_leased",
            "1 while this replica answers scope versions from its coherent copies of Redis' (lease held)",
            metrics.cache_copies_leased.clone(),
        );
        registry.register(
            "cache_copies_used",
            "Sets of scope versions answered from this replica's coherent copies, without a round trip",
            metrics.cache_copies_used.clone(),
        );
        registry.register("rate_limited", "Requests refused with 429, by route class", metrics.rate_limited.clone());
        registry.register("logins", "Password logins by outcome", metrics.logins.clone());
        registry.register("thumbnails_rendered", "Thumbnails rendered", metrics.thumbnails_rendered.clone());
        registry.register(
            "thumbnail_render_seconds",
            "Time to render one thumbnail",
            metrics.thumbnail_seconds.clone(),
        );
        registry.register(
            "thumbnail_lookups",
            "Thumbnail requests by result: hit, miss, busy",
            metrics.thumbnail_lookups.clone(),
        );
        registry.register("lifecycle_actions", "Lifecycle actions by kind", metrics.lifecycle_actions.clone());
        registry.register(
            "lifecycle_bytes_freed",
            "Bytes freed by lifecycle expiry",
            metrics.lifecycle_bytes_freed.clone(),
        );
        registry.register("http_request_body_bytes", "Request body bytes received", metrics.bytes_received.clone());
        registry.register("http_response_body_bytes", "Response body bytes sent", metrics.bytes_sent.clone());
        registry.register("active_uploads", "Uploads in progress", metrics.active_uploads.clone());
        registry.register(
            "clock_offset_milliseconds",
            "Correction applied to this replica's clock to follow the database's (0 within a second)",
            metrics.clock_offset_milliseconds.clone(),
        );
        registry.register(
            "storage_operation_duration_seconds",
            "Object-store call latency by operation",
            metrics.storage_seconds.clone(),
        );
        registry.register("storage_errors", "Failed object-store calls by operation", metrics.storage_errors.clone());
        registry.register(
            "cache_operation_duration_seconds",
            "Cache call latency by operation",
            metrics.cache_seconds.clone(),
        );
        registry.register("cache_errors", "Failed cache calls by operation", metrics.cache_errors.clone());
        registry.register(
            "database_operation_duration_seconds",
            "Metadata-database call latency by store operation",
            metrics.database_seconds.clone(),
        );
        registry.register(
            "database_errors",
            "Metadata-database calls that failed for lack of a working database",
            metrics.database_errors.clone(),
        );
        Self { registry, ..metrics }
    }

    /// Counts one finished request of `route` (its template) and records its latency.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let class = status / 100;
        let known = |series: &RequestSeries| series.method == method && series.status_class == class;
        if let Ok(routes) = self.request_series.read()
            && let Some(series) = routes.get(route).and_then(|all| all.iter().find(|series| known(series)))
        {
            series.requests.inc();
            series.seconds.observe(seconds);
            return;
        }
        let series = RequestSeries {
            method: method.to_owned(),
            status_class: class,
            requests: self
                .http_requests
                .get_or_create(&RequestLabels {
                    method: method.to_owned(),
                    route: route.to_owned(),
                    status: status_class(status),
                })
                .clone(),
            seconds: self
                .http_seconds
                .get_or_create(&RouteLabels { method: method.to_owned(), route: route.to_owned() })
                .clone(),
        };
        series.requests.inc();
        series.seconds.observe(seconds);
        if let Ok(mut routes) = self.request_series.write() {
            let all = routes.entry(route.to_owned()).or_default();
            if !all.iter().any(known) {
                all.push(series);
            }
        }
    }

    pub fn count(family: &Family<KindLabel, Counter>, kind: &'static str) {
        family.get_or_create(&KindLabel { kind }).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `2xx`, `4xx`, ...
pub fn status_class(status: u16) -> String {
    format!("{}xx", status / 100)
}

/// The `method` label: the standard methods by name, any other as `other`.
/// Clients choose the method token (any length), and each label value is a
/// series kept for good: an open set would grow memory without bound.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|known| *known == method).unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_chosen_methods_share_one_label() {
        let metrics = Metrics::new();
        for n in 0..200 {
            metrics.observe_request(&format!("M{n}{}", "X".repeat(100)), "unmatched", 404, 0.001);
        }
        metrics.observe_request("GET", "unmatched", 404, 0.001);
        let text = metrics.render();
        let series = text.lines().filter(|line| line.starts_with("coffer_http_requests_total{")).count();
        assert_eq!(series, 2, "{text}");
        assert!(text.contains(r#"method="other""#));
    }
}
