//! Polls the job queue and runs what is due, as many at once as thumbnails may render.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Worker;
use crate::service::Services;

pub struct JobRunner {
    services: Arc<Services>,
}

impl JobRunner {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

#[async_trait]
impl Worker for JobRunner {
    fn name(&self) -> &'static str {
        "jobs"
    }

    fn interval(&self) -> Duration {
        self.services.config.job_poll_interval
    }

    async fn tick(&self) -> anyhow::Result<()> {
        let batch = self.services.config.effective_thumbnail_workers();
        // Keep going while full batches come back, so a backlog drains within one tick.
        while self.services.run_jobs(batch).await? == batch {}
        Ok(())
    }
}
