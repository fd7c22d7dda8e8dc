//! Keeps this replica's clock on the database's: retention, token expiry and
//! event order are then decided on one clock, whichever replica decides.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;

use super::{ServiceResult, Services};
use crate::clock::{ALIGNMENT_TOLERANCE, Clock};
use crate::metadata::{MetaResult, MetadataStore};

/// Samples per measurement; the one with the shortest round trip counts.
const SAMPLES: usize = 3;
/// A measurement whose best round trip took longer says too little (a busy
/// pool or network): the clock is left as it is.
const MAX_ROUND_TRIP: StdDuration = StdDuration::from_millis(500);

/// Reads the database's clock and aligns `clock` to it; the correction now
/// applied, or `None` when every sample took too long to tell.
pub async fn align(clock: &dyn Clock, store: &dyn MetadataStore) -> MetaResult<Option<Duration>> {
    let mut best: Option<(StdDuration, chrono::DateTime<chrono::Utc>, Instant)> = None;
    for _ in 0..SAMPLES {
        let sent = Instant::now();
        let database = store.database_now().await?;
        let received = Instant::now();
        let round_trip = received - sent;
        if best.is_none_or(|(fastest, ..)| round_trip < fastest) {
            // The server read its clock, on average, half a round trip before the answer arrived.
            let reference = database + Duration::from_std(round_trip / 2).unwrap_or_default();
            best = Some((round_trip, reference, received));
        }
    }
    Ok(best.filter(|(round_trip, ..)| *round_trip <= MAX_ROUND_TRIP).map(|(_, at, measured)| clock.align(at, measured)))
}

impl Services {
    /// Measures how far the database's clock reads from this replica's and
    /// aligns this replica's to it; answers the correction applied.
    pub async fn align_clock(&self) -> ServiceResult<Duration> {
        let previous = Duration::milliseconds(self.metrics.clock_offset_milliseconds.get());
        let Some(applied) = align(&*self.clock, &*self.store).await? else {
            tracing::warn!("the database answered too slowly to compare clocks; measured again in a minute");
            return Ok(previous);
        };
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
