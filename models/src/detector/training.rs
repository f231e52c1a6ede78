//! Training loops: teacher, (distilled) student, and magnitude pruning with fine-tuning.
//! Hand-written Adam loops on the ndarray backend with autodiff (Burn's `Learner` would add
//! ~100 crates for nothing we need here).

#![allow(deprecated)] // Device::ndarray() is deprecated in Burn 0.22 in favour of Device::flex()

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

use super::data::Dataset;
use super::model::{bce_with_logits, Student, Teacher};
use crate::synth::SplitMix64;

/// The CPU device models train and run on.
pub fn device() -> Device {
    Device::ndarray()
}

/// The autodiff variant of [`device`].
pub fn train_device() -> Device {
    device().autodiff()
}

/// Optimisation settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Passes over the data (at most).
    pub epochs: usize,
    /// Windows per step.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Stop after this long even if epochs remain.
    pub budget: Duration,
    /// Seed for initial shuffles.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig { epochs: 8, batch: 256, lr: 2e-3, budget: Duration::from_secs(300), seed: 42 }
    }
}

/// Progress of a training run, for display.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Epoch (from 1).
    pub epoch: usize,
    /// Of how many.
    pub epochs: usize,
    /// Mean loss over the epoch.
    pub loss: f64,
    /// Time since start.
    pub elapsed: Duration,
}

/// Distillation settings: the student's loss is `alpha · BCE(student, label) +
/// (1 − alpha) · T² · BCE(student / T, sigmoid(teacher / T))`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Distill {
    /// Temperature `T`.
    pub temperature: f64,
    /// Weight of the hard-label loss.
    pub alpha: f64,
}

impl Default for Distill {
    fn default() -> Self {
        Distill { temperature: 2.0, alpha: 0.5 }
    }
}

fn shuffled(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    idx
}

/// The windows `idx` of `data` as a `[len, W]` tensor, and their labels `[len, 1]`.
pub fn batch_tensors(data: &Dataset, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>) {
    let mut x = Vec::with_capacity(idx.len() * data.window);
    let mut y = Vec::with_capacity(idx.len());
    for &i in idx {
        x.extend_from_slice(data.row(i));
        y.push(data.y[i]);
    }
    (
        Tensor::<2>::from_data(TensorData::new(x, [idx.len(), data.window]), device),
        Tensor::<2>::from_data(TensorData::new(y, [idx.len(), 1]), device),
    )
}

/// Adam over `data` with the loss `loss(model, x, y, batch indices)`; `after_step` may edit
/// the model after every update (pruning masks). Returns the trained model.
pub(crate) fn fit<M, L, A>(
    mut model: M,
    data: &Dataset,
    cfg: &TrainConfig,
    mut loss: L,
    mut after_step: A,
    progress: &mut dyn FnMut(Progress),
) -> M
where
    M: Module,
    L: FnMut(&M, Tensor<2>, Tensor<2>, &[usize]) -> Tensor<1>,
    A: FnMut(M, usize, usize) -> M,
{
    let device = train_device();
    device.seed(cfg.seed);
    let mut optim = AdamConfig::new().init();
    let mut rng = SplitMix64::new(cfg.seed);
    let started = Instant::now();
    let steps_per_epoch = data.len().div_ceil(cfg.batch.max(1));
    let total_steps = steps_per_epoch * cfg.epochs;
    let mut step = 0;
    for epoch in 1..=cfg.epochs {
        let order = shuffled(data.len(), &mut rng);
        let mut sum = 0.0;
        let mut n = 0;
        for chunk in order.chunks(cfg.batch.max(1)) {
            let (x, y) = batch_tensors(data, chunk, &device);
            let l = loss(&model, x, y, chunk);
            sum += f64::from(l.clone().into_scalar::<f32>());
            n += 1;
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
            step += 1;
            model = after_step(model, step, total_steps);
            if started.elapsed() >= cfg.budget {
                break;
            }
        }
        progress(Progress {
            epoch,
            epochs: cfg.epochs,
            loss: sum / n.max(1) as f64,
            elapsed: started.elapsed(),
        });
        if started.elapsed() >= cfg.budget {
            break;
        }
    }
    model
}

/// Trains a teacher.
pub fn train_teacher(data: &Dataset, cfg: &TrainConfig, progress: &mut dyn FnMut(Progress)) -> Teacher {
    let device = train_device();
    device.seed(cfg.seed);
    let model = Teacher::new(data.window, &device);
    let trained = fit(model, data, cfg, |m, x, y, _| bce_with_logits(m.forward(x), y), |m, _, _| m, progress);
    trained.valid()
}

/// Teacher logits for every window of `data`, computed in batches.
pub fn teacher_logits(teacher: &Teacher, data: &Dataset) -> Vec<f32> {
    let device = device();
    let mut out = Vec::with_capacity(data.len());
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(1024) {
        let (x, _) = batch_tensors(data, chunk, &device);
        let v: Vec<f32> = teacher.forward(x).into_data().try_to_vec::<f32>().unwrap_or_default();
        out.extend(v);
    }
    out
}

/// The student's loss: BCE on labels, or the distillation mix (see [`Distill`]).
fn student_loss(
    logits: Tensor<2>,
    y: Tensor<2>,
    idx: &[usize],
    soft: Option<(&[f32], Distill)>,
    device: &Device,
) -> Tensor<1> {
    let Some((teacher, d)) = soft else { return bce_with_logits(logits, y) };
    let t: Vec<f32> = idx.iter().map(|&i| (f64::from(teacher[i]) / d.temperature) as f32).collect();
    let t = Tensor::<2>::from_data(TensorData::new(t, [idx.len(), 1]), device);
    let soft_targets = burn::tensor::activation::sigmoid(t);
    let hard = bce_with_logits(logits.clone(), y);
    let soft_loss = bce_with_logits(logits.div_scalar(d.temperature), soft_targets);
    hard.mul_scalar(d.alpha) + soft_loss.mul_scalar((1.0 - d.alpha) * d.temperature * d.temperature)
}

/// Trains a student of `hidden` units, on the labels alone or distilled from `soft` teacher
/// logits (one per window of `data`).
pub fn train_student(
    data: &Dataset,
    hidden: usize,
    soft: Option<(&[f32], Distill)>,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> Student {
    let device = train_device();
    device.seed(cfg.seed ^ 0x5717_DE27);
    let model = Student::new(data.window, hidden, &device);
    let trained = fit(
        model,
        data,
        cfg,
        |m, x, y, idx| student_loss(m.forward(x), y, idx, soft, &device),
        |m, _, _| m,
        progress,
    );
    trained.valid()
}

/// Sparsity at `step` of `total` on the polynomial-decay schedule (Zhu & Gupta 2017):
/// `s = final + (initial − final) · (1 − step/total)³`.
pub fn sparsity_at(step: usize, total: usize, initial: f64, final_: f64) -> f64 {
    let t = (step as f64 / total.max(1) as f64).min(1.0);
    final_ + (initial - final_) * (1.0 - t).powi(3)
}

/// Zeroes the smallest-magnitude `sparsity` fraction of `w`, returning the new tensor.
pub(crate) fn magnitude_mask(w: Tensor<2>, sparsity: f64, training: bool) -> Tensor<2> {
    let masked = mask_by_magnitude(w, sparsity);
    // While training, the masked weight must be a fresh leaf, or the next backward pass would
    // run into the already-consumed graph of this multiplication.
    if training {
        masked.detach().require_grad()
    } else {
        masked
    }
}

fn mask_by_magnitude(w: Tensor<2>, sparsity: f64) -> Tensor<2> {
    let values: Vec<f32> = w.clone().into_data().try_to_vec::<f32>().unwrap_or_default();
    if values.is_empty() {
        return w;
    }
    let mut mags: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    let k = ((sparsity * mags.len() as f64) as usize).min(mags.len());
    if k == 0 {
        return w;
    }
    mags.sort_unstable_by(f32::total_cmp);
    let cut = mags[k - 1];
    // Keep strictly larger magnitudes; ties at the cut are pruned (exact zeros stay zero).
    let mask: Vec<f32> = values.iter().map(|v| if v.abs() > cut { 1.0 } else { 0.0 }).collect();
    let device = w.device();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, w.dims()), &device);
    w * mask
}

pub(crate) fn prune_weights(mut s: Student, sparsity: f64, training: bool) -> Student {
    s.l1.weight = s.l1.weight.map(|w| magnitude_mask(w, sparsity, training));
    s.l2.weight = s.l2.weight.map(|w| magnitude_mask(w, sparsity, training));
    s
}

/// Fraction of the student's weights (not biases) that are exactly zero.
pub fn weight_sparsity(s: &Student) -> f64 {
    let mut zeros = 0usize;
    let mut total = 0usize;
    for w in [s.l1.weight.val(), s.l2.weight.val()] {
        let v: Vec<f32> = w.into_data().try_to_vec::<f32>().unwrap_or_default();
        zeros += v.iter().filter(|x| **x == 0.0).count();
        total += v.len();
    }
    zeros as f64 / total.max(1) as f64
}

/// Prunes a trained student by magnitude while fine-tuning (with the same loss as training,
/// `soft` optional): sparsity follows [`sparsity_at`] from `initial` to `final_` over the
/// fine-tuning steps, and the mask is re-applied after every update so pruned weights stay
/// zero. Returns the pruned student.
pub fn prune_student(
    student: Student,
    data: &Dataset,
    soft: Option<(&[f32], Distill)>,
    (initial, final_): (f64, f64),
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(Progress),
) -> Student {
    let device = train_device();
    // Back onto the autodiff device for fine-tuning.
    let model = student.to_device(&device).train();
    let trained = fit(
        prune_weights(model, initial, true),
        data,
        cfg,
        |m, x, y, idx| student_loss(m.forward(x), y, idx, soft, &device),
        |m, step, total| prune_weights(m, sparsity_at(step, total, initial, final_), true),
        progress,
    );
    // The final mask at the target sparsity, exactly.
    prune_weights(trained.valid(), final_, false)
}
