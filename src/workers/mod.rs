//! Background loops with graceful shutdown: one `Worker` trait, one `Supervisor`.

mod audit_checkpoint;
mod clock_alignment;
mod jobs;
mod lifecycle;
mod read_log;
mod reconciler;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use audit_checkpoint::AuditCheckpoint;
pub use clock_alignment::ClockAlignment;
pub use jobs::JobRunner;
pub use lifecycle::LifecycleRunner;
pub use read_log::ReadLogFlusher;
pub use reconciler::Reconciler;

use crate::service::Services;

/// A periodic job. `tick` runs once per `interval`; errors are logged and the loop goes on.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn interval(&self) -> Duration;
    async fn tick(&self) -> anyhow::Result<()>;
    /// Runs once when the supervisor stops (flush what is buffered).
    async fn shutdown(&self) {}
}

/// Runs workers until asked to stop; a stop lets the current tick finish (bounded).
pub struct Supervisor {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Supervisor {
    pub fn start(workers: Vec<Arc<dyn Worker>>) -> Self {
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for worker in workers {
            let mut stop = shutdown.subscribe();
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(worker.interval());
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        _ = stop.changed() => {
                            worker.shutdown().await;
                            break;
                        }
                        _ = ticker.tick() => {
                            if let Err(error) = worker.tick().await {
                                tracing::warn!(worker = worker.name(), error = format!("{error:#}"), "worker tick failed");
                            }
                        }
                    }
                }
            });
        }
        Self { shutdown, tasks }
    }

    /// The workers every server runs.
    pub fn for_services(services: &Arc<Services>) -> Self {
        // Read events are flushed even where background jobs are off: they are part of the audit trail.
        // So is the clock's alignment: retention and token expiry are decided on it.
        let mut workers: Vec<Arc<dyn Worker>> =
            vec![Arc::new(ReadLogFlusher::new(services.clone())), Arc::new(ClockAlignment::new(services.clone()))];
        if services.config.run_workers {
            workers.push(Arc::new(AuditCheckpoint::new(services.clone())));
            workers.push(Arc::new(Reconciler::new(services.clone())));
            workers.push(Arc::new(LifecycleRunner::new(services.clone())));
            workers.push(Arc::new(JobRunner::new(services.clone())));
        }
        Self::start(workers)
    }

    pub async fn stop(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(grace, async { while self.tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("workers did not stop within the grace period; aborting them");
            self.tasks.abort_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counter(Arc<AtomicUsize>);

    #[async_trait]
    impl Worker for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn interval(&self) -> Duration {
            Duration::from_millis(5)
        }
        async fn tick(&self) -> anyhow::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("errors do not stop the loop")
        }
    }

    #[tokio::test]
    async fn ticks_until_stopped() {
        let count = Arc::new(AtomicUsize::new(0));
        let supervisor = Supervisor::start(vec![Arc::new(Counter(count.clone()))]);
        while count.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        supervisor.stop(Duration::from_secs(1)).await;
        let after = count.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(count.load(Ordering::SeqCst), after, "no ticks after stop");
    }
}
