//! Runs the lifecycle rules on a schedule; a lease picks one replica per interval.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Worker;
use crate::service::Services;

pub struct LifecycleRunner {
    services: Arc<Services>,
}

impl LifecycleRunner {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

#[async_trait]
impl Worker for LifecycleRunner {
    fn name(&self) -> &'static str {
        "lifecycle"
    }

    fn interval(&self) -> Duration {
        self.services.config.lifecycle_interval
    }

    async fn tick(&self) -> anyhow::Result<()> {
        self.services.run_scheduled_lifecycle().await?;
        Ok(())
    }
}
