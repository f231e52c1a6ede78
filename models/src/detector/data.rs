//! Training data: windows of normalised values from synthetic series with labelled anomalies.
//!
//! Each series draws its own shape (level, daily swing relative to the sample interval,
//! random walk, noise, anomaly severity) so the model sees many base signals; most of them
//! also get normal behaviour that is not anomalous (cycles of 50–1,000 samples, square or
//! sawtooth waveforms, routine bursts: [`crate::synth::Shape`]), and anomaly durations are
//! counted in samples ([`crate::synth::Durations::Samples`]) so a level shift is a shift at
//! any sample interval. A window is
//! positive when an anomaly began within its last [`ONSET`] samples: the model learns to
//! notice an anomaly as it starts, which is what streaming detection (and NAB) rewards.
//! Drifts are the exception ([`DRIFT_LABEL`]): their first samples cannot be told from
//! noise, so labelling them positive taught the model to ignore drifts altogether; a drift
//! window is positive from 8 to 32 samples after the onset, and the 8 windows before are
//! left out.
//! Dropouts produce no samples and so no windows; the engine's count rules cover them.

use sensorflow_operators::SeriesWindow;

use crate::synth::{
    AnomalyKind, AnomalyPlan, Durations, MetricProfile, Series, Shape, SplitMix64, Waveform, PROFILES,
};

/// A window is positive if an anomaly began within this many of its newest samples.
pub const ONSET: u64 = 8;

/// Drift windows are positive from `.0` to `.1` (exclusive) samples after the onset; the
/// windows before `.0` are left out (neither positive nor negative).
pub const DRIFT_LABEL: (u64, u64) = (8, 32);

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
    /// How drift windows are labelled ([`DRIFT_LABEL`]); `None` labels them like every other
    /// kind (datasets described before this existed).
    #[serde(default)]
    pub drift_label: Option<(u64, u64)>,
}

impl DataConfig {
    /// A training set.
    pub fn train(seed: u64, window: usize) -> Self {
        DataConfig {
            seed,
            series: 600,
            samples: 3000,
            window,
            negative_keep: 0.08,
            drift_label: Some(DRIFT_LABEL),
        }
    }

    /// A held-out set from another seed, with every window kept (realistic class balance).
    pub fn held_out(seed: u64, window: usize) -> Self {
        DataConfig {
            seed: seed ^ 0x005E_ED0F_7E57,
            series: 60,
            samples: 3000,
            window,
            negative_keep: 1.0,
            drift_label: Some(DRIFT_LABEL),
        }
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

/// Normal behaviour for one series: half keep the plain daily sine; the others get a cycle
/// of 50–1,000 samples, a square or sawtooth waveform, and/or normal bursts, so that the
/// model learns that recurring edges and frequent bursts are not anomalies by themselves.
fn random_shape(rng: &mut SplitMix64) -> Shape {
    let mut shape = Shape::default();
    if rng.uniform() < 0.5 {
        shape.period_samples = Some(50.0 * 20f64.powf(rng.uniform()));
    }
    let w = rng.uniform();
    shape.waveform = if w < 0.5 {
        Waveform::Sine
    } else if w < 0.8 {
        Waveform::Square { duty: rng.range(0.2, 0.8) }
    } else {
        Waveform::Sawtooth
    };
    if rng.uniform() < 0.35 {
        shape.burst_rate = 10f64.powf(rng.range(-3.0, -1.3));
        shape.burst_size = rng.range(0.3, 2.0);
    }
    shape
}

/// The label of a window whose newest sample comes `age` samples after the newest onset
/// (of `kind`), if any: `Some(true)` positive, `Some(false)` negative, `None` left out.
fn label(onset: Option<(u64, AnomalyKind)>, drift_label: Option<(u64, u64)>) -> Option<bool> {
    match (onset, drift_label) {
        (Some((age, AnomalyKind::Drift)), Some((from, to))) if age < to => (age >= from).then_some(true),
        (Some((age, _)), _) => Some(age < ONSET),
        (None, _) => Some(false),
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
            durations: Durations::Samples,
        };
        let start = 1_600_000_000_000 + rng.next_u64() % 31_536_000_000;
        let shape = random_shape(&mut rng);
        let mut series = Series::new(cfg.seed, s as u64, profile, plan, start).with_shape(shape);
        let mut window = SeriesWindow::new(cfg.window);
        // The newest onset: sample number and kind.
        let mut last_onset: Option<(u64, AnomalyKind)> = None;
        for i in 0..cfg.samples as u64 {
            let ts = start + i * interval_ms;
            let (sample, started) = series.sample(ts, interval_ms);
            if let Some(a) = started {
                last_onset = Some((i, a.kind));
            }
            let Some(value) = sample.value else { continue };
            if !window.push(value) || i < cfg.window as u64 * 2 {
                continue;
            }
            let Some(positive) = label(last_onset.map(|(o, kind)| (i - o, kind)), cfg.drift_label) else {
                continue;
            };
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

/// One file of the synthetic NAB-like corpus.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticFile {
    /// `synthetic/series_NNN.csv`.
    pub name: String,
    /// Row timestamps, ms.
    pub timestamps: Vec<u64>,
    /// Values.
    pub values: Vec<f64>,
    /// Rows where an anomaly began.
    pub onsets: Vec<usize>,
    /// The kind of each of those anomalies.
    pub kinds: Vec<AnomalyKind>,
}

/// A corpus shaped like NAB, from the same generator as the training data but other seeds:
/// `files` series of `rows` rows each (random shapes and sample intervals, 0–4 anomalies of
/// every kind but dropouts; those starting in the first 15 % of rows, NAB's probationary
/// period, are not labelled, as NAB's scorer ignores that period), and
/// NAB's labelling rule for the windows: 10 % of the file's length divided among its
/// anomalies, centred on each onset, overlapping windows merged.
pub fn synthetic_nab(seed: u64, files: usize, rows: usize) -> (Vec<SyntheticFile>, crate::nab::Windows) {
    let mut rng = SplitMix64::new(seed ^ 0x4E_4142_5359_4E54);
    let kinds: Vec<AnomalyKind> =
        AnomalyKind::ALL.into_iter().filter(|k| *k != AnomalyKind::Dropout).collect();
    let mut out = Vec::with_capacity(files);
    let mut windows = crate::nab::Windows::new();
    let probation = crate::nab::probation_length(rows);
    for f in 0..files {
        let profile = random_profile(&mut rng);
        let interval_ms = (10f64.powf(rng.range(3.0, 5.78)) as u64).max(1000);
        let per_hour = 3_600_000.0 / interval_ms as f64;
        // About two anomalies per file after the probationary period.
        let plan = AnomalyPlan {
            rate_per_hour: per_hour * 2.0 / rows as f64,
            kinds: kinds.clone(),
            severity: rng.range(0.35, 1.3),
            durations: Durations::Samples,
        };
        let start = 1_600_000_000_000 + rng.next_u64() % 31_536_000_000;
        let shape = random_shape(&mut rng);
        let mut series = Series::new(seed ^ 0x5EED, f as u64, profile, plan, start).with_shape(shape);
        let (mut timestamps, mut values, mut onsets, mut onset_kinds) =
            (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::new(), Vec::new());
        let mut i = 0u64;
        while values.len() < rows {
            let ts = start + i * interval_ms;
            i += 1;
            let (sample, started) = series.sample(ts, interval_ms);
            let Some(v) = sample.value else { continue };
            if let Some(a) = started.filter(|_| values.len() >= probation) {
                onsets.push(values.len());
                onset_kinds.push(a.kind);
            }
            timestamps.push(ts);
            values.push(v);
        }
        let name = format!("synthetic/series_{f:03}.csv");
        if !onsets.is_empty() {
            let half = (rows as f64 * 0.1 / onsets.len() as f64 / 2.0) as usize;
            let spans: Vec<(u64, u64)> = onsets
                .iter()
                .map(|&o| (timestamps[o.saturating_sub(half)], timestamps[(o + half).min(rows - 1)]))
                .collect();
            windows.insert(name.clone(), crate::nab::merge_windows(spans));
        } else {
            windows.insert(name.clone(), Vec::new());
        }
        out.push(SyntheticFile { name, timestamps, values, onsets, kinds: onset_kinds });
    }
    (out, windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synthetic_nab_corpus_is_seeded_and_labelled_like_nab() {
        let (a, wa) = synthetic_nab(5, 12, 3000);
        let (b, _) = synthetic_nab(5, 12, 3000);
        assert_eq!(a, b);
        assert_eq!(a.len(), 12);
        let probation = crate::nab::probation_length(3000);
        let mut labelled = 0;
        for f in &a {
            assert_eq!(f.values.len(), 3000);
            assert!(f.timestamps.windows(2).all(|w| w[0] < w[1]));
            assert!(f.onsets.iter().all(|&o| o >= probation), "{:?}", f.onsets);
            let w = &wa[&f.name];
            labelled += f.onsets.len();
            // Every onset lies inside a window; windows total about 10 % of the file.
            for &o in &f.onsets {
                assert!(w.iter().any(|&(s, e)| s <= f.timestamps[o] && f.timestamps[o] <= e));
            }
            if !f.onsets.is_empty() {
                let covered: u64 = w.iter().map(|(s, e)| e - s).sum();
                let span = f.timestamps[2999] - f.timestamps[0];
                assert!(covered <= span / 9, "windows cover {covered} of {span}");
            }
        }
        assert!(labelled >= 12, "about two anomalies per file: {labelled}");
    }

    #[test]
    fn drift_windows_are_positive_from_8_to_32_samples_after_the_onset_and_others_within_8() {
        let labels = |kind, drift_label| -> Vec<Option<bool>> {
            (0..40).map(|age| label(Some((age, kind)), drift_label)).collect()
        };
        let within = |n: usize| -> Vec<Option<bool>> { (0..40).map(|age| Some(age < n)).collect() };
        assert_eq!(labels(AnomalyKind::Spike, Some(DRIFT_LABEL)), within(8));
        assert_eq!(labels(AnomalyKind::StuckAt, Some(DRIFT_LABEL)), within(8));
        assert_eq!(labels(AnomalyKind::Drift, None), within(8));
        let drift = labels(AnomalyKind::Drift, Some((8, 32)));
        assert_eq!(drift[..8], [None; 8], "the first 8 windows are left out");
        assert_eq!(drift[8..32], [Some(true); 24]);
        assert_eq!(drift[32..], [Some(false); 8]);
        assert_eq!(label(None, Some(DRIFT_LABEL)), Some(false));
        // The labels reach the data: one long series with every negative kept gives the same
        // windows either way, except that drift labels leave some out and make more positive.
        let cfg = DataConfig {
            seed: 3,
            series: 1,
            samples: 20_000,
            window: 32,
            negative_keep: 1.0,
            drift_label: None,
        };
        let plain = generate(&cfg);
        let drifts = generate(&DataConfig { drift_label: Some(DRIFT_LABEL), ..cfg });
        assert!(drifts.len() < plain.len(), "windows left out: {} vs {}", drifts.len(), plain.len());
        let mut rows = (0..plain.len()).map(|i| plain.row(i));
        for i in 0..drifts.len() {
            assert!(
                rows.any(|r| r == drifts.row(i)),
                "window {i} of the drift-labelled data is not in the plain data"
            );
        }
        let positives = |d: &Dataset| d.y.iter().filter(|&&y| y > 0.5).count();
        assert!(positives(&drifts) > positives(&plain), "{} vs {}", positives(&drifts), positives(&plain));
    }

    #[test]
    fn seeded_balanced_and_finite() {
        let cfg = DataConfig {
            seed: 3,
            series: 40,
            samples: 2000,
            window: 32,
            negative_keep: 0.1,
            drift_label: Some(DRIFT_LABEL),
        };
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
