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
//! Two checks sit beside the likelihood, each in its own module: a value that breaks one of
//! the series' records scores 1 ([`super::records`]), and the likelihood's claims are checked
//! against the series' own history of excursions ([`super::excursions`]).

use serde::{Deserialize, Serialize};

use super::excursions::{ExcursionParams, Excursions};
use super::extremes::{RangeGuard, RangeParams};
use super::normalize::weighted_update;

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

impl LikelihoodParams {
    /// Checks every field's range, so a model card cannot ask for a ring of a billion scores
    /// or an averaging length that makes every score NaN. `Err` names the field and its range.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
        if !(1..=4096).contains(&self.short) {
            return Err(format!("calibration.short = {} is not in 1..=4096", self.short));
        }
        if !finite(self.long, 1.0, 1e9) {
            return Err(format!("calibration.long = {} is not in [1, 1e9]", self.long));
        }
        if self.warmup > 1_000_000_000 {
            return Err(format!("calibration.warmup = {} is over 1e9", self.warmup));
        }
        if !(finite(self.min_std, 0.0, 1e6) && self.min_std > 0.0) {
            return Err(format!("calibration.min_std = {} is not in (0, 1e6]", self.min_std));
        }
        if let Some(r) = &self.range {
            if r.warmup > 1_000_000_000 {
                return Err(format!("calibration.range.warmup = {} is over 1e9", r.warmup));
            }
            if !finite(r.steps, 0.0, 1e6) {
                return Err(format!("calibration.range.steps = {} is not in [0, 1e6]", r.steps));
            }
            if r.run_margin.is_some_and(|m| m > 1_000_000_000) {
                return Err(format!("calibration.range.run_margin = {:?} is over 1e9", r.run_margin));
            }
            if r.level_margin.is_some_and(|m| !finite(m, 0.0, 1e6)) {
                return Err(format!(
                    "calibration.range.level_margin = {:?} is not in [0, 1e6]",
                    r.level_margin
                ));
            }
        }
        if let Some(e) = &self.excursions {
            if !(finite(e.level, 0.0, 1.0) && e.level > 0.0) {
                return Err(format!("calibration.excursions.level = {} is not in (0, 1]", e.level));
            }
            if e.prior_samples.is_some_and(|p| !(finite(p, 1.0, 1e12))) {
                return Err(format!(
                    "calibration.excursions.prior_samples = {:?} is not in [1, 1e12]",
                    e.prior_samples
                ));
            }
            if e.period_tolerance.is_some_and(|t| !finite(t, 0.0, 1.0)) {
                return Err(format!(
                    "calibration.excursions.period_tolerance = {:?} is not in [0, 1]",
                    e.period_tolerance
                ));
            }
        }
        Ok(())
    }
}

/// Everything one series' calibration keeps: the likelihood of its raw scores and, if the
/// parameters ask for it, its range. Every value goes to [`Calibration::observe`] (including
/// those before the first full window), every window's raw score to [`Calibration::score`]
/// with what `observe` said about the window's newest value.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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
        weighted_update(&mut self.mean, &mut self.var, alpha, short);
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
