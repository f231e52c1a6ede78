//! Per-partition watermarks with allowed lateness and an idle timeout, and per-device clocks
//! for inputs ordered per device ([`EventTimeMode::Device`]).

use std::time::{Duration, Instant};

use crate::hash::IdHashMap;

/// Against whose progress an event is judged late.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventTimeMode {
    /// Against its partition's newest event minus the lateness.
    #[default]
    Partition,
    /// Against its device's newest event minus the lateness, and its partition's newest minus
    /// `spread_ms` (how far devices may differ): for files ordered per device, recordings of
    /// several devices one after another. The partition's watermark is its newest minus the
    /// larger of the two, so windows close that much later.
    Device {
        /// How far behind the partition's newest event a device may be, ms (> 0).
        spread_ms: u64,
    },
}

#[derive(Clone, Debug)]
struct PartitionClock {
    max_ts: Option<u64>,
    /// Since when the partition has had nothing to read (live sources only).
    quiet_since: Option<Instant>,
    done: bool,
}

/// Tracks the watermark of each partition a source worker reads.
///
/// A partition's watermark is the largest event time it has produced minus the allowed
/// lateness (in [`EventTimeMode::Device`], minus the larger of it and the spread). The
/// source's frontier is the least watermark over partitions that are neither finished nor
/// idle: a partition is idle once it has had nothing to read for `idle_timeout`
/// (bounded inputs never report "nothing to read", so they are never idle). An idle partition
/// that wakes up finds the frontier may have moved on; its events behind it are late.
#[derive(Clone, Debug)]
pub struct Watermarks {
    lateness: u64,
    /// How far the watermark trails the newest event: the lateness, or in device mode the
    /// larger of it and the spread (no event still acceptable is below it).
    hold_back: u64,
    idle_timeout: Duration,
    parts: Vec<PartitionClock>,
}

impl Watermarks {
    /// Clocks for `partitions` partitions, judged per partition.
    pub fn new(partitions: usize, lateness_ms: u64, idle_timeout: Duration) -> Self {
        Self::with_mode(partitions, lateness_ms, EventTimeMode::Partition, idle_timeout)
    }

    /// Clocks for `partitions` partitions whose watermarks trail as `mode` needs.
    pub fn with_mode(
        partitions: usize,
        lateness_ms: u64,
        mode: EventTimeMode,
        idle_timeout: Duration,
    ) -> Self {
        let part = PartitionClock { max_ts: None, quiet_since: None, done: false };
        let hold_back = match mode {
            EventTimeMode::Partition => lateness_ms,
            EventTimeMode::Device { spread_ms } => lateness_ms.max(spread_ms),
        };
        Watermarks { lateness: lateness_ms, hold_back, idle_timeout, parts: vec![part; partitions] }
    }

    /// The allowed lateness in ms.
    pub fn lateness(&self) -> u64 {
        self.lateness
    }

    /// How far a partition's watermark trails its newest event, ms.
    pub fn hold_back(&self) -> u64 {
        self.hold_back
    }

    /// The partition's own watermark (0 before it produced anything).
    #[inline]
    pub fn watermark(&self, part: usize) -> u64 {
        self.parts[part].max_ts.map_or(0, |m| m.saturating_sub(self.hold_back))
    }

    /// The largest event time the partition produced.
    pub fn max_ts(&self, part: usize) -> Option<u64> {
        self.parts[part].max_ts
    }

    /// Records that the partition produced an event at `max_ts` (its largest in a batch).
    #[inline]
    pub fn observe(&mut self, part: usize, max_ts: u64) {
        let p = &mut self.parts[part];
        p.max_ts = Some(p.max_ts.map_or(max_ts, |m| m.max(max_ts)));
    }

    /// Records that the partition had data (or is being read) at this moment.
    pub fn active(&mut self, part: usize) {
        self.parts[part].quiet_since = None;
    }

    /// Records that the partition had nothing to read at `now`.
    pub fn quiet(&mut self, part: usize, now: Instant) {
        let p = &mut self.parts[part];
        p.quiet_since.get_or_insert(now);
    }

    /// Marks the partition exhausted.
    pub fn finish(&mut self, part: usize) {
        self.parts[part].done = true;
    }

    /// Whether the partition is exhausted.
    pub fn is_done(&self, part: usize) -> bool {
        self.parts[part].done
    }

    /// Whether every partition is exhausted.
    pub fn all_done(&self) -> bool {
        self.parts.iter().all(|p| p.done)
    }

    /// Whether the partition counts as idle at `now`.
    pub fn is_idle(&self, part: usize, now: Instant) -> bool {
        self.parts[part].quiet_since.is_some_and(|since| now.duration_since(since) >= self.idle_timeout)
    }

    /// The least watermark over live, non-idle partitions. When every partition that is not
    /// finished is idle, the largest watermark any partition reached: idle partitions never
    /// hold progress back, and whatever they produce below it on waking is late. `None` when
    /// all are finished, or nothing has been read yet.
    pub fn frontier(&self, now: Instant) -> Option<u64> {
        let live = (0..self.parts.len())
            .filter(|&i| !self.parts[i].done && !self.is_idle(i, now))
            .map(|i| self.watermark(i))
            .min();
        if live.is_some() || self.all_done() {
            return live;
        }
        (0..self.parts.len()).filter(|&i| self.parts[i].max_ts.is_some()).map(|i| self.watermark(i)).max()
    }

    /// How long until the earliest quiet partition turns idle, if any is quiet.
    pub fn next_idle_deadline(&self, now: Instant) -> Option<Duration> {
        self.parts
            .iter()
            .filter(|p| !p.done)
            .filter_map(|p| p.quiet_since)
            .map(|since| (since + self.idle_timeout).saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .min()
    }
}

/// Sweeps never run on maps smaller than this: a few thousand entries cost nothing.
const MIN_SWEEP: usize = 4_096;

/// The newest event time of each device of one partition ([`EventTimeMode::Device`]).
///
/// An entry matters only while its device's bound (newest − lateness) is above the
/// partition's watermark; below it, the partition bound judges that device's events the same
/// way, so the entry can go. Sweeps run when the map has doubled since the last one, so the
/// map holds at most about twice the devices seen within the spread, at O(1) amortised cost.
#[derive(Clone, Debug)]
pub struct DeviceClocks {
    lateness: u64,
    newest: IdHashMap<u64, u64>,
    sweep_at: usize,
}

impl DeviceClocks {
    /// Empty clocks for devices allowed `lateness_ms` behind their own newest event.
    pub fn new(lateness_ms: u64) -> Self {
        DeviceClocks { lateness: lateness_ms, newest: IdHashMap::default(), sweep_at: MIN_SWEEP }
    }

    /// The least time an event of `device` may have to be on time by its own device's
    /// progress (0 for a device not seen, or forgotten).
    #[inline]
    pub fn bound(&self, device: u64) -> u64 {
        self.newest.get(&device).map_or(0, |n| n.saturating_sub(self.lateness))
    }

    /// Records an on-time event of `device` at `ts`.
    #[inline]
    pub fn observe(&mut self, device: u64, ts: u64) {
        let n = self.newest.entry(device).or_insert(ts);
        *n = (*n).max(ts);
    }

    /// Forgets devices whose bound is at or below `watermark` (the partition's), once the map
    /// has doubled since the last sweep.
    pub fn sweep(&mut self, watermark: u64) {
        if self.newest.len() < self.sweep_at {
            return;
        }
        let lateness = self.lateness;
        self.newest.retain(|_, n| n.saturating_sub(lateness) > watermark);
        self.sweep_at = (2 * self.newest.len()).max(MIN_SWEEP);
    }

    /// Devices remembered.
    pub fn len(&self) -> usize {
        self.newest.len()
    }

    /// Whether no device is remembered.
    pub fn is_empty(&self) -> bool {
        self.newest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_mode_watermark_trails_by_the_larger_of_lateness_and_spread() {
        let now = Instant::now();
        let mut w = Watermarks::with_mode(1, 100, EventTimeMode::Device { spread_ms: 5_000 }, Duration::ZERO);
        w.observe(0, 20_000);
        assert_eq!((w.hold_back(), w.frontier(now)), (5_000, Some(15_000)));
        let mut w =
            Watermarks::with_mode(1, 9_000, EventTimeMode::Device { spread_ms: 5_000 }, Duration::ZERO);
        w.observe(0, 20_000);
        assert_eq!(w.frontier(now), Some(11_000), "lateness above the spread still holds it back");
        let mut w = Watermarks::new(1, 100, Duration::ZERO);
        w.observe(0, 20_000);
        assert_eq!(w.frontier(now), Some(19_900), "partition mode as before");
    }

    #[test]
    fn device_clocks_bound_each_device_by_its_own_newest_and_forget_those_below_the_watermark() {
        let mut d = DeviceClocks::new(100);
        assert_eq!(d.bound(7), 0, "an unseen device has no bound of its own");
        d.observe(7, 5_000);
        d.observe(7, 4_000);
        assert_eq!(d.bound(7), 4_900, "the newest counts, minus the lateness");
        // Fill past the sweep size: devices 0..MIN_SWEEP at 1_000..; a watermark of 3_000
        // leaves only those whose own bound is above it.
        for dev in 0..MIN_SWEEP as u64 {
            d.observe(1_000_000 + dev, 1_000 + dev);
        }
        assert_eq!(d.len(), MIN_SWEEP + 1);
        d.sweep(3_000);
        // Kept: device 7 (4_900) and those with 1_000 + dev - 100 > 3_000, i.e. dev > 2_100.
        assert_eq!(d.len(), 1 + (MIN_SWEEP - 2_101));
        assert_eq!(d.bound(7), 4_900);
        assert_eq!(d.bound(1_000_000), 0, "forgotten");
        let kept = d.len();
        d.sweep(1_000_000);
        assert_eq!(d.len(), kept, "no sweep until the map has doubled again");
    }

    #[test]
    fn frontier_is_least_watermark_minus_lateness() {
        let mut w = Watermarks::new(2, 100, Duration::from_secs(1));
        let now = Instant::now();
        w.observe(0, 1_000);
        assert_eq!(w.frontier(now), Some(0), "partition 1 has produced nothing yet");
        w.observe(1, 5_000);
        assert_eq!(w.frontier(now), Some(900));
        w.finish(0);
        assert_eq!(w.frontier(now), Some(4_900));
        w.finish(1);
        assert_eq!(w.frontier(now), None);
        assert!(w.all_done());
    }

    #[test]
    fn quiet_partition_stops_holding_the_frontier_after_timeout() {
        let mut w = Watermarks::new(2, 0, Duration::from_millis(50));
        let t0 = Instant::now();
        w.observe(0, 10_000);
        w.quiet(1, t0);
        assert_eq!(w.frontier(t0), Some(0), "quiet but not yet idle");
        assert_eq!(w.next_idle_deadline(t0), Some(Duration::from_millis(50)));
        let later = t0 + Duration::from_millis(60);
        assert_eq!(w.frontier(later), Some(10_000), "idle partition no longer holds it");
        w.active(1);
        assert_eq!(w.frontier(later), Some(0), "woken partition holds it again");
    }

    #[test]
    fn all_idle_releases_up_to_the_highest_watermark() {
        let mut w = Watermarks::new(3, 0, Duration::from_millis(1));
        let t0 = Instant::now();
        w.observe(0, 7);
        w.observe(1, 9);
        w.finish(1);
        w.quiet(0, t0);
        w.quiet(2, t0);
        assert_eq!(w.frontier(t0), Some(0), "partition 2 is quiet, not yet idle, and empty");
        assert_eq!(w.frontier(t0 + Duration::from_millis(5)), Some(9));
        let mut empty = Watermarks::new(1, 0, Duration::from_millis(1));
        empty.quiet(0, t0);
        assert_eq!(empty.frontier(t0 + Duration::from_millis(5)), None, "nothing read, nothing to release");
    }
}
