//! Value types that parse and validate: names, keys, roles, permissions, ranges.
//!
//! Nothing here does I/O; every constructor rejects what the API contract rejects.

pub mod audit;
mod bucket_name;
mod byte_range;
pub mod conditional;
pub mod object_key;
mod role;
mod scopes;
mod username;

pub use bucket_name::BucketName;
pub use byte_range::{ByteRange, RangeOutcome};
pub use object_key::ObjectKey;
pub use role::{Permission, Role};
pub use scopes::{Scope, Scopes};
pub use username::Username;

/// Why a value was rejected; shown to the client as the problem detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}
