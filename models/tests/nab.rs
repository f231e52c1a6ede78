//! The NAB scorer against NAB's own published numbers.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use sensorflow_models::nab::{load_profiles, load_windows, read_results, score_corpus, FileOutput};

/// `$SENSORFLOW_NAB_DIR`, else `../shared/datasets/nab` beside the checkout, else
/// `/work/shared/datasets/nab`.
fn nab_root() -> PathBuf {
    if let Ok(dir) = std::env::var("SENSORFLOW_NAB_DIR") {
        return PathBuf::from(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/nab");
    if beside.join("data").is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared/datasets/nab")
}

#[test]
fn reproduces_windowed_gaussian_published_scores() {
    let root = nab_root();
    let windows = load_windows(&root.join("labels/combined_windows.json")).unwrap();
    let profiles = load_profiles(&root.join("config/profiles.json")).unwrap();
    let outputs = read_results(&root.join("results/windowedGaussian")).unwrap();
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
    let root = nab_root();
    let windows = load_windows(&root.join("labels/combined_windows.json")).unwrap();
    let profiles = load_profiles(&root.join("config/profiles.json")).unwrap();
    let outputs = read_results(&root.join("results/windowedGaussian")).unwrap();
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
