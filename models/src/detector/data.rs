//! Training data: windows of normalised values from synthetic series with labelled anomalies.
//!
//! Each series draws its own shape (level, daily swing relative to the sample interval,
//! random walk, noise, anomaly severity) so the model sees many base signals. A window is
//! positive when an anomaly began within its last [`ONSET`] samples: the model learns to
//! notice an anomaly as it starts, which is what streaming detection (and NAB) rewards.
//! Dropouts produce no samples and so no windows; the engine's count rules cover them.

use sensorflow_operators::SeriesWindow;

use crate::synth::{AnomalyKind, AnomalyPlan, MetricProfile, Series, SplitMix64, PROFILES};

/// A window is positive if an anomaly began within this many of its newest samples.
pub const ONSET: u64 = 8;

/// What to generate.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataConfig {
    /// Seed; the same seed gives the same dataset.
    pub seed: u64,
    /// Number of series.
    pub series: usize,
    /// Samples per series.
    pub samples: usize,
    /// Values per window.
    pub window: usize,
    /// Fraction of negative windows kept (positives are rare; all are kept).
    pub negative_keep: f64,
}

impl DataConfig {
    /// A training set.
    pub fn train(seed: u64, window: usize) -> Self {
        DataConfig { seed, series: 600, samples: 3000, window, negative_keep: 0.08 }
    }

    /// A held-out set from another seed, with every window kept (realistic class balance).
    pub fn held_out(seed: u64, window: usize) -> Self {
        DataConfig { seed: seed ^ 0x005E_ED0F_7E57, series: 60, samples: 3000, window, negative_keep: 1.0 }
    }
}

/// Windows (row-major, `window` values each) and labels (0 or 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Values per window.
    pub window: usize,
    /// `len() * window` normalised values.
    pub x: Vec<f32>,
    /// One label per window.
    pub y: Vec<f32>,
}

impl Dataset {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no windows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Fraction of positive windows.
    pub fn positive_rate(&self) -> f64 {
        self.y.iter().map(|&v| f64::from(v)).sum::<f64>() / self.len().max(1) as f64
    }

    /// Window `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.window..(i + 1) * self.window]
    }
}

fn random_profile(rng: &mut SplitMix64) -> MetricProfile {
    let base = PROFILES[(rng.next_u64() % PROFILES.len() as u64) as usize];
    // Rescale to an arbitrary unit and level, keeping the ratios that make it realistic.
    let unit = 10f64.powf(rng.range(-2.0, 3.0));
    let noise_ratio = rng.range(0.2, 3.0);
    MetricProfile {
        name: base.name,
        level: rng.range(-1.0, 1.0) * 50.0 * unit,
        level_spread: 0.0,
        daily_amplitude: base.daily_amplitude / base.scale * unit * rng.range(0.0, 2.0),
        walk_sigma: base.walk_sigma / base.scale * unit * rng.range(0.0, 3.0),
        noise: base.noise / base.scale * unit * noise_ratio,
        scale: unit,
        floor: f64::MIN,
    }
}

/// Generates a dataset.
pub fn generate(cfg: &DataConfig) -> Dataset {
    let mut rng = SplitMix64::new(cfg.seed);
    let mut out = Dataset { window: cfg.window, ..Dataset::default() };
    let kinds: Vec<AnomalyKind> =
        AnomalyKind::ALL.into_iter().filter(|k| *k != AnomalyKind::Dropout).collect();
    let mut row = vec![0.0f32; cfg.window];
    for s in 0..cfg.series {
        let profile = random_profile(&mut rng);
        // Sample intervals from one second to ten minutes: a day spans 144 to 86,400 samples.
        let interval_ms = (10f64.powf(rng.range(3.0, 5.78)) as u64).max(1000);
        let per_hour = 3_600_000.0 / interval_ms as f64;
        let plan = AnomalyPlan {
            // About one anomaly per 400 samples.
            rate_per_hour: per_hour / 400.0,
            kinds: kinds.clone(),
            severity: rng.range(0.35, 1.3),
        };
        let start = 1_600_000_000_000 + rng.next_u64() % 31_536_000_000;
        let mut series = Series::new(cfg.seed, s as u64, profile, plan, start);
        let mut window = SeriesWindow::new(cfg.window);
        let mut last_onset: Option<u64> = None;
        for i in 0..cfg.samples as u64 {
            let ts = start + i * interval_ms;
            let (sample, started) = series.sample(ts, interval_ms);
            if started.is_some() {
                last_onset = Some(i);
            }
            let Some(value) = sample.value else { continue };
            if !window.push(value) || i < cfg.window as u64 * 2 {
                continue;
            }
            let positive = last_onset.is_some_and(|o| i - o < ONSET);
            if !positive && rng.uniform() >= cfg.negative_keep {
                continue;
            }
            window.write_normalized(&mut row);
            out.x.extend_from_slice(&row);
            out.y.push(if positive { 1.0 } else { 0.0 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_balanced_and_finite() {
        let cfg = DataConfig { seed: 3, series: 40, samples: 2000, window: 32, negative_keep: 0.1 };
        let a = generate(&cfg);
        let b = generate(&cfg);
        assert_eq!(a, b);
        assert!(a.len() > 1000, "{}", a.len());
        let rate = a.positive_rate();
        assert!((0.02..0.6).contains(&rate), "positive rate {rate}");
        assert!(a.x.iter().all(|v| v.is_finite() && v.abs() <= 10.0));
        let other = generate(&DataConfig { seed: 4, ..cfg });
        assert_ne!(a.y, other.y);
    }
}
