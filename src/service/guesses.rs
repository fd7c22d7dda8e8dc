//! Guesses at secrets (login passwords, second-factor codes, share-link
//! passwords): each guess is counted before it is checked, so that guesses
//! sent in parallel cannot outrun the lockout; a right guess then gives its
//! count back, and a wrong one that reaches the threshold locks.

use super::auth::chrono_duration;
use super::{ServiceError, ServiceResult, Services};
use crate::metadata::{AttemptClaim, Settle, ThrottleRule, ThrottleScope};

/// The counted guesses of one attempt, to settle once it is checked.
#[derive(Debug)]
#[must_use = "a claimed guess must be settled: right or wrong"]
pub(crate) struct Claimed(Vec<(ThrottleScope, String)>);

impl Services {
    /// The lockout of one account, one second factor or one share link.
    pub(crate) fn account_rule(&self) -> ThrottleRule {
        ThrottleRule {
            threshold: i64::from(self.config.lockout_threshold),
            window: chrono_duration(self.config.lockout_window),
            lock_for: chrono_duration(self.config.lockout_duration),
        }
    }

    /// The lockout of one client address, across the accounts it tries.
    pub(crate) fn ip_rule(&self) -> ThrottleRule {
        ThrottleRule { threshold: i64::from(self.config.ip_lockout_threshold), ..self.account_rule() }
    }

    fn rule_of(&self, scope: ThrottleScope) -> ThrottleRule {
        if scope == ThrottleScope::Ip { self.ip_rule() } else { self.account_rule() }
    }

    /// Counts one guess against each subject, in order. The first locked
    /// subject refuses the guess (429 with `detail`); what was counted before
    /// it is given back, since nothing was checked.
    pub(crate) async fn claim_guess(&self, subjects: &[(ThrottleScope, &str)], detail: &str) -> ServiceResult<Claimed> {
        let now = self.clock.now();
        let mut claimed = Claimed(Vec::with_capacity(subjects.len()));
        for &(scope, subject) in subjects {
            match self.store.claim_attempt(scope, subject, now, self.rule_of(scope)).await? {
                AttemptClaim::Allowed => claimed.0.push((scope, subject.to_owned())),
                AttemptClaim::Locked { until } => {
                    self.settle_guess(claimed, Some(Settle::Refund)).await?;
                    return Err(ServiceError::TooManyRequests {
                        detail: detail.to_owned(),
                        retry_after: (until - now).to_std().unwrap_or_default(),
                    });
                }
            }
        }
        Ok(claimed)
    }

    /// The guess was right: an account's, a code's or a link's failures are
    /// forgotten; an address, shared by many people, only gets this guess back.
    pub(crate) async fn guess_was_right(&self, claimed: Claimed) -> ServiceResult<()> {
        self.settle_guess(claimed, None).await
    }

    /// The guess was wrong: it stays counted, and locks at the threshold.
    pub(crate) async fn guess_was_wrong(&self, claimed: Claimed) -> ServiceResult<()> {
        self.settle_guess(claimed, Some(Settle::Failed)).await
    }

    /// `None`: right (reset, or refund for an address).
    async fn settle_guess(&self, claimed: Claimed, outcome: Option<Settle>) -> ServiceResult<()> {
        let now = self.clock.now();
        for (scope, subject) in claimed.0 {
            let outcome = outcome.unwrap_or(if scope == ThrottleScope::Ip { Settle::Refund } else { Settle::Reset });
            self.store.settle_attempt(scope, &subject, outcome, (now, self.rule_of(scope))).await?;
        }
        Ok(())
    }
}
