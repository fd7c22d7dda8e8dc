//! HTTP entity-tag lists (`If-Match`, `If-None-Match`, `If-Range`) per RFC 9110 §13.

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
    use super::etag_matches;

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
