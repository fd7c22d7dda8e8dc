//! Role- and grant-based access: who may see and act on a bucket, and which
//! account-level actions a caller may take. Deny by default.

use crate::domain::{Permission, Role, Scopes};

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An interactive session (JWT); `mfa` when the login passed a second factor.
    Session { mfa: bool },
    /// An API key limited to its scopes; `mfa` when the session that created
    /// it had passed a second factor (a key carries no more assurance than that).
    ApiKey { scopes: Scopes, mfa: bool },
}

/// The facts a decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub role: Role,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The caller may see the resource but not do this (403).
    Forbidden,
    /// The caller may not know the resource exists (404).
    Hidden,
}

/// What the role and grant give on a bucket, before credential limits.
pub fn bucket_permission(role: Role, grant: Option<Permission>) -> Option<Permission> {
    match role {
        Role::Admin => Some(Permission::Manage),
        Role::User => grant,
        Role::Auditor => None,
    }
}

/// The most a credential may do: read-only keys never write.
pub fn credential_ceiling(via: Via) -> Option<Permission> {
    match via {
        Via::Session { .. } => Some(Permission::Manage),
        Via::ApiKey { scopes, .. } if scopes.write => Some(Permission::Manage),
        Via::ApiKey { scopes, .. } if scopes.read => Some(Permission::Read),
        Via::ApiKey { .. } => None,
    }
}

/// Whether a credential may read: sessions, and keys with the `read` scope.
/// A write-only key (a drop box for an agent) stores, but never reads back,
/// lists, shares or presigns a read.
pub fn credential_reads(via: Via) -> bool {
    match via {
        Via::Session { .. } => true,
        Via::ApiKey { scopes, .. } => scopes.read,
    }
}

/// What `subject` may do on a bucket: the role and grant, capped by the
/// credential (for writes; reads also need `credential_reads`).
pub fn effective_permission(subject: Subject, grant: Option<Permission>) -> Option<Permission> {
    let granted = bucket_permission(subject.role, grant)?;
    credential_ceiling(subject.via).map(|ceiling| granted.min(ceiling))
}

/// May `subject`, holding `grant` on a bucket, do something that needs `required`?
pub fn bucket_access(subject: Subject, grant: Option<Permission>, required: Permission) -> Decision {
    if bucket_permission(subject.role, grant).is_none() {
        return Decision::Hidden;
    }
    let may_read = required != Permission::Read || credential_reads(subject.via);
    if may_read && effective_permission(subject, grant).is_some_and(|p| p >= required) {
        Decision::Allow
    } else {
        Decision::Forbidden
    }
}

/// Creating buckets: users and admins, with a credential that may write.
pub fn may_create_bucket(subject: Subject) -> bool {
    subject.role != Role::Auditor && credential_ceiling(subject.via) >= Some(Permission::Write)
}

/// Whether the credential carries a second factor where the deployment asks
/// admins for one: a session that passed MFA, or a key created by such a session.
fn admin_assurance(via: Via, require_mfa_for_admins: bool) -> bool {
    let mfa = match via {
        Via::Session { mfa } | Via::ApiKey { mfa, .. } => mfa,
    };
    mfa || !require_mfa_for_admins
}

/// Administration (users, lifecycle runs): admins, with a credential that may
/// read and write and — when the deployment requires it — passed MFA.
pub fn may_administer(subject: Subject, require_mfa_for_admins: bool) -> bool {
    let scoped = match subject.via {
        Via::Session { .. } => true,
        Via::ApiKey { scopes, .. } => scopes.write && scopes.read,
    };
    subject.role == Role::Admin && scoped && admin_assurance(subject.via, require_mfa_for_admins)
}

/// Reading the audit trail: admins and auditors, with a credential that may
/// read; admins also need MFA when the deployment requires it.
pub fn may_read_audit(subject: Subject, require_mfa_for_admins: bool) -> bool {
    match subject.role {
        Role::Auditor => credential_reads(subject.via),
        Role::Admin => credential_reads(subject.via) && admin_assurance(subject.via, require_mfa_for_admins),
        Role::User => false,
    }
}

/// Changing one's own credentials (password, MFA, API keys) needs a session:
/// a leaked API key must not be able to mint more keys or lock the owner out.
pub fn may_manage_own_credentials(subject: Subject) -> bool {
    matches!(subject.via, Via::Session { .. })
}

/// Whose grant a grant change touches, relative to the caller and the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantTarget {
    pub is_caller: bool,
    /// The user who created the bucket (who "manages the buckets it creates").
    pub is_creator: bool,
}

/// Seeing or changing who has access to a bucket: `manage` there, with a
/// credential that may read (a grant hands out reads, and the list names the
/// readers): a write-only key of a manager stores, but never shares access.
pub fn grant_access(subject: Subject, caller_grant: Option<Permission>) -> Decision {
    match bucket_access(subject, caller_grant, Permission::Manage) {
        Decision::Allow if !credential_reads(subject.via) => Decision::Forbidden,
        other => other,
    }
}

/// Granting on a bucket: `grant_access`; outside admins, nobody changes
/// their own grant or the bucket creator's.
pub fn grant_change(subject: Subject, caller_grant: Option<Permission>, target: GrantTarget) -> Decision {
    match grant_access(subject, caller_grant) {
        Decision::Allow if (target.is_caller || target.is_creator) && subject.role != Role::Admin => {
            Decision::Forbidden
        }
        other => other,
    }
}

/// Revoking a share link: its creator, or whoever may see and change access
/// to its bucket (`grant_access`: a manager, or any admin, with a credential
/// that may read). A link hands out reads, as a grant does, so neither a
/// read-only key (which never manages) nor a write-only one (which never
/// shares) takes down someone's link; a creator's own needs a key that reads.
pub fn share_revocation(subject: Subject, is_creator: bool, caller_grant: Option<Permission>) -> Decision {
    match (is_creator, credential_reads(subject.via)) {
        (true, true) => Decision::Allow,
        (true, false) => Decision::Forbidden,
        (false, _) => grant_access(subject, caller_grant),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Admin), Just(Role::User), Just(Role::Auditor)]
    }

    fn permission() -> impl Strategy<Value = Permission> {
        prop_oneof![Just(Permission::Read), Just(Permission::Write), Just(Permission::Manage)]
    }

    fn via() -> impl Strategy<Value = Via> {
        prop_oneof![
            any::<bool>().prop_map(|mfa| Via::Session { mfa }),
            (scopes(), any::<bool>()).prop_map(|(scopes, mfa)| Via::ApiKey { scopes, mfa }),
        ]
    }

    fn scopes() -> impl Strategy<Value = Scopes> {
        prop_oneof![
            Just(Scopes { read: true, write: false }),
            Just(Scopes { read: false, write: true }),
            Just(Scopes::ALL),
        ]
    }

    fn subject() -> impl Strategy<Value = Subject> {
        (role(), via()).prop_map(|(role, via)| Subject { role, via })
    }

    #[test]
    fn table() {
        let session = Via::Session { mfa: false };
        let user = Subject { role: Role::User, via: session };
        assert_eq!(bucket_access(user, None, Permission::Read), Decision::Hidden);
        assert_eq!(bucket_access(user, Some(Permission::Read), Permission::Write), Decision::Forbidden);
        assert_eq!(bucket_access(user, Some(Permission::Write), Permission::Write), Decision::Allow);
        let read_key =
            Subject { role: Role::User, via: Via::ApiKey { scopes: Scopes { read: true, write: false }, mfa: false } };
        assert_eq!(bucket_access(read_key, Some(Permission::Manage), Permission::Write), Decision::Forbidden);
        assert_eq!(bucket_access(read_key, Some(Permission::Manage), Permission::Read), Decision::Allow);
        let admin = Subject { role: Role::Admin, via: session };
        assert_eq!(bucket_access(admin, None, Permission::Manage), Decision::Allow);
        assert!(!may_administer(admin, true));
        assert!(may_administer(Subject { role: Role::Admin, via: Via::Session { mfa: true } }, true));
    }

    proptest! {
        #[test]
        fn more_grant_never_means_less_access(s in subject(), low in permission(), high in permission(), need in permission()) {
            prop_assume!(low <= high);
            if bucket_access(s, Some(low), need) == Decision::Allow {
                prop_assert_eq!(bucket_access(s, Some(high), need), Decision::Allow);
            }
        }

        #[test]
        fn the_permission_handed_out_is_what_access_checks_allow(s in subject(), grant in proptest::option::of(permission()), need in permission()) {
            // Callers branch on the permission `effective_permission` returns (retention, legal
            // hold): it must never claim more than `bucket_access` would allow.
            let allowed = bucket_access(s, grant, need) == Decision::Allow;
            let reads = need != Permission::Read || credential_reads(s.via);
            prop_assert_eq!(reads && effective_permission(s, grant).is_some_and(|p| p >= need), allowed);
            prop_assert!(effective_permission(s, grant) <= credential_ceiling(s.via));
        }

        #[test]
        fn write_only_keys_never_see_or_hand_out_access(
            role in role(), grant in proptest::option::of(permission()), mfa in any::<bool>(),
            is_caller in any::<bool>(), is_creator in any::<bool>(),
        ) {
            let s = Subject { role, via: Via::ApiKey { scopes: Scopes { read: false, write: true }, mfa } };
            prop_assert_ne!(grant_access(s, grant), Decision::Allow);
            prop_assert_ne!(grant_change(s, grant, GrantTarget { is_caller, is_creator }), Decision::Allow);
        }

        #[test]
        fn only_readers_who_created_or_manage_revoke_links(
            via in via(), role in role(), grant in proptest::option::of(permission()), is_creator in any::<bool>(),
        ) {
            let s = Subject { role, via };
            let decision = share_revocation(s, is_creator, grant);
            if decision == Decision::Allow {
                prop_assert!(credential_reads(via), "write-only keys never revoke links");
                prop_assert!(is_creator || credential_ceiling(via) == Some(Permission::Manage), "nor do read-only keys of others'");
                prop_assert!(is_creator || bucket_permission(role, grant) == Some(Permission::Manage));
            }
            let read_only = Via::ApiKey { scopes: Scopes { read: true, write: false }, mfa: false };
            prop_assert_ne!(share_revocation(Subject { role, via: read_only }, false, grant), Decision::Allow);
            if is_creator && credential_reads(via) {
                prop_assert_eq!(decision, Decision::Allow, "a creator always takes back their own link");
            }
        }

        #[test]
        fn read_only_keys_never_write(role in role(), grant in proptest::option::of(permission()), mfa in any::<bool>()) {
            let s = Subject { role, via: Via::ApiKey { scopes: Scopes { read: true, write: false }, mfa } };
            prop_assert_ne!(bucket_access(s, grant, Permission::Write), Decision::Allow);
            prop_assert_ne!(bucket_access(s, grant, Permission::Manage), Decision::Allow);
            prop_assert!(effective_permission(s, grant) <= Some(Permission::Read));
            prop_assert!(!may_create_bucket(s));
            prop_assert!(!may_administer(s, false));
        }

        #[test]
        fn write_only_keys_never_read(role in role(), grant in proptest::option::of(permission()), mfa in any::<bool>()) {
            let s = Subject { role, via: Via::ApiKey { scopes: Scopes { read: false, write: true }, mfa } };
            prop_assert_ne!(bucket_access(s, grant, Permission::Read), Decision::Allow);
            prop_assert!(!may_read_audit(s, false));
            prop_assert!(!may_administer(s, false));
            if role == Role::User && grant >= Some(Permission::Write) {
                prop_assert_eq!(bucket_access(s, grant, Permission::Write), Decision::Allow, "they still write");
            }
        }

        #[test]
        fn admin_power_needs_mfa_where_required(via in via(), grant in proptest::option::of(permission()), need in permission()) {
            // A session without MFA, and every key it creates, administer nothing where MFA
            // is required for admins; their bucket access is the same either way.
            let s = Subject { role: Role::Admin, via };
            let mfa = matches!(via, Via::Session { mfa: true } | Via::ApiKey { mfa: true, .. });
            if !mfa {
                prop_assert!(!may_administer(s, true));
                prop_assert!(!may_read_audit(s, true));
            } else {
                prop_assert_eq!(may_administer(s, true), may_administer(s, false));
                prop_assert_eq!(may_read_audit(s, true), may_read_audit(s, false));
            }
            let flipped = match via {
                Via::Session { mfa } => Via::Session { mfa: !mfa },
                Via::ApiKey { scopes, mfa } => Via::ApiKey { scopes, mfa: !mfa },
            };
            prop_assert_eq!(bucket_access(s, grant, need), bucket_access(Subject { via: flipped, ..s }, grant, need));
        }

        #[test]
        fn auditors_never_touch_buckets(via in via(), grant in proptest::option::of(permission()), need in permission()) {
            let s = Subject { role: Role::Auditor, via };
            prop_assert_eq!(bucket_access(s, grant, need), Decision::Hidden);
            prop_assert!(!may_create_bucket(s));
            prop_assert_eq!(may_read_audit(s, true), credential_reads(via));
        }

        #[test]
        fn users_without_grants_see_nothing(via in via(), need in permission()) {
            let s = Subject { role: Role::User, via };
            prop_assert_eq!(bucket_access(s, None, need), Decision::Hidden);
            prop_assert!(!may_read_audit(s, false));
            prop_assert!(!may_administer(s, false));
        }

        #[test]
        fn nobody_but_admins_changes_their_own_grant_or_the_creators(
            s in subject(),
            grant in proptest::option::of(permission()),
            is_caller in any::<bool>(),
            is_creator in any::<bool>(),
        ) {
            let decision = grant_change(s, grant, GrantTarget { is_caller, is_creator });
            if s.role != Role::Admin && (is_caller || is_creator) {
                prop_assert_ne!(decision, Decision::Allow);
            }
            if s.role == Role::Admin && s.via == (Via::Session { mfa: true }) {
                prop_assert_eq!(decision, Decision::Allow, "admins manage every grant");
            }
        }

        #[test]
        fn api_keys_never_manage_credentials(scopes in scopes(), mfa in any::<bool>(), role in role()) {
            let subject = Subject { role, via: Via::ApiKey { scopes, mfa } };
            prop_assert!(!may_manage_own_credentials(subject));
        }
    }
}
