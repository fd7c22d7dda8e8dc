//! Mirroring Coffer's retention and legal holds to the backend's own S3
//! Object Lock, when its bucket has Object Lock enabled (defense in depth:
//! Coffer enforces either way).

use aws_sdk_s3::primitives::DateTime as S3DateTime;
use aws_sdk_s3::types::{
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockRetention, ObjectLockRetentionMode,
};

use super::StorageError;
use super::s3::S3BlobStore;
use super::s3_errors::classify;
use crate::metadata::RetentionMode;
use crate::policy::retention::Retention;

impl S3BlobStore {
    /// Whether the backend bucket reports Object Lock enabled; remembered once
    /// the backend has answered (a backend that could not be reached is asked
    /// again next time, so a brief outage never turns mirroring off for good).
    pub(super) async fn object_lock_enabled(&self) -> bool {
        self.object_lock.get_or_try_init(|| self.ask_object_lock()).await.is_ok_and(|enabled| *enabled)
    }

    /// Asks the backend whether this bucket has Object Lock enabled. A refusal
    /// (no lock configuration, or a backend without Object Lock) is a definite
    /// no; `Err` when the backend could not answer.
    pub(super) async fn ask_object_lock(&self) -> Result<bool, StorageError> {
        let error = match self.client.get_object_lock_configuration().bucket(&self.bucket).send().await {
            Ok(out) => {
                let configuration = out.object_lock_configuration();
                return Ok(configuration.and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled));
            }
            Err(error) => error,
        };
        let not_implemented = error.raw_response().is_some_and(|raw| raw.status().as_u16() == 501);
        match classify(error) {
            StorageError::Unavailable(why) if !not_implemented => {
                tracing::warn!(bucket = %self.bucket, error = %why, "could not ask the backend about Object Lock");
                Err(StorageError::Unavailable(why))
            }
            refusal => {
                tracing::info!(bucket = %self.bucket, error = %refusal, "backend bucket has no Object Lock; Coffer enforces retention alone");
                Ok(false)
            }
        }
    }

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
