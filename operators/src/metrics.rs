//! Counters shared by every worker of a process; operators add per batch, not per event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Process-wide pipeline counters. The invariant a run checks at the end:
/// `records_in == events_processed + late + dead_lettered + duplicates`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read by sources (good, bad, late and duplicate alike).
    pub records_in: AtomicU64,
    /// Records diverted to the dead-letter output.
    pub dead_lettered: AtomicU64,
    /// Events behind their partition's watermark, diverted to the late output.
    pub late: AtomicU64,
    /// Events dropped as duplicates of an earlier (device, seq).
    pub duplicates: AtomicU64,
    /// Events that reached the windows.
    pub events_processed: AtomicU64,
    /// Events whose seq was too far behind the device's newest to check; passed on.
    pub dedupe_horizon_exceeded: AtomicU64,
    /// Model windows scored.
    pub windows_scored: AtomicU64,
    /// Windows closed and emitted.
    pub windows_closed: AtomicU64,
    /// Alerts emitted (fired and cleared).
    pub alerts: AtomicU64,
    /// Alerts a sink had already written (same key) and skipped.
    pub alerts_deduplicated: AtomicU64,
    /// Names whose 64-bit id collided with another name.
    pub name_collisions: AtomicU64,
}

impl Counters {
    /// A fresh shared set of counters.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds `n` to `counter`.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
