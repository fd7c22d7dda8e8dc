//! Periodically records the audit chain head outside the database.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::Worker;
use crate::service::Services;

pub struct AuditCheckpoint {
    services: Arc<Services>,
    last: Mutex<Option<i64>>,
}

impl AuditCheckpoint {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, last: Mutex::new(None) }
    }
}

#[async_trait]
impl Worker for AuditCheckpoint {
    fn name(&self) -> &'static str {
        "audit-checkpoint"
    }

    fn interval(&self) -> Duration {
        self.services.config.audit_checkpoint_interval
    }

    async fn tick(&self) -> anyhow::Result<()> {
        let mut last = self.last.lock().await;
        if let Some(written) = self.services.checkpoint_audit(*last).await? {
            *last = Some(written.id);
        }
        Ok(())
    }
}
