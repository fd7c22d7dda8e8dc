//! Retention and legal hold on objects, and buckets' default retention:
//! decided by `policy::retention`, applied compare-and-set, audited with the
//! old and new values, mirrored to the backend's Object Lock where it has one (`lock_mirror`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::buckets::check_default_retention;
use super::context::{Principal, RequestContext};
use super::objects::parse_key;
use super::scopes::{bucket_name_scope, objects_scope};
use super::{ServiceError, ServiceResult, Services};
use crate::domain::Permission;
use crate::domain::audit::Outcome;
use crate::metadata::{BucketRecord, DefaultRetention, MetaError, ObjectRecord, RetentionMode};
use crate::policy::retention::{self, Retention, RetentionChange, RetentionDenied};

/// An object's protection as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionView {
    pub mode: Option<RetentionMode>,
    pub retain_until: Option<DateTime<Utc>>,
    /// Whether the retention still protects the object now.
    pub active: bool,
    pub legal_hold: bool,
}

fn view(object: &ObjectRecord, now: DateTime<Utc>) -> RetentionView {
    let current = Retention::of(object);
    RetentionView {
        mode: current.map(|r| r.mode),
        retain_until: current.map(|r| r.retain_until),
        active: current.is_some_and(|r| r.is_active(now)),
        legal_hold: object.legal_hold,
    }
}

fn refusal(denied: RetentionDenied) -> ServiceError {
    match denied {
        RetentionDenied::NotInFuture | RetentionDenied::TooFar => {
            ServiceError::bad_request("invalid-retention", denied.explain())
        }
        _ => ServiceError::Forbidden(denied.explain().into()),
    }
}

/// Compare-and-set retries before giving up on a hotly contended object.
const RETRIES: usize = 5;

impl Services {
    async fn governed_object(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        (action, required): (&str, Permission),
    ) -> ServiceResult<(BucketRecord, Permission, ObjectRecord)> {
        let (bucket, permission) = self.authorize_bucket(ctx, principal, bucket, required, action).await?;
        let key = parse_key(key)?;
        let object = self.store.live_object(bucket.id, &key).await?.ok_or(ServiceError::NotFound("object"))?;
        Ok((bucket, permission, object))
    }

    pub async fn object_retention(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
    ) -> ServiceResult<RetentionView> {
        let (_, _, object) =
            self.governed_object(ctx, principal, bucket, key, ("object.retention_get", Permission::Read)).await?;
        Ok(view(&object, self.clock.now()))
    }

    /// Sets, extends, shortens or removes (`None`) an object's retention.
    pub async fn set_object_retention(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        requested: Option<Retention>,
        bypass_governance: bool,
    ) -> ServiceResult<RetentionView> {
        const ACTION: &str = "object.retention_set";
        for _ in 0..RETRIES {
            let (_, permission, object) =
                self.governed_object(ctx, principal, bucket, key, (ACTION, Permission::Write)).await?;
            let now = self.clock.now();
            let current = Retention::of(&object);
            let change = RetentionChange {
                current,
                requested,
                now,
                can_manage: permission >= Permission::Manage,
                bypass_governance,
            };
            let bypassed = match retention::decide_retention(&change) {
                Ok(bypassed) => bypassed,
                Err(denied) => {
                    let event = ctx
                        .event(now, principal.actor(), ACTION)
                        .bucket(bucket)
                        .key(object.key.as_str())
                        .outcome(Outcome::Denied)
                        .details(serde_json::json!({ "reason": denied.explain(), "old": current, "new": requested }));
                    if let Err(error) = self.store.append_audit(&event).await {
                        tracing::warn!(error = %error, "could not record a denied retention change");
                    }
                    return Err(refusal(denied));
                }
            };
            let details = serde_json::json!({
                "old": current,
                "new": requested,
                "bypass_governance": bypass_governance,
                "governance_bypassed": bypassed,
            });
            let audit =
                ctx.event(now, principal.actor(), ACTION).bucket(bucket).key(object.key.as_str()).details(details);
            match self.store.set_object_retention(object.id, current, requested, &audit).await {
                Ok(()) => {
                    self.invalidate(&objects_scope(object.bucket_id)).await;
                    self.mirror_retention(&object, requested, bypassed).await;
                    let updated = ObjectRecord {
                        retention_mode: requested.map(|r| r.mode),
                        retain_until: requested.map(|r| r.retain_until),
                        ..object
                    };
                    return Ok(view(&updated, now));
                }
                Err(MetaError::Conflict("changed")) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ServiceError::conflict("retention-contended", "the retention changed concurrently; try again"))
    }

    pub async fn set_legal_hold(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        on: bool,
    ) -> ServiceResult<RetentionView> {
        const ACTION: &str = "object.legal_hold_set";
        for _ in 0..RETRIES {
            let (_, permission, object) =
                self.governed_object(ctx, principal, bucket, key, (ACTION, Permission::Write)).await?;
            let now = self.clock.now();
            if let Err(denied) = retention::decide_legal_hold(permission >= Permission::Manage) {
                let error = ServiceError::Forbidden(denied.explain().into());
                return Err(self.deny(ctx, principal, ACTION, Some(bucket), Some(object.key.as_str()), error).await);
            }
            let audit = ctx
                .event(now, principal.actor(), ACTION)
                .bucket(bucket)
                .key(object.key.as_str())
                .details(serde_json::json!({ "old": object.legal_hold, "new": on }));
            // Compared and set: the audit's "old" is what the change replaced.
            match self.store.set_legal_hold(object.id, object.legal_hold, on, &audit).await {
                Ok(()) => {
                    self.invalidate(&objects_scope(object.bucket_id)).await;
                    self.mirror_legal_hold(&object, on).await;
                    return Ok(view(&ObjectRecord { legal_hold: on, ..object }, now));
                }
                Err(MetaError::Conflict("changed")) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ServiceError::conflict("legal-hold-contended", "the legal hold changed concurrently; try again"))
    }

    pub async fn default_retention_of(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
    ) -> ServiceResult<Option<DefaultRetention>> {
        let (bucket, _) =
            self.authorize_bucket(ctx, principal, bucket, Permission::Read, "bucket.default_retention_get").await?;
        Ok(bucket.default_retention)
    }

    pub async fn set_default_retention(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        retention: Option<DefaultRetention>,
    ) -> ServiceResult<Option<DefaultRetention>> {
        const ACTION: &str = "bucket.default_retention_set";
        let (record, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Manage, ACTION).await?;
        check_default_retention(retention)?;
        let audit = ctx
            .event(self.clock.now(), principal.actor(), ACTION)
            .bucket(bucket)
            .details(serde_json::json!({ "old": record.default_retention, "new": retention }));
        self.store.set_default_retention(record.id, retention, &audit).await?;
        self.invalidate(&bucket_name_scope(&record.name)).await;
        Ok(retention)
    }
}
