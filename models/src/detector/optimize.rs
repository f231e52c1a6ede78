//! Optimization: train → distill → prune → quantize, each step saving its model and writing
//! its rows of the report (`report.md`, `report.json` in the model dir).
//!
//! The steps print nothing: they report training progress, notes, report rows and the
//! rewritten report as [`Event`]s to a callback the caller passes in (a CLI prints them, a
//! test collects or ignores them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sensorflow_operators::{LikelihoodParams, LIKELIHOOD_THRESHOLD};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use super::artifact::{
    load_student, load_teacher, quantize, save_model, ModelCard, ModelError, Normalization, Provenance,
    FORMAT,
};
use super::data::{generate, DataConfig, Dataset};
use super::evaluate::{calibrate, f1, latency, markdown, nab_scores, set_nab, ReportRow};
use super::inference::{burn_student_detector, teacher_detector, values, Detector, PlainMlp};
use super::model::Teacher;
use super::training::{
    prune_student, teacher_logits, train_student, train_teacher, weight_sparsity, Distill, Progress,
    TrainConfig,
};
use crate::nab::NabError;

/// Optimization settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Where models and the report go.
    pub dir: PathBuf,
    /// Seed for data, initialisation and shuffles.
    pub seed: u64,
    /// Values per window.
    pub window: usize,
    /// Student hidden units.
    pub hidden: usize,
    /// NAB corpus root for scoring (`None`: skip NAB).
    pub nab: Option<PathBuf>,
    /// Time budget per training step.
    pub budget: Duration,
    /// Small data and few epochs (tests, smoke runs).
    pub quick: bool,
    /// Per-series calibration of the models' scores (`None`: raw probabilities).
    pub calibration: Option<LikelihoodParams>,
}

impl Options {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Options {
            dir: dir.into(),
            seed: 42,
            window: 64,
            hidden: 64,
            nab: None,
            budget: Duration::from_secs(240),
            quick: false,
            calibration: Some(LikelihoodParams::default()),
        }
    }

    /// What alerts compare with: the raw-probability threshold, or with a calibration the
    /// calibrated one.
    fn alert_threshold(&self, raw: f32) -> f32 {
        self.calibration.map_or(raw, |_| LIKELIHOOD_THRESHOLD)
    }

    fn data(&self) -> (DataConfig, DataConfig) {
        let mut train = DataConfig::train(self.seed, self.window);
        let mut held = DataConfig::held_out(self.seed, self.window);
        if self.quick {
            train.series = 60;
            train.samples = 1500;
            held.series = 10;
            held.samples = 1500;
        }
        (train, held)
    }

    fn train_config(&self, epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs: if self.quick { 2 } else { epochs },
            budget: self.budget,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

/// What can stop an optimization step.
#[derive(Debug, thiserror::Error)]
pub enum OptimizeError {
    /// A model file (whether a retry can help: see [`ModelError`]).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The NAB corpus (whether a retry can help: see [`NabError`]).
    #[error(transparent)]
    Nab(#[from] NabError),
    /// The report (or its folder) could not be written. A retry can help when the cause is
    /// transient (a full disk since cleared).
    #[error("report {path}: {source}")]
    ReportIo {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The existing `report.json` is not a report (or the report cannot be serialised). A
    /// retry cannot help until the file is fixed or removed.
    #[error("report {path}: {source}")]
    ReportJson {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// What the steps report while they run, in order; none of it is needed to use the results.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An epoch of a training run ended.
    Epoch {
        /// The run: `teacher`, `student (labels only)`, `student (distilled)` or `prune`.
        step: String,
        /// The epoch, its loss and the time since the run started.
        progress: Progress,
    },
    /// A training run ended: after its last epoch, or earlier when the time budget ran out.
    Trained {
        /// The run, as in [`Event::Epoch`].
        step: String,
    },
    /// A line for the user, without a newline: the data a step uses (`data: …`, at the start
    /// of every step) and the sparsity reached by pruning (`pruned: …`).
    Note(String),
    /// A measured row of the report, about to be recorded (its weights file already saved).
    Row(ReportRow),
    /// The report was rewritten: every row now in `report.json`, and the markdown table of
    /// `report.md` without its title.
    Report {
        /// The report's rows, in report order.
        rows: Vec<ReportRow>,
        /// [`markdown`] of `rows`.
        table: String,
    },
}

struct Data {
    config: DataConfig,
    train: Dataset,
    held: Dataset,
}

fn data(opts: &Options, on: &mut dyn FnMut(Event)) -> Data {
    let (config, held_cfg) = opts.data();
    let train = generate(&config);
    let held = generate(&held_cfg);
    on(Event::Note(format!(
        "data: {} training windows ({:.1}% positive), {} held-out windows (seed {})",
        train.len(),
        100.0 * train.positive_rate(),
        held.len(),
        opts.seed
    )));
    Data { config, train, held }
}

/// Runs `train` with its epochs reported as `step`, then reports that the run ended.
fn trained<T>(step: &str, on: &mut dyn FnMut(Event), train: impl FnOnce(&mut dyn FnMut(Progress)) -> T) -> T {
    let model = train(&mut |progress| on(Event::Epoch { step: step.to_string(), progress }));
    on(Event::Trained { step: step.to_string() });
    model
}

struct NonZero {
    total: usize,
    nonzero: usize,
}

impl ModuleVisitor for NonZero {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = values(param.val());
        self.total += v.len();
        self.nonzero += v.iter().filter(|x| **x != 0.0).count();
    }
}

fn count<M: Module>(m: &M) -> (usize, usize) {
    let mut v = NonZero { total: 0, nonzero: 0 };
    m.visit(&mut v);
    (v.total, v.nonzero)
}

fn measure(
    step: &str,
    engine: &str,
    det: &dyn Detector,
    opts: &Options,
    held: &Dataset,
    threshold: f32,
) -> Result<ReportRow, OptimizeError> {
    let (b1, b1024) = latency(det, opts.window);
    let mut row = ReportRow {
        step: step.into(),
        engine: engine.into(),
        latency_batch1_us: b1,
        latency_batch1024_us: b1024,
        windows_per_sec: 1024.0 / b1024 * 1e6,
        f1: f1(det, held, threshold),
        threshold,
        ..ReportRow::default()
    };
    if let Some(root) = &opts.nab {
        let episodes = opts.alert_threshold(threshold);
        set_nab(&mut row, &nab_scores(det, root, opts.window, episodes, opts.calibration)?);
    }
    Ok(row)
}

fn card(
    kind: &str,
    name: &str,
    opts: &Options,
    threshold: f32,
    provenance: Provenance,
    row: &ReportRow,
) -> ModelCard {
    ModelCard {
        format: FORMAT,
        kind: kind.into(),
        name: name.into(),
        window: opts.window,
        hidden: (kind == "student-mlp").then_some(opts.hidden),
        quantization: name.ends_with("int8").then(|| "int8-symmetric".to_string()),
        normalization: Normalization::default(),
        threshold: opts.alert_threshold(threshold),
        provenance,
        metrics: serde_json::to_value(row).ok(),
        compression: Some("zlib".into()),
        calibration: opts.calibration,
    }
}

/// Reads the report rows in `dir`, replaces those of `rows`' steps, and writes it back.
fn merge_report(
    dir: &Path,
    rows: Vec<ReportRow>,
    on: &mut dyn FnMut(Event),
) -> Result<Vec<ReportRow>, OptimizeError> {
    let json = dir.join("report.json");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OptimizeError::ReportIo { path, source }
    };
    let bad_json = |source| OptimizeError::ReportJson { path: json.clone(), source };
    let mut all: Vec<ReportRow> = match std::fs::read_to_string(&json) {
        Ok(text) => serde_json::from_str(&text).map_err(bad_json)?,
        Err(_) => Vec::new(),
    };
    for row in rows {
        on(Event::Row(row.clone()));
        match all.iter_mut().find(|r| r.step == row.step && r.engine == row.engine) {
            Some(r) => *r = row,
            None => all.push(row),
        }
    }
    let order = ["teacher", "student-undistilled", "student", "student-pruned", "student-int8"];
    all.sort_by_key(|r| (order.iter().position(|s| *s == r.step).unwrap_or(99), r.engine.clone()));
    std::fs::create_dir_all(dir).map_err(io(&json))?;
    std::fs::write(&json, serde_json::to_string_pretty(&all).map_err(bad_json)?).map_err(io(&json))?;
    let table = markdown(&all);
    let md = dir.join("report.md");
    std::fs::write(&md, format!("# Optimization report\n\n{table}")).map_err(io(&md))?;
    on(Event::Report { rows: all.clone(), table });
    Ok(all)
}

/// Saves `model` under `card`, records the weights file's size in `rows`, and rewrites the
/// card so its metrics include that size.
fn save_measured<M: Module + Clone>(
    opts: &Options,
    model: &M,
    rows: &mut [ReportRow],
    card: impl Fn(&ReportRow) -> ModelCard,
) -> Result<(), OptimizeError> {
    let bytes = save_model(&opts.dir, model, &card(&rows[0]))?;
    for r in rows.iter_mut() {
        r.bytes = bytes;
    }
    save_model(&opts.dir, model, &card(&rows[0]))?;
    Ok(())
}

/// Step 1: trains the teacher; saves `teacher`. Reports to `on` as it goes.
pub fn train(opts: &Options, on: &mut dyn FnMut(Event)) -> Result<Vec<ReportRow>, OptimizeError> {
    let d = data(opts, on);
    let cfg = opts.train_config(6);
    let teacher = trained("teacher", on, |p| train_teacher(&d.train, &cfg, p));
    let det = teacher_detector(&teacher, opts.window);
    let (threshold, _) = calibrate(&det, &d.held);
    let mut row = measure("teacher", "burn-ndarray", &det, opts, &d.held, threshold)?;
    (row.params, row.nonzero) = count(&teacher);
    let prov = Provenance { data: d.config.clone(), train: cfg, distill: None, pruning: None };
    let mut rows = vec![row];
    save_measured(opts, &teacher, &mut rows, |r| {
        card("teacher-cnn", "teacher", opts, threshold, prov.clone(), r)
    })?;
    merge_report(&opts.dir, rows, on)
}

fn student_rows(
    step: &str,
    s: &super::model::Student,
    opts: &Options,
    held: &Dataset,
    threshold: f32,
) -> Result<Vec<ReportRow>, OptimizeError> {
    let plain = PlainMlp::from_student(s);
    let mut fast = measure(step, "plain-rust", &plain, opts, held, threshold)?;
    let burn_det = burn_student_detector(s, opts.window);
    let (b1, b1024) = latency(&burn_det, opts.window);
    (fast.params, fast.nonzero) = (plain.params(), plain.nonzero());
    let burn_row = ReportRow {
        engine: "burn-ndarray".into(),
        latency_batch1_us: b1,
        latency_batch1024_us: b1024,
        windows_per_sec: 1024.0 / b1024 * 1e6,
        ..fast.clone()
    };
    Ok(vec![fast, burn_row])
}

fn teacher_soft(opts: &Options, d: &Data) -> Result<(Teacher, Vec<f32>), OptimizeError> {
    let (teacher, _) = load_teacher(&opts.dir, "teacher")?;
    let logits = teacher_logits(&teacher, &d.train);
    Ok((teacher, logits))
}

/// Step 2: distils the teacher into the student (and, for comparison, trains the same
/// student on labels alone); saves `student`. Reports to `on` as it goes.
pub fn distill(opts: &Options, on: &mut dyn FnMut(Event)) -> Result<Vec<ReportRow>, OptimizeError> {
    let d = data(opts, on);
    let (_, logits) = teacher_soft(opts, &d)?;
    let cfg = opts.train_config(10);
    let distill = Distill::default();
    let plain = trained("student (labels only)", on, |p| train_student(&d.train, opts.hidden, None, &cfg, p));
    let (t_plain, _) = calibrate(&PlainMlp::from_student(&plain), &d.held);
    let mut rows = student_rows("student-undistilled", &plain, opts, &d.held, t_plain)?;
    rows.truncate(1);
    let student = trained("student (distilled)", on, |p| {
        train_student(&d.train, opts.hidden, Some((&logits, distill)), &cfg, p)
    });
    let (threshold, _) = calibrate(&PlainMlp::from_student(&student), &d.held);
    let mut srows = student_rows("student", &student, opts, &d.held, threshold)?;
    let prov = Provenance { data: d.config.clone(), train: cfg, distill: Some(distill), pruning: None };
    save_measured(opts, &student, &mut srows, |r| {
        card("student-mlp", "student", opts, threshold, prov.clone(), r)
    })?;
    rows.extend(srows);
    merge_report(&opts.dir, rows, on)
}

/// Step 3: prunes the student by magnitude (sparsity 0.2 → 0.8, polynomial schedule) while
/// fine-tuning with distillation; saves `student-pruned`. Reports to `on` as it goes.
pub fn prune(opts: &Options, on: &mut dyn FnMut(Event)) -> Result<Vec<ReportRow>, OptimizeError> {
    let d = data(opts, on);
    let (_, logits) = teacher_soft(opts, &d)?;
    let (student, card0) = load_student(&opts.dir, "student")?;
    let cfg = opts.train_config(6);
    let schedule = (0.2, 0.8);
    let pruned = trained("prune", on, |p| {
        prune_student(student, &d.train, Some((&logits, Distill::default())), schedule, &cfg, p)
    });
    on(Event::Note(format!("pruned: {:.1}% of weights are zero", 100.0 * weight_sparsity(&pruned))));
    let (threshold, _) = calibrate(&PlainMlp::from_student(&pruned), &d.held);
    let mut rows = student_rows("student-pruned", &pruned, opts, &d.held, threshold)?;
    let prov = Provenance { pruning: Some(schedule), train: cfg, ..card0.provenance };
    save_measured(opts, &pruned, &mut rows, |r| {
        card("student-mlp", "student-pruned", opts, threshold, prov.clone(), r)
    })?;
    merge_report(&opts.dir, rows, on)
}

/// Step 4: quantizes the pruned student to int8; saves `student-int8`. Reports Burn's int8
/// path (dequantizing on every call) and the plain path (dequantized once at load). Reports
/// to `on` as it goes.
pub fn quantize_step(opts: &Options, on: &mut dyn FnMut(Event)) -> Result<Vec<ReportRow>, OptimizeError> {
    let d = data(opts, on);
    let (pruned, card0) = load_student(&opts.dir, "student-pruned")?;
    let q = quantize(&pruned);
    let (threshold, _) = calibrate(&PlainMlp::from_student(&q), &d.held);
    let mut rows = student_rows("student-int8", &q, opts, &d.held, threshold)?;
    let prov = card0.provenance;
    save_measured(opts, &q, &mut rows, |r| {
        card("student-mlp", "student-int8", opts, threshold, prov.clone(), r)
    })?;
    merge_report(&opts.dir, rows, on)
}

/// Every step in order, each reporting to `on`.
pub fn optimize(opts: &Options, on: &mut dyn FnMut(Event)) -> Result<Vec<ReportRow>, OptimizeError> {
    train(opts, on)?;
    distill(opts, on)?;
    prune(opts, on)?;
    quantize_step(opts, on)
}
