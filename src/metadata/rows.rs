//! Row shapes shared by both engines and their conversion into records.

use sqlx::FromRow;

use super::time::from_micros;
use super::{
    ApiKeyRecord, BucketRecord, CompletedUpload, DefaultRetention, GrantRecord, MetaError, MetaResult, ObjectRecord,
    ObjectState, RefreshTokenRecord, RetentionMode, ShareRecord, UploadPartRecord, UploadRecord, UploadState,
    UserRecord,
};
use crate::domain::audit::{AuditRecord, Outcome};
use crate::domain::{BucketName, ObjectKey, Scopes, Username};

/// Column lists, as macros so `concat!` can build whole statements at compile
/// time (`mod rows` is `#[macro_use]`, declared before the adapters).
macro_rules! user_columns {
    () => {
        "id, username, password_hash, role, disabled, quota_bytes, used_bytes, token_generation, mfa_enabled, created_at, \
         updated_at"
    };
}

macro_rules! api_key_columns {
    () => {
        "id, user_id, name, prefix, key_hash, scopes, created_at, expires_at, last_used_at, revoked_at, minted_with_mfa"
    };
}

macro_rules! refresh_columns {
    () => {
        "token_hash, family_id, user_id, generation, mfa, created_at, expires_at"
    };
}

macro_rules! upload_columns {
    () => {
        "id, bucket_id, object_key, blob_key, backend_upload_id, owner_id, content_type, declared_size, part_size, \
         created_at, state, state_at, charged_bytes, attempt_etag, attempt_size, assembled_etag"
    };
}

macro_rules! share_columns {
    () => {
        "id, token_hash, bucket_id, object_key, created_by, created_at, expires_at, password_hash, max_downloads, \
         downloads, revoked_at, api_key_id, range_bytes"
    };
}

macro_rules! bucket_columns {
    () => {
        "id, name, owner_id, created_at, default_retention_mode, default_retention_days, lifecycle_rules"
    };
}

macro_rules! object_columns {
    () => {
        "id, bucket_id, object_key, blob_key, state, size, etag, sha256, content_type, owner_id, \
         created_at, updated_at, retention_mode, retain_until, legal_hold"
    };
}

macro_rules! audit_columns {
    () => {
        "id, at, actor, action, bucket, object_key, outcome, ip, user_agent, request_id, details, prev_hash, hash"
    };
}

#[derive(FromRow)]
pub(super) struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    role: String,
    disabled: bool,
    quota_bytes: Option<i64>,
    used_bytes: i64,
    token_generation: i64,
    mfa_enabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = MetaError;
    fn try_from(row: UserRow) -> MetaResult<Self> {
        Ok(Self {
            id: row.id,
            username: Username::parse(&row.username).map_err(MetaError::corrupt)?,
            password_hash: row.password_hash,
            role: row.role.parse().map_err(MetaError::corrupt)?,
            disabled: row.disabled,
            quota_bytes: row.quota_bytes,
            used_bytes: row.used_bytes,
            token_generation: row.token_generation,
            mfa_enabled: row.mfa_enabled,
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
        })
    }
}

#[derive(FromRow)]
pub(super) struct BucketRow {
    id: i64,
    name: String,
    owner_id: Option<i64>,
    created_at: i64,
    default_retention_mode: Option<String>,
    default_retention_days: Option<i64>,
    lifecycle_rules: Option<String>,
}

impl TryFrom<BucketRow> for BucketRecord {
    type Error = MetaError;
    fn try_from(row: BucketRow) -> MetaResult<Self> {
        let default_retention = match (row.default_retention_mode, row.default_retention_days) {
            (Some(mode), Some(days)) => Some(DefaultRetention {
                mode: RetentionMode::parse(&mode).ok_or_else(|| MetaError::corrupt(mode))?,
                days: u32::try_from(days).map_err(MetaError::corrupt)?,
            }),
            _ => None,
        };
        Ok(Self {
            id: row.id,
            name: BucketName::parse(&row.name).map_err(MetaError::corrupt)?,
            owner_id: row.owner_id,
            created_at: from_micros(row.created_at),
            default_retention,
            lifecycle: match row.lifecycle_rules {
                Some(json) => serde_json::from_str(&json).map_err(MetaError::corrupt)?,
                None => Vec::new(),
            },
        })
    }
}

#[derive(FromRow)]
pub(super) struct VisibleBucketRow {
    #[sqlx(flatten)]
    pub(super) bucket: BucketRow,
    pub(super) permission: Option<String>,
}

#[derive(FromRow)]
pub(super) struct GrantRow {
    bucket_id: i64,
    user_id: i64,
    username: String,
    permission: String,
    created_at: i64,
}

impl TryFrom<GrantRow> for GrantRecord {
    type Error = MetaError;
    fn try_from(row: GrantRow) -> MetaResult<Self> {
        Ok(Self {
            bucket_id: row.bucket_id,
            user_id: row.user_id,
            username: Username::parse(&row.username).map_err(MetaError::corrupt)?,
            permission: row.permission.parse().map_err(MetaError::corrupt)?,
            created_at: from_micros(row.created_at),
        })
    }
}

#[derive(FromRow)]
pub(super) struct ObjectRow {
    id: i64,
    bucket_id: i64,
    object_key: String,
    blob_key: String,
    state: String,
    size: i64,
    etag: Option<String>,
    sha256: Option<String>,
    content_type: String,
    owner_id: Option<i64>,
    created_at: i64,
    updated_at: i64,
    retention_mode: Option<String>,
    retain_until: Option<i64>,
    legal_hold: bool,
}

impl TryFrom<ObjectRow> for ObjectRecord {
    type Error = MetaError;
    fn try_from(row: ObjectRow) -> MetaResult<Self> {
        Ok(Self {
            id: row.id,
            bucket_id: row.bucket_id,
            key: ObjectKey::parse(&row.object_key).map_err(MetaError::corrupt)?,
            blob_key: row.blob_key,
            state: ObjectState::parse(&row.state).ok_or_else(|| MetaError::corrupt(&row.state))?,
            size: row.size,
            etag: row.etag,
            sha256: row.sha256,
            content_type: row.content_type,
            owner_id: row.owner_id,
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
            retention_mode: match row.retention_mode {
                Some(mode) => Some(RetentionMode::parse(&mode).ok_or_else(|| MetaError::corrupt(mode))?),
                None => None,
            },
            retain_until: row.retain_until.map(from_micros),
            legal_hold: row.legal_hold,
        })
    }
}

#[derive(FromRow)]
pub(super) struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    bucket: Option<String>,
    object_key: Option<String>,
    outcome: String,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = MetaError;
    fn try_from(row: AuditRow) -> MetaResult<Self> {
        Ok(Self {
            id: row.id,
            at: from_micros(row.at),
            actor: row.actor,
            action: row.action,
            bucket: row.bucket,
            key: row.object_key,
            outcome: Outcome::parse(&row.outcome).ok_or_else(|| MetaError::corrupt(&row.outcome))?,
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            // An edited `details` that is not JSON any more must still load, so
            // verification can report the row instead of failing to read it.
            details: serde_json::from_str(&row.details).unwrap_or(serde_json::Value::String(row.details)),
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
    }
}

#[derive(FromRow)]
pub(super) struct ApiKeyRow {
    id: String,
    user_id: i64,
    name: String,
    prefix: String,
    key_hash: String,
    scopes: String,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    minted_with_mfa: bool,
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = MetaError;
    fn try_from(row: ApiKeyRow) -> MetaResult<Self> {
        Ok(Self {
            id: row.id,
            user_id: row.user_id,
            name: row.name,
            prefix: row.prefix,
            key_hash: row.key_hash,
            scopes: Scopes::parse(&row.scopes).map_err(MetaError::corrupt)?,
            created_at: from_micros(row.created_at),
            expires_at: row.expires_at.map(from_micros),
            last_used_at: row.last_used_at.map(from_micros),
            revoked_at: row.revoked_at.map(from_micros),
            minted_with_mfa: row.minted_with_mfa,
        })
    }
}

#[derive(FromRow)]
pub(super) struct RefreshRow {
    token_hash: String,
    family_id: String,
    user_id: i64,
    generation: i64,
    mfa: bool,
    created_at: i64,
    expires_at: i64,
}

impl From<RefreshRow> for RefreshTokenRecord {
    fn from(row: RefreshRow) -> Self {
        Self {
            token_hash: row.token_hash,
            family_id: row.family_id,
            user_id: row.user_id,
            generation: row.generation,
            mfa: row.mfa,
            created_at: from_micros(row.created_at),
            expires_at: from_micros(row.expires_at),
        }
    }
}

#[derive(FromRow)]
pub(super) struct UploadRow {
    id: String,
    bucket_id: i64,
    object_key: String,
    blob_key: String,
    backend_upload_id: String,
    owner_id: Option<i64>,
    content_type: Option<String>,
    declared_size: Option<i64>,
    part_size: i64,
    created_at: i64,
    state: String,
    state_at: i64,
    charged_bytes: i64,
    attempt_etag: Option<String>,
    attempt_size: Option<i64>,
    assembled_etag: Option<String>,
}

#[derive(FromRow)]
pub(super) struct CompletedUploadRow {
    id: String,
    bucket_id: i64,
    object_key: String,
    owner_id: Option<i64>,
    blob_key: String,
    etag: String,
    completed_at: i64,
}

impl TryFrom<CompletedUploadRow> for CompletedUpload {
    type Error = MetaError;
    fn try_from(row: CompletedUploadRow) -> MetaResult<Self> {
        Ok(Self {
            id: row.id,
            bucket_id: row.bucket_id,
            key: ObjectKey::parse(&row.object_key).map_err(MetaError::corrupt)?,
            owner_id: row.owner_id,
            blob_key: row.blob_key,
            etag: row.etag,
            completed_at: from_micros(row.completed_at),
        })
    }
}

impl TryFrom<UploadRow> for UploadRecord {
    type Error = MetaError;
    fn try_from(row: UploadRow) -> MetaResult<Self> {
        Ok(Self {
            id: row.id,
            bucket_id: row.bucket_id,
            key: ObjectKey::parse(&row.object_key).map_err(MetaError::corrupt)?,
            blob_key: row.blob_key,
            backend_upload_id: row.backend_upload_id,
            owner_id: row.owner_id,
            content_type: row.content_type,
            declared_size: row.declared_size,
            part_size: row.part_size,
            created_at: from_micros(row.created_at),
            state: UploadState::parse(&row.state).ok_or_else(|| MetaError::corrupt(&row.state))?,
            state_at: from_micros(row.state_at),
            charged_bytes: row.charged_bytes,
            attempt_etag: row.attempt_etag,
            attempt_size: row.attempt_size,
            assembled_etag: row.assembled_etag,
        })
    }
}

#[derive(FromRow)]
pub(super) struct PartRow {
    part_number: i64,
    size: i64,
    etag: String,
    backend_etag: String,
    created_at: i64,
}

impl From<PartRow> for UploadPartRecord {
    fn from(row: PartRow) -> Self {
        Self {
            part_number: row.part_number,
            size: row.size,
            etag: row.etag,
            backend_etag: row.backend_etag,
            created_at: from_micros(row.created_at),
        }
    }
}

#[derive(FromRow)]
pub(super) struct ShareRow {
    id: String,
    token_hash: String,
    bucket_id: i64,
    object_key: String,
    created_by: i64,
    created_at: i64,
    expires_at: Option<i64>,
    password_hash: Option<String>,
    max_downloads: Option<i64>,
    downloads: i64,
    revoked_at: Option<i64>,
    api_key_id: Option<String>,
    range_bytes: i64,
}

impl TryFrom<ShareRow> for ShareRecord {
    type Error = MetaError;
    fn try_from(row: ShareRow) -> MetaResult<Self> {
        Ok(Self {
            id: row.id,
            token_hash: row.token_hash,
            bucket_id: row.bucket_id,
            key: ObjectKey::parse(&row.object_key).map_err(MetaError::corrupt)?,
            created_by: row.created_by,
            created_at: from_micros(row.created_at),
            expires_at: row.expires_at.map(from_micros),
            password_hash: row.password_hash,
            max_downloads: row.max_downloads,
            downloads: row.downloads,
            revoked_at: row.revoked_at.map(from_micros),
            api_key_id: row.api_key_id,
            range_bytes: row.range_bytes,
        })
    }
}

/// Converts a batch of rows, failing on the first corrupt one.
pub(super) fn records<R, T: TryFrom<R, Error = MetaError>>(rows: Vec<R>) -> MetaResult<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}
