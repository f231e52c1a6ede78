//! The networks (Burn 0.22: modules carry no backend type parameter).
//!
//! Both map a window of `W` normalised values to one logit: the log-odds that an anomaly
//! began within the window's last few samples. Classification rather than forecasting:
//! the synthetic generator labels every kind of anomaly, so the network can learn what
//! each looks like at onset (a forecaster only sees "surprise", which stuck-at sensors and
//! noise bursts hardly produce).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Teacher: a patch convolution (kernel = stride = 8: each 8-value patch of the window
/// goes through the same 8→32 layer, computed as one matrix product) whose features are
/// concatenated with the raw window, then three dense layers (→128 →64 →1). About 50 k
/// parameters for `W = 64`: 24× the student. A convolution with overlapping kernels was
/// ~35× slower per window on Burn's ndarray backend for no gain on held-out F1, which
/// would have pushed training past the 30-minute budget.
#[derive(Module, Debug)]
pub struct Teacher {
    patch: Linear,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

/// Patch length of the teacher's convolution.
pub const PATCH: usize = 8;

impl Teacher {
    /// A fresh teacher for windows of `window` values (a multiple of 8).
    pub fn new(window: usize, device: &Device) -> Self {
        let patches = window / PATCH;
        Teacher {
            patch: LinearConfig::new(PATCH, 32).init(device),
            fc1: LinearConfig::new(patches * 32 + window, 128).init(device),
            fc2: LinearConfig::new(128, 64).init(device),
            fc3: LinearConfig::new(64, 1).init(device),
        }
    }

    /// Logits `[batch, 1]` for windows `[batch, W]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [batch, window] = x.dims();
        let patches = window / PATCH;
        let p = relu(self.patch.forward(x.clone().reshape([batch, patches, PATCH])));
        let h = Tensor::cat(vec![p.reshape([batch, patches * 32]), x], 1);
        let h = relu(self.fc1.forward(h));
        let h = relu(self.fc2.forward(h));
        self.fc3.forward(h)
    }
}

/// Student: one hidden layer, `W → hidden → 1` with ReLU.
#[derive(Module, Debug)]
pub struct Student {
    /// Input layer; weight `[W, hidden]`.
    pub l1: Linear,
    /// Output layer; weight `[hidden, 1]`.
    pub l2: Linear,
}

impl Student {
    /// A fresh student.
    pub fn new(window: usize, hidden: usize, device: &Device) -> Self {
        Student {
            l1: LinearConfig::new(window, hidden).init(device),
            l2: LinearConfig::new(hidden, 1).init(device),
        }
    }

    /// Logits `[batch, 1]` for windows `[batch, W]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.l2.forward(relu(self.l1.forward(x)))
    }
}

/// Binary cross-entropy on logits, numerically stable:
/// `mean(max(z, 0) − z·y + ln(1 + e^{−|z|}))`.
pub fn bce_with_logits(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let stable = logits.clone().clamp_min(0.0) - logits.clone() * targets
        + logits.abs().neg().exp().add_scalar(1.0).log();
    stable.mean()
}
