//! Re-measures the replica's clock against the database's every minute.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Worker;
use crate::service::Services;

pub struct ClockAlignment {
    services: Arc<Services>,
}

impl ClockAlignment {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

#[async_trait]
impl Worker for ClockAlignment {
    fn name(&self) -> &'static str {
        "clock-alignment"
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(60)
    }

    async fn tick(&self) -> anyhow::Result<()> {
        self.services.align_clock().await?;
        Ok(())
    }
}
