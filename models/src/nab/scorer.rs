//! NAB's scoring (Numenta Anomaly Benchmark v1.1), reimplemented from its description.
//!
//! For each data file the first `min(⌊0.15·n⌋, 750)` rows are probationary and not scored.
//! Every labelled window starts at −fnWeight. A detection (a row whose anomaly score is at
//! or above the threshold) inside a window at index `i` is worth
//! `tpWeight · σ̃(−(right − i + 1) / width) / σ̃(−1)`; only a window's best detection counts.
//! A detection outside every window is worth `fpWeight · σ̃(|i − prevRight| / (prevWidth − 1))`
//! (negative), or `−fpWeight` before the first window; σ̃(x) = 2/(1+e^{5x}) − 1, and −1 for
//! x ≥ 3. The threshold is the one that maximises the summed score over the whole corpus;
//! the reported score is `100 · (score − null) / (perfect − null)` where the null detector
//! detects nothing and the perfect one scores tpWeight on every window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{FileOutput, Windows};

/// Fraction of each file that is probationary.
pub const PROBATION_FRACTION: f64 = 0.15;

/// The weights of one application profile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostMatrix {
    /// Reward for a detected window.
    #[serde(rename = "tpWeight")]
    pub tp: f64,
    /// Cost of a false positive.
    #[serde(rename = "fpWeight")]
    pub fp: f64,
    /// Cost of a missed window.
    #[serde(rename = "fnWeight")]
    pub fn_: f64,
}

/// A named application profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `standard`, `reward_low_FP_rate` or `reward_low_FN_rate`.
    pub name: String,
    /// Its weights.
    pub costs: CostMatrix,
}

/// The three NAB profiles, as in `config/profiles.json`.
pub fn standard_profiles() -> Vec<Profile> {
    let p = |name: &str, fp, fn_| Profile { name: name.into(), costs: CostMatrix { tp: 1.0, fp, fn_ } };
    vec![p("standard", 0.11, 1.0), p("reward_low_FP_rate", 0.22, 1.0), p("reward_low_FN_rate", 0.11, 2.0)]
}

/// Probationary rows of a file with `rows` rows.
pub fn probation_length(rows: usize) -> usize {
    ((PROBATION_FRACTION * rows as f64).floor()).min(PROBATION_FRACTION * 5000.0) as usize
}

fn scaled_sigmoid(x: f64) -> f64 {
    if x >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// A scorable row: its anomaly score, what detecting it is worth, and its window.
#[derive(Clone, Copy, Debug)]
struct Row {
    score: f64,
    worth: f64,
    window: Option<usize>,
}

/// Rows of one file, with windows numbered from `first_window`; also returns each row's
/// worth (0 for probationary rows) for result files, and the number of windows that have
/// scorable rows.
#[allow(clippy::needless_range_loop)] // rows, worths and timestamps share the index
fn sweep(
    out: &FileOutput,
    windows: &[(u64, u64)],
    costs: &CostMatrix,
    first_window: usize,
) -> (Vec<Row>, Vec<f64>) {
    let n = out.timestamps.len();
    let probation = probation_length(n);
    // Window index ranges [left, right] over rows.
    // Window edges are rows with exactly the labelled timestamps, as in NAB (which also
    // tolerates files that step back in time); otherwise the nearest rows inside the window.
    let ts = &out.timestamps;
    let spans: Vec<(usize, usize)> = windows
        .iter()
        .filter_map(|&(s, e)| {
            let left = ts.iter().position(|&t| t == s).or_else(|| ts.iter().position(|&t| t >= s))?;
            let right = ts.iter().position(|&t| t == e).or_else(|| ts.iter().rposition(|&t| t <= e))?;
            (right >= left).then_some((left, right))
        })
        .collect();
    let max_tp = scaled_sigmoid(-1.0);
    let mut rows = Vec::with_capacity(n);
    let mut worths = vec![0.0; n];
    let mut next = 0;
    let mut prev: Option<(usize, usize)> = None;
    for i in 0..n {
        while next < spans.len() && spans[next].1 < i {
            prev = Some(spans[next]);
            next += 1;
        }
        let inside = spans.get(next).filter(|(l, _)| *l <= i).copied();
        let (worth, window) = match inside {
            Some((left, right)) => {
                let width = (right - left + 1) as f64;
                let position = -((right - i + 1) as f64) / width;
                (scaled_sigmoid(position) * costs.tp / max_tp, Some(first_window + next))
            }
            None => {
                let position = match prev {
                    None => 3.0,
                    Some((left, right)) => (i - right) as f64 / ((right - left) as f64),
                };
                (scaled_sigmoid(position) * costs.fp, None)
            }
        };
        if i >= probation {
            worths[i] = worth;
            rows.push(Row { score: out.scores[i], worth, window });
        }
    }
    (rows, worths)
}

/// What detecting each row of `out` would be worth (0 for probationary rows), for result
/// files.
pub(super) fn row_worths(out: &FileOutput, windows: &[(u64, u64)], costs: &CostMatrix) -> Vec<f64> {
    sweep(out, windows, costs, 0).1
}

/// Detection counts at a threshold (scorable rows only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Detected rows inside windows.
    pub tp: u64,
    /// Detected rows outside windows.
    pub fp: u64,
    /// Undetected rows inside windows.
    pub fn_: u64,
    /// Undetected rows outside windows.
    pub tn: u64,
}

/// The corpus score at one threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdScore {
    /// Rows with an anomaly score at or above this are detections.
    pub threshold: f64,
    /// Raw (unnormalised) score.
    pub score: f64,
    /// Row counts.
    pub counts: Counts,
}

/// Score at every distinct threshold, highest threshold first (the first entry, 1.1,
/// detects nothing).
fn sweep_thresholds(rows: &mut [Row], costs: &CostMatrix) -> Vec<ThresholdScore> {
    rows.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut best_in_window: BTreeMap<usize, f64> = BTreeMap::new();
    for r in rows.iter() {
        if let Some(w) = r.window {
            best_in_window.insert(w, -costs.fn_);
        }
    }
    let mut window_sum: f64 = best_in_window.values().sum();
    let mut fp_sum = 0.0;
    let mut counts = Counts::default();
    for r in rows.iter() {
        match r.window {
            Some(_) => counts.fn_ += 1,
            None => counts.tn += 1,
        }
    }
    let mut out = vec![ThresholdScore { threshold: 1.1, score: window_sum, counts }];
    let mut i = 0;
    while i < rows.len() {
        let threshold = rows[i].score;
        while i < rows.len() && rows[i].score == threshold {
            let r = rows[i];
            match r.window {
                Some(w) => {
                    counts.tp += 1;
                    counts.fn_ -= 1;
                    if let Some(best) = best_in_window.get_mut(&w) {
                        if r.worth > *best {
                            window_sum += r.worth - *best;
                            *best = r.worth;
                        }
                    }
                }
                None => {
                    counts.fp += 1;
                    counts.tn -= 1;
                    fp_sum += r.worth;
                }
            }
            i += 1;
        }
        out.push(ThresholdScore { threshold, score: window_sum + fp_sum, counts });
    }
    out
}

/// The result for one profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileScore {
    /// Profile name.
    pub profile: String,
    /// The threshold that maximised the score.
    pub threshold: f64,
    /// Raw score at that threshold.
    pub raw: f64,
    /// Raw score of the detector that detects nothing.
    pub null: f64,
    /// Raw score of the perfect detector.
    pub perfect: f64,
    /// `100 · (raw − null) / (perfect − null)`.
    pub normalized: f64,
    /// Counts at that threshold.
    pub counts: Counts,
}

/// Scores a detector's outputs over a corpus for each profile, optimising one global
/// threshold per profile (as NAB's rules allow).
pub fn score_corpus(outputs: &[FileOutput], windows: &Windows, profiles: &[Profile]) -> Vec<ProfileScore> {
    let total_windows: usize = windows.values().map(Vec::len).sum();
    profiles
        .iter()
        .map(|p| {
            let mut rows = Vec::new();
            let mut first = 0;
            for out in outputs {
                let w = windows.get(&out.file).map(Vec::as_slice).unwrap_or(&[]);
                rows.extend(sweep(out, w, &p.costs, first).0);
                first += w.len();
            }
            let sweeps = sweep_thresholds(&mut rows, &p.costs);
            let null = sweeps[0].score;
            // Highest score; on ties the highest threshold (the first in sweep order).
            let best = sweeps.iter().fold(sweeps[0], |b, s| if s.score > b.score { *s } else { b });
            let perfect = total_windows as f64 * p.costs.tp;
            let normalized =
                if perfect > null { 100.0 * (best.score - null) / (perfect - null) } else { 0.0 };
            ProfileScore {
                profile: p.name.clone(),
                threshold: best.threshold,
                raw: best.score,
                null,
                perfect,
                normalized,
                counts: best.counts,
            }
        })
        .collect()
}

/// One file's share of a corpus score at a given threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileScore {
    /// `category/name.csv`.
    pub file: String,
    /// Labelled windows with scorable rows.
    pub windows: usize,
    /// Windows with at least one detection.
    pub detected: usize,
    /// Detections outside every window (after the probationary period).
    pub false_alarms: usize,
    /// The file's part of the raw score: best worth per window (−FN cost when missed) plus
    /// the false alarms' (negative) worths.
    pub raw: f64,
}

/// Where a corpus score comes from: per file, windows detected, false alarms and raw score
/// for `profile` at `threshold` (rows scoring at or above it are detections). The files'
/// `raw` values sum to the corpus's raw score at that threshold.
pub fn score_files(
    outputs: &[FileOutput],
    windows: &Windows,
    profile: &Profile,
    threshold: f64,
) -> Vec<FileScore> {
    outputs
        .iter()
        .map(|out| {
            let w = windows.get(&out.file).map(Vec::as_slice).unwrap_or(&[]);
            let (rows, _) = sweep(out, w, &profile.costs, 0);
            let mut best: BTreeMap<usize, f64> = BTreeMap::new();
            let (mut false_alarms, mut fp_sum) = (0, 0.0);
            for r in &rows {
                let hit = r.score >= threshold;
                match r.window {
                    Some(i) => {
                        let b = best.entry(i).or_insert(-profile.costs.fn_);
                        if hit && r.worth > *b {
                            *b = r.worth;
                        }
                    }
                    None if hit => {
                        false_alarms += 1;
                        fp_sum += r.worth;
                    }
                    None => {}
                }
            }
            let detected = best.values().filter(|&&b| b > -profile.costs.fn_).count();
            FileScore {
                file: out.file.clone(),
                windows: best.len(),
                detected,
                false_alarms,
                raw: best.values().sum::<f64>() + fp_sum,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nab::merge_windows;

    const MIN: u64 = 60_000;

    fn file(n: usize, detections: &[usize]) -> FileOutput {
        let mut scores = vec![0.0; n];
        for &d in detections {
            scores[d] = 1.0;
        }
        FileOutput {
            file: "cat/f.csv".into(),
            timestamps: (0..n as u64).map(|i| i * MIN).collect(),
            values: vec![0.0; n],
            scores,
        }
    }

    fn windows(spans: &[(u64, u64)]) -> Windows {
        let mut w = Windows::new();
        w.insert("cat/f.csv".into(), merge_windows(spans.iter().map(|&(a, b)| (a * MIN, b * MIN)).collect()));
        w
    }

    fn standard(out: &FileOutput, w: &Windows) -> ProfileScore {
        score_corpus(std::slice::from_ref(out), w, &standard_profiles()[..1]).remove(0)
    }

    #[test]
    fn per_file_scores_count_windows_and_false_alarms_and_sum_to_the_corpus_score() {
        let w = {
            let mut w = windows(&[(400, 499)]);
            w.insert("cat/g.csv".into(), vec![(300 * MIN, 349 * MIN), (600 * MIN, 649 * MIN)]);
            w
        };
        // f: its window found at its left edge (worth 1) and one false alarm before any window
        // (−0.11). g: one of two windows found at its left edge, one false alarm long after.
        let f = file(1000, &[400, 200]);
        let mut g = file(1000, &[300, 900]);
        g.file = "cat/g.csv".into();
        let profile = &standard_profiles()[0];
        let files = score_files(&[f.clone(), g.clone()], &w, profile, 0.5);
        assert_eq!(files.len(), 2);
        assert_eq!((files[0].windows, files[0].detected, files[0].false_alarms), (1, 1, 1));
        assert!((files[0].raw - (1.0 - 0.11)).abs() < 1e-9, "{:?}", files[0]);
        assert_eq!((files[1].windows, files[1].detected, files[1].false_alarms), (2, 1, 1));
        // Row 900 is 251 rows after a 50-row window: σ̃ at 5.1 saturates to −1 → −0.11.
        assert!((files[1].raw - (1.0 - 1.0 - 0.11)).abs() < 1e-9, "{:?}", files[1]);
        let corpus = score_corpus(&[f, g], &w, std::slice::from_ref(profile)).remove(0);
        assert!((corpus.raw - (files[0].raw + files[1].raw)).abs() < 1e-9);
        // Above every score nothing is detected: each window costs one missed window.
        let none = score_files(&[file(1000, &[400])], &windows(&[(400, 499)]), profile, 2.0);
        assert_eq!((none[0].detected, none[0].false_alarms, none[0].raw), (0, 0, -1.0));
    }

    #[test]
    fn probation_length_follows_nab() {
        assert_eq!(probation_length(1000), 150);
        assert_eq!(probation_length(4032), 604);
        assert_eq!(probation_length(22_695), 750);
    }

    #[test]
    fn no_detections_score_the_null_baseline() {
        let w = windows(&[(400, 499)]);
        let s = standard(&file(1000, &[]), &w);
        assert_eq!((s.raw, s.null, s.normalized), (-1.0, -1.0, 0.0));
        assert_eq!(s.counts, Counts { tp: 0, fp: 0, fn_: 100, tn: 750 });
    }

    #[test]
    fn earliest_detection_in_a_window_scores_full_credit() {
        let w = windows(&[(400, 499)]);
        let s = standard(&file(1000, &[400]), &w);
        // Left edge: σ̃(−1)/σ̃(−1) = 1 → raw 1, normalised 100 with one window.
        assert!((s.raw - 1.0).abs() < 1e-12, "{s:?}");
        assert!((s.normalized - 100.0).abs() < 1e-9);
        // Later in the window is worth less; two detections count once (the best).
        let late = standard(&file(1000, &[480]), &w);
        let both = standard(&file(1000, &[400, 480]), &w);
        assert!(late.raw < 1.0 && late.raw > 0.0);
        assert!((both.raw - 1.0).abs() < 1e-12);
        assert_eq!(both.counts.tp, 2);
    }

    #[test]
    fn detection_in_the_probationary_period_is_ignored() {
        let w = windows(&[(400, 499)]);
        let s = standard(&file(1000, &[10]), &w);
        assert_eq!(s.raw, -1.0, "not counted as a false positive");
        assert_eq!(s.counts.fp, 0);
    }

    #[test]
    fn false_positives_cost_more_far_from_a_window() {
        let w = windows(&[(400, 499)]);
        // Threshold optimisation would rather detect nothing, so compare raw sweeps.
        let near = file(1000, &[400, 505]);
        let far = file(1000, &[400, 900]);
        let p = &standard_profiles()[0];
        let worth = |out: &FileOutput, i: usize| sweep(out, &w["cat/f.csv"], &p.costs, 0).1[i];
        assert!(worth(&near, 505) < 0.0 && worth(&near, 505) > worth(&far, 900));
        assert!((worth(&far, 900) + 0.11).abs() < 1e-9, "far away a FP costs the full fpWeight");
        let before = file(1000, &[200]);
        assert!((worth(&before, 200) + 0.11).abs() < 1e-12, "before any window: -fpWeight");
    }

    #[test]
    fn overlapping_windows_are_merged() {
        let w = windows(&[(400, 470), (450, 520)]);
        assert_eq!(w["cat/f.csv"], vec![(400 * MIN, 520 * MIN)]);
        let s = standard(&file(1000, &[460]), &w);
        assert_eq!(s.counts.tp, 1);
        assert!(s.perfect == 1.0, "one window after merging");
        assert!(s.raw > 0.0 && s.raw < 1.0);
    }
}
