//! Pure decisions, no I/O, property-tested: who may do what, what a password must be.

pub mod content;
pub mod lifecycle;
pub mod password;
pub mod rate;
pub mod rbac;
pub mod retention;
