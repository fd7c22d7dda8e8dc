//! Retention and legal hold decisions (S3 Object Lock semantics), pure.
//!
//! COMPLIANCE retention can only be extended, by anyone with `manage` —
//! nobody can shorten it, remove it or change its mode before it ends.
//! GOVERNANCE retention can be extended the same way; any other change
//! (shorter, removed, switched to COMPLIANCE) needs `manage` plus the bypass
//! header. A legal hold is independent: `manage` sets and clears it, and
//! bypass never lifts it. An expired retention protects nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metadata::{ObjectRecord, RetentionMode};

/// A retention setting: its mode and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: RetentionMode,
    pub retain_until: DateTime<Utc>,
}

impl Retention {
    /// The retention an object carries, if any (expired or not).
    pub fn of(object: &ObjectRecord) -> Option<Self> {
        match (object.retention_mode, object.retain_until) {
            (Some(mode), Some(retain_until)) => Some(Self { mode, retain_until }),
            _ => None,
        }
    }

    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.retain_until > now
    }
}

/// An object under an unexpired retention period or a legal hold cannot be
/// deleted, overwritten or expired.
pub fn is_locked(object: &ObjectRecord, now: DateTime<Utc>) -> bool {
    locked(Retention::of(object), object.legal_hold, now)
}

/// [`is_locked`] on the bare facts.
pub fn locked(retention: Option<Retention>, legal_hold: bool, now: DateTime<Utc>) -> bool {
    legal_hold || retention.is_some_and(|r| r.is_active(now))
}

/// The longest retention, per object or by a bucket's default: a century.
/// Beyond it a typo (year 9999) would lock an object in COMPLIANCE forever.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Why a retention change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionDenied {
    /// Retention and legal hold need `manage` on the bucket.
    NeedsManage,
    /// A new retention must end in the future.
    NotInFuture,
    /// A new retention must end within `MAX_RETENTION_DAYS`.
    TooFar,
    /// Active COMPLIANCE retention can only be extended.
    Compliance,
    /// Active GOVERNANCE retention can only be extended without the bypass header.
    NeedsBypass,
}

impl RetentionDenied {
    pub fn explain(self) -> &'static str {
        match self {
            Self::NeedsManage => "changing retention or legal hold needs manage permission on the bucket",
            Self::NotInFuture => "retain_until must be in the future",
            Self::TooFar => "retain_until must be at most 36500 days (a century) from now",
            Self::Compliance => {
                "COMPLIANCE retention cannot be shortened, removed or changed to another mode until it ends"
            }
            Self::NeedsBypass => {
                "shortening, removing or changing GOVERNANCE retention needs X-Bypass-Governance-Retention: true"
            }
        }
    }
}

/// A requested retention change, with who asks and how.
#[derive(Debug, Clone, Copy)]
pub struct RetentionChange {
    pub current: Option<Retention>,
    /// `None` removes the retention.
    pub requested: Option<Retention>,
    pub now: DateTime<Utc>,
    pub can_manage: bool,
    pub bypass_governance: bool,
}

/// The decision: `Ok(true)` when it was allowed only thanks to the governance bypass.
pub fn decide_retention(change: &RetentionChange) -> Result<bool, RetentionDenied> {
    if !change.can_manage {
        return Err(RetentionDenied::NeedsManage);
    }
    if change.requested.is_some_and(|r| !r.is_active(change.now)) {
        return Err(RetentionDenied::NotInFuture);
    }
    let latest = change.now + chrono::Duration::days(i64::from(MAX_RETENTION_DAYS));
    if change.requested.is_some_and(|r| r.retain_until > latest) {
        return Err(RetentionDenied::TooFar);
    }
    let Some(current) = change.current.filter(|c| c.is_active(change.now)) else {
        return Ok(false);
    };
    let extends = change.requested.is_some_and(|r| r.mode == current.mode && r.retain_until >= current.retain_until);
    match current.mode {
        _ if extends => Ok(false),
        RetentionMode::Compliance => Err(RetentionDenied::Compliance),
        RetentionMode::Governance if change.bypass_governance => Ok(true),
        RetentionMode::Governance => Err(RetentionDenied::NeedsBypass),
    }
}

/// Setting or clearing a legal hold needs `manage`, nothing else.
pub fn decide_legal_hold(can_manage: bool) -> Result<(), RetentionDenied> {
    if can_manage { Ok(()) } else { Err(RetentionDenied::NeedsManage) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid time")
    }

    fn retention(mode: RetentionMode, until: i64) -> Option<Retention> {
        Some(Retention { mode, retain_until: at(until) })
    }

    fn change(current: Option<Retention>, requested: Option<Retention>, bypass: bool) -> RetentionChange {
        RetentionChange { current, requested, now: at(0), can_manage: true, bypass_governance: bypass }
    }

    use RetentionMode::{Compliance, Governance};

    /// The mode × bypass matrix for shortening, spelled out.
    #[test]
    fn shortening_matrix() {
        let shorter = |mode| retention(mode, 50);
        assert_eq!(
            decide_retention(&change(retention(Governance, 100), shorter(Governance), false)),
            Err(RetentionDenied::NeedsBypass)
        );
        assert_eq!(decide_retention(&change(retention(Governance, 100), shorter(Governance), true)), Ok(true));
        assert_eq!(
            decide_retention(&change(retention(Compliance, 100), shorter(Compliance), false)),
            Err(RetentionDenied::Compliance)
        );
        assert_eq!(
            decide_retention(&change(retention(Compliance, 100), shorter(Compliance), true)),
            Err(RetentionDenied::Compliance)
        );
    }

    #[test]
    fn removal_and_mode_changes() {
        assert_eq!(decide_retention(&change(retention(Compliance, 100), None, true)), Err(RetentionDenied::Compliance));
        assert_eq!(
            decide_retention(&change(retention(Governance, 100), None, false)),
            Err(RetentionDenied::NeedsBypass)
        );
        assert_eq!(decide_retention(&change(retention(Governance, 100), None, true)), Ok(true));
        assert_eq!(
            decide_retention(&change(retention(Compliance, 100), retention(Governance, 200), true)),
            Err(RetentionDenied::Compliance)
        );
        assert_eq!(
            decide_retention(&change(retention(Governance, 100), retention(Compliance, 200), false)),
            Err(RetentionDenied::NeedsBypass)
        );
    }

    #[test]
    fn extending_needs_no_bypass_and_expired_retention_protects_nothing() {
        assert_eq!(decide_retention(&change(retention(Compliance, 100), retention(Compliance, 100), false)), Ok(false));
        assert_eq!(decide_retention(&change(retention(Governance, 100), retention(Governance, 300), false)), Ok(false));
        assert_eq!(decide_retention(&change(retention(Compliance, -1), None, false)), Ok(false));
        assert_eq!(decide_retention(&change(retention(Compliance, 0), retention(Governance, 5), false)), Ok(false));
        assert_eq!(decide_retention(&change(None, retention(Governance, 0), false)), Err(RetentionDenied::NotInFuture));
    }

    #[test]
    fn retention_ends_within_a_century() {
        let century = i64::from(MAX_RETENTION_DAYS) * 86_400;
        assert_eq!(decide_retention(&change(None, retention(Compliance, century), false)), Ok(false));
        let too_far = retention(Compliance, century + 1);
        assert_eq!(decide_retention(&change(None, too_far, false)), Err(RetentionDenied::TooFar));
        assert_eq!(
            decide_retention(&change(retention(Compliance, 100), too_far, false)),
            Err(RetentionDenied::TooFar),
            "not even as an extension"
        );
    }

    fn any_retention() -> impl Strategy<Value = Option<Retention>> {
        prop::option::of((prop::bool::ANY, -100i64..200).prop_map(|(compliance, until)| Retention {
            mode: if compliance { Compliance } else { Governance },
            retain_until: at(until),
        }))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Whatever is asked, active COMPLIANCE retention never ends earlier or changes mode,
        /// and active GOVERNANCE retention only does with the bypass header.
        #[test]
        fn protection_never_weakens_without_right(
            current in any_retention(),
            requested in any_retention(),
            can_manage in prop::bool::ANY,
            bypass in prop::bool::ANY,
        ) {
            let now = at(0);
            let asked = RetentionChange { current, requested, now, can_manage, bypass_governance: bypass };
            let decision = decide_retention(&asked);
            if decision.is_ok() {
                prop_assert!(can_manage);
                prop_assert!(requested.is_none_or(|r| r.retain_until > now));
                if let Some(c) = current.filter(|c| c.is_active(now)) {
                    let keeps = requested.is_some_and(|r| r.mode == c.mode && r.retain_until >= c.retain_until);
                    match c.mode {
                        Compliance => prop_assert!(keeps),
                        Governance => prop_assert!(keeps || bypass),
                    }
                    prop_assert_eq!(decision == Ok(true), !keeps);
                }
            }
        }

        /// Whatever retention says, a legal hold locks and nothing but time unlocks retention.
        #[test]
        fn locked_means_hold_or_unexpired(retention in any_retention(), hold in prop::bool::ANY, later in 0i64..400) {
            let now = at(later - 100);
            prop_assert_eq!(locked(retention, hold, now), hold || retention.is_some_and(|r| r.retain_until > now));
            prop_assert!(!locked(retention, false, now + Duration::days(1)) || retention.is_some());
        }
    }
}
