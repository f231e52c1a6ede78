//! Latency probes along the path an event takes (device publish, bridge, Kafka, engine read,
//! window closed, alert written), for the real-time benchmarks.
//!
//! In a paced run (the simulator at real-time speed 1) an event's time *is* the wall-clock
//! moment it was due, so each hop records `wall clock now − due time`: the time since the
//! event (or, for windows, the window's end) was due, measured where the hop happens. The
//! figures of successive hops are cumulative; a hop's own cost is the difference. Nothing is
//! carried with the events and nothing is recorded unless a benchmark called [`enable`]: every
//! hook is one atomic load otherwise.
//!
//! Moments due at or after the *tail* time (the last windows of a run, closed by the idle
//! timeout rather than by newer events) are kept apart, so they do not pass for the p99.

use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// A place on the path where latency is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// The device (the simulator) handed the event to its MQTT client.
    Published,
    /// The bridge's MQTT session received the event.
    BridgeReceived,
    /// Kafka acknowledged the bridge's produce of the event.
    KafkaAcked,
    /// An engine source read the event.
    EngineRead,
    /// A worker closed a window (the watermark passed its end); one sample per series.
    WindowClosed,
    /// A rule decided an alert (one sample per alert).
    AlertDecided,
    /// An alert was written to its sink.
    AlertWritten,
}

impl Hop {
    /// Every hop, in path order.
    pub const ALL: [Hop; 7] = [
        Hop::Published,
        Hop::BridgeReceived,
        Hop::KafkaAcked,
        Hop::EngineRead,
        Hop::WindowClosed,
        Hop::AlertDecided,
        Hop::AlertWritten,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Hop::Published => "device publish",
            Hop::BridgeReceived => "bridge receive",
            Hop::KafkaAcked => "kafka acknowledged",
            Hop::EngineRead => "engine read",
            Hop::WindowClosed => "window closed",
            Hop::AlertDecided => "alert decided",
            Hop::AlertWritten => "alert written",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One hop's figures in microseconds since the moment was due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopFigures {
    /// The hop.
    pub hop: &'static str,
    /// Samples.
    pub n: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

struct Probe {
    tail_from_ms: u64,
    /// Per hop: (steady, tail).
    hops: Vec<Mutex<(Histogram<u64>, Histogram<u64>)>>,
}

static PROBE: OnceLock<Probe> = OnceLock::new();

/// Turns the probes on for this process; moments due at or after `tail_from_ms` (event time)
/// are counted as the run's tail. Only the first call counts.
pub fn enable(tail_from_ms: u64) {
    let _ = PROBE.get_or_init(|| Probe {
        tail_from_ms,
        hops: Hop::ALL
            .iter()
            .map(|_| {
                // Three significant digits up to an hour: construction cannot fail with these bounds.
                let h = || Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!());
                Mutex::new((h(), h()))
            })
            .collect(),
    });
}

/// Whether the probes are on (check once per batch, then call [`Recorder::record`]).
#[inline]
pub fn active() -> bool {
    PROBE.get().is_some()
}

/// The wall clock in microseconds since the Unix epoch.
pub fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Records `n` samples at `hop` for a moment due at `due_ms` (event time), if the probes are on.
#[inline]
pub fn record(hop: Hop, due_ms: u64, n: u64) {
    if let Some(mut r) = recorder(hop) {
        r.record(due_ms, n);
    }
}

/// A hop's histograms held for a batch of samples (one lock and one clock read per batch).
pub struct Recorder<'a> {
    probe: &'a Probe,
    hist: std::sync::MutexGuard<'a, (Histogram<u64>, Histogram<u64>)>,
    now_us: u64,
}

impl std::fmt::Debug for Recorder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe::Recorder")
    }
}

impl Recorder<'_> {
    /// Records `n` samples for a moment due at `due_ms`.
    #[inline]
    pub fn record(&mut self, due_ms: u64, n: u64) {
        let v = self.now_us.saturating_sub(due_ms.saturating_mul(1000)).max(1);
        let h = if due_ms >= self.probe.tail_from_ms { &mut self.hist.1 } else { &mut self.hist.0 };
        h.saturating_record_n(v, n);
    }
}

/// `hop`'s recorder, stamped now, if the probes are on.
pub fn recorder(hop: Hop) -> Option<Recorder<'static>> {
    let probe = PROBE.get()?;
    let hist = crate::lock(&probe.hops[hop.index()]);
    Some(Recorder { probe, hist, now_us: wall_us() })
}

/// Every hop's (steady, tail) figures, in path order; empty if the probes are off.
pub fn report() -> Vec<(HopFigures, HopFigures)> {
    let Some(probe) = PROBE.get() else { return Vec::new() };
    Hop::ALL
        .iter()
        .map(|&hop| {
            let g = crate::lock(&probe.hops[hop.index()]);
            (figures(hop, &g.0), figures(hop, &g.1))
        })
        .collect()
}

fn figures(hop: Hop, h: &Histogram<u64>) -> HopFigures {
    HopFigures {
        hop: hop.name(),
        n: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_time_since_due_and_the_tail_is_kept_apart() {
        enable(2_000_000_000_000);
        let now_ms = wall_us() / 1000;
        record(Hop::EngineRead, now_ms - 40, 3);
        record(Hop::EngineRead, 2_000_000_000_000, 1); // due in the future: the tail, clamped to 1 µs
        let r = report();
        let (steady, tail) = &r[Hop::EngineRead.index()];
        assert_eq!(steady.n, 3);
        assert!(steady.p50_us >= 40_000 && steady.p50_us < 1_000_000, "{steady:?}");
        assert_eq!(tail.n, 1);
        assert_eq!(r[Hop::Published.index()].0.n, 0);
    }
}
