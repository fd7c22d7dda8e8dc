//! HTTP entity-tag lists (`If-Match`, `If-None-Match`, `If-Range`) per RFC
//! 9110 §13, and the validators an answer carries (§8.8).

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// An object's validators as the text of its `ETag` (the strong tag, quoted)
/// and `Last-Modified` (an IMF-fixdate, whole seconds). A warm read keeps
/// them with what it remembers, so they are written once, not per answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorText {
    pub etag: Option<Bytes>,
    pub last_modified: Bytes,
}

impl ValidatorText {
    pub fn new(etag: Option<&str>, modified: DateTime<Utc>) -> Self {
        Self {
            etag: etag.map(Self::quoted_etag),
            last_modified: Bytes::from(httpdate::fmt_http_date(std::time::SystemTime::from(modified))),
        }
    }

    /// A stored (unquoted) entity tag as an `ETag` value: `"…"`.
    pub fn quoted_etag(etag: &str) -> Bytes {
        Bytes::from(format!("\"{etag}\""))
    }
}

/// Whether `header` (`*`, or a comma-separated list of entity tags) matches `etag`.
/// `weak` allows weak comparison (`W/"x"` matches `"x"`), as `If-None-Match` does.
pub fn etag_matches(header: &str, etag: &str, weak: bool) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    header.split(',').map(str::trim).any(|candidate| {
        let (is_weak, tag) = match candidate.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, candidate),
        };
        if is_weak && !weak {
            return false;
        }
        tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(etag)
    })
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::{ValidatorText, etag_matches};

    #[test]
    fn validators_are_a_quoted_tag_and_an_imf_fixdate() {
        let modified = DateTime::parse_from_rfc3339("2026-12-01T08:09:10.750Z").expect("date").to_utc();
        let text = ValidatorText::new(Some("abc"), modified);
        assert_eq!(text.etag.as_deref(), Some(&b"\"abc\""[..]));
        assert_eq!(&text.last_modified[..], b"Tue, 01 Dec 2026 08:09:10 GMT");
        assert_eq!(ValidatorText::new(None, modified).etag, None);
    }

    #[test]
    fn lists_wildcards_and_weakness() {
        assert!(etag_matches("\"abc\"", "abc", false));
        assert!(etag_matches("\"x\", \"abc\"", "abc", false));
        assert!(etag_matches("*", "abc", false));
        assert!(etag_matches("W/\"abc\"", "abc", true));
        assert!(!etag_matches("W/\"abc\"", "abc", false));
        assert!(!etag_matches("abc", "abc", false), "unquoted tags are not tags");
        assert!(!etag_matches("\"abcd\"", "abc", true));
    }
}
