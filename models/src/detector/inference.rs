//! Running trained models: the plain-Rust student (the operator's fast path), Burn scoring
//! for the teacher, and the [`Scorer`] the anomaly operator calls.
//!
//! Burn 0.22's ndarray backend has a per-call overhead of microseconds and dequantizes int8
//! weights on every call, so the engine runs the student as plain Rust over weights exported
//! once at load (int8 weights dequantized then): a dense 64→hidden→1 network is a few
//! hundred multiply-adds per window, which the compiler vectorises.

use burn::prelude::*;
use sensorflow_operators::{LikelihoodParams, Scorer};

use super::data::Dataset;
use super::model::{Student, Teacher};
use super::training::device;

/// A student's weights as plain arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct PlainMlp {
    /// Input length `W`.
    pub window: usize,
    /// Hidden units.
    pub hidden: usize,
    /// First layer as Burn stores it: `W` rows of `hidden` weights, so each input value
    /// updates all hidden units with one broadcast multiply-add over contiguous weights.
    pub w1: Vec<f32>,
    /// First-layer biases.
    pub b1: Vec<f32>,
    /// Output weights.
    pub w2: Vec<f32>,
    /// Output bias.
    pub b2: f32,
}

/// A tensor's values as f32, row-major: quantized tensors dequantized, f32 ones as they are.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.dequantize().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

impl PlainMlp {
    /// Exports a (possibly quantized) student.
    pub fn from_student(s: &Student) -> Self {
        let w1 = values(s.l1.weight.val()); // [W, hidden] row-major
        let [window, hidden] = s.l1.weight.val().dims();
        let b1 = s.l1.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; hidden]);
        let w2 = values(s.l2.weight.val());
        let b2 = s.l2.bias.as_ref().and_then(|b| values(b.val()).first().copied()).unwrap_or(0.0);
        PlainMlp { window, hidden, w1, b1, w2, b2 }
    }

    /// The logit for one window. Hidden units are the SIMD lanes: for each input value the
    /// whole row of weights is multiplied and added into the hidden accumulators, so every
    /// hidden sum is taken in input order whatever the batch (results do not depend on how
    /// windows are batched, which keeps alerts identical at any worker count).
    #[inline]
    pub fn logit(&self, x: &[f32]) -> f32 {
        match self.hidden {
            // Fixed sizes keep the accumulators in registers.
            16 => self.logit_n::<16>(x),
            32 => self.logit_n::<32>(x),
            64 => self.logit_n::<64>(x),
            _ => {
                let mut h = [0.0f32; MAX_HIDDEN];
                let h = &mut h[..self.hidden];
                h.copy_from_slice(&self.b1);
                for (xi, row) in x.iter().zip(self.w1.chunks_exact(self.hidden)) {
                    for (hj, wj) in h.iter_mut().zip(row) {
                        *hj = xi.mul_add(*wj, *hj);
                    }
                }
                h.iter().zip(&self.w2).fold(self.b2, |z, (hj, wj)| hj.max(0.0).mul_add(*wj, z))
            }
        }
    }

    #[inline]
    fn logit_n<const H: usize>(&self, x: &[f32]) -> f32 {
        let mut h = [0.0f32; H];
        h.copy_from_slice(&self.b1[..H]);
        for (xi, row) in x.iter().zip(self.w1.chunks_exact(H)) {
            let row: &[f32; H] = row.try_into().unwrap_or(&[0.0; H]);
            for j in 0..H {
                h[j] = xi.mul_add(row[j], h[j]);
            }
        }
        h.iter().zip(&self.w2).fold(self.b2, |z, (hj, wj)| hj.max(0.0).mul_add(*wj, z))
    }

    /// Probabilities for `inputs.len() / W` windows.
    pub fn predict(&self, inputs: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(inputs.chunks_exact(self.window).map(|x| sigmoid(self.logit(x))));
    }

    /// Parameters (weights and biases).
    pub fn params(&self) -> usize {
        self.w1.len() + self.b1.len() + self.w2.len() + 1
    }

    /// Parameters that are not zero.
    pub fn nonzero(&self) -> usize {
        self.w1.iter().chain(&self.b1).chain(&self.w2).filter(|v| **v != 0.0).count()
            + usize::from(self.b2 != 0.0)
    }
}

/// Largest hidden layer the plain path supports (accumulators live on the stack).
pub const MAX_HIDDEN: usize = 256;

/// The logistic function.
#[inline]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// Anything that can score a batch of windows, for evaluation and reports.
pub trait Detector {
    /// Probabilities for `inputs.len() / W` windows.
    fn predict(&self, inputs: &[f32], out: &mut Vec<f32>);
}

impl Detector for PlainMlp {
    fn predict(&self, inputs: &[f32], out: &mut Vec<f32>) {
        PlainMlp::predict(self, inputs, out)
    }
}

/// A Burn module run through Burn (for the teacher, and to time Burn itself).
pub struct BurnModel<'a> {
    /// Values per window.
    pub window: usize,
    /// The forward pass: windows `[n, W]` to logits `[n, 1]`.
    pub forward: Box<dyn Fn(Tensor<2>) -> Tensor<2> + 'a>,
}

impl std::fmt::Debug for BurnModel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BurnModel").field("window", &self.window).finish()
    }
}

impl Detector for BurnModel<'_> {
    fn predict(&self, inputs: &[f32], out: &mut Vec<f32>) {
        out.clear();
        let device = device();
        for chunk in inputs.chunks(1024 * self.window) {
            let n = chunk.len() / self.window;
            let x = Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [n, self.window]), &device);
            let z: Vec<f32> =
                (self.forward)(x).into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
            out.extend(z.into_iter().map(sigmoid));
        }
    }
}

/// A teacher as a [`Detector`].
pub fn teacher_detector(t: &Teacher, window: usize) -> BurnModel<'_> {
    BurnModel { window, forward: Box::new(move |x| t.forward(x)) }
}

/// A student run through Burn, as a [`Detector`].
pub fn burn_student_detector(s: &Student, window: usize) -> BurnModel<'_> {
    BurnModel { window, forward: Box::new(move |x| s.forward(x)) }
}

/// Probabilities for every window of `data`.
pub fn predict_dataset(d: &dyn Detector, data: &Dataset) -> Vec<f32> {
    let mut out = Vec::new();
    d.predict(&data.x, &mut out);
    out
}

/// Precision, recall and F1 at `threshold`.
pub fn f1_at(scores: &[f32], labels: &[f32], threshold: f32) -> (f64, f64, f64) {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (&s, &y) in scores.iter().zip(labels) {
        match (s > threshold, y > 0.5) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            _ => {}
        }
    }
    let p = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let r = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
    let f = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
    (p, r, f)
}

/// The threshold in (0, 1) that maximises F1 on `scores`.
pub fn best_threshold(scores: &[f32], labels: &[f32]) -> (f32, f64) {
    (1..100).map(|i| i as f32 / 100.0).map(|t| (t, f1_at(scores, labels, t).2)).fold((0.5, -1.0), |b, c| {
        if c.1 > b.1 {
            c
        } else {
            b
        }
    })
}

/// Mean squared difference between two score lists (for quantization tolerance).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The engine's scorer: a plain student with its threshold.
#[derive(Clone, Debug)]
pub struct StudentScorer {
    /// The network.
    pub mlp: PlainMlp,
    /// Scores above this alert.
    pub threshold: f32,
    /// Name in alert keys.
    pub name: String,
    /// Per-series calibration the threshold applies after.
    pub calibration: Option<LikelihoodParams>,
}

impl Scorer for StudentScorer {
    fn window(&self) -> usize {
        self.mlp.window
    }

    fn score_batch(&mut self, inputs: &[f32], out: &mut Vec<f32>) {
        self.mlp.predict(inputs, out);
    }

    fn threshold(&self) -> f32 {
        self.threshold
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn calibration(&self) -> Option<LikelihoodParams> {
        self.calibration
    }
}

/// Teacher probabilities through Burn for `data` (kept for reports).
pub fn teacher_probabilities(t: &Teacher, data: &Dataset) -> Vec<f32> {
    predict_dataset(&teacher_detector(t, data.window), data)
}
