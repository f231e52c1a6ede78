//! Measuring a detector: NAB score, F1 on held-out synthetic data, size and speed.

use std::path::Path;
use std::time::Instant;

use sensorflow_operators::{Calibration, LikelihoodParams, SeriesWindow, CLEAR_MARGIN};
use serde::{Deserialize, Serialize};

use super::data::Dataset;
use super::inference::{best_threshold, f1_at, Detector};
use crate::nab::{
    corpus_files, load_profiles, load_windows, read_data_file, score_corpus, FileOutput, NabError,
    ProfileScore,
};

/// One row of the optimization report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// Optimization step (`teacher`, `student`, ...).
    pub step: String,
    /// Parameters.
    pub params: usize,
    /// Parameters that are not zero.
    pub nonzero: usize,
    /// Size of the weights file.
    pub bytes: u64,
    /// Microseconds per call with one window.
    pub latency_batch1_us: f64,
    /// Microseconds per call with 1,024 windows.
    pub latency_batch1024_us: f64,
    /// Windows per second at batch 1,024.
    pub windows_per_sec: f64,
    /// NAB standard profile score.
    pub nab_standard: Option<f64>,
    /// NAB reward-low-FP score.
    pub nab_low_fp: Option<f64>,
    /// NAB reward-low-FN score.
    pub nab_low_fn: Option<f64>,
    /// F1 on the held-out synthetic set at the model's threshold.
    pub f1: f64,
    /// The model's threshold.
    pub threshold: f32,
    /// How it ran (`burn-ndarray`, `plain-rust`, ...).
    pub engine: String,
}

/// Times `detector` at batch 1 and 1,024: (µs per call at 1, µs per call at 1,024).
pub fn latency(detector: &dyn Detector, window: usize) -> (f64, f64) {
    let one: Vec<f32> = (0..window).map(|i| (i as f32 * 0.37).sin()).collect();
    let many: Vec<f32> = one.iter().cycle().take(window * 1024).copied().collect();
    let mut out = Vec::new();
    let time = |input: &[f32], out: &mut Vec<f32>, min_calls: usize| {
        detector.predict(input, out); // warm-up
        let started = Instant::now();
        let mut calls = 0;
        while calls < min_calls || started.elapsed().as_millis() < 200 {
            detector.predict(input, out);
            calls += 1;
        }
        started.elapsed().as_secs_f64() * 1e6 / calls as f64
    };
    (time(&one, &mut out, 50), time(&many, &mut out, 3))
}

/// Largest tolerated false-alarm rate per normal window (one in 5,000).
pub const MAX_FALSE_ALARM_RATE: f64 = 2e-4;

/// The model's threshold on held-out data: the F1-optimal one, raised if needed until at
/// most [`MAX_FALSE_ALARM_RATE`] of normal windows score above it. Anomalies are far rarer in
/// real fleets than in training data, so an F1-optimal threshold alone alerts far too often.
/// Returns the threshold and the F1 at it.
pub fn calibrate(detector: &dyn Detector, data: &Dataset) -> (f32, f64) {
    let mut scores = Vec::new();
    detector.predict(&data.x, &mut scores);
    let (best, _) = best_threshold(&scores, &data.y);
    let mut normal: Vec<f32> =
        scores.iter().zip(&data.y).filter(|(_, y)| **y < 0.5).map(|(s, _)| *s).collect();
    normal.sort_unstable_by(f32::total_cmp);
    let idx = ((1.0 - MAX_FALSE_ALARM_RATE) * normal.len() as f64) as usize;
    let quiet = normal.get(idx.min(normal.len().saturating_sub(1))).copied().unwrap_or(0.5);
    let threshold = best.max(quiet).min(0.999);
    (threshold, f1_at(&scores, &data.y, threshold).2)
}

/// F1 of `detector` on `data` at `threshold`.
pub fn f1(detector: &dyn Detector, data: &Dataset, threshold: f32) -> f64 {
    let mut scores = Vec::new();
    detector.predict(&data.x, &mut scores);
    f1_at(&scores, &data.y, threshold).2
}

/// Turns per-row probabilities into what the engine alerts on: the probability at the first
/// row of each episode (crossing `threshold`, ending below `threshold − CLEAR_MARGIN`, as the
/// anomaly operator does) and 0 elsewhere. NAB then scores the engine's alerts, ranked by
/// confidence, rather than every row above a threshold.
pub fn episode_onsets(probs: &[f64], threshold: f32) -> Vec<f64> {
    let (on, off) = (f64::from(threshold), f64::from(threshold - CLEAR_MARGIN));
    let mut active = false;
    probs
        .iter()
        .map(|&p| {
            if !active && p > on {
                active = true;
                p
            } else {
                if active && p < off {
                    active = false;
                }
                0.0
            }
        })
        .collect()
}

/// Scores one series as the engine does: the same normalisation and windows (rows before
/// the first full window score 0), the raw probability calibrated per series when the model
/// has a calibration, then episode onsets at `threshold` (see [`episode_onsets`]).
pub fn series_scores(
    detector: &dyn Detector,
    window: usize,
    threshold: f32,
    calibration: Option<LikelihoodParams>,
    values: &[f64],
) -> Vec<f64> {
    calibrated_scores(detector, window, calibration, values)
        .map_or_else(|| vec![0.0; values.len()], |scores| episode_onsets(&scores, threshold))
}

/// Per-row scores before episode detection: raw probabilities, or their per-series
/// likelihood with `calibration`; `None` if the series is shorter than one window.
pub fn calibrated_scores(
    detector: &dyn Detector,
    window: usize,
    calibration: Option<LikelihoodParams>,
    values: &[f64],
) -> Option<Vec<f64>> {
    let mut row = vec![0.0f32; window];
    let mut w = SeriesWindow::new(window);
    let mut inputs = Vec::new();
    let mut first_full = None;
    for (i, &v) in values.iter().enumerate() {
        if w.push(v) {
            first_full.get_or_insert(i);
            w.write_normalized(&mut row);
            inputs.extend_from_slice(&row);
        }
    }
    let start = first_full?;
    let mut probs = Vec::new();
    detector.predict(&inputs, &mut probs);
    let mut calibration = calibration.map(Calibration::new);
    // Every value goes through the range check, as in the operator; windows start at `start`.
    let beyond: Vec<bool> =
        values.iter().map(|&v| calibration.as_mut().is_some_and(|c| c.observe(v))).collect();
    let mut scores = vec![0.0; values.len()];
    for ((s, p), &beyond) in scores[start..].iter_mut().zip(&probs).zip(&beyond[start..]) {
        let p = f64::from(*p);
        *s = match calibration.as_mut() {
            Some(c) => c.score(p, beyond),
            None => p,
        };
    }
    Some(scores)
}

/// Runs `detector` over every data file of the NAB corpus at `root` ([`corpus_files`]) as a
/// stream (the same normalisation and windows as the engine; rows before the first full
/// window score 0), reporting episode onsets at `threshold` (see [`episode_onsets`]).
pub fn nab_outputs(
    detector: &dyn Detector,
    root: &Path,
    window: usize,
    threshold: f32,
    calibration: Option<LikelihoodParams>,
) -> Result<Vec<FileOutput>, NabError> {
    let mut outputs = Vec::new();
    for f in corpus_files(root)? {
        let (timestamps, values) = read_data_file(&f.path)?;
        let scores = series_scores(detector, window, threshold, calibration, &values);
        outputs.push(FileOutput { file: f.key(), timestamps, values, scores });
    }
    Ok(outputs)
}

/// NAB scores (standard, low FP, low FN) of `detector` on the corpus at `root`.
pub fn nab_scores(
    detector: &dyn Detector,
    root: &Path,
    window: usize,
    threshold: f32,
    calibration: Option<LikelihoodParams>,
) -> Result<Vec<ProfileScore>, NabError> {
    let outputs = nab_outputs(detector, root, window, threshold, calibration)?;
    let windows = load_windows(&root.join("labels/combined_windows.json"))?;
    let profiles = load_profiles(&root.join("config/profiles.json"))?;
    Ok(score_corpus(&outputs, &windows, &profiles))
}

/// NAB's scores on the synthetic NAB-like corpus of [`super::data::synthetic_nab`] (labelled
/// the way NAB labels its files, scored by the same algorithm with the standard profiles).
/// This is where thresholds and calibration are chosen: NAB itself is only for reporting.
pub fn synthetic_nab_scores(
    detector: &dyn Detector,
    window: usize,
    threshold: f32,
    calibration: Option<LikelihoodParams>,
    seed: u64,
) -> Vec<ProfileScore> {
    let (files, windows) = super::data::synthetic_nab(seed, SYNTHETIC_FILES, SYNTHETIC_ROWS);
    let outputs = synthetic_outputs(detector, window, threshold, calibration, &files);
    score_corpus(&outputs, &windows, &crate::nab::standard_profiles())
}

/// Files and rows of the synthetic NAB-like corpus that [`synthetic_nab_scores`] scores.
pub const SYNTHETIC_FILES: usize = 60;
/// Rows per file of that corpus.
pub const SYNTHETIC_ROWS: usize = 4000;

/// The detector's per-row outputs on synthetic files, as the engine would alert.
pub fn synthetic_outputs(
    detector: &dyn Detector,
    window: usize,
    threshold: f32,
    calibration: Option<LikelihoodParams>,
    files: &[super::data::SyntheticFile],
) -> Vec<FileOutput> {
    files
        .iter()
        .map(|f| {
            let scores = series_scores(detector, window, threshold, calibration, &f.values);
            FileOutput {
                file: f.name.clone(),
                timestamps: f.timestamps.clone(),
                values: f.values.clone(),
                scores,
            }
        })
        .collect()
}

/// How a detector did on one kind of injected anomaly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindDetection {
    /// The kind.
    pub kind: Option<crate::synth::AnomalyKind>,
    /// Labelled anomalies of this kind.
    pub anomalies: usize,
    /// Of those, how many had a detection (a score at or above the threshold) in their window.
    pub detected: usize,
    /// Rows from the onset to the first detection in the window, per detected anomaly
    /// (negative: before the onset), sorted.
    pub delays: Vec<i64>,
}

/// Detection per anomaly kind on the synthetic corpus: for each labelled onset, whether a row
/// of its NAB window scores at or above `threshold`, and how many rows after the onset the
/// first one is.
pub fn detection_by_kind(
    files: &[super::data::SyntheticFile],
    outputs: &[FileOutput],
    windows: &crate::nab::Windows,
    threshold: f64,
) -> Vec<KindDetection> {
    let mut by_kind: Vec<KindDetection> = crate::synth::AnomalyKind::ALL
        .iter()
        .map(|&k| KindDetection { kind: Some(k), ..KindDetection::default() })
        .collect();
    for (f, out) in files.iter().zip(outputs) {
        let spans = windows.get(&f.name).map(Vec::as_slice).unwrap_or_default();
        for (&onset, &kind) in f.onsets.iter().zip(&f.kinds) {
            let Some(entry) = by_kind.iter_mut().find(|d| d.kind == Some(kind)) else { continue };
            entry.anomalies += 1;
            let at = f.timestamps[onset];
            let Some(&(start, end)) = spans.iter().find(|&&(s, e)| s <= at && at <= e) else { continue };
            let first = f
                .timestamps
                .iter()
                .zip(&out.scores)
                .position(|(&t, &s)| t >= start && t <= end && s >= threshold);
            if let Some(row) = first {
                entry.detected += 1;
                entry.delays.push(row as i64 - onset as i64);
            }
        }
    }
    by_kind.retain(|d| d.anomalies > 0);
    for d in &mut by_kind {
        d.delays.sort_unstable();
    }
    by_kind
}

/// Fills the NAB fields of `row` from `scores`.
pub fn set_nab(row: &mut ReportRow, scores: &[ProfileScore]) {
    for s in scores {
        match s.profile.as_str() {
            "standard" => row.nab_standard = Some(s.normalized),
            "reward_low_FP_rate" => row.nab_low_fp = Some(s.normalized),
            "reward_low_FN_rate" => row.nab_low_fn = Some(s.normalized),
            _ => {}
        }
    }
}

/// The report as a markdown table.
pub fn markdown(rows: &[ReportRow]) -> String {
    let nab = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    let mut s = String::from(
        "| step | engine | params | nonzero | bytes | µs/call b=1 | µs/call b=1024 | windows/s | NAB std | NAB low-FP | NAB low-FN | F1 | threshold |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.0} | {} | {} | {} | {:.3} | {:.4} |\n",
            r.step,
            r.engine,
            r.params,
            r.nonzero,
            r.bytes,
            r.latency_batch1_us,
            r.latency_batch1024_us,
            r.windows_per_sec,
            nab(r.nab_standard),
            nab(r.nab_low_fp),
            nab(r.nab_low_fn),
            r.f1,
            r.threshold
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::data::SyntheticFile;
    use crate::synth::AnomalyKind;

    #[test]
    fn detection_by_kind_counts_a_detection_inside_the_anomaly_window_and_its_delay() {
        // Ten rows a second apart; a spike at row 3 (window rows 1–5), a drift at row 7
        // (window rows 6–9), a spike at row 0 outside any window (counted as an anomaly, but
        // a detection outside every window is no detection of it).
        let file = SyntheticFile {
            name: "synthetic/a.csv".into(),
            timestamps: (0..10).map(|i| i * 1000).collect(),
            values: vec![0.0; 10],
            onsets: vec![3, 7, 0],
            kinds: vec![AnomalyKind::Spike, AnomalyKind::Drift, AnomalyKind::Spike],
        };
        let mut windows = crate::nab::Windows::new();
        windows.insert(file.name.clone(), vec![(1000, 5000), (6000, 9000)]);
        // Scores: a detection at row 2 (before the spike, inside its window), a sub-threshold
        // row at 6, a detection at row 9 (2 rows after the drift's onset) and at 0 (no window).
        let mut scores = vec![0.0; 10];
        scores[0] = 0.9;
        scores[2] = 0.6;
        scores[6] = 0.4;
        scores[9] = 0.5;
        let out = FileOutput {
            file: file.name.clone(),
            timestamps: file.timestamps.clone(),
            values: file.values.clone(),
            scores,
        };
        let kinds = detection_by_kind(&[file], &[out], &windows, 0.5);
        assert_eq!(
            kinds,
            vec![
                KindDetection { kind: Some(AnomalyKind::Spike), anomalies: 2, detected: 1, delays: vec![-1] },
                KindDetection { kind: Some(AnomalyKind::Drift), anomalies: 1, detected: 1, delays: vec![2] },
            ]
        );
    }

    #[test]
    fn the_synthetic_corpus_records_a_kind_for_every_onset() {
        let (files, _) = crate::detector::data::synthetic_nab(3, 20, 3000);
        let mut seen = std::collections::BTreeSet::new();
        for f in &files {
            assert_eq!(f.onsets.len(), f.kinds.len(), "{}", f.name);
            seen.extend(f.kinds.iter().copied());
        }
        assert!(seen.len() >= 4, "several kinds appear: {seen:?}");
        assert!(!seen.contains(&AnomalyKind::Dropout), "dropouts leave no rows to label");
    }
}
