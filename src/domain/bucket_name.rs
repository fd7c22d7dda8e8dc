//! Bucket names under S3's rules: 3-63 chars of `a-z0-9.-`, alphanumeric at both ends.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

impl BucketName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| Err(Invalid::new(format!("bucket name {raw:?} {why}")));
        if !(3..=63).contains(&raw.len()) {
            return bad("must be 3 to 63 characters long");
        }
        if !raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
            return bad("may only contain lowercase letters, digits, '.' and '-'");
        }
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !raw.bytes().next().is_some_and(alnum) || !raw.bytes().last().is_some_and(alnum) {
            return bad("must start and end with a letter or digit");
        }
        if raw.as_bytes().windows(2).any(|pair| matches!(pair, b".." | b".-" | b"-.")) {
            return bad("must not contain '..', '.-' or '-.'");
        }
        let dotted_digits = raw.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if dotted_digits && raw.split('.').count() == 4 && raw.split('.').all(|part| part.parse::<u8>().is_ok()) {
            return bad("must not look like an IP address");
        }
        if raw.starts_with("xn--") || raw.ends_with("-s3alias") {
            return bad("uses a prefix or suffix S3 reserves");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BucketName {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<BucketName> for String {
    fn from(value: BucketName) -> Self {
        value.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_s3_names() {
        for name in ["abc", "my-bucket", "photos.2024", "a1b", &"x".repeat(63)] {
            assert!(BucketName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_what_s3_rejects() {
        for name in
            ["ab", "Abc", "-abc", "abc-", "a..b", "a.-b", "192.168.1.1", "xn--abc", "has space", "a_b", &"x".repeat(64)]
        {
            assert!(BucketName::parse(name).is_err(), "{name}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_valid_names_roundtrip(raw in "\\PC{0,70}") {
            if let Ok(name) = BucketName::parse(&raw) {
                prop_assert_eq!(name.as_str(), raw.as_str());
                prop_assert!(name.as_str().len() >= 3 && name.as_str().len() <= 63);
            }
        }
    }
}
