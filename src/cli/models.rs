//! The model steps (`train`, `distill`, `prune`, `quantize`, `optimize`) and `evaluate`.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;

use sensorflow::config::duration::parse_ms;
use sensorflow::observe::progress::OptimizePrinter;
use sensorflow::tools::evaluate::{Calibration, Corpus, EvaluateConfig};
use sensorflow_models::detector::evaluate::ReportRow;
use sensorflow_models::detector::optimize::{self, Options};
use sensorflow_models::nab::discover_root;

/// Settings of the model steps.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Directory holding the models and the report.
    #[arg(long, default_value = "models/artifacts")]
    pub dir: PathBuf,
    /// Seed for data, initialisation and shuffles.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Student hidden units.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// NAB corpus root for the report's NAB columns (default: ../shared/datasets/nab if present).
    #[arg(long)]
    pub nab: Option<PathBuf>,
    /// Skip NAB scoring.
    #[arg(long)]
    pub no_nab: bool,
    /// Time budget per training step (e.g. 4m).
    #[arg(long, value_parser = parse_ms, default_value = "4m")]
    pub budget: u64,
    /// Small data and two epochs: a smoke test of every step.
    #[arg(long)]
    pub quick: bool,
}

impl ModelArgs {
    /// The optimization steps' options (the NAB corpus from `--nab`, `$SENSORFLOW_NAB_DIR` or beside the
    /// checkout, unless `--no-nab`).
    pub fn into_config(self) -> Options {
        let mut o = Options::new(&self.dir);
        o.seed = self.seed;
        o.hidden = self.hidden;
        o.budget = std::time::Duration::from_millis(self.budget);
        o.quick = self.quick;
        o.nab = if self.no_nab { None } else { discover_root(self.nab.as_deref()) };
        o
    }
}

/// `sensorflow train`: the synthetic teacher, or with `--data` the learned device model.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Settings shared with the other model steps (`--dir`, `--seed`, `--budget`, `--quick`).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Recorded normal data of one device type (JSON lines, CSV narrow or wide, binary log):
    /// trains the learned device model and runs its whole chain on it.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Format of the data files (default: from each file's extension).
    #[arg(long, value_parser = ["jsonl", "csv", "log"], requires = "data")]
    pub format: Option<String>,
    /// Row interval: the window hop the engine will run the model at (`run --window`).
    #[arg(long, value_parser = parse_ms, default_value = "10s", requires = "data")]
    pub interval: u64,
    /// Labels of known incidents to leave out (a rig `.labels.json`, or a CSV with `ts` and
    /// `label` columns): one per data file, or one for all.
    #[arg(long, num_args = 1.., value_name = "FILE", requires = "data")]
    pub labels: Vec<PathBuf>,
    /// Name stem of the model cards written to `--dir`.
    #[arg(long, default_value = "device", requires = "data")]
    pub name: String,
    /// Student hidden units of the device model.
    #[arg(long, default_value_t = 32, requires = "data")]
    pub row_hidden: usize,
}

/// `sensorflow train --data`: the learned device model's chain on recorded data.
pub fn train_rows(args: TrainArgs) -> Result<()> {
    use sensorflow::tools::train::{train_rows, TrainRows};
    use sensorflow_models::device::learned::ChainOptions;
    ensure!((1..=256).contains(&args.row_hidden), "--row-hidden must be 1..=256, got {}", args.row_hidden);
    let mut chain = ChainOptions { hidden: args.row_hidden, ..ChainOptions::default() };
    chain.train.seed = args.model.seed;
    chain.train.budget = std::time::Duration::from_millis(args.model.budget);
    if args.model.quick {
        chain.train.epochs = 2;
        chain.max_samples = 50_000;
    }
    let opts = TrainRows {
        inputs: args.data,
        format: args.format,
        interval_ms: args.interval,
        labels: args.labels,
        dir: args.model.dir,
        name: args.name,
        chain,
    };
    let mut header = true;
    let out = train_rows(&opts, &mut |r| {
        if std::mem::take(&mut header) {
            eprintln!("| step | params | non-zero | file bytes | validation RMSE (σ) | rows/s (1 thread) | train s |");
            eprintln!("|---|---|---|---|---|---|---|");
        }
        eprintln!(
            "| {} | {} | {} | {} | {:.4} | {:.0} | {:.1} |",
            r.step, r.params, r.nonzero, r.bytes, r.rmse, r.rows_per_s, r.train_s
        )
    })
    .context("training the device model")?;
    eprintln!(
        "{} rows of {} metrics ({}) from {} recordings, {} labelled rows left out",
        out.rows,
        out.metrics.len(),
        out.metrics.join(", "),
        out.recordings,
        out.excluded
    );
    for card in &out.cards {
        println!("{}", card.display());
    }
    Ok(())
}

/// A model step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `train`.
    Train,
    /// `distill`.
    Distill,
    /// `prune`.
    Prune,
    /// `quantize`.
    Quantize,
    /// `optimize`: every step in order.
    Optimize,
}

/// Runs one model step: the only place the binary calls the optimization steps.
pub fn step(step: Step, opts: &Options) -> Result<()> {
    let mut printer = OptimizePrinter::default();
    let on = &mut |e| printer.event(e);
    let rows: Vec<ReportRow> = match step {
        Step::Train => optimize::train(opts, on)?,
        Step::Distill => optimize::distill(opts, on)?,
        Step::Prune => optimize::prune(opts, on)?,
        Step::Quantize => optimize::quantize_step(opts, on)?,
        Step::Optimize => {
            let started = std::time::Instant::now();
            let rows = optimize::optimize(opts, on)?;
            eprintln!(
                "optimize finished in {:.1} s; report in {}/report.md",
                started.elapsed().as_secs_f64(),
                opts.dir.display()
            );
            rows
        }
    };
    ensure!(!rows.is_empty(), "no report rows were produced");
    Ok(())
}

/// `sensorflow evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// NAB corpus root (default: ../shared/datasets/nab if present).
    #[arg(long)]
    pub nab: Option<PathBuf>,
    /// Model directory and name to score (default: models/artifacts, student-int8).
    #[arg(long, default_value = "models/artifacts")]
    pub dir: PathBuf,
    /// Model name in the directory.
    #[arg(long, default_value = "student-int8")]
    pub model: String,
    /// Score this detector's per-row NAB result files instead (a `results/<detector>` dir).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Also write the model's per-row outputs in NAB's results layout under this directory.
    #[arg(long)]
    pub write_results: Option<PathBuf>,
    /// Episode threshold for the model's (calibrated) scores instead of the card's.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Score the synthetic NAB-like corpus (generated from this seed) instead of NAB (no NAB
    /// corpus needed).
    #[arg(long, value_name = "SEED", conflicts_with_all = ["results", "write_results", "plot"])]
    pub synthetic: Option<u64>,
    /// Calibration of the model's scores: as its card says, none, default settings, or the
    /// card's without one of its parts (to see what each contributes).
    #[arg(long, value_parser = calibration_parser(), default_value = "card")]
    pub calibration: Calibration,
    /// Draw a PNG per NAB file (series, score, labelled windows) into this directory, and
    /// `report.png` from the optimization report (`--dir`/report.json) when there is one.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Also print, per file, the windows detected, false alarms and share of the raw score
    /// (standard profile at its optimal threshold), worst files first; with `--synthetic`,
    /// per injected anomaly kind, how many were detected and how many rows after the onset.
    #[arg(long)]
    pub per_file: bool,
    /// Score a run per row instead: its labels, a rig labels file (`.json`, as `rig write`
    /// writes) or a CSV with `ts` and `label` columns; needs `--alerts` or `--scores`.
    #[arg(long, value_name = "LABELS", conflicts_with_all = ["synthetic", "results", "write_results", "plot"])]
    pub rows: Option<PathBuf>,
    /// With `--rows`: the run's alert file; rows from a `fired` to its `cleared` are flagged.
    #[arg(long, requires = "rows", conflicts_with = "scores")]
    pub alerts: Option<PathBuf>,
    /// With `--rows`: the run's score file (`run --scores`); rows whose state is `open` are
    /// flagged.
    #[arg(long, requires = "rows")]
    pub scores: Option<PathBuf>,
    /// With `--rows`: only this device's alerts or scores.
    #[arg(long, requires = "rows")]
    pub device: Option<String>,
    /// With `--rows --alerts`: only alerts of this rule or model (e.g. `device-model`).
    #[arg(long, requires = "alerts")]
    pub rule: Option<String>,
    /// With a CSV of labels: leading rows not scored (a detector's warm-up).
    #[arg(long, default_value_t = 0, requires = "rows")]
    pub warmup: usize,
}

/// `sensorflow evaluate --rows`: per-row precision, recall, F1, false-alarm rate and fault
/// events of a run's alerts or scores against its labels.
pub fn evaluate_rows(args: &EvaluateArgs) -> Result<()> {
    use sensorflow_models::rows::{flags_from_alerts, flags_from_scores, RowLabels};
    use sensorflow_models::synth::rigs::START_MS;
    let Some(labels_path) = &args.rows else { anyhow::bail!("--rows needs a labels file") };
    let labels = RowLabels::load(labels_path, START_MS, None, args.warmup)?;
    let flags = match (&args.alerts, &args.scores) {
        (Some(a), _) => flags_from_alerts(&labels, a, args.device.as_deref(), args.rule.as_deref())?,
        (None, Some(s)) => flags_from_scores(&labels, s, args.device.as_deref())?,
        (None, None) => anyhow::bail!("--rows needs --alerts FILE or --scores FILE"),
    };
    let (c, e) = labels.score(&flags)?;
    println!("rows after the warm-up, no point adjustment");
    println!();
    println!("| rows | anomalous | precision | recall | F1 | FAR | events detected | median delay (rows) |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {} / {} | {} |",
        c.rows(),
        c.anomalous(),
        c.precision(),
        c.recall(),
        c.f1(),
        c.false_alarm_rate(),
        e.detected,
        e.events,
        e.median_delay().map_or_else(|| "–".to_string(), |d| format!("{d}"))
    );
    Ok(())
}

impl EvaluateArgs {
    /// The evaluation: the synthetic corpus with `--synthetic` (which clap keeps apart from
    /// `--results`), else the NAB corpus, which must be found.
    pub fn into_config(self) -> Result<EvaluateConfig> {
        let corpus = match self.synthetic {
            Some(seed) => Corpus::Synthetic(seed),
            None => Corpus::Nab {
                root: discover_root(self.nab.as_deref()).context("no NAB corpus found; pass --nab DIR")?,
                results: self.results,
                write_results: self.write_results,
                plot: self.plot,
            },
        };
        Ok(EvaluateConfig {
            corpus,
            dir: self.dir,
            model: self.model,
            threshold: self.threshold,
            calibration: self.calibration,
            per_file: self.per_file,
        })
    }
}

/// `evaluate --calibration`: each of the library's choices under its command-line name, with
/// the line `--help` shows for it.
const CALIBRATIONS: [(&str, Calibration, &str); 6] = [
    ("card", Calibration::Card, "Whatever the model card says"),
    ("none", Calibration::None, "Raw probabilities"),
    (
        "likelihood",
        Calibration::Likelihood,
        "Per-series calibration with default settings (likelihood, records, excursion checks)",
    ),
    ("no-range", Calibration::NoRange, "The card's (or the default) calibration without its range check"),
    (
        "range-only",
        Calibration::RangeOnly,
        "The card's (or the default) range check alone: the model's scores are ignored",
    ),
    (
        "no-excursions",
        Calibration::NoExcursions,
        "The card's (or the default) calibration without its excursion checks (rate and recurrence)",
    ),
];

/// Parses `--calibration` straight into the library's [`Calibration`] (clap types stay here).
fn calibration_parser() -> impl TypedValueParser<Value = Calibration> {
    PossibleValuesParser::new(CALIBRATIONS.map(|(name, _, help)| PossibleValue::new(name).help(help)))
        .try_map(|name| match CALIBRATIONS.iter().find(|(n, ..)| *n == name) {
            Some(&(_, calibration, _)) => Ok(calibration),
            None => Err(format!("unknown calibration {name:?}")),
        })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn every_calibration_name_parses_to_its_choice() {
        for (name, calibration, _) in CALIBRATIONS {
            let cli = Cli::try_parse_from(["sensorflow", "evaluate", "--calibration", name]);
            let parsed = match cli.map(|c| c.command) {
                Ok(Command::Evaluate(args)) => Some(args.calibration),
                _ => None,
            };
            assert_eq!(parsed, Some(calibration), "{name}");
        }
    }
}
