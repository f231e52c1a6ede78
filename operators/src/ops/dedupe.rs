//! Drops events whose (device, seq) was already seen.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Operator;
use timely::dataflow::StreamVec;
use timely::progress::Timestamp;

use smallvec::SmallVec;

use crate::event::{Event, NO_SEQ};
use crate::hash::IdHashMap;
use crate::runtime::evict::{Evictor, StateIdle};
use crate::runtime::metrics::Counters;

/// Most runs of consecutive seqs remembered per device: a run starts wherever a device's seqs
/// arrive out of order (a gap to fill later, as when two workers' parts of a file interleave).
/// When a run past this many would start, the lowest run is forgotten: seqs at or below it are
/// then too old to judge (passed on and counted).
pub const MAX_SEQ_RUNS: usize = 64;

/// Per-device memory of the seqs seen, as sorted, disjoint runs of consecutive seqs. In-order
/// input extends one run (one comparison and one store per event); input that interleaves a
/// few in-order streams (a file's blocks read by several workers, a replay beside the live
/// feed) keeps a few runs that merge as the gaps fill, so it is judged exactly however far the
/// streams are apart. Memory grows with the gaps, not the seqs, up to [`MAX_SEQ_RUNS`].
#[derive(Clone, Debug, Default)]
pub struct SeqWindow {
    /// Inclusive (first, last) runs of seen seqs, sorted, never touching.
    runs: SmallVec<[(u64, u64); 2]>,
    /// Seqs below this are no longer known (a run was forgotten).
    floor: u64,
    /// The run the last seq landed in (where in-order input lands next).
    cursor: usize,
}

/// What [`SeqWindow::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// Not seen before.
    New,
    /// Seen before.
    Duplicate,
    /// Below the runs still remembered: cannot tell, so it is passed on (and counted).
    TooOld,
}

impl SeqWindow {
    /// Records `seq` and says whether it was new.
    #[inline(always)]
    pub fn check(&mut self, seq: u64) -> SeqCheck {
        let c = self.cursor;
        if let Some(&(_, last)) = self.runs.get(c) {
            // The common case, the next seq of the cursor's run, with no run right after it.
            let free = self.runs.get(c + 1).is_none_or(|&(next, _)| next > seq.wrapping_add(1));
            if seq == last.wrapping_add(1) && seq != 0 && free {
                self.runs[c].1 = seq;
                return SeqCheck::New;
            }
        }
        self.check_general(seq)
    }

    /// [`SeqWindow::check`] for any seq.
    #[inline(never)]
    fn check_general(&mut self, seq: u64) -> SeqCheck {
        if seq < self.floor {
            return SeqCheck::TooOld;
        }
        // Runs starting at or before `seq`.
        let i = self.runs.partition_point(|&(first, _)| first <= seq);
        if i > 0 && self.runs[i - 1].1 >= seq {
            return SeqCheck::Duplicate;
        }
        let joins_before = i > 0 && self.runs[i - 1].1 + 1 == seq;
        let joins_after = i < self.runs.len() && seq.checked_add(1) == Some(self.runs[i].0);
        self.cursor = match (joins_before, joins_after) {
            (true, true) => {
                self.runs[i - 1].1 = self.runs[i].1;
                self.runs.remove(i);
                i - 1
            }
            (true, false) => {
                self.runs[i - 1].1 = seq;
                i - 1
            }
            (false, true) => {
                self.runs[i].0 = seq;
                i
            }
            (false, false) => {
                self.runs.insert(i, (seq, seq));
                i
            }
        };
        if self.runs.len() > MAX_SEQ_RUNS {
            let (_, last) = self.runs.remove(0);
            self.floor = last + 1;
            self.cursor = self.cursor.saturating_sub(1);
        }
        SeqCheck::New
    }

    /// Runs of consecutive seqs remembered.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

/// A device's seqs as the operator keeps them: most devices of a large fleet send few events,
/// so the runs are allocated only with a device's second seq (the answers are those of a
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
    /// (exactly, while its seqs form at most [`MAX_SEQ_RUNS`] runs; seqs below a forgotten run
    /// pass and are counted in `dedupe_horizon_exceeded`). Events without a seq ([`NO_SEQ`]) always pass.
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
            assert_eq!(matches!(seen, Seen::Many(_)), first != second, "the runs come with a second seq");
        }
    }

    #[test]
    fn seq_window_in_order_and_replayed() {
        let mut w = SeqWindow::default();
        for s in 0..1000 {
            assert_eq!(w.check(s), SeqCheck::New, "seq {s}");
        }
        for s in (0..1000).rev() {
            assert_eq!(w.check(s), SeqCheck::Duplicate, "seq {s}: a replay is known however old");
        }
        assert_eq!(w.runs(), 1);
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
        assert_eq!(w.check(200), SeqCheck::Duplicate);
        assert_eq!(w.check(7), SeqCheck::New);
        assert_eq!(w.check(9), SeqCheck::New);
        assert_eq!(w.check(8), SeqCheck::New, "fills the gap between 5–7 and 9–10");
        // 5–10, 130, 200, 999–1000.
        assert_eq!(w.runs(), 4);
    }

    #[test]
    fn two_interleaved_in_order_streams_are_judged_exactly_however_far_apart() {
        // Two workers reading alternate blocks of 5,000 seqs of one device, one far ahead of the
        // other, then the whole range replayed.
        let mut w = SeqWindow::default();
        let blocks: Vec<std::ops::Range<u64>> = (0..8).map(|b| b * 5000..(b + 1) * 5000).collect();
        let (even, odd): (Vec<_>, Vec<_>) = blocks.iter().cloned().partition(|r| r.start / 5000 % 2 == 0);
        for r in even.into_iter().chain(odd) {
            for s in r {
                assert_eq!(w.check(s), SeqCheck::New, "seq {s}");
            }
        }
        assert_eq!(w.runs(), 1, "the gaps filled and the runs merged");
        for s in 0..40_000 {
            assert_eq!(w.check(s), SeqCheck::Duplicate, "seq {s}");
        }
    }

    #[test]
    fn past_the_most_runs_the_lowest_is_forgotten_and_older_seqs_pass_as_too_old() {
        let mut w = SeqWindow::default();
        // Every other seq: each one a run of its own.
        for k in 0..=MAX_SEQ_RUNS as u64 {
            assert_eq!(w.check(2 * k), SeqCheck::New);
        }
        assert_eq!(w.runs(), MAX_SEQ_RUNS, "bounded");
        assert_eq!(w.check(0), SeqCheck::TooOld, "the forgotten run");
        assert_eq!(w.check(1), SeqCheck::New, "just above it, still known to be unseen");
        assert_eq!(w.check(1), SeqCheck::Duplicate);
        assert_eq!(w.check(2 * MAX_SEQ_RUNS as u64), SeqCheck::Duplicate);
    }

    #[test]
    fn the_largest_seqs_do_not_overflow() {
        let mut w = SeqWindow::default();
        assert_eq!(w.check(u64::MAX - 1), SeqCheck::New);
        assert_eq!(w.check(u64::MAX - 2), SeqCheck::New);
        assert_eq!(w.check(u64::MAX - 1), SeqCheck::Duplicate);
        assert_eq!(w.check(0), SeqCheck::New);
        assert_eq!(w.check(1), SeqCheck::New);
        assert_eq!(w.runs(), 2);
    }
}
