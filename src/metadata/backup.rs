//! The portable metadata backup format (JSON lines), shared by both engines:
//! a header, one line per row in foreign-key order, and a trailer that proves
//! the file is whole. Times are already integers (microseconds) in both
//! schemas, so rows move between SQLite and PostgreSQL unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Format version of the file itself (not of the schema).
pub const FORMAT: u32 = 1;

/// Tables in an order where every reference points backwards. Any table the
/// schema gains later that is not listed goes last, in name order.
pub const TABLE_ORDER: [&str; 20] = [
    "users",
    "buckets",
    "grants",
    "objects",
    "uploads",
    "upload_parts",
    "direct_part_reservations",
    "completed_uploads",
    "audit_events",
    "audit_chain_head",
    "audit_anchor",
    "refresh_tokens",
    "api_keys",
    "totp_credentials",
    "recovery_codes",
    "mfa_challenges",
    "login_throttle",
    "shares",
    "leases",
    "jobs",
];

/// Orders the schema's tables for dumping and loading.
pub fn ordered_tables(mut tables: Vec<String>) -> Vec<String> {
    tables.retain(|t| t != "_sqlx_migrations" && !t.starts_with("sqlite_"));
    tables.sort_by_key(|t| (TABLE_ORDER.iter().position(|o| o == t).unwrap_or(usize::MAX), t.clone()));
    tables
}

/// How a column's values are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Integer,
    Boolean,
    Text,
}

impl ColumnKind {
    /// From a declared type, in either engine's spelling.
    pub fn of(declared: &str) -> Self {
        let declared = declared.to_ascii_uppercase();
        if declared.contains("BOOL") {
            Self::Boolean
        } else if declared.contains("INT") {
            Self::Integer
        } else {
            Self::Text
        }
    }
}

/// One line of a backup file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Line {
    Header {
        coffer_backup: u32,
        created_at: String,
        engine: String,
        /// The newest migration applied to the source.
        schema: i64,
    },
    Row {
        table: String,
        row: serde_json::Map<String, serde_json::Value>,
    },
    Trailer {
        end: bool,
        rows: u64,
        /// The last id each table's identity handed out, deleted rows
        /// included: a restore continues after it, so an id once given (to
        /// a user whose tokens may still circulate) is never given again.
        /// Absent in files from before it was recorded.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        identities: BTreeMap<String, i64>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BackupSummary {
    pub tables: usize,
    pub rows: u64,
    pub schema: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a Coffer backup: {0}")]
    Format(String),
    #[error("the backup is incomplete (no trailer, or fewer rows than it announces)")]
    Truncated,
    #[error("restore needs an empty database; this one already holds {0}")]
    NotEmpty(String),
    #[error("the backup comes from a newer schema ({backup}) than this Coffer ({current}); upgrade Coffer first")]
    NewerSchema { backup: i64, current: i64 },
    #[error(transparent)]
    Database(#[from] super::MetaError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_in_reference_order_with_unknown_ones_last() {
        let found = ["jobs", "zeta", "users", "_sqlx_migrations", "objects", "buckets", "alpha"];
        let ordered = ordered_tables(found.iter().map(|t| t.to_string()).collect());
        assert_eq!(ordered, ["users", "buckets", "objects", "jobs", "alpha", "zeta"]);
    }

    #[test]
    fn declared_types_of_both_engines() {
        assert_eq!(ColumnKind::of("BIGINT"), ColumnKind::Integer);
        assert_eq!(ColumnKind::of("bigint"), ColumnKind::Integer);
        assert_eq!(ColumnKind::of("INTEGER"), ColumnKind::Integer);
        assert_eq!(ColumnKind::of("boolean"), ColumnKind::Boolean);
        assert_eq!(ColumnKind::of("TEXT"), ColumnKind::Text);
        assert_eq!(ColumnKind::of("text"), ColumnKind::Text);
    }

    #[test]
    fn lines_round_trip() {
        let lines = [
            Line::Header { coffer_backup: FORMAT, created_at: "t".into(), engine: "sqlite".into(), schema: 7 },
            Line::Row {
                table: "users".into(),
                row: serde_json::json!({"id": 1}).as_object().cloned().unwrap_or_default(),
            },
            Line::Trailer { end: true, rows: 1, identities: BTreeMap::from([("users".to_owned(), 3)]) },
            Line::Trailer { end: true, rows: 0, identities: BTreeMap::new() },
        ];
        for line in lines {
            let text = serde_json::to_string(&line).expect("encode");
            assert_eq!(serde_json::from_str::<Line>(&text).expect("decode"), line);
        }
    }
}
