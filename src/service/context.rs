//! Who is calling and from where: the authenticated principal and the request facts audit records carry.

use crate::domain::audit::{AuditEntry, Outcome};
use crate::domain::{Role, Username};
use crate::policy::rbac::{Subject, Via};

/// Facts about the request, for audit records and throttling.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client's address as text (an IPv4 address stays inline, off the heap).
    pub ip: Option<compact_str::CompactString>,
    pub user_agent: Option<String>,
    /// Shared with the request's extensions and its log span.
    pub request_id: Option<std::sync::Arc<str>>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: Username,
    pub role: Role,
    pub via: Via,
    /// The API key used, if any (presigned URLs remember it).
    pub api_key_id: Option<String>,
    pub token_generation: i64,
    /// How audit records name the caller when not by username (`presign:<user>`).
    pub actor_label: Option<String>,
}

impl Principal {
    /// The actor written into audit records.
    pub fn actor(&self) -> &str {
        self.actor_label.as_deref().unwrap_or(self.username.as_str())
    }

    pub fn subject(&self) -> Subject {
        Subject { role: self.role, via: self.via }
    }
}

impl RequestContext {
    /// A successful event by `actor`, stamped with this request's facts.
    pub fn event(&self, at: chrono::DateTime<chrono::Utc>, actor: &str, action: &str) -> AuditEntry {
        AuditEntry {
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            bucket: None,
            key: None,
            outcome: Outcome::Success,
            ip: self.ip.as_deref().map(str::to_owned),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.as_deref().map(str::to_owned),
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }
}
