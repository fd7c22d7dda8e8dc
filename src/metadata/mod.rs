//! The `MetadataStore` port and its SQLite and PostgreSQL adapters.
//!
//! Both adapters compile the same query code (`sql/*.rs`, included into each
//! adapter module with its own `Db` type) against the same schema, kept in
//! `migrations/sqlite` and `migrations/postgres` under the same numbers.
//! Every change that must be audited takes its `AuditEntry` and appends it
//! to the hash chain in the same transaction.

#[macro_use]
mod rows;
pub mod backup;
mod error;
pub mod instrumented;
mod listing;
mod postgres;
mod records;
mod sqlite;
mod time;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use error::MetaError;
pub use records::*;

use crate::domain::audit::{AuditAnchor, AuditEntry, AuditRecord, ChainKey};
use crate::domain::{BucketName, ObjectKey, Permission, Username};
use crate::policy::lifecycle::LifecycleRule;
use crate::policy::retention::Retention;

pub type MetaResult<T> = Result<T, MetaError>;

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn create_user(&self, user: &NewUser, audit: &AuditEntry) -> MetaResult<UserRecord>;
    async fn user_by_name(&self, username: &Username) -> MetaResult<Option<UserRecord>>;
    async fn user_by_id(&self, id: i64) -> MetaResult<Option<UserRecord>>;
    /// Users ordered by name, after `after`, at most `limit`.
    async fn list_users(&self, after: Option<&Username>, limit: usize) -> MetaResult<Vec<UserRecord>>;
    async fn update_user(&self, id: i64, patch: &UserPatch, audit: &AuditEntry) -> MetaResult<UserRecord>;
    /// Replaces the password hash `old` by `new` (the same password under
    /// other parameters); `false` when the hash changed meanwhile (a reset
    /// must never be undone by a rehash).
    async fn replace_password_hash(&self, id: i64, old: &str, new: &str) -> MetaResult<bool>;
    async fn delete_user(&self, id: i64, audit: &AuditEntry) -> MetaResult<()>;
    /// Enabled accounts with the admin role.
    async fn count_active_admins(&self) -> MetaResult<i64>;
}

#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Creates the bucket and grants `manage` to its owner, atomically.
    async fn create_bucket(&self, bucket: &NewBucket, audit: &AuditEntry) -> MetaResult<BucketRecord>;
    async fn bucket_by_name(&self, name: &BucketName) -> MetaResult<Option<BucketRecord>>;
    async fn bucket_by_id(&self, id: i64) -> MetaResult<Option<BucketRecord>>;
    /// Every bucket (for admins) with the caller's own grant where one exists.
    async fn list_buckets(&self, user_id: i64, all: bool) -> MetaResult<Vec<VisibleBucket>>;
    /// Deletes an empty bucket; `Conflict("objects")` while any object row remains.
    async fn delete_bucket(&self, bucket_id: i64, audit: &AuditEntry) -> MetaResult<()>;
    async fn set_default_retention(
        &self,
        bucket_id: i64,
        retention: Option<DefaultRetention>,
        audit: &AuditEntry,
    ) -> MetaResult<()>;
    async fn grant(&self, bucket_id: i64, user_id: i64) -> MetaResult<Option<Permission>>;
    async fn set_grant(
        &self,
        bucket_id: i64,
        user_id: i64,
        permission: Permission,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> MetaResult<()>;
    /// Removes a grant; `NotFound` when there was none.
    async fn remove_grant(&self, bucket_id: i64, user_id: i64, audit: &AuditEntry) -> MetaResult<()>;
    async fn list_grants(&self, bucket_id: i64) -> MetaResult<Vec<GrantRecord>>;
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Reserves a row (`pending`) before any byte is written. Fails with
    /// `Conflict("quota")` when the reservation would exceed the owner's quota.
    async fn insert_pending(&self, object: &NewObject) -> MetaResult<ObjectRecord>;
    /// Makes a pending row visible, moving any previous version to `deleting`
    /// and settling quota, with the audit record, in one transaction.
    async fn commit_object(&self, commit: &CommitObject, audit: &AuditEntry) -> MetaResult<Committed>;
    /// Rolls back a pending row and releases its reservation; `false` when
    /// the row is no longer pending (it was committed after all).
    async fn discard_pending(&self, id: i64) -> MetaResult<bool>;
    async fn live_object(&self, bucket_id: i64, key: &ObjectKey) -> MetaResult<Option<ObjectRecord>>;
    async fn object_by_id(&self, id: i64) -> MetaResult<Option<ObjectRecord>>;
    async fn list_objects(&self, bucket_id: i64, query: &ListQuery) -> MetaResult<ListResult>;
    /// Marks a live object `deleting` and credits its owner's quota, with audit.
    async fn mark_deleting(&self, id: i64, audit: &AuditEntry) -> MetaResult<ObjectRecord>;
    /// Removes a row once its bytes are gone.
    async fn remove_object_row(&self, id: i64) -> MetaResult<()>;
    /// Rows stuck in `pending` or `deleting` since before `before` (for the reconciler).
    async fn stale_objects(&self, before: DateTime<Utc>, limit: usize) -> MetaResult<Vec<ObjectRecord>>;
    /// A bucket's rows left `deleting` (their bytes' removal failed), of any age.
    async fn deleting_objects(&self, bucket_id: i64, limit: usize) -> MetaResult<Vec<ObjectRecord>>;
    /// Whether any row (any state) uses `blob_key`.
    async fn blob_key_in_use(&self, blob_key: &str) -> MetaResult<bool>;
}

/// Background jobs: persisted, de-duplicated, leased, retried.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Queues a job unless one with `dedupe_key` is queued already; true if queued now.
    async fn enqueue_job(
        &self,
        kind: &str,
        dedupe_key: &str,
        payload: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> MetaResult<bool>;
    /// Leases up to `limit` due jobs to `holder` until `lease_until`, counting an attempt.
    async fn claim_jobs(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> MetaResult<Vec<JobRecord>>;
    async fn finish_job(&self, id: i64) -> MetaResult<()>;
    /// Releases a failed job to run again after `run_after`.
    async fn retry_job(&self, id: i64, error: &str, run_after: DateTime<Utc>) -> MetaResult<()>;
    async fn pending_jobs(&self) -> MetaResult<i64>;
    /// Whether any object not being deleted has this content, named by its
    /// sha256 or (objects assembled from parts have none) its multipart ETag.
    async fn content_in_use(&self, digest: &str) -> MetaResult<bool>;
}

/// Retention, legal hold and lifecycle settings, and leases for singleton jobs.
#[async_trait]
pub trait GovernanceStore: Send + Sync {
    /// Replaces a live object's retention if it still is `expected` (compare
    /// and set, so two concurrent changes cannot both pass the policy on stale
    /// facts): `Conflict("changed")` otherwise.
    async fn set_object_retention(
        &self,
        object_id: i64,
        expected: Option<Retention>,
        retention: Option<Retention>,
        audit: &AuditEntry,
    ) -> MetaResult<()>;
    /// Sets a committed object's legal hold if it is still `expected`
    /// (`Conflict("changed")` otherwise, or when the object is gone).
    async fn set_legal_hold(&self, object_id: i64, expected: bool, on: bool, audit: &AuditEntry) -> MetaResult<()>;
    /// Replaces a bucket's lifecycle rules (empty = none).
    async fn set_lifecycle(&self, bucket_id: i64, rules: &[LifecycleRule], audit: &AuditEntry) -> MetaResult<()>;
    /// Buckets that have lifecycle rules, by id.
    async fn buckets_with_lifecycle(&self) -> MetaResult<Vec<BucketRecord>>;
    /// Takes or renews the lease `name` for `holder` until `until`, unless
    /// someone else holds it past `now`.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> MetaResult<bool>;
    async fn release_lease(&self, name: &str, holder: &str) -> MetaResult<()>;
}

/// Credentials and login state: refresh tokens, API keys, TOTP, MFA challenges, throttling.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> MetaResult<()>;
    /// Spends a refresh token. A token presented twice revokes its whole family.
    async fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> MetaResult<RefreshUse>;
    /// Revokes the family of a token (logout); the user it belonged to, if any.
    async fn revoke_refresh_family(&self, token_hash: &str, now: DateTime<Utc>) -> MetaResult<Option<i64>>;

    /// Stores a new key for a user whose credentials are still those of the
    /// session minting it (`generation`, not disabled: else
    /// `Conflict("credentials-changed")`) and who holds fewer than `max_live`
    /// unrevoked keys (else `Conflict("too-many-api-keys")`). Checked with
    /// the user's row locked, so a password reset or disable committing
    /// meanwhile either revokes the new key or refuses it.
    async fn insert_api_key(
        &self,
        key: &ApiKeyRecord,
        (generation, max_live): (i64, usize),
        audit: &AuditEntry,
    ) -> MetaResult<()>;
    async fn api_key_by_hash(&self, key_hash: &str) -> MetaResult<Option<ApiKeyRecord>>;
    async fn api_key_by_id(&self, id: &str) -> MetaResult<Option<ApiKeyRecord>>;
    async fn list_api_keys(&self, user_id: i64) -> MetaResult<Vec<ApiKeyRecord>>;
    /// Revokes one of the user's live keys; `NotFound` otherwise.
    async fn revoke_api_key(&self, user_id: i64, id: &str, audit: &AuditEntry) -> MetaResult<()>;
    /// Records use, at most once per `every` to spare the database a write per request.
    async fn touch_api_key(&self, id: &str, now: DateTime<Utc>, every: chrono::Duration) -> MetaResult<()>;

    /// Stores a new, unconfirmed TOTP secret; `Conflict` if MFA is already on.
    async fn put_pending_totp(&self, user_id: i64, secret_sealed: &str, now: DateTime<Utc>) -> MetaResult<()>;
    async fn totp(&self, user_id: i64) -> MetaResult<Option<TotpRecord>>;
    /// Turns MFA on: marks the secret confirmed at `step` and stores the
    /// recovery codes' hashes, if the pending secret is still `secret_sealed`
    /// (the one the code was checked against): `Conflict("enrolment-replaced")`
    /// when another enrolment replaced it meanwhile.
    async fn confirm_totp(
        &self,
        user_id: i64,
        (secret_sealed, step): (&str, i64),
        recovery_hashes: &[String],
        audit: &AuditEntry,
    ) -> MetaResult<()>;
    /// Accepts `step` if it is later than the last accepted one (each code works once).
    async fn advance_totp_step(&self, user_id: i64, step: i64) -> MetaResult<bool>;
    /// Turns MFA off and forgets the secret and recovery codes.
    async fn delete_totp(&self, user_id: i64, audit: &AuditEntry) -> MetaResult<()>;
    /// Spends an unused recovery code.
    async fn use_recovery_code(&self, user_id: i64, code_hash: &str, now: DateTime<Utc>) -> MetaResult<bool>;

    /// Opens a second-factor challenge for a user whose password was just
    /// checked, if their credentials still stand (`generation` as read with
    /// that password; else `Conflict("credentials-changed")`): a reset
    /// committing meanwhile deletes the challenge or refuses it.
    async fn create_mfa_challenge(
        &self,
        token_hash: &str,
        user: (i64, i64),
        expires_at: DateTime<Utc>,
    ) -> MetaResult<()>;
    /// Uses up one attempt of a live challenge with fewer than `max_attempts`
    /// spent, atomically, before its code is checked (so parallel guesses
    /// cannot exceed the limit); the challenge with the attempt counted, or
    /// `None` when it is unknown, expired or spent.
    async fn claim_mfa_attempt(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        max_attempts: i64,
    ) -> MetaResult<Option<MfaChallenge>>;
    async fn delete_mfa_challenge(&self, token_hash: &str) -> MetaResult<()>;

    /// Counts one guess of `subject` before it is checked, in the transaction
    /// that checks the lock and the count, so that parallel guesses cannot
    /// outrun the threshold: guesses in flight count. Each allowed guess is
    /// then settled with `settle_attempt`.
    async fn claim_attempt(
        &self,
        scope: ThrottleScope,
        subject: &str,
        now: DateTime<Utc>,
        rule: ThrottleRule,
    ) -> MetaResult<AttemptClaim>;
    /// Settles a claimed guess: a wrong one that finds the count at `rule`'s
    /// threshold locks the subject from `now`.
    async fn settle_attempt(
        &self,
        scope: ThrottleScope,
        subject: &str,
        outcome: Settle,
        when: (DateTime<Utc>, ThrottleRule),
    ) -> MetaResult<()>;
    /// Deletes refresh tokens and MFA steps expired at `now`, and throttle
    /// rows whose window began before `window_start_before` and that hold no
    /// lock; how many rows went.
    async fn purge_expired_identity(&self, now: DateTime<Utc>, window_start_before: DateTime<Utc>) -> MetaResult<u64>;
}

/// Resumable multipart uploads and their parts, with quota charged per part.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Records a new upload while its owner has fewer than `max_open`
    /// unfinished ones (else `Conflict("too-many-uploads")`), counted with the
    /// owner's row locked so that parallel creations cannot pass the limit.
    async fn create_upload(&self, upload: &UploadRecord, max_open: usize, audit: &AuditEntry) -> MetaResult<()>;
    async fn upload(&self, id: &str) -> MetaResult<Option<UploadRecord>>;
    /// Charges `bytes` for part `part_number` about to be written;
    /// `Conflict("quota")` if it does not fit, `Conflict("staged-limit")` if
    /// the upload already holds more than `staged_limit` bytes of parts. A part
    /// sent again (a retry after a lost answer) fits if it does in place of the
    /// one it replaces: that one is credited when the new one is recorded.
    async fn reserve_part(
        &self,
        upload_id: &str,
        (part_number, bytes): (i64, i64),
        staged_limit: i64,
    ) -> MetaResult<()>;
    /// Reserves quota for part `part_number` of an open upload, about to be
    /// signed for `bytes` and sent straight to the backend (direct transfer).
    /// A part's reservation only grows; the upload's end settles it.
    /// `Conflict("quota")` if it does not fit, `Conflict("staged-limit")` as
    /// for `reserve_part`.
    async fn reserve_direct_part(
        &self,
        upload_id: &str,
        part_number: i64,
        bytes: i64,
        staged_limit: i64,
    ) -> MetaResult<()>;
    /// Gives back a reservation whose part never arrived.
    async fn release_part(&self, upload_id: &str, bytes: i64) -> MetaResult<()>;
    /// Records a written part (replacing, and crediting, an earlier one of the same number).
    async fn record_part(&self, upload_id: &str, part: &UploadPartRecord) -> MetaResult<()>;
    async fn upload_parts(&self, upload_id: &str) -> MetaResult<Vec<UploadPartRecord>>;
    /// `open` → `completing` for a completion of the list whose ETag and size
    /// are `attempt` (kept as `attempt_etag`, `attempt_size`): the upload as
    /// it now is, or `None` if it was not open (a concurrent completion).
    async fn start_completion(
        &self,
        upload_id: &str,
        now: DateTime<Utc>,
        attempt: (&str, i64),
    ) -> MetaResult<Option<UploadRecord>>;
    /// `completing` → `open` after a failed completion, so the client can
    /// retry, with `assembled_etag` (that of the list whose object the
    /// backend holds assembled, when known); only the completion that started
    /// at `started`: false if the upload has moved on since.
    async fn reopen_upload(
        &self,
        upload_id: &str,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
        assembled_etag: Option<&str>,
    ) -> MetaResult<bool>;
    /// Turns a completing upload into a live object (replacing, and crediting, the
    /// previous version; `Conflict("object-locked")` if that one is retained), and
    /// forgets the upload, all with `audit` in one transaction. The upload is
    /// remembered as completed (`completed_upload`) until `forget_completed_uploads`.
    async fn finish_upload(&self, finish: &FinishUpload, audit: &AuditEntry) -> MetaResult<Committed>;
    /// An upload `finish_upload` committed and that is not yet forgotten.
    async fn completed_upload(&self, id: &str) -> MetaResult<Option<CompletedUpload>>;
    /// Forgets the uploads completed before `before`; how many.
    async fn forget_completed_uploads(&self, before: DateTime<Utc>) -> MetaResult<u64>;
    /// Forgets an upload that is in `state` and credits its charged bytes,
    /// with `audit`; `Conflict("upload-state")` when it has moved on (an
    /// abort racing a completion must not undo what the completion charged).
    /// Only an upload in `state` since `since` (when given: the completion
    /// that started then), so that a stale caller never aborts a newer one.
    async fn abort_upload(
        &self,
        upload_id: &str,
        state: UploadState,
        since: Option<DateTime<Utc>>,
        audit: &AuditEntry,
    ) -> MetaResult<()>;
    /// Open uploads created before `open_before`, and completions stuck since before `completing_before`.
    async fn stale_uploads(
        &self,
        open_before: DateTime<Utc>,
        completing_before: DateTime<Utc>,
        limit: usize,
    ) -> MetaResult<Vec<UploadRecord>>;
    /// Whether the backend multipart upload `backend_upload_id` belongs to a known upload.
    async fn backend_upload_known(&self, backend_upload_id: &str) -> MetaResult<bool>;
    /// Open uploads of a bucket under `prefix` (of `owner` only, if given), by
    /// key then id, after the `(key, id)` cursor (lifecycle rules, listings).
    async fn uploads_in_bucket(
        &self,
        bucket_id: i64,
        prefix: &str,
        owner: Option<i64>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> MetaResult<Vec<UploadRecord>>;
}

/// Share links.
#[async_trait]
pub trait ShareStore: Send + Sync {
    async fn create_share(&self, share: &ShareRecord, audit: &AuditEntry) -> MetaResult<()>;
    async fn share_by_token(&self, token_hash: &str) -> MetaResult<Option<ShareRecord>>;
    async fn share(&self, id: &str) -> MetaResult<Option<ShareRecord>>;
    /// Shares of `filter`, newest first (ties by id, descending), starting
    /// after the `(created_at, id)` of the previous page's last share.
    async fn shares_where(
        &self,
        filter: ShareFilter,
        before: Option<(DateTime<Utc>, &str)>,
        limit: usize,
    ) -> MetaResult<Vec<ShareRecord>>;
    async fn revoke_share(&self, id: &str, audit: &AuditEntry) -> MetaResult<()>;
    /// Takes what a read draws on if the link is still live and the read is
    /// within its limit, atomically: concurrent requests on a one-download
    /// link get exactly one `true`.
    async fn claim_share_read(&self, id: &str, now: DateTime<Utc>, claim: ShareClaim) -> MetaResult<bool>;
    /// Gives back a claim taken for a request that sent no body after all.
    async fn release_share_read(&self, id: &str, claim: ShareClaim) -> MetaResult<()>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event that has no other change to go with it (reads, denials).
    async fn append_audit(&self, entry: &AuditEntry) -> MetaResult<AuditRecord>;
    /// Appends many events in one transaction (imports, seeding).
    async fn append_audit_batch(&self, entries: &[AuditEntry]) -> MetaResult<()>;
    /// Records with `id > after`, oldest first (for verification).
    async fn audit_after(&self, after: i64, limit: usize) -> MetaResult<Vec<AuditRecord>>;
    /// Filtered records: newest first below `query.before_id`, or oldest
    /// first above `query.after_id` when `ascending`.
    async fn audit_query(&self, query: &AuditQuery) -> MetaResult<Vec<AuditRecord>>;
    /// The chain head: the newest id and its hash.
    async fn audit_head(&self) -> MetaResult<(i64, String)>;
    /// Where verification starts: the first kept id, the hash it links to,
    /// the first keyed id, and the seal over them.
    async fn audit_anchor(&self) -> MetaResult<AuditAnchor>;
    /// Seals an unsealed anchor with the store's chain key, keying every
    /// event after the head; within `scope` only. A sealed anchor is left
    /// alone, even one whose seal fails: that is for verification to report.
    async fn seal_audit_anchor(&self, scope: SealScope) -> MetaResult<SealOutcome>;
    /// The id of the first event a purge of everything older than `before`
    /// keeps: the first at or after `before`, else the one the next append gets.
    async fn audit_first_kept(&self, before: DateTime<Utc>) -> MetaResult<i64>;
    /// Deletes the events below `first_kept` (read with `audit_first_kept`
    /// before the chain was verified, so only walked events go, even if an
    /// event's time was moved back since), moves the anchor (sealing it again
    /// if it was sealed, and refusing with `MetaError::Integrity` if that
    /// seal does not hold, or if the chain now ends before the cut), and
    /// records `audit` — all in one transaction. Returns how many went.
    async fn purge_audit(&self, first_kept: i64, audit: &AuditEntry) -> MetaResult<u64>;
}

/// Which chains `seal_audit_anchor` may seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealScope {
    /// Only a chain untouched since migration (no events, the anchor and
    /// head as created): what any start may do, since no replica can have
    /// written keyless events into it, nor anyone moved its anchor.
    EmptyChain,
    /// Any chain: `coffer audit seal`, once every replica writes keyed events.
    AnyChain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealOutcome {
    /// Events from this id on are keyed.
    Sealed {
        keyed_from: i64,
    },
    AlreadySealed,
    /// The chain is not untouched and the scope was `EmptyChain`.
    NotEmpty,
}

/// Filters of the audit query and export.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub bucket: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Newest-first paging: only ids below this.
    pub before_id: Option<i64>,
    /// Oldest-first paging (export): only ids above this.
    pub after_id: Option<i64>,
    pub ascending: bool,
    pub limit: usize,
}

/// Portable dumps of every table (see `backup`), and loading one into an empty database.
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Writes one consistent snapshot as JSON lines.
    async fn dump(
        &self,
        out: &mut (dyn std::io::Write + Send),
        created_at: DateTime<Utc>,
    ) -> Result<backup::BackupSummary, backup::BackupError>;
    /// Loads a dump in one transaction; refuses a database that holds data.
    async fn restore(
        &self,
        input: &mut (dyn std::io::BufRead + Send),
    ) -> Result<backup::BackupSummary, backup::BackupError>;
}

#[async_trait]
pub trait MetadataStore:
    UserStore
    + IdentityStore
    + BucketStore
    + ObjectStore
    + UploadStore
    + ShareStore
    + GovernanceStore
    + JobStore
    + AuditStore
    + BackupStore
    + Send
    + Sync
{
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;
    async fn migrate(&self) -> MetaResult<()>;
    /// The key the audit chain is hashed with.
    fn chain_key(&self) -> &ChainKey;
    async fn ping(&self) -> MetaResult<()>;
    /// The database server's own clock (replicas align theirs to it).
    async fn database_now(&self) -> MetaResult<DateTime<Utc>>;
    async fn close(&self);
}

/// Pool settings shared by both engines.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

/// Connects to `url` (`sqlite:` or `postgres://`). Does not migrate.
/// Audit events are hashed with `chain`.
pub async fn connect(url: &str, settings: &PoolSettings, chain: ChainKey) -> MetaResult<Arc<dyn MetadataStore>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url, settings, chain).await?))
    } else {
        Ok(Arc::new(postgres::PostgresStore::connect(url, settings, chain).await?))
    }
}

/// Emits a committed audit record as a structured event for log shippers.
pub(crate) fn emit_audit(record: &AuditRecord) {
    tracing::info!(
        target: "audit",
        audit_id = record.id,
        at_micros = record.at.timestamp_micros(),
        actor = %record.actor,
        action = %record.action,
        bucket = record.bucket.as_deref(),
        key = record.key.as_deref(),
        outcome = record.outcome.as_str(),
        ip = record.ip.as_deref(),
        user_agent = record.user_agent.as_deref(),
        request_id = record.request_id.as_deref(),
        details = %record.details,
        prev_hash = %record.prev_hash,
        hash = %record.hash,
        "audit event"
    );
}

#[cfg(test)]
mod tests {
    /// Both engines run the same migrations under the same numbers, 1 to n
    /// without a gap: a migration deleted (which `set_ignore_missing`, kept
    /// for rollbacks, would hide at run time) or added to one engine only
    /// fails here.
    #[test]
    fn both_engines_have_the_same_numbered_migrations() {
        let listed = |migrator: sqlx::migrate::Migrator| {
            migrator.iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>()
        };
        let sqlite = listed(sqlx::migrate!("./migrations/sqlite"));
        let postgres = listed(sqlx::migrate!("./migrations/postgres"));
        assert_eq!(sqlite, postgres);
        let versions: Vec<i64> = sqlite.iter().map(|(version, _)| *version).collect();
        assert_eq!(versions, (1..=i64::try_from(versions.len()).expect("count")).collect::<Vec<_>>());
    }
}
