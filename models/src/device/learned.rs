//! The learned device model (issue 14, item 3): a network of virtual sensors trained on a
//! device type's recorded normal rows, which replaces the statistical model's per-device
//! regressions while keeping its smoothing, warm-up calibration, stuck and dropout checks and
//! episodes ([`super::DeviceModel::with_prior`]).
//!
//! **Why a model trained on recordings.** The statistical model fits its regressions on one
//! warm-up; on the rig benchmark a run's warm-up covers a small part of the operating range,
//! and outside it the regressions extrapolate (models/EXPERIMENTS.md, session 12: the same
//! regressions fitted on four other runs of the same rig gain about 0.15 F1 on the design
//! seeds). A network trained on many hours of the device type's normal operation knows the
//! relations over the whole range, and the warm-up only has to measure each device's residual
//! offsets and deviations.
//!
//! **What the network computes.** For each metric `j`, the metric's current value from every
//! *other* metric's current value and moving averages ([`super::DeviceConfig::ema_seconds`]),
//! all standardised by the training data's mean and deviation of each metric: input = the
//! `n × block` standardised regressors with metric `j`'s block zeroed, followed by a one-hot
//! of `j` (so one network serves every metric); output = metric `j`'s standardised value. A
//! fault on `j` therefore shows in `j`'s residual instead of being explained by itself.
//!
//! Both networks add to their output each metric's *linear* virtual sensor (a weight per
//! regressor, chosen by the one-hot), so they start from what a linear regression fitted on
//! all the recordings knows and learn the non-linear rest.
//!
//! **Optimization chain.** A teacher (`in → 128 → 128 → 1`, ReLU) trained by mean squared
//! error; a student (`in → hidden → 1`) distilled from
//! the teacher's outputs mixed with the targets; the student pruned by magnitude while
//! fine-tuning; the pruned student quantized to int8. [`RowPrior`] runs any of them in plain
//! Rust: the hidden layer is computed once per row from the full input and corrected per
//! metric for its zeroed block and its one-hot, so a row costs about one pass, not `n`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use crate::detector::data::Dataset;
use crate::detector::inference::values;
use crate::detector::training::{self, Progress, TrainConfig};

use super::{DeviceConfig, DeviceModel};

/// Format version of row-model cards.
pub const ROW_FORMAT: u32 = 1;

/// What can go wrong training, saving or loading a row model.
#[derive(Debug, thiserror::Error)]
pub enum RowModelError {
    /// No usable training rows. A retry cannot help: give more normal rows (at least 500).
    #[error("{0}")]
    NoData(String),
    /// A card that does not describe a row model this build can run. A retry cannot help:
    /// retrain, or fix the card.
    #[error("{path}: {why}")]
    Card {
        /// The card.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A file could not be read or written. A retry helps if the cause was transient.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RowModelError + '_ {
    move |source| RowModelError::Io { path: path.into(), source }
}

/// Each metric's linear virtual sensor inside the networks: `skip[j]` holds metric `j`'s
/// weights on the `n × block` regressors, selected per sample by the input's one-hot, so the
/// network's output is a per-metric linear regression plus what its hidden layers add.
/// (A ReLU network shares its hidden units between the metrics and approximates `n`
/// different linear maps poorly: without the skip, the teacher scored below a linear fit on
/// the same data, models/EXPERIMENTS.md.)
fn skip_forward(skip: &Tensor<2>, x: &Tensor<2>) -> Tensor<2> {
    let [batch, inputs] = x.dims();
    let [n, nb] = skip.dims();
    let feat = x.clone().slice([0..batch, 0..nb]);
    let hot = x.clone().slice([0..batch, nb..inputs.min(nb + n)]);
    (hot.matmul(skip.clone()) * feat).sum_dim(1)
}

fn skip_param(metrics: usize, inputs: usize, device: &Device) -> Param<Tensor<2>> {
    let nb = inputs - metrics;
    Param::from_tensor(Tensor::<2>::zeros([metrics, nb], device))
}

/// The teacher: `in → 128 → 128 → 1` with ReLU, plus each metric's linear virtual sensor.
#[derive(Module, Debug)]
pub struct RowTeacher {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    skip: Param<Tensor<2>>,
}

impl RowTeacher {
    /// A fresh teacher for `inputs` inputs (`metrics` of them the one-hot).
    pub fn new(inputs: usize, metrics: usize, device: &Device) -> Self {
        RowTeacher {
            fc1: LinearConfig::new(inputs, 128).init(device),
            fc2: LinearConfig::new(128, 128).init(device),
            fc3: LinearConfig::new(128, 1).init(device),
            skip: skip_param(metrics, inputs, device),
        }
    }

    /// Predictions `[batch, 1]` for inputs `[batch, in]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let lin = skip_forward(&self.skip.val(), &x);
        self.fc3.forward(relu(self.fc2.forward(relu(self.fc1.forward(x))))) + lin
    }

    /// Parameters.
    pub fn params(&self) -> usize {
        self.num_params()
    }
}

/// The student: `in → hidden → 1` with ReLU, plus each metric's linear virtual sensor.
#[derive(Module, Debug)]
pub struct RowStudent {
    /// Input layer; weight `[in, hidden]`.
    pub l1: Linear,
    /// Output layer; weight `[hidden, 1]`.
    pub l2: Linear,
    /// Linear virtual sensors `[n, n × block]`.
    pub skip: Param<Tensor<2>>,
}

impl RowStudent {
    /// A fresh student.
    pub fn new(inputs: usize, metrics: usize, hidden: usize, device: &Device) -> Self {
        RowStudent {
            l1: LinearConfig::new(inputs, hidden).init(device),
            l2: LinearConfig::new(hidden, 1).init(device),
            skip: skip_param(metrics, inputs, device),
        }
    }

    /// Predictions `[batch, 1]` for inputs `[batch, in]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let lin = skip_forward(&self.skip.val(), &x);
        self.l2.forward(relu(self.l1.forward(x))) + lin
    }

    /// Parameters.
    pub fn params(&self) -> usize {
        self.num_params()
    }
}

/// Zeroes the smallest-magnitude `sparsity` of each weight tensor (not the biases).
fn prune_row_student(mut s: RowStudent, sparsity: f64, training: bool) -> RowStudent {
    s.l1.weight = s.l1.weight.map(|w| training::magnitude_mask(w, sparsity, training));
    s.l2.weight = s.l2.weight.map(|w| training::magnitude_mask(w, sparsity, training));
    s.skip = s.skip.map(|w| training::magnitude_mask(w, sparsity, training));
    s
}

/// Quantizes a student's weights to int8, symmetric: the hidden layers with one scale per
/// tensor (as [`crate::detector::artifact::quantize`] does the univariate student's), the
/// linear virtual sensors with one scale per metric's row, since each metric's coefficients
/// have their own magnitude and one scale for all of them rounded the precise metrics'
/// relations away (models/EXPERIMENTS.md, session 12).
pub fn quantize_row_student(student: &RowStudent) -> RowStudent {
    use burn::tensor::quantization::{QuantStore, QuantValue, ScaleDtype};
    let device = training::device();
    let tensor_scheme =
        device.settings().quantization.scheme.with_value(QuantValue::Q8S).with_store(QuantStore::Native);
    let mut s = student.clone();
    s.l1.weight = s.l1.weight.map(|t| t.quantize_dynamic(&tensor_scheme));
    s.l2.weight = s.l2.weight.map(|t| t.quantize_dynamic(&tensor_scheme));
    if let Some(b) = s.l1.bias.take() {
        s.l1.bias = Some(b.map(|t| t.quantize_dynamic(&tensor_scheme)));
    }
    if let Some(b) = s.l2.bias.take() {
        s.l2.bias = Some(b.map(|t| t.quantize_dynamic(&tensor_scheme)));
    }
    let [_, nb] = s.skip.val().dims();
    // Blocks of at most 255 values (the scheme's limit): a metric's whole row when it fits.
    let block = (1..=nb.min(255)).rev().find(|b| nb % b == 0).unwrap_or(1) as u8;
    let row_scheme = tensor_scheme.per_block([1, block], ScaleDtype::F32);
    s.skip = s.skip.map(|t| t.quantize_dynamic(&row_scheme));
    s
}

/// A device type's normalisation and regressors: what a card records besides the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowSchema {
    /// Metric names, column order.
    pub metrics: Vec<String>,
    /// Row interval, ms (moving averages are per row).
    pub interval_ms: u64,
    /// Time constants of the moving averages, seconds.
    pub ema_seconds: Vec<f64>,
    /// Each metric's training mean.
    pub mean: Vec<f64>,
    /// Each metric's training deviation (> 0).
    pub std: Vec<f64>,
}

impl RowSchema {
    /// Regressors per metric (its value and its moving averages).
    pub fn block(&self) -> usize {
        1 + self.ema_seconds.len()
    }

    /// Network inputs: every metric's block and the one-hot.
    pub fn inputs(&self) -> usize {
        self.metrics.len() * (self.block() + 1)
    }

    fn check(&self) -> Result<(), String> {
        let n = self.metrics.len();
        if !(2..=256).contains(&n) {
            return Err(format!("{n} metrics (expected 2 ..= 256)"));
        }
        if self.mean.len() != n || self.std.len() != n {
            return Err(format!(
                "{n} metrics but {} means and {} deviations",
                self.mean.len(),
                self.std.len()
            ));
        }
        if !self.mean.iter().all(|m| m.is_finite()) || !self.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err("means must be finite and deviations positive".into());
        }
        if self.interval_ms == 0 || self.interval_ms > 86_400_000 {
            return Err(format!("interval_ms {} (expected 1 ..= 86400000)", self.interval_ms));
        }
        if self.ema_seconds.len() > 8 || !self.ema_seconds.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err("ema_seconds: at most 8 positive numbers".into());
        }
        Ok(())
    }
}

/// A dense layer in plain Rust: `[inputs, outputs]` weights, row-major (as Burn stores them).
#[derive(Clone, Debug, PartialEq)]
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    outputs: usize,
}

impl Dense {
    fn from_linear(l: &Linear) -> Self {
        let [_, outputs] = l.weight.val().dims();
        let b = l.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; outputs]);
        Dense { w: values(l.weight.val()), b, outputs }
    }

    /// `out = W·x + b`.
    fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.b);
        for (xi, row) in x.iter().zip(self.w.chunks_exact(self.outputs)) {
            for (o, w) in out.iter_mut().zip(row) {
                *o = xi.mul_add(*w, *o);
            }
        }
    }
}

/// A trained row network in plain Rust: what the device model calls on every row.
#[derive(Clone, Debug, PartialEq)]
pub struct RowPrior {
    schema: RowSchema,
    /// The first layer; its pre-activations are computed once per row.
    first: Dense,
    /// The layers after it (ReLU between them, none after the last, which has one output).
    rest: Vec<Dense>,
    /// Linear virtual sensors `[n, n × block]`.
    skip: Vec<f32>,
}

impl RowPrior {
    fn new(schema: RowSchema, layers: &[&Linear], skip: &Param<Tensor<2>>) -> Result<Self, String> {
        schema.check()?;
        let mut dense = layers.iter().map(|l| Dense::from_linear(l));
        let first = dense.next().ok_or("no layers")?;
        let rest: Vec<Dense> = dense.collect();
        if first.w.len() != schema.inputs() * first.outputs {
            return Err(format!(
                "the network takes {} inputs, the schema {}",
                first.w.len() / first.outputs.max(1),
                schema.inputs()
            ));
        }
        if rest.last().map(|d| d.outputs) != Some(1) {
            return Err("the last layer must have one output".into());
        }
        let skip = values(skip.val());
        if skip.len() != schema.metrics.len() * schema.metrics.len() * schema.block() {
            return Err(format!("{} linear weights for {} metrics", skip.len(), schema.metrics.len()));
        }
        Ok(RowPrior { schema, first, rest, skip })
    }

    /// A prior from a student (f32, pruned or quantized) and its schema.
    pub fn from_student(schema: RowSchema, s: &RowStudent) -> Result<Self, String> {
        Self::new(schema, &[&s.l1, &s.l2], &s.skip)
    }

    /// A prior from a teacher and its schema.
    pub fn from_teacher(schema: RowSchema, t: &RowTeacher) -> Result<Self, String> {
        Self::new(schema, &[&t.fc1, &t.fc2, &t.fc3], &t.skip)
    }

    /// The device type this prior was trained for.
    pub fn schema(&self) -> &RowSchema {
        &self.schema
    }

    /// Metrics per row.
    pub fn metrics(&self) -> usize {
        self.schema.metrics.len()
    }

    /// Parameters that are not zero.
    pub fn nonzero(&self) -> usize {
        std::iter::once(&self.first)
            .chain(&self.rest)
            .map(|d| d.w.iter().chain(&d.b).filter(|v| **v != 0.0).count())
            .sum::<usize>()
            + self.skip.iter().filter(|v| **v != 0.0).count()
    }

    /// Every metric's prediction (in its unit) from the regressors `feat` (`n × block`, as
    /// the device model lays them out), into `out`.
    pub fn predict(&self, feat: &[f64], out: &mut [f64], scratch: &mut Scratch) {
        let n = self.metrics();
        let block = self.schema.block();
        let hidden = self.first.outputs;
        let Scratch { x, h0, a, b } = scratch;
        x.clear();
        for (j, chunk) in feat.chunks_exact(block).take(n).enumerate() {
            let (m, s) = (self.schema.mean[j], self.schema.std[j]);
            x.extend(chunk.iter().map(|v| ((v - m) / s) as f32));
        }
        // First-layer pre-activations from every block (one-hot off), once per row.
        self.first.apply(x, h0);
        let onehot = n * block;
        let w1 = &self.first.w;
        for (j, o) in out.iter_mut().enumerate().take(n) {
            // Metric j: its block zeroed, its one-hot on.
            a.clear();
            a.extend_from_slice(h0);
            for (k, h) in a.iter_mut().enumerate() {
                *h += w1[(onehot + j) * hidden + k];
            }
            for (bi, xv) in x[j * block..(j + 1) * block].iter().enumerate() {
                let row = &w1[(j * block + bi) * hidden..(j * block + bi + 1) * hidden];
                for (h, w) in a.iter_mut().zip(row) {
                    *h -= xv * w;
                }
            }
            for layer in &self.rest {
                for h in a.iter_mut() {
                    *h = h.max(0.0);
                }
                layer.apply(a, b);
                std::mem::swap(a, b);
            }
            // Metric j's linear virtual sensor over the other metrics' blocks.
            let lin: f32 = self.skip[j * onehot..(j + 1) * onehot]
                .iter()
                .zip(x.iter())
                .enumerate()
                .filter(|(i, _)| i / block != j)
                .map(|(_, (w, v))| w * v)
                .sum();
            let z = a.first().copied().unwrap_or(0.0) + lin;
            *o = self.schema.mean[j] + self.schema.std[j] * f64::from(z);
        }
    }
}

/// Scratch buffers of [`RowPrior::predict`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scratch {
    x: Vec<f32>,
    h0: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
}

/// One recording of one device: its rows (one value per metric, `None` where missing) and
/// which rows to leave out of training (a known incident).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recording {
    /// Rows in time order.
    pub rows: Vec<Vec<Option<f64>>>,
    /// One flag per row (or empty: nothing excluded).
    pub exclude: Vec<bool>,
}

/// Rows at the start of a recording not used for training while the moving averages settle.
const SETTLE_ROWS: usize = 100;

/// Training samples of a device type: network inputs and standardised targets.
#[derive(Clone, Debug, PartialEq)]
pub struct RowData {
    /// The schema the samples were made with.
    pub schema: RowSchema,
    /// Training samples.
    pub train: Dataset,
    /// Validation samples (every tenth row taken, not trained on).
    pub valid: Dataset,
    /// Each training sample's weight in the loss: its metric's (deviation ÷ noise)²,
    /// normalised to a mean of 1 over the metrics (see [`RowData::build`]).
    pub weights: Vec<f32>,
    /// Each metric's noise estimate (in its unit): the median absolute change from one row to
    /// the next, ÷ (0.6745 · √2).
    pub noise: Vec<f64>,
}

impl RowData {
    /// Samples from `recordings` of a device type with `metrics` (column order), a row every
    /// `interval_ms`; at most about `max_samples` training samples (rows thinned evenly).
    pub fn build(
        recordings: &[Recording],
        metrics: &[String],
        interval_ms: u64,
        ema_seconds: &[f64],
        max_samples: usize,
    ) -> Result<RowData, RowModelError> {
        let n = metrics.len();
        if n < 2 {
            return Err(RowModelError::NoData(format!(
                "a row model needs at least 2 metrics per device, got {n}"
            )));
        }
        // Normalisation from every kept value.
        let (mut s1, mut s2, mut c) = (vec![0.0; n], vec![0.0; n], vec![0.0f64; n]);
        let mut usable = 0usize;
        for rec in recordings {
            for (r, row) in rec.rows.iter().enumerate() {
                if rec.exclude.get(r).copied().unwrap_or(false) {
                    continue;
                }
                usable += usize::from(r >= SETTLE_ROWS);
                for j in 0..n {
                    if let Some(v) = row.get(j).copied().flatten().filter(|v| v.is_finite()) {
                        s1[j] += v;
                        s2[j] += v * v;
                        c[j] += 1.0;
                    }
                }
            }
        }
        if usable < 500 {
            return Err(RowModelError::NoData(format!(
                "{usable} usable normal rows (need at least 500, after the first {SETTLE_ROWS} of each recording)"
            )));
        }
        let mean: Vec<f64> = (0..n).map(|j| s1[j] / c[j].max(1.0)).collect();
        let std: Vec<f64> = (0..n)
            .map(|j| {
                let v = (s2[j] / c[j].max(1.0) - mean[j] * mean[j]).max(0.0).sqrt();
                if v > 1e-9 {
                    v
                } else {
                    1.0
                }
            })
            .collect();
        // Noise: the median absolute change between consecutive normal rows, robust to the
        // set-point steps, taken as white noise's (|Δ| of two draws: σ·√2·0.6745 at the median).
        let mut diffs: Vec<Vec<f64>> = vec![Vec::new(); n];
        for rec in recordings {
            for (r, pair) in rec.rows.windows(2).enumerate() {
                let skip = |i: usize| rec.exclude.get(i).copied().unwrap_or(false);
                if skip(r) || skip(r + 1) {
                    continue;
                }
                for (j, d) in diffs.iter_mut().enumerate() {
                    let get =
                        |row: &Vec<Option<f64>>| row.get(j).copied().flatten().filter(|v| v.is_finite());
                    if let (Some(a), Some(b)) = (get(&pair[0]), get(&pair[1])) {
                        if d.len() < 1 << 20 {
                            d.push((b - a).abs());
                        }
                    }
                }
            }
        }
        let noise: Vec<f64> = diffs
            .iter_mut()
            .zip(&std)
            .map(|(d, &sd)| {
                if d.is_empty() {
                    return sd;
                }
                let mid = d.len() / 2;
                let (_, m, _) = d.select_nth_unstable_by(mid, f64::total_cmp);
                let est = *m / (0.6745 * std::f64::consts::SQRT_2);
                // Within [σ/1000, σ]: a quantised or constant metric is not weighted without bound.
                est.clamp(sd * 1e-3, sd)
            })
            .collect();
        let raw: Vec<f64> = noise.iter().zip(&std).map(|(nz, sd)| (sd / nz).powi(2)).collect();
        let scale = raw.iter().sum::<f64>() / n as f64;
        let metric_weight: Vec<f32> = raw.iter().map(|w| (w / scale) as f32).collect();
        let schema = RowSchema {
            metrics: metrics.to_vec(),
            interval_ms,
            ema_seconds: ema_seconds.to_vec(),
            mean,
            std,
        };
        schema.check().map_err(RowModelError::NoData)?;
        let stride = (usable * n).div_ceil(max_samples.max(1)).max(1);
        let inputs = schema.inputs();
        let block = schema.block();
        let mut train = Dataset { window: inputs, ..Dataset::default() };
        let mut valid = Dataset { window: inputs, ..Dataset::default() };
        let cfg = DeviceConfig { ema_seconds: ema_seconds.to_vec(), ..DeviceConfig::default() };
        let mut picked = 0usize;
        let mut weights = Vec::new();
        for rec in recordings {
            let Ok(mut features) = DeviceModel::new(n, interval_ms, &cfg) else { continue };
            for (r, row) in rec.rows.iter().enumerate() {
                let feat = features.regressors(row);
                if r < SETTLE_ROWS || rec.exclude.get(r).copied().unwrap_or(false) {
                    continue;
                }
                picked += 1;
                if picked % stride != 0 {
                    continue;
                }
                let is_valid = (picked / stride) % 10 == 0;
                let into = if is_valid { &mut valid } else { &mut train };
                let base: Vec<f32> = (0..n * block)
                    .map(|i| ((feat[i] - schema.mean[i / block]) / schema.std[i / block]) as f32)
                    .collect();
                for (j, &w) in metric_weight.iter().enumerate() {
                    let Some(v) = row.get(j).copied().flatten().filter(|v| v.is_finite()) else { continue };
                    let start = into.x.len();
                    into.x.extend_from_slice(&base);
                    into.x[start + j * block..start + (j + 1) * block].fill(0.0);
                    into.x.extend((0..n).map(|k| if k == j { 1.0 } else { 0.0 }));
                    into.y.push(((v - schema.mean[j]) / schema.std[j]) as f32);
                    if !is_valid {
                        weights.push(w);
                    }
                }
            }
        }
        if train.is_empty() || valid.is_empty() {
            return Err(RowModelError::NoData("no samples after thinning".into()));
        }
        Ok(RowData { schema, train, valid, weights, noise })
    }
}

/// Mean squared error, each sample weighted by `weights[idx]` (none: equal weights).
fn mse(pred: Tensor<2>, y: Tensor<2>, idx: &[usize], weights: Option<&[f32]>, device: &Device) -> Tensor<1> {
    let d = pred - y;
    let sq = d.clone() * d;
    match weights {
        Some(w) => {
            let w: Vec<f32> = idx.iter().map(|&i| w.get(i).copied().unwrap_or(1.0)).collect();
            (sq * Tensor::<2>::from_data(TensorData::new(w, [idx.len(), 1]), device)).mean()
        }
        None => sq.mean(),
    }
}

/// The distillation target: `alpha · target + (1 − alpha) · teacher` per sample.
fn targets(y: Tensor<2>, idx: &[usize], soft: Option<(&[f32], f64)>, device: &Device) -> Tensor<2> {
    let Some((teacher, alpha)) = soft else { return y };
    let t: Vec<f32> = idx.iter().map(|&i| teacher[i]).collect();
    let t = Tensor::<2>::from_data(TensorData::new(t, [idx.len(), 1]), device);
    y.mul_scalar(alpha) + t.mul_scalar(1.0 - alpha)
}

/// Trains the teacher (`weights`: one per sample of `data`, or none).
pub fn train_teacher(
    data: &Dataset,
    metrics: usize,
    weights: Option<&[f32]>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> RowTeacher {
    let device = training::train_device();
    device.seed(cfg.seed);
    let model = RowTeacher::new(data.window, metrics, &device);
    training::fit(
        model,
        data,
        cfg,
        |m, x, y, idx| mse(m.forward(x), y, idx, weights, &device),
        |m, _, _| m,
        progress,
    )
    .valid()
}

/// The teacher's predictions for every sample of `data`.
pub fn teacher_outputs(teacher: &RowTeacher, data: &Dataset) -> Vec<f32> {
    outputs(data, |x| teacher.forward(x))
}

/// A network's outputs for every sample of `data`, in batches.
fn outputs(data: &Dataset, forward: impl Fn(Tensor<2>) -> Tensor<2>) -> Vec<f32> {
    let device = training::device();
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut out = Vec::with_capacity(data.len());
    for chunk in idx.chunks(4096) {
        let (x, _) = training::batch_tensors(data, chunk, &device);
        out.extend(forward(x).into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default());
    }
    out
}

/// Trains a student of `hidden` units on the targets, or distilled from `soft` (teacher
/// outputs, weight of the targets).
pub fn train_student(
    data: &Dataset,
    metrics: usize,
    weights: Option<&[f32]>,
    hidden: usize,
    soft: Option<(&[f32], f64)>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> RowStudent {
    let device = training::train_device();
    device.seed(cfg.seed ^ 0x5717_DE27);
    let model = RowStudent::new(data.window, metrics, hidden, &device);
    training::fit(
        model,
        data,
        cfg,
        |m, x, y, idx| mse(m.forward(x), targets(y, idx, soft, &device), idx, weights, &device),
        |m, _, _| m,
        progress,
    )
    .valid()
}

/// Prunes a student by magnitude to `sparsity` while fine-tuning on the same loss.
pub fn prune_student(
    student: RowStudent,
    data: &Dataset,
    weights: Option<&[f32]>,
    soft: Option<(&[f32], f64)>,
    sparsity: (f64, f64),
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> RowStudent {
    let device = training::train_device();
    let model = student.to_device(&device).train();
    let (initial, final_) = sparsity;
    let trained = training::fit(
        prune_row_student(model, initial, true),
        data,
        cfg,
        |m, x, y, idx| mse(m.forward(x), targets(y, idx, soft, &device), idx, weights, &device),
        |m, step, total| prune_row_student(m, training::sparsity_at(step, total, initial, final_), true),
        progress,
    );
    prune_row_student(trained.valid(), final_, false)
}

/// Root mean squared error of `pred` against the samples' targets, in training deviations.
pub fn rmse(pred: &[f32], data: &Dataset) -> f64 {
    let s: f64 = pred.iter().zip(&data.y).map(|(p, y)| f64::from(p - y).powi(2)).sum();
    (s / data.len().max(1) as f64).sqrt()
}

/// Each metric's residual deviation (in its unit) of `pred` on the samples of `data` (made
/// with `schema`): a sample's metric is the one its one-hot names.
pub fn residual_sd(pred: &[f32], data: &Dataset, schema: &RowSchema) -> Vec<f64> {
    let n = schema.metrics.len();
    let nb = n * schema.block();
    let (mut sq, mut count) = (vec![0.0; n], vec![0.0; n]);
    for (i, (p, y)) in pred.iter().zip(&data.y).enumerate() {
        let Some(j) = data.row(i)[nb..].iter().position(|&h| h > 0.5) else { continue };
        if j < n {
            sq[j] += f64::from(p - y).powi(2);
            count[j] += 1.0;
        }
    }
    (0..n).map(|j| (sq[j] / f64::max(count[j], 1.0)).sqrt() * schema.std[j]).collect()
}

/// A student's predictions for every sample of `data`.
pub fn student_outputs(student: &RowStudent, data: &Dataset) -> Vec<f32> {
    outputs(data, |x| student.forward(x))
}

/// The card beside a row model's weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCard {
    /// [`ROW_FORMAT`].
    pub format: u32,
    /// `row-student` (the engine runs students only).
    pub kind: String,
    /// Name (the file stem).
    pub name: String,
    /// Hidden units.
    pub hidden: usize,
    /// `int8-symmetric` when the weights are quantized.
    pub quantization: Option<String>,
    /// Normalisation and regressors.
    pub schema: RowSchema,
    /// The report row measured at export.
    pub metrics: Option<serde_json::Value>,
}

/// Saves a student and its card as `dir/<card.name>.{bpk,json}` (weights zlib-compressed);
/// the weights file's size in bytes.
pub fn save_row_student(dir: &Path, student: &RowStudent, card: &RowCard) -> Result<u64, RowModelError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bpk = dir.join(format!("{}.bpk", card.name));
    let json = dir.join(format!("{}.json", card.name));
    let plain = student
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| RowModelError::Card { path: bpk.clone(), why: format!("{e:?}") })?;
    let bytes = miniz_oxide::deflate::compress_to_vec_zlib(&plain, 10);
    std::fs::write(&bpk, &bytes).map_err(io(&bpk))?;
    let text = serde_json::to_string_pretty(card)
        .map_err(|e| RowModelError::Card { path: json.clone(), why: e.to_string() })?;
    std::fs::write(&json, text).map_err(io(&json))?;
    Ok(bytes.len() as u64)
}

/// Parses and checks a row-model card's text (`path` names it in errors).
pub fn parse_row_card(text: &str, path: &Path) -> Result<RowCard, RowModelError> {
    let bad = |why: String| RowModelError::Card { path: path.into(), why };
    let card: RowCard = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    if card.format != ROW_FORMAT {
        return Err(bad(format!("format {} (this build reads {ROW_FORMAT})", card.format)));
    }
    if card.kind != "row-student" {
        return Err(bad(format!("kind {:?} (expected \"row-student\")", card.kind)));
    }
    if card.hidden == 0 || card.hidden > crate::detector::inference::MAX_HIDDEN {
        return Err(bad(format!(
            "hidden {} (expected 1 ..= {})",
            card.hidden,
            crate::detector::inference::MAX_HIDDEN
        )));
    }
    card.schema.check().map_err(bad)?;
    Ok(card)
}

/// Loads a row model from its card (`…/<name>.json`, weights beside it as `<name>.bpk`).
pub fn load_row_prior(card_path: &Path) -> Result<Arc<RowPrior>, RowModelError> {
    let text = std::fs::read_to_string(card_path).map_err(io(card_path))?;
    let bpk = card_path.with_extension("bpk");
    let bytes = std::fs::read(&bpk).map_err(io(&bpk))?;
    row_prior_from_parts(&text, &bytes, card_path)
}

/// A row model from a card's text and its compressed weights (`path` names the card in
/// errors; the weights are `path` with the extension `.bpk`).
pub fn row_prior_from_parts(text: &str, weights: &[u8], path: &Path) -> Result<Arc<RowPrior>, RowModelError> {
    let card = parse_row_card(text, path)?;
    let bpk = path.with_extension("bpk");
    let bytes = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(weights, 64 << 20)
        .map_err(|e| RowModelError::Card { path: bpk.clone(), why: format!("zlib: {:?}", e.status) })?;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| RowModelError::Card { path: bpk.clone(), why: format!("{e:?}") })?;
    let fresh =
        RowStudent::new(card.schema.inputs(), card.schema.metrics.len(), card.hidden, &training::device());
    let fresh = if card.quantization.is_some() { quantize_row_student(&fresh) } else { fresh };
    let student = fresh
        .try_load_record(record)
        .map_err(|e| RowModelError::Card { path: bpk.clone(), why: format!("{e:?}") })?;
    RowPrior::from_student(card.schema, &student)
        .map(Arc::new)
        .map_err(|why| RowModelError::Card { path: path.into(), why })
}

/// Settings of the row-model chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainOptions {
    /// Optimiser settings of every step (epochs, batch, learning rate, budget, seed).
    pub train: TrainConfig,
    /// Student hidden units.
    pub hidden: usize,
    /// Weight of the targets in the student's loss (the rest: the teacher's outputs).
    pub alpha: f64,
    /// Pruning sparsity (initial, final).
    pub sparsity: (f64, f64),
    /// Most training samples.
    pub max_samples: usize,
    /// Weight each metric's error by its (deviation ÷ noise)² ([`RowData::weights`]), so the
    /// networks are as exact as each sensor's noise allows detection to need.
    pub weighted: bool,
}

impl Default for ChainOptions {
    fn default() -> Self {
        ChainOptions {
            train: TrainConfig {
                epochs: 16,
                batch: 512,
                lr: 2e-3,
                budget: std::time::Duration::from_secs(240),
                seed: 42,
            },
            hidden: 32,
            alpha: 0.3,
            sparsity: (0.15, 0.3),
            max_samples: 400_000,
            weighted: true,
        }
    }
}

/// One step's report row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainRow {
    /// `teacher`, `student`, `student-pruned`, `student-int8`.
    pub step: String,
    /// Parameters (weights and biases).
    pub params: usize,
    /// Parameters not zero.
    pub nonzero: usize,
    /// Weights file bytes (compressed), 0 for the teacher (not saved).
    pub bytes: u64,
    /// Validation RMSE, training deviations.
    pub rmse: f64,
    /// Rows per second scored by [`RowPrior::predict`] on one thread (every metric predicted).
    pub rows_per_s: f64,
    /// Training time, seconds.
    pub train_s: f64,
    /// Each metric's validation residual deviation, in its unit.
    pub residual_sd: Vec<f64>,
}

/// The models of a chain run.
#[derive(Debug)]
pub struct Chain {
    /// Report rows, one per step.
    pub rows: Vec<ChainRow>,
    /// The teacher.
    pub teacher: RowTeacher,
    /// (step, student) for `student`, `student-pruned`, `student-int8`.
    pub students: Vec<(String, RowStudent)>,
    /// The schema.
    pub schema: RowSchema,
}

fn speed(prior: &RowPrior, data: &Dataset) -> f64 {
    let n = prior.metrics();
    let block = prior.schema.block();
    let rows: Vec<Vec<f64>> = (0..data.len().min(2000))
        .map(|i| data.row(i)[..n * block].iter().map(|&v| f64::from(v)).collect())
        .collect();
    let (mut scratch, mut out) = (Scratch::default(), vec![0.0; n]);
    let started = Instant::now();
    let mut done = 0usize;
    while started.elapsed().as_secs_f64() < 0.3 {
        for r in &rows {
            prior.predict(r, &mut out, &mut scratch);
        }
        done += rows.len();
    }
    std::hint::black_box(&out);
    done as f64 / started.elapsed().as_secs_f64()
}

/// Runs teacher → distilled student → pruned → int8 on `data`, reporting each step through
/// `on` as it finishes.
pub fn run_chain(data: &RowData, opts: &ChainOptions, on: &mut dyn FnMut(&ChainRow)) -> Chain {
    let mut rows = Vec::new();
    let mut quiet = |_: Progress| {};
    let started = Instant::now();
    let weights = opts.weighted.then_some(data.weights.as_slice());
    let metrics = data.schema.metrics.len();
    let teacher = train_teacher(&data.train, metrics, weights, &opts.train, &mut quiet);
    let t_valid = teacher_outputs(&teacher, &data.valid);
    let row = ChainRow {
        step: "teacher".into(),
        params: teacher.params(),
        nonzero: teacher.params(),
        bytes: 0,
        rmse: rmse(&t_valid, &data.valid),
        rows_per_s: 0.0,
        train_s: started.elapsed().as_secs_f64(),
        residual_sd: residual_sd(&t_valid, &data.valid, &data.schema),
    };
    on(&row);
    rows.push(row);
    let soft = teacher_outputs(&teacher, &data.train);
    let mut students = Vec::new();
    let mut step = |name: &str, s: RowStudent, secs: f64, rows: &mut Vec<ChainRow>| {
        let prior = RowPrior::from_student(data.schema.clone(), &s).ok();
        let outputs = student_outputs(&s, &data.valid);
        let bytes = s
            .clone()
            .into_record()
            .into_bytes()
            .map(|b| miniz_oxide::deflate::compress_to_vec_zlib(&b, 10).len() as u64)
            .unwrap_or(0);
        let row = ChainRow {
            step: name.into(),
            params: s.params(),
            nonzero: prior.as_ref().map_or(0, RowPrior::nonzero),
            bytes,
            rmse: rmse(&outputs, &data.valid),
            residual_sd: residual_sd(&outputs, &data.valid, &data.schema),
            rows_per_s: prior.as_ref().map_or(0.0, |p| speed(p, &data.valid)),
            train_s: secs,
        };
        on(&row);
        rows.push(row);
        students.push((name.to_string(), s));
    };
    let t = Instant::now();
    let student = train_student(
        &data.train,
        metrics,
        weights,
        opts.hidden,
        Some((&soft, opts.alpha)),
        &opts.train,
        &mut quiet,
    );
    step("student", student.clone(), t.elapsed().as_secs_f64(), &mut rows);
    let t = Instant::now();
    let fine = TrainConfig { epochs: opts.train.epochs.div_ceil(2), ..opts.train.clone() };
    let pruned = prune_student(
        student,
        &data.train,
        weights,
        Some((&soft, opts.alpha)),
        opts.sparsity,
        &fine,
        &mut quiet,
    );
    step("student-pruned", pruned.clone(), t.elapsed().as_secs_f64(), &mut rows);
    let t = Instant::now();
    let int8 = quantize_row_student(&pruned);
    step("student-int8", int8, t.elapsed().as_secs_f64(), &mut rows);
    Chain { rows, teacher, students, schema: data.schema.clone() }
}

/// The learned device models shipped in the binary (`models/artifacts/devices/`, rebuilt by
/// `scripts/train-device-cards.sh`): one int8 student per rig shape of the benchmark
/// (pump, HVAC unit, process line, compressor), each trained by `sensorflow train --data` on
/// the runs of the design seeds only, at the rig's own row interval.
/// Each comes with its name (`pump-student-int8`, …).
pub fn default_row_priors() -> Result<Vec<(&'static str, Arc<RowPrior>)>, RowModelError> {
    SHIPPED_ROW_MODELS
        .iter()
        .map(|(name, card, weights)| {
            row_prior_from_parts(card, weights, Path::new(&format!("<built-in>/{name}.json")))
                .map(|p| (*name, p))
        })
        .collect()
}

macro_rules! shipped {
    ($($name:literal),*) => {
        &[$((
            $name,
            include_str!(concat!("../../artifacts/devices/", $name, ".json")),
            include_bytes!(concat!("../../artifacts/devices/", $name, ".bpk")) as &[u8],
        )),*]
    };
}

const SHIPPED_ROW_MODELS: &[(&str, &str, &[u8])] =
    shipped!("pump-student-int8", "hvac-student-int8", "line-student-int8", "compressor-student-int8");

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shipped model loads, and fits its rig: the rig's sensors (by name, sorted) and
    /// row interval, so `run` with no model flag picks it for that rig's devices.
    #[test]
    fn every_shipped_row_model_loads_and_fits_its_rigs_sensors_and_interval() {
        use crate::synth::rigs::RigShape;
        let shipped = default_row_priors().expect("the shipped models load");
        assert_eq!(shipped.len(), RigShape::ALL.len());
        for shape in RigShape::ALL {
            let spec = shape.spec();
            let name = format!("{}-student-int8", spec.name);
            let (_, prior) = shipped.iter().find(|(n, _)| *n == name).expect("a model per rig");
            let mut sensors: Vec<&str> = spec.sensors.iter().map(|s| s.name).collect();
            sensors.sort_unstable();
            let schema = prior.schema();
            assert_eq!(schema.metrics.iter().map(String::as_str).collect::<Vec<_>>(), sensors, "{name}");
            assert_eq!(schema.interval_ms, spec.interval_ms, "{name}");
        }
    }

    fn schema(n: usize) -> RowSchema {
        RowSchema {
            metrics: (0..n).map(|j| format!("m{j}")).collect(),
            interval_ms: 1000,
            ema_seconds: vec![60.0, 300.0],
            mean: (0..n).map(|j| j as f64).collect(),
            std: (0..n).map(|j| 1.0 + j as f64).collect(),
        }
    }

    /// The fast path (first layer once per row, corrected per metric) against the network
    /// run the plain way, metric by metric, on inputs built as the training data builds them.
    #[test]
    fn predictions_equal_the_network_run_once_per_metric_on_its_masked_input() {
        let n = 5;
        let schema = schema(n);
        let device = training::device();
        device.seed(7);
        let mut student = RowStudent::new(schema.inputs(), n, 16, &device);
        let mut teacher = RowTeacher::new(schema.inputs(), n, &device);
        // Linear virtual sensors that are not zero, so the test sees them.
        let lin = |k: usize| {
            let v: Vec<f32> = (0..n * n * 3).map(|i| ((i * 7 + k) % 11) as f32 / 10.0 - 0.5).collect();
            Param::from_tensor(Tensor::<2>::from_data(TensorData::new(v, [n, n * 3]), &device))
        };
        student.skip = lin(1);
        teacher.skip = lin(2);
        let block = schema.block();
        let feat: Vec<f64> =
            (0..n * block).map(|i| (i as f64 * 0.37).sin() * 3.0 + (i / block) as f64).collect();
        let input = |j: usize| -> Vec<f32> {
            let mut x: Vec<f32> = (0..n * block)
                .map(|i| ((feat[i] - schema.mean[i / block]) / schema.std[i / block]) as f32)
                .collect();
            x[j * block..(j + 1) * block].fill(0.0);
            x.extend((0..n).map(|k| if k == j { 1.0 } else { 0.0 }));
            x
        };
        let prior = RowPrior::from_student(schema.clone(), &student).unwrap();
        let mut out = vec![0.0; n];
        prior.predict(&feat, &mut out, &mut Scratch::default());
        for (j, o) in out.iter().enumerate() {
            let x = Tensor::<2>::from_data(TensorData::new(input(j), [1, schema.inputs()]), &device);
            let z: Vec<f32> = student.forward(x).into_data().try_to_vec::<f32>().unwrap();
            let expect = schema.mean[j] + schema.std[j] * f64::from(z[0]);
            assert!((o - expect).abs() < 1e-4 * (1.0 + expect.abs()), "student, metric {j}: {o} vs {expect}");
        }
        let prior = RowPrior::from_teacher(schema.clone(), &teacher).unwrap();
        prior.predict(&feat, &mut out, &mut Scratch::default());
        for (j, o) in out.iter().enumerate() {
            let x = Tensor::<2>::from_data(TensorData::new(input(j), [1, schema.inputs()]), &device);
            let z: Vec<f32> = teacher.forward(x).into_data().try_to_vec::<f32>().unwrap();
            let expect = schema.mean[j] + schema.std[j] * f64::from(z[0]);
            assert!((o - expect).abs() < 1e-4 * (1.0 + expect.abs()), "teacher, metric {j}: {o} vs {expect}");
        }
    }

    #[test]
    fn a_schema_whose_sizes_disagree_or_whose_deviation_is_zero_is_refused() {
        let mut s = schema(3);
        s.std[1] = 0.0;
        assert!(s.check().unwrap_err().contains("positive"));
        let mut s = schema(3);
        s.mean.pop();
        assert!(s.check().unwrap_err().contains("3 metrics but 2 means"));
        let device = training::device();
        let student = RowStudent::new(schema(4).inputs(), 4, 8, &device);
        assert!(RowPrior::from_student(schema(3), &student).unwrap_err().contains("inputs"));
    }

    /// Three metrics tied by `b = 2a + 5`, `c = 10 − a` (noise σ 0.1); the driver `a` wanders
    /// between −10 and 10 with period `period` rows, around `level`.
    fn relation_rows(
        rows: usize,
        seed: u64,
        level: impl Fn(usize) -> f64,
        fault: Option<(usize, usize)>,
    ) -> Recording {
        let mut rng = crate::synth::SplitMix64::new(seed);
        let rows = (0..rows)
            .map(|i| {
                let a =
                    level(i) + 4.0 * (i as f64 / 90.0 + seed as f64).sin() + 2.0 * (i as f64 / 23.0).cos();
                let bump = fault.is_some_and(|(s, e)| (s..e).contains(&i));
                vec![
                    Some(a + 0.1 * rng.normal()),
                    Some(2.0 * a + 5.0 + if bump { 1.0 } else { 0.0 } + 0.1 * rng.normal()),
                    Some(10.0 - a + 0.1 * rng.normal()),
                ]
            })
            .collect();
        Recording { rows, exclude: Vec::new() }
    }

    /// A prior trained on recordings whose driver level spans −6 … 6.
    fn trained_prior() -> Arc<RowPrior> {
        let recordings: Vec<Recording> = (0..4)
            .map(|k| {
                relation_rows(
                    6000,
                    10 + k,
                    move |i| -6.0 + 12.0 * ((i as f64 / 6000.0 + k as f64 * 0.25) % 1.0),
                    None,
                )
            })
            .collect();
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let data = RowData::build(&recordings, &names, 1000, &[60.0, 300.0, 1200.0], 60_000).unwrap();
        let mut opts = ChainOptions::default();
        opts.train.epochs = 6;
        let chain = run_chain(&data, &opts, &mut |_| {});
        let (_, int8) = chain.students.last().unwrap();
        Arc::new(RowPrior::from_student(chain.schema.clone(), int8).unwrap())
    }

    /// Episodes of a device run: (first open row, rows open).
    fn episodes(prior: &Arc<RowPrior>, rec: &Recording, warmup: usize) -> Vec<(usize, usize)> {
        let cfg = DeviceConfig { warmup_rows: warmup, ..DeviceConfig::default() };
        let mut model = DeviceModel::with_prior(prior.clone(), &cfg).unwrap();
        let mut out: Vec<(usize, usize)> = Vec::new();
        let mut was_open = false;
        for (i, row) in rec.rows.iter().enumerate() {
            let open = model.push(row, false).state == crate::device::RowState::Open;
            match (was_open, open) {
                (false, true) => out.push((i, 1)),
                (true, true) => {
                    if let Some(last) = out.last_mut() {
                        last.1 += 1;
                    }
                }
                _ => {}
            }
            was_open = open;
        }
        out
    }

    #[test]
    fn the_learned_model_follows_a_slow_regime_change_without_alerting_and_keeps_one_episode_per_fault() {
        let prior = trained_prior();
        // The driver's level moves from −4 to +4 over 4,000 rows after the warm-up: ground the
        // warm-up never saw, which the recordings did.
        let slow =
            |i: usize| if i < 1500 { -4.0 } else { -4.0 + 8.0 * ((i - 1500) as f64 / 4000.0).min(1.0) };
        let calm = relation_rows(7000, 77, slow, None);
        assert_eq!(
            episodes(&prior, &calm, 1500),
            Vec::<(usize, usize)>::new(),
            "no episode on a slow normal change"
        );
        // The same device with `b` 1.0 high (10σ of its noise) on rows 4000..5000.
        let faulty = relation_rows(7000, 77, slow, Some((4000, 5000)));
        let found = episodes(&prior, &faulty, 1500);
        assert_eq!(found.len(), 1, "one episode for the fault: {found:?}");
        let (start, len) = found[0];
        assert!((4000..4060).contains(&start), "opens at the fault's start: {found:?}");
        assert!((900..1300).contains(&len), "stays open while the fault lasts: {found:?}");
    }

    #[test]
    fn too_few_normal_rows_is_a_clear_error() {
        let rec = Recording { rows: vec![vec![Some(1.0), Some(2.0)]; 400], exclude: Vec::new() };
        let names = vec!["a".to_string(), "b".to_string()];
        let err = RowData::build(&[rec], &names, 1000, &[60.0], 10_000).unwrap_err().to_string();
        assert!(err.contains("usable normal rows"), "{err}");
    }
}
