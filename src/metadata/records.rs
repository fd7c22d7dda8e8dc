//! Records the metadata store reads and writes, in domain types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{BucketName, ObjectKey, Permission, Role, Scopes, Username};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: i64,
    pub username: Username,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub quota_bytes: Option<i64>,
    pub used_bytes: i64,
    /// Bumped whenever every token of the user must die (disable, password reset).
    pub token_generation: i64,
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub password_hash: String,
    pub role: Role,
    pub quota_bytes: Option<i64>,
    pub at: DateTime<Utc>,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub quota_bytes: Option<Option<i64>>,
    pub password_hash: Option<String>,
    /// Increment the token generation (revokes access tokens and presigned URLs).
    pub bump_generation: bool,
    /// Revoke every refresh token and end every pending MFA step of the user, in the same transaction.
    pub revoke_refresh_tokens: bool,
    /// Revoke every API key of the user, in the same transaction.
    pub revoke_api_keys: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RetentionMode {
    Governance,
    Compliance,
}

impl RetentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "GOVERNANCE" => Some(Self::Governance),
            "COMPLIANCE" => Some(Self::Compliance),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    pub days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub id: i64,
    pub name: BucketName,
    pub owner_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub default_retention: Option<DefaultRetention>,
    /// Lifecycle rules, validated when set; empty when there are none.
    pub lifecycle: Vec<crate::policy::lifecycle::LifecycleRule>,
}

impl BucketRecord {
    /// Where this bucket's blobs live in the backend; by id so a re-created
    /// bucket of the same name never sees an old one's leftovers.
    pub fn blob_prefix(&self) -> String {
        format!("b/{}/", self.id)
    }
}

#[derive(Debug, Clone)]
pub struct NewBucket {
    pub name: BucketName,
    pub owner_id: i64,
    pub default_retention: Option<DefaultRetention>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub bucket_id: i64,
    pub user_id: i64,
    pub username: Username,
    pub permission: Permission,
    pub created_at: DateTime<Utc>,
}

/// A bucket as one caller sees it: with their effective grant, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleBucket {
    pub bucket: BucketRecord,
    pub grant: Option<Permission>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectState {
    /// Row reserved, bytes being written; invisible to readers.
    Pending,
    /// Visible.
    Committed,
    /// Replaced or deleted; bytes are being removed.
    Deleting,
}

impl ObjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Committed => "committed",
            Self::Deleting => "deleting",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "committed" => Some(Self::Committed),
            "deleting" => Some(Self::Deleting),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub id: i64,
    pub bucket_id: i64,
    pub key: ObjectKey,
    pub blob_key: String,
    pub state: ObjectState,
    /// For pending rows: the bytes reserved against the owner's quota.
    pub size: i64,
    pub etag: Option<String>,
    pub sha256: Option<String>,
    pub content_type: String,
    pub owner_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub retention_mode: Option<RetentionMode>,
    pub retain_until: Option<DateTime<Utc>>,
    pub legal_hold: bool,
}

#[derive(Debug, Clone)]
pub struct NewObject {
    pub bucket_id: i64,
    pub key: ObjectKey,
    pub blob_key: String,
    pub content_type: String,
    pub owner_id: Option<i64>,
    /// Bytes to reserve against the owner's quota until the commit settles the real size.
    pub reserved_bytes: i64,
    pub at: DateTime<Utc>,
}

/// What the write learned about the bytes, applied when the row commits.
#[derive(Debug, Clone)]
pub struct CommitObject {
    pub id: i64,
    /// The request's preconditions, checked against the live version at commit:
    /// `Conflict("precondition")` when they fail.
    pub conditions: crate::domain::conditional::WriteConditions,
    pub size: i64,
    pub etag: String,
    pub sha256: Option<String>,
    pub content_type: String,
    /// The commit's time; the bucket's default retention (read in the
    /// commit's transaction, so a rule set mid-upload applies) runs from it.
    pub at: DateTime<Utc>,
}

/// The result of committing: the new row, and the row it replaced (now `deleting`).
#[derive(Debug, Clone)]
pub struct Committed {
    pub object: ObjectRecord,
    pub replaced: Option<ObjectRecord>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Exclusive lower bound (the last key or common prefix of the previous page).
    pub after: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListResult {
    pub objects: Vec<ObjectRecord>,
    pub prefixes: Vec<String>,
    /// The last key or prefix returned when there may be more.
    pub next_after: Option<String>,
    /// Rows the store read to answer (what a page cost, not what it holds).
    #[serde(skip)]
    pub scanned: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    pub family_id: String,
    pub user_id: i64,
    pub generation: i64,
    pub mfa: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid and now spent: issue the next token of the family.
    Rotated(RefreshTokenRecord),
    /// Already spent or revoked: the whole family has just been revoked.
    Reused { family_id: String, user_id: i64 },
    /// Unknown or expired.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The session that created the key had passed a second factor.
    #[serde(default)]
    pub minted_with_mfa: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    pub user_id: i64,
    /// The secret, sealed with the TOTP key (never stored in clear).
    pub secret_sealed: String,
    pub confirmed: bool,
    /// The last time step accepted; codes of this step or earlier are refused.
    pub last_step: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub user_id: i64,
    /// The user's token generation when the step was opened.
    pub generation: i64,
    pub failures: i64,
    pub expires_at: DateTime<Utc>,
}

/// Who a login-throttle counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    Account,
    Ip,
    /// Wrong second-factor codes of one account (subject: the user id).
    SecondFactor,
    /// Wrong passwords of one share link (subject: the share id).
    Share,
}

impl ThrottleScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Ip => "ip",
            Self::SecondFactor => "second_factor",
            Self::Share => "share",
        }
    }
}

/// What claiming one guess at a throttled secret gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClaim {
    /// The guess is counted and may be checked.
    Allowed,
    /// Not to be checked before then: the subject is locked, or as many
    /// guesses as the window allows are being checked right now (a second).
    Locked { until: DateTime<Utc> },
}

/// How a claimed guess turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Right: forget the subject's failures (an account, a link: its owner got it right).
    Reset,
    /// Right, or never checked: give back only this guess (an address, shared by many people).
    Refund,
    /// Wrong: it stays counted, and the one that finds the window's count reached locks the subject.
    Failed,
}

/// `threshold` failures within `window` lock the subject for `lock_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    pub threshold: i64,
    pub window: chrono::Duration,
    pub lock_for: chrono::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    Open,
    Completing,
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Completing => "completing",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "open" => Some(Self::Open),
            "completing" => Some(Self::Completing),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    pub id: String,
    pub bucket_id: i64,
    pub key: ObjectKey,
    /// Where the finished object will live (also the backend multipart key).
    pub blob_key: String,
    pub backend_upload_id: String,
    pub owner_id: Option<i64>,
    pub content_type: Option<String>,
    pub declared_size: Option<i64>,
    pub part_size: i64,
    pub created_at: DateTime<Utc>,
    pub state: UploadState,
    pub state_at: DateTime<Utc>,
    /// Bytes charged to the owner for parts (stored or in flight).
    pub charged_bytes: i64,
    /// The multipart ETag and the size of the part list the latest completion sent.
    pub attempt_etag: Option<String>,
    pub attempt_size: Option<i64>,
    /// The multipart ETag of the part list whose object the backend holds
    /// assembled, once known (a completion got that far but could not commit).
    pub assembled_etag: Option<String>,
}

/// An upload committed in the last day: what a completion of it sent again
/// (its first answer lost) is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedUpload {
    pub id: String,
    pub bucket_id: i64,
    pub key: ObjectKey,
    pub owner_id: Option<i64>,
    /// The backend key of the object the upload became.
    pub blob_key: String,
    /// The multipart ETag of the part list it was completed with.
    pub etag: String,
    pub completed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPartRecord {
    pub part_number: i64,
    pub size: i64,
    /// Coffer's part ETag, what clients see.
    pub etag: String,
    /// The backend's part ETag, what completion sends to the backend.
    pub backend_etag: String,
    pub created_at: DateTime<Utc>,
}

/// Completing an upload: the object it becomes.
#[derive(Debug, Clone)]
pub struct FinishUpload {
    pub upload_id: String,
    pub size: i64,
    pub etag: String,
    pub content_type: String,
    /// As `CommitObject::at`.
    pub at: DateTime<Utc>,
    /// When the completion began (`start_completion`): only it may finish.
    pub started: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    pub id: String,
    pub token_hash: String,
    pub bucket_id: i64,
    pub key: ObjectKey,
    pub created_by: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub password_hash: Option<String>,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The API key that created the link, if one did: revoking it voids the link.
    pub api_key_id: Option<String>,
    /// Bytes sent to reads that continued a download (see `ShareClaim`).
    pub range_bytes: i64,
}

/// What a read of a shared object draws on (`ShareStore::claim_share_read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareClaim {
    /// A read from the first byte (the whole object, or a range from 0): one
    /// of the link's downloads.
    Download,
    /// A range starting after the first byte, which continues a download
    /// (resuming it, seeking in a video, one segment of several): `bytes` of
    /// the `budget` (the link's downloads times the object's size) that all
    /// such reads of a limited link share.
    Continuation { bytes: i64, budget: i64 },
}

/// Which shares a listing holds: a creator's, a bucket's, or a creator's in a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShareFilter {
    pub created_by: Option<i64>,
    pub bucket_id: Option<i64>,
}

/// A background job as claimed by a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Including the current one.
    pub attempts: i64,
}
