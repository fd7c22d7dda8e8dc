//! Presigned URLs for apps: gateway URLs (signed by Coffer, audited on every
//! use, void as soon as the signer or their key is), or — where the admins
//! allow it and the backend is S3 — the backend's own presigned URLs.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use super::context::{Principal, RequestContext};
use super::objects::{parse_key, write_error};
use super::signing::{Claim, SignedParams};
use super::uploads::{UploadAccess, upload_completing};
use super::{ServiceError, ServiceResult, Services};
use crate::config::{StorageKind, TransferMode};
use crate::domain::Permission;
use crate::domain::audit::Outcome;
use crate::metadata::MetaError;
use crate::policy::content::content_disposition;
use crate::policy::rbac::Via;
use crate::storage::{PresignTarget, SigningWindow};

pub const MAX_EXPIRY_SECONDS: i64 = 7 * 24 * 3600;
const PART_URL_TTL: Duration = Duration::hours(1);

/// Unreserved characters and `/` stay as they are in object paths.
const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/api/v1/buckets/{bucket}/objects/{}", utf8_percent_encode(key, PATH))
}

#[derive(Debug, Clone, Serialize)]
pub struct Presigned {
    pub url: String,
    pub method: &'static str,
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
    pub transfer_mode: TransferMode,
}

const EXPIRED: &str = "the signed URL has expired";
/// Every other refusal of a signed URL reads the same.
const FORGED: &str = "the signed URL is not valid";

impl Services {
    /// The transfer mode a request gets: the configured default, or `direct` when asked and allowed.
    fn transfer_mode(&self, requested: Option<TransferMode>) -> ServiceResult<TransferMode> {
        let mode = requested.unwrap_or(self.config.transfer_mode);
        if mode == TransferMode::Direct {
            if self.config.storage != StorageKind::S3 {
                return Err(ServiceError::bad_request("direct-unavailable", "direct transfer needs an S3 backend"));
            }
            if self.config.transfer_mode != TransferMode::Direct && !self.config.allow_direct_transfer {
                return Err(ServiceError::Forbidden("direct transfer is not enabled on this server".into()));
            }
        }
        Ok(mode)
    }

    /// When a URL asked to last until `wanted` expires: never after the API
    /// key that signs it (a gateway URL would be refused then anyway; the
    /// backend's own URLs cannot know the key). A key revoked or expiring
    /// within the second since it authenticated this request signs nothing: 401.
    async fn url_expiry(&self, principal: &Principal, wanted: DateTime<Utc>) -> ServiceResult<DateTime<Utc>> {
        let Some(id) = &principal.api_key_id else { return Ok(wanted) };
        let key = self.store.api_key_by_id(id).await?.filter(|key| key.revoked_at.is_none());
        let key = key.ok_or_else(|| ServiceError::Unauthenticated("this API key was revoked".into()))?;
        let expires_at = key.expires_at.map_or(wanted, |until| wanted.min(until));
        if expires_at - self.clock.now() < Duration::seconds(1) {
            return Err(ServiceError::Unauthenticated("this API key expires before a URL could be used".into()));
        }
        Ok(expires_at)
    }

    fn gateway_url(
        &self,
        principal: &Principal,
        method: &'static str,
        raw_path: &str,
        expires_at: DateTime<Utc>,
    ) -> String {
        let signed = self.signer.sign(&Claim {
            method,
            raw_path,
            expires: expires_at.timestamp(),
            signer: principal.user_id,
            generation: principal.token_generation,
            api_key: principal.api_key_id.as_deref(),
        });
        let base = if method == "GET" { self.content_url() } else { self.public_url() };
        format!("{base}{raw_path}?{}", signed.to_query())
    }

    #[allow(clippy::too_many_arguments, reason = "the request's fields, each validated here")]
    pub async fn presign_object(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        key: &str,
        method: &str,
        expires_in_seconds: i64,
        requested_mode: Option<TransferMode>,
    ) -> ServiceResult<Presigned> {
        let (method, needed): (&'static str, Permission) = match method {
            "GET" => ("GET", Permission::Read),
            "PUT" => ("PUT", Permission::Write),
            _ => return Err(ServiceError::bad_request("invalid-method", "method must be GET or PUT")),
        };
        if !(1..=MAX_EXPIRY_SECONDS).contains(&expires_in_seconds) {
            return Err(ServiceError::bad_request(
                "invalid-expiry",
                "expires_in_seconds must be between 1 and 604800 (7 days)",
            ));
        }
        let (bucket_record, _) = self.authorize_bucket(ctx, principal, bucket, needed, "presign.create").await?;
        let key = parse_key(key)?;
        let mode = match self.transfer_mode(requested_mode)? {
            // A PUT never goes direct (it would bypass Coffer's records): one
            // asked for plainly takes the gateway, even where direct is the default.
            TransferMode::Direct if method == "PUT" && requested_mode.is_none() => TransferMode::Gateway,
            mode => mode,
        };
        let signed_at = self.clock.now();
        let expires_at = self.url_expiry(principal, signed_at + Duration::seconds(expires_in_seconds)).await?;
        let url = match mode {
            TransferMode::Gateway => {
                self.gateway_url(principal, method, &object_path(bucket, key.as_str()), expires_at)
            }
            TransferMode::Direct if method == "GET" => {
                let object =
                    self.store.live_object(bucket_record.id, &key).await?.ok_or(ServiceError::NotFound("object"))?;
                let lasting = (expires_at - signed_at).to_std().unwrap_or_default();
                let target = PresignTarget::Get {
                    content_disposition: content_disposition(&object.content_type, object.key.file_name(), false),
                    content_type: object.content_type.clone(),
                };
                self.blobs.presign(&object.blob_key, target, SigningWindow { from: signed_at, lasting }).await?.url
            }
            TransferMode::Direct => {
                return Err(ServiceError::bad_request(
                    "direct-put-unsupported",
                    "direct PUT would bypass Coffer's records; use a gateway URL or a multipart upload with direct parts",
                ));
            }
        };
        let event = ctx
            .event(self.clock.now(), principal.actor(), "presign.create")
            .bucket(bucket)
            .key(key.as_str())
            .details(serde_json::json!({ "method": method, "expires_at": expires_at, "transfer_mode": mode }));
        // Issuing a URL changes nothing (what it is used for is audited when
        // used), so it is queued like a read rather than written on the spot.
        self.reads.record(event);
        Ok(Presigned { url, method, headers: BTreeMap::new(), expires_at, transfer_mode: mode })
    }

    /// A URL to PUT one part of an upload to, without other credentials.
    /// A direct URL (straight to the backend) is signed for exactly `size`
    /// bytes, reserved against the uploader's quota now: Coffer never sees
    /// the part arrive. A gateway URL charges the part when it arrives.
    #[allow(clippy::too_many_arguments, reason = "a part is addressed by bucket, upload and number")]
    pub async fn presign_part(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        bucket: &str,
        upload_id: &str,
        part_number: i64,
        size: Option<i64>,
    ) -> ServiceResult<Presigned> {
        if !(1..=super::uploads::MAX_PARTS).contains(&part_number) {
            return Err(ServiceError::bad_request("invalid-part-number", "part numbers run from 1 to 10000"));
        }
        let size = size.map(|size| self.part_size(size)).transpose()?;
        let (_, upload) =
            self.own_upload(ctx, principal, (bucket, upload_id), "upload.presign_part", UploadAccess::Starter).await?;
        let mode = self.transfer_mode(None)?;
        let signed_at = self.clock.now();
        let expires_at = self.url_expiry(principal, signed_at + PART_URL_TTL).await?;
        let (url, headers) = match mode {
            TransferMode::Gateway => {
                let path = format!("/api/v1/buckets/{bucket}/uploads/{upload_id}/parts/{part_number}");
                (self.gateway_url(principal, "PUT", &path, expires_at), BTreeMap::new())
            }
            TransferMode::Direct => {
                let size = size.ok_or_else(|| {
                    ServiceError::bad_request(
                        "part-size-required",
                        "a direct part URL is signed for an exact size: send {\"size\": <bytes>}",
                    )
                })?;
                let target = PresignTarget::UploadPart {
                    upload_id: upload.backend_upload_id.clone(),
                    part_number: u32::try_from(part_number).unwrap_or_default(),
                    content_length: u64::try_from(size).unwrap_or_default(),
                };
                let window =
                    SigningWindow { from: signed_at, lasting: (expires_at - signed_at).to_std().unwrap_or_default() };
                // Signed first: a URL that could not be made reserves nothing.
                let signed = self.blobs.presign(&upload.blob_key, target, window).await?;
                let limit = self.staged_limit(&upload);
                let reserved = self.store.reserve_direct_part(&upload.id, part_number, size, limit).await;
                reserved.map_err(|error| match error {
                    MetaError::Conflict("upload-state") => upload_completing(),
                    other => write_error(other),
                })?;
                (signed.url, signed.headers.into_iter().collect())
            }
        };
        // A direct part URL's use never reaches Coffer: its issue is the only record.
        let event = ctx
            .event(self.clock.now(), principal.actor(), "presign.create")
            .bucket(bucket)
            .key(upload.key.as_str())
            .details(serde_json::json!({
                "method": "PUT", "upload_id": upload.id, "part_number": part_number,
                "expires_at": expires_at, "transfer_mode": mode, "size": size,
            }));
        self.reads.record(event);
        Ok(Presigned { url, method: "PUT", headers, expires_at, transfer_mode: mode })
    }

    /// A part size a client asked a URL for, within the limits of a part and of an object.
    fn part_size(&self, size: i64) -> ServiceResult<i64> {
        let bytes =
            u64::try_from(size).map_err(|_| ServiceError::bad_request("invalid-size", "size must not be negative"))?;
        self.check_part_length(bytes)?;
        Ok(size)
    }

    /// Authenticates a request by its gateway signature. Every failure is 403:
    /// a wrong byte, an expired URL, a disabled signer, a password reset since
    /// signing, a revoked key. Beyond expiry (which the URL shows anyway) the
    /// answer never says which, so a forged URL cannot probe accounts. The
    /// signature is checked before anything else about the signer, and only an
    /// authentic URL refused later (its key revoked or expired) is audited
    /// (`presign.rejected` with the reason): a forged one writes nothing, so it
    /// cannot plant entries under someone's name. Disabling a signer or
    /// resetting their password changes the generation the signature binds,
    /// so their old URLs fail like forgeries.
    /// A store that cannot answer is a 503, never a refusal.
    pub async fn authenticate_signed(
        &self,
        ctx: &RequestContext,
        method: &str,
        raw_path: &str,
        params: &SignedParams,
    ) -> ServiceResult<Principal> {
        let now = self.clock.now();
        let refused = |told: &str| ServiceError::Forbidden(told.into());
        if params.expires <= now.timestamp() {
            return Err(refused(EXPIRED));
        }
        let Some(user) = self.account_state(params.signer).await? else {
            return Err(refused(FORGED));
        };
        let claim = Claim {
            method,
            raw_path,
            expires: params.expires,
            signer: params.signer,
            generation: user.token_generation,
            api_key: params.api_key.as_deref(),
        };
        if !self.signer.verify(&claim, &params.signature, &params.key_id, now) {
            return Err(refused(FORGED));
        }
        let live_key = |k: &crate::metadata::ApiKeyRecord| {
            k.user_id == user.id && k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now)
        };
        let standing = match &params.api_key {
            _ if user.disabled => Err("the signer can no longer sign"),
            None => Ok(Via::Session { mfa: false }),
            Some(id) => match self.store.api_key_by_id(id).await?.filter(live_key) {
                Some(key) => Ok(Via::ApiKey { scopes: key.scopes, mfa: key.minted_with_mfa }),
                None => Err("the API key that signed this URL was revoked"),
            },
        };
        match standing {
            Ok(via) => Ok(Principal {
                user_id: user.id,
                actor_label: Some(format!("presign:{}", user.username)),
                username: user.username,
                role: user.role,
                via,
                api_key_id: params.api_key.clone(),
                token_generation: user.token_generation,
            }),
            Err(reason) => {
                let event = ctx
                    .event(now, &format!("presign:{}", params.signer), "presign.rejected")
                    .outcome(Outcome::Denied)
                    .details(serde_json::json!({ "reason": reason, "method": method }));
                self.store.append_audit(&event).await?;
                Err(refused(FORGED))
            }
        }
    }
}
