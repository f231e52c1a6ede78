//! Online per-series normalisation and the window of recent values a model scores.
//!
//! Shared by training (models crate) and the anomaly operator so both see identical inputs.
//! The mean and variance are exponentially weighted (horizon [`HORIZON`] samples, with a
//! cumulative average while fewer have been seen), updated with each value before the window
//! ending at it is normalised: no look-ahead.

use serde::{Deserialize, Serialize};

/// EWMA horizon in samples.
pub const HORIZON: f64 = 256.0;
/// Normalised values are clipped to ±this.
pub const CLIP: f32 = 10.0;

/// Running mean and variance of one series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OnlineNormalizer {
    count: u64,
    mean: f64,
    var: f64,
}

impl OnlineNormalizer {
    /// Adds `x`.
    #[inline]
    pub fn update(&mut self, x: f64) {
        self.count += 1;
        let alpha = (1.0 / self.count as f64).max(2.0 / (HORIZON + 1.0));
        weighted_update(&mut self.mean, &mut self.var, alpha, x);
    }

    /// Values seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Current mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Current standard deviation, floored so flat series do not divide by zero.
    #[inline]
    pub fn scale(&self) -> f64 {
        self.var.sqrt().max(1e-3 * self.mean.abs().max(1.0))
    }
}

/// Moves an exponentially weighted mean and variance towards `x` with weight `alpha`. The
/// normaliser and the likelihood differ only in their `alpha` schedules; one update keeps
/// their arithmetic identical.
#[inline]
pub(crate) fn weighted_update(mean: &mut f64, var: &mut f64, alpha: f64, x: f64) {
    let delta = x - *mean;
    *mean += alpha * delta;
    *var = (1.0 - alpha) * (*var + alpha * delta * delta);
}

/// The last `W` values of a series and its normaliser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesWindow {
    values: Vec<f64>,
    next: usize,
    filled: usize,
    norm: OnlineNormalizer,
}

impl SeriesWindow {
    /// An empty window of `len` values.
    pub fn new(len: usize) -> Self {
        SeriesWindow { values: vec![0.0; len.max(1)], next: 0, filled: 0, norm: OnlineNormalizer::default() }
    }

    /// Adds a value; returns whether the window is full.
    #[inline]
    pub fn push(&mut self, x: f64) -> bool {
        self.norm.update(x);
        self.values[self.next] = x;
        self.next = (self.next + 1) % self.values.len();
        self.filled = (self.filled + 1).min(self.values.len());
        self.filled == self.values.len()
    }

    /// Whether `W` values have been seen.
    pub fn is_full(&self) -> bool {
        self.filled == self.values.len()
    }

    /// Writes the normalised window, oldest first, into `out` (length `W`).
    #[inline]
    pub fn write_normalized(&self, out: &mut [f32]) {
        let (mean, inv) = (self.norm.mean(), 1.0 / self.norm.scale());
        let n = self.values.len();
        let (newer, older) = self.values.split_at(self.next);
        for (o, &v) in out[..n].iter_mut().zip(older.iter().chain(newer.iter())) {
            *o = (((v - mean) * inv) as f32).clamp(-CLIP, CLIP);
        }
    }

    /// The normaliser.
    pub fn normalizer(&self) -> &OnlineNormalizer {
        &self.norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_then_exponential() {
        let mut n = OnlineNormalizer::default();
        for x in [1.0, 2.0, 3.0] {
            n.update(x);
        }
        assert!((n.mean() - 2.0).abs() < 1e-12, "plain average while warming up");
        for _ in 0..10_000 {
            n.update(100.0);
        }
        assert!((n.mean() - 100.0).abs() < 1e-6, "forgets the start");
        assert!((n.scale() - 0.1).abs() < 1e-6, "flat series keep a floor of 1e-3·|mean|: {}", n.scale());
    }

    #[test]
    fn window_is_oldest_first_and_normalised() {
        let mut w = SeriesWindow::new(4);
        let mut full = false;
        for x in [10.0, 20.0, 30.0, 40.0, 50.0] {
            full = w.push(x);
        }
        assert!(full);
        let mut out = [0.0f32; 4];
        w.write_normalized(&mut out);
        assert!(out.windows(2).all(|p| p[0] < p[1]), "oldest first: {out:?}");
        let (m, s) = (w.normalizer().mean(), w.normalizer().scale());
        assert!((out[3] as f64 - (50.0 - m) / s).abs() < 1e-5);
    }
}
