//! Rate-limit state kept in process: the embedded default, and every
//! replica's fallback while Redis is unreachable (limits stay enforced, per
//! replica instead of shared).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::policy::rate::{self, Quota, RateDecision};

/// Subjects tracked before idle ones are swept (bounded memory under address churn).
const MAX_SUBJECTS: usize = 100_000;

#[derive(Default)]
pub struct LocalRates {
    tats: Mutex<HashMap<String, i64>>,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl LocalRates {
    pub fn admit(&self, key: &str, quota: Quota) -> RateDecision {
        let now = now_micros();
        let mut tats = self.tats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tats.len() >= MAX_SUBJECTS {
            // A TAT in the past means a full quota: forgetting it changes no decision.
            tats.retain(|_, tat| *tat > now);
        }
        let decision = rate::decide(quota, tats.get(key).copied(), now);
        if decision.allowed {
            tats.insert(key.to_owned(), decision.tat);
        }
        decision
    }
}
