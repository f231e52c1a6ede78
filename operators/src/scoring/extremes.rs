//! The extremes of a series: the range of its values, its longest run of repeats and the range of
//! its short-term level, and whether a new value breaks one of them.
//!
//! A model that sees a normalised window of recent values cannot know that a value is the
//! highest or lowest the series has ever had. [`RangeGuard`] adds that, after HTM's NAB
//! detector and its "spatial anomaly": once a series has shown [`RangeParams::warmup`]
//! values, a value beyond the range it has shown so far scores 1 if it lies beyond by more
//! than [`RangeParams::steps`] times the series' typical step (the mean absolute difference of
//! consecutive values). The range only widens and the margin is in steps, so a noisy series
//! that trends into new ground is not flagged at each noise excursion (HTM's margin, 5 % of
//! the range, flagged thousands of those on the simulator's fleet); a jump is.
//!
//! The same guard keeps a second record, the longest run of identical consecutive values: a
//! run longer than any before by more than [`RangeParams::run_margin`] values scores 1 for as
//! long as it lasts. A stuck sensor repeats its last reading, which a noisy series never does
//! and a quantised one (counts, whole percentages) does only as long as it has before; the
//! model, seeing a normalised window, is slow to tell a flat stretch from a calm one.
//!
//! And a third, the range of the series' level: its short-term mean (exponentially weighted,
//! about ten values) beyond the range of all its earlier short-term means by more than
//! [`RangeParams::level_margin`] of its own typical steps. A single value moves that mean by a
//! tenth of its deviation, so this flags a high (or low) that lasts longer than any before:
//! one sample at 20 in a series around 10 widens the value range to 20, but two at 18 later
//! still take the mean where it has never been.

use serde::{Deserialize, Serialize};

/// Settings of the range check.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RangeParams {
    /// Values a series must have shown before its range counts: a young series widens its
    /// range with nearly every noise excursion and walk step. (NAB gives detectors 15 % of a
    /// file, at most 750 rows, to learn in.)
    pub warmup: u64,
    /// How far beyond the range a value must lie, in typical steps of the series.
    pub steps: f64,
    /// With `Some(m)`, a run of identical values longer than the longest before it by more
    /// than `m` values also scores 1 (cards written before this existed have none).
    #[serde(default)]
    pub run_margin: Option<u64>,
    /// With `Some(m)`, a short-term mean beyond the range of the earlier ones by more than
    /// `m` of its typical steps also scores 1 (cards written before this existed have none).
    #[serde(default)]
    pub level_margin: Option<f64>,
}

impl Default for RangeParams {
    fn default() -> Self {
        // Chosen on the synthetic NAB-like corpora and the simulator's fleet
        // (models/EXPERIMENTS.md): a warm-up of 300 let young series alert falsely, 2 steps
        // kept every fleet alert true where 1–1.5 did not; run margins of 0, 3 and 10 scored
        // alike, and the wider margin spares quantised series; a level margin of 5 scored
        // best of those that kept the fleet's alerts ≥ 90 % true.
        RangeParams { warmup: 600, steps: 2.0, run_margin: Some(3), level_margin: Some(5.0) }
    }
}

/// The records of one series: the range of values it has shown so far, its longest run of
/// identical values and the range of its short-term mean; whether a new value breaks them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RangeGuard {
    params: RangeParams,
    seen: u64,
    lo: f64,
    hi: f64,
    last: f64,
    step: f64,
    /// Values in the current run that repeat the one before them.
    run: u64,
    /// The longest such run that has ended.
    longest_run: u64,
    /// Short-term mean, its typical step, and the range of its earlier values.
    level: f64,
    level_step: f64,
    level_lo: f64,
    level_hi: f64,
}

/// Weight of the newest value in the short-term mean (about ten values).
const LEVEL_ALPHA: f64 = 0.1;
/// Values before the short-term mean's range is kept (its start leans on the first values).
const LEVEL_SETTLE: u64 = 20;

/// Effective length (values) of the typical step's running mean.
const STEP_HORIZON: f64 = 256.0;

impl RangeGuard {
    /// A fresh guard.
    pub fn new(params: RangeParams) -> Self {
        RangeGuard {
            params,
            seen: 0,
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            last: 0.0,
            step: 0.0,
            run: 0,
            longest_run: 0,
            level: 0.0,
            level_step: 0.0,
            level_lo: f64::INFINITY,
            level_hi: f64::NEG_INFINITY,
        }
    }

    /// Takes the next value: whether it lies beyond the range of the values before it by
    /// more than the margin, extends a run of repeats past the record by more than the run
    /// margin, or moves the short-term mean beyond its range by more than the level margin.
    /// Non-finite values are ignored.
    pub fn observe(&mut self, v: f64) -> bool {
        if !v.is_finite() {
            return false;
        }
        if self.seen > 0 && v == self.last {
            self.run += 1;
        } else {
            self.longest_run = self.longest_run.max(self.run);
            self.run = 0;
        }
        let previous_level = self.level;
        if self.seen == 0 {
            self.level = v;
        } else {
            self.level += LEVEL_ALPHA * (v - self.level);
        }
        // (At least one value is needed for a range.)
        let beyond = self.seen >= self.params.warmup.max(1) && {
            let margin = self.params.steps * self.step;
            let stuck = self.params.run_margin.is_some_and(|m| self.run > self.longest_run + m);
            let level = self.params.level_margin.is_some_and(|m| {
                let margin = m * self.level_step;
                self.level > self.level_hi + margin || self.level < self.level_lo - margin
            });
            v > self.hi + margin || v < self.lo - margin || stuck || level
        };
        if self.seen > 0 {
            // 1/n while young, then a fixed weight (no division per value).
            let alpha =
                if self.seen as f64 >= STEP_HORIZON { 1.0 / STEP_HORIZON } else { 1.0 / self.seen as f64 };
            self.step += alpha * ((v - self.last).abs() - self.step);
            self.level_step += alpha * ((self.level - previous_level).abs() - self.level_step);
        }
        if self.seen > LEVEL_SETTLE {
            // The first few means still lean on the first values.
            self.level_lo = self.level_lo.min(self.level);
            self.level_hi = self.level_hi.max(self.level);
        }
        self.last = v;
        self.seen += 1;
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
        beyond
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jumps_beyond_the_range_so_far_are_flagged() {
        let mut g =
            RangeGuard::new(RangeParams { warmup: 10, steps: 2.0, run_margin: None, level_margin: None });
        // Warm-up: even a wild value is not flagged.
        let warm: Vec<bool> =
            [0.0, 10.0, 5.0, 1000.0, 5.0, 6.0, 4.0, 5.0, 5.0, 5.0].map(|v| g.observe(v)).into();
        assert!(warm.iter().all(|b| !b), "{warm:?}");
        // Range 0..1000; typical step so far: (10 + 5 + 995 + 995 + 1 + 2 + 1 + 0 + 0) / 9 = 223.
        assert!(!g.observe(1400.0), "within 2 steps (446) of the maximum");
        // Step now (2009 + 1395) / 10 = 340.4; margin 680.8.
        assert!(g.observe(2100.0), "beyond the maximum (1400) by more than 2 steps");
        assert!(!g.observe(f64::NAN), "non-finite values are ignored");
        // A slow climb widens the range step by step and is never flagged.
        let climb: Vec<bool> = (0..1000).map(|i| g.observe(2100.0 + f64::from(i))).collect();
        assert!(climb.iter().all(|b| !b));
        // After a long calm stretch the typical step is small, and a jump below the minimum counts.
        assert!(g.observe(-300.0));
    }

    #[test]
    fn a_run_of_repeats_longer_than_any_before_by_the_margin_is_flagged_while_it_lasts() {
        let mut g =
            RangeGuard::new(RangeParams { warmup: 20, steps: 2.0, run_margin: Some(3), level_margin: None });
        // A quantised series: 0 1 1 2 2 2 0 1 1 2 2 2 …: its longest run of repeats is 2.
        let pattern = [0.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        let normal: Vec<bool> = (0..120).map(|i| g.observe(pattern[i % 6])).collect();
        assert!(normal.iter().all(|b| !b), "its own runs are normal");
        // Stuck at 1.5 (the first value starts the run): repeats 1..=5 are within 2 + 3; the
        // 6th and later are flagged.
        let stuck: Vec<bool> = (0..9).map(|_| g.observe(1.5)).collect();
        assert_eq!(stuck, [false, false, false, false, false, false, true, true, true]);
        // Once it moves again the run ends and becomes the record (8 repeats).
        assert!(!g.observe(0.0));
        // The first 1.5 starts the run, the next ones repeat it: the 12th repeat is flagged.
        let again: Vec<bool> = (0..14).map(|_| g.observe(1.5)).collect();
        assert_eq!(again.iter().position(|&b| b), Some(12), "now only beyond 8 + 3 repeats: {again:?}");
        // Without a run margin there is no run check.
        let mut plain =
            RangeGuard::new(RangeParams { warmup: 0, steps: 2.0, run_margin: None, level_margin: None });
        assert!((0..100).all(|_| !plain.observe(5.0)));
    }

    #[test]
    fn a_high_that_lasts_longer_than_any_before_breaks_the_level_record() {
        let params = |level_margin| RangeParams { warmup: 200, steps: 2.0, run_margin: None, level_margin };
        let (mut with, mut without) = (RangeGuard::new(params(Some(5.0))), RangeGuard::new(params(None)));
        // Around 10 (alternating ±0.1), with one sample at 20 at 100: values have reached 20,
        // the short-term mean only about 11.
        let series = |i: usize| {
            if i == 100 {
                20.0
            } else if i % 2 == 0 {
                10.1
            } else {
                9.9
            }
        };
        for i in 0..1000 {
            assert!(!with.observe(series(i)) && !without.observe(series(i)), "normal at {i}");
        }
        // Two samples at 18: within the value range, but the mean goes to about 11.6.
        assert_eq!([with.observe(18.0), with.observe(18.0)], [false, true]);
        assert_eq!([without.observe(18.0), without.observe(18.0)], [false, false]);
        // A single sample at 18 does not: the mean reaches about 10.8.
        let mut once = RangeGuard::new(params(Some(5.0)));
        for i in 0..1000 {
            once.observe(series(i));
        }
        assert!(!once.observe(18.0) && !once.observe(10.0));
    }
}
