//! Object keys per the API contract: 1-1024 bytes of UTF-8, no control
//! characters, no leading `/`, no empty, `.` or `..` segments. `\` is an
//! ordinary character; keys are opaque (`a/b/c.jpg` is one key).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() {
            return Err(Invalid::new("object key must not be empty"));
        }
        if raw.len() > MAX_KEY_BYTES {
            return Err(Invalid::new(format!("object key is longer than {MAX_KEY_BYTES} bytes")));
        }
        if raw.chars().any(char::is_control) {
            return Err(Invalid::new("object key must not contain NUL or control characters"));
        }
        if raw.starts_with('/') {
            return Err(Invalid::new("object key must not start with '/'"));
        }
        // A trailing '/' is an S3 "folder marker"; every other segment must be a real name.
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        if trimmed.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
            return Err(Invalid::new("object key must not contain empty, '.' or '..' segments"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment, used as the download file name.
    pub fn file_name(&self) -> &str {
        let trimmed = self.0.trim_end_matches('/');
        trimmed.rsplit('/').next().unwrap_or(trimmed)
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<ObjectKey> for String {
    fn from(value: ObjectKey) -> Self {
        value.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_keys() {
        for key in ["a", "a/b/c.jpg", "a\\b", "résumé.pdf", "folder/", "..hidden", "a/.b", "x".repeat(1024).as_str()]
        {
            assert!(ObjectKey::parse(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn rejects_what_the_contract_rejects() {
        for key in
            ["", "/a", "a//b", "a/./b", "a/../b", "..", ".", "a/..", "a\0b", "a\nb", "a\u{7f}", &"x".repeat(1025)]
        {
            assert!(ObjectKey::parse(key).is_err(), "{key:?}");
        }
    }

    #[test]
    fn file_name_is_last_segment() {
        assert_eq!(ObjectKey::parse("a/b/c.jpg").expect("valid").file_name(), "c.jpg");
        assert_eq!(ObjectKey::parse("dir/").expect("valid").file_name(), "dir");
    }

    proptest! {
        #[test]
        fn valid_keys_have_no_dot_segments(raw in "[a./\\\\]{1,12}") {
            if let Ok(key) = ObjectKey::parse(&raw) {
                let trimmed = key.as_str().trim_end_matches('/');
                prop_assert!(trimmed.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
                prop_assert!(!key.as_str().starts_with('/'));
            }
        }

        #[test]
        fn parse_never_panics(raw in "\\PC{0,40}") {
            let _ = ObjectKey::parse(&raw);
        }
    }
}
