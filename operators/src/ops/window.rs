//! Event-time tumbling and sliding windows per device and metric.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract};
use timely::dataflow::operators::{Capability, Operator};
use timely::dataflow::StreamVec;

use crate::event::{DeviceId, Event, MetricId};
use crate::hash::IdHashMap;
use crate::runtime::metrics::Counters;

/// Window shape: `size` long, a new one every `hop` (tumbling when `hop == size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Length in ms.
    pub size_ms: u64,
    /// Distance between window starts in ms.
    pub hop_ms: u64,
}

/// A window specification that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowSpecError {
    /// Zero-length windows or hops.
    #[error("window size and hop must be positive (size {size_ms} ms, hop {hop_ms} ms)")]
    Zero {
        /// Size.
        size_ms: u64,
        /// Hop.
        hop_ms: u64,
    },
    /// Windows longer than [`MAX_WINDOW_MS`].
    #[error("window size {size_ms} ms is over the limit of {} ms (366 days)", MAX_WINDOW_MS)]
    TooLong {
        /// Size.
        size_ms: u64,
    },
    /// More than [`MAX_WINDOWS_PER_EVENT`] windows would hold each event.
    #[error(
        "window size {size_ms} ms with hop {hop_ms} ms puts every event in {} windows; at most {} are allowed (use a longer hop)",
        size_ms / hop_ms,
        MAX_WINDOWS_PER_EVENT
    )]
    TooManyWindows {
        /// Size.
        size_ms: u64,
        /// Hop.
        hop_ms: u64,
    },
    /// Every event must fall into a whole number of windows.
    #[error("window size {size_ms} ms must be a multiple of the hop {hop_ms} ms")]
    NotMultiple {
        /// Size.
        size_ms: u64,
        /// Hop.
        hop_ms: u64,
    },
}

/// Longest window: 366 days (so `start + size` never overflows and a window's state is bounded
/// in event time).
pub const MAX_WINDOW_MS: u64 = 366 * 86_400_000;

/// Most windows one event may fall into (`size / hop`): each is an aggregate updated per event.
pub const MAX_WINDOWS_PER_EVENT: u64 = 4096;

impl WindowSpec {
    /// Non-overlapping windows of `size_ms`.
    pub fn tumbling(size_ms: u64) -> Result<Self, WindowSpecError> {
        Self::sliding(size_ms, size_ms)
    }

    /// Windows of `size_ms` starting every `hop_ms`.
    pub fn sliding(size_ms: u64, hop_ms: u64) -> Result<Self, WindowSpecError> {
        if size_ms == 0 || hop_ms == 0 {
            return Err(WindowSpecError::Zero { size_ms, hop_ms });
        }
        if size_ms > MAX_WINDOW_MS {
            return Err(WindowSpecError::TooLong { size_ms });
        }
        if size_ms % hop_ms != 0 {
            return Err(WindowSpecError::NotMultiple { size_ms, hop_ms });
        }
        if size_ms / hop_ms > MAX_WINDOWS_PER_EVENT {
            return Err(WindowSpecError::TooManyWindows { size_ms, hop_ms });
        }
        Ok(WindowSpec { size_ms, hop_ms })
    }

    /// Start times of the windows containing `ts`, oldest first.
    #[inline]
    pub fn starts(&self, ts: u64) -> impl Iterator<Item = u64> {
        let last = ts - ts % self.hop_ms;
        let span = self.size_ms - self.hop_ms;
        let first = last.saturating_sub(span);
        let first = first + (self.hop_ms - first % self.hop_ms) % self.hop_ms;
        (first..=last).step_by(self.hop_ms as usize)
    }
}

/// Running statistics of one window (Welford's online mean and variance).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Agg {
    count: u64,
    min: f64,
    max: f64,
    mean: f64,
    m2: f64,
    first: (u64, u64, f64),
    last: (u64, u64, f64),
}

impl Agg {
    fn new(e: &Event) -> Self {
        let point = (e.ts, e.seq, e.value);
        Agg { count: 1, min: e.value, max: e.value, mean: e.value, m2: 0.0, first: point, last: point }
    }

    #[inline]
    fn add(&mut self, e: &Event) {
        let v = e.value;
        self.count += 1;
        let delta = v - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        // Ties on time break on seq then value, so the result does not depend on arrival order.
        let point = (e.ts, e.seq, e.value);
        if key_lt(point, self.first) {
            self.first = point;
        }
        if key_lt(self.last, point) {
            self.last = point;
        }
    }
}

#[inline]
fn key_lt(a: (u64, u64, f64), b: (u64, u64, f64)) -> bool {
    (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)).is_lt()
}

/// Rounds away the last 12 bits of the mantissa (keeping about 12 significant digits).
/// Floating-point sums depend on arrival order, which depends on how input is split over
/// workers; rounding makes a window's result the same whatever the worker count (the
/// dropped bits are below the error Welford's updates accumulate anyway). Two bit
/// operations, so it costs nothing per window.
#[inline]
pub fn canonical(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    const HALF: u64 = 1 << 11;
    const MASK: u64 = !((1 << 12) - 1);
    // Round half up on the magnitude; a carry into the exponent is the correct result.
    f64::from_bits((x.to_bits().wrapping_add(HALF)) & MASK)
}

/// The closed result of one window for one device and metric.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowAgg {
    /// Device.
    pub device: DeviceId,
    /// Metric.
    pub metric: MetricId,
    /// Window start (inclusive), ms.
    pub start: u64,
    /// Window end (exclusive), ms.
    pub end: u64,
    /// Number of events.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean value.
    pub mean: f64,
    /// Population variance.
    pub variance: f64,
    /// Value of the earliest event.
    pub first: f64,
    /// Value of the latest event.
    pub last: f64,
}

/// Which number of a window a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// Number of events.
    Count,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Mean.
    Mean,
    /// Population variance.
    Variance,
    /// Standard deviation.
    Stddev,
    /// Earliest value.
    First,
    /// Latest value.
    Last,
}

impl Field {
    /// The field's name as written in rules files.
    pub fn name(self) -> &'static str {
        match self {
            Field::Count => "count",
            Field::Min => "min",
            Field::Max => "max",
            Field::Mean => "mean",
            Field::Variance => "variance",
            Field::Stddev => "stddev",
            Field::First => "first",
            Field::Last => "last",
        }
    }
}

impl WindowAgg {
    /// The value of `field`.
    pub fn field(&self, field: Field) -> f64 {
        match field {
            Field::Count => self.count as f64,
            Field::Min => self.min,
            Field::Max => self.max,
            Field::Mean => self.mean,
            Field::Variance => self.variance,
            Field::Stddev => canonical(self.variance.sqrt()),
            Field::First => self.first,
            Field::Last => self.last,
        }
    }
}

/// Extension trait: event-time windows per device and metric.
pub trait Windows<'scope> {
    /// Groups events into `spec` windows per (device, metric) and emits each window's
    /// [`WindowAgg`] once the input frontier passes its end (never on arrival or wall-clock
    /// time), at time `end - 1`. Exchanges by device.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use sensorflow_operators::{Counters, DeviceId, Event, MetricId, WindowAgg, WindowSpec, Windows};
    ///
    /// let out = timely::example(|scope| {
    ///     let ev = |ts, value| Event { device: DeviceId(1), metric: MetricId(2), ts, value, seq: ts };
    ///     vec![ev(0, 1.0), ev(500, 3.0), ev(1000, 10.0)]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .windows(WindowSpec::tumbling(1000).unwrap(), Counters::shared())
    ///         .capture()
    /// });
    /// let wins: Vec<WindowAgg> = sensorflow_operators::testing::captured(&out);
    /// assert_eq!(wins.len(), 2);
    /// assert_eq!((wins[0].start, wins[0].count, wins[0].mean), (0, 2, 2.0));
    /// assert_eq!((wins[1].start, wins[1].max), (1000, 10.0));
    /// ```
    fn windows(self, spec: WindowSpec, counters: Arc<Counters>) -> StreamVec<'scope, u64, WindowAgg>;

    /// [`Windows::windows`] with the caller's choice of partitioning: `Pipeline` when the
    /// stream is already exchanged by device (as after [`crate::Dedupe`]), saving a second
    /// exchange of every event.
    fn windows_core<P>(
        self,
        pact: P,
        spec: WindowSpec,
        counters: Arc<Counters>,
    ) -> StreamVec<'scope, u64, WindowAgg>
    where
        P: ParallelizationContract<u64, Vec<Event>>;
}

type WindowState = (Capability<u64>, IdHashMap<(u64, u64), Agg>);

impl<'scope> Windows<'scope> for StreamVec<'scope, u64, Event> {
    fn windows(self, spec: WindowSpec, counters: Arc<Counters>) -> StreamVec<'scope, u64, WindowAgg> {
        self.windows_core(Exchange::new(|e: &Event| e.device.0), spec, counters)
    }

    fn windows_core<P>(
        self,
        pact: P,
        spec: WindowSpec,
        counters: Arc<Counters>,
    ) -> StreamVec<'scope, u64, WindowAgg>
    where
        P: ParallelizationContract<u64, Vec<Event>>,
    {
        self.unary_frontier(pact, "Windows", move |_cap, _info| {
            let mut open: BTreeMap<u64, WindowState> = BTreeMap::new();
            let mut out_buf: Vec<WindowAgg> = Vec::new();
            // Maps of closed windows, emptied and kept for the next windows to open: a window
            // with many keys then costs no allocation and no rehashing as it fills.
            let mut spare: Vec<IdHashMap<(u64, u64), Agg>> = Vec::new();
            let tumbling = spec.hop_ms == spec.size_ms;
            // Keys of the last window closed: a new map (when no spare one is left, as while a
            // batch spanning many windows is read) starts at that size instead of growing to it.
            let mut last_len = 0usize;
            let sized = |n: usize| IdHashMap::with_capacity_and_hasher(n, Default::default());
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    let Some(&floor) = cap.least() else { return };
                    for batch in data {
                        // Consecutive events mostly share a window: keep it at hand instead
                        // of looking it up in the map for every event.
                        let mut current: Option<(u64, &mut WindowState)> = None;
                        for e in batch.drain(..) {
                            if tumbling {
                                // One window per event: while it is the current one's, no
                                // division and no window lookup.
                                let state = match current.take() {
                                    Some((end, state)) if e.ts < end && e.ts >= end - spec.size_ms => {
                                        (end, state)
                                    }
                                    _ => {
                                        let end = e.ts - e.ts % spec.size_ms + spec.size_ms;
                                        let at = (end - 1).max(floor);
                                        let state = open.entry(end).or_insert_with(|| {
                                            (
                                                cap.delayed(&at, 0),
                                                spare.pop().unwrap_or_else(|| sized(last_len)),
                                            )
                                        });
                                        (end, state)
                                    }
                                };
                                state
                                    .1
                                     .1
                                    .entry((e.device.0, e.metric.0))
                                    .and_modify(|a| a.add(&e))
                                    .or_insert_with(|| Agg::new(&e));
                                current = Some(state);
                                continue;
                            }
                            for start in spec.starts(e.ts) {
                                let end = start + spec.size_ms;
                                let state = match current.take() {
                                    Some((cur_end, state)) if cur_end == end => state,
                                    _ => {
                                        // Batches are stamped at or below their events' times,
                                        // so `end - 1 >= floor` for every on-time event.
                                        let at = (end - 1).max(floor);
                                        open.entry(end).or_insert_with(|| {
                                            (
                                                cap.delayed(&at, 0),
                                                spare.pop().unwrap_or_else(|| sized(last_len)),
                                            )
                                        })
                                    }
                                };
                                state
                                    .1
                                    .entry((e.device.0, e.metric.0))
                                    .and_modify(|a| a.add(&e))
                                    .or_insert_with(|| Agg::new(&e));
                                current = Some((end, state));
                            }
                        }
                    }
                });
                while let Some(entry) = open.first_entry() {
                    if frontier.less_equal(entry.get().0.time()) {
                        break;
                    }
                    let end = *entry.key();
                    let (cap, mut aggs) = entry.remove();
                    last_len = aggs.len();
                    out_buf.extend(aggs.drain().map(|((d, m), a)| WindowAgg {
                        device: DeviceId(d),
                        metric: MetricId(m),
                        start: end - spec.size_ms,
                        end,
                        count: a.count,
                        min: a.min,
                        max: a.max,
                        mean: canonical(a.mean),
                        variance: canonical(a.m2 / a.count as f64),
                        first: a.first.2,
                        last: a.last.2,
                    }));
                    Counters::add(&counters.windows_closed, out_buf.len() as u64);
                    crate::runtime::probe::record(
                        crate::runtime::probe::Hop::WindowClosed,
                        end,
                        out_buf.len() as u64,
                    );
                    output.session(&cap).give_container(&mut out_buf);
                    out_buf.clear();
                    if spare.len() < 4 {
                        spare.push(aggs);
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_starts() {
        let w = WindowSpec::tumbling(1000).unwrap();
        assert_eq!(w.starts(0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts(999).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts(1000).collect::<Vec<_>>(), vec![1000]);
    }

    #[test]
    fn sliding_starts_cover_the_event() {
        let w = WindowSpec::sliding(1000, 250).unwrap();
        assert_eq!(w.starts(1100).collect::<Vec<_>>(), vec![250, 500, 750, 1000]);
        assert_eq!(w.starts(100).collect::<Vec<_>>(), vec![0]);
        assert_eq!(w.starts(600).collect::<Vec<_>>(), vec![0, 250, 500]);
        assert_eq!(w.starts(1000).collect::<Vec<_>>(), vec![250, 500, 750, 1000]);
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(WindowSpec::tumbling(0).is_err());
        assert!(WindowSpec::sliding(1000, 300).is_err());
    }

    #[test]
    fn canonical_hides_last_bit_differences() {
        assert_eq!(canonical(0.1 + 0.2), canonical(0.3));
        assert_ne!(0.1 + 0.2, 0.3, "the inputs really differ");
        // Summation order changes the last bits; canonical values agree.
        let xs: Vec<f64> = (1..1000).map(|i| 1.0 / i as f64).collect();
        let fwd: f64 = xs.iter().sum();
        let back: f64 = xs.iter().rev().sum();
        assert_ne!(fwd, back);
        assert_eq!(canonical(fwd), canonical(back));
        for x in [1.5, -2.25, 1e12, 123.456, -7e-9] {
            assert!((canonical(x) - x).abs() <= x.abs() * 1e-12, "{x}");
        }
        assert_eq!(canonical(0.0), 0.0);
        assert!(canonical(f64::NAN).is_nan());
        assert_eq!(canonical(f64::INFINITY), f64::INFINITY);
    }
}
