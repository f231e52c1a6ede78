//! The statistical device model: virtual-sensor regressions over current values and moving
//! averages, smoothed standardised residuals, stuck and dropout checks, and the episode.

use super::cells::Cells;
use super::episode::{Episode, RowState, Transition};
use super::learned::{RowPrior, Scratch};
use super::linalg::cholesky_solve;
use super::{DeviceConfig, DeviceError, Quadratic};
use std::sync::Arc;

/// Weighted first and second moments with exponential forgetting.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Moments {
    w: f64,
    mean: Vec<f64>,
    /// Co-moment matrix (row-major, `f × f`): covariance × `w`.
    co: Vec<f64>,
}

impl Moments {
    fn new(f: usize) -> Self {
        Moments { w: 0.0, mean: vec![0.0; f], co: vec![0.0; f * f] }
    }

    /// Adds `x` with weight 1 after scaling the past by `decay` (1 = no forgetting).
    fn add(&mut self, x: &[f64], decay: f64, delta: &mut [f64]) {
        let f = self.mean.len();
        let wd = self.w * decay;
        let w = wd + 1.0;
        for ((d, m), &v) in delta.iter_mut().zip(&mut self.mean).zip(x) {
            *d = v - *m;
            *m += *d / w;
        }
        let g = wd / w;
        for i in 0..f {
            let row = &mut self.co[i * f..(i + 1) * f];
            let di = delta[i] * g;
            for (c, &dj) in row.iter_mut().zip(delta.iter()) {
                *c = *c * decay + di * dj;
            }
        }
        self.w = w;
    }

    fn cov(&self, i: usize, j: usize) -> f64 {
        self.co[i * self.mean.len() + j] / self.w.max(1.0)
    }
}

/// Why a row is abnormal, beside the score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The smoothed residuals are above the threshold.
    Score,
    /// A metric repeats its reading for longer than plausible.
    Stuck,
    /// A metric has been missing for too many rows.
    Missing,
}

/// One row's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct RowScore {
    /// The score as a multiple of the device's threshold (above 1 is abnormal); 0 during the
    /// warm-up.
    pub score: f64,
    /// Why the row is abnormal (`None` when normal or warming up).
    pub reason: Option<Reason>,
    /// The device's state after the row.
    pub state: RowState,
    /// An episode that opened or closed on this row.
    pub transition: Option<Transition>,
}

/// The ridges each metric's regression is chosen from, by out-of-sample error on the warm-up.
const RIDGES: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// One candidate ridge during the warm-up: every metric's fit and squared residuals.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Candidate {
    ridge: f64,
    fits: Vec<(Vec<f64>, f64)>,
    sq: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Phase {
    /// Fitting the regressions' moments.
    Fit,
    /// Measuring residual σ out of sample, for every candidate ridge.
    Sigma { candidates: Vec<Candidate>, count: Vec<f64> },
    /// Measuring the smoothed residuals' deviation and the scores (`smoothed`: the short and
    /// long means of every metric on every learned row, `2n` per row).
    Threshold { smoothed: Vec<f32> },
    /// Scoring and adapting.
    Live,
}

/// The statistical model of one device (see the module documentation of
/// [`crate::device`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceModel {
    n: usize,
    /// Regressors per metric (its value and its moving averages).
    block: usize,
    /// Every regressor's metrics (a value or moving average has one, a product two): metric
    /// j's regression leaves out every regressor that involves j.
    owners: Vec<(usize, usize)>,
    /// Quadratic regressors: products of the centred values `(a, b)`.
    products: Vec<(usize, usize)>,
    /// Centre of each metric's products (its first value).
    centre: Vec<Option<f64>>,
    warmup: usize,
    fit_end: usize,
    sigma_end: usize,
    ridge: f64,
    /// Each metric's ridge, chosen on the warm-up.
    ridges: Vec<f64>,
    choose_ridge: bool,
    ema_alpha: Vec<f64>,
    short_alpha: f64,
    long_alpha: f64,
    threshold_quantile: f64,
    threshold_margin: f64,
    threshold_floor: f64,
    adapt_below: f64,
    adapt_open: bool,
    rebaseline_after: usize,
    decay: f64,
    refit_every: usize,
    stuck_probability: f64,
    missing_rows: usize,

    rows: usize,
    phase: Phase,
    last: Vec<Option<f64>>,
    ema: Vec<f64>,
    feat: Vec<f64>,
    delta: Vec<f64>,
    moments: Moments,
    /// `n × f`: metric j's coefficients (zero on its own block).
    beta: Vec<f64>,
    /// Metric j's prediction: `intercept[j] + beta_j · feat`.
    intercept: Vec<f64>,
    sigma: Vec<f64>,
    m_short: Vec<f64>,
    m_long: Vec<f64>,
    /// Slow baseline of the standardised residuals (high-pass reference; `base_alpha` 0: off).
    m_base: Vec<f64>,
    base_alpha: f64,
    base_freeze: bool,
    sd_short: Vec<f64>,
    sd_long: Vec<f64>,
    threshold: f64,
    repeat_run: Vec<u32>,
    missing_run: Vec<u32>,
    repeats: Vec<u32>,
    pairs: Vec<u32>,
    stuck_len: Vec<u32>,
    /// Metrics that never reported during the warm-up: not part of this device, never missing.
    absent: Vec<bool>,
    contribution: Vec<f64>,
    adapted: usize,
    episode: Episode,
    /// Weight of one learned row in the smoothed residuals' deviation (0: fixed).
    deviation_rate: f64,
    cell_dims: usize,
    cell_size: f64,
    cell_mature_rows: u32,
    cell_max: usize,
    cell_new_factor: f64,
    /// The operating cells (built when the warm-up ends, with `cell_dims` > 0).
    cells: Option<Cells>,
    /// This row's standardised residuals (`None`: missing).
    resid: Vec<Option<f64>>,
    /// The bias subtracted on this row.
    bias: Vec<f64>,
    /// Whether the last row was in a cell not yet mature.
    new_ground: bool,
    /// A learned model of the device type ([`DeviceModel::with_prior`]): it predicts every
    /// metric instead of the regressions, and the warm-up only measures each metric's
    /// residual offset and σ.
    #[serde(skip)]
    prior: Option<Arc<RowPrior>>,
    /// This row's predictions by the prior.
    pred: Vec<f64>,
    /// Each metric's residual offset (learned mode): the warm-up's mean residual, then
    /// adapted on normal rows.
    offset: Vec<f64>,
    /// Sums of the raw residuals and their squares, and counts, during the σ phase.
    sums: Vec<(f64, f64, f64)>,
    #[serde(skip)]
    scratch: Scratch,
    /// Regressor columns (`feat[f_reg..]` holds the prior's residuals in hybrid mode).
    f_reg: usize,
    /// Hybrid mode: a per-device regression on the prior's residuals, fitted on the warm-up
    /// and adapted like the statistical model's (otherwise only an offset per metric).
    hybrid: bool,
}

fn ewma_alpha(span_rows: f64) -> f64 {
    2.0 / (span_rows.max(1.0) + 1.0)
}

impl DeviceModel {
    /// A model for a device of `metrics` metrics sampled every `interval_ms`.
    pub fn new(metrics: usize, interval_ms: u64, cfg: &DeviceConfig) -> Result<Self, DeviceError> {
        cfg.validate()?;
        if !(1..=256).contains(&metrics) {
            return Err(super::bad("metrics", metrics, "1 ..= 256 per device"));
        }
        if interval_ms == 0 {
            return Err(super::bad("interval_ms", interval_ms, "a positive row interval"));
        }
        let dt = interval_ms as f64 / 1000.0;
        let n = metrics;
        let block = 1 + cfg.ema_seconds.len();
        let products: Vec<(usize, usize)> = match cfg.quadratic {
            Quadratic::None => Vec::new(),
            Quadratic::Squares => (0..n).map(|j| (j, j)).collect(),
            Quadratic::Products => (0..n).flat_map(|a| (a..n).map(move |b| (a, b))).collect(),
        };
        let owners: Vec<(usize, usize)> =
            (0..n * block).map(|i| (i / block, i / block)).chain(products.iter().copied()).collect();
        let f = owners.len();
        let fit_end = cfg.warmup_rows * 3 / 5;
        let sigma_end = cfg.warmup_rows * 4 / 5;
        Ok(DeviceModel {
            n,
            block,
            owners,
            products,
            centre: vec![None; n],
            warmup: cfg.warmup_rows,
            fit_end,
            sigma_end,
            ridge: cfg.ridge,
            ridges: vec![cfg.ridge; n],
            choose_ridge: cfg.choose_ridge,
            ema_alpha: cfg.ema_seconds.iter().map(|t| 1.0 - (-dt / t).exp()).collect(),
            short_alpha: ewma_alpha((cfg.short_span_s / dt).max(cfg.short_min_rows)),
            long_alpha: ewma_alpha((cfg.long_span_s / dt).max(cfg.long_min_rows)),
            threshold_quantile: cfg.threshold_quantile,
            threshold_margin: cfg.threshold_margin,
            threshold_floor: cfg.threshold_floor,
            adapt_below: cfg.adapt_below,
            adapt_open: cfg.adapt_in_episode,
            rebaseline_after: ((cfg.rebaseline_after_s / dt).ceil() as usize).max(1),
            decay: 0.5f64.powf(1.0 / cfg.adapt_halflife_rows as f64),
            refit_every: cfg.refit_every,
            stuck_probability: cfg.stuck_probability,
            missing_rows: cfg.missing_rows,
            rows: 0,
            phase: Phase::Fit,
            last: vec![None; n],
            ema: vec![0.0; n * (block - 1)],
            feat: vec![0.0; f],
            delta: vec![0.0; f],
            moments: Moments::new(f),
            beta: vec![0.0; n * f],
            intercept: vec![0.0; n],
            sigma: vec![1.0; n],
            m_short: vec![0.0; n],
            m_long: vec![0.0; n],
            m_base: vec![0.0; n],
            base_alpha: if cfg.baseline_span_s > 0.0 { ewma_alpha(cfg.baseline_span_s / dt) } else { 0.0 },
            base_freeze: cfg.baseline_freeze,
            sd_short: vec![1.0; n],
            sd_long: vec![1.0; n],
            threshold: cfg.threshold_floor,
            repeat_run: vec![0; n],
            missing_run: vec![0; n],
            repeats: vec![0; n],
            pairs: vec![0; n],
            stuck_len: vec![u32::MAX; n],
            absent: vec![false; n],
            contribution: vec![0.0; n],
            adapted: 0,
            episode: Episode::new(n, cfg.min_duration_rows, cfg.hold_rows),
            deviation_rate: if cfg.deviation_halflife_rows == 0 {
                0.0
            } else {
                1.0 - 0.5f64.powf(1.0 / cfg.deviation_halflife_rows as f64)
            },
            cell_dims: cfg.cell_dims,
            cell_size: cfg.cell_size,
            cell_mature_rows: cfg.cell_mature_rows,
            cell_max: cfg.cell_max,
            cell_new_factor: cfg.cell_new_factor,
            cells: None,
            resid: vec![None; n],
            bias: vec![0.0; n],
            new_ground: false,
            prior: None,
            pred: vec![0.0; n],
            offset: vec![0.0; n],
            sums: vec![(0.0, 0.0, 0.0); n],
            scratch: Scratch::default(),
            f_reg: f,
            hybrid: false,
        })
    }

    /// A model of one device of the type `prior` was trained on: the prior predicts every
    /// metric (its regressors: the schema's moving averages; its row interval: the schema's),
    /// and the warm-up measures each metric's residual offset and σ (its first fifth lets the
    /// moving averages settle, up to half measures the residuals, the rest the smoothed
    /// residuals' deviation and the threshold). Afterwards the offsets adapt on rows judged
    /// normal, at `adapt_halflife_rows`. Operating cells are not used.
    pub fn with_prior(prior: Arc<RowPrior>, cfg: &DeviceConfig) -> Result<Self, DeviceError> {
        let schema = prior.schema();
        let cell_dims = if cfg.prior_cells { cfg.cell_dims } else { 0 };
        let cfg = DeviceConfig { ema_seconds: schema.ema_seconds.clone(), cell_dims, ..cfg.clone() };
        let mut model = DeviceModel::new(prior.metrics(), schema.interval_ms, &cfg)?;
        let n = model.n;
        model.prior = Some(prior);
        model.hybrid = cfg.prior_ridge;
        if model.hybrid {
            // The prior's residuals, one column per metric after the regressors: targets
            // only, never regressors.
            let f = model.f_reg + n;
            model.owners.extend((0..n).map(|j| (j, j)));
            model.feat.resize(f, 0.0);
            model.delta.resize(f, 0.0);
            model.moments = Moments::new(f);
            model.beta = vec![0.0; n * f];
        } else {
            model.fit_end = cfg.warmup_rows / 5;
            model.sigma_end = cfg.warmup_rows / 2;
            // No regression to fit: no moments to keep (beyond placing the cells).
            if cell_dims == 0 {
                model.moments = Moments::new(0);
            }
            model.beta = Vec::new();
        }
        Ok(model)
    }

    /// Learned prior with a per-metric offset only (no per-device regression).
    fn offset_mode(&self) -> bool {
        self.prior.is_some() && !self.hybrid
    }

    /// Observes a row and returns its regressors (`n × block`: each metric's value carried
    /// forward and its moving averages), as the learned model's training reads them.
    pub(crate) fn regressors(&mut self, values: &[Option<f64>]) -> &[f64] {
        self.observe(values);
        &self.feat[..self.n * self.block]
    }

    /// Metrics per row.
    pub fn metrics(&self) -> usize {
        self.n
    }

    /// The model's whole state (everything but the learned prior it was made with), for the
    /// engine's snapshots.
    pub fn to_snapshot(&self) -> Option<Vec<u8>> {
        bincode::serialize(self).ok()
    }

    /// Takes back a state [`DeviceModel::to_snapshot`] wrote for a model made the same way
    /// (same metrics, same prior); false, and unchanged, if it does not decode or fit.
    pub fn restore_snapshot(&mut self, state: &[u8]) -> bool {
        let Ok(mut model) = bincode::deserialize::<DeviceModel>(state) else { return false };
        if model.n != self.n
            || model.f_reg != self.f_reg
            || model.hybrid != self.hybrid
            || model.block != self.block
        {
            return false;
        }
        model.prior = self.prior.clone();
        *self = model;
        true
    }

    /// Whether the warm-up is over.
    pub fn is_live(&self) -> bool {
        self.phase == Phase::Live
    }

    /// The threshold, in units of the smoothed residuals' normal deviation (meaningful once
    /// live).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Each metric's calibration once live: residual σ (in the metric's unit) and the normal
    /// deviations of its short and long smoothed standardised residuals.
    pub fn calibration(&self) -> Vec<(f64, f64, f64)> {
        (0..self.n).map(|j| (self.sigma[j], self.sd_short[j], self.sd_long[j])).collect()
    }

    /// Each metric's contribution to the last row's score (smoothed residual in units of its
    /// normal deviation; a stuck or missing metric counts as twice the threshold).
    pub fn contributions(&self) -> &[f64] {
        &self.contribution
    }

    /// Scores one row: one value per metric (`None`: missing; carried forward as a regressor,
    /// never as evidence). `exclude` marks a row of a known incident: never learned from.
    /// Values that are not finite count as missing.
    pub fn push(&mut self, values: &[Option<f64>], exclude: bool) -> RowScore {
        self.observe(values);
        let phase = std::mem::replace(&mut self.phase, Phase::Live);
        let (phase, out) = match phase {
            Phase::Fit => {
                if !exclude {
                    self.learn(1.0);
                }
                self.rows += 1;
                if self.rows >= self.fit_end {
                    let candidates = self.candidates();
                    (Phase::Sigma { candidates, count: vec![0.0; self.n] }, self.warming())
                } else {
                    (Phase::Fit, self.warming())
                }
            }
            Phase::Sigma { mut candidates, mut count } => {
                if !exclude {
                    for (j, seen) in count.iter_mut().enumerate() {
                        let Some(v) = values.get(j).copied().flatten().filter(|v| v.is_finite()) else {
                            continue;
                        };
                        *seen += 1.0;
                        if self.offset_mode() {
                            let r = v - self.pred[j];
                            let (s1, s2, c) = &mut self.sums[j];
                            *s1 += r;
                            *s2 += r * r;
                            *c += 1.0;
                        }
                        for c in &mut candidates {
                            let r = v - self.pred[j] - self.predict(&c.fits[j].0, c.fits[j].1);
                            c.sq[j] += r * r;
                        }
                    }
                    self.learn(1.0);
                }
                self.rows += 1;
                if self.rows >= self.sigma_end {
                    let f = self.owners.len();
                    for (j, &seen) in count.iter().enumerate() {
                        let Some(best) = candidates.iter().min_by(|a, b| a.sq[j].total_cmp(&b.sq[j])) else {
                            continue;
                        };
                        self.ridges[j] = best.ridge;
                        self.beta[j * f..(j + 1) * f].copy_from_slice(&best.fits[j].0);
                        self.intercept[j] = best.fits[j].1;
                        let s = (best.sq[j] / seen.max(1.0)).sqrt();
                        self.sigma[j] = if s.is_finite() && s > 0.0 { s } else { 1.0 };
                    }
                    if self.offset_mode() {
                        for j in 0..self.n {
                            let (s1, s2, c) = self.sums[j];
                            let mean = s1 / c.max(1.0);
                            let sd = (s2 / c.max(1.0) - mean * mean).max(0.0).sqrt();
                            self.offset[j] = mean;
                            self.sigma[j] = if sd.is_finite() && sd > 0.0 { sd } else { 1.0 };
                        }
                    }
                    let rows = self.warmup - self.sigma_end;
                    (Phase::Threshold { smoothed: Vec::with_capacity(2 * self.n * rows) }, self.warming())
                } else {
                    (Phase::Sigma { candidates, count }, self.warming())
                }
            }
            Phase::Threshold { mut smoothed } => {
                self.smooth(values);
                if !exclude {
                    for j in 0..self.n {
                        smoothed.push((self.m_short[j] - self.m_base[j]) as f32);
                        smoothed.push((self.m_long[j] - self.m_base[j]) as f32);
                    }
                    self.update_base();
                    self.learn(1.0);
                }
                self.rows += 1;
                if self.rows >= self.warmup {
                    self.calibrate(&smoothed);
                    self.fit();
                    self.build_cells();
                    (Phase::Live, self.warming())
                } else {
                    (Phase::Threshold { smoothed }, self.warming())
                }
            }
            Phase::Live => {
                self.rows += 1;
                (Phase::Live, self.live(values, exclude))
            }
        };
        self.phase = phase;
        out
    }

    fn warming(&self) -> RowScore {
        RowScore { score: 0.0, reason: None, state: RowState::WarmUp, transition: None }
    }

    /// Updates last values, repeat and missing runs, moving averages and the regressors.
    fn observe(&mut self, values: &[Option<f64>]) {
        let k = self.block - 1;
        let warming = self.phase != Phase::Live;
        for j in 0..self.n {
            let v = values.get(j).copied().flatten().filter(|v| v.is_finite());
            match v {
                Some(v) => {
                    self.missing_run[j] = 0;
                    if let Some(prev) = self.last[j] {
                        let same = prev == v;
                        self.repeat_run[j] = if same { self.repeat_run[j].saturating_add(1) } else { 0 };
                        if warming {
                            self.pairs[j] += 1;
                            self.repeats[j] += u32::from(same);
                        }
                    } else {
                        // First value: the moving averages start there.
                        for e in &mut self.ema[j * k..(j + 1) * k] {
                            *e = v;
                        }
                    }
                    self.last[j] = Some(v);
                }
                None => self.missing_run[j] = self.missing_run[j].saturating_add(1),
            }
            let x = self.last[j].unwrap_or(0.0);
            if self.centre[j].is_none() {
                self.centre[j] = self.last[j];
            }
            let base = j * self.block;
            self.feat[base] = x;
            for (i, a) in self.ema_alpha.iter().enumerate() {
                let e = &mut self.ema[j * k + i];
                *e += a * (x - *e);
                self.feat[base + 1 + i] = *e;
            }
        }
        let base = self.n * self.block;
        for (i, &(a, b)) in self.products.iter().enumerate() {
            let ca = self.feat[a * self.block] - self.centre[a].unwrap_or(0.0);
            let cb = self.feat[b * self.block] - self.centre[b].unwrap_or(0.0);
            self.feat[base + i] = ca * cb;
        }
        if let Some(prior) = &self.prior {
            prior.predict(&self.feat[..self.n * self.block], &mut self.pred, &mut self.scratch);
            if self.hybrid {
                for j in 0..self.n {
                    self.feat[self.f_reg + j] = self.feat[j * self.block] - self.pred[j];
                }
            }
        }
    }

    fn learn(&mut self, decay: f64) {
        // In offset mode the moments only place the operating cells, from the warm-up.
        if !self.offset_mode() || (self.cell_dims > 0 && self.rows < self.warmup) {
            self.moments.add(&self.feat, decay, &mut self.delta);
        }
    }

    /// Fits every metric's regression on the current moments, each with its own ridge.
    fn fit(&mut self) {
        if self.offset_mode() {
            return;
        }
        let f = self.owners.len();
        for j in 0..self.n {
            let (row, intercept) = self.fit_one(j, self.ridges[j]);
            self.beta[j * f..(j + 1) * f].copy_from_slice(&row);
            self.intercept[j] = intercept;
        }
    }

    /// Metric j's coefficients (zero on the regressors that involve j) and intercept with
    /// ridge `ridge` (raised tenfold until the system is positive definite; the mean alone
    /// if it never is).
    fn fit_one(&self, j: usize, ridge: f64) -> (Vec<f64>, f64) {
        let f = self.owners.len();
        let others: Vec<usize> =
            (0..self.f_reg).filter(|&i| self.owners[i].0 != j && self.owners[i].1 != j).collect();
        let m = others.len();
        let mut a = vec![0.0; m * m];
        let mut b = vec![0.0; m];
        // With a prior (hybrid mode) the regression explains what the prior leaves: its
        // residual, held after the regressors.
        let target = if self.prior.is_some() { self.f_reg + j } else { j * self.block };
        let mut ridge = ridge;
        let solved = loop {
            for (r, &i) in others.iter().enumerate() {
                for (c, &l) in others.iter().enumerate() {
                    a[r * m + c] = self.moments.cov(i, l);
                }
                let var = self.moments.cov(i, i);
                a[r * m + r] += ridge * var + 1e-12 * (1.0 + var);
                b[r] = self.moments.cov(i, target);
            }
            if cholesky_solve(&mut a, &mut b, m) && b.iter().all(|x| x.is_finite()) {
                break true;
            }
            if ridge > 1e3 {
                break false;
            }
            ridge = (ridge * 10.0).max(1e-6);
        };
        let mut row = vec![0.0; f];
        let mut intercept = self.moments.mean[target];
        if solved {
            for (&i, &coef) in others.iter().zip(&b) {
                row[i] = coef;
                intercept -= coef * self.moments.mean[i];
            }
        }
        (row, intercept)
    }

    /// Candidate regressions: the configured ridge, and with `choose_ridge` every ridge of
    /// [`RIDGES`].
    fn candidates(&self) -> Vec<Candidate> {
        if self.offset_mode() {
            return Vec::new();
        }
        let mut ridges: Vec<f64> = if self.choose_ridge { RIDGES.to_vec() } else { Vec::new() };
        if !ridges.contains(&self.ridge) {
            ridges.push(self.ridge);
        }
        ridges
            .into_iter()
            .map(|ridge| {
                let fits: Vec<(Vec<f64>, f64)> = (0..self.n).map(|j| self.fit_one(j, ridge)).collect();
                Candidate { ridge, fits, sq: vec![0.0; self.n] }
            })
            .collect()
    }

    fn predict(&self, row: &[f64], intercept: f64) -> f64 {
        intercept + row.iter().zip(&self.feat).map(|(b, x)| b * x).sum::<f64>()
    }

    /// Metric j's residual on this row (`None` when it is missing).
    fn residual(&self, j: usize, values: &[Option<f64>]) -> Option<f64> {
        let v = values.get(j).copied().flatten().filter(|v| v.is_finite())?;
        if self.offset_mode() {
            return Some(v - self.pred[j] - self.offset[j]);
        }
        let f = self.owners.len();
        Some(v - self.pred[j] - self.predict(&self.beta[j * f..(j + 1) * f], self.intercept[j]))
    }

    /// The operating cells over the warm-up's metric moments.
    fn build_cells(&mut self) {
        if self.cell_dims == 0 || self.hybrid {
            return;
        }
        let block = self.block;
        let mean: Vec<f64> = (0..self.n).map(|j| self.moments.mean[j * block]).collect();
        let moments = &self.moments;
        self.cells = Some(Cells::new(
            mean,
            |i, j| moments.cov(i * block, j * block),
            self.cell_dims,
            self.cell_size,
            self.cell_mature_rows,
            self.cell_max,
        ));
    }

    /// The last row's standardised residual of each metric, less its cell's bias (`None`:
    /// missing or warming up).
    pub fn residuals(&self) -> Vec<Option<f64>> {
        self.resid.iter().zip(&self.bias).map(|(r, b)| r.map(|r| r - b)).collect()
    }

    /// Whether the last row was on new ground: in an operating cell not yet mature.
    pub fn on_new_ground(&self) -> bool {
        self.new_ground
    }

    /// Operating cells held (0 without cells).
    pub fn cells(&self) -> usize {
        self.cells.as_ref().map_or(0, Cells::len)
    }

    /// Updates the smoothed standardised residuals, less this row's bias.
    fn smooth(&mut self, values: &[Option<f64>]) {
        for j in 0..self.n {
            self.resid[j] = self.residual(j, values).map(|r| r / self.sigma[j]);
            let e = self.resid[j].map_or(0.0, |r| r - self.bias[j]);
            self.m_short[j] += self.short_alpha * (e - self.m_short[j]);
            self.m_long[j] += self.long_alpha * (e - self.m_long[j]);
        }
    }

    /// Moves the slow baseline of the smoothed residuals towards this row's.
    fn update_base(&mut self) {
        if self.base_alpha > 0.0 {
            for j in 0..self.n {
                let e = self.m_short[j];
                self.m_base[j] += self.base_alpha * (e - self.m_base[j]);
            }
        }
    }

    /// Sets the smoothed residuals' deviations, the threshold and the stuck run lengths from
    /// the warm-up.
    fn calibrate(&mut self, smoothed: &[f32]) {
        let n = self.n;
        let rows = smoothed.len() / (2 * n).max(1);
        if rows > 0 {
            for j in 0..n {
                let (mut ss, mut sl) = (0.0, 0.0);
                for r in 0..rows {
                    let s = f64::from(smoothed[r * 2 * n + 2 * j]);
                    let l = f64::from(smoothed[r * 2 * n + 2 * j + 1]);
                    ss += s * s;
                    sl += l * l;
                }
                let fix = |v: f64| if v.is_finite() && v > 1e-9 { v } else { 1.0 };
                self.sd_short[j] = fix((ss / rows as f64).sqrt());
                self.sd_long[j] = fix((sl / rows as f64).sqrt());
            }
            let mut scores: Vec<f64> = (0..rows)
                .map(|r| {
                    (0..n)
                        .map(|j| {
                            let s = f64::from(smoothed[r * 2 * n + 2 * j]).abs() / self.sd_short[j];
                            let l = f64::from(smoothed[r * 2 * n + 2 * j + 1]).abs() / self.sd_long[j];
                            s.max(l)
                        })
                        .fold(0.0, f64::max)
                })
                .collect();
            scores.sort_by(f64::total_cmp);
            let q = scores[((self.threshold_quantile * (rows - 1) as f64).round() as usize).min(rows - 1)];
            self.threshold = (q * self.threshold_margin).max(self.threshold_floor);
        }
        for j in 0..n {
            self.absent[j] = self.last[j].is_none();
            let p = f64::from(self.repeats[j]) / f64::from(self.pairs[j].max(1));
            self.stuck_len[j] = if self.pairs[j] < 10 || p > 0.2 {
                u32::MAX
            } else if p == 0.0 {
                2
            } else {
                (self.stuck_probability.ln() / p.ln()).ceil().clamp(2.0, 1e6) as u32
            };
        }
    }

    fn live(&mut self, values: &[Option<f64>], exclude: bool) -> RowScore {
        // Where the device is, and what the regressions get wrong there once learned.
        let mut cell = None;
        if let Some(cells) = &self.cells {
            let x: Vec<f64> = (0..self.n).map(|j| self.feat[j * self.block]).collect();
            let key = cells.key(&x);
            match cells.bias(key) {
                Some(b) => {
                    for (o, &v) in self.bias.iter_mut().zip(b) {
                        *o = f64::from(v);
                    }
                }
                None => self.bias.fill(0.0),
            }
            cell = Some((key, cells.is_mature(key)));
        }
        let new_ground = cell.is_some_and(|(_, mature)| !mature);
        self.new_ground = new_ground;
        // New ground raises the bar for opening an episode, never for keeping one open: a
        // fault that moves the device off its known ground stays one episode.
        let calm = self.episode.state() == RowState::Normal;
        let threshold =
            if new_ground && calm { self.threshold * self.cell_new_factor } else { self.threshold };
        self.smooth(values);
        let mut score: f64 = 0.0;
        let mut reason = None;
        for j in 0..self.n {
            let c = ((self.m_short[j] - self.m_base[j]).abs() / self.sd_short[j])
                .max((self.m_long[j] - self.m_base[j]).abs() / self.sd_long[j]);
            self.contribution[j] = c / threshold;
            score = score.max(c);
        }
        let score = score / threshold;
        if score > 1.0 {
            reason = Some(Reason::Score);
        }
        for j in 0..self.n {
            if self.repeat_run[j] >= self.stuck_len[j] {
                reason = Some(Reason::Stuck);
                self.contribution[j] = 2.0;
            } else if !self.absent[j] && self.missing_run[j] as usize >= self.missing_rows {
                reason = Some(Reason::Missing);
                self.contribution[j] = 2.0;
            }
        }
        let transition = self.episode.step(reason.is_some(), &self.contribution);
        let state = self.episode.state();
        if let (Some((key, mature)), Some(cells)) = (cell, self.cells.as_mut()) {
            if !exclude
                && reason.is_none()
                && state == RowState::Normal
                && (!mature || score < self.adapt_below)
            {
                cells.learn(key, &self.resid);
            }
        }
        // A long episode is taken as a new normal: learn from every row, refitting often.
        let rebaseline = state == RowState::Open && self.episode.open_rows() >= self.rebaseline_after;
        let normal =
            reason.is_none() && (self.adapt_open || state == RowState::Normal) && score < self.adapt_below;
        if !exclude && normal && self.deviation_rate > 0.0 {
            let a = self.deviation_rate;
            for j in 0..self.n {
                if self.resid[j].is_some() {
                    let (s, l) = (self.m_short[j] - self.m_base[j], self.m_long[j] - self.m_base[j]);
                    self.sd_short[j] = ((1.0 - a) * self.sd_short[j].powi(2) + a * s * s).sqrt();
                    self.sd_long[j] = ((1.0 - a) * self.sd_long[j].powi(2) + a * l * l).sqrt();
                }
            }
        }
        if !self.base_freeze || (reason.is_none() && state == RowState::Normal) || rebaseline {
            self.update_base();
        }
        if !exclude && (normal || rebaseline) && self.offset_mode() {
            let a = 1.0 - self.decay;
            for j in 0..self.n {
                if let Some(v) = values.get(j).copied().flatten().filter(|v| v.is_finite()) {
                    let r = v - self.pred[j];
                    self.offset[j] += a * (r - self.offset[j]);
                }
            }
        }
        if !exclude && (normal || rebaseline) {
            self.learn(self.decay);
            self.adapted += if rebaseline { 10 } else { 1 };
            if self.adapted >= self.refit_every {
                self.adapted = 0;
                self.fit();
            }
        }
        RowScore { score, reason, state, transition }
    }
}
