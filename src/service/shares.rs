//! Share links for people: a secret URL to one object, optionally with a
//! password, an expiry and a download limit; revocable; every access audited.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde::Serialize;

use super::context::{Principal, RequestContext};
use super::identity::{digest, random_token};
use super::objects::{ObjectRead, ReadOutcome, ReadRequest, parse_key};
use super::{ServiceError, ServiceResult, Services};
use crate::domain::audit::Outcome;
use crate::domain::{ByteRange, Permission, Role};
use crate::metadata::{ObjectRecord, ShareClaim, ShareFilter, ShareRecord, ThrottleScope};
use crate::policy::rbac;

const SHARE_PREFIX: &str = "cfs_";
const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, Clone)]
pub struct NewShare {
    pub bucket: String,
    pub key: String,
    pub expires_in_seconds: Option<i64>,
    pub password: Option<SecretString>,
    pub max_downloads: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedShare {
    pub id: String,
    pub url: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShareView {
    pub id: String,
    pub bucket: String,
    /// The creator's username.
    pub created_by: String,
    pub key: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub has_password: bool,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub revoked: bool,
}

/// What a password page shows of the file behind a link.
pub struct SharedFile {
    pub file_name: String,
    pub size: i64,
}

/// What opening a link gives: the object, or (for a password-protected link
/// reached without one, or with a wrong one) what a password page shows.
pub enum ShareOpen {
    NeedsPassword(SharedFile),
    WrongPassword(SharedFile),
    Object(ObjectRead),
}

/// The most shares one page lists.
pub const MAX_SHARES_PAGE: usize = 1000;

/// The `created_at` (micros) and id of a page's last share, as `list_shares` hands it out.
fn parse_share_position(text: &str) -> ServiceResult<(DateTime<Utc>, String)> {
    let invalid = || ServiceError::bad_request("invalid-cursor", "the cursor is not one this server issued");
    let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
    let at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(invalid)?;
    if id.is_empty() || id.len() > 64 {
        return Err(invalid());
    }
    Ok((at, id.to_owned()))
}

/// The longest lifetime a share link can have when `share_max_expiry` is unset (100 years).
const MAX_SHARE_SECONDS: i64 = 100 * 365 * 24 * 3600;

impl Services {
    async fn bucket_name(&self, id: i64) -> ServiceResult<String> {
        Ok(self.store.bucket_by_id(id).await?.map(|b| b.name.to_string()).unwrap_or_default())
    }

    pub fn share_url(&self, token: &str) -> String {
        format!("{}/s/{token}", self.content_url())
    }

    pub async fn create_share(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        request: NewShare,
    ) -> ServiceResult<CreatedShare> {
        let (bucket, _) =
            self.authorize_bucket(ctx, principal, &request.bucket, Permission::Read, "share.create").await?;
        let key = parse_key(&request.key)?;
        self.store.live_object(bucket.id, &key).await?.ok_or(ServiceError::NotFound("object"))?;
        if let Some(seconds) = request.expires_in_seconds {
            // Without a configured limit, 100 years: later instants overflow time arithmetic.
            let max = self
                .config
                .share_max_expiry
                .map_or(MAX_SHARE_SECONDS, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX).min(MAX_SHARE_SECONDS));
            if seconds < 1 || seconds > max {
                return Err(ServiceError::bad_request(
                    "invalid-expiry",
                    format!("expires_in_seconds must be between 1 and {max}"),
                ));
            }
        } else if self.config.share_max_expiry.is_some() {
            return Err(ServiceError::bad_request("invalid-expiry", "this server requires shares to expire"));
        }
        if request.max_downloads.is_some_and(|n| n < 1) {
            return Err(ServiceError::bad_request("invalid-max-downloads", "max_downloads must be at least 1"));
        }
        let password_hash = match &request.password {
            Some(password) => {
                use secrecy::ExposeSecret;
                let chars = password.expose_secret().chars().count();
                if chars == 0 || chars > MAX_PASSWORD_CHARS {
                    return Err(ServiceError::bad_request(
                        "invalid-password",
                        "share passwords are 1 to 1024 characters",
                    ));
                }
                Some(self.identity.passwords.hash(password).await?)
            }
            None => None,
        };
        let token = random_token(SHARE_PREFIX);
        let now = self.clock.now();
        let share = ShareRecord {
            id: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
            token_hash: digest(&token),
            bucket_id: bucket.id,
            key,
            created_by: principal.user_id,
            created_at: now,
            expires_at: request.expires_in_seconds.map(|s| now + Duration::seconds(s)),
            password_hash,
            max_downloads: request.max_downloads,
            downloads: 0,
            revoked_at: None,
            api_key_id: principal.api_key_id.clone(),
            range_bytes: 0,
        };
        let audit = ctx
            .event(now, principal.actor(), "share.create")
            .bucket(bucket.name.as_str())
            .key(share.key.as_str())
            .details(serde_json::json!({
                "share": share.id, "expires_at": share.expires_at,
                "password": share.password_hash.is_some(), "max_downloads": share.max_downloads,
            }));
        self.store.create_share(&share, &audit).await?;
        Ok(CreatedShare { url: self.share_url(&token), id: share.id, expires_at: share.expires_at })
    }

    /// One page of shares, newest first, and the sort key to pass as `after`
    /// for the next page (`None` on the last page): the caller's own, or with
    /// `bucket` those on that bucket — everyone's for its managers (who may
    /// revoke them), the caller's own for its other readers.
    pub async fn list_shares(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: Option<&str>,
        (after, limit): (Option<&str>, usize),
    ) -> ServiceResult<(Vec<ShareView>, Option<String>)> {
        let limit = limit.clamp(1, MAX_SHARES_PAGE);
        let before = after.map(parse_share_position).transpose()?;
        let before = before.as_ref().map(|(at, id)| (*at, id.as_str()));
        let filter = match bucket {
            Some(name) => {
                let (bucket, permission) =
                    self.authorize_bucket(ctx, principal, name, Permission::Read, "share.list").await?;
                let everyone = permission >= Permission::Manage;
                ShareFilter { created_by: (!everyone).then_some(principal.user_id), bucket_id: Some(bucket.id) }
            }
            // Their own links across buckets: only with a credential that may read.
            None if !rbac::credential_reads(principal.via) => {
                let error = ServiceError::Forbidden("a write-only API key does not list share links".into());
                return Err(self.deny(ctx, principal, "share.list", None, None, error).await);
            }
            None => ShareFilter { created_by: Some(principal.user_id), bucket_id: None },
        };
        let mut shares = self.store.shares_where(filter, before, limit + 1).await?;
        let next = (shares.len() > limit).then(|| {
            shares.truncate(limit);
            shares.last().map(|last| format!("{}:{}", last.created_at.timestamp_micros(), last.id))
        });
        // A page's shares point into few buckets and come from few people: each is looked up once.
        let mut bucket_names: HashMap<i64, String> = HashMap::new();
        let mut creators: HashMap<i64, String> = HashMap::new();
        let mut views = Vec::with_capacity(shares.len());
        for share in shares {
            let bucket = match bucket_names.get(&share.bucket_id) {
                Some(name) => name.clone(),
                None => {
                    let name = self.bucket_name(share.bucket_id).await?;
                    bucket_names.insert(share.bucket_id, name.clone());
                    name
                }
            };
            let created_by = match creators.get(&share.created_by) {
                Some(name) => name.clone(),
                None => {
                    let user = self.store.user_by_id(share.created_by).await?;
                    let name = user.map(|u| u.username.to_string()).unwrap_or_default();
                    creators.insert(share.created_by, name.clone());
                    name
                }
            };
            views.push(ShareView {
                id: share.id,
                bucket,
                created_by,
                key: share.key.to_string(),
                created_at: share.created_at,
                expires_at: share.expires_at,
                has_password: share.password_hash.is_some(),
                max_downloads: share.max_downloads,
                downloads: share.downloads,
                revoked: share.revoked_at.is_some(),
            });
        }
        Ok((views, next.flatten()))
    }

    /// The creator, a manager of the bucket or an admin may revoke.
    pub async fn revoke_share(&self, ctx: &RequestContext, principal: &Principal, id: &str) -> ServiceResult<()> {
        let share = self.store.share(id).await?.ok_or(ServiceError::NotFound("share"))?;
        let bucket = self.bucket_name(share.bucket_id).await?;
        let is_creator = share.created_by == principal.user_id;
        let grant = match is_creator || principal.role == Role::Admin {
            true => None,
            false => self.store.grant(share.bucket_id, principal.user_id).await?,
        };
        if rbac::share_revocation(principal.subject(), is_creator, grant) != rbac::Decision::Allow {
            // One's own link is named; anyone else's is not revealed.
            let error = match is_creator {
                true => ServiceError::Forbidden("a write-only API key does not revoke share links".into()),
                false => ServiceError::NotFound("share"),
            };
            return Err(self.deny(ctx, principal, "share.revoke", Some(&bucket), None, error).await);
        }
        let audit = ctx
            .event(self.clock.now(), principal.actor(), "share.revoke")
            .bucket(bucket)
            .key(share.key.as_str())
            .details(serde_json::json!({ "share": share.id }));
        // Revoking is idempotent: a retried DELETE of a revoked link answers 204 too.
        match self.store.revoke_share(id, &audit).await {
            Ok(()) | Err(crate::metadata::MetaError::NotFound(_)) => Ok(()),
            Err(other) => Err(other.into()),
        }
    }

    async fn share_denied(
        &self,
        ctx: &RequestContext,
        share: &ShareRecord,
        reason: &str,
        error: ServiceError,
    ) -> ServiceError {
        self.record_share_refusal(ctx, share, reason).await;
        error
    }

    async fn record_share_refusal(&self, ctx: &RequestContext, share: &ShareRecord, reason: &str) {
        let bucket = self.bucket_name(share.bucket_id).await.unwrap_or_default();
        let event = ctx
            .event(self.clock.now(), &format!("share:{}", share.id), "share.access")
            .bucket(bucket)
            .key(share.key.as_str())
            .outcome(Outcome::Denied)
            .details(serde_json::json!({ "reason": reason }));
        if let Err(audit_error) = self.store.append_audit(&event).await {
            tracing::warn!(error = %audit_error, "could not record a refused share access");
        }
    }

    /// 410 when the link has nothing left for a read that would make `claim`
    /// (the claim itself checks again, atomically): a continuation past the
    /// link's bytes; anything else once every download is used.
    async fn refuse_if_used_up(
        &self,
        ctx: &RequestContext,
        share: &ShareRecord,
        claim: Option<ShareClaim>,
    ) -> ServiceResult<()> {
        let Some(max) = share.max_downloads else { return Ok(()) };
        let used_up = match claim {
            Some(ShareClaim::Continuation { bytes, budget }) => share.range_bytes > budget.saturating_sub(bytes),
            _ => share.downloads >= max,
        };
        if used_up {
            let error = ServiceError::Gone("this link has been used up".into());
            return Err(self.share_denied(ctx, share, "exhausted", error).await);
        }
        Ok(())
    }

    /// The share's object, if the link is live and its creator may still read it.
    async fn shared_object(&self, ctx: &RequestContext, share: &ShareRecord) -> ServiceResult<(ObjectRecord, String)> {
        let now = self.clock.now();
        if share.revoked_at.is_some() {
            return Err(self
                .share_denied(ctx, share, "revoked", ServiceError::Gone("this link was revoked".into()))
                .await);
        }
        if share.expires_at.is_some_and(|at| at <= now) {
            return Err(self
                .share_denied(ctx, share, "expired", ServiceError::Gone("this link has expired".into()))
                .await);
        }
        let creator = self.store.user_by_id(share.created_by).await?.filter(|u| !u.disabled);
        let grant = self.store.grant(share.bucket_id, share.created_by).await?;
        let key_live = match &share.api_key_id {
            Some(id) => self
                .store
                .api_key_by_id(id)
                .await?
                // A write-only key never could read what it would share (links made before that rule).
                .is_some_and(|key| {
                    key.scopes.read && key.revoked_at.is_none() && key.expires_at.is_none_or(|at| at > now)
                }),
            None => true,
        };
        let still_allowed = key_live && creator.is_some_and(|u| rbac::bucket_permission(u.role, grant).is_some());
        if !still_allowed {
            let error = ServiceError::Gone("this link is no longer valid".into());
            return Err(self.share_denied(ctx, share, "creator lost access", error).await);
        }
        let bucket = self.bucket_name(share.bucket_id).await?;
        let object = self.store.live_object(share.bucket_id, &share.key).await?;
        match object {
            Some(object) => Ok((object, bucket)),
            None => Err(self.share_denied(ctx, share, "object gone", ServiceError::NotFound("object")).await),
        }
    }

    /// The 256 px preview of a shared image: for a link without a password,
    /// to whoever holds it (counted as no download, not audited: derived
    /// data). Behind a password, the preview is the content (a scanned ID
    /// card, a contract): it needs the password like the file.
    pub async fn share_thumbnail(
        &self,
        ctx: &RequestContext,
        token: &str,
        password: Option<&SecretString>,
        if_none_match: Option<&str>,
    ) -> ServiceResult<crate::service::thumbnails::Thumbnail> {
        let share = self.store.share_by_token(&digest(token)).await?.ok_or(ServiceError::NotFound("share"))?;
        self.refuse_if_used_up(ctx, &share, None).await?;
        let (object, _) = self.shared_object(ctx, &share).await?;
        if !self.password_accepted(ctx, &share, password).await? {
            return Err(ServiceError::Unauthenticated("this link needs a password (header X-Share-Password)".into()));
        }
        if !previewable(&object.content_type) {
            return Err(ServiceError::UnsupportedMediaType("only images have a preview".into()));
        }
        let preview = (crate::service::jobs::COMMON_SIZE, crate::media::thumbnail::ThumbFormat::Webp);
        self.thumbnail_of(&object, preview, if_none_match).await
    }

    /// Whether `password` opens `share` (always, for a link without one). Each
    /// guess is counted before it is checked, like a login's: a locked link
    /// answers 429, whatever the guess.
    async fn password_accepted(
        &self,
        ctx: &RequestContext,
        share: &ShareRecord,
        password: Option<&SecretString>,
    ) -> ServiceResult<bool> {
        let (Some(hash), Some(password)) = (&share.password_hash, password) else {
            return Ok(share.password_hash.is_none());
        };
        let detail = "too many wrong passwords for this link; try again later";
        let claims = match self.claim_guess(&[(ThrottleScope::Share, share.id.as_str())], detail).await {
            Ok(claims) => claims,
            Err(error) => return Err(self.share_denied(ctx, share, "locked", error).await),
        };
        if !self.identity.passwords.verify(password, Some(hash)).await? {
            self.guess_was_wrong(claims).await?;
            self.record_share_refusal(ctx, share, "wrong password").await;
            return Ok(false);
        }
        self.guess_was_right(claims).await?;
        Ok(true)
    }

    pub async fn open_share(
        &self,
        ctx: &RequestContext,
        token: &str,
        password: Option<&SecretString>,
        request: &ReadRequest<'_>,
    ) -> ServiceResult<ShareOpen> {
        let share = self.store.share_by_token(&digest(token)).await?.ok_or(ServiceError::NotFound("share"))?;
        // Whether the read draws on downloads is known from the request alone,
        // and then asked before any lookup (a used-up link costs nothing more);
        // a range needs the object's size to tell.
        let checked_early = !may_continue_a_download(request);
        if checked_early {
            self.refuse_if_used_up(ctx, &share, None).await?;
        }
        let (object, bucket) = self.shared_object(ctx, &share).await?;
        let claim = claim_of(&share, &object, request);
        if !checked_early {
            self.refuse_if_used_up(ctx, &share, claim).await?;
        }
        let file = || SharedFile { file_name: object.key.file_name().to_owned(), size: object.size };
        if share.password_hash.is_some() {
            let Some(password) = password else {
                return Ok(ShareOpen::NeedsPassword(file()));
            };
            if !self.password_accepted(ctx, &share, Some(password)).await? {
                return Ok(ShareOpen::WrongPassword(file()));
            }
        }
        // A read is claimed before any byte is fetched, so that a used-up
        // link neither reads the backend nor records a read. Requests that
        // will send no body (HEAD, 304, 412, 416) claim nothing, so they never
        // hold the last download while a real one asks; one that fails to
        // send its body after all (a backend failure) gives its claim back.
        let now = self.clock.now();
        if let Some(claim) = claim
            && !self.store.claim_share_read(&share.id, now, claim).await?
        {
            let error = ServiceError::Gone("this link has been used up".into());
            return Err(self.share_denied(ctx, &share, "exhausted", error).await);
        }
        let actor = format!("share:{}", share.id);
        let validators = super::objects::validator_text(&object);
        let object = std::sync::Arc::new(object);
        let reopen = false; // the claim was made against this version
        let opened = self.open_version(ctx, &actor, object, validators, request, &bucket, reopen).await;
        let sent_nothing = opened.as_ref().map_or(true, |read| read.body.is_none());
        if let Some(claim) = claim.filter(|_| sent_nothing) {
            self.store.release_share_read(&share.id, claim).await?;
        }
        let read = opened?;
        if read.body.is_some() {
            let event = ctx
                .event(now, &actor, "share.access")
                .bucket(bucket)
                .key(share.key.as_str())
                .details(serde_json::json!({ "share": share.id }));
            self.reads.record(event);
        }
        Ok(ShareOpen::Object(read))
    }
}

/// What a read of `object` through `share` draws on, if it sends bytes: a
/// read from the first byte is a download; a range from further on continues
/// one (a resumed download, a seek in a video, a segment of a parallel
/// download) and draws on the link's budget of downloads × size bytes, so
/// that ranges neither use up a link nor read past its limit.
fn claim_of(share: &ShareRecord, object: &ObjectRecord, request: &ReadRequest<'_>) -> Option<ShareClaim> {
    match super::objects::bytes_to_send(object, request)? {
        ReadOutcome::Partial { start, end_inclusive } if start > 0 => Some(ShareClaim::Continuation {
            bytes: i64::try_from(end_inclusive - start + 1).unwrap_or(i64::MAX),
            budget: share.max_downloads.map_or(i64::MAX, |max| max.saturating_mul(object.size)),
        }),
        _ => Some(ShareClaim::Download),
    }
}

/// Whether the request's range, as written, could continue a download (start
/// after the first byte), before the object's size resolves it.
fn may_continue_a_download(request: &ReadRequest<'_>) -> bool {
    request
        .range
        .and_then(ByteRange::parse_header)
        .is_some_and(|range| !matches!(range, ByteRange::From(0) | ByteRange::FromTo(0, _)))
}

/// Whether the password page may show a preview of this type (raster images only).
pub fn previewable(content_type: &str) -> bool {
    content_type.starts_with("image/") && !content_type.starts_with("image/svg")
}
