//! The NAB scorer against NAB's own published numbers.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use sensorflow_models::nab::{
    discover_root, load_profiles, load_windows, read_results, score_corpus, FileOutput, Profile, Windows,
};

/// The NAB corpus as [`discover_root`] finds it (`$SENSORFLOW_NAB_DIR`, else
/// `../shared/datasets/nab` from the current directory), else beside the checkout (this test
/// runs in `models/`): its root, labels and profiles, and the windowedGaussian detector's
/// published per-row results.
fn windowed_gaussian() -> (PathBuf, Windows, Vec<Profile>, Vec<FileOutput>) {
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/nab");
    let root = discover_root(None)
        .or_else(|| beside.join("data").is_dir().then_some(beside))
        .expect("no NAB corpus: set SENSORFLOW_NAB_DIR");
    let windows = load_windows(&root.join("labels/combined_windows.json")).unwrap();
    let profiles = load_profiles(&root.join("config/profiles.json")).unwrap();
    let outputs = read_results(&root.join("results/windowedGaussian")).unwrap();
    (root, windows, profiles, outputs)
}

#[test]
fn reproduces_windowed_gaussian_published_scores() {
    let (root, windows, profiles, outputs) = windowed_gaussian();
    assert_eq!(outputs.len(), 58);
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("results/final_results.json")).unwrap())
            .unwrap();
    let scores = score_corpus(&outputs, &windows, &profiles);
    assert_eq!(scores.len(), 3);
    for s in &scores {
        let want = published["windowedGaussian"][&s.profile].as_f64().unwrap();
        assert!(
            (s.normalized - want).abs() <= 0.05,
            "{}: got {:.3}, published {want:.3}",
            s.profile,
            s.normalized
        );
    }
    // The three published values, spelled out (README scoreboard).
    let by = |p: &str| scores.iter().find(|s| s.profile == p).unwrap().normalized;
    assert!((by("standard") - 39.65).abs() <= 0.05);
    assert!((by("reward_low_FP_rate") - 20.87).abs() <= 0.05);
    assert!((by("reward_low_FN_rate") - 47.41).abs() <= 0.05);
}

#[test]
fn perfect_and_null_detectors_score_100_and_0() {
    let (_, windows, profiles, outputs) = windowed_gaussian();
    // Same timestamps, scores replaced: 1 at the first row of every window, else 0.
    let perfect: Vec<FileOutput> = outputs
        .iter()
        .map(|o| {
            let w = windows.get(&o.file).cloned().unwrap_or_default();
            let scores = o
                .timestamps
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let first_in_window = w.iter().any(|&(s, e)| s <= *t && *t <= e)
                        && (i == 0
                            || !w.iter().any(|&(s, e)| s <= o.timestamps[i - 1] && o.timestamps[i - 1] <= e));
                    if first_in_window {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect();
            FileOutput { scores, ..o.clone() }
        })
        .collect();
    for s in score_corpus(&perfect, &windows, &profiles) {
        assert!((s.normalized - 100.0).abs() < 1e-9, "{}: {}", s.profile, s.normalized);
        assert_eq!(s.counts.fp, 0);
    }
    let null: Vec<FileOutput> =
        outputs.iter().map(|o| FileOutput { scores: vec![0.0; o.scores.len()], ..o.clone() }).collect();
    for s in score_corpus(&null, &windows, &profiles) {
        assert_eq!(s.normalized, 0.0, "{}", s.profile);
    }
}
