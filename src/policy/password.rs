//! Password rules (API.md): 10-1024 characters, any Unicode, never truncated,
//! not the username, not in the shipped list of common passwords.

use std::collections::HashSet;
use std::sync::LazyLock;

pub const MIN_CHARS: usize = 10;
pub const MAX_CHARS: usize = 1024;

/// 49,233 common passwords from zxcvbn's frequency list (MIT, Dropbox /
/// zxcvbn-ts), lowercased and sorted.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().filter(|l| !l.is_empty()).collect());

/// How many passwords the shipped list holds.
pub fn common_list_len() -> usize {
    COMMON.len()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("password must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("password must be at most {MAX_CHARS} characters long")]
    TooLong,
    #[error("password must not be the username")]
    SameAsUsername,
    #[error("password is too common; choose one that is not in lists of leaked passwords")]
    Common,
}

/// Checks `password` for the account `username`.
pub fn check(password: &str, username: &str) -> Result<(), PasswordRejection> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRejection::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordRejection::TooLong);
    }
    let lowered = password.to_lowercase();
    if lowered == username.to_lowercase() {
        return Err(PasswordRejection::SameAsUsername);
    }
    if COMMON.contains(lowered.as_str()) {
        return Err(PasswordRejection::Common);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ships_a_large_list() {
        assert!(common_list_len() >= 10_000, "{}", common_list_len());
    }

    #[test]
    fn reasons() {
        assert_eq!(check("short", "alice"), Err(PasswordRejection::TooShort));
        assert_eq!(check(&"x".repeat(1025), "alice"), Err(PasswordRejection::TooLong));
        assert_eq!(check("alice.smith.2024", "Alice.Smith.2024"), Err(PasswordRejection::SameAsUsername));
        assert_eq!(check("qwertyuiop", "alice"), Err(PasswordRejection::Common));
        assert_eq!(check("Password123", "alice"), Err(PasswordRejection::Common));
        assert_eq!(check("correct horse battery staple", "alice"), Ok(()));
        // Unicode counts characters, not bytes, and is allowed.
        assert_eq!(check("ünïcødé✓✓✓", "alice"), Ok(()));
        assert_eq!(check("ééééé", "alice"), Err(PasswordRejection::TooShort));
        assert_eq!(check(&"é".repeat(1024), "alice"), Ok(()));
    }

    proptest! {
        #[test]
        fn length_rule_holds(password in "\\PC{0,40}") {
            let n = password.chars().count();
            if check(&password, "someone-else").is_ok() {
                prop_assert!((MIN_CHARS..=MAX_CHARS).contains(&n));
            }
            if n < MIN_CHARS {
                prop_assert_eq!(check(&password, "someone-else"), Err(PasswordRejection::TooShort));
            }
        }
    }
}
