//! Mirroring Coffer's retention and legal holds to the backend's own S3
//! Object Lock, when its bucket has Object Lock enabled (defense in depth:
//! Coffer enforces either way).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::DateTime as S3DateTime;
use aws_sdk_s3::types::{
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockRetention, ObjectLockRetentionMode,
};

use super::StorageError;
use super::s3::S3BlobStore;
use super::s3_errors::classify;
use crate::metadata::RetentionMode;
use crate::policy::retention::Retention;

/// How long a backend bucket's "no Object Lock" is believed (it can be turned
/// on later; a "yes" is kept, as Object Lock cannot be turned off).
const RECHECK_NO_AFTER: Duration = Duration::from_secs(60);

/// What backend buckets answered about Object Lock, by bucket name; shared by
/// the stores of every backend bucket.
#[derive(Default)]
pub(super) struct LockAnswers(Mutex<HashMap<String, (bool, Instant)>>);

impl LockAnswers {
    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, Instant)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, bucket: &str) -> Option<bool> {
        let (enabled, at) = *self.answers().get(bucket)?;
        (enabled || at.elapsed() < RECHECK_NO_AFTER).then_some(enabled)
    }

    fn put(&self, bucket: &str, enabled: bool) {
        self.answers().insert(bucket.to_owned(), (enabled, Instant::now()));
    }

    pub(super) fn forget(&self, bucket: &str) {
        self.answers().remove(bucket);
    }
}

impl S3BlobStore {
    /// Whether the backend bucket has Object Lock enabled, as last answered
    /// (see `RECHECK_NO_AFTER`); `Err` when the backend could not answer.
    pub(super) async fn object_lock_answer(&self) -> Result<bool, StorageError> {
        if let Some(known) = self.lock_answers.get(&self.bucket) {
            return Ok(known);
        }
        let enabled = self.ask_object_lock().await?;
        self.lock_answers.put(&self.bucket, enabled);
        Ok(enabled)
    }

    /// Asks the backend whether this bucket has Object Lock enabled. A refusal
    /// (no lock configuration, no permission to read it, or a backend without
    /// Object Lock) is a definite no; `Err` when the backend could not answer.
    async fn ask_object_lock(&self) -> Result<bool, StorageError> {
        let error = match self.client.get_object_lock_configuration().bucket(&self.bucket).send().await {
            Ok(out) => {
                let configuration = out.object_lock_configuration();
                return Ok(configuration.and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled));
            }
            Err(error) => error,
        };
        let refused = error.raw_response().is_some_and(|raw| matches!(raw.status().as_u16(), 401 | 403 | 501));
        match classify(error) {
            StorageError::Unavailable(why) if !refused => {
                tracing::warn!(bucket = %self.bucket, error = %why, "could not ask the backend about Object Lock");
                Err(StorageError::Unavailable(why))
            }
            refusal => {
                tracing::info!(bucket = %self.bucket, error = %refusal, "backend bucket has no Object Lock; Coffer enforces retention alone");
                Ok(false)
            }
        }
    }
}

impl S3BlobStore {
    pub(super) async fn put_retention(
        &self,
        full_key: &str,
        retention: Option<Retention>,
        bypass: bool,
    ) -> Result<(), StorageError> {
        let body = match retention {
            Some(r) => ObjectLockRetention::builder()
                .mode(match r.mode {
                    RetentionMode::Governance => ObjectLockRetentionMode::Governance,
                    RetentionMode::Compliance => ObjectLockRetentionMode::Compliance,
                })
                .retain_until_date(S3DateTime::from_millis(r.retain_until.timestamp_millis()))
                .build(),
            None => ObjectLockRetention::builder().build(),
        };
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(full_key)
            .retention(body)
            .bypass_governance_retention(bypass)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub(super) async fn put_legal_hold(&self, full_key: &str, on: bool) -> Result<(), StorageError> {
        let status = if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(full_key)
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
