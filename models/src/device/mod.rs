//! Device-level anomaly detection (issue 14): one model per device that learns the device's
//! normal behaviour online from rows of its metrics (one value per metric, aligned on event
//! time) and keeps anomaly *episodes*, not blips.
//!
//! # The statistical detector ([`DeviceModel`])
//!
//! Each metric is predicted from the others — a "virtual sensor" per metric — by a ridge
//! regression on the other metrics' current values and their exponential moving averages at
//! a few time constants ([`DeviceConfig::ema_seconds`]). The moving averages let a linear
//! model follow the first-order lags that tie temperatures to currents or loads, so the
//! relations hold through set-point changes, not only at steady state. A metric's own values
//! are never among its regressors, so a fault on it (offset, drift, stuck, decoupled) shows in
//! its residual instead of being explained by itself.
//!
//! Residuals are standardised by their out-of-sample σ and smoothed by two exponentially
//! weighted means (a short and a long span): the row's score is the largest smoothed residual
//! of any metric in units of that mean's own normal deviation. Small persistent faults (1–2σ
//! of the sensor noise for minutes) are invisible row by row but not in a mean over minutes.
//! Two conditions need no model: a metric that repeats its reading for longer than its
//! warm-up repeat rate makes plausible (stuck), and a metric missing for
//! [`DeviceConfig::missing_rows`] rows (dropout).
//!
//! **Warm-up** ([`DeviceConfig::warmup_rows`]): the first 60 % of the warm-up rows fit the
//! regressions; the next 20 % measure the residuals' σ out of sample; the last 20 % measure
//! the smoothed residuals' deviation and the score distribution, from which the device's
//! threshold is set ([`DeviceConfig::threshold_quantile`] × [`DeviceConfig::threshold_margin`],
//! at least [`DeviceConfig::threshold_floor`]); then the regressions are refitted on every
//! warm-up row. Rows the caller marks `exclude` (a known incident in the labels) are never
//! learned from.
//!
//! **Afterwards** the moments behind the regressions keep adapting with exponential
//! forgetting ([`DeviceConfig::adapt_halflife_rows`]), but only on rows judged clearly normal
//! (score below [`DeviceConfig::adapt_below`] of the threshold, no episode open or pending),
//! so a slow normal regime change is followed while a persistent fault is not learned.
//!
//! The smoothed residuals' normal deviation is re-measured online on the rows learned from
//! ([`DeviceConfig::deviation_halflife_rows`]): the warm-up measures it out of sample on an
//! early fit, which overstates it once the final fit is better.
//!
//! **Operating cells** ([`DeviceConfig::cell_dims`]): the device's first principal components
//! place each row in a cube of its operating range; a cube learns what the regressions get
//! wrong there and subtracts it once mature, and no episode opens while the device is on
//! ground no cube has learned yet (new ground raises the bar by
//! [`DeviceConfig::cell_new_factor`]), since there the regressions extrapolate. An open
//! episode stays open on new ground.
//!
//! # Episodes ([`Episode`])
//!
//! An episode opens (one `fired` transition) once the score has stayed above the threshold
//! for [`DeviceConfig::min_duration_rows`] rows, stays open while the device stays abnormal,
//! and closes (`cleared`) after [`DeviceConfig::hold_rows`] consecutive normal rows. The
//! fired transition names the metrics that contributed most while it was pending.

mod cells;
mod episode;
pub mod learned;
mod linalg;
mod model;

pub use episode::{Episode, RowState, Transition};
pub use model::{DeviceModel, Reason, RowScore};

use serde::{Deserialize, Serialize};

/// Settings of the device detector. Every field has a default ([`DeviceConfig::default`]);
/// [`DeviceConfig::validate`] range-checks them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Rows of warm-up per device (fit, σ, threshold); at least 50.
    pub warmup_rows: usize,
    /// Time constants (seconds) of the moving averages used as regressors; at most 8.
    pub ema_seconds: Vec<f64>,
    /// Quadratic regressors from the metrics' current values (none, squares, or every
    /// product of two): relations such as vibration ∝ speed² or pressure ∝ flow².
    pub quadratic: Quadratic,
    /// Ridge penalty, relative to each regressor's variance.
    pub ridge: f64,
    /// Choose each metric's ridge among 10⁻⁴ … 1 (and `ridge`) by its out-of-sample error on
    /// the warm-up's σ rows, instead of using `ridge` for all (tried: worse on the design
    /// seeds, see models/EXPERIMENTS.md).
    pub choose_ridge: bool,
    /// Span of the short smoothing of residuals, seconds (at least one row).
    pub short_span_s: f64,
    /// Span of the long smoothing of residuals, seconds (at least one row).
    pub long_span_s: f64,
    /// Least span of the short smoothing, rows (a slow rig still averages this many rows).
    pub short_min_rows: f64,
    /// Least span of the long smoothing, rows.
    pub long_min_rows: f64,
    /// Quantile of the warm-up's scores the threshold starts from, in (0, 1].
    pub threshold_quantile: f64,
    /// Factor on that quantile, ≥ 1.
    pub threshold_margin: f64,
    /// Least threshold, in units of the smoothed residuals' normal deviation, > 0.
    pub threshold_floor: f64,
    /// Rows scoring below this fraction of the threshold are learned from, in [0, 1].
    pub adapt_below: f64,
    /// Whether rows clearly below the threshold are learned from while an episode is open
    /// (otherwise only with no episode open or pending).
    pub adapt_in_episode: bool,
    /// An episode open this long (seconds of rows) is taken as a new normal operating point:
    /// from then on every row is learned from (refitting ten times as often) until it clears.
    pub rebaseline_after_s: f64,
    /// Half-life of the adapted moments, rows, ≥ 1.
    pub adapt_halflife_rows: usize,
    /// Refit the regressions after this many adapted rows, ≥ 1.
    pub refit_every: usize,
    /// A repeated reading is "stuck" once its run is less likely than this under the warm-up's
    /// repeat rate, in (0, 1).
    pub stuck_probability: f64,
    /// A metric missing for this many consecutive rows makes the row abnormal, ≥ 1.
    pub missing_rows: usize,
    /// Abnormal rows in a row before an episode opens, ≥ 1.
    pub min_duration_rows: usize,
    /// Normal rows in a row before an open episode closes, ≥ 1.
    pub hold_rows: usize,
    /// Half-life, in learned rows, of the smoothed residuals' normal deviation once live (0:
    /// kept at the warm-up's measure). The warm-up measures it out of sample on an early fit,
    /// which overstates it where the final fit is better.
    pub deviation_halflife_rows: usize,
    /// Principal components that place a row in its operating cell (0: no cells), ≤ 8.
    pub cell_dims: usize,
    /// Edge of an operating cell, in warm-up deviations of each component, > 0.
    pub cell_size: f64,
    /// Normal rows a cell learns before its bias is subtracted, ≥ 1.
    pub cell_mature_rows: u32,
    /// Most cells per device (past it, new cells stay new ground), ≥ 1.
    pub cell_max: usize,
    /// Factor on the threshold while the device is in a cell not yet mature (new ground),
    /// ≥ 1.
    pub cell_new_factor: f64,
    /// Span (seconds) of a slow baseline subtracted from the smoothed residuals (0: none): a
    /// high-pass that removes the regressions' slowly varying error.
    pub baseline_span_s: f64,
    /// Whether the baseline stands still while the device is abnormal.
    pub baseline_freeze: bool,
    /// With a learned prior: also fit a per-device ridge regression of the prior's residuals
    /// (warm-up, then adapted on normal rows), instead of an offset per metric.
    pub prior_ridge: bool,
    /// With a learned prior: also use operating cells (their bias learned per device and
    /// subtracted once mature; new ground raises the bar by `cell_new_factor`).
    pub prior_cells: bool,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            warmup_rows: 1800,
            ema_seconds: vec![60.0, 300.0, 1200.0],
            quadratic: Quadratic::Squares,
            ridge: 1e-3,
            choose_ridge: false,
            short_span_s: 15.0,
            long_span_s: 60.0,
            short_min_rows: 5.0,
            long_min_rows: 20.0,
            threshold_quantile: 0.99,
            threshold_margin: 1.0,
            threshold_floor: 5.0,
            adapt_below: 0.5,
            adapt_in_episode: false,
            rebaseline_after_s: 7200.0,
            adapt_halflife_rows: 20_000,
            refit_every: 200,
            stuck_probability: 1e-5,
            missing_rows: 3,
            min_duration_rows: 3,
            hold_rows: 10,
            deviation_halflife_rows: 2000,
            cell_dims: 3,
            cell_size: 0.5,
            cell_mature_rows: 200,
            cell_max: 1024,
            cell_new_factor: 1e9,
            baseline_span_s: 0.0,
            baseline_freeze: true,
            prior_ridge: false,
            prior_cells: false,
        }
    }
}

/// Which quadratic regressors the device model adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quadratic {
    /// Linear in the values and moving averages only.
    None,
    /// Each metric's centred value squared.
    Squares,
    /// Every product of two centred values (squares included).
    Products,
}

/// A device detector that cannot be built or scored.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Scoring failed (labels and predictions disagree). A retry cannot help.
    #[error(transparent)]
    Rows(#[from] crate::rows::RowsError),
    /// A setting out of its range. A retry cannot help: fix the setting.
    #[error("device detector setting {field} = {value}: {expected}")]
    BadSetting {
        /// The field.
        field: &'static str,
        /// Its value, as given.
        value: String,
        /// The range it must lie in.
        expected: &'static str,
    },
}

fn bad(field: &'static str, value: impl ToString, expected: &'static str) -> DeviceError {
    DeviceError::BadSetting { field, value: value.to_string(), expected }
}

impl DeviceConfig {
    /// Checks every field's range (see the fields' documentation).
    pub fn validate(&self) -> Result<(), DeviceError> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        if !(50..=10_000_000).contains(&self.warmup_rows) {
            return Err(bad("warmup_rows", self.warmup_rows, "50 ..= 10000000"));
        }
        if self.ema_seconds.len() > 8 || !self.ema_seconds.iter().all(|&s| pos(s)) {
            return Err(bad("ema_seconds", format!("{:?}", self.ema_seconds), "at most 8 positive numbers"));
        }
        if !(self.ridge.is_finite() && self.ridge >= 0.0) {
            return Err(bad("ridge", self.ridge, "a finite number ≥ 0"));
        }
        for (field, v) in [
            ("short_span_s", self.short_span_s),
            ("long_span_s", self.long_span_s),
            ("rebaseline_after_s", self.rebaseline_after_s),
        ] {
            if !pos(v) {
                return Err(bad(field, v, "a positive number of seconds"));
            }
        }
        if !(self.threshold_quantile > 0.0 && self.threshold_quantile <= 1.0) {
            return Err(bad("threshold_quantile", self.threshold_quantile, "in (0, 1]"));
        }
        if !(self.threshold_margin.is_finite() && self.threshold_margin >= 1.0) {
            return Err(bad("threshold_margin", self.threshold_margin, "a finite number ≥ 1"));
        }
        if !pos(self.threshold_floor) {
            return Err(bad("threshold_floor", self.threshold_floor, "a positive number"));
        }
        if !(0.0..=1.0).contains(&self.adapt_below) {
            return Err(bad("adapt_below", self.adapt_below, "in [0, 1]"));
        }
        for (field, v) in [
            ("adapt_halflife_rows", self.adapt_halflife_rows),
            ("refit_every", self.refit_every),
            ("missing_rows", self.missing_rows),
            ("min_duration_rows", self.min_duration_rows),
            ("hold_rows", self.hold_rows),
        ] {
            if !(1..=100_000_000).contains(&v) {
                return Err(bad(field, v, "1 ..= 100000000"));
            }
        }
        if self.cell_dims > 8 {
            return Err(bad("cell_dims", self.cell_dims, "0 ..= 8"));
        }
        if !pos(self.cell_size) {
            return Err(bad("cell_size", self.cell_size, "a positive number"));
        }
        if !(1..=1_000_000).contains(&self.cell_mature_rows) {
            return Err(bad("cell_mature_rows", self.cell_mature_rows, "1 ..= 1000000"));
        }
        if !(1..=1_000_000).contains(&self.cell_max) {
            return Err(bad("cell_max", self.cell_max, "1 ..= 1000000"));
        }
        if self.cell_new_factor.is_nan() || self.cell_new_factor < 1.0 {
            return Err(bad(
                "cell_new_factor",
                self.cell_new_factor,
                "a number ≥ 1 (inf: never alert on new ground)",
            ));
        }
        if !(self.baseline_span_s.is_finite() && self.baseline_span_s >= 0.0) {
            return Err(bad(
                "baseline_span_s",
                self.baseline_span_s,
                "a finite number of seconds ≥ 0 (0: off)",
            ));
        }
        if !(self.stuck_probability > 0.0 && self.stuck_probability < 1.0) {
            return Err(bad("stuck_probability", self.stuck_probability, "in (0, 1)"));
        }
        Ok(())
    }
}

/// The device model behind the engine's device-rows operator: every row pushed as seen (no
/// row excluded), its state and transitions in the operator's terms.
impl sensorflow_operators::RowModel for DeviceModel {
    fn push(&mut self, values: &[Option<f64>]) -> sensorflow_operators::RowVerdict {
        use sensorflow_operators::RowPhase;
        let out = DeviceModel::push(self, values, false);
        let phase = match out.state {
            RowState::WarmUp => RowPhase::WarmUp,
            RowState::Normal => RowPhase::Normal,
            RowState::Pending => RowPhase::Pending,
            RowState::Open => RowPhase::Open,
        };
        let (fired, cleared) = match out.transition {
            Some(Transition::Fired { top }) => (Some(top), false),
            Some(Transition::Cleared { .. }) => (None, true),
            None => (None, false),
        };
        sensorflow_operators::RowVerdict { score: out.score, phase, fired, cleared }
    }

    fn is_live(&self) -> bool {
        DeviceModel::is_live(self)
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        self.to_snapshot()
    }

    fn restore(&mut self, state: &[u8]) -> bool {
        self.restore_snapshot(state)
    }
}

/// The statistical detector's figures on a rig seed set: every rig shape × every seed, each
/// run with its own warm-up (`cfg`'s other settings as given), a row flagged while an episode
/// is open.
pub fn rig_benchmark(cfg: &DeviceConfig, seeds: &[u64]) -> Result<crate::rows::BenchmarkTable, DeviceError> {
    cfg.validate()?;
    let mut failure = None;
    let table = crate::rows::run_detector(seeds, "statistical", |run| {
        let cfg = DeviceConfig { warmup_rows: run.warmup_rows, ..cfg.clone() };
        match DeviceModel::new(run.sensors.len(), run.interval_ms, &cfg) {
            Ok(mut model) => {
                run.rows.iter().map(|row| model.push(&row.values, false).state == RowState::Open).collect()
            }
            Err(e) => {
                failure = Some(e);
                vec![false; run.rows.len()]
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    table.map_err(DeviceError::Rows)
}

#[cfg(test)]
mod tests;
