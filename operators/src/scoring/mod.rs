//! Model scoring as the anomaly operator sees it: the [`Scorer`] trait a model implements, how
//! scorers are made and swapped, the online normalisation both training and scoring use
//! ([`normalize`]), and the per-series calibration of raw scores: the Gaussian-tail
//! [`likelihood`], the [`extremes`] a value can break and the [`excursions`] checks.
//!
//! The operator itself is [`crate::Anomalies`]; nothing here depends on timely.

use std::sync::Arc;

pub mod excursions;
pub mod extremes;
pub mod likelihood;
pub mod normalize;

pub use excursions::ExcursionParams;
pub use extremes::{RangeGuard, RangeParams};
pub use likelihood::{Calibration, Likelihood, LikelihoodParams, LIKELIHOOD_THRESHOLD};
pub use normalize::{OnlineNormalizer, SeriesWindow, CLIP, HORIZON};

/// Scores normalised windows. Implemented by the models crate (a distilled student network
/// run as plain Rust); the operator calls it once per batch, never per event.
pub trait Scorer: 'static {
    /// Values per window.
    fn window(&self) -> usize;
    /// Scores the `inputs.len() / window()` windows laid out one after another, oldest value
    /// first, writing one score in [0, 1] per window to `out` (cleared first).
    fn score_batch(&mut self, inputs: &[f32], out: &mut Vec<f32>);
    /// Scores above this are anomalies.
    fn threshold(&self) -> f32;
    /// Model name, used in alert keys.
    fn name(&self) -> &str;
    /// Per-series calibration of the raw scores, if the model has one: the threshold then
    /// applies to the calibrated score.
    fn calibration(&self) -> Option<LikelihoodParams> {
        None
    }
}

/// Called before each batch; returns a new scorer when the model changed (e.g. its file was
/// replaced), so models swap without restarting the pipeline.
pub type ScorerReload = Box<dyn FnMut() -> Option<Box<dyn Scorer>>>;

/// Builds a scorer for each worker (scorers hold mutable scratch space).
pub type ScorerFactory = Arc<dyn Fn() -> (Box<dyn Scorer>, Option<ScorerReload>) + Send + Sync>;

/// How far below the threshold a score must fall to end an anomaly episode.
pub const CLEAR_MARGIN: f32 = 0.1;
