//! Use cases: authorize → policy → storage → metadata → audit → cache.
//!
//! `Services` holds the ports; each file adds the use cases of one area as
//! methods. Nothing here knows about HTTP.

pub mod account;
pub mod audit;
pub mod auth;
pub mod buckets;
pub mod clock_alignment;
pub mod context;
pub mod digest;
mod error;
mod guesses;
mod health;
pub mod identity;
pub mod jobs;
pub mod lifecycle;
mod lock_mirror;
pub mod lookups;
pub mod objects;
pub mod presign;
pub mod rate_limits;
pub mod read_log;
mod read_memo;
pub mod reconcile;
mod republish;
mod request_memory;
pub mod retention;
pub(crate) mod scopes;
pub mod shares;
pub mod signing;
pub mod thumbnails;
pub mod uploads;
pub mod users;

use std::sync::Arc;

pub use context::{Principal, RequestContext};
pub(crate) use error::OBJECT_DATA;
pub use error::ServiceError;
pub use health::{CheckStatus, Readiness};
pub use identity::Identity;
pub use request_memory::{current_request_id, within_request};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Config;
use crate::metadata::MetadataStore;
use crate::storage::BlobStore;

pub type ServiceResult<T> = Result<T, ServiceError>;

pub struct Services {
    pub config: Arc<Config>,
    pub store: Arc<dyn MetadataStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub cache: Arc<dyn Cache>,
    pub clock: Arc<dyn Clock>,
    pub identity: Identity,
    pub reads: read_log::ReadLog,
    pub signer: signing::UrlSigner,
    /// The address actually bound, when `public_url` is not configured (port 0 in tests).
    pub bound_url: std::sync::OnceLock<String>,
    pub thumbnails: crate::media::Thumbnails,
    pub metrics: crate::metrics::Metrics,
    /// Rate-limit state used while the shared cache is unreachable.
    pub local_rates: crate::cache::LocalRates,
    /// This process's identity among replicas (lease holder name).
    pub instance: String,
    /// Rarely changing facts this process has seen, to save cache round trips.
    pub hints: lookups::LocalHints,
    /// Where the versions of cache scopes are kept (see `ScopeVersions`).
    pub(crate) scope_versions: scopes::ScopeVersions,
}

impl Services {
    /// Base URL for links handed to clients: `public_url`, else where the server listens.
    pub fn public_url(&self) -> String {
        match (&self.config.public_url, self.bound_url.get()) {
            (None, Some(bound)) => bound.clone(),
            _ => self.config.effective_public_url(),
        }
    }

    /// Base URL for links that serve user content (presigned downloads, share
    /// links): `content_origin` when configured, else `public_url()`.
    pub fn content_url(&self) -> String {
        match &self.config.content_origin {
            Some(origin) => origin.trim_end_matches('/').to_owned(),
            None => self.public_url(),
        }
    }
}
