//! The one source of "now": the system clock in production (aligned to the
//! database's clock), a settable clock in tests.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;

    /// Tells the clock that the reference clock (the database's) reads
    /// `residual` ahead of `now()`; answers the correction now applied. Only
    /// an aligned clock acts on it.
    fn correct(&self, _residual: Duration) -> Duration {
        Duration::zero()
    }
}

/// Differences below this are measurement noise and NTP's business, not ours.
pub const ALIGNMENT_TOLERANCE: Duration = Duration::seconds(1);

/// A local clock corrected by its measured offset to the database's clock,
/// so replicas whose clocks drift apart still agree on when retention ends,
/// when tokens expire and in which order events happened: a replica running
/// an hour fast must not release a COMPLIANCE object an hour early.
pub struct DatabaseAlignedClock {
    local: Arc<dyn Clock>,
    offset_micros: AtomicI64,
}

impl DatabaseAlignedClock {
    pub fn new(local: Arc<dyn Clock>) -> Self {
        Self { local, offset_micros: AtomicI64::new(0) }
    }

    fn offset(&self) -> Duration {
        Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }
}

impl Clock for DatabaseAlignedClock {
    fn now(&self) -> DateTime<Utc> {
        self.local.now() + self.offset()
    }

    fn correct(&self, residual: Duration) -> Duration {
        let total = self.offset() + residual;
        let applied = if total.abs() < ALIGNMENT_TOLERANCE { Duration::zero() } else { total };
        self.offset_micros.store(applied.num_microseconds().unwrap_or(0), Ordering::Relaxed);
        applied
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
        let local = Arc::new(ManualClock::new(start));
        let aligned = DatabaseAlignedClock::new(local.clone());
        assert_eq!(aligned.correct(Duration::milliseconds(400)), Duration::zero(), "noise");
        assert_eq!(aligned.now(), start);
        assert_eq!(aligned.correct(Duration::hours(-2)), Duration::hours(-2));
        assert_eq!(aligned.now(), start - Duration::hours(2));
        local.advance(Duration::minutes(1));
        assert_eq!(aligned.now(), start - Duration::hours(2) + Duration::minutes(1), "it still moves");
        assert_eq!(aligned.correct(Duration::milliseconds(5)), Duration::hours(-2) + Duration::milliseconds(5));
        assert_eq!(aligned.correct(Duration::hours(2)), Duration::zero(), "the local clock was fixed");
        assert_eq!(ManualClock::new(start).correct(Duration::hours(1)), Duration::zero(), "only aligned clocks move");
    }
}
