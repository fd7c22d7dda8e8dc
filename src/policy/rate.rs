//! Request rate limits as GCRA (the generic cell rate algorithm), pure: one
//! number per subject — the theoretical arrival time (TAT) of its next
//! request — is all the state, so Redis can run the same rule atomically in
//! a Lua script (`cache::redis`) and a replica can run it alone when Redis is down.

use std::time::Duration;

/// `limit` requests per `period`: a burst of up to `limit`, refilled at
/// `limit / period` — so any window of length `w` admits at most
/// `limit + w × limit / period` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub period: Duration,
}

impl Quota {
    pub fn per_minute(limit: u32) -> Self {
        Self { limit, period: Duration::from_secs(60) }
    }

    /// Microseconds between requests at the steady rate.
    pub fn interval_micros(&self) -> i64 {
        let period = i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX);
        (period / i64::from(self.limit.max(1))).max(1)
    }

    /// How far ahead of now the TAT may run: a full period's worth of requests.
    pub fn tolerance_micros(&self) -> i64 {
        self.interval_micros() * i64::from(self.limit.max(1))
    }
}

/// The verdict on one request, with what `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The state to keep (unchanged when denied).
    pub tat: i64,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until a denied request would pass; 0 when allowed.
    pub retry_after_micros: i64,
    /// Until the subject is back to a full quota.
    pub reset_micros: i64,
}

/// Decides one request at `now` (microseconds) given the stored TAT.
pub fn decide(quota: Quota, stored_tat: Option<i64>, now: i64) -> RateDecision {
    let interval = quota.interval_micros();
    let tolerance = quota.tolerance_micros();
    let tat = stored_tat.unwrap_or(now).max(now);
    let next = tat + interval;
    if next - now > tolerance {
        return RateDecision {
            allowed: false,
            tat,
            remaining: 0,
            retry_after_micros: next - tolerance - now,
            reset_micros: tat - now,
        };
    }
    let remaining = u32::try_from((tolerance - (next - now)) / interval).unwrap_or(0);
    RateDecision { allowed: true, tat: next, remaining, retry_after_micros: 0, reset_micros: next - now }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_burst_then_the_steady_rate() {
        let quota = Quota { limit: 3, period: Duration::from_secs(3) };
        let mut tat = None;
        for expected_remaining in [2, 1, 0] {
            let decision = decide(quota, tat, 0);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            tat = Some(decision.tat);
        }
        let denied = decide(quota, tat, 0);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_micros, 1_000_000);
        assert!(decide(quota, tat, 1_000_000).allowed, "one interval later, one more");
    }

    proptest! {
        /// However requests arrive, a window of length `w` admits at most the burst plus
        /// what the rate refills in `w`, and a denied request changes nothing.
        #[test]
        fn never_more_than_the_limit_per_period(
            limit in 1u32..20,
            gaps in prop::collection::vec(0i64..400_000, 1..200),
        ) {
            let quota = Quota { limit, period: Duration::from_secs(1) };
            let mut tat = None;
            let mut now = 0;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                let decision = decide(quota, tat, now);
                if decision.allowed {
                    admitted.push(now);
                    tat = Some(decision.tat);
                } else {
                    prop_assert!(decision.retry_after_micros > 0);
                    prop_assert_eq!(decision.tat, tat.unwrap_or(now).max(now));
                }
            }
            let interval = quota.interval_micros();
            for (i, start) in admitted.iter().enumerate() {
                for window in [interval, 1_000_000, 3_000_000] {
                    let in_window = admitted[i..].iter().take_while(|t| **t < start + window).count() as i64;
                    let bound = i64::from(limit) + (window + interval - 1) / interval;
                    prop_assert!(in_window <= bound, "{in_window} in {window} µs, limit {limit}");
                }
            }
        }
    }
}
