//! Audit records and their hash chain: `hash = SHA-256(prev_hash ‖ canonical(record))`.
//!
//! The canonical encoding is a JSON array of the fields in a fixed order with
//! `details` serialized with sorted keys, so any replica computes the same bytes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash that precedes the first record (and follows a purge's re-anchor).
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "success" => Some(Self::Success),
            "denied" => Some(Self::Denied),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// An event to record; the store assigns id, prev_hash and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub outcome: Outcome,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

impl AuditEntry {
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The event's details; over `MAX_DETAILS_BYTES` serialized (lifecycle
    /// rules can be large), their size and SHA-256 stand in for them, so that
    /// reading, exporting or verifying the trail a batch at a time stays
    /// bounded in memory whatever a client stored.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = if serialized_len(&details) > MAX_DETAILS_BYTES {
            let text = details.to_string();
            serde_json::json!({
                "truncated": true,
                "bytes": text.len(),
                "sha256": hex::encode(Sha256::digest(text.as_bytes())),
            })
        } else {
            details
        };
        self
    }
}

/// Bytes of `value` serialized, counted without building the text.
fn serialized_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The most an event's details take, serialized.
pub const MAX_DETAILS_BYTES: usize = 16 * 1024;

/// A stored, chained event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub outcome: Outcome,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    /// Chains `entry` after a record whose hash is `prev_hash`, as record `id`.
    pub fn chain(id: i64, entry: AuditEntry, prev_hash: &str) -> Self {
        let mut record = Self {
            id,
            at: entry.at,
            actor: entry.actor,
            action: entry.action,
            bucket: entry.bucket,
            key: entry.key,
            outcome: entry.outcome,
            ip: entry.ip,
            user_agent: entry.user_agent,
            request_id: entry.request_id,
            details: entry.details,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        record.hash = record.expected_hash();
        record
    }

    /// The hash this record must carry given its content and `prev_hash`.
    pub fn expected_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.id,
            self.at.timestamp_micros(),
            self.actor,
            self.action,
            self.bucket,
            self.key,
            self.outcome.as_str(),
            self.ip,
            self.user_agent,
            self.request_id,
            self.details.to_string(),
        ]);
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(canonical.to_string().as_bytes());
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_details_are_replaced_by_their_digest() {
        let small = serde_json::json!({"rules": "x".repeat(100)});
        assert_eq!(entry("a").details(small.clone()).details, small);
        let large = serde_json::json!({"rules": "\\".repeat(MAX_DETAILS_BYTES)});
        let kept = entry("a").details(large.clone()).details;
        assert_eq!(kept["truncated"], true);
        assert_eq!(kept["bytes"].as_u64(), Some(large.to_string().len() as u64));
        assert_eq!(kept["sha256"].as_str().map(str::len), Some(64));
    }

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            at: DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap_or_default(),
            actor: "alice".into(),
            action: action.into(),
            bucket: Some("photos".into()),
            key: None,
            outcome: Outcome::Success,
            ip: None,
            user_agent: None,
            request_id: Some("r1".into()),
            details: serde_json::json!({"b": 1, "a": [1, 2]}),
        }
    }

    #[test]
    fn chain_links_and_detects_edits() {
        let first = AuditRecord::chain(1, entry("bucket.create"), GENESIS_HASH);
        let second = AuditRecord::chain(2, entry("object.put"), &first.hash);
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(second.hash, second.expected_hash());
        let mut edited = second.clone();
        edited.actor = "mallory".into();
        assert_ne!(edited.expected_hash(), second.hash);
        let mut moved = second;
        moved.id = 3;
        assert_ne!(moved.expected_hash(), moved.hash);
    }

    #[test]
    fn details_key_order_does_not_matter() {
        let mut reordered = entry("x");
        reordered.details = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap_or_default();
        assert_eq!(
            AuditRecord::chain(1, entry("x"), GENESIS_HASH).hash,
            AuditRecord::chain(1, reordered, GENESIS_HASH).hash
        );
    }
}
