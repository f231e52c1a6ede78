//! The likelihood's checks against its own history of excursions: rate and recurrence.
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
//! Neither touches the records ([`super::records`]): a record broken is new by definition.

use serde::{Deserialize, Serialize};

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

/// What the likelihood remembers of its own excursions.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(super) struct Excursions {
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
    pub(super) fn check(&mut self, params: &ExcursionParams, t: u64, score: f64) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::likelihood::{Likelihood, LikelihoodParams};

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
}
