//! `MetadataStore` conformance for what replicas share through the database:
//! one audit chain, jobs claimed once, leases with one holder, one clock.

use coffer::domain::Role;
use coffer::domain::audit::{AuditRecord, GENESIS_HASH};
use coffer::metadata::{SealOutcome, SealScope};

use crate::for_each_adapter;
use crate::metadata::{Fixture, audit, chain_key, now, postgres, sqlite, user};

for_each_adapter!({ sqlite, postgres }: [
    audit_chain_is_unbroken_under_concurrency,
    a_chain_with_events_is_sealed_only_when_asked,
    appends_racing_the_seal_are_keyed,
    jobs_are_deduplicated_and_claimed_once,
    leases_have_one_holder,
    the_database_tells_its_own_time,
]);

async fn audit_chain_is_unbroken_under_concurrency(f: &Fixture) {
    let store = f.store.clone();
    let sealed = store.seal_audit_anchor(SealScope::EmptyChain).await.expect("seal");
    assert_eq!(sealed, SealOutcome::Sealed { keyed_from: 1 }, "a chain without events is sealed");
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    store.append_audit(&audit(&format!("test.{writer}.{n}"))).await.expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    user(&*store, "chained", Role::User, None).await;
    let records: Vec<AuditRecord> = store.audit_after(0, 10_000).await.expect("read");
    assert_eq!(records.len(), 161);
    let anchor = store.audit_anchor().await.expect("anchor");
    assert_eq!(anchor.keyed_from, Some(1), "a new database's chain is keyed from its first event");
    assert!(anchor.seal_holds(&chain_key()));
    assert_eq!(store.seal_audit_anchor(SealScope::AnyChain).await.expect("seal"), SealOutcome::AlreadySealed);
    let mut prev = GENESIS_HASH.to_owned();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.id, index as i64 + 1, "ids are gapless");
        assert_eq!(record.prev_hash, prev, "record {} links to its predecessor", record.id);
        assert_eq!(record.hash, record.expected_hash(&chain_key(), &anchor), "record {} hash", record.id);
        prev.clone_from(&record.hash);
    }
    assert_eq!(store.audit_head().await.expect("head"), (161, prev));
    assert_eq!(records.last().map(|r| r.action.as_str()), Some("user.create"));
    assert_eq!(store.audit_after(159, 10).await.expect("tail").len(), 2);
}

/// A chain with events (from before keying) is sealed only when asked, keyed
/// from its next event; a purge moves the anchor and keeps it sealed.
async fn a_chain_with_events_is_sealed_only_when_asked(f: &Fixture) {
    let store = f.store.clone();
    for n in 0..3 {
        store.append_audit(&audit(&format!("test.keyless.{n}"))).await.expect("append");
    }
    assert_eq!(store.seal_audit_anchor(SealScope::EmptyChain).await.expect("seal"), SealOutcome::NotEmpty);
    let keyless = store.audit_after(0, 10).await.expect("read");
    assert!(keyless.iter().all(|r| r.hash == r.keyless_hash()), "keyless while unsealed");
    assert_eq!(
        store.seal_audit_anchor(SealScope::AnyChain).await.expect("seal"),
        SealOutcome::Sealed { keyed_from: 4 }
    );
    let keyed = store.append_audit(&audit("test.keyed")).await.expect("append");
    assert_ne!(keyed.hash, keyed.keyless_hash(), "keyed once sealed");
    let verified = coffer::service::audit::verify_chain(&*store, None).await.expect("verify");
    assert!(verified.ok && verified.keyed_from == Some(4), "{verified:?}");

    let purge = audit("audit.purge");
    let before = now() + chrono::Duration::hours(1);
    let first_kept = store.audit_first_kept(before).await.expect("cut");
    assert_eq!(first_kept, 5, "every event is older: the purge event comes next");
    let deleted = store.purge_audit(first_kept, &purge).await.expect("purge");
    assert_eq!(deleted, 4);
    let anchor = store.audit_anchor().await.expect("anchor");
    assert_eq!((anchor.first_id, anchor.keyed_from), (5, Some(4)));
    assert!(anchor.seal_holds(&chain_key()), "sealed again where it moved to");
    let verified = coffer::service::audit::verify_chain(&*store, None).await.expect("verify");
    assert!(verified.ok && verified.checked == 1, "{verified:?}");
}

/// Appends that queued behind the seal's lock are keyed: none is written
/// keyless past `keyed_from` (on PostgreSQL, a statement that waited for the
/// head lock must not judge by the anchor as it was before).
async fn appends_racing_the_seal_are_keyed(f: &Fixture) {
    let store = f.store.clone();
    store.append_audit(&audit("test.before")).await.expect("append");
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..15 {
                    store.append_audit(&audit(&format!("test.{writer}.{n}"))).await.expect("append");
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let sealed = store.seal_audit_anchor(SealScope::AnyChain).await.expect("seal");
    assert!(matches!(sealed, SealOutcome::Sealed { .. }), "{sealed:?}");
    for writer in writers {
        writer.await.expect("writer");
    }
    let verified = coffer::service::audit::verify_chain(&*store, None).await.expect("verify");
    assert!(verified.ok && verified.checked == 121, "{verified:?}");
}

async fn jobs_are_deduplicated_and_claimed_once(f: &Fixture) {
    let store = f.store.clone();
    let payload = serde_json::json!({"n": 1});
    for n in 0..20 {
        assert!(store.enqueue_job("test", &format!("job-{n}"), &payload, now()).await.expect("enqueue"));
    }
    assert!(!store.enqueue_job("test", "job-3", &payload, now()).await.expect("enqueue"), "deduplicated");
    let lease = now() + chrono::Duration::minutes(5);
    let claimers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|holder| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_jobs(holder, now(), lease, 15).await.expect("claim") })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("claimer").into_iter().map(|job| job.id));
    }
    claimed.sort_unstable();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!((before, claimed.len()), (20, 20), "every job claimed exactly once");
    assert!(store.claim_jobs("d", now(), lease, 50).await.expect("claim").is_empty(), "all leased");
    store.retry_job(claimed[0], "boom", now()).await.expect("retry");
    let again = store.claim_jobs("d", now() + chrono::Duration::seconds(1), lease, 50).await.expect("claim");
    assert_eq!(again.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(), vec![(claimed[0], 2)]);
    store.finish_job(claimed[0]).await.expect("finish");
    assert_eq!(store.pending_jobs().await.expect("count"), 19);
    let later = lease + chrono::Duration::seconds(1);
    let reclaimed = store.claim_jobs("e", later, later + chrono::Duration::minutes(5), 50).await.expect("claim");
    assert_eq!(reclaimed.len(), 19, "expired leases (a crashed worker) free their jobs");
}

async fn leases_have_one_holder(f: &Fixture) {
    let store = &f.store;
    let until = now() + chrono::Duration::minutes(1);
    assert!(store.acquire_lease("job", "a", now(), until).await.expect("lease"));
    assert!(!store.acquire_lease("job", "b", now(), until).await.expect("lease"), "held by a");
    assert!(store.acquire_lease("job", "a", now(), until).await.expect("lease"), "a renews");
    let later = until + chrono::Duration::seconds(1);
    assert!(store.acquire_lease("job", "b", later, later + chrono::Duration::minutes(1)).await.expect("lease"));
    store.release_lease("job", "a").await.expect("release by a non-holder is a no-op");
    assert!(!store.acquire_lease("job", "a", later, later).await.expect("lease"), "still b's");
    store.release_lease("job", "b").await.expect("release");
    assert!(store.acquire_lease("job", "a", later, later).await.expect("lease"));
}

/// Replicas align their clocks to this answer: it must be the server's time,
/// in microseconds, and move with it.
async fn the_database_tells_its_own_time(f: &Fixture) {
    let first = f.store.database_now().await.expect("database time");
    assert!((first - now()).num_seconds().abs() < 5, "{first} against {}", now());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let second = f.store.database_now().await.expect("database time");
    let moved = (second - first).num_milliseconds();
    assert!((40..5_000).contains(&moved), "moved {moved} ms");
}
