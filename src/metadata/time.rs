//! Timestamps are stored as microseconds since the Unix epoch (BIGINT) on both engines.

use chrono::{DateTime, Utc};

pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}
