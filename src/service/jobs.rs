//! Background jobs queued in the metadata database: the common thumbnail
//! (256 px WebP) of every new image, so galleries open warm, and Object Lock
//! mirrors the backend missed (`lock_mirror`). Jobs survive restarts, are
//! de-duplicated, leased to one replica, and retried with backoff.

use chrono::Duration;

use super::{ServiceResult, Services};
use crate::media::ThumbFailure;
use crate::media::thumbnail::ThumbFormat;
use crate::metadata::{JobRecord, ObjectRecord, ObjectState};

pub const THUMBNAIL_JOB: &str = "thumbnail";
pub const LOCK_MIRROR_JOB: &str = "lock_mirror";
/// The size galleries ask for first.
pub const COMMON_SIZE: u32 = 256;
const LEASE: Duration = Duration::minutes(5);

/// Runs of a job before it is dropped: a thumbnail can also be made on first
/// view, a missed lock mirror only here (the wait doubles from 20 s up to
/// about 3 hours, so 20 runs span 31 hours of a backend outage).
fn max_attempts(kind: &str) -> i64 {
    if kind == LOCK_MIRROR_JOB { 20 } else { 5 }
}

impl Services {
    /// Queues the common thumbnail of a freshly written image (not SVG).
    pub(crate) async fn queue_thumbnail(&self, object: &ObjectRecord) {
        let Some(sha256) = &object.sha256 else { return };
        if !object.content_type.starts_with("image/") || object.content_type.starts_with("image/svg") {
            return;
        }
        let dedupe = format!("{THUMBNAIL_JOB}:{sha256}:{COMMON_SIZE}:webp");
        let payload = serde_json::json!({ "object_id": object.id });
        if let Err(error) = self.store.enqueue_job(THUMBNAIL_JOB, &dedupe, &payload, self.clock.now()).await {
            tracing::warn!(error = %error, "could not queue a thumbnail; it will be made on first view");
        }
    }

    /// Claims and runs up to `limit` due jobs at once; how many ran.
    pub async fn run_jobs(&self, limit: usize) -> ServiceResult<usize> {
        let now = self.clock.now();
        let jobs = self.store.claim_jobs(&self.instance, now, now + LEASE, limit).await?;
        let count = jobs.len();
        futures::future::join_all(jobs.into_iter().map(|job| self.run_job(job))).await;
        Ok(count)
    }

    async fn run_job(&self, job: JobRecord) {
        let outcome = match job.kind.as_str() {
            THUMBNAIL_JOB => self.thumbnail_job(&job.payload).await,
            LOCK_MIRROR_JOB => self.lock_mirror_job(&job.payload).await,
            other => Err(format!("unknown job kind {other:?}")),
        };
        let settled = match outcome {
            Ok(()) => self.store.finish_job(job.id).await,
            Err(error) if job.attempts >= max_attempts(&job.kind) => {
                tracing::warn!(job_id = job.id, kind = %job.kind, error, "job failed for the last time; dropped");
                self.store.finish_job(job.id).await
            }
            Err(error) => {
                let backoff = Duration::seconds(10 * (1 << job.attempts.clamp(0, 10)));
                self.store.retry_job(job.id, &error, self.clock.now() + backoff).await
            }
        };
        if let Err(error) = settled {
            tracing::warn!(job_id = job.id, error = %error, "could not settle a job; its lease will expire");
        }
    }

    /// The object a job is about, while it is committed (`None` once it is
    /// gone or replaced).
    pub(super) async fn committed_object(&self, id: i64) -> Result<Option<ObjectRecord>, String> {
        let object = self.store.object_by_id(id).await.map_err(|e| e.to_string())?;
        Ok(object.filter(|o| o.state == ObjectState::Committed))
    }

    async fn thumbnail_job(&self, payload: &serde_json::Value) -> Result<(), String> {
        let id = payload["object_id"].as_i64().ok_or("payload without object_id")?;
        let Some(object) = self.committed_object(id).await? else {
            return Ok(()); // Gone or replaced: nothing to prepare.
        };
        match self.cached_thumbnail(&object, COMMON_SIZE, ThumbFormat::Webp).await {
            Ok(_)
            | Err(
                ThumbFailure::Unsupported(_)
                | ThumbFailure::Unprocessable(_)
                | ThumbFailure::TimedOut
                | ThumbFailure::SourceGone,
            ) => Ok(()),
            Err(ThumbFailure::Storage(why)) => Err(why),
            Err(busy @ ThumbFailure::Busy) => Err(busy.to_string()),
        }
    }
}
