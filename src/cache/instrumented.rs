//! A `Cache` decorator that times every cache call by operation and counts
//! failures, for `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::{Cache, CacheError};
use crate::metrics::{Metrics, OperationLabel};
use crate::policy::rate::{Quota, RateDecision};

pub struct Instrumented {
    inner: Arc<dyn Cache>,
    seconds: Family<OperationLabel, Histogram, fn() -> Histogram>,
    errors: Family<OperationLabel, Counter>,
}

impl Instrumented {
    pub fn wrap(inner: Arc<dyn Cache>, metrics: &Metrics) -> Arc<dyn Cache> {
        Arc::new(Self { inner, seconds: metrics.cache_seconds.clone(), errors: metrics.cache_errors.clone() })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        let started = Instant::now();
        let result = call.await;
        let label = OperationLabel { operation };
        self.seconds.get_or_create(&label).observe(started.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.get_or_create(&label).inc();
        }
        result
    }
}

#[async_trait]
impl Cache for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        self.timed("get", self.inner.get(key)).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
        self.timed("set", self.inner.set(key, value, ttl)).await
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.timed("delete", self.inner.delete(key)).await
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Duration) -> Result<Bytes, CacheError> {
        self.timed("set_if_absent", self.inner.set_if_absent(key, value, ttl)).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.timed("ping", self.inner.ping()).await
    }

    fn breaker_open(&self) -> bool {
        self.inner.breaker_open()
    }

    async fn admit(&self, key: &str, quota: Quota) -> Result<RateDecision, CacheError> {
        self.timed("admit", self.inner.admit(key, quota)).await
    }
}
