//! `MetadataStore` conformance for what guards against races and loss:
//! guesses claimed before they are checked, commits whose answer was lost,
//! aborts racing completions, purges of spent credentials.

use chrono::{DateTime, Utc};
use coffer::domain::{ObjectKey, Role};
use coffer::metadata::NewObject;

use crate::for_each_adapter;
use crate::metadata::{Fixture, audit, make_bucket, now, pending_like, postgres, put, sqlite, user};
use crate::support;

for_each_adapter!({ sqlite, postgres }: [
    parallel_guesses_are_claimed_up_to_the_threshold,
    a_committed_write_is_never_rolled_back,
    an_abort_and_a_completion_exclude_each_other,
    writes_under_a_deleted_bucket_are_dangling_not_conflicts,
    expired_credentials_are_purged,
    a_successor_issued_while_its_family_is_revoked_is_revoked_too,
    a_successor_issued_while_every_token_of_its_user_is_revoked_is_revoked_too,
    a_hold_committed_while_a_delete_waits_refuses_it_as_locked,
    keys_and_mfa_steps_need_current_credentials_and_keys_a_free_slot,
    a_user_has_at_most_the_limit_of_unfinished_uploads,
    a_second_factor_is_confirmed_only_with_the_secret_its_code_was_checked_against,
]);

/// Twenty guesses claimed at once: exactly the threshold get through (the
/// others wait a second for their outcome); the wrong one that reaches the
/// threshold locks. An address gets back only the guess that was right.
async fn parallel_guesses_are_claimed_up_to_the_threshold(f: &Fixture) {
    use coffer::metadata::{AttemptClaim, Settle, ThrottleRule, ThrottleScope};
    let store = &f.store;
    let at = now();
    let rule =
        ThrottleRule { threshold: 5, window: chrono::Duration::minutes(15), lock_for: chrono::Duration::minutes(15) };
    let claims = (0..20).map(|_| store.claim_attempt(ThrottleScope::Account, "ivy", at, rule));
    let claims: Vec<AttemptClaim> =
        futures::future::join_all(claims).await.into_iter().map(|c| c.expect("claim")).collect();
    assert_eq!(claims.iter().filter(|c| **c == AttemptClaim::Allowed).count(), 5, "{claims:?}");
    let waiting = AttemptClaim::Locked { until: at + chrono::Duration::seconds(1) };
    assert_eq!(claims.iter().filter(|c| **c == waiting).count(), 15, "in flight, not yet a lock: {claims:?}");
    for _ in 0..5 {
        store.settle_attempt(ThrottleScope::Account, "ivy", Settle::Failed, (at, rule)).await.expect("settle");
    }
    let locked = store.claim_attempt(ThrottleScope::Account, "ivy", at, rule).await.expect("claim");
    assert_eq!(locked, AttemptClaim::Locked { until: at + rule.lock_for }, "five wrong guesses lock");
    let later = at + chrono::Duration::minutes(16);
    let after = store.claim_attempt(ThrottleScope::Account, "ivy", later, rule).await.expect("claim");
    assert_eq!(after, AttemptClaim::Allowed, "the lock ends and a new window begins");

    // Four wrong guesses from an address, then a right one: the address keeps its four.
    let ip = (ThrottleScope::Ip, "192.0.2.1");
    for _ in 0..4 {
        assert_eq!(store.claim_attempt(ip.0, ip.1, at, rule).await.expect("claim"), AttemptClaim::Allowed);
        store.settle_attempt(ip.0, ip.1, Settle::Failed, (at, rule)).await.expect("settle");
    }
    assert_eq!(store.claim_attempt(ip.0, ip.1, at, rule).await.expect("claim"), AttemptClaim::Allowed);
    store.settle_attempt(ip.0, ip.1, Settle::Refund, (at, rule)).await.expect("refund");
    assert_eq!(store.claim_attempt(ip.0, ip.1, at, rule).await.expect("claim"), AttemptClaim::Allowed);
    store.settle_attempt(ip.0, ip.1, Settle::Failed, (at, rule)).await.expect("settle");
    let locked = store.claim_attempt(ip.0, ip.1, at, rule).await.expect("claim");
    assert_eq!(locked, AttemptClaim::Locked { until: at + rule.lock_for }, "the fifth wrong guess locks");
}

/// A commit whose answer was lost must keep its row: rolling back a pending
/// row is refused once it is committed.
async fn a_committed_write_is_never_rolled_back(f: &Fixture) {
    let store = &*f.store;
    let owner = user(store, "wren", Role::User, None).await;
    let bucket = make_bucket(store, owner.id, "wren-files").await;
    let committed = put(store, bucket.id, owner.id, "kept.txt", 10).await;
    assert!(!store.discard_pending(committed.object.id).await.expect("discard"), "committed: not discarded");
    let key = ObjectKey::parse("kept.txt").expect("key");
    assert_eq!(store.live_object(bucket.id, &key).await.expect("live").map(|o| o.id), Some(committed.object.id));
    let pending = store
        .insert_pending(&NewObject {
            bucket_id: bucket.id,
            key: ObjectKey::parse("dropped.txt").expect("key"),
            blob_key: support::unique("blob-"),
            content_type: "text/plain".into(),
            owner_id: Some(owner.id),
            reserved_bytes: 5,
            at: now(),
        })
        .await
        .expect("pending");
    assert!(store.discard_pending(pending.id).await.expect("discard"), "pending: discarded");
    assert_eq!(store.object_by_id(pending.id).await.expect("read"), None);
}

/// An open upload of `big.bin` with no parts yet.
fn open_upload(id: &str, bucket_id: i64, owner_id: Option<i64>) -> coffer::metadata::UploadRecord {
    coffer::metadata::UploadRecord {
        id: id.into(),
        bucket_id,
        key: ObjectKey::parse("big.bin").expect("key"),
        blob_key: support::unique("blob-"),
        backend_upload_id: support::unique("backend-"),
        owner_id,
        content_type: None,
        declared_size: None,
        part_size: 5 << 20,
        created_at: now(),
        state: coffer::metadata::UploadState::Open,
        state_at: now(),
        charged_bytes: 0,
        attempt_etag: None,
        attempt_size: None,
        assembled_etag: None,
    }
}

/// An abort of an open upload is refused once its completion began, and a
/// completion of an upload that was aborted finds nothing: never both.
async fn an_abort_and_a_completion_exclude_each_other(f: &Fixture) {
    use coffer::metadata::{MetaError, UploadState};
    let store = &*f.store;
    let owner = user(store, "yara", Role::User, Some(1 << 30)).await;
    let bucket = make_bucket(store, owner.id, "yara-files").await;
    let upload = |id: &str| open_upload(id, bucket.id, Some(owner.id));
    store.create_upload(&upload("up-1"), 10, &audit("upload.create")).await.expect("create");
    store.reserve_part("up-1", (1, 100), i64::MAX).await.expect("reserve");
    assert!(store.start_completion("up-1", now(), ("etag-1", 100)).await.expect("start").is_some());
    let refused = store.abort_upload("up-1", UploadState::Open, None, &audit("upload.abort")).await;
    assert!(matches!(refused, Err(MetaError::Conflict("upload-state"))), "{refused:?}");
    assert_eq!(store.upload("up-1").await.expect("read").map(|u| u.charged_bytes), Some(100), "nothing refunded");
    store.abort_upload("up-1", UploadState::Completing, None, &audit("upload.abort")).await.expect("abort");
    assert_eq!(store.user_by_id(owner.id).await.expect("user").map(|u| u.used_bytes), Some(0), "refunded once");
    assert!(store.upload("up-1").await.expect("read").is_none());

    // A completion is reopened, or aborted, only by itself; what it assembled
    // stays named for the next one.
    store.create_upload(&upload("up-2"), 10, &audit("upload.create")).await.expect("create");
    let first = now();
    assert!(store.start_completion("up-2", first, ("etag-a", 1)).await.expect("start").is_some());
    assert!(
        store.start_completion("up-2", first, ("etag-a", 1)).await.expect("start").is_none(),
        "one completion at a time"
    );
    let later = first + chrono::Duration::seconds(1);
    assert!(!store.reopen_upload("up-2", later, later, None).await.expect("reopen"), "not this completion's");
    assert!(store.reopen_upload("up-2", first, later, Some("etag-a")).await.expect("reopen"));
    assert!(!store.reopen_upload("up-2", later, later, None).await.expect("reopen"), "already open");
    let again = store.start_completion("up-2", later, ("etag-b", 2)).await.expect("start again").expect("it was open");
    let etags = (again.attempt_etag.as_deref(), again.assembled_etag.as_deref());
    assert_eq!((again.state, etags), (UploadState::Completing, (Some("etag-b"), Some("etag-a"))));
    let stale = store.abort_upload("up-2", UploadState::Completing, Some(first), &audit("upload.abort")).await;
    assert!(matches!(stale, Err(MetaError::Conflict("upload-state"))), "{stale:?}");
    store.abort_upload("up-2", UploadState::Completing, Some(later), &audit("upload.abort")).await.expect("abort");
}

/// A write under a bucket deleted meanwhile breaks a reference, which is not
/// a uniqueness conflict (the client gets 404, not "already exists"); a
/// bucket that still holds an object is refused as a conflict.
async fn writes_under_a_deleted_bucket_are_dangling_not_conflicts(f: &Fixture) {
    use coffer::metadata::MetaError;
    let store = &*f.store;
    let owner = user(store, "zeno", Role::User, None).await;
    let bucket = make_bucket(store, owner.id, "zeno-files").await;
    let gone = make_bucket(store, owner.id, "zeno-gone").await;
    store.delete_bucket(gone.id, &audit("bucket.delete")).await.expect("delete the empty bucket");
    let orphan = store.insert_pending(&pending_like(&gone, &owner, &ObjectKey::parse("late.txt").expect("key"))).await;
    assert!(matches!(orphan, Err(MetaError::Dangling("object"))), "{orphan:?}");
    put(store, bucket.id, owner.id, "kept.txt", 10).await;
    let refused = store.delete_bucket(bucket.id, &audit("bucket.delete")).await;
    assert!(matches!(refused, Err(MetaError::Conflict(_))), "{refused:?}");
}

/// Refresh tokens and MFA steps past their expiry, and throttle rows whose
/// window passed without a lock, are purged; everything live stays.
async fn expired_credentials_are_purged(f: &Fixture) {
    use coffer::metadata::{AttemptClaim, Settle, ThrottleRule, ThrottleScope};
    let store = &*f.store;
    let owner = user(store, "zoe", Role::User, None).await;
    let at = now();
    let token = |hash: &str, expires_at: DateTime<Utc>| coffer::metadata::RefreshTokenRecord {
        token_hash: hash.into(),
        family_id: hash.into(),
        user_id: owner.id,
        generation: owner.token_generation,
        mfa: false,
        created_at: at - chrono::Duration::days(40),
        expires_at,
    };
    store.insert_refresh_token(&token("old", at - chrono::Duration::days(1))).await.expect("old");
    store.insert_refresh_token(&token("live", at + chrono::Duration::days(1))).await.expect("live");
    // Used long ago, but its family lives on (the token "live"): kept, to detect its reuse.
    let sibling = coffer::metadata::RefreshTokenRecord {
        family_id: "live".into(),
        ..token("live-old", at - chrono::Duration::days(1))
    };
    store.insert_refresh_token(&sibling).await.expect("sibling");
    store
        .create_mfa_challenge("old-step", (owner.id, owner.token_generation), at - chrono::Duration::minutes(1))
        .await
        .expect("old step");
    store
        .create_mfa_challenge("live-step", (owner.id, owner.token_generation), at + chrono::Duration::minutes(4))
        .await
        .expect("live step");
    let rule =
        ThrottleRule { threshold: 2, window: chrono::Duration::minutes(15), lock_for: chrono::Duration::minutes(15) };
    let wrong_guess = |subject: &'static str, when: DateTime<Utc>| async move {
        store.claim_attempt(ThrottleScope::Account, subject, when, rule).await.expect("claim");
        store.settle_attempt(ThrottleScope::Account, subject, Settle::Failed, (when, rule)).await.expect("settle");
    };
    wrong_guess("spent", at - chrono::Duration::hours(1)).await;
    wrong_guess("recent", at).await;
    wrong_guess("locked", at - chrono::Duration::minutes(20)).await;
    wrong_guess("locked", at - chrono::Duration::minutes(20)).await;
    let purged = store.purge_expired_identity(at, at - rule.window).await.expect("purge");
    assert_eq!(purged, 4, "the old token, the old step, the spent counter and the one whose lock ended");
    assert!(matches!(
        store.use_refresh_token("live", at).await.expect("use"),
        coffer::metadata::RefreshUse::Rotated(_)
    ));
    assert!(store.claim_mfa_attempt("live-step", at, 5).await.expect("claim").is_some());
    assert!(store.claim_mfa_attempt("old-step", at, 5).await.expect("claim").is_none());
    wrong_guess("recent", at).await;
    let recent = store.claim_attempt(ThrottleScope::Account, "recent", at, rule).await.expect("claim");
    assert_eq!(
        recent,
        AttemptClaim::Locked { until: at + rule.lock_for },
        "its count stayed: a second wrong guess locked"
    );
}

/// A day-long refresh token of `owner` in `family`, issued `at`.
fn refresh_token(
    owner: &coffer::metadata::UserRecord,
    at: DateTime<Utc>,
    hash: String,
    family: &str,
) -> coffer::metadata::RefreshTokenRecord {
    coffer::metadata::RefreshTokenRecord {
        token_hash: hash,
        family_id: family.into(),
        user_id: owner.id,
        generation: owner.token_generation,
        mfa: false,
        created_at: at,
        expires_at: at + chrono::Duration::days(1),
    }
}

/// A stolen refresh token replayed while the legitimate client's successor is
/// being issued: whichever transaction comes second, the family's revocation
/// takes the successor with it (on PostgreSQL both lock the family first).
/// Many rounds, so an interleaving that misses the other's row shows up.
async fn a_successor_issued_while_its_family_is_revoked_is_revoked_too(f: &Fixture) {
    use coffer::metadata::RefreshUse;
    let store = &f.store;
    let owner = user(&**store, "rhea", Role::User, None).await;
    let at = now();
    let token = |hash: String, family: &str| refresh_token(&owner, at, hash, family);
    for round in 0..60 {
        let family = format!("family-{round}");
        store.insert_refresh_token(&token(format!("{family}-0"), &family)).await.expect("first");
        let rotated = store.use_refresh_token(&format!("{family}-0"), at).await.expect("rotate");
        assert!(matches!(rotated, RefreshUse::Rotated(_)), "round {round}");
        let (successor, spent) = (token(format!("{family}-1"), &family), format!("{family}-0"));
        let (issued, replayed) =
            tokio::join!(store.insert_refresh_token(&successor), store.use_refresh_token(&spent, at));
        issued.expect("successor");
        assert!(matches!(replayed.expect("replay"), RefreshUse::Reused { .. }), "round {round}");
        let after = store.use_refresh_token(&format!("{family}-1"), at).await.expect("use successor");
        assert!(!matches!(after, RefreshUse::Rotated(_)), "round {round}: the successor outlived its family");
    }
}

/// The same race against a user-wide revocation (password change, disable):
/// the successor must not outlive it, and neither side may deadlock.
async fn a_successor_issued_while_every_token_of_its_user_is_revoked_is_revoked_too(f: &Fixture) {
    use coffer::metadata::{RefreshUse, UserPatch};
    let store = &f.store;
    let owner = user(&**store, "remy", Role::User, None).await;
    let at = now();
    let token = |hash: String, family: &str| refresh_token(&owner, at, hash, family);
    let revoke_all = UserPatch { revoke_refresh_tokens: true, ..UserPatch::default() };
    for round in 0..60 {
        // A few families, so that their rows' order on disk and by hash differ.
        for family in 0..3 {
            let family = format!("r{round}-f{family}");
            store.insert_refresh_token(&token(format!("{family}-0"), &family)).await.expect("first");
        }
        let family = format!("r{round}-f1");
        let successor = token(format!("{family}-1"), &family);
        let event = audit("user.update");
        let (issued, revoked) =
            tokio::join!(store.insert_refresh_token(&successor), store.update_user(owner.id, &revoke_all, &event));
        issued.expect("successor");
        revoked.expect("revoke every token");
        let after = store.use_refresh_token(&successor.token_hash, at).await.expect("use successor");
        assert!(!matches!(after, RefreshUse::Rotated(_)), "round {round}: the successor outlived the revocation");
    }
}

/// A legal hold committed while a delete waits for the object's row refuses
/// the delete as locked (409 `object-locked`), not as a concurrent change:
/// PostgreSQL lets the delete read the row as it was before the hold, then
/// re-checks it once the hold's lock is released. (SQLite serializes writers,
/// so a delete there always reads the row after the hold.)
async fn a_hold_committed_while_a_delete_waits_refuses_it_as_locked(f: &Fixture) {
    use coffer::metadata::MetaError;
    use sqlx::Connection;
    if !f.url.starts_with("postgres") {
        return;
    }
    let store = &*f.store;
    let owner = user(store, "hal", Role::User, None).await;
    let bucket = make_bucket(store, owner.id, "hal-files").await;
    let id = put(store, bucket.id, owner.id, "held.txt", 10).await.object.id;
    let mut holder = sqlx::PgConnection::connect(&f.url).await.expect("connect");
    let mut tx = holder.begin().await.expect("begin");
    sqlx::query("UPDATE objects SET legal_hold = TRUE WHERE id = $1").bind(id).execute(&mut *tx).await.expect("hold");
    let delete = {
        let store = f.store.clone();
        tokio::spawn(async move { store.mark_deleting(id, &audit("object.delete")).await })
    };
    let delete = delete_waiting_for_a_lock(&mut tx, delete).await;
    tx.commit().await.expect("commit the hold");
    let refused = delete.await.expect("join");
    assert!(matches!(refused, Err(MetaError::Conflict("object-locked"))), "{refused:?}");
    let object = store.object_by_id(id).await.expect("read").expect("still there");
    assert!(object.legal_hold && object.state == coffer::metadata::ObjectState::Committed);
}

/// Returns `delete` once PostgreSQL shows a statement waiting for a row lock
/// (the one `tx` holds), or fails after ten seconds.
async fn delete_waiting_for_a_lock<T>(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    delete: tokio::task::JoinHandle<T>,
) -> tokio::task::JoinHandle<T> {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut **tx)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            return delete;
        }
        assert!(!delete.is_finished(), "the delete ran past the held row");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the delete never waited for the row");
}

/// A key (or a second-factor step) is stored only for credentials that
/// still stand (the generation they were issued or checked under, an account
/// not disabled): one from before a password reset is refused, not left live
/// beside the reset's revocations. The live-key limit is counted in the same
/// transaction.
async fn keys_and_mfa_steps_need_current_credentials_and_keys_a_free_slot(f: &Fixture) {
    use coffer::domain::Scopes;
    use coffer::metadata::{ApiKeyRecord, MetaError, UserPatch};
    let store = &*f.store;
    let owner = user(store, "kim", Role::User, None).await;
    let key_of = |user_id: i64, n: usize| ApiKeyRecord {
        id: format!("key{user_id}-{n}"),
        user_id,
        name: format!("key {n}"),
        prefix: format!("cfk_{user_id:04}{n:04}"),
        key_hash: format!("hash-{user_id}-{n}"),
        scopes: Scopes::ALL,
        created_at: now(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        minted_with_mfa: false,
    };
    let mint = |n: usize, generation: i64, max_live: usize| async move {
        store.insert_api_key(&key_of(owner.id, n), (generation, max_live), &audit("apikey.create")).await
    };
    let issued = owner.token_generation;
    mint(1, issued, 2).await.expect("first key");
    mint(2, issued, 2).await.expect("second key");
    let over = mint(3, issued, 2).await;
    assert!(matches!(over, Err(MetaError::Conflict("too-many-api-keys"))), "{over:?}");

    let reset =
        UserPatch { bump_generation: true, revoke_refresh_tokens: true, revoke_api_keys: true, ..Default::default() };
    store.update_user(owner.id, &reset, &audit("user.update")).await.expect("password reset");
    let stale = mint(4, issued, 100).await;
    assert!(matches!(stale, Err(MetaError::Conflict("credentials-changed"))), "{stale:?}");
    // So is a second-factor step opened with the old password.
    let in_5_minutes = now() + chrono::Duration::minutes(5);
    let step = store.create_mfa_challenge("old-password-step", (owner.id, issued), in_5_minutes).await;
    assert!(matches!(step, Err(MetaError::Conflict("credentials-changed"))), "{step:?}");
    store.create_mfa_challenge("new-password-step", (owner.id, issued + 1), in_5_minutes).await.expect("step");
    mint(5, issued + 1, 2).await.expect("the new session's key; the revoked ones no longer count");

    let disable = UserPatch { disabled: Some(true), ..Default::default() };
    store.update_user(owner.id, &disable, &audit("user.update")).await.expect("disable");
    let disabled = mint(6, issued + 1, 100).await;
    assert!(matches!(disabled, Err(MetaError::Conflict("credentials-changed"))), "{disabled:?}");
    let live = store.list_api_keys(owner.id).await.expect("keys");
    assert_eq!(live.iter().map(|k| k.id.clone()).collect::<Vec<_>>(), [format!("key{}-5", owner.id)]);

    // Parallel mints count each other: four free slots, five asks, four keys.
    let other = user(store, "lee", Role::User, None).await;
    let asks = (0..5).map(|n| {
        let key = key_of(other.id, n);
        async move { store.insert_api_key(&key, (other.token_generation, 4), &audit("apikey.create")).await }
    });
    let answers = futures::future::join_all(asks).await;
    let refused = answers.iter().filter(|a| matches!(a, Err(MetaError::Conflict("too-many-api-keys")))).count();
    assert_eq!((answers.iter().filter(|a| a.is_ok()).count(), refused), (4, 1), "{answers:?}");
    assert_eq!(store.list_api_keys(other.id).await.expect("keys").len(), 4);
}

/// Unfinished uploads are counted per owner when one is created, parallel
/// creations included; finishing or aborting one frees its slot.
async fn a_user_has_at_most_the_limit_of_unfinished_uploads(f: &Fixture) {
    use coffer::metadata::{MetaError, UploadRecord, UploadState};
    let store = &*f.store;
    let owner = user(store, "uma", Role::User, None).await;
    let other = user(store, "ugo", Role::User, None).await;
    let bucket = make_bucket(store, owner.id, "uma-files").await;
    let upload = |owner_id: Option<i64>| open_upload(&support::unique("up-"), bucket.id, owner_id);
    let create = |record: UploadRecord| async move {
        store.create_upload(&record, 3, &audit("upload.create")).await.map(|()| record.id)
    };
    // Five at once for three slots: three are recorded.
    let answers = futures::future::join_all((0..5).map(|_| create(upload(Some(owner.id))))).await;
    let refused = answers.iter().filter(|a| matches!(a, Err(MetaError::Conflict("too-many-uploads")))).count();
    assert_eq!((answers.iter().filter(|a| a.is_ok()).count(), refused), (3, 2), "{answers:?}");
    let over = create(upload(Some(owner.id))).await;
    assert!(matches!(over, Err(MetaError::Conflict("too-many-uploads"))), "{over:?}");
    create(upload(Some(other.id))).await.expect("each user has slots of their own");
    create(upload(None)).await.expect("an upload of no one's (a deleted user's) is not counted");

    let first = answers.into_iter().find_map(Result::ok).expect("an upload");
    store.abort_upload(&first, UploadState::Open, None, &audit("upload.abort")).await.expect("abort");
    create(upload(Some(owner.id))).await.expect("an aborted upload frees its slot");
}

/// A confirmation whose pending secret was replaced meanwhile (a second
/// enrolment in another tab) confirms nothing: the authenticator holds the
/// secret the code was checked against, not the new one.
async fn a_second_factor_is_confirmed_only_with_the_secret_its_code_was_checked_against(f: &Fixture) {
    use coffer::metadata::MetaError;
    let store = &*f.store;
    let owner = user(store, "tia", Role::User, None).await;
    store.put_pending_totp(owner.id, "sealed-a", now()).await.expect("first enrolment");
    store.put_pending_totp(owner.id, "sealed-b", now()).await.expect("second enrolment");
    let codes = ["code-a".to_owned()];
    let stale = store.confirm_totp(owner.id, ("sealed-a", 1), &codes, &audit("auth.mfa_enabled")).await;
    assert!(matches!(stale, Err(MetaError::Conflict("enrolment-replaced"))), "{stale:?}");
    assert!(!store.totp(owner.id).await.expect("totp").expect("pending").confirmed);
    store.confirm_totp(owner.id, ("sealed-b", 1), &codes, &audit("auth.mfa_enabled")).await.expect("confirm");
    let confirmed = store.totp(owner.id).await.expect("totp").expect("confirmed");
    assert!(confirmed.confirmed && confirmed.secret_sealed == "sealed-b");
    let again = store.confirm_totp(owner.id, ("sealed-b", 2), &codes, &audit("auth.mfa_enabled")).await;
    assert!(matches!(again, Err(MetaError::NotFound(_))), "nothing pending: {again:?}");
}
