//! Drops events whose (device, seq) was already seen.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;
use timely::progress::Timestamp;

use crate::event::{Event, NO_SEQ};
use crate::hash::IdHashMap;
use crate::runtime::evict::{Evictor, StateIdle};
use crate::runtime::metrics::Counters;

/// How many sequence numbers behind a device's newest one are remembered exactly.
pub const DEDUPE_HORIZON: u64 = 256;

/// Per-device memory of recent sequence numbers: the newest one and a bitmap of the
/// [`DEDUPE_HORIZON`] below it. In-order input costs one shift and one bit per event.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqWindow {
    newest: Option<u64>,
    /// Bit `i` set: `newest - 1 - i` was seen.
    below: [u64; 4],
}

/// What [`SeqWindow::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not seen before.
    New,
    /// Seen before.
    Duplicate,
    /// Older than the horizon: cannot tell, so it is passed on (and counted).
    TooOld,
}

impl SeqWindow {
    /// Records `seq` and says whether it was new.
    #[inline]
    pub fn check(&mut self, seq: u64) -> SeqCheck {
        let Some(newest) = self.newest else {
            self.newest = Some(seq);
            return SeqCheck::New;
        };
        if seq > newest {
            let shift = seq - newest;
            self.shift(shift);
            // The old newest is now `shift - 1` below the new one.
            self.set(shift - 1);
            self.newest = Some(seq);
            SeqCheck::New
        } else if seq == newest {
            SeqCheck::Duplicate
        } else {
            let back = newest - 1 - seq;
            if back >= DEDUPE_HORIZON {
                return SeqCheck::TooOld;
            }
            if self.get(back) {
                SeqCheck::Duplicate
            } else {
                self.set(back);
                SeqCheck::New
            }
        }
    }

    fn shift(&mut self, by: u64) {
        if by >= DEDUPE_HORIZON {
            self.below = [0; 4];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        let old = self.below;
        for i in (0..4).rev() {
            let mut v = if i >= words { old[i - words] << bits } else { 0 };
            if bits > 0 && i > words {
                v |= old[i - words - 1] >> (64 - bits);
            }
            self.below[i] = v;
        }
    }

    fn set(&mut self, back: u64) {
        if back < DEDUPE_HORIZON {
            self.below[(back / 64) as usize] |= 1 << (back % 64);
        }
    }

    fn get(&self, back: u64) -> bool {
        self.below[(back / 64) as usize] & (1 << (back % 64)) != 0
    }
}

/// A device's seqs as the operator keeps them: most devices of a large fleet send few events,
/// so the bitmap is allocated only with a device's second seq (the answers are those of a
/// [`SeqWindow`] from the start).
enum Seen {
    One(u64),
    Many(Box<SeqWindow>),
}

impl Seen {
    #[inline]
    fn check(&mut self, seq: u64) -> SeqCheck {
        match self {
            Seen::Many(w) => w.check(seq),
            Seen::One(first) if *first == seq => SeqCheck::Duplicate,
            Seen::One(first) => {
                let mut w = SeqWindow::default();
                w.check(*first);
                let out = w.check(seq);
                *self = Seen::Many(Box::new(w));
                out
            }
        }
    }
}

/// Extension trait: de-duplicate events on (device, seq).
pub trait Dedupe<'scope, T: Timestamp> {
    /// Exchanges events by device and drops any whose `seq` the device already produced
    /// (within [`DEDUPE_HORIZON`] of its newest; older ones pass and are counted in
    /// `dedupe_horizon_exceeded`). Events without a seq ([`NO_SEQ`]) always pass.
    /// Also counts what passes as `events_processed`.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use sensorflow_operators::{Counters, Dedupe, DeviceId, Event, MetricId, StateIdle};
    ///
    /// let counters = Counters::shared();
    /// let c = counters.clone();
    /// let out = timely::example(move |scope| {
    ///     let e = Event { device: DeviceId(1), metric: MetricId(1), ts: 5, value: 1.0, seq: 9 };
    ///     vec![e, e].to_stream(scope).container::<Vec<_>>().dedupe(c, StateIdle(None)).capture()
    /// });
    /// let kept: Vec<Event> = sensorflow_operators::testing::captured(&out);
    /// assert_eq!(kept.len(), 1);
    /// assert_eq!(Counters::get(&counters.duplicates), 1);
    /// ```
    fn dedupe(self, counters: Arc<Counters>, idle: StateIdle) -> StreamVec<'scope, T, Event>;
}

impl<'scope, T: Timestamp> Dedupe<'scope, T> for StreamVec<'scope, T, Event> {
    fn dedupe(self, counters: Arc<Counters>, idle: StateIdle) -> StreamVec<'scope, T, Event> {
        let exchange = Exchange::new(|e: &Event| e.device.0);
        self.unary(exchange, "Dedupe", move |_cap, _info| {
            // Each device's seqs, and the newest event time they came with.
            let mut seen: IdHashMap<u64, (Seen, u64)> = IdHashMap::default();
            let mut evictor = Evictor::new(idle);
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    let (mut dups, mut old, mut kept, mut returned) = (0u64, 0u64, 0u64, 0u64);
                    for batch in data {
                        batch.retain(|e| {
                            if e.seq == NO_SEQ {
                                return true;
                            }
                            evictor.saw(e.ts);
                            let (window, last) = match seen.entry(e.device.0) {
                                Entry::Occupied(o) => o.into_mut(),
                                Entry::Vacant(v) => {
                                    v.insert((Seen::One(e.seq), e.ts));
                                    return true;
                                }
                            };
                            // Back after its idle time: a fresh device. (An event far *before*
                            // the newest is checked as it is: resetting on it would flap between
                            // two readers a long way apart in event time.)
                            if evictor.expired(*last, e.ts) {
                                *window = Seen::One(e.seq);
                                *last = e.ts;
                                returned += 1;
                                return true;
                            }
                            *last = (*last).max(e.ts);
                            match window.check(e.seq) {
                                SeqCheck::New => true,
                                SeqCheck::Duplicate => {
                                    dups += 1;
                                    false
                                }
                                SeqCheck::TooOld => {
                                    old += 1;
                                    true
                                }
                            }
                        });
                        kept += batch.len() as u64;
                        session.give_container(batch);
                    }
                    Counters::add(&counters.duplicates, dups);
                    Counters::add(&counters.dedupe_horizon_exceeded, old);
                    Counters::add(&counters.events_processed, kept);
                    if returned > 0 {
                        tracing::debug!(devices = returned, "devices back after their idle time start fresh");
                        Counters::add(&counters.evicted_devices, returned);
                    }
                });
                let gone = evictor.sweep(&mut seen, |(_, last)| Some(*last));
                if !gone.is_empty() {
                    tracing::debug!(devices = gone.len(), "de-duplication windows of idle devices dropped");
                    Counters::add(&counters.evicted_devices, gone.len() as u64);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_with_one_seq_answers_as_the_full_window_does() {
        for (first, second) in [(5, 5), (5, 6), (5, 4), (300, 10), (10, 300)] {
            let mut seen = Seen::One(first);
            let mut w = SeqWindow::default();
            w.check(first);
            assert_eq!(seen.check(second), w.check(second), "{first} then {second}");
            assert_eq!(seen.check(second), w.check(second), "{first} then {second} twice");
            assert_eq!(matches!(seen, Seen::Many(_)), first != second, "the bitmap comes with a second seq");
        }
    }

    #[test]
    fn seq_window_in_order_and_replayed() {
        let mut w = SeqWindow::default();
        for s in 0..1000 {
            assert_eq!(w.check(s), SeqCheck::New, "seq {s}");
        }
        for s in 800..1000 {
            assert_eq!(w.check(s), SeqCheck::Duplicate, "seq {s}");
        }
        assert_eq!(w.check(10), SeqCheck::TooOld);
    }

    #[test]
    fn seq_window_out_of_order_and_gaps() {
        let mut w = SeqWindow::default();
        assert_eq!(w.check(10), SeqCheck::New);
        assert_eq!(w.check(5), SeqCheck::New);
        assert_eq!(w.check(5), SeqCheck::Duplicate);
        assert_eq!(w.check(200), SeqCheck::New);
        assert_eq!(w.check(10), SeqCheck::Duplicate);
        assert_eq!(w.check(5), SeqCheck::Duplicate);
        assert_eq!(w.check(6), SeqCheck::New);
        assert_eq!(w.check(130), SeqCheck::New);
        assert_eq!(w.check(130), SeqCheck::Duplicate);
        assert_eq!(w.check(1000), SeqCheck::New);
        assert_eq!(w.check(999), SeqCheck::New);
        assert_eq!(w.check(999), SeqCheck::Duplicate);
        assert_eq!(w.check(1000), SeqCheck::Duplicate);
        assert_eq!(w.check(200), SeqCheck::TooOld);
    }
}
