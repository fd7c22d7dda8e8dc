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

/// The preconditions a write (PUT, DELETE) was sent with, RFC 9110 §13.1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_unmodified_since: Option<DateTime<Utc>>,
}

impl WriteConditions {
    /// Whether the write may replace `current`, the live version's entity tag
    /// and time of writing (`None`: the key has none), in §13.2.2's order.
    pub fn allow(&self, current: Option<(&str, DateTime<Utc>)>) -> bool {
        if let Some(header) = &self.if_match {
            if !current.is_some_and(|(etag, _)| etag_matches(header, etag, false)) {
                return false;
            }
        } else if let (Some(since), Some((_, written))) = (self.if_unmodified_since, current)
            && written.timestamp() > since.timestamp()
        {
            return false;
        }
        match (&self.if_none_match, current) {
            (Some(header), Some((etag, _))) => !etag_matches(header, etag, true),
            _ => true,
        }
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

    use super::{ValidatorText, WriteConditions, etag_matches};

    #[test]
    fn writes_go_ahead_only_over_the_version_they_name() {
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time");
        let live = Some(("abc", at(0)));
        let none = WriteConditions::default();
        assert!(none.allow(live) && none.allow(None));
        let create_only = WriteConditions { if_none_match: Some("*".into()), ..WriteConditions::default() };
        assert!(!create_only.allow(live) && create_only.allow(None));
        let if_match = |h: &str| WriteConditions { if_match: Some(h.into()), ..WriteConditions::default() };
        assert!(if_match("\"abc\"").allow(live));
        assert!(!if_match("\"old\"").allow(live), "someone else wrote since");
        assert!(!if_match("*").allow(None), "If-Match needs a live version");
        assert!(!if_match("W/\"abc\"").allow(live), "If-Match compares strongly");
        let if_none = WriteConditions { if_none_match: Some("W/\"abc\"".into()), ..WriteConditions::default() };
        assert!(!if_none.allow(live) && if_none.allow(Some(("def", at(0)))));
        let unmodified = |s| WriteConditions { if_unmodified_since: Some(at(s)), ..WriteConditions::default() };
        assert!(unmodified(0).allow(live) && !unmodified(-1).allow(live) && unmodified(-1).allow(None));
        let both = WriteConditions {
            if_match: Some("\"abc\"".into()),
            if_unmodified_since: Some(at(-1)),
            ..WriteConditions::default()
        };
        assert!(both.allow(live), "If-Unmodified-Since is ignored when If-Match is sent");
    }

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
