//! `MetadataStore` conformance: SQLite and PostgreSQL must behave the same.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use coffer::domain::audit::{AuditEntry, ChainKey, Outcome};
use coffer::domain::{BucketName, ObjectKey, Permission, Role, Username};
use coffer::metadata::{
    self, CommitObject, DefaultRetention, FinishUpload, ListQuery, MetaError, MetadataStore, NewBucket, NewObject,
    NewUser, ObjectState, PoolSettings, RetentionMode, UserPatch,
};
use proptest::strategy::{Strategy, ValueTree};

use crate::for_each_adapter;
use crate::support;

pub struct Fixture {
    pub(crate) store: Arc<dyn MetadataStore>,
    /// The database's URL, for a connection of a test's own.
    pub(crate) url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some((admin, url)) = self.postgres.take() {
            support::drop_database_blocking(admin, url);
        }
    }
}

/// The conformance stores' audit chain key.
pub(crate) fn chain_key() -> ChainKey {
    ChainKey::new(secrecy::SecretBox::new(Box::new([7; 32])))
}

fn settings() -> PoolSettings {
    PoolSettings { max_connections: 8, acquire_timeout: Duration::from_secs(5) }
}

pub(crate) async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("coffer.db").display());
    let store = metadata::connect(&url, &settings(), chain_key()).await.expect("connect sqlite");
    store.migrate().await.expect("migrate");
    Some(Fixture { store, url, _dir: Some(dir), postgres: None })
}

pub(crate) async fn postgres() -> Option<Fixture> {
    let admin = support::postgres_admin_url()?;
    let url = support::create_database(&admin, "coffer_conf_").await;
    let store = metadata::connect(&url, &settings(), chain_key()).await.expect("connect postgres");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrating twice is a no-op");
    Some(Fixture { store, url: url.clone(), _dir: None, postgres: Some((admin, url)) })
}

for_each_adapter!({ sqlite, postgres }: [
    users_roundtrip,
    last_admin_is_protected,
    buckets_and_grants,
    object_lifecycle_and_quota,
    a_default_retention_set_mid_write_applies_at_commit,
    listing_matches_a_model,
    a_page_of_large_folders_reads_few_rows,
    a_successor_issued_into_a_revoked_family_is_born_revoked,
]);

pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now")
}

pub(crate) fn audit(action: &str) -> AuditEntry {
    AuditEntry {
        at: now(),
        actor: "test".into(),
        action: action.into(),
        bucket: None,
        key: None,
        outcome: Outcome::Success,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        request_id: None,
        details: serde_json::json!({"case": action}),
    }
}

pub(crate) async fn user(
    store: &dyn MetadataStore,
    name: &str,
    role: Role,
    quota: Option<i64>,
) -> coffer::metadata::UserRecord {
    let new = NewUser {
        username: Username::parse(name).expect("name"),
        password_hash: "$argon2id$fake".into(),
        role,
        quota_bytes: quota,
        at: now(),
    };
    store.create_user(&new, &audit("user.create")).await.expect("create user")
}

async fn users_roundtrip(f: &Fixture) {
    let store = &*f.store;
    let alice = user(store, "Alice", Role::User, Some(100)).await;
    assert_eq!(alice.username.as_str(), "alice");
    let duplicate = NewUser {
        username: Username::parse("ALICE").expect("name"),
        password_hash: "x".into(),
        role: Role::User,
        quota_bytes: None,
        at: now(),
    };
    assert!(matches!(store.create_user(&duplicate, &audit("user.create")).await, Err(MetaError::Conflict(_))));
    let found = store.user_by_name(&Username::parse("alice").expect("name")).await.expect("get").expect("exists");
    assert_eq!(found, alice);
    assert_eq!(store.user_by_id(alice.id).await.expect("by id"), Some(alice.clone()));
    for name in ["bob", "carol", "dave"] {
        user(store, name, Role::User, None).await;
    }
    let first = store.list_users(None, 2).await.expect("list");
    assert_eq!(first.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    let rest = store.list_users(Some(&first[1].username), 10).await.expect("list");
    assert_eq!(rest.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["carol", "dave"]);
    let patch = UserPatch {
        role: Some(Role::Auditor),
        disabled: Some(true),
        quota_bytes: Some(None),
        password_hash: Some("$argon2id$new".into()),
        bump_generation: true,
        revoke_refresh_tokens: true,
        revoke_api_keys: true,
    };
    let updated = store.update_user(alice.id, &patch, &audit("user.update")).await.expect("update");
    assert_eq!((updated.role, updated.disabled, updated.quota_bytes), (Role::Auditor, true, None));
    assert_eq!(updated.password_hash, "$argon2id$new");
    assert_eq!(updated.token_generation, alice.token_generation + 1);
    let untouched = store.update_user(alice.id, &UserPatch::default(), &audit("user.update")).await.expect("noop");
    assert_eq!((untouched.role, untouched.token_generation), (Role::Auditor, updated.token_generation));
    store.delete_user(alice.id, &audit("user.delete")).await.expect("delete");
    assert_eq!(store.user_by_id(alice.id).await.expect("get"), None);
    assert!(matches!(store.delete_user(alice.id, &audit("user.delete")).await, Err(MetaError::NotFound(_))));
    assert!(matches!(
        store.update_user(alice.id, &UserPatch::default(), &audit("user.update")).await,
        Err(MetaError::NotFound(_))
    ));
}

async fn last_admin_is_protected(f: &Fixture) {
    let store = &*f.store;
    let root = user(store, "root", Role::Admin, None).await;
    let demote = UserPatch { role: Some(Role::User), ..UserPatch::default() };
    let disable = UserPatch { disabled: Some(true), ..UserPatch::default() };
    assert!(matches!(
        store.update_user(root.id, &demote, &audit("user.update")).await,
        Err(MetaError::Conflict("last admin"))
    ));
    assert!(matches!(
        store.update_user(root.id, &disable, &audit("user.update")).await,
        Err(MetaError::Conflict("last admin"))
    ));
    assert!(matches!(store.delete_user(root.id, &audit("user.delete")).await, Err(MetaError::Conflict("last admin"))));
    let second = user(store, "root2", Role::Admin, None).await;
    assert_eq!(store.count_active_admins().await.expect("count"), 2);
    // Two concurrent demotions: exactly one may succeed.
    let (first_audit, second_audit) = (audit("user.update"), audit("user.update"));
    let (a, b) = tokio::join!(
        store.update_user(root.id, &demote, &first_audit),
        store.update_user(second.id, &demote, &second_audit),
    );
    assert_eq!(a.is_ok() as u8 + b.is_ok() as u8, 1, "{a:?} {b:?}");
    assert_eq!(store.count_active_admins().await.expect("count"), 1);
}

async fn buckets_and_grants(f: &Fixture) {
    let store = &*f.store;
    let owner = user(store, "owner", Role::User, None).await;
    let other = user(store, "other", Role::User, None).await;
    let name = BucketName::parse("photos").expect("name");
    let new = NewBucket {
        name: name.clone(),
        owner_id: owner.id,
        default_retention: Some(DefaultRetention { mode: RetentionMode::Governance, days: 7 }),
        at: now(),
    };
    let bucket = store.create_bucket(&new, &audit("bucket.create")).await.expect("create");
    assert!(matches!(store.create_bucket(&new, &audit("bucket.create")).await, Err(MetaError::Conflict(_))));
    assert_eq!(store.bucket_by_name(&name).await.expect("get"), Some(bucket.clone()));
    assert_eq!(bucket.default_retention.map(|r| r.days), Some(7));
    assert_eq!(store.grant(bucket.id, owner.id).await.expect("grant"), Some(Permission::Manage));
    assert_eq!(store.grant(bucket.id, other.id).await.expect("grant"), None);
    assert!(store.list_buckets(other.id, false).await.expect("list").is_empty());
    let all = store.list_buckets(other.id, true).await.expect("list all");
    assert_eq!((all.len(), all[0].grant), (1, None));
    store.set_grant(bucket.id, other.id, Permission::Read, now(), &audit("grant.set")).await.expect("grant");
    store.set_grant(bucket.id, other.id, Permission::Write, now(), &audit("grant.set")).await.expect("upgrade");
    let visible = store.list_buckets(other.id, false).await.expect("list");
    assert_eq!(visible[0].grant, Some(Permission::Write));
    let grants = store.list_grants(bucket.id).await.expect("grants");
    assert_eq!(
        grants.iter().map(|g| (g.username.as_str(), g.permission)).collect::<Vec<_>>(),
        [("other", Permission::Write), ("owner", Permission::Manage)]
    );
    store.remove_grant(bucket.id, other.id, &audit("grant.remove")).await.expect("revoke");
    assert!(matches!(
        store.remove_grant(bucket.id, other.id, &audit("grant.remove")).await,
        Err(MetaError::NotFound(_))
    ));
    store.set_default_retention(bucket.id, None, &audit("bucket.retention")).await.expect("clear");
    assert_eq!(store.bucket_by_name(&name).await.expect("get").expect("exists").default_retention, None);
    let pending = store
        .insert_pending(&NewObject {
            bucket_id: bucket.id,
            key: ObjectKey::parse("x").expect("key"),
            blob_key: format!("{}o/x", bucket.blob_prefix()),
            content_type: "text/plain".into(),
            owner_id: Some(owner.id),
            reserved_bytes: 0,
            at: now(),
        })
        .await
        .expect("pending");
    assert!(matches!(store.delete_bucket(bucket.id, &audit("bucket.delete")).await, Err(MetaError::Conflict(_))));
    store.discard_pending(pending.id).await.expect("discard");
    store.delete_bucket(bucket.id, &audit("bucket.delete")).await.expect("delete empty");
    assert_eq!(store.bucket_by_name(&name).await.expect("get"), None);
}

pub(crate) async fn make_bucket(store: &dyn MetadataStore, owner: i64, name: &str) -> coffer::metadata::BucketRecord {
    let new =
        NewBucket { name: BucketName::parse(name).expect("name"), owner_id: owner, default_retention: None, at: now() };
    store.create_bucket(&new, &audit("bucket.create")).await.expect("bucket")
}

/// A pending `key` of `owner` in `bucket` with `reserved` bytes charged.
pub(crate) async fn pending(
    store: &dyn MetadataStore,
    bucket: i64,
    owner: i64,
    key: &str,
    reserved: i64,
) -> coffer::metadata::ObjectRecord {
    store
        .insert_pending(&NewObject {
            bucket_id: bucket,
            key: ObjectKey::parse(key).expect("key"),
            blob_key: support::unique("blob-"),
            content_type: "application/octet-stream".into(),
            owner_id: Some(owner),
            reserved_bytes: reserved,
            at: now(),
        })
        .await
        .expect("pending")
}

/// The commit of pending object `id` as `size` bytes, unconditionally.
pub(crate) fn commit_of(id: i64, key: &str, size: i64) -> CommitObject {
    CommitObject {
        id,
        conditions: Default::default(),
        size,
        etag: format!("etag-{key}"),
        sha256: Some("00".repeat(32)),
        content_type: "application/octet-stream".into(),
        at: now(),
    }
}

pub(crate) async fn put(
    store: &dyn MetadataStore,
    bucket: i64,
    owner: i64,
    key: &str,
    size: i64,
) -> coffer::metadata::Committed {
    let pending = pending(store, bucket, owner, key, size).await;
    store.commit_object(&commit_of(pending.id, key, size), &audit("object.put")).await.expect("commit")
}

/// The bucket's default retention is read when a write commits, not when it
/// began: a rule set while the bytes were arriving applies, from the commit.
async fn a_default_retention_set_mid_write_applies_at_commit(f: &Fixture) {
    let store = &*f.store;
    let owner = user(store, "keeper", Role::User, None).await;
    let bucket = make_bucket(store, owner.id, "ledger").await;
    let plain = put(store, bucket.id, owner.id, "before", 10).await.object;
    assert_eq!((plain.retention_mode, plain.retain_until), (None, None));
    let begun = pending(store, bucket.id, owner.id, "during", 10).await;
    let rule = DefaultRetention { mode: RetentionMode::Compliance, days: 3 };
    store.set_default_retention(bucket.id, Some(rule), &audit("bucket.retention")).await.expect("rule");
    let commit = CommitObject { at: now() + chrono::Duration::seconds(5), ..commit_of(begun.id, "during", 10) };
    let locked = store.commit_object(&commit, &audit("object.put")).await.expect("commit").object;
    assert_eq!(locked.retention_mode, Some(RetentionMode::Compliance));
    assert_eq!(locked.retain_until, Some(commit.at + chrono::Duration::days(3)));
    let upload = coffer::metadata::UploadRecord {
        id: "ledger-upload".into(),
        bucket_id: bucket.id,
        key: ObjectKey::parse("assembled").expect("key"),
        blob_key: format!("{}o/assembled", bucket.blob_prefix()),
        backend_upload_id: "backend-ledger".into(),
        owner_id: Some(owner.id),
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
    };
    store.create_upload(&upload, 10, &audit("upload.create")).await.expect("create");
    let upload = store.start_completion(&upload.id, now(), ("etag-list", 10)).await.expect("start").expect("open");
    let finish = FinishUpload {
        upload_id: upload.id.clone(),
        size: 10,
        etag: "etag-list".into(),
        content_type: "application/octet-stream".into(),
        at: now(),
        started: upload.state_at,
    };
    let finished = store.finish_upload(&finish, &audit("upload.complete")).await.expect("finish").object;
    assert_eq!(finished.retention_mode, Some(RetentionMode::Compliance));
    assert_eq!(finished.retain_until, Some(finish.at + chrono::Duration::days(3)));
}

async fn object_lifecycle_and_quota(f: &Fixture) {
    let store = &*f.store;
    let owner = user(store, "writer", Role::User, Some(1_000)).await;
    let bucket = make_bucket(store, owner.id, "data").await;
    let key = ObjectKey::parse("docs/report.pdf").expect("key");
    let pending = store
        .insert_pending(&NewObject {
            bucket_id: bucket.id,
            key: key.clone(),
            blob_key: "blob-1".into(),
            content_type: "application/pdf".into(),
            owner_id: Some(owner.id),
            reserved_bytes: 600,
            at: now(),
        })
        .await
        .expect("pending");
    assert_eq!(pending.state, ObjectState::Pending);
    assert_eq!(store.live_object(bucket.id, &key).await.expect("get"), None, "pending rows are invisible");
    assert!(store.blob_key_in_use("blob-1").await.expect("in use"));
    assert!(!store.blob_key_in_use("blob-unknown").await.expect("in use"));
    // A second reservation that would exceed the quota is refused.
    let over = NewObject { blob_key: "blob-2".into(), reserved_bytes: 500, ..pending_like(&bucket, &owner, &key) };
    assert!(matches!(store.insert_pending(&over).await, Err(MetaError::Conflict("quota"))));
    let commit = CommitObject {
        id: pending.id,
        conditions: Default::default(),
        size: 400,
        etag: "e1".into(),
        sha256: Some("ab".repeat(32)),
        content_type: "application/pdf".into(),
        at: now(),
    };
    let committed = store.commit_object(&commit, &audit("object.put")).await.expect("commit");
    assert_eq!((committed.object.state, committed.object.size), (ObjectState::Committed, 400));
    assert!(committed.replaced.is_none());
    assert_eq!(store.user_by_id(owner.id).await.expect("user").expect("exists").used_bytes, 400);
    assert!(matches!(store.commit_object(&commit, &audit("object.put")).await, Err(MetaError::NotFound(_))));
    // Overwrite: the old version moves to `deleting`, usage is settled.
    let second = put(store, bucket.id, owner.id, "docs/report.pdf", 300).await;
    let replaced = second.replaced.expect("replaced");
    assert_eq!((replaced.id, replaced.state), (committed.object.id, ObjectState::Deleting));
    assert_eq!(store.user_by_id(owner.id).await.expect("user").expect("exists").used_bytes, 300);
    assert_eq!(store.live_object(bucket.id, &key).await.expect("get").map(|o| o.id), Some(second.object.id));
    // Actual size over the quota at commit time is refused and changes nothing.
    let big = store
        .insert_pending(&NewObject {
            blob_key: "blob-3".into(),
            reserved_bytes: 0,
            ..pending_like(&bucket, &owner, &key)
        })
        .await
        .expect("pending");
    let too_big = CommitObject { id: big.id, size: 1_200, ..commit.clone() };
    assert!(matches!(store.commit_object(&too_big, &audit("object.put")).await, Err(MetaError::Conflict("quota"))));
    assert_eq!(store.live_object(bucket.id, &key).await.expect("get").map(|o| o.id), Some(second.object.id));
    store.discard_pending(big.id).await.expect("discard");
    // Delete: mark, credit, then remove the row.
    let deleting = store.mark_deleting(second.object.id, &audit("object.delete")).await.expect("mark");
    assert_eq!(deleting.state, ObjectState::Deleting);
    assert_eq!(store.user_by_id(owner.id).await.expect("user").expect("exists").used_bytes, 0);
    assert!(matches!(
        store.mark_deleting(second.object.id, &audit("object.delete")).await,
        Err(MetaError::NotFound(_))
    ));
    let future = now() + chrono::Duration::seconds(60);
    let stale = store.stale_objects(future, 10).await.expect("stale");
    assert_eq!(stale.iter().filter(|o| o.state == ObjectState::Deleting).count(), 2);
    for object in stale {
        store.remove_object_row(object.id).await.expect("remove");
    }
    assert!(store.stale_objects(future, 10).await.expect("stale").is_empty());
}

pub(crate) fn pending_like(
    bucket: &coffer::metadata::BucketRecord,
    owner: &coffer::metadata::UserRecord,
    key: &ObjectKey,
) -> NewObject {
    NewObject {
        bucket_id: bucket.id,
        key: key.clone(),
        blob_key: String::new(),
        content_type: "application/pdf".into(),
        owner_id: Some(owner.id),
        reserved_bytes: 0,
        at: now(),
    }
}

/// What a delimiter listing must return, computed naively.
fn model_listing(keys: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>) -> Vec<(String, bool)> {
    let mut items: Vec<(String, bool)> = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with(prefix)) {
        let rest = &key[prefix.len()..];
        match delimiter.and_then(|d| rest.find(d).map(|at| at + d.len())) {
            Some(end) => {
                let common = format!("{prefix}{}", &rest[..end]);
                if items.last().map(|(k, _)| k) != Some(&common) {
                    items.push((common, true));
                }
            }
            None => items.push((key.clone(), false)),
        }
    }
    items.sort();
    items.dedup();
    items
}

async fn listing_matches_a_model(f: &Fixture) {
    let store = &*f.store;
    let owner = user(store, "lister", Role::User, None).await;
    let bucket = make_bucket(store, owner.id, "listing").await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let keys: BTreeSet<String> = proptest::collection::btree_set("[ab/é]{1,5}", 30..60)
        .new_tree(&mut runner)
        .expect("keys")
        .current()
        .into_iter()
        .filter(|k| ObjectKey::parse(k).is_ok())
        .collect();
    for key in &keys {
        put(store, bucket.id, owner.id, key, 1).await;
    }
    for prefix in ["", "a", "a/", "b/a", "é"] {
        for delimiter in [None, Some("/"), Some("a")] {
            for limit in [1usize, 2, 7, 1000] {
                let expected = model_listing(&keys, prefix, delimiter);
                let mut got: Vec<(String, bool)> = Vec::new();
                let mut after = None;
                for _page in 0..200 {
                    let query = ListQuery {
                        prefix: prefix.into(),
                        delimiter: delimiter.map(Into::into),
                        after: after.clone(),
                        limit,
                    };
                    let page = store.list_objects(bucket.id, &query).await.expect("list");
                    assert!(page.objects.len() + page.prefixes.len() <= limit);
                    let mut items: Vec<(String, bool)> =
                        page.objects.iter().map(|o| (o.key.to_string(), false)).collect();
                    items.extend(page.prefixes.iter().map(|p| (p.clone(), true)));
                    items.sort();
                    got.extend(items);
                    match page.next_after {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                assert_eq!(got, expected, "prefix={prefix:?} delimiter={delimiter:?} limit={limit}");
            }
        }
    }
}

/// A page of folders each larger than a page reads each folder's name, not
/// a page's worth of its rows per folder (which grew as the square of `limit`).
async fn a_page_of_large_folders_reads_few_rows(f: &Fixture) {
    let store = &*f.store;
    let owner = user(store, "folders", Role::User, None).await;
    let bucket = make_bucket(store, owner.id, "folders").await;
    let (folders, per_folder, limit) = (12, 60, 50);
    for folder in 0..folders {
        for n in 0..per_folder {
            put(store, bucket.id, owner.id, &format!("d{folder:02}/f{n:03}"), 1).await;
        }
    }
    let query = ListQuery { prefix: String::new(), delimiter: Some("/".into()), after: None, limit };
    let page = store.list_objects(bucket.id, &query).await.expect("list");
    assert_eq!(page.prefixes.len(), folders, "{:?}", page.prefixes);
    assert_eq!(page.next_after, None);
    // The first batch (limit + 1 rows), then one small batch per folder after the first.
    assert!(page.scanned <= (limit + 1) + folders * 16, "{} rows read", page.scanned);
}

/// Reuse detection or a logout revoking a family while a refresh is issuing
/// its successor: the successor must not outlive the family.
async fn a_successor_issued_into_a_revoked_family_is_born_revoked(f: &Fixture) {
    let store = &f.store;
    let owner = user(store.as_ref(), "rowan", Role::User, None).await;
    let token = |hash: &str| coffer::metadata::RefreshTokenRecord {
        token_hash: hash.into(),
        family_id: "family-1".into(),
        user_id: owner.id,
        generation: owner.token_generation,
        mfa: false,
        created_at: now(),
        expires_at: now() + chrono::Duration::days(30),
    };
    store.insert_refresh_token(&token("t0")).await.expect("first");
    assert!(matches!(
        store.use_refresh_token("t0", now()).await.expect("use"),
        coffer::metadata::RefreshUse::Rotated(_)
    ));
    // The family is revoked (here: a logout) before the rotation's successor is stored.
    store.revoke_refresh_family("t0", now()).await.expect("revoke");
    store.insert_refresh_token(&token("t1")).await.expect("successor");
    let successor = store.use_refresh_token("t1", now()).await.expect("use");
    assert!(!matches!(successor, coffer::metadata::RefreshUse::Rotated(_)), "{successor:?}");
    // A fresh family is unaffected.
    let mut other = token("u0");
    other.family_id = "family-2".into();
    store.insert_refresh_token(&other).await.expect("other family");
    assert!(matches!(
        store.use_refresh_token("u0", now()).await.expect("use"),
        coffer::metadata::RefreshUse::Rotated(_)
    ));
}
