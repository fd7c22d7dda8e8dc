//! Keeps this replica's clock on the database's: retention, token expiry and
//! event order are then decided on one clock, whichever replica decides.

use chrono::Duration;

use super::{ServiceResult, Services};
use crate::clock::ALIGNMENT_TOLERANCE;

impl Services {
    /// Measures how far the database's clock reads from this replica's and
    /// corrects this replica's clock to it; answers the correction applied.
    pub async fn align_clock(&self) -> ServiceResult<Duration> {
        let before = self.clock.now();
        let database = self.store.database_now().await?;
        let after = self.clock.now();
        let residual = database - (before + (after - before) / 2);
        let previous = Duration::milliseconds(self.metrics.clock_offset_milliseconds.get());
        let applied = self.clock.correct(residual);
        self.metrics.clock_offset_milliseconds.set(applied.num_milliseconds());
        if (applied - previous).abs() >= ALIGNMENT_TOLERANCE {
            tracing::warn!(
                offset_ms = applied.num_milliseconds(),
                "this replica's clock differs from the database's; following the database's (check NTP)"
            );
        }
        Ok(applied)
    }
}
