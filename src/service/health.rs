//! Readiness: database, storage and cache probed concurrently, each with a short timeout.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::Services;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CheckStatus {
    Ok(&'static str),
    Failed(String),
}

impl CheckStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub checks: BTreeMap<&'static str, CheckStatus>,
    /// `gateway`, or `gateway+backend` when the backend's Object Lock mirrors retention.
    pub retention_enforcement: &'static str,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.values().all(CheckStatus::is_ok)
    }

    /// "storage: ..." for each failing check, joined.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter_map(|(name, status)| match status {
                CheckStatus::Failed(why) => Some(format!("{name}: {why}")),
                CheckStatus::Ok(_) => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One check's state. The answer is public: the reason (paths, bucket names,
/// driver messages) goes to the log, the caller learns only that it failed.
async fn probe<E: std::fmt::Display>(
    name: &'static str,
    limit: Duration,
    check: impl Future<Output = Result<(), E>>,
) -> CheckStatus {
    match tokio::time::timeout(limit, check).await {
        Ok(Ok(())) => CheckStatus::Ok("ok"),
        Ok(Err(error)) => {
            tracing::warn!(check = name, error = %error, "readiness check failed");
            CheckStatus::Failed("unavailable".into())
        }
        Err(_) => CheckStatus::Failed(format!("no answer within {} ms", limit.as_millis())),
    }
}

impl Services {
    pub async fn readiness(&self) -> Readiness {
        let limit = self.config.readiness_timeout;
        let (database, storage, cache, retention_enforcement) = tokio::join!(
            probe("database", limit, self.store.ping()),
            probe("storage", limit, self.blobs.check()),
            probe("cache", limit, self.cache.ping()),
            self.retention_enforcement(),
        );
        // Without its cache Coffer still serves (bypassing it), so by default that is degraded, not down.
        let cache = match cache {
            CheckStatus::Failed(why) if !self.config.cache_required => {
                tracing::warn!(reason = %why, "cache unreachable; serving without it");
                CheckStatus::Ok("degraded")
            }
            other => other,
        };
        Readiness {
            checks: BTreeMap::from([("database", database), ("storage", storage), ("cache", cache)]),
            retention_enforcement,
        }
    }

    /// Who enforces retention: Coffer always; the backend too when its Object Lock is on.
    pub async fn retention_enforcement(&self) -> &'static str {
        let limit = self.config.readiness_timeout;
        match tokio::time::timeout(limit, self.blobs.object_lock()).await {
            Ok(true) => "gateway+backend",
            _ => "gateway",
        }
    }
}
