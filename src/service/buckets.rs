//! Buckets and grants: create, list what the caller can see, delete when
//! empty, and manage who may read, write or manage a bucket.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::context::{Principal, RequestContext};
use super::scopes::{bucket_name_scope, bucket_scope, objects_scope};
use super::{ServiceError, ServiceResult, Services};
use crate::domain::{BucketName, Permission, Username};
use crate::metadata::{BucketRecord, DefaultRetention, GrantRecord, MetaError, NewBucket};
use crate::policy::rbac::{self, Decision, GrantTarget};

pub use crate::policy::retention::MAX_RETENTION_DAYS;

#[derive(Debug, Clone, Serialize)]
pub struct BucketView {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub permission: Permission,
    pub default_retention: Option<DefaultRetention>,
    /// `gateway` or `gateway+backend` (see `/health/ready`).
    pub retention_enforcement: &'static str,
}

fn view(bucket: BucketRecord, permission: Permission, retention_enforcement: &'static str) -> BucketView {
    BucketView {
        name: bucket.name.to_string(),
        created_at: bucket.created_at,
        permission,
        default_retention: bucket.default_retention,
        retention_enforcement,
    }
}

pub(crate) fn check_default_retention(retention: Option<DefaultRetention>) -> ServiceResult<()> {
    match retention {
        Some(r) if !(1..=MAX_RETENTION_DAYS).contains(&r.days) => Err(ServiceError::bad_request(
            "invalid-retention",
            format!("default retention days must be between 1 and {MAX_RETENTION_DAYS}"),
        )),
        _ => Ok(()),
    }
}

impl Services {
    /// Finds a bucket and checks the caller may do `required` there. Absent or
    /// invisible buckets are 404, visible but insufficient access is 403; both
    /// are recorded as denied `action`s.
    pub(crate) async fn authorize_bucket(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        name: &str,
        required: Permission,
        action: &str,
    ) -> ServiceResult<(BucketRecord, Permission)> {
        let parsed =
            BucketName::parse(name).map_err(|e| ServiceError::bad_request("invalid-bucket-name", e.to_string()))?;
        let Some(bucket) = self.bucket_named(&parsed).await? else {
            return Err(self.deny(ctx, principal, action, Some(name), None, ServiceError::NotFound("bucket")).await);
        };
        // The grant's scope now, and the objects' scope next for most callers.
        self.prefetch_versions(&[bucket_scope(bucket.id), objects_scope(bucket.id)]).await;
        let grant = self.grant_of(bucket.id, principal.user_id).await?;
        match rbac::bucket_access(principal.subject(), grant, required) {
            Decision::Allow => {
                // Capped by the credential: a read-only key holds `read` even on a bucket its owner manages.
                let permission = rbac::effective_permission(principal.subject(), grant).unwrap_or(Permission::Read);
                Ok((bucket, permission))
            }
            Decision::Hidden => {
                Err(self.deny(ctx, principal, action, Some(name), None, ServiceError::NotFound("bucket")).await)
            }
            Decision::Forbidden => {
                let error = ServiceError::Forbidden(format!("this needs {required} permission on the bucket"));
                Err(self.deny(ctx, principal, action, Some(name), None, error).await)
            }
        }
    }

    pub async fn list_buckets(&self, principal: &Principal) -> ServiceResult<Vec<BucketView>> {
        let all = principal.role == crate::domain::Role::Admin;
        let buckets = self.store.list_buckets(principal.user_id, all).await?;
        let enforcement = self.retention_enforcement().await;
        Ok(buckets
            .into_iter()
            .filter_map(|visible| {
                rbac::bucket_permission(principal.role, visible.grant)?;
                let permission = rbac::effective_permission(principal.subject(), visible.grant)?;
                Some(view(visible.bucket, permission, enforcement))
            })
            .collect())
    }

    pub async fn create_bucket(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        name: &str,
        default_retention: Option<DefaultRetention>,
    ) -> ServiceResult<BucketView> {
        if !rbac::may_create_bucket(principal.subject()) {
            let error = ServiceError::Forbidden("this account or key may not create buckets".into());
            return Err(self.deny(ctx, principal, "bucket.create", Some(name), None, error).await);
        }
        let name =
            BucketName::parse(name).map_err(|e| ServiceError::bad_request("invalid-bucket-name", e.to_string()))?;
        check_default_retention(default_retention)?;
        let audit = ctx
            .event(self.clock.now(), principal.username.as_str(), "bucket.create")
            .bucket(name.as_str())
            .details(serde_json::json!({ "default_retention": default_retention }));
        let new = NewBucket { name, owner_id: principal.user_id, default_retention, at: self.clock.now() };
        let bucket = self.store.create_bucket(&new, &audit).await.map_err(|error| match error {
            MetaError::Conflict(_) => ServiceError::conflict("bucket-exists", "a bucket with this name already exists"),
            other => other.into(),
        })?;
        self.invalidate(&bucket_name_scope(&bucket.name)).await;
        if let Err(error) = self.blobs.ensure_container(&bucket.blob_prefix()).await {
            // Without its backend bucket the Coffer bucket is unusable: take it back.
            let undo = ctx
                .event(self.clock.now(), principal.username.as_str(), "bucket.delete")
                .bucket(bucket.name.as_str())
                .details(serde_json::json!({ "reason": "the backend bucket could not be created" }));
            if let Err(undo_error) = self.store.delete_bucket(bucket.id, &undo).await {
                tracing::warn!(error = %undo_error, "could not roll back a bucket without backend storage");
            }
            self.invalidate(&bucket_name_scope(&bucket.name)).await;
            return Err(error.into());
        }
        Ok(view(bucket, Permission::Manage, self.retention_enforcement().await))
    }

    pub async fn delete_bucket(&self, ctx: &RequestContext, principal: &Principal, name: &str) -> ServiceResult<()> {
        let (bucket, _) = self.authorize_bucket(ctx, principal, name, Permission::Manage, "bucket.delete").await?;
        let audit = ctx.event(self.clock.now(), principal.username.as_str(), "bucket.delete").bucket(name);
        let deleted = match self.store.delete_bucket(bucket.id, &audit).await {
            // Versions whose bytes' removal failed earlier wait for the reconciler (a day by
            // default); a bucket that looks empty must not: they are finished here first.
            Err(MetaError::Conflict(_)) if self.finish_deletions(bucket.id).await? => {
                self.store.delete_bucket(bucket.id, &audit).await
            }
            other => other,
        };
        deleted.map_err(|error| match error {
            MetaError::Conflict(_) => {
                ServiceError::conflict("bucket-not-empty", "the bucket still holds objects or uploads")
            }
            other => ServiceError::from(other),
        })?;
        self.invalidate(&bucket_name_scope(&bucket.name)).await;
        if let Err(error) = self.blobs.remove_container(&bucket.blob_prefix()).await {
            tracing::warn!(error = %error, bucket = name, "could not remove the backend bucket; remove it by hand");
        }
        Ok(())
    }

    /// Removes the bytes and rows of a bucket's versions left `deleting`;
    /// whether any were left.
    async fn finish_deletions(&self, bucket_id: i64) -> ServiceResult<bool> {
        const BATCH: usize = 500;
        let mut any = false;
        loop {
            let leftovers = self.store.deleting_objects(bucket_id, BATCH).await?;
            for object in &leftovers {
                self.finish_removal(object).await?;
            }
            any |= !leftovers.is_empty();
            if leftovers.len() < BATCH {
                return Ok(any);
            }
        }
    }

    pub async fn list_grants(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
    ) -> ServiceResult<Vec<GrantRecord>> {
        const ACTION: &str = "grant.list";
        let (record, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Manage, ACTION).await?;
        let caller_grant = self.grant_of(record.id, principal.user_id).await?;
        if rbac::grant_access(principal.subject(), caller_grant) != Decision::Allow {
            let refused = ServiceError::Forbidden("listing grants needs a credential that may read".into());
            return Err(self.deny(ctx, principal, ACTION, Some(bucket), None, refused).await);
        }
        Ok(self.store.list_grants(record.id).await?)
    }

    async fn grant_target(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        username: &str,
        action: &str,
    ) -> ServiceResult<(BucketRecord, i64, Username)> {
        // What may change a grant is `grant_change`'s to say; a key that cannot write is refused first.
        let (bucket_record, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Write, action).await?;
        let caller_grant = self.grant_of(bucket_record.id, principal.user_id).await?;
        let target =
            Username::parse(username).map_err(|e| ServiceError::bad_request("invalid-username", e.to_string()))?;
        let user = self.store.user_by_name(&target).await?;
        let is_caller = target == principal.username;
        let is_creator = user.as_ref().is_some_and(|u| bucket_record.owner_id == Some(u.id));
        let change = rbac::grant_change(principal.subject(), caller_grant, GrantTarget { is_caller, is_creator });
        if change != Decision::Allow {
            let reason = if !rbac::credential_reads(principal.via) {
                "granting needs a credential that may read (this key is write-only)"
            } else if is_caller {
                "you cannot change your own grant"
            } else if is_creator && change == Decision::Forbidden && caller_grant == Some(Permission::Manage) {
                "only an admin can change the grant of the bucket's creator"
            } else {
                "granting needs manage permission"
            };
            return Err(self
                .deny(ctx, principal, action, Some(bucket), None, ServiceError::Forbidden(reason.into()))
                .await);
        }
        let user = user.ok_or(ServiceError::NotFound("user"))?;
        Ok((bucket_record, user.id, target))
    }

    pub async fn set_grant(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        username: &str,
        permission: Permission,
    ) -> ServiceResult<()> {
        let (record, user_id, target) = self.grant_target(ctx, principal, bucket, username, "grant.set").await?;
        let audit = ctx
            .event(self.clock.now(), principal.username.as_str(), "grant.set")
            .bucket(bucket)
            .details(serde_json::json!({ "username": target, "permission": permission }));
        self.store.set_grant(record.id, user_id, permission, self.clock.now(), &audit).await?;
        self.invalidate(&bucket_scope(record.id)).await;
        Ok(())
    }

    pub async fn remove_grant(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        username: &str,
    ) -> ServiceResult<()> {
        let (record, user_id, target) = self.grant_target(ctx, principal, bucket, username, "grant.revoke").await?;
        let audit = ctx
            .event(self.clock.now(), principal.username.as_str(), "grant.revoke")
            .bucket(bucket)
            .details(serde_json::json!({ "username": target }));
        self.store.remove_grant(record.id, user_id, &audit).await?;
        self.invalidate(&bucket_scope(record.id)).await;
        Ok(())
    }
}
