//! API key scopes: `read` and/or `write`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
}

/// A non-empty set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
}

impl Scopes {
    pub const ALL: Self = Self { read: true, write: true };

    pub fn from_list(scopes: &[Scope]) -> Result<Self, Invalid> {
        let set = Self { read: scopes.contains(&Scope::Read), write: scopes.contains(&Scope::Write) };
        if !set.read && !set.write {
            return Err(Invalid::new("scopes must include read, write or both"));
        }
        Ok(set)
    }

    pub fn to_list(self) -> Vec<Scope> {
        let mut list = Vec::new();
        if self.read {
            list.push(Scope::Read);
        }
        if self.write {
            list.push(Scope::Write);
        }
        list
    }

    /// Parses the stored form (`read,write`).
    pub fn parse(stored: &str) -> Result<Self, Invalid> {
        let list: Result<Vec<Scope>, Invalid> = stored
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "read" => Ok(Scope::Read),
                "write" => Ok(Scope::Write),
                other => Err(Invalid::new(format!("unknown scope {other:?}"))),
            })
            .collect();
        Self::from_list(&list?)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> =
            self.to_list().into_iter().map(|s| if s == Scope::Read { "read" } else { "write" }).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_roundtrips() {
        for scopes in [Scopes::ALL, Scopes { read: true, write: false }, Scopes { read: false, write: true }] {
            assert_eq!(Scopes::parse(&scopes.to_string()), Ok(scopes));
        }
        assert!(Scopes::parse("").is_err());
        assert!(Scopes::parse("admin").is_err());
        assert!(Scopes::from_list(&[]).is_err());
    }
}
