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

async fn probe<E: std::fmt::Display>(limit: Duration, check: impl Future<Output = Result<(), E>>) -> CheckStatus {
    match tokio::time::timeout(limit, check).await {
        Ok(Ok(())) => CheckStatus::Ok("ok"),
        Ok(Err(error)) => CheckStatus::Failed(error.to_string()),
        Err(_) => CheckStatus::Failed(format!("no answer within {} ms", limit.as_millis())),
    }
}

impl Services {
    pub async fn readiness(&self) -> Readiness {
        let limit = self.config.readiness_timeout;
        let (database, storage, cache) = tokio::join!(
            probe(limit, self.store.ping()),
            probe(limit, self.blobs.check()),
            probe(limit, self.cache.ping()),
        );
        Readiness { checks: BTreeMap::from([("database", database), ("storage", storage), ("cache", cache)]) }
    }
}
