//! Request rate limits per route class, per client address and per user:
//! shared by every replica through the cache (Redis), enforced per replica
//! from process memory while Redis is unreachable.

use serde::Serialize;

use super::Services;
use crate::policy::rate::{Quota, RateDecision};

/// What a request is, for its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteClass {
    /// Logins, token refreshes, share passwords: guessing targets.
    Auth,
    /// Request bodies that become objects.
    Upload,
    /// Everything else under the API and share links.
    Api,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Upload => "upload",
            Self::Api => "api",
        }
    }

    /// The class of `method path`, or `None` for what is never limited
    /// (health, metrics). A share link guessed at (a password posted, or sent
    /// as `X-Share-Password`: `carries_share_password`) is a login.
    pub fn of(method: &str, path: &str, carries_share_password: bool) -> Option<Self> {
        let share_guess = path.starts_with("/s/") && (method == "POST" || carries_share_password);
        if path.starts_with("/api/v1/auth/") || share_guess {
            return Some(Self::Auth);
        }
        let is_upload = match method {
            "PUT" => path.contains("/objects/") || path.contains("/parts/"),
            "POST" => path.ends_with("/objects"),
            _ => false,
        };
        if path.starts_with("/api/v1/") && is_upload {
            return Some(Self::Upload);
        }
        (path.starts_with("/api/v1/") || path.starts_with("/s/")).then_some(Self::Api)
    }
}

/// A decision with the quota it was made against (for `RateLimit-*` headers).
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub quota: Quota,
    pub decision: RateDecision,
}

impl Services {
    fn quota(&self, class: RouteClass) -> Option<Quota> {
        let per_minute = match class {
            RouteClass::Auth => self.config.rate_limit_auth_per_minute,
            RouteClass::Upload => self.config.rate_limit_upload_per_minute,
            RouteClass::Api => self.config.rate_limit_api_per_minute,
        };
        (per_minute > 0).then(|| Quota::per_minute(per_minute))
    }

    /// Whether requests of `class` are limited at all.
    pub fn is_limited(&self, class: RouteClass) -> bool {
        self.quota(class).is_some()
    }

    /// Counts one request of `subject` (`ip:…` or `user:…`); `None` when the class is unlimited.
    pub async fn admit(&self, class: RouteClass, subject: &str) -> Option<Admission> {
        let quota = self.quota(class)?;
        let key = format!("rl:{}:{subject}", class.as_str());
        let decision = match self.cache.admit(&key, quota).await {
            Ok(decision) => decision,
            Err(_) => self.local_rates.admit(&key, quota),
        };
        Some(Admission { quota, decision })
    }
}

/// What an address is counted as by rate limits and login throttles: IPv4
/// addresses one by one, IPv6 addresses by their /64 (one client usually holds
/// a whole /64 and could otherwise take a fresh address per request).
pub fn address_key(ip: &str) -> std::borrow::Cow<'_, str> {
    match ip.parse::<std::net::Ipv6Addr>() {
        Ok(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            std::borrow::Cow::Owned(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
        _ => std::borrow::Cow::Borrowed(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::RouteClass::{self, *};
    use super::address_key;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(address_key("203.0.113.7"), "203.0.113.7");
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:bbbb::9"), address_key("2001:db8:1:2:aaaa::1"));
        assert_ne!(address_key("2001:db8:1:3::1"), address_key("2001:db8:1:2::1"));
        assert_eq!(address_key("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
        assert_eq!(address_key("unknown"), "unknown");
    }

    #[test]
    fn routes_fall_into_classes() {
        let cases: [(&str, &str, Option<RouteClass>); 9] = [
            ("POST", "/api/v1/auth/login", Some(Auth)),
            ("POST", "/s/abc", Some(Auth)),
            ("GET", "/s/abc", Some(Api)),
            ("PUT", "/api/v1/buckets/b/objects/k", Some(Upload)),
            ("POST", "/api/v1/buckets/b/objects", Some(Upload)),
            ("PUT", "/api/v1/buckets/b/uploads/u/parts/1", Some(Upload)),
            ("GET", "/api/v1/buckets/b/objects/k", Some(Api)),
            ("GET", "/health/ready", None),
            ("GET", "/", None),
        ];
        for (method, path, class) in cases {
            assert_eq!(RouteClass::of(method, path, false), class, "{method} {path}");
        }
        for method in ["GET", "HEAD"] {
            assert_eq!(RouteClass::of(method, "/s/abc", true), Some(Auth), "{method} with a password");
            assert_eq!(RouteClass::of(method, "/s/abc/thumbnail", true), Some(Auth), "{method} thumbnail");
        }
    }
}
