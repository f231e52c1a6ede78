//! Per-partition watermarks with allowed lateness and an idle timeout.

use std::time::{Duration, Instant};

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
/// lateness. The source's frontier is the least watermark over partitions that are neither
/// finished nor idle: a partition is idle once it has had nothing to read for `idle_timeout`
/// (bounded inputs never report "nothing to read", so they are never idle). An idle partition
/// that wakes up finds the frontier may have moved on; its events behind it are late.
#[derive(Clone, Debug)]
pub struct Watermarks {
    lateness: u64,
    idle_timeout: Duration,
    parts: Vec<PartitionClock>,
}

impl Watermarks {
    /// Clocks for `partitions` partitions.
    pub fn new(partitions: usize, lateness_ms: u64, idle_timeout: Duration) -> Self {
        let part = PartitionClock { max_ts: None, quiet_since: None, done: false };
        Watermarks { lateness: lateness_ms, idle_timeout, parts: vec![part; partitions] }
    }

    /// The allowed lateness in ms.
    pub fn lateness(&self) -> u64 {
        self.lateness
    }

    /// The partition's own watermark (0 before it produced anything).
    #[inline]
    pub fn watermark(&self, part: usize) -> u64 {
        self.parts[part].max_ts.map_or(0, |m| m.saturating_sub(self.lateness))
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

#[cfg(test)]
mod tests {
    use super::*;

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
