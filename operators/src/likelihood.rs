//! Anomaly likelihood: turns a model's raw per-window scores into a calibrated score in [0, 1]
//! per series, the way Numenta's HTM detector does for NAB.
//!
//! A raw score means different things on different series: a noisy series keeps a model
//! uneasy, a quiet one keeps it calm. So each series keeps the distribution of its own recent
//! (short-average) raw scores, and the calibrated score says how unusual the current short
//! average is *for that series*: with `z` its deviation in standard deviations, the likelihood
//! is `1 − Q(z)` (Q the Gaussian upper tail), and the output is its log-scaled form
//! `ln(1 − L) / ln(1e-10)`, so 0.5 means a one-in-100,000 event and 1.0 one-in-10^10.
//!
//! Differences from HTM's `AnomalyLikelihood`, for a streaming engine with many series: the
//! long-term mean and variance are exponentially weighted (O(1) memory per series instead of a
//! window of 8,640 values) and only rises above the mean count (a calmer-than-usual model is
//! not an anomaly). Until `warmup` scores have been seen the output is 0.
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
//!
//! The likelihood assumes a series' short-term raw scores are Gaussian; on many real series
//! (bursty counts, schedules) they are not, and the same "one-in-100,000" excursion comes
//! back every few hundred samples. So the likelihood also checks its claims against the
//! series' own history ([`ExcursionParams`]): it counts its *excursions* (episodes at or
//! above [`ExcursionParams::level`]), and
//! - **rate**: when a series has had them more often than the prior of one per
//!   [`ExcursionParams::prior_samples`] samples allows, every score is discounted by that
//!   excess on the log scale: with `n` excursions in `t` scores, the tail the score stands for
//!   is multiplied by `(n + 1) · prior / (t + prior)` (when above 1), i.e. the score drops by
//!   `log10` of that over 10. That is above 1 only while `t < n · prior`: a first excursion is
//!   never discounted, and the discount fades once the series' rate is back within the prior;
//! - **recurrence**: an excursion that starts one period after an earlier one, the period
//!   being the gap between two earlier excursions (three onsets evenly spaced, to within
//!   [`ExcursionParams::period_tolerance`] of the period or two samples; periods of at least
//!   10 scores), is held just below the level (0.01 under it) while it lasts: a nightly job or
//!   a square wave's edge is a schedule, not an anomaly. The last eight onsets are kept. The
//!   hold keeps such an excursion quiet only under an alert threshold at or above the level
//!   (the shipped threshold and level are both 0.5).
//!
//! Neither touches the records: a record broken is new by definition.

use serde::{Deserialize, Serialize};

/// Settings of the calibration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodParams {
    /// Raw scores averaged for the short-term value.
    pub short: usize,
    /// Effective length (samples) of the long-term mean and variance.
    pub long: f64,
    /// Scores seen before the output leaves 0.
    pub warmup: u64,
    /// Smallest standard deviation assumed for the long-term distribution.
    pub min_std: f64,
    /// The range check ([`RangeGuard`]); model cards written before it existed have none.
    #[serde(default)]
    pub range: Option<RangeParams>,
    /// The excursion checks (rate and recurrence); model cards written before they existed
    /// have none.
    #[serde(default)]
    pub excursions: Option<ExcursionParams>,
}

/// Settings of the likelihood's checks against its own history of excursions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExcursionParams {
    /// Score at which an excursion starts; it ends when the score falls 0.1 below.
    pub level: f64,
    /// With `Some(p)`, the prior rate of one excursion per `p` scores: more frequent
    /// excursions discount the series' scores by the excess.
    pub prior_samples: Option<f64>,
    /// With `Some(t)`, an excursion that recurs at the period of two earlier ones, to within
    /// `t` of the period (or two samples, whichever is wider), is held below `level`.
    pub period_tolerance: Option<f64>,
}

impl Default for ExcursionParams {
    fn default() -> Self {
        // Chosen on the synthetic NAB-like corpora (seeds 1–4) and the simulator's fleet
        // (models/EXPERIMENTS.md): priors of 3,000–100,000 samples scored alike and better
        // than none; recurrence to within two samples added a little more.
        ExcursionParams { level: 0.5, prior_samples: Some(3000.0), period_tolerance: Some(0.0) }
    }
}

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

impl Default for LikelihoodParams {
    fn default() -> Self {
        // HTM's averaging window (10) and learning period (288 + 100 estimation samples); its
        // 8,640-sample history as the long-term effective length. The deviation floor 0.15
        // goes with the drift labels of the training data (models/EXPERIMENTS.md): a model
        // that learns to call drifts is less calm, and 0.1 let it alert on the fleet's walks.
        LikelihoodParams {
            short: 10,
            long: 8640.0,
            warmup: 100,
            min_std: 0.15,
            range: Some(RangeParams::default()),
            excursions: Some(ExcursionParams::default()),
        }
    }
}

/// The records of one series: the range of values it has shown so far, its longest run of
/// identical values and the range of its short-term mean; whether a new value breaks them.
#[derive(Clone, Copy, Debug, PartialEq)]
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

/// Everything one series' calibration keeps: the likelihood of its raw scores and, if the
/// parameters ask for it, its range. Every value goes to [`Calibration::observe`] (including
/// those before the first full window), every window's raw score to [`Calibration::score`]
/// with what `observe` said about the window's newest value.
#[derive(Clone, Debug)]
pub struct Calibration {
    likelihood: Likelihood,
    range: Option<RangeGuard>,
}

impl Calibration {
    /// Fresh state.
    pub fn new(params: LikelihoodParams) -> Self {
        Calibration { likelihood: Likelihood::new(params), range: params.range.map(RangeGuard::new) }
    }

    /// Takes the series' next value: whether it breaks one of the series' records.
    pub fn observe(&mut self, value: f64) -> bool {
        self.range.as_mut().is_some_and(|r| r.observe(value))
    }

    /// The calibrated score of a window from its raw score and whether its newest value
    /// jumped beyond the range ([`Calibration::observe`]): 1 if it did, else the likelihood.
    pub fn score(&mut self, raw: f64, beyond_range: bool) -> f64 {
        let likelihood = self.likelihood.update(raw);
        if beyond_range {
            1.0
        } else {
            likelihood
        }
    }
}

/// One series' calibration state (a few dozen bytes plus the short ring).
#[derive(Clone, Debug)]
pub struct Likelihood {
    params: LikelihoodParams,
    ring: Vec<f64>,
    at: usize,
    sum: f64,
    seen: u64,
    mean: f64,
    var: f64,
    excursions: Excursions,
}

/// What the likelihood remembers of its own excursions.
#[derive(Clone, Copy, Debug, Default)]
struct Excursions {
    /// Excursions that have started.
    count: u64,
    /// Whether one is under way, and whether it recurs on schedule.
    active: bool,
    periodic: bool,
    /// Score numbers at which the last [`ONSETS_KEPT`] excursions started (a ring).
    onsets: [u64; ONSETS_KEPT],
}

/// Excursion onsets kept for the recurrence check.
const ONSETS_KEPT: usize = 8;
/// Shortest period (scores) the recurrence check accepts.
const MIN_PERIOD: u64 = 10;

impl Excursions {
    /// Whether an excursion starting at `t` completes an evenly spaced triple with two
    /// earlier onsets.
    fn recurs(&self, t: u64, tolerance: f64) -> bool {
        let kept = &self.onsets[..(self.count as usize).min(ONSETS_KEPT)];
        kept.iter().any(|&a| {
            kept.iter().any(|&b| {
                b < a && a - b >= MIN_PERIOD && {
                    let (period, gap) = ((a - b) as f64, (t - a) as f64);
                    (gap - period).abs() <= (tolerance * period).max(2.0)
                }
            })
        })
    }

    /// Takes the next (uncorrected) score and returns it after the checks.
    fn check(&mut self, params: &ExcursionParams, t: u64, score: f64) -> f64 {
        let mut out = score;
        if let Some(prior) = params.prior_samples {
            // Earlier excursions only: the one under way is what is being judged.
            let earlier = self.count - u64::from(self.active);
            let excess = (earlier as f64 + 1.0) * prior / (t as f64 + prior);
            if excess > 1.0 {
                out = (out - excess.log10() / 10.0).max(0.0);
            }
        }
        if !self.active && score >= params.level {
            self.active = true;
            self.periodic = params.period_tolerance.is_some_and(|tol| self.recurs(t, tol));
            self.onsets[(self.count % ONSETS_KEPT as u64) as usize] = t;
            self.count += 1;
        } else if self.active && score < params.level - 0.1 {
            self.active = false;
        }
        if self.active && self.periodic {
            out = out.min(params.level - 0.01);
        }
        out
    }
}

/// The threshold for calibrated scores: a one-in-100,000 short-term average (HTM's value
/// too). Chosen on the synthetic NAB-like corpora (seeds 1 and 2, thresholds 0.3–0.99 swept:
/// 0.5 was best on both), never on NAB.
pub const LIKELIHOOD_THRESHOLD: f32 = 0.5;

/// `ln(1e-10)`: the log-likelihood scale's floor.
const LOG_FLOOR: f64 = -23.025_850_929_940_457;

impl Likelihood {
    /// Fresh state.
    pub fn new(params: LikelihoodParams) -> Self {
        Likelihood {
            params,
            ring: vec![0.0; params.short.max(1)],
            at: 0,
            sum: 0.0,
            seen: 0,
            mean: 0.0,
            var: 0.0,
            excursions: Excursions::default(),
        }
    }

    /// Takes the next raw score and returns the calibrated one.
    pub fn update(&mut self, raw: f64) -> f64 {
        let raw = if raw.is_finite() { raw } else { 0.0 };
        let n = self.ring.len();
        self.sum += raw - self.ring[self.at];
        self.ring[self.at] = raw;
        self.at = (self.at + 1) % n;
        self.seen += 1;
        let short = self.sum / (self.seen.min(n as u64)) as f64;
        // Score against the distribution as it was before this value joins it.
        let out = if self.seen > self.params.warmup {
            let std = self.var.sqrt().max(self.params.min_std);
            let z = (short - self.mean) / std;
            let tail = 0.5 * erfc(z / std::f64::consts::SQRT_2);
            let likelihood = 1.0 - tail;
            let score = ((1.000_000_000_1 - likelihood).ln() / LOG_FLOOR).clamp(0.0, 1.0);
            match &self.params.excursions {
                Some(params) => self.excursions.check(params, self.seen, score),
                None => score,
            }
        } else {
            0.0
        };
        // Running mean/variance: exact while young, exponentially weighted after `long`.
        let alpha = 1.0 / (self.seen as f64).min(self.params.long);
        let d = short - self.mean;
        self.mean += alpha * d;
        self.var = (1.0 - alpha) * (self.var + alpha * d * d);
        out
    }
}

/// The complementary error function (W. J. Cody's rational approximations via the
/// Numerical Recipes `erfcc` form; relative error below 1.2e-7, enough for a score).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 1e-6, "erfc({x}) = {} not {want}", erfc(x));
        }
    }

    #[test]
    fn quiet_series_score_low_and_a_jump_scores_high() {
        let p = LikelihoodParams { warmup: 100, ..LikelihoodParams::default() };
        let mut l = Likelihood::new(p);
        let mut rng = 1u64;
        let mut noise = || {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (rng >> 33) as f64 / (1u64 << 31) as f64 * 0.1
        };
        let mut before = Vec::new();
        for i in 0..2000 {
            let out = l.update(0.2 + noise());
            if i < 100 {
                assert_eq!(out, 0.0, "warm-up outputs 0");
            } else {
                before.push(out);
            }
        }
        let max_quiet = before.iter().copied().fold(0.0, f64::max);
        assert!(max_quiet < 0.3, "normal scores calibrate low: {max_quiet}");
        // The model becomes sure: within the short window the calibrated score passes 0.5.
        let after: Vec<f64> = (0..10).map(|_| l.update(0.95)).collect();
        assert!(after[9] > 0.5 && after[9] <= 1.0, "{after:?}");
        // Non-finite raw scores count as 0, never as NaN.
        assert!(l.update(f64::NAN).is_finite());
    }

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

    #[test]
    fn a_jump_beyond_the_range_scores_one_whatever_the_raw_score() {
        let params = LikelihoodParams {
            warmup: 20,
            range: Some(RangeParams { warmup: 20, steps: 2.0, run_margin: None, level_margin: None }),
            ..LikelihoodParams::default()
        };
        let mut c = Calibration::new(params);
        let mut last = 0.0;
        for i in 0..200 {
            // 0, 1, …, 6, 0, …: typical step (6 × 1 + 6) / 7 ≈ 1.7, margin ≈ 3.4.
            let beyond = c.observe(f64::from(i % 7));
            last = c.score(0.01, beyond);
        }
        assert!(last < 0.5, "steady raw scores calibrate low: {last}");
        let beyond = c.observe(9.0);
        assert!(c.score(0.01, beyond) < 0.5, "a new extreme within 2 steps");
        let beyond = c.observe(12.8);
        assert_eq!(c.score(0.01, beyond), 1.0, "a new extreme beyond 2 steps");
        let beyond = c.observe(3.0);
        assert!(c.score(0.01, beyond) < 0.5, "and only that value");
        let mut plain = Calibration::new(LikelihoodParams { range: None, ..params });
        for i in 0..200 {
            let beyond = plain.observe(f64::from(i % 7));
            plain.score(0.01, beyond);
        }
        let beyond = plain.observe(1000.0);
        assert!(!beyond && plain.score(0.01, beyond) < 0.5, "without range settings there is no range check");
    }

    /// Peak scores of bursts of raw score `height`, `len` scores long, starting at `starts`,
    /// on a calm series (raw 0.05 ± 0.02), with `excursions`.
    fn burst_peaks(
        excursions: Option<ExcursionParams>,
        starts: &[usize],
        height: f64,
        len: usize,
    ) -> Vec<f64> {
        let params = LikelihoodParams { warmup: 50, range: None, excursions, ..LikelihoodParams::default() };
        let mut l = Likelihood::new(params);
        let end = starts.last().copied().unwrap_or(0) + 200;
        let mut peaks = vec![0.0f64; starts.len()];
        for i in 0..end {
            let burst = starts.iter().position(|&s| (s..s + len + 10).contains(&i));
            let raw = if burst.is_some_and(|b| i < starts[b] + len) {
                height
            } else {
                0.05 + 0.02 * ((i % 3) as f64 - 1.0)
            };
            let out = l.update(raw);
            if let Some(b) = burst {
                peaks[b] = peaks[b].max(out);
            }
        }
        peaks
    }

    #[test]
    fn frequent_excursions_discount_a_series_scores_and_a_rare_one_keeps_its_score() {
        let rate = ExcursionParams { level: 0.5, prior_samples: Some(3000.0), period_tolerance: None };
        // Bursts of 10 raw scores at 0.75 about every 400 scores (jittered by up to 36).
        let starts: Vec<usize> = (0..40).map(|k| 300 + k * 400 + (k * 7919) % 37).collect();
        let unchecked = burst_peaks(None, &starts, 0.75, 10);
        let checked = burst_peaks(Some(rate), &starts, 0.75, 10);
        assert!(unchecked.iter().all(|&p| p >= 0.5), "every burst is an excursion: {unchecked:?}");
        assert!(checked[..3].iter().all(|&p| p >= 0.5), "the first ones still are: {checked:?}");
        assert!(checked[20..].iter().all(|&p| p < 0.5), "later ones are discounted: {checked:?}");
        // With n earlier excursions at score t the discount is log10((n + 1)·3000 / (t + 3000)) / 10:
        // the 30th burst (29 earlier) peaks near t = 300 + 29·400 + 29 + 10 = 11,939: 0.0780.
        let discount = unchecked[29] - checked[29];
        assert!((discount - 0.0780).abs() < 0.002, "{discount}");
        // One burst after a long calm is not discounted at all.
        let once = [5000];
        assert_eq!(burst_peaks(Some(rate), &once, 0.75, 10), burst_peaks(None, &once, 0.75, 10));
    }

    #[test]
    fn an_excursion_that_recurs_on_schedule_is_held_below_the_level() {
        let recur = ExcursionParams { level: 0.5, prior_samples: None, period_tolerance: Some(0.0) };
        let regular: Vec<usize> = (0..10).map(|k| 300 + k * 250).collect();
        let peaks = burst_peaks(Some(recur), &regular, 0.75, 10);
        assert!(peaks[..2].iter().all(|&p| p >= 0.5), "{peaks:?}");
        assert!(peaks[2..].iter().all(|&p| p < 0.5 && p > 0.45), "held just below 0.5: {peaks:?}");
        // Gaps of 250, 370, 290, 410, 330, 450, 310, 390, 270: no three onsets evenly spaced.
        let mut irregular = vec![300];
        for gap in [250, 370, 290, 410, 330, 450, 310, 390, 270] {
            irregular.push(irregular.last().copied().unwrap_or(0) + gap);
        }
        let peaks = burst_peaks(Some(recur), &irregular, 0.75, 10);
        assert!(peaks.iter().all(|&p| p >= 0.5), "{peaks:?}");
        assert_eq!(peaks, burst_peaks(None, &irregular, 0.75, 10));
    }

    #[test]
    fn a_calmer_model_is_not_an_anomaly() {
        let mut l = Likelihood::new(LikelihoodParams { warmup: 50, ..LikelihoodParams::default() });
        for i in 0..500 {
            l.update(if i % 2 == 0 { 0.6 } else { 0.4 });
        }
        // Below the mean the likelihood stays under one half: ln(0.5) / ln(1e-10) ≈ 0.030.
        for _ in 0..20 {
            let out = l.update(0.0);
            assert!(out < 0.031, "{out}");
        }
    }
}
