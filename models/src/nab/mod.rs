//! The NAB v1.1 scorer (Numenta Anomaly Benchmark), reimplemented from its description.
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
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sensorflow_operators::timefmt::{format_datetime, parse_datetime};
use serde::{Deserialize, Serialize};

/// Fraction of each file that is probationary.
pub const PROBATION_FRACTION: f64 = 0.15;

/// What can go wrong reading or scoring NAB data.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's contents are not what NAB specifies.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NabError + '_ {
    move |source| NabError::Io { path: path.to_path_buf(), source }
}

fn format_err(path: &Path, message: impl Into<String>) -> NabError {
    NabError::Format { path: path.to_path_buf(), message: message.into() }
}

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

/// Reads `config/profiles.json`.
pub fn load_profiles(path: &Path) -> Result<Vec<Profile>, NabError> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(rename = "CostMatrix")]
        cost_matrix: CostMatrix,
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let map: BTreeMap<String, Entry> =
        serde_json::from_str(&text).map_err(|e| format_err(path, e.to_string()))?;
    Ok(map.into_iter().map(|(name, e)| Profile { name, costs: e.cost_matrix }).collect())
}

/// Labelled windows per data file (`category/file.csv`), as (start, end) in epoch ms,
/// sorted, with overlapping windows merged.
pub type Windows = BTreeMap<String, Vec<(u64, u64)>>;

/// Reads `labels/combined_windows.json`.
pub fn load_windows(path: &Path) -> Result<Windows, NabError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let raw: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&text).map_err(|e| format_err(path, e.to_string()))?;
    let mut out = Windows::new();
    for (file, list) in raw {
        let mut spans = Vec::new();
        for (a, b) in list {
            let start = parse_datetime(&a).ok_or_else(|| format_err(path, format!("bad timestamp {a:?}")))?;
            let end = parse_datetime(&b).ok_or_else(|| format_err(path, format!("bad timestamp {b:?}")))?;
            if end < start {
                return Err(format_err(path, format!("window {a} .. {b} ends before it starts")));
            }
            spans.push((start, end));
        }
        out.insert(file, merge_windows(spans));
    }
    Ok(out)
}

/// Sorts windows and merges overlapping ones (NAB's labels never overlap; merging makes a
/// detection in an overlap count once instead of depending on iteration order).
pub fn merge_windows(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// One detector's output for one data file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileOutput {
    /// Data file, `category/file.csv`.
    pub file: String,
    /// Row timestamps, epoch ms (in file order; NAB files may step back).
    pub timestamps: Vec<u64>,
    /// The raw values (written back into result files).
    pub values: Vec<f64>,
    /// Anomaly score per row, in [0, 1].
    pub scores: Vec<f64>,
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

/// Reads a detector's per-row result files: `dir/<category>/<detector>_<file>.csv` with at
/// least `timestamp` and `anomaly_score` columns (NAB's results layout). The detector name
/// is the directory's name.
pub fn read_results(dir: &Path) -> Result<Vec<FileOutput>, NabError> {
    let detector = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!("{detector}_");
    let mut outputs = Vec::new();
    let mut categories: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    categories.sort();
    for cat in categories.into_iter().filter(|p| p.is_dir()) {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&cat).map_err(io(&cat))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let name = f.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(data_name) = name.strip_prefix(&prefix) else { continue };
            if !name.ends_with(".csv") || name.ends_with("_scores.csv") {
                continue;
            }
            let category = cat.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            outputs.push(read_result_file(&f, &format!("{category}/{data_name}"))?);
        }
    }
    if outputs.is_empty() {
        return Err(format_err(dir, format!("no result files named <category>/{prefix}<file>.csv")));
    }
    Ok(outputs)
}

fn read_result_file(path: &Path, file: &str) -> Result<FileOutput, NabError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let ts_col = col("timestamp").ok_or_else(|| format_err(path, "no timestamp column"))?;
    let score_col = col("anomaly_score").ok_or_else(|| format_err(path, "no anomaly_score column"))?;
    let value_col = col("value");
    let mut out =
        FileOutput { file: file.to_string(), timestamps: Vec::new(), values: Vec::new(), scores: Vec::new() };
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| format_err(path, format!("line {}: {what}", n + 2));
        let ts = fields.get(ts_col).and_then(|t| parse_datetime(t)).ok_or_else(|| bad("bad timestamp"))?;
        let score: f64 =
            fields.get(score_col).and_then(|s| s.trim().parse().ok()).ok_or_else(|| bad("bad score"))?;
        if !score.is_finite() {
            return Err(bad("score is not finite"));
        }
        let value =
            value_col.and_then(|c| fields.get(c)).and_then(|v| v.trim().parse().ok()).unwrap_or(f64::NAN);
        out.timestamps.push(ts);
        out.values.push(value);
        out.scores.push(score);
    }
    Ok(out)
}

#[allow(clippy::needless_range_loop)] // several parallel columns share the row index
/// Writes a detector's outputs in NAB's per-row layout under `dir/<detector>/`, with the
/// label and, per profile, the worth of each row detected at that profile's threshold.
pub fn write_results(
    dir: &Path,
    detector: &str,
    outputs: &[FileOutput],
    windows: &Windows,
    scores: &[(Profile, f64)],
) -> Result<(), NabError> {
    for out in outputs {
        let (category, name) = out.file.split_once('/').unwrap_or(("", &out.file));
        let folder = dir.join(detector).join(category);
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        let path = folder.join(format!("{detector}_{name}"));
        let w = windows.get(&out.file).map(Vec::as_slice).unwrap_or(&[]);
        let worths: Vec<Vec<f64>> = scores.iter().map(|(p, _)| sweep(out, w, &p.costs, 0).1).collect();
        let mut text = String::from("timestamp,value,anomaly_score,label");
        for (p, _) in scores {
            let _ = write!(text, ",S(t)_{}", p.name);
        }
        text.push('\n');
        for i in 0..out.timestamps.len() {
            let ts = out.timestamps[i];
            let label = u8::from(w.iter().any(|&(s, e)| s <= ts && ts <= e));
            let stamp = format_datetime(ts);
            let stamp = stamp.trim_end_matches(".000Z").replace('T', " ");
            let _ = write!(text, "{stamp},{},{},{label}", out.values[i], out.scores[i]);
            for (k, (_, threshold)) in scores.iter().enumerate() {
                let worth = if out.scores[i] >= *threshold { worths[k][i] } else { 0.0 };
                let _ = write!(text, ",{worth}");
            }
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
