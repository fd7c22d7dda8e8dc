//! Appends queued read events to the audit trail in batches.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Worker;
use crate::service::Services;

pub struct ReadLogFlusher {
    services: Arc<Services>,
}

impl ReadLogFlusher {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

#[async_trait]
impl Worker for ReadLogFlusher {
    fn name(&self) -> &'static str {
        "read-log"
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(250)
    }

    async fn tick(&self) -> anyhow::Result<()> {
        Ok(self.services.reads.flush(&*self.services.store).await?)
    }

    async fn shutdown(&self) {
        if let Err(error) = self.services.reads.flush(&*self.services.store).await {
            tracing::error!(error = %error, "could not flush read audit events at shutdown");
        }
    }
}
