//! Audit records and their keyed hash chain:
//! `hash = HMAC-SHA-256(chain key, prev_hash ‖ canonical(record))`, and the
//! sealed anchor the chain starts from.
//!
//! The canonical encoding is a JSON array of the fields in a fixed order with
//! `details` serialized with sorted keys, so any replica computes the same bytes.
//! Events of a chain not sealed yet, and those written before it was (ids
//! below the anchor's `keyed_from`), carry the plain `SHA-256(prev_hash ‖
//! canonical)`: a new database's chain is sealed before its first event, an
//! older one by `coffer audit seal` once every replica runs a keyed version.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The secret the chain is keyed with (derived from the master key, never
/// stored in the database): whoever can write the database but lacks it can
/// neither append nor edit an event, nor move the anchor, so that the chain
/// still verifies.
#[derive(Clone)]
pub struct ChainKey(Arc<SecretBox<[u8; 32]>>);

impl ChainKey {
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self(Arc::new(key))
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        // HMAC takes keys of any length: this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret()) else {
            unreachable!("HMAC accepts a 32-byte key")
        };
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(..)")
    }
}

/// Where the kept chain starts: the first event's id and the hash it links
/// to and, once sealed, the first id that is keyed and a seal over the three
/// under the chain key. Purges move it (and seal it again); nothing else may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAnchor {
    pub first_id: i64,
    pub prev_hash: String,
    /// Events from this id on are keyed; earlier ones predate the seal.
    /// `None` until the chain is sealed: every event is keyless then.
    pub keyed_from: Option<i64>,
    pub seal: Option<String>,
}

impl AuditAnchor {
    fn expected_seal(&self, keyed_from: i64, key: &ChainKey) -> String {
        let fields = format!("{}\n{}\n{keyed_from}", self.first_id, self.prev_hash);
        key.mac(&[b"coffer audit anchor v1\n", fields.as_bytes()])
    }

    /// This anchor sealed, with events keyed from `keyed_from` on.
    pub fn sealed(mut self, keyed_from: i64, key: &ChainKey) -> Self {
        self.seal = Some(self.expected_seal(keyed_from, key));
        self.keyed_from = Some(keyed_from);
        self
    }

    /// Whether the chain is as migrations created it, given its head: no
    /// event was ever appended, nothing moved, nothing sealed.
    pub fn as_created(&self, head: (i64, &str)) -> bool {
        head == (0, GENESIS_HASH)
            && (self.first_id, self.prev_hash.as_str()) == (1, GENESIS_HASH)
            && !self.claims_seal()
    }

    /// Whether the anchor claims a seal at all (either field set): a claim
    /// that must then hold.
    pub fn claims_seal(&self) -> bool {
        self.keyed_from.is_some() || self.seal.is_some()
    }

    /// Whether the seal is the chain key's own over these fields.
    pub fn seal_holds(&self, key: &ChainKey) -> bool {
        let (Some(keyed_from), Some(seal)) = (self.keyed_from, self.seal.as_deref()) else {
            return false;
        };
        let expected = self.expected_seal(keyed_from, key);
        bool::from(subtle::ConstantTimeEq::ct_eq(seal.as_bytes(), expected.as_bytes()))
    }
}

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
    /// Chains `entry` after a record whose hash is `prev_hash`, as record
    /// `id`: keyed with `key`, or keyless on a chain not sealed yet (`None`).
    pub fn chain(id: i64, entry: AuditEntry, prev_hash: &str, key: Option<&ChainKey>) -> Self {
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
        record.hash = match key {
            Some(key) => record.keyed_hash(key),
            None => record.keyless_hash(),
        };
        record
    }

    /// The hash this record must carry given its content and `prev_hash`:
    /// keyed, unless the anchor says it predates the key.
    pub fn expected_hash(&self, key: &ChainKey, anchor: &AuditAnchor) -> String {
        if anchor.keyed_from.is_some_and(|keyed_from| self.id >= keyed_from) {
            self.keyed_hash(key)
        } else {
            self.keyless_hash()
        }
    }

    fn keyed_hash(&self, key: &ChainKey) -> String {
        key.mac(&[self.prev_hash.as_bytes(), self.canonical().as_bytes()])
    }

    /// The hash anyone can compute, without the key.
    pub fn keyless_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(self.canonical().as_bytes());
        hex::encode(hasher.finalize())
    }

    fn canonical(&self) -> String {
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
        canonical.to_string()
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

    fn key(byte: u8) -> ChainKey {
        ChainKey::new(SecretBox::new(Box::new([byte; 32])))
    }

    fn unsealed() -> AuditAnchor {
        AuditAnchor { first_id: 1, prev_hash: GENESIS_HASH.into(), keyed_from: None, seal: None }
    }

    fn anchor(keyed_from: i64) -> AuditAnchor {
        unsealed().sealed(keyed_from, &key(1))
    }

    #[test]
    fn chain_links_and_detects_edits() {
        let (key, anchor) = (key(1), anchor(1));
        let first = AuditRecord::chain(1, entry("bucket.create"), GENESIS_HASH, Some(&key));
        let second = AuditRecord::chain(2, entry("object.put"), &first.hash, Some(&key));
        assert_eq!(second.prev_hash, first.hash);
        assert_eq!(second.hash, second.expected_hash(&key, &anchor));
        let mut edited = second.clone();
        edited.actor = "mallory".into();
        assert_ne!(edited.expected_hash(&key, &anchor), second.hash);
        let mut moved = second;
        moved.id = 3;
        assert_ne!(moved.expected_hash(&key, &anchor), moved.hash);
    }

    #[test]
    fn only_the_key_makes_a_hash_that_verifies() {
        let record = AuditRecord::chain(5, entry("object.put"), GENESIS_HASH, Some(&key(1)));
        assert_eq!(record.hash, record.expected_hash(&key(1), &anchor(1)));
        // Another key, or the keyless formula a database writer could compute, does not verify.
        assert_ne!(record.hash, record.expected_hash(&key(2), &anchor(1)));
        let mut forged = record.clone();
        forged.hash = forged.keyless_hash();
        assert_ne!(forged.hash, forged.expected_hash(&key(1), &anchor(1)));
        // Events before `keyed_from`, and every event of an unsealed chain, carry the keyless hash.
        assert_eq!(forged.hash, forged.expected_hash(&key(1), &anchor(6)));
        assert_eq!(forged.hash, forged.expected_hash(&key(1), &unsealed()));
        let keyless = AuditRecord::chain(5, entry("object.put"), GENESIS_HASH, None);
        assert_eq!(keyless.hash, forged.hash);
    }

    #[test]
    fn the_anchor_seal_covers_every_field() {
        let sealed = anchor(3);
        assert!(sealed.claims_seal() && sealed.seal_holds(&key(1)));
        assert!(!sealed.seal_holds(&key(2)));
        assert!(!unsealed().claims_seal() && !unsealed().seal_holds(&key(1)), "an unsealed anchor does not hold");
        for moved in [
            AuditAnchor { first_id: 2, ..sealed.clone() },
            AuditAnchor { prev_hash: "ab".repeat(32), ..sealed.clone() },
            AuditAnchor { keyed_from: Some(9), ..sealed.clone() },
            AuditAnchor { keyed_from: None, ..sealed.clone() },
            AuditAnchor { seal: None, ..sealed.clone() },
        ] {
            assert!(moved.claims_seal() && !moved.seal_holds(&key(1)), "{moved:?}");
        }
    }

    #[test]
    fn details_key_order_does_not_matter() {
        let mut reordered = entry("x");
        reordered.details = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap_or_default();
        assert_eq!(
            AuditRecord::chain(1, entry("x"), GENESIS_HASH, Some(&key(1))).hash,
            AuditRecord::chain(1, reordered, GENESIS_HASH, Some(&key(1))).hash
        );
    }
}
