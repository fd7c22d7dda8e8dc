//! Runs the reconciler on a schedule; the orphan scan resumes where the last run stopped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::Worker;
use crate::service::Services;

/// Backend keys examined per run (the full scan spreads over several runs).
const ORPHAN_SCAN_PER_RUN: usize = 10_000;

pub struct Reconciler {
    services: Arc<Services>,
    cursor: Mutex<Option<String>>,
}

impl Reconciler {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, cursor: Mutex::new(None) }
    }
}

#[async_trait]
impl Worker for Reconciler {
    fn name(&self) -> &'static str {
        "reconciler"
    }

    fn interval(&self) -> Duration {
        self.services.config.reconcile_interval
    }

    async fn tick(&self) -> anyhow::Result<()> {
        let mut cursor = self.cursor.lock().await;
        // A failed run keeps the cursor: the next one resumes the scan instead of starting over.
        let (_, next) = self.services.reconcile(cursor.clone(), Some(ORPHAN_SCAN_PER_RUN)).await?;
        *cursor = next;
        Ok(())
    }
}
