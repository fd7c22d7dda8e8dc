//! Usernames: 1-64 characters of `[a-z0-9._-]`, compared case-insensitively (stored lowercase).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let lowered = raw.to_ascii_lowercase();
        if !(1..=64).contains(&lowered.len()) {
            return Err(Invalid::new("username must be 1 to 64 characters long"));
        }
        if !lowered.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(Invalid::new("username may only contain letters, digits, '.', '_' and '-'"));
        }
        Ok(Self(lowered))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = Invalid;
    fn try_from(value: String) -> Result<Self, Invalid> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_validates() {
        assert_eq!(Username::parse("Alice.B-2_x").expect("valid").as_str(), "alice.b-2_x");
        for bad in ["", "a b", "ünï", "a/b", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }
}
