//! Mirroring retention and legal holds to the backend's own Object Lock:
//! right after each change, and, when the backend misses one (unreachable,
//! throttling), as a job that later brings the backend object to what the
//! database then says. Coffer enforces either way; this is defense in depth.

use super::Services;
use super::jobs::LOCK_MIRROR_JOB;
use crate::metadata::ObjectRecord;
use crate::policy::retention::Retention;
use crate::storage::StorageError;

/// Sends of one job before it waits for its next run, when the object's
/// protection keeps changing under it.
const MIRROR_ROUNDS: usize = 3;

/// What is mirrored of an object.
fn protection(object: &ObjectRecord) -> (bool, Option<Retention>) {
    (object.legal_hold, Retention::of(object))
}

impl Services {
    /// Mirrors a retention change; `bypass` when the change overrode a
    /// GOVERNANCE retention (the backend asks for the same override).
    pub(crate) async fn mirror_retention(&self, object: &ObjectRecord, retention: Option<Retention>, bypass: bool) {
        if let Err(error) = self.blobs.mirror_retention(&object.blob_key, retention, bypass).await {
            tracing::warn!(error = %error, object_id = object.id, "could not mirror retention to the backend; queued");
            self.queue_lock_mirror(object.id, bypass).await;
        }
    }

    pub(crate) async fn mirror_legal_hold(&self, object: &ObjectRecord, on: bool) {
        if let Err(error) = self.blobs.mirror_legal_hold(&object.blob_key, on).await {
            tracing::warn!(error = %error, object_id = object.id, "could not mirror a legal hold to the backend; queued");
            self.queue_lock_mirror(object.id, false).await;
        }
    }

    /// Mirrors a freshly written object's default retention to the backend.
    pub(crate) async fn mirror_new_object(&self, object: &ObjectRecord) {
        if let Some(retention) = Retention::of(object) {
            self.mirror_retention(object, Some(retention), false).await;
        }
    }

    /// One job per object and override: a job already queued mirrors the
    /// object's state as it is when it runs, so later misses add nothing.
    async fn queue_lock_mirror(&self, object_id: i64, bypass: bool) {
        let dedupe = format!("{LOCK_MIRROR_JOB}:{object_id}:{bypass}");
        let payload = serde_json::json!({ "object_id": object_id, "bypass": bypass });
        if let Err(error) = self.store.enqueue_job(LOCK_MIRROR_JOB, &dedupe, &payload, self.clock.now()).await {
            tracing::error!(error = %error, object_id, "could not queue a missed Object Lock mirror");
        }
    }

    /// The job: the backend object gets the legal hold and the retention the
    /// database holds now (nothing, once the object is gone). The hold goes
    /// first: it never expires, so it never waits on a retention the backend
    /// may refuse. A retention is sent while it is active, or as a removal
    /// when the missed change was an override (a shortening or removal).
    pub(super) async fn lock_mirror_job(&self, payload: &serde_json::Value) -> Result<(), String> {
        let id = payload["object_id"].as_i64().ok_or("payload without object_id")?;
        let mut bypass = payload["bypass"].as_bool().unwrap_or(false);
        let Some(mut object) = self.committed_object(id).await? else { return Ok(()) };
        for _ in 0..MIRROR_ROUNDS {
            self.mirror_protection(&object, bypass).await.map_err(|e| e.to_string())?;
            match self.committed_object(id).await? {
                Some(now) if protection(&now) != protection(&object) => {
                    // Changed while it was sent: what this job sent may have
                    // undone that change's own mirror, so it is sent again,
                    // as an override (the database only shortens under one).
                    (object, bypass) = (now, true);
                }
                _ => return Ok(()),
            }
        }
        Err("the object's protection kept changing while it was mirrored".into())
    }

    async fn mirror_protection(&self, object: &ObjectRecord, bypass: bool) -> Result<(), StorageError> {
        let key = &object.blob_key;
        self.blobs.mirror_legal_hold(key, object.legal_hold).await?;
        match Retention::of(object).filter(|retention| retention.is_active(self.clock.now())) {
            Some(active) => self.blobs.mirror_retention(key, Some(active), bypass).await,
            None if bypass => self.blobs.mirror_retention(key, None, true).await,
            None => Ok(()),
        }
    }
}
