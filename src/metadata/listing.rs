//! Pure helpers for delimiter listings over a key-ordered table.

/// Where a listing query starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LowerBound {
    After(String),
    AtOrAfter(String),
}

/// The smallest string greater than every string that starts with `prefix`,
/// if one exists (it does unless the last character is U+10FFFF).
pub(super) fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let mut next = u32::from(last) + 1;
    if (0xD800..=0xDFFF).contains(&next) {
        next = 0xE000;
    }
    chars.push(char::from_u32(next)?);
    Some(chars.into_iter().collect())
}

/// The common prefix `key` rolls up into, if `delimiter` occurs after `prefix`.
pub(super) fn rollup(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(format!("{prefix}{}", &rest[..at + delimiter.len()]))
}

/// Everything past `item`: a rolled-up prefix is skipped as a whole.
pub(super) fn past(item: &str, is_prefix: bool) -> LowerBound {
    match is_prefix.then(|| successor(item)).flatten() {
        Some(next) => LowerBound::AtOrAfter(next),
        None => LowerBound::After(item.to_owned()),
    }
}

/// Where to start for a query with `prefix`, resuming after `after` (the last
/// item of the previous page, which may be a rolled-up prefix).
pub(super) fn start(prefix: &str, delimiter: Option<&str>, after: Option<&str>) -> Option<LowerBound> {
    match after {
        Some(after) if after >= prefix => {
            let was_prefix = rollup(after, prefix, delimiter).as_deref() == Some(after);
            Some(past(after, was_prefix))
        }
        _ if prefix.is_empty() => None,
        _ => Some(LowerBound::AtOrAfter(prefix.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn successor_bounds_the_prefix() {
        assert_eq!(successor("photos/").as_deref(), Some("photos0"));
        assert_eq!(successor(""), None);
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
    }

    #[test]
    fn rollup_uses_the_first_delimiter_after_the_prefix() {
        assert_eq!(rollup("a/b/c", "", Some("/")).as_deref(), Some("a/"));
        assert_eq!(rollup("a/b/c", "a/", Some("/")).as_deref(), Some("a/b/"));
        assert_eq!(rollup("a/b", "a/", Some("/")), None);
        assert_eq!(rollup("a/b", "a/", None), None);
        assert_eq!(rollup("a/b", "a/", Some("")), None);
    }

    #[test]
    fn resuming_after_a_prefix_skips_it() {
        assert_eq!(start("", Some("/"), Some("a/")), Some(LowerBound::AtOrAfter("a0".into())));
        assert_eq!(start("", Some("/"), Some("a")), Some(LowerBound::After("a".into())));
        assert_eq!(start("p/", None, None), Some(LowerBound::AtOrAfter("p/".into())));
        assert_eq!(start("p/", None, Some("a")), Some(LowerBound::AtOrAfter("p/".into())));
    }

    proptest! {
        #[test]
        fn successor_is_greater_than_all_extensions(prefix in "\\PC{1,8}", tail in "\\PC{0,8}") {
            if let Some(next) = successor(&prefix) {
                let extended = format!("{prefix}{tail}");
                prop_assert!(extended < next);
                prop_assert!(prefix < next);
            }
        }
    }
}
