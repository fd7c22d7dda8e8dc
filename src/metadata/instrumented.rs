//! A `MetadataStore` decorator that times every database call by store
//! operation and counts the faults (database unreachable or failing), for `/metrics`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::backup::{BackupError, BackupSummary};
use super::*;
use crate::domain::audit::{AuditAnchor, AuditEntry, AuditRecord, ChainKey};
use crate::domain::{BucketName, ObjectKey, Permission, Username};
use crate::metrics::{CallTimer, Metrics};
use crate::policy::lifecycle::LifecycleRule;
use crate::policy::retention::Retention;

pub struct Instrumented {
    inner: Arc<dyn MetadataStore>,
    timer: CallTimer,
}

impl Instrumented {
    pub fn wrap(inner: Arc<dyn MetadataStore>, metrics: &Metrics) -> Arc<dyn MetadataStore> {
        Arc::new(Self { inner, timer: CallTimer::new(&metrics.database_seconds, &metrics.database_errors) })
    }
}

impl MetaError {
    /// Whether the database failed, as opposed to answering "not found" or "conflict".
    pub fn is_fault(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Other(_))
    }
}

/// Implements a store trait by timing each method around the inner store's.
macro_rules! instrument {
    ($store:ident { $( fn $method:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )* }) => {
        #[async_trait]
        impl $store for Instrumented {
            $(
                async fn $method(&self $(, $arg: $ty)*) -> MetaResult<$ret> {
                    self.timer
                        .time_counting(stringify!($method), self.inner.$method($($arg),*), MetaError::is_fault)
                        .await
                }
            )*
        }
    };
}

instrument! { UserStore {
    fn create_user(&self, user: &NewUser, audit: &AuditEntry) -> UserRecord;
    fn user_by_name(&self, username: &Username) -> Option<UserRecord>;
    fn user_by_id(&self, id: i64) -> Option<UserRecord>;
    fn list_users(&self, after: Option<&Username>, limit: usize) -> Vec<UserRecord>;
    fn update_user(&self, id: i64, patch: &UserPatch, audit: &AuditEntry) -> UserRecord;
    fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> bool;
    fn delete_user(&self, id: i64, audit: &AuditEntry) -> ();
    fn count_active_admins(&self) -> i64;
} }

instrument! { BucketStore {
    fn create_bucket(&self, bucket: &NewBucket, audit: &AuditEntry) -> BucketRecord;
    fn bucket_by_name(&self, name: &BucketName) -> Option<BucketRecord>;
    fn bucket_by_id(&self, id: i64) -> Option<BucketRecord>;
    fn list_buckets(&self, user_id: i64, all: bool) -> Vec<VisibleBucket>;
    fn delete_bucket(&self, bucket_id: i64, audit: &AuditEntry) -> ();
    fn set_default_retention(&self, bucket_id: i64, retention: Option<DefaultRetention>, audit: &AuditEntry) -> ();
    fn grant(&self, bucket_id: i64, user_id: i64) -> Option<Permission>;
    fn set_grant(&self, bucket_id: i64, user_id: i64, permission: Permission, at: DateTime<Utc>, audit: &AuditEntry) -> ();
    fn remove_grant(&self, bucket_id: i64, user_id: i64, audit: &AuditEntry) -> ();
    fn list_grants(&self, bucket_id: i64) -> Vec<GrantRecord>;
} }

instrument! { ObjectStore {
    fn insert_pending(&self, object: &NewObject) -> ObjectRecord;
    fn commit_object(&self, commit: &CommitObject, audit: &AuditEntry) -> Committed;
    fn discard_pending(&self, id: i64) -> bool;
    fn live_object(&self, bucket_id: i64, key: &ObjectKey) -> Option<ObjectRecord>;
    fn object_by_id(&self, id: i64) -> Option<ObjectRecord>;
    fn list_objects(&self, bucket_id: i64, query: &ListQuery) -> ListResult;
    fn mark_deleting(&self, id: i64, audit: &AuditEntry) -> ObjectRecord;
    fn remove_object_row(&self, id: i64) -> ();
    fn stale_objects(&self, before: DateTime<Utc>, limit: usize) -> Vec<ObjectRecord>;
    fn deleting_objects(&self, bucket_id: i64, limit: usize) -> Vec<ObjectRecord>;
    fn blob_key_in_use(&self, blob_key: &str) -> bool;
} }

instrument! { JobStore {
    fn enqueue_job(&self, kind: &str, dedupe_key: &str, payload: &serde_json::Value, at: DateTime<Utc>) -> bool;
    fn claim_jobs(&self, holder: &str, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: usize) -> Vec<JobRecord>;
    fn finish_job(&self, id: i64) -> ();
    fn retry_job(&self, id: i64, error: &str, run_after: DateTime<Utc>) -> ();
    fn pending_jobs(&self) -> i64;
    fn content_in_use(&self, digest: &str) -> bool;
} }

instrument! { GovernanceStore {
    fn set_object_retention(&self, object_id: i64, expected: Option<Retention>, retention: Option<Retention>, audit: &AuditEntry) -> ();
    fn set_legal_hold(&self, object_id: i64, expected: bool, on: bool, audit: &AuditEntry) -> ();
    fn set_lifecycle(&self, bucket_id: i64, rules: &[LifecycleRule], audit: &AuditEntry) -> ();
    fn buckets_with_lifecycle(&self) -> Vec<BucketRecord>;
    fn acquire_lease(&self, name: &str, holder: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> bool;
    fn release_lease(&self, name: &str, holder: &str) -> ();
} }

instrument! { IdentityStore {
    fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> ();
    fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> RefreshUse;
    fn revoke_refresh_family(&self, token_hash: &str, now: DateTime<Utc>) -> Option<i64>;
    fn insert_api_key(&self, key: &ApiKeyRecord, minting: (i64, usize), audit: &AuditEntry) -> ();
    fn api_key_by_hash(&self, key_hash: &str) -> Option<ApiKeyRecord>;
    fn api_key_by_id(&self, id: &str) -> Option<ApiKeyRecord>;
    fn list_api_keys(&self, user_id: i64) -> Vec<ApiKeyRecord>;
    fn revoke_api_key(&self, user_id: i64, id: &str, audit: &AuditEntry) -> ();
    fn touch_api_key(&self, id: &str, now: DateTime<Utc>, every: chrono::Duration) -> ();
    fn put_pending_totp(&self, user_id: i64, secret_sealed: &str, now: DateTime<Utc>) -> ();
    fn totp(&self, user_id: i64) -> Option<TotpRecord>;
    fn confirm_totp(&self, user_id: i64, checked: (&str, i64), recovery_hashes: &[String], audit: &AuditEntry) -> ();
    fn advance_totp_step(&self, user_id: i64, step: i64) -> bool;
    fn delete_totp(&self, user_id: i64, audit: &AuditEntry) -> ();
    fn use_recovery_code(&self, user_id: i64, code_hash: &str, now: DateTime<Utc>) -> bool;
    fn create_mfa_challenge(&self, token_hash: &str, user: (i64, i64), expires_at: DateTime<Utc>) -> ();
    fn claim_mfa_attempt(&self, token_hash: &str, now: DateTime<Utc>, max_attempts: i64) -> Option<MfaChallenge>;
    fn delete_mfa_challenge(&self, token_hash: &str) -> ();
    fn claim_attempt(&self, scope: ThrottleScope, subject: &str, now: DateTime<Utc>, rule: ThrottleRule) -> AttemptClaim;
    fn settle_attempt(&self, scope: ThrottleScope, subject: &str, outcome: Settle, when: (DateTime<Utc>, ThrottleRule)) -> ();
    fn purge_expired_identity(&self, now: DateTime<Utc>, window_start_before: DateTime<Utc>) -> u64;
} }

instrument! { UploadStore {
    fn create_upload(&self, upload: &UploadRecord, max_open: usize, audit: &AuditEntry) -> ();
    fn upload(&self, id: &str) -> Option<UploadRecord>;
    fn reserve_part(&self, upload_id: &str, part: (i64, i64), staged_limit: i64) -> ();
    fn reserve_direct_part(&self, upload_id: &str, part_number: i64, bytes: i64, staged_limit: i64) -> ();
    fn release_part(&self, upload_id: &str, bytes: i64) -> ();
    fn record_part(&self, upload_id: &str, part: &UploadPartRecord) -> ();
    fn upload_parts(&self, upload_id: &str) -> Vec<UploadPartRecord>;
    fn start_completion(&self, upload_id: &str, now: DateTime<Utc>, attempt: (&str, i64)) -> Option<UploadRecord>;
    fn reopen_upload(&self, upload_id: &str, started: DateTime<Utc>, now: DateTime<Utc>, assembled_etag: Option<&str>) -> bool;
    fn finish_upload(&self, finish: &FinishUpload, audit: &AuditEntry) -> Committed;
    fn completed_upload(&self, id: &str) -> Option<CompletedUpload>;
    fn forget_completed_uploads(&self, before: DateTime<Utc>) -> u64;
    fn abort_upload(&self, upload_id: &str, state: UploadState, since: Option<DateTime<Utc>>, audit: &AuditEntry) -> ();
    fn stale_uploads(&self, open_before: DateTime<Utc>, completing_before: DateTime<Utc>, limit: usize) -> Vec<UploadRecord>;
    fn backend_upload_known(&self, backend_upload_id: &str) -> bool;
    fn uploads_in_bucket(&self, bucket_id: i64, prefix: &str, owner: Option<i64>, after: Option<(&str, &str)>, limit: usize) -> Vec<UploadRecord>;
} }

instrument! { ShareStore {
    fn create_share(&self, share: &ShareRecord, audit: &AuditEntry) -> ();
    fn share_by_token(&self, token_hash: &str) -> Option<ShareRecord>;
    fn share(&self, id: &str) -> Option<ShareRecord>;
    fn shares_where(&self, filter: ShareFilter, before: Option<(DateTime<Utc>, &str)>, limit: usize) -> Vec<ShareRecord>;
    fn revoke_share(&self, id: &str, audit: &AuditEntry) -> ();
    fn claim_share_read(&self, id: &str, now: DateTime<Utc>, claim: ShareClaim) -> bool;
    fn release_share_read(&self, id: &str, claim: ShareClaim) -> ();
} }

instrument! { AuditStore {
    fn append_audit(&self, entry: &AuditEntry) -> AuditRecord;
    fn append_audit_batch(&self, entries: &[AuditEntry]) -> ();
    fn audit_after(&self, after: i64, limit: usize) -> Vec<AuditRecord>;
    fn audit_query(&self, query: &AuditQuery) -> Vec<AuditRecord>;
    fn audit_head(&self) -> (i64, String);
    fn audit_anchor(&self) -> AuditAnchor;
    fn seal_audit_anchor(&self, scope: SealScope) -> SealOutcome;
    fn audit_first_kept(&self, before: DateTime<Utc>) -> i64;
    fn purge_audit(&self, first_kept: i64, audit: &AuditEntry) -> u64;
} }

#[async_trait]
impl BackupStore for Instrumented {
    async fn dump(
        &self,
        out: &mut (dyn std::io::Write + Send),
        created_at: DateTime<Utc>,
    ) -> Result<BackupSummary, BackupError> {
        self.inner.dump(out, created_at).await
    }

    async fn restore(&self, input: &mut (dyn std::io::BufRead + Send)) -> Result<BackupSummary, BackupError> {
        self.inner.restore(input).await
    }
}

#[async_trait]
impl MetadataStore for Instrumented {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    async fn migrate(&self) -> MetaResult<()> {
        self.inner.migrate().await
    }

    fn chain_key(&self) -> &ChainKey {
        self.inner.chain_key()
    }

    async fn ping(&self) -> MetaResult<()> {
        self.timer.time_counting("ping", self.inner.ping(), MetaError::is_fault).await
    }

    async fn database_now(&self) -> MetaResult<DateTime<Utc>> {
        self.timer.time_counting("database_now", self.inner.database_now(), MetaError::is_fault).await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[tokio::test]
    async fn times_calls_and_counts_only_faults() {
        let settings = PoolSettings { max_connections: 1, acquire_timeout: std::time::Duration::from_secs(1) };
        let sqlite = connect("sqlite::memory:", &settings, ChainKey::new(secrecy::SecretBox::new(Box::new([1; 32]))))
            .await
            .expect("connect");
        sqlite.migrate().await.expect("migrate");
        let metrics = Metrics::new();
        let store = Instrumented::wrap(sqlite, &metrics);

        assert!(store.user_by_id(42).await.expect("lookup").is_none());
        assert!(matches!(
            store.remove_grant(1, 42, &crate::service::audit::purge_event(Utc::now(), Utc::now())).await,
            Err(MetaError::NotFound(_))
        ));
        let text = metrics.render();
        let timed = r#"coffer_database_operation_duration_seconds_count{operation="user_by_id"}"#;
        assert_eq!(count(&text, timed), Some(1.0), "{text}");
        assert!(!text.contains("coffer_database_errors_total{"), "an answer is not a fault:\n{text}");

        store.close().await;
        assert!(store.user_by_id(42).await.is_err());
        let text = metrics.render();
        assert_eq!(count(&text, r#"coffer_database_errors_total{operation="user_by_id"}"#), Some(1.0), "{text}");
    }
}
