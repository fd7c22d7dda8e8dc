//! Guesses at secrets (login passwords, second-factor codes, share-link
//! passwords): each guess is counted before it is checked, so that guesses
//! sent in parallel cannot outrun the lockout, and a right guess then gives
//! its count back.

use chrono::{DateTime, Utc};

use super::auth::chrono_duration;
use super::{ServiceError, ServiceResult, Services};
use crate::metadata::{AttemptClaim, Settle, ThrottleRule, ThrottleScope};

/// One counted guess, to settle if it proves right.
#[derive(Debug)]
pub(crate) struct Claimed {
    scope: ThrottleScope,
    subject: String,
    lock: Option<DateTime<Utc>>,
}

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

    /// Counts one guess against each subject, in order. The first locked
    /// subject refuses the guess (429 with `detail`); the guesses already
    /// counted stand, as any refused guess's would.
    pub(crate) async fn claim_guess(
        &self,
        subjects: &[(ThrottleScope, &str)],
        detail: &str,
    ) -> ServiceResult<Vec<Claimed>> {
        let now = self.clock.now();
        let mut claims = Vec::with_capacity(subjects.len());
        for &(scope, subject) in subjects {
            let rule = if scope == ThrottleScope::Ip { self.ip_rule() } else { self.account_rule() };
            match self.store.claim_attempt(scope, subject, now, rule).await? {
                AttemptClaim::Allowed { lock } => claims.push(Claimed { scope, subject: subject.to_owned(), lock }),
                AttemptClaim::Locked { until } => {
                    return Err(ServiceError::TooManyRequests {
                        detail: detail.to_owned(),
                        retry_after: (until - now).to_std().unwrap_or_default(),
                    });
                }
            }
        }
        Ok(claims)
    }

    /// The guess was right: an account's, a code's or a link's failures are
    /// forgotten; an address, shared by many people, only gets this guess back.
    pub(crate) async fn guess_was_right(&self, claims: Vec<Claimed>) -> ServiceResult<()> {
        for claim in claims {
            let settle = if claim.scope == ThrottleScope::Ip { Settle::Refund } else { Settle::Reset };
            self.store.settle_attempt(claim.scope, &claim.subject, settle, claim.lock).await?;
        }
        Ok(())
    }
}
