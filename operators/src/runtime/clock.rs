//! Wall-clock moments at which sources moved their watermarks, for ingest→alert latency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Records, per source worker, when (wall clock) its frontier first reached each event time,
/// so a sink can tell how long ago the input that closed a window was ingested.
///
/// The latency of a window alert is measured from the moment the *last* worker's source
/// ingested the batch that moved its frontier past the window end (the window could not close
/// earlier) to the moment the alert reaches the sink. Only this process's workers are seen.
#[derive(Clone, Debug)]
pub struct WatermarkClock {
    origin: Instant,
    workers: Arc<Vec<Mutex<History>>>,
}

/// (event time reached, nanos since origin), increasing in both.
type History = VecDeque<(u64, u64)>;

impl WatermarkClock {
    /// A clock for `workers` local source workers.
    pub fn new(workers: usize) -> Self {
        let workers = (0..workers).map(|_| Mutex::new(VecDeque::new())).collect();
        WatermarkClock { origin: Instant::now(), workers: Arc::new(workers) }
    }

    /// Nanoseconds since the clock's origin.
    pub fn now_nanos(&self) -> u64 {
        self.nanos(Instant::now())
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// Records that local worker `worker`'s source frontier reached `time` for input ingested at `at`.
    pub fn advance(&self, worker: usize, time: u64, at: Instant) {
        let Some(slot) = self.workers.get(worker) else {
            return;
        };
        let mut q = crate::lock(slot);
        if q.back().is_none_or(|&(t, _)| t < time) {
            q.push_back((time, self.nanos(at)));
        }
    }

    /// When (nanos since origin) every local source had passed `time`, or `None` if one has not.
    pub fn passed_at(&self, time: u64) -> Option<u64> {
        let mut latest = 0;
        for slot in self.workers.iter() {
            let q = crate::lock(slot);
            let idx = q.partition_point(|&(t, _)| t < time);
            latest = latest.max(q.get(idx)?.1);
        }
        Some(latest)
    }

    /// Forgets entries no query at or after `time` can need.
    pub fn forget_before(&self, time: u64) {
        for slot in self.workers.iter() {
            let mut q = crate::lock(slot);
            // Keep the last entry below `time`: it is not needed, but the first one at or
            // above `time` is, and it may be missing yet.
            while q.len() > 1 && q[1].0 <= time {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn passed_at_is_the_last_worker_to_pass() {
        let clock = WatermarkClock::new(2);
        let t0 = clock.origin;
        clock.advance(0, 100, t0 + Duration::from_nanos(10));
        clock.advance(1, 50, t0 + Duration::from_nanos(20));
        assert_eq!(clock.passed_at(80), None, "worker 1 is still behind 80");
        clock.advance(1, 200, t0 + Duration::from_nanos(30));
        assert_eq!(clock.passed_at(80), Some(30));
        assert_eq!(clock.passed_at(100), Some(30));
        assert_eq!(clock.passed_at(40), Some(20));
        clock.advance(0, 300, t0 + Duration::from_nanos(40));
        clock.forget_before(150);
        assert_eq!(clock.passed_at(150), Some(40));
        assert_eq!(clock.passed_at(200), Some(40));
    }
}
