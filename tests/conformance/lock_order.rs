//! `MetadataStore` conformance for lock order: writes that touch a user's row
//! and the rows that hang off it (sessions, second factors, uploads, objects)
//! race each other without deadlocking. On PostgreSQL they take those rows in
//! one order (see `postgres.rs`: `LOCK_USER`, `PIN_USER`, `LOCK_OWNED_ROWS`,
//! `LOCK_COMMIT_ROWS`); SQLite serializes writers anyway.

use chrono::Duration;
use coffer::domain::Role;
use coffer::metadata::{MetaError, MetadataStore, RefreshTokenRecord, UserPatch, UserRecord};

use crate::for_each_adapter;
use crate::metadata::{Fixture, audit, commit_of, make_bucket, now, pending, postgres, put, sqlite, user};

for_each_adapter!({ sqlite, postgres }: [
    removing_a_second_factor_while_every_session_is_revoked_never_deadlocks,
    deleting_a_user_while_their_session_is_renewed_never_deadlocks,
    deleting_a_user_while_their_second_factor_is_confirmed_never_deadlocks,
    deleting_a_user_while_their_second_factor_is_removed_never_deadlocks,
    deleting_a_user_while_they_overwrite_an_object_never_deadlocks,
    deleting_a_user_while_they_log_out_everywhere_never_deadlocks,
]);

/// Enough rounds for an interleaving that takes the locks in opposite orders
/// to show up (PostgreSQL then aborts one side after `deadlock_timeout`).
const ROUNDS: usize = 40;

fn session(owner: &UserRecord, family: &str, n: usize) -> RefreshTokenRecord {
    let at = now();
    RefreshTokenRecord {
        token_hash: format!("{family}-{n}"),
        family_id: family.into(),
        user_id: owner.id,
        generation: owner.token_generation,
        mfa: true,
        created_at: at,
        expires_at: at + Duration::days(1),
    }
}

/// A user with a confirmed second factor, recovery codes, a pending MFA
/// challenge and a live session: every row the racing writes touch.
async fn enrolled(store: &dyn MetadataStore, name: &str) -> UserRecord {
    let owner = user(store, name, Role::User, None).await;
    store.put_pending_totp(owner.id, "sealed", now()).await.expect("pending totp");
    let codes = ["code-a".to_owned(), "code-b".to_owned()];
    store.confirm_totp(owner.id, ("sealed", 1), &codes, &audit("mfa.enable")).await.expect("confirm totp");
    let generation = store.user_by_id(owner.id).await.expect("user").expect("exists").token_generation;
    store
        .create_mfa_challenge(&format!("{name}-challenge"), (owner.id, generation), now() + Duration::minutes(5))
        .await
        .expect("mfa");
    store.insert_refresh_token(&session(&owner, &format!("{name}-family"), 0)).await.expect("session");
    owner
}

/// A concurrent deletion may have removed the user first; anything else is a failure.
fn done_or_user_gone(outcome: Result<(), MetaError>, what: &str, round: usize) {
    match outcome {
        Ok(()) | Err(MetaError::NotFound(_)) => {}
        Err(other) => panic!("round {round}: {what} failed: {other}"),
    }
}

/// An admin resets a user's second factor while the user is disabled
/// (which revokes sessions and deletes pending challenges).
async fn removing_a_second_factor_while_every_session_is_revoked_never_deadlocks(f: &Fixture) {
    let store = &*f.store;
    let disable = UserPatch { disabled: Some(true), revoke_refresh_tokens: true, ..UserPatch::default() };
    for round in 0..ROUNDS {
        let owner = enrolled(store, &format!("mona{round}")).await;
        let (reset, update) = (audit("mfa.reset"), audit("user.update"));
        let (removed, disabled) =
            tokio::join!(store.delete_totp(owner.id, &reset), store.update_user(owner.id, &disable, &update));
        removed.unwrap_or_else(|e| panic!("round {round}: remove the second factor: {e}"));
        disabled.unwrap_or_else(|e| panic!("round {round}: disable: {e}"));
        assert!(store.totp(owner.id).await.expect("totp").is_none(), "round {round}");
    }
}

async fn deleting_a_user_while_their_session_is_renewed_never_deadlocks(f: &Fixture) {
    let store = &*f.store;
    for round in 0..ROUNDS {
        let name = format!("nils{round}");
        let owner = enrolled(store, &name).await;
        let successor = session(&owner, &format!("{name}-family"), 1);
        let delete = audit("user.delete");
        let (issued, deleted) =
            tokio::join!(store.insert_refresh_token(&successor), store.delete_user(owner.id, &delete));
        deleted.unwrap_or_else(|e| panic!("round {round}: delete: {e}"));
        done_or_user_gone(issued, "renew", round);
        assert!(store.user_by_id(owner.id).await.expect("read").is_none(), "round {round}");
    }
}

async fn deleting_a_user_while_their_second_factor_is_confirmed_never_deadlocks(f: &Fixture) {
    let store = &*f.store;
    for round in 0..ROUNDS {
        let owner = user(store, &format!("olga{round}"), Role::User, None).await;
        store.put_pending_totp(owner.id, "sealed", now()).await.expect("pending totp");
        let codes = ["code-a".to_owned()];
        let (enable, delete) = (audit("mfa.enable"), audit("user.delete"));
        let (confirmed, deleted) = tokio::join!(
            store.confirm_totp(owner.id, ("sealed", 1), &codes, &enable),
            store.delete_user(owner.id, &delete)
        );
        deleted.unwrap_or_else(|e| panic!("round {round}: delete: {e}"));
        done_or_user_gone(confirmed, "confirm", round);
    }
}

async fn deleting_a_user_while_their_second_factor_is_removed_never_deadlocks(f: &Fixture) {
    let store = &*f.store;
    for round in 0..ROUNDS {
        let owner = enrolled(store, &format!("pia{round}")).await;
        let (reset, delete) = (audit("mfa.reset"), audit("user.delete"));
        let (removed, deleted) =
            tokio::join!(store.delete_totp(owner.id, &reset), store.delete_user(owner.id, &delete));
        deleted.unwrap_or_else(|e| panic!("round {round}: delete: {e}"));
        done_or_user_gone(removed, "remove the second factor", round);
    }
}

/// Overwriting credits the replaced object to its owner: the object's row,
/// then the owner's. Deleting the owner must not hold the owner's row while
/// it waits for the object's.
async fn deleting_a_user_while_they_overwrite_an_object_never_deadlocks(f: &Fixture) {
    let store = &*f.store;
    for round in 0..ROUNDS {
        let owner = user(store, &format!("quin{round}"), Role::User, None).await;
        let bucket = make_bucket(store, owner.id, &format!("quin{round}-files")).await;
        // Even rounds replace an object; odd ones write a new key whose size
        // was unknown (nothing reserved), so the commit charges the owner.
        let (key, reserved) = if round % 2 == 0 { ("same.txt", 20) } else { ("new.txt", 0) };
        put(store, bucket.id, owner.id, "same.txt", 10).await;
        let pending = pending(store, bucket.id, owner.id, key, reserved).await;
        let commit = commit_of(pending.id, key, 20);
        let (write, delete) = (audit("object.put"), audit("user.delete"));
        let (committed, deleted) =
            tokio::join!(store.commit_object(&commit, &write), store.delete_user(owner.id, &delete));
        deleted.unwrap_or_else(|e| panic!("round {round}: delete: {e}"));
        committed.unwrap_or_else(|e| panic!("round {round}: overwrite: {e}"));
    }
}

/// Logging out revokes a whole refresh family; deleting the user deletes it.
async fn deleting_a_user_while_they_log_out_everywhere_never_deadlocks(f: &Fixture) {
    let store = &*f.store;
    for round in 0..ROUNDS {
        let name = format!("rolf{round}");
        let owner = enrolled(store, &name).await;
        let family = format!("{name}-family");
        // Stored out of hash order, so a scan and a sort by hash differ.
        for n in (1..4).rev() {
            store.insert_refresh_token(&session(&owner, &family, n)).await.expect("session");
        }
        let (delete, newest) = (audit("user.delete"), format!("{family}-1"));
        let (revoked, deleted) =
            tokio::join!(store.revoke_refresh_family(&newest, now()), store.delete_user(owner.id, &delete));
        deleted.unwrap_or_else(|e| panic!("round {round}: delete: {e}"));
        revoked.unwrap_or_else(|e| panic!("round {round}: log out: {e}"));
    }
}
