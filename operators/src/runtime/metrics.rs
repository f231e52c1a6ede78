//! Counters shared by every worker of a process; operators add per batch, not per event.
//!
//! Everything here is lock-free on the hot path (relaxed atomics); readers (the end-of-run
//! summary, the `/metrics` endpoint) take a consistent-enough snapshot whenever they like.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Process-wide pipeline counters. The invariant a run checks at the end:
/// `records_in == events_processed + late + dead_lettered + duplicates`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read by sources (good, bad, late and duplicate alike).
    pub records_in: AtomicU64,
    /// Records diverted to the dead-letter output.
    pub dead_lettered: AtomicU64,
    /// Events whose timestamp the clock guard rejected (also counted as dead-lettered).
    pub clock_rejected: AtomicU64,
    /// Events behind their partition's watermark, diverted to the late output.
    pub late: AtomicU64,
    /// Events dropped as duplicates of an earlier (device, seq).
    pub duplicates: AtomicU64,
    /// Events that reached the windows.
    pub events_processed: AtomicU64,
    /// Events whose seq was too far behind the device's newest to check; passed on.
    pub dedupe_horizon_exceeded: AtomicU64,
    /// Per-series state (model history and calibration, pending rule episodes) dropped after
    /// its idle time.
    pub evicted_series: AtomicU64,
    /// Per-device state (de-duplication windows, device models) dropped after its idle time.
    pub evicted_devices: AtomicU64,
    /// Model windows scored.
    pub windows_scored: AtomicU64,
    /// Device rows scored by the device model.
    pub device_rows_scored: AtomicU64,
    /// Windows closed and emitted.
    pub windows_closed: AtomicU64,
    /// Alerts emitted (fired and cleared).
    pub alerts: AtomicU64,
    /// Alerts a sink had already written (same key) and skipped.
    pub alerts_deduplicated: AtomicU64,
    /// Names whose 64-bit id collided with another name.
    pub name_collisions: AtomicU64,
    /// Per worker of this process (indexed by the worker's local index); empty if the
    /// counters were made without a worker count.
    pub workers: Box<[WorkerCounters]>,
    /// Time one `Scorer::score_batch` call took, microseconds.
    pub scoring_us: LogHistogram,
    /// Every source partition this process reads, registered when its reader starts.
    partitions: Mutex<Vec<Arc<PartitionGauge>>>,
    /// Clock-guard rejections by device name: the first [`CLOCK_DEVICES_NAMED`] devices
    /// rejected are named, the rest counted together (so a fleet of broken clocks cannot
    /// grow the map or the `/metrics` page without bound).
    clock_by_device: Mutex<ClockRejections>,
}

/// Devices [`Counters::clock_rejected_by_device`] names at most.
pub const CLOCK_DEVICES_NAMED: usize = 100;

/// Clock-guard rejections per device (see [`Counters::clock_rejected_by_device`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockRejections {
    /// Rejections of each named device.
    pub named: std::collections::BTreeMap<String, u64>,
    /// Rejections of devices beyond the named ones.
    pub others: u64,
}

/// What one worker's source read and passed on.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Records read (good and bad).
    pub records_in: AtomicU64,
    /// Events passed into the dataflow (neither late nor dead-lettered).
    pub events_out: AtomicU64,
}

/// One source partition's event-time progress, updated by the reading worker.
#[derive(Debug)]
pub struct PartitionGauge {
    /// The partition's name (`kafka:topic/3`, a file path, `simulator/1`).
    pub name: String,
    /// The worker (local index) reading it.
    pub worker: usize,
    /// The partition's watermark (ms since the epoch; 0 before its first event).
    pub watermark_ms: AtomicU64,
    /// The newest event time read from it.
    pub max_ts_ms: AtomicU64,
    /// Set once the partition has been read to its end.
    pub done: std::sync::atomic::AtomicBool,
    /// Times the partition was held back because the graph was too far behind it.
    pub held_back: AtomicU64,
    /// Time it spent held back, microseconds.
    pub held_back_us: AtomicU64,
    /// Whether it is held back now.
    pub holding: std::sync::atomic::AtomicBool,
}

impl PartitionGauge {
    /// How far the watermark trails the newest event read (the lateness allowance plus
    /// whatever holds it back), ms.
    pub fn lag_ms(&self) -> u64 {
        self.max_ts_ms.load(Ordering::Relaxed).saturating_sub(self.watermark_ms.load(Ordering::Relaxed))
    }
}

/// A histogram with fixed, roughly logarithmic bucket bounds (1-2.5-5 per decade from 10 µs
/// to 10 s), recorded with one relaxed atomic add per sample: cheap enough for every scoring
/// batch and every alert, and exactly what Prometheus' histogram type wants.
#[derive(Debug)]
pub struct LogHistogram {
    counts: [AtomicU64; LogHistogram::BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }
}

impl LogHistogram {
    /// Upper bounds of the buckets, microseconds (an implicit +Inf bucket follows).
    pub const BOUNDS_US: [u64; 19] = [
        10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000,
    ];

    /// Records one sample of `us` microseconds.
    #[inline]
    pub fn record(&self, us: u64) {
        let i = Self::BOUNDS_US.iter().position(|&b| us <= b).unwrap_or(Self::BOUNDS_US.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Cumulative counts per upper bound in seconds (the last bound is +Inf), the sum in
    /// seconds and the total count: Prometheus' histogram shape.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            let bound = Self::BOUNDS_US.get(i).map_or(f64::INFINITY, |&b| b as f64 / 1e6);
            buckets.push((bound, total));
        }
        (buckets, self.sum_us.load(Ordering::Relaxed) as f64 / 1e6, total)
    }

    /// The upper bound (µs) of the bucket holding quantile `q` of the samples, or `None` if
    /// there are none (`u64::MAX` if it falls in the +Inf bucket).
    pub fn quantile_bound(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

impl Counters {
    /// A fresh shared set of counters.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A fresh shared set of counters with per-worker slots for `workers` local workers.
    pub fn for_workers(workers: usize) -> Arc<Self> {
        Arc::new(Counters {
            workers: (0..workers).map(|_| WorkerCounters::default()).collect(),
            ..Self::default()
        })
    }

    /// The slots of local worker `worker`, if the counters have them.
    pub fn worker(&self, worker: usize) -> Option<&WorkerCounters> {
        self.workers.get(worker)
    }

    /// Registers a source partition read by local worker `worker`; the reader updates it.
    pub fn register_partition(&self, name: String, worker: usize) -> Arc<PartitionGauge> {
        let gauge = Arc::new(PartitionGauge {
            name,
            worker,
            watermark_ms: AtomicU64::new(0),
            max_ts_ms: AtomicU64::new(0),
            done: std::sync::atomic::AtomicBool::new(false),
            held_back: AtomicU64::new(0),
            held_back_us: AtomicU64::new(0),
            holding: std::sync::atomic::AtomicBool::new(false),
        });
        crate::lock(&self.partitions).push(gauge.clone());
        gauge
    }

    /// Every registered partition.
    pub fn partitions(&self) -> Vec<Arc<PartitionGauge>> {
        crate::lock(&self.partitions).clone()
    }

    /// Counts `n` clock-guard rejections of `device` (in [`Counters::clock_rejected`] too).
    /// Rare by nature (a lying clock), so a lock per rejected batch and device is cheap.
    pub fn clock_rejected(&self, device: &str, n: u64) {
        Counters::add(&self.clock_rejected, n);
        let mut by = crate::lock(&self.clock_by_device);
        if let Some(c) = by.named.get_mut(device) {
            *c += n;
        } else if by.named.len() < CLOCK_DEVICES_NAMED {
            by.named.insert(device.to_string(), n);
        } else {
            by.others += n;
        }
    }

    /// Clock-guard rejections by device so far.
    pub fn clock_rejected_by_device(&self) -> ClockRejections {
        crate::lock(&self.clock_by_device).clone()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_histogram_buckets_are_cumulative_and_quantiles_pick_the_right_bucket() {
        let h = LogHistogram::default();
        for us in [5, 10, 11, 400, 400, 400, 20_000_000] {
            h.record(us);
        }
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 7);
        assert!((sum - 20_001_226.0 / 1e6).abs() < 1e-9, "{sum}");
        // <=10 µs: 5 and 10; <=25 µs adds 11; <=500 µs adds the three 400s; +Inf adds 20 s.
        assert_eq!(buckets[0], (10e-6, 2));
        assert_eq!(buckets[1], (25e-6, 3));
        assert_eq!(buckets[5], (500e-6, 6));
        assert_eq!(buckets[18].1, 6);
        assert_eq!(buckets[19], (f64::INFINITY, 7));
        assert_eq!(h.quantile_bound(0.5), Some(500));
        assert_eq!(h.quantile_bound(0.25), Some(10));
        assert_eq!(h.quantile_bound(0.4), Some(25));
        assert_eq!(h.quantile_bound(1.0), Some(u64::MAX));
        assert_eq!(LogHistogram::default().quantile_bound(0.5), None);
    }
}
