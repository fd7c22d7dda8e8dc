//! Account roles and per-bucket permissions (`read` < `write` < `manage`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::Auditor => "auditor",
        }
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            "auditor" => Ok(Self::Auditor),
            _ => Err(Invalid::new(format!("role must be admin, user or auditor, not {raw:?}"))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered so that `a >= b` means "a includes b".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Write,
    Manage,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Manage => "manage",
        }
    }
}

impl FromStr for Permission {
    type Err = Invalid;
    fn from_str(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "manage" => Ok(Self::Manage),
            _ => Err(Invalid::new(format!("permission must be read, write or manage, not {raw:?}"))),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_ordered() {
        assert!(Permission::Manage > Permission::Write && Permission::Write > Permission::Read);
    }

    #[test]
    fn names_roundtrip() {
        for role in [Role::Admin, Role::User, Role::Auditor] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        for permission in [Permission::Read, Permission::Write, Permission::Manage] {
            assert_eq!(permission.as_str().parse::<Permission>(), Ok(permission));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
