//! Lifecycle: per-bucket rules, and runs that expire objects and abort
//! abandoned uploads — as a dry run (what would happen, optionally as of a
//! future time) or for real, through the same delete path users take.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::context::{Principal, RequestContext};
use super::scopes::bucket_name_scope;
use super::{ServiceError, ServiceResult, Services};
use crate::domain::{Permission, Role};
use crate::metadata::{BucketRecord, ListQuery, MetaError, UploadState};
use crate::metrics::Metrics;
use crate::policy::lifecycle::{self, LifecycleRule};
use crate::policy::retention::is_locked;

/// Held for the length of a real run, so two never overlap.
pub const RUN_LEASE: &str = "lifecycle.run";
/// Held for one schedule interval by the replica whose turn it is.
pub const SCHEDULE_LEASE: &str = "lifecycle.schedule";
/// How long a crashed run keeps others out.
const RUN_LEASE_TTL: chrono::Duration = chrono::Duration::hours(1);
const PAGE: usize = 1000;
/// Actor of audit records written by runs.
pub const ACTOR: &str = "lifecycle";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

/// References a report lists of each kind; its counts go on past them, so a
/// run over millions of objects answers (and holds) a bounded report.
pub const MAX_LISTED: usize = 1_000;

/// What a run did, or with `dry_run`, would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LifecycleReport {
    pub dry_run: bool,
    pub as_of: Option<DateTime<Utc>>,
    /// The first `MAX_LISTED` objects expired; `expired_count` counts them all.
    pub expired: Vec<ObjectRef>,
    pub expired_count: u64,
    pub aborted_uploads: u64,
    /// The first `MAX_LISTED` objects kept by retention or a legal hold.
    pub skipped_locked: Vec<ObjectRef>,
    pub skipped_locked_count: u64,
    /// Whether a list holds fewer references than its count.
    pub truncated: bool,
    pub bytes_freed: i64,
}

impl LifecycleReport {
    /// Whether the run changed anything (and so is audited): objects it only
    /// found locked are left as they were, run after run.
    fn changed_something(&self) -> bool {
        self.expired_count > 0 || self.aborted_uploads > 0
    }

    fn note_expired(&mut self, object: ObjectRef) {
        self.expired_count += 1;
        self.truncated |= !list_bounded(&mut self.expired, object);
    }

    fn note_skipped_locked(&mut self, object: ObjectRef) {
        self.skipped_locked_count += 1;
        self.truncated |= !list_bounded(&mut self.skipped_locked, object);
    }
}

/// Adds `object` unless the list is full; whether it did.
fn list_bounded(list: &mut Vec<ObjectRef>, object: ObjectRef) -> bool {
    let room = list.len() < MAX_LISTED;
    if room {
        list.push(object);
    }
    room
}

impl Services {
    pub async fn lifecycle_rules(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
    ) -> ServiceResult<Vec<LifecycleRule>> {
        let (bucket, _) =
            self.authorize_bucket(ctx, principal, bucket, Permission::Read, "bucket.lifecycle_get").await?;
        Ok(bucket.lifecycle)
    }

    /// Replaces the bucket's rules; an empty list removes them.
    pub async fn set_lifecycle_rules(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        rules: Vec<LifecycleRule>,
    ) -> ServiceResult<Vec<LifecycleRule>> {
        const ACTION: &str = "bucket.lifecycle_set";
        let (record, _) = self.authorize_bucket(ctx, principal, bucket, Permission::Manage, ACTION).await?;
        lifecycle::validate(&rules).map_err(|why| ServiceError::bad_request("invalid-lifecycle", why))?;
        let audit = ctx
            .event(self.clock.now(), principal.actor(), ACTION)
            .bucket(bucket)
            .details(serde_json::json!({ "old": record.lifecycle, "new": rules }));
        self.store.set_lifecycle(record.id, &rules, &audit).await?;
        self.invalidate(&bucket_name_scope(&record.name)).await;
        Ok(rules)
    }

    /// `POST /admin/lifecycle/run`: admins only (a real run as administration); `as_of` only with a dry run.
    pub async fn run_lifecycle_for(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        dry_run: bool,
        as_of: Option<DateTime<Utc>>,
    ) -> ServiceResult<LifecycleReport> {
        if !dry_run {
            // Expiring deletes objects: administration proper (`rbac::may_administer`:
            // a read and write key, and MFA where required). A dry run only reads.
            self.require_admin(ctx, principal, "lifecycle.run").await?;
        } else if principal.role != Role::Admin {
            let error = ServiceError::Forbidden("running lifecycle rules needs the admin role".into());
            return Err(self.deny(ctx, principal, "lifecycle.run", None, None, error).await);
        }
        if as_of.is_some() && !dry_run {
            return Err(ServiceError::bad_request(
                "invalid-lifecycle-run",
                "as_of is only accepted with dry_run: true",
            ));
        }
        self.run_lifecycle(ctx, dry_run, as_of).await
    }

    /// Runs every bucket's rules once. A real run holds the run lease (409
    /// `lifecycle-running` while another replica holds it) and is idempotent:
    /// after a crash the next run picks up what is left.
    pub async fn run_lifecycle(
        &self,
        ctx: &RequestContext,
        dry_run: bool,
        as_of: Option<DateTime<Utc>>,
    ) -> ServiceResult<LifecycleReport> {
        // A holder of this run's own: a lease is re-entrant for its holder, and a
        // second run on this replica (an admin's during the schedule's) must wait too.
        let holder = &format!("{}/{}", self.instance, uuid::Uuid::new_v4());
        if !dry_run {
            let now = self.clock.now();
            if !self.store.acquire_lease(RUN_LEASE, holder, now, now + RUN_LEASE_TTL).await? {
                return Err(ServiceError::conflict("lifecycle-running", "a lifecycle run is already in progress"));
            }
        }
        let result = self.lifecycle_pass(ctx, dry_run, as_of).await;
        if !dry_run && let Err(error) = self.store.release_lease(RUN_LEASE, holder).await {
            tracing::warn!(error = %error, "could not release the lifecycle lease; it expires by itself");
        }
        let report = result?;
        if !dry_run && report.changed_something() {
            self.record_run(ctx, &report).await;
        }
        Ok(report)
    }

    /// The scheduled run: only the replica that takes this interval's lease runs.
    pub async fn run_scheduled_lifecycle(&self) -> ServiceResult<Option<LifecycleReport>> {
        let now = self.clock.now();
        let interval = chrono::Duration::from_std(self.config.lifecycle_interval).unwrap_or(chrono::Duration::hours(1));
        // Slightly shorter than the interval, so the same replica's next tick is not shut out by its own lease.
        let until = now + interval - interval / 10;
        if !self.store.acquire_lease(SCHEDULE_LEASE, &self.instance, now, until).await? {
            return Ok(None);
        }
        match self.run_lifecycle(&RequestContext::default(), false, None).await {
            Err(ServiceError::Conflict { slug: "lifecycle-running", .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    async fn lifecycle_pass(
        &self,
        ctx: &RequestContext,
        dry_run: bool,
        as_of: Option<DateTime<Utc>>,
    ) -> ServiceResult<LifecycleReport> {
        let mut report = LifecycleReport { dry_run, as_of, ..Default::default() };
        for bucket in self.store.buckets_with_lifecycle().await? {
            let when = as_of.unwrap_or_else(|| self.clock.now());
            for prefix in lifecycle::scan_prefixes(&bucket.lifecycle) {
                self.expire_under(ctx, &bucket, &prefix, when, &mut report).await?;
                self.abort_under(ctx, &bucket, &prefix, when, &mut report).await?;
            }
        }
        Ok(report)
    }

    async fn expire_under(
        &self,
        ctx: &RequestContext,
        bucket: &BucketRecord,
        prefix: &str,
        when: DateTime<Utc>,
        report: &mut LifecycleReport,
    ) -> ServiceResult<()> {
        let mut after = None;
        loop {
            let query = ListQuery { prefix: prefix.to_owned(), delimiter: None, after: after.take(), limit: PAGE };
            let page = self.store.list_objects(bucket.id, &query).await?;
            for object in &page.objects {
                let Some(rule) =
                    lifecycle::expiring_rule(&bucket.lifecycle, object.key.as_str(), object.created_at, when)
                else {
                    continue;
                };
                let reference = ObjectRef { bucket: bucket.name.to_string(), key: object.key.to_string() };
                if is_locked(object, when) {
                    if !report.dry_run {
                        Metrics::count(&self.metrics.lifecycle_actions, "skipped_locked");
                    }
                    report.note_skipped_locked(reference);
                    continue;
                }
                if !report.dry_run {
                    let details = serde_json::json!({ "rule": rule, "size": object.size });
                    match self.remove_live(ctx, ACTOR, bucket, object, "lifecycle.expire", details).await {
                        Ok(_) => {
                            Metrics::count(&self.metrics.lifecycle_actions, "expired");
                            self.metrics.lifecycle_bytes_freed.inc_by(u64::try_from(object.size).unwrap_or(0));
                        }
                        Err(ServiceError::Conflict { slug: "object-locked", .. }) => {
                            report.note_skipped_locked(reference);
                            continue;
                        }
                        // Deleted or replaced since the page was read: nothing to expire.
                        Err(ServiceError::NotFound(_) | ServiceError::Conflict { .. }) => continue,
                        Err(error) => return Err(error),
                    }
                }
                report.bytes_freed += object.size;
                report.note_expired(reference);
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    async fn abort_under(
        &self,
        ctx: &RequestContext,
        bucket: &BucketRecord,
        prefix: &str,
        when: DateTime<Utc>,
        report: &mut LifecycleReport,
    ) -> ServiceResult<()> {
        let mut after: Option<(String, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(k, id)| (k.as_str(), id.as_str()));
            let uploads = self.store.uploads_in_bucket(bucket.id, prefix, None, cursor, PAGE).await?;
            let Some(last) = uploads.last() else { return Ok(()) };
            after = Some((last.key.to_string(), last.id.clone()));
            for upload in &uploads {
                let Some(rule) =
                    lifecycle::abandoning_rule(&bucket.lifecycle, upload.key.as_str(), upload.created_at, when)
                else {
                    continue;
                };
                // One being completed goes on; a dry run must not count what a real run skips.
                if upload.state != UploadState::Open {
                    continue;
                }
                if !report.dry_run {
                    let audit = ctx
                        .event(self.clock.now(), ACTOR, "upload.abort")
                        .bucket(bucket.name.as_str())
                        .key(upload.key.as_str())
                        .details(serde_json::json!({ "upload_id": upload.id, "rule": rule }));
                    // The row first, if still open: a completion that started meanwhile goes on.
                    match self.store.abort_upload(&upload.id, UploadState::Open, None, &audit).await {
                        Ok(()) => Metrics::count(&self.metrics.lifecycle_actions, "aborted_upload"),
                        Err(MetaError::NotFound(_) | MetaError::Conflict("upload-state")) => continue,
                        Err(error) => return Err(error.into()),
                    }
                    self.discard_backend_upload(upload).await;
                }
                report.aborted_uploads += 1;
            }
            if uploads.len() < PAGE {
                return Ok(());
            }
        }
    }

    async fn record_run(&self, ctx: &RequestContext, report: &LifecycleReport) {
        let audit = ctx.event(self.clock.now(), ACTOR, "lifecycle.run").details(serde_json::json!({
            "expired": report.expired_count,
            "aborted_uploads": report.aborted_uploads,
            "skipped_locked": report.skipped_locked_count,
            "bytes_freed": report.bytes_freed,
        }));
        if let Err(error) = self.store.append_audit(&audit).await {
            tracing::warn!(error = %error, "could not record a lifecycle run");
        }
        tracing::info!(
            expired = report.expired_count,
            aborted_uploads = report.aborted_uploads,
            skipped_locked = report.skipped_locked_count,
            bytes_freed = report.bytes_freed,
            "lifecycle run"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_lists_a_bounded_number_of_objects_and_counts_them_all() {
        let mut report = LifecycleReport::default();
        let object = |n: usize| ObjectRef { bucket: "logs".into(), key: format!("app/{n}.log") };
        for n in 0..MAX_LISTED {
            report.note_expired(object(n));
        }
        report.note_skipped_locked(object(0));
        assert!(!report.truncated, "everything fits");
        for n in MAX_LISTED..MAX_LISTED + 5 {
            report.note_expired(object(n));
        }
        assert_eq!((report.expired.len(), report.expired_count), (MAX_LISTED, MAX_LISTED as u64 + 5));
        assert_eq!(report.expired.last(), Some(&object(MAX_LISTED - 1)), "the first ones are listed");
        assert_eq!((report.skipped_locked.len(), report.skipped_locked_count), (1, 1));
        assert!(report.truncated && report.changed_something());
    }

    #[test]
    fn a_run_that_only_found_locked_objects_changed_nothing() {
        let mut report = LifecycleReport::default();
        report.note_skipped_locked(ObjectRef { bucket: "logs".into(), key: "held.log".into() });
        assert!(!report.changed_something(), "or every interval would add an audit event");
        report.aborted_uploads = 1;
        assert!(report.changed_something());
    }
}
