//! The optimization pipeline: train → distill → prune → quantize, each step saving its
//! model and writing one row of the report (`report.md`, `report.json` in the model dir).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sensorflow_operators::likelihood::{LikelihoodParams, LIKELIHOOD_THRESHOLD};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

use super::artifact::{
    load_student, load_teacher, quantize, save_model, ModelCard, ModelError, Normalization, Provenance,
    FORMAT,
};
use super::data::{generate, DataConfig, Dataset};
use super::evaluate::{calibrate, f1, latency, markdown, nab_scores, set_nab, ReportRow};
use super::inference::{burn_student_detector, teacher_detector, Detector, PlainMlp};
use super::model::Teacher;
use super::training::{
    prune_student, teacher_logits, train_student, train_teacher, weight_sparsity, Distill, Progress,
    TrainConfig,
};
use crate::nab::NabError;

/// Pipeline settings.
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
    pub calibration: Option<sensorflow_operators::likelihood::LikelihoodParams>,
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

/// What can stop a pipeline step.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A model file.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The NAB corpus.
    #[error(transparent)]
    Nab(#[from] NabError),
    /// The report file.
    #[error("report {path}: {message}")]
    Report {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

struct Data {
    config: DataConfig,
    train: Dataset,
    held: Dataset,
}

fn data(opts: &Options) -> Data {
    let (config, held_cfg) = opts.data();
    let train = generate(&config);
    let held = generate(&held_cfg);
    println!(
        "data: {} training windows ({:.1}% positive), {} held-out windows (seed {})",
        train.len(),
        100.0 * train.positive_rate(),
        held.len(),
        opts.seed
    );
    Data { config, train, held }
}

/// Training progress: a bar over the epochs on a terminal, otherwise one line per epoch.
fn progress(step: &str) -> impl FnMut(Progress) + '_ {
    let mut meter: Option<sensorflow_operators::progress::Meter> = None;
    move |p: Progress| {
        let m = meter.get_or_insert_with(|| {
            sensorflow_operators::progress::Meter::new(step, Some(p.epochs as u64), "epochs", Duration::ZERO)
        });
        if m.is_bar() {
            m.set(p.epoch as u64, || format!("loss {:.4}", p.loss));
            if p.epoch >= p.epochs {
                if let Some(m) = meter.take() {
                    m.finish();
                }
            }
        } else {
            println!(
                "{step}: epoch {}/{} loss {:.4} ({:.1} s)",
                p.epoch,
                p.epochs,
                p.loss,
                p.elapsed.as_secs_f64()
            )
        }
    }
}

struct NonZero {
    total: usize,
    nonzero: usize,
}

impl ModuleVisitor for NonZero {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v: Vec<f32> =
            param.val().dequantize().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
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
) -> Result<ReportRow, PipelineError> {
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

/// Reads the report rows in `dir`, replaces those of `rows`' steps, writes it back and
/// prints the table.
fn record(dir: &Path, rows: Vec<ReportRow>) -> Result<Vec<ReportRow>, PipelineError> {
    let json = dir.join("report.json");
    let err = |e: String| PipelineError::Report { path: json.clone(), message: e };
    let mut all: Vec<ReportRow> = match std::fs::read_to_string(&json) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| err(e.to_string()))?,
        Err(_) => Vec::new(),
    };
    for row in rows {
        match all.iter_mut().find(|r| r.step == row.step && r.engine == row.engine) {
            Some(r) => *r = row,
            None => all.push(row),
        }
    }
    let order = ["teacher", "student-undistilled", "student", "student-pruned", "student-int8"];
    all.sort_by_key(|r| (order.iter().position(|s| *s == r.step).unwrap_or(99), r.engine.clone()));
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    std::fs::write(&json, serde_json::to_string_pretty(&all).map_err(|e| err(e.to_string()))?)
        .map_err(|e| err(e.to_string()))?;
    let table = markdown(&all);
    std::fs::write(dir.join("report.md"), format!("# Optimization report\n\n{table}"))
        .map_err(|e| err(e.to_string()))?;
    println!("\n{table}");
    Ok(all)
}

/// Saves `model` under `card`, records the weights file's size in `rows`, and rewrites the
/// card so its metrics include that size.
fn save_measured<M: Module + Clone>(
    opts: &Options,
    model: &M,
    rows: &mut [ReportRow],
    card: impl Fn(&ReportRow) -> ModelCard,
) -> Result<(), PipelineError> {
    let bytes = save_model(&opts.dir, model, &card(&rows[0]))?;
    for r in rows.iter_mut() {
        r.bytes = bytes;
    }
    save_model(&opts.dir, model, &card(&rows[0]))?;
    Ok(())
}

/// Step 1: trains the teacher; saves `teacher`.
pub fn train(opts: &Options) -> Result<Vec<ReportRow>, PipelineError> {
    let d = data(opts);
    let cfg = opts.train_config(6);
    let teacher = train_teacher(&d.train, &cfg, &mut progress("teacher"));
    let det = teacher_detector(&teacher, opts.window);
    let (threshold, _) = calibrate(&det, &d.held);
    let mut row = measure("teacher", "burn-ndarray", &det, opts, &d.held, threshold)?;
    (row.params, row.nonzero) = count(&teacher);
    let prov = Provenance { data: d.config.clone(), train: cfg, distill: None, pruning: None };
    let mut rows = vec![row];
    save_measured(opts, &teacher, &mut rows, |r| {
        card("teacher-cnn", "teacher", opts, threshold, prov.clone(), r)
    })?;
    record(&opts.dir, rows)
}

fn student_rows(
    step: &str,
    s: &super::model::Student,
    opts: &Options,
    held: &Dataset,
    threshold: f32,
) -> Result<Vec<ReportRow>, PipelineError> {
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

fn teacher_soft(opts: &Options, d: &Data) -> Result<(Teacher, Vec<f32>), PipelineError> {
    let (teacher, _) = load_teacher(&opts.dir, "teacher")?;
    let logits = teacher_logits(&teacher, &d.train);
    Ok((teacher, logits))
}

/// Step 2: distils the teacher into the student (and, for comparison, trains the same
/// student on labels alone); saves `student`.
pub fn distill(opts: &Options) -> Result<Vec<ReportRow>, PipelineError> {
    let d = data(opts);
    let (_, logits) = teacher_soft(opts, &d)?;
    let cfg = opts.train_config(10);
    let distill = Distill::default();
    let plain = train_student(&d.train, opts.hidden, None, &cfg, &mut progress("student (labels only)"));
    let (t_plain, _) = calibrate(&PlainMlp::from_student(&plain), &d.held);
    let mut rows = student_rows("student-undistilled", &plain, opts, &d.held, t_plain)?;
    rows.truncate(1);
    let student = train_student(
        &d.train,
        opts.hidden,
        Some((&logits, distill)),
        &cfg,
        &mut progress("student (distilled)"),
    );
    let (threshold, _) = calibrate(&PlainMlp::from_student(&student), &d.held);
    let mut srows = student_rows("student", &student, opts, &d.held, threshold)?;
    let prov = Provenance { data: d.config.clone(), train: cfg, distill: Some(distill), pruning: None };
    save_measured(opts, &student, &mut srows, |r| {
        card("student-mlp", "student", opts, threshold, prov.clone(), r)
    })?;
    rows.extend(srows);
    record(&opts.dir, rows)
}

/// Step 3: prunes the student by magnitude (sparsity 0.2 → 0.8, polynomial schedule) while
/// fine-tuning with distillation; saves `student-pruned`.
pub fn prune(opts: &Options) -> Result<Vec<ReportRow>, PipelineError> {
    let d = data(opts);
    let (_, logits) = teacher_soft(opts, &d)?;
    let (student, card0) = load_student(&opts.dir, "student")?;
    let cfg = opts.train_config(6);
    let schedule = (0.2, 0.8);
    let pruned = prune_student(
        student,
        &d.train,
        Some((&logits, Distill::default())),
        schedule,
        &cfg,
        &mut progress("prune"),
    );
    println!("pruned: {:.1}% of weights are zero", 100.0 * weight_sparsity(&pruned));
    let (threshold, _) = calibrate(&PlainMlp::from_student(&pruned), &d.held);
    let mut rows = student_rows("student-pruned", &pruned, opts, &d.held, threshold)?;
    let prov = Provenance { pruning: Some(schedule), train: cfg, ..card0.provenance };
    save_measured(opts, &pruned, &mut rows, |r| {
        card("student-mlp", "student-pruned", opts, threshold, prov.clone(), r)
    })?;
    record(&opts.dir, rows)
}

/// Step 4: quantizes the pruned student to int8; saves `student-int8`. Reports Burn's int8
/// path (dequantizing on every call) and the plain path (dequantized once at load).
pub fn quantize_step(opts: &Options) -> Result<Vec<ReportRow>, PipelineError> {
    let d = data(opts);
    let (pruned, card0) = load_student(&opts.dir, "student-pruned")?;
    let q = quantize(&pruned);
    let (threshold, _) = calibrate(&PlainMlp::from_student(&q), &d.held);
    let mut rows = student_rows("student-int8", &q, opts, &d.held, threshold)?;
    let prov = card0.provenance;
    save_measured(opts, &q, &mut rows, |r| {
        card("student-mlp", "student-int8", opts, threshold, prov.clone(), r)
    })?;
    record(&opts.dir, rows)
}

/// Every step in order.
pub fn optimize(opts: &Options) -> Result<Vec<ReportRow>, PipelineError> {
    train(opts)?;
    distill(opts)?;
    prune(opts)?;
    quantize_step(opts)
}
