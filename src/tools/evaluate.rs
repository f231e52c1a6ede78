//! `sensorflow evaluate`: a model (or any detector's NAB result files) scored on the NAB
//! corpus, or a model on the synthetic NAB-like corpus, printed as score tables and optionally
//! drawn as PNGs or written back in NAB's results layout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sensorflow_models::detector::artifact::load_scorer;
use sensorflow_models::detector::evaluate::{self as ev, KindDetection, ReportRow};
use sensorflow_models::detector::inference::StudentScorer;
use sensorflow_models::nab::{self, FileOutput, ProfileScore, Windows};
use sensorflow_operators::LikelihoodParams;

use crate::observe::progress::Meter;
use crate::Error;

/// What the model's scores are calibrated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calibration {
    /// Whatever the model card says.
    Card,
    /// Raw probabilities.
    None,
    /// Per-series calibration with default settings.
    Likelihood,
    /// The card's (or the default) calibration without its range check.
    NoRange,
    /// The card's (or the default) range check alone: the model's scores are ignored.
    RangeOnly,
    /// The card's (or the default) calibration without its excursion checks.
    NoExcursions,
}

impl Calibration {
    /// The likelihood settings this choice means, given the model card's.
    pub fn params(self, card: Option<LikelihoodParams>) -> Option<LikelihoodParams> {
        match self {
            Calibration::Card => card,
            Calibration::None => None,
            Calibration::Likelihood => Some(Default::default()),
            Calibration::NoRange => Some(LikelihoodParams { range: None, ..card.unwrap_or_default() }),
            Calibration::NoExcursions => {
                Some(LikelihoodParams { excursions: None, ..card.unwrap_or_default() })
            }
            Calibration::RangeOnly => {
                let range = card.unwrap_or_default().range.unwrap_or_default();
                // A likelihood whose warm-up never ends always says 0.
                Some(LikelihoodParams { warmup: u64::MAX, range: Some(range), ..LikelihoodParams::default() })
            }
        }
    }
}

/// The corpus `evaluate` scores on.
#[derive(Clone, Debug, PartialEq)]
pub enum Corpus {
    /// The NAB corpus, and what else is done with it (none of which applies to the synthetic one).
    Nab {
        /// The corpus root.
        root: PathBuf,
        /// Score this detector's result files (`results/<detector>`) instead of the model.
        results: Option<PathBuf>,
        /// Also write the per-row outputs in NAB's results layout under this directory.
        write_results: Option<PathBuf>,
        /// Draw a PNG per file (and the optimization report's chart) into this directory.
        plot: Option<PathBuf>,
    },
    /// The synthetic NAB-like corpus generated from this seed (no NAB needed).
    Synthetic(u64),
}

/// Everything `evaluate` needs.
#[derive(Clone, Debug)]
pub struct EvaluateConfig {
    /// The corpus.
    pub corpus: Corpus,
    /// Model directory (also where `report.json` is looked for).
    pub dir: PathBuf,
    /// Model name in the directory.
    pub model: String,
    /// Episode threshold instead of the card's.
    pub threshold: Option<f32>,
    /// Calibration of the model's scores.
    pub calibration: Calibration,
    /// Also print per file (NAB) or per injected anomaly kind (synthetic).
    pub per_file: bool,
}

/// Runs `evaluate` and prints its tables on stdout.
pub fn evaluate(config: &EvaluateConfig) -> Result<(), Error> {
    let (root, results, write_results, plot) = match &config.corpus {
        Corpus::Synthetic(seed) => return evaluate_synthetic(config, *seed),
        Corpus::Nab { root, results, write_results, plot } => (root, results, write_results, plot),
    };
    let windows = nab::load_windows(&root.join("labels/combined_windows.json"))?;
    let profiles = nab::load_profiles(&root.join("config/profiles.json"))?;
    let (name, outputs) = match results {
        Some(dir) => (dir.display().to_string(), nab::read_results(dir)?),
        None => {
            let (scorer, calibration) = load_for_evaluation(config)?;
            let outputs =
                ev::nab_outputs(&scorer.mlp, root, scorer.mlp.window, scorer.threshold, calibration)?;
            (config.model.clone(), outputs)
        }
    };
    let scores = nab::score_corpus(&outputs, &windows, &profiles);
    println!("NAB v1.1 scores of {name}:");
    print_scores(&scores);
    if config.per_file {
        if let Some((profile, best)) = profiles
            .iter()
            .zip(&scores)
            .find(|(p, _)| p.name == "standard")
            .or(profiles.iter().zip(&scores).next())
        {
            let mut files = nab::score_files(&outputs, &windows, profile, best.threshold);
            files.sort_by(|a, b| a.raw.total_cmp(&b.raw));
            println!("\nper file ({} profile, threshold {:.4}), worst first:", profile.name, best.threshold);
            println!("{:<62} {:>7} {:>8} {:>12} {:>8}", "file", "windows", "detected", "false alarms", "raw");
            for f in &files {
                println!(
                    "{:<62} {:>7} {:>8} {:>12} {:>8.3}",
                    f.file, f.windows, f.detected, f.false_alarms, f.raw
                );
            }
            let (w, d, fa) = files
                .iter()
                .fold((0, 0, 0), |(w, d, fa), f| (w + f.windows, d + f.detected, fa + f.false_alarms));
            println!("{:<62} {w:>7} {d:>8} {fa:>12} {:>8.3}", "total", best.raw);
        }
    }
    if let Some(dir) = plot {
        let standard = scores.iter().find(|s| s.profile == "standard").map(|s| s.threshold);
        plot_evaluation(dir, &config.dir, &outputs, &windows, standard)?;
    }
    if let Some(out) = write_results {
        let with: Vec<(nab::Profile, f64)> =
            profiles.iter().cloned().zip(scores.iter().map(|s| s.threshold)).collect();
        let detector = name.rsplit('/').next().unwrap_or("sensorflow").to_string();
        nab::write_results(out, &detector, &outputs, &windows, &with)?;
        println!("per-row results written under {}", out.join(&detector).display());
    }
    Ok(())
}

/// `evaluate --synthetic SEED`: the model on the synthetic NAB-like corpus.
fn evaluate_synthetic(config: &EvaluateConfig, seed: u64) -> Result<(), Error> {
    let (scorer, calibration) = load_for_evaluation(config)?;
    let (files, windows) =
        sensorflow_models::detector::data::synthetic_nab(seed, ev::SYNTHETIC_FILES, ev::SYNTHETIC_ROWS);
    let outputs =
        ev::synthetic_outputs(&scorer.mlp, scorer.mlp.window, scorer.threshold, calibration, &files);
    let scores = nab::score_corpus(&outputs, &windows, &nab::standard_profiles());
    println!("synthetic NAB-like corpus (seed {seed}), model {}, calibration {calibration:?}:", config.model);
    print_scores(&scores);
    if config.per_file {
        if let Some(standard) = scores.iter().find(|s| s.profile == "standard") {
            let kinds = ev::detection_by_kind(&files, &outputs, &windows, standard.threshold);
            print_by_kind(&kinds, standard.threshold);
        }
    }
    Ok(())
}

/// The model `evaluate` scores (with the threshold override applied) and its calibration.
fn load_for_evaluation(config: &EvaluateConfig) -> Result<(StudentScorer, Option<LikelihoodParams>), Error> {
    let mut scorer = load_scorer(&config.dir, &config.model)?;
    if let Some(t) = config.threshold {
        scorer.threshold = t;
    }
    let calibration = config.calibration.params(scorer.calibration);
    Ok((scorer, calibration))
}

/// The per-profile score table.
fn print_scores(scores: &[ProfileScore]) {
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "profile", "score", "raw", "threshold", "TP rows", "FP rows"
    );
    for s in scores {
        println!(
            "{:<22} {:>10.2} {:>10.3} {:>10.4} {:>8} {:>8}",
            s.profile, s.normalized, s.raw, s.threshold, s.counts.tp, s.counts.fp
        );
    }
}

/// `--synthetic S --per-file`: detection per injected anomaly kind.
fn print_by_kind(kinds: &[KindDetection], threshold: f64) {
    println!("\nper anomaly kind (standard profile, threshold {threshold:.4}):");
    println!(
        "{:<14} {:>9} {:>8} {:>14} {:>14}",
        "kind", "anomalies", "detected", "median delay", "90th pct delay"
    );
    for k in kinds {
        let pct = |q: f64| {
            k.delays
                .get(((k.delays.len() as f64 - 1.0) * q).round() as usize)
                .map_or("–".to_string(), |d| format!("{d} rows"))
        };
        println!(
            "{:<14} {:>9} {:>8} {:>14} {:>14}",
            k.kind.map_or("–", |k| k.name()),
            k.anomalies,
            k.detected,
            pct(0.5),
            pct(0.9)
        );
    }
}

/// `--plot DIR`: one PNG per file, and the optimization report's chart when `model_dir` has one.
fn plot_evaluation(
    dir: &Path,
    model_dir: &Path,
    outputs: &[FileOutput],
    windows: &Windows,
    threshold: Option<f64>,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut meter = Meter::new("plot", Some(outputs.len() as u64), "files", Duration::from_secs(5));
    for (i, out) in outputs.iter().enumerate() {
        let labelled = windows.get(&out.file).map(Vec::as_slice).unwrap_or(&[]);
        super::plot::plot_file(dir, out, labelled, threshold)?;
        meter.set(i as u64 + 1, String::new);
    }
    meter.finish();
    let report = model_dir.join("report.json");
    let mut drawn = outputs.len();
    if report.exists() {
        let text = std::fs::read_to_string(&report).map_err(|e| Error::io(&report, e))?;
        let rows: Vec<ReportRow> = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{} is not an optimization report: {e}", report.display())))?;
        super::plot::plot_report(&dir.join("report.png"), &rows)?;
        drawn += 1;
    }
    println!("{drawn} plots written to {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_only_never_ends_its_warm_up_and_keeps_the_cards_range() {
        let card = LikelihoodParams::default();
        let p = Calibration::RangeOnly.params(Some(card)).expect("a calibration");
        assert_eq!(p.warmup, u64::MAX);
        assert!(p.range.is_some());
        assert!(Calibration::None.params(Some(card)).is_none());
        assert!(Calibration::NoRange.params(None).is_some_and(|p| p.range.is_none()));
    }
}
