//! The one source of "now": the system clock in production (aligned to the
//! database's clock), a settable clock in tests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Tells the clock that the reference clock (the database's) read
    /// `reference` at the monotonic instant `measured`; answers how far the
    /// host's clock is corrected now. Only an aligned clock acts on it.
    fn align(&self, _reference: DateTime<Utc>, _measured: Instant) -> Duration {
        Duration::zero()
    }

    /// The host's own clock, for times the host itself stamped (file
    /// modification times); `now()` except on an aligned clock.
    fn local_now(&self) -> DateTime<Utc> {
        self.now()
    }
}

/// Differences below this are measurement noise and NTP's business, not ours.
pub const ALIGNMENT_TOLERANCE: Duration = Duration::seconds(1);

/// The host's clock while it agrees with the database's (within
/// `ALIGNMENT_TOLERANCE`); otherwise the database's time at the last
/// measurement plus the monotonic time since. Replicas whose clocks drift
/// apart then still agree on when retention ends, when tokens expire and in
/// which order events happened: a replica running an hour fast must not
/// release a COMPLIANCE object an hour early, and a step of the host's clock
/// (NTP fixing it) changes nothing until the next measurement.
pub struct DatabaseAlignedClock {
    local: Arc<dyn Clock>,
    /// A fixed monotonic origin.
    origin: Instant,
    /// The database's time at `origin`, in microseconds, as last measured;
    /// `FOLLOW_LOCAL` while the host's clock agrees (one atomic load per
    /// `now()`, read on every request).
    reference_at_origin: AtomicI64,
}

const FOLLOW_LOCAL: i64 = i64::MIN;

impl DatabaseAlignedClock {
    pub fn new(local: Arc<dyn Clock>) -> Self {
        Self { local, origin: Instant::now(), reference_at_origin: AtomicI64::new(FOLLOW_LOCAL) }
    }
}

fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl Clock for DatabaseAlignedClock {
    fn now(&self) -> DateTime<Utc> {
        match self.reference_at_origin.load(Ordering::Relaxed) {
            FOLLOW_LOCAL => self.local.now(),
            at_origin => DateTime::from_timestamp_micros(at_origin.saturating_add(micros(self.origin.elapsed())))
                .unwrap_or_else(|| self.local.now()),
        }
    }

    fn align(&self, reference: DateTime<Utc>, measured: Instant) -> Duration {
        let since_measured = micros(measured.elapsed());
        let offset = reference + Duration::microseconds(since_measured) - self.local.now();
        if offset.abs() < ALIGNMENT_TOLERANCE {
            self.reference_at_origin.store(FOLLOW_LOCAL, Ordering::Relaxed);
            return Duration::zero();
        }
        let measured_after_origin = micros(measured.saturating_duration_since(self.origin));
        let at_origin = reference.timestamp_micros().saturating_sub(measured_after_origin);
        self.reference_at_origin.store(at_origin, Ordering::Relaxed);
        offset
    }

    fn local_now(&self) -> DateTime<Utc> {
        self.local.now()
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (lockout windows, expiry, retention in tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        if let Ok(mut now) = self.0.lock() {
            *now = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map_or_else(|_| Utc::now(), |now| *now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_clock_follows_its_reference_beyond_the_tolerance() {
        let start = Utc::now();
        let close = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).num_milliseconds().abs() < 50;
        let local = Arc::new(ManualClock::new(start));
        let aligned = DatabaseAlignedClock::new(local.clone());
        assert_eq!(aligned.align(start + Duration::milliseconds(400), Instant::now()), Duration::zero(), "noise");
        assert_eq!(aligned.now(), start, "the host's clock while they agree");
        let offset = aligned.align(start - Duration::hours(2), Instant::now());
        assert!((offset + Duration::hours(2)).num_milliseconds().abs() < 50, "{offset}");
        assert!(close(aligned.now(), start - Duration::hours(2)));
        local.advance(Duration::hours(2));
        assert!(close(aligned.now(), start - Duration::hours(2)), "a step of the host's clock changes nothing");
        assert_eq!(aligned.local_now(), start + Duration::hours(2));
        local.set(start);
        assert_eq!(aligned.align(start, Instant::now()), Duration::zero(), "agreeing again");
        assert_eq!(aligned.now(), start);
        assert_eq!(ManualClock::new(start).align(start + Duration::hours(1), Instant::now()), Duration::zero());
    }
}
