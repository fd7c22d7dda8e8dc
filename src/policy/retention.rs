//! Retention and legal hold decisions (S3 Object Lock semantics), pure.

use chrono::{DateTime, Utc};

use crate::metadata::ObjectRecord;

/// An object under an unexpired retention period or a legal hold cannot be
/// deleted, overwritten or expired.
pub fn is_locked(object: &ObjectRecord, now: DateTime<Utc>) -> bool {
    object.legal_hold || object.retain_until.is_some_and(|until| until > now)
}
