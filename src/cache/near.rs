//! Local copies of a shared cache's coherent keys (scope versions), usable
//! only while this replica holds a lease that every writer honours: a writer
//! does not return before each leaseholder has dropped the copy it changes
//! (see `coherent` for the protocol over Redis). This file owns the local
//! side: the copies, the lease, and the rule that keeps a slow fetch from
//! storing a value an invalidation has already retired.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Copies kept: one per scope in use (an account, a bucket).
const CAPACITY: usize = 100_000;
/// A copy is dropped after this long even if nothing retired it.
const COPY_TTL: Duration = Duration::from_secs(60);

/// Where `NearCopies::fill` must start: the invalidations applied before the fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket(u64);

pub struct NearCopies {
    copies: quick_cache::sync::Cache<String, (Instant, Bytes), quick_cache::UnitWeighter, super::FastHasher>,
    /// Invalidations applied and copies cleared: a fetch that began before
    /// one of them may not leave its value behind.
    applied: AtomicU64,
    /// Removals completed (invalidations, clears, rolled-back fills), each
    /// counted after its copies are gone: see `epoch`.
    settled: AtomicU64,
    /// Nanoseconds after `base` until which the lease lets copies be read; 0 without one.
    lease_until: AtomicU64,
    base: Instant,
    /// Whether invalidations are being heard (a subscription is up); also
    /// serializes the lease's changes. Never taken by readers.
    listening: Mutex<bool>,
}

impl Default for NearCopies {
    fn default() -> Self {
        Self {
            copies: quick_cache::sync::Cache::with(
                CAPACITY,
                CAPACITY as u64,
                Default::default(),
                super::FastHasher::default(),
                Default::default(),
            ),
            applied: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            base: Instant::now(),
            listening: Mutex::new(false),
        }
    }
}

impl NearCopies {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether copies may be read and stored at `now`.
    pub fn leased(&self, now: Instant) -> bool {
        self.nanos(now) < self.lease_until.load(Ordering::Acquire)
    }

    /// The copy of `key`, when leased and young enough.
    pub fn get(&self, key: &str, now: Instant) -> Option<Bytes> {
        if !self.leased(now) {
            return None;
        }
        let (stored_at, value) = self.copies.get(key)?;
        (now.saturating_duration_since(stored_at) < COPY_TTL).then_some(value)
    }

    /// While leased, a number that changes whenever a copy is removed, read
    /// before the copies: a value read from them after `epoch` gave `n` is
    /// as current as they are while `epoch` gives `n`, so a reader may keep
    /// it that long instead of asking again. A copy changes by a removal,
    /// counted once done, or by a fill that raced a change whose removal is
    /// still to come (and whose writer is still waiting for this replica).
    /// `None` without a lease.
    pub fn epoch(&self, now: Instant) -> Option<u64> {
        self.leased(now).then(|| self.settled.load(Ordering::SeqCst))
    }

    /// Taken before fetching the values to `fill` with.
    pub fn ticket(&self) -> FillTicket {
        FillTicket(self.applied.load(Ordering::SeqCst))
    }

    /// Stores values fetched after `ticket` was taken, unless an invalidation
    /// was applied meanwhile (the fetch may have read what it retired).
    pub fn fill<'a>(&self, ticket: FillTicket, entries: impl IntoIterator<Item = (&'a str, Bytes)>, now: Instant) {
        if !self.leased(now) {
            return;
        }
        let mut stored: smallvec::SmallVec<[&str; 4]> = smallvec::SmallVec::new();
        for (key, value) in entries {
            self.copies.insert(key.to_owned(), (now, value));
            stored.push(key);
        }
        // Insert first, check after: an invalidation that the check misses
        // counts itself only after this insert, and removes after counting.
        if self.applied.load(Ordering::SeqCst) != ticket.0 {
            for key in stored {
                self.copies.remove(key);
            }
            self.settled.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Retires the copy of `key` (a writer's own change, or one heard from another replica).
    pub fn invalidate(&self, key: &str) {
        self.applied.fetch_add(1, Ordering::SeqCst);
        self.copies.remove(key);
        self.settled.fetch_add(1, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.applied.fetch_add(1, Ordering::SeqCst);
        self.copies.clear();
        self.settled.fetch_add(1, Ordering::SeqCst);
    }

    fn listening(&self) -> std::sync::MutexGuard<'_, bool> {
        self.listening.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Invalidations are heard from now on (a subscription is confirmed);
    /// what was kept before may have missed some, so it goes.
    pub fn start_listening(&self) {
        let mut listening = self.listening();
        *listening = true;
        self.clear();
    }

    /// Invalidations may go unheard (the subscription is lost or stalled):
    /// the lease ends, nothing is read from copies and none survive.
    pub fn stop_listening(&self) {
        let mut listening = self.listening();
        *listening = false;
        self.lease_until.store(0, Ordering::Release);
        self.clear();
    }

    /// The lease was renewed by a request sent at `requested_at`: copies may
    /// be read until `requested_at + lease`, if invalidations are heard.
    /// After a lapse, writers may have stopped waiting for this replica, so
    /// every copy goes first.
    pub fn renew(&self, requested_at: Instant, lease: Duration) {
        let listening = self.listening();
        if !*listening {
            return;
        }
        if !self.leased(requested_at) {
            self.clear();
        }
        self.lease_until.store(self.nanos(requested_at + lease), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(2);

    fn leased() -> NearCopies {
        let near = NearCopies::default();
        near.start_listening();
        near.renew(Instant::now(), LEASE);
        near
    }

    #[test]
    fn nothing_is_kept_or_read_without_a_lease() {
        let near = NearCopies::default();
        let now = Instant::now();
        near.renew(now, LEASE);
        near.fill(near.ticket(), [("ver:user:1", Bytes::from_static(b"v1"))], now);
        assert_eq!(near.get("ver:user:1", now), None, "no lease without a subscription");
        near.start_listening();
        near.renew(now, LEASE);
        near.fill(near.ticket(), [("ver:user:1", Bytes::from_static(b"v1"))], now);
        near.fill(near.ticket(), [("ver:user:1", Bytes::from_static(b"v1"))], now);
        assert_eq!(near.get("ver:user:1", now).as_deref(), Some(&b"v1"[..]));
        assert_eq!(near.get("ver:user:1", now + LEASE), None, "the lease has run out");
        near.stop_listening();
        assert_eq!(near.get("ver:user:1", now), None, "subscription lost");
        near.renew(now, LEASE);
        assert_eq!(near.get("ver:user:1", now), None, "not renewed while deaf");
    }

    #[test]
    fn a_fetch_overtaken_by_an_invalidation_leaves_nothing_behind() {
        let near = leased();
        let now = Instant::now();
        let ticket = near.ticket();
        near.invalidate("ver:user:1");
        near.fill(ticket, [("ver:user:1", Bytes::from_static(b"old"))], now);
        assert_eq!(near.get("ver:user:1", now), None);
        near.fill(near.ticket(), [("ver:user:1", Bytes::from_static(b"new"))], now);
        assert_eq!(near.get("ver:user:1", now).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn invalidation_retires_only_its_keys_and_copies_age_out() {
        let near = leased();
        let now = Instant::now();
        near.fill(
            near.ticket(),
            [("ver:user:1", Bytes::from_static(b"a")), ("ver:bucket:2", Bytes::from_static(b"b"))],
            now,
        );
        near.invalidate("ver:user:1");
        assert_eq!(near.get("ver:user:1", now), None);
        assert_eq!(near.get("ver:bucket:2", now).as_deref(), Some(&b"b"[..]));
        near.renew(now + COPY_TTL, LEASE);
        assert_eq!(near.get("ver:bucket:2", now + COPY_TTL), None, "older than COPY_TTL");
    }

    #[test]
    fn a_lease_renewed_after_a_lapse_starts_empty() {
        let near = leased();
        let now = Instant::now();
        near.fill(near.ticket(), [("ver:user:1", Bytes::from_static(b"a"))], now);
        near.renew(now + Duration::from_millis(500), LEASE);
        assert!(near.get("ver:user:1", now + Duration::from_millis(600)).is_some(), "renewed in time");
        let late = now + Duration::from_millis(500) + LEASE + Duration::from_millis(1);
        near.renew(late, LEASE);
        assert_eq!(near.get("ver:user:1", late), None, "writers may have stopped waiting meanwhile");
    }

    #[test]
    fn the_epoch_moves_with_every_removal_and_only_under_a_lease() {
        let near = leased();
        let now = Instant::now();
        let start = near.epoch(now).expect("leased");
        near.fill(near.ticket(), [("ver:user:1", Bytes::from_static(b"a"))], now);
        assert_eq!(near.epoch(now), Some(start), "storing a copy changes no value read before");
        near.invalidate("ver:user:1");
        let invalidated = near.epoch(now).expect("leased");
        assert_ne!(invalidated, start, "an invalidation");
        let ticket = near.ticket();
        near.invalidate("ver:user:2");
        let before_rollback = near.epoch(now).expect("leased");
        near.fill(ticket, [("ver:user:2", Bytes::from_static(b"old"))], now);
        assert_ne!(near.epoch(now), Some(before_rollback), "a fill rolled back had its value readable meanwhile");
        let before_lapse = near.epoch(now).expect("leased");
        let late = now + LEASE + Duration::from_millis(1);
        assert_eq!(near.epoch(late), None, "no lease, no epoch");
        near.renew(late, LEASE);
        assert_ne!(near.epoch(late), Some(before_lapse), "renewed after a lapse: copies cleared");
    }

    #[test]
    fn concurrent_fills_never_outlive_an_invalidation() {
        // Threads race fills taken before an invalidation against it; whatever
        // the interleaving, no pre-invalidation value may remain.
        for _ in 0..200 {
            let near = std::sync::Arc::new(leased());
            let ticket = near.ticket();
            let filler = {
                let near = near.clone();
                std::thread::spawn(move || {
                    near.fill(ticket, [("ver:objects:9", Bytes::from_static(b"old"))], Instant::now())
                })
            };
            near.invalidate("ver:objects:9");
            filler.join().expect("filler");
            assert_eq!(near.get("ver:objects:9", Instant::now()), None);
        }
    }
}
