//! Operating cells: where in its operating range a device is, and what its regressions get
//! wrong there.
//!
//! The virtual-sensor regressions are fitted on the warm-up, which seldom covers every
//! operating point a machine later runs at (a set-point combination not yet seen, another
//! season). Out there a regression extrapolates, and its error is a smooth function of the
//! operating point: steady while the device stays put, a different steady value elsewhere.
//! A sensor fault, by contrast, moves one sensor (or the two or three a mechanism ties
//! together) by a few noise σ, which hardly moves the operating point at all.
//!
//! So the operating point is summarised by the device's first principal components (of the
//! metrics standardised on the warm-up, so a component's unit is its own warm-up
//! deviation), and that space is cut into cubes of edge [`Cells::size`]. Each cube learns the
//! mean standardised residual of every metric from the rows judged normal there: its *bias*.
//! Once a cube has seen [`Cells::mature`] such rows, the bias is subtracted before scoring.
//! A cube not yet mature is new ground: the model there is an extrapolation, and the caller
//! scores it against a raised threshold while it learns. The number of cubes per device is
//! bounded; past the bound new cubes stay immature.

use std::collections::HashMap;

/// Least eigenvalue (of the metrics' correlation matrix) of a component that places rows.
const MIN_EIGENVALUE: f64 = 0.05;

/// One cube: rows learned and each metric's mean standardised residual.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Cell {
    count: u32,
    bias: Vec<f32>,
}

/// The operating cells of one device.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Cells {
    n: usize,
    /// Each metric's warm-up mean.
    mean: Vec<f64>,
    /// `k × n`: the principal directions, scaled so a coordinate has unit warm-up deviation.
    axes: Vec<f64>,
    /// Cube edge, in component deviations.
    size: f64,
    /// Rows before a cube's bias is used.
    mature: u32,
    /// The bias is a plain mean up to this many rows, an exponential mean after.
    cap: u32,
    max_cells: usize,
    map: HashMap<u64, Cell>,
}

/// Eigenvalues and eigenvectors (columns of the returned `n × n` matrix, row-major) of a
/// symmetric matrix, by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..60 {
        let off: f64 =
            (0..n).flat_map(|p| (p + 1..n).map(move |q| (p, q))).map(|(p, q)| a[p * n + q].powi(2)).sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k * n + p];
                    let akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p * n + k];
                    let aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let vkp = v[k * n + p];
                    let vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

impl Cells {
    /// Cells over the first `dims` principal components of the metrics whose warm-up means
    /// and covariance (`cov(i, j)`, `n × n`) are given; metrics that did not vary are left
    /// out of the components.
    pub(super) fn new(
        mean: Vec<f64>,
        cov: impl Fn(usize, usize) -> f64,
        dims: usize,
        size: f64,
        mature: u32,
        max_cells: usize,
    ) -> Cells {
        let n = mean.len();
        let sd: Vec<f64> = (0..n).map(|j| cov(j, j).max(0.0).sqrt()).collect();
        let live = |j: usize| sd[j].is_finite() && sd[j] > 1e-12;
        let mut corr = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                corr[i * n + j] = if live(i) && live(j) { cov(i, j) / (sd[i] * sd[j]) } else { 0.0 };
            }
        }
        let (values, vectors) = symmetric_eigen(corr, n);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        // Only components that carry operating-point variance place a row: a component
        // with less than a twentieth of one metric's variance is noise or a tight relation
        // between metrics, the very directions a fault moves along.
        let k = order.iter().take(dims.min(n)).take_while(|&&c| values[c] >= MIN_EIGENVALUE).count();
        let mut axes = vec![0.0; k * n];
        for (i, &c) in order.iter().take(k).enumerate() {
            let scale = values[c].max(1e-9).sqrt();
            for j in 0..n {
                if live(j) {
                    axes[i * n + j] = vectors[j * n + c] / (sd[j] * scale);
                }
            }
        }
        Cells {
            n,
            mean,
            axes,
            size,
            mature,
            cap: mature.saturating_mul(8).max(1),
            max_cells,
            map: HashMap::new(),
        }
    }

    /// The cube of the operating point `x` (one value per metric).
    pub(super) fn key(&self, x: &[f64]) -> u64 {
        let k = self.dims();
        let mut key = 0u64;
        for i in 0..k {
            let z: f64 = self.axes[i * self.n..(i + 1) * self.n]
                .iter()
                .zip(x.iter().zip(&self.mean))
                .map(|(a, (v, m))| a * (v - m))
                .sum();
            let q = (z / self.size).floor().clamp(-30_000.0, 30_000.0) as i64 as i16;
            key = key.wrapping_mul(65_536).wrapping_add(u64::from(q as u16));
        }
        key
    }

    /// The bias of cube `key` if it is mature.
    pub(super) fn bias(&self, key: u64) -> Option<&[f32]> {
        self.map.get(&key).filter(|c| c.count >= self.mature).map(|c| c.bias.as_slice())
    }

    /// Whether cube `key` is mature.
    pub(super) fn is_mature(&self, key: u64) -> bool {
        self.bias(key).is_some()
    }

    /// Learns one normal row's standardised residuals `e` (`None`: missing) in cube `key`.
    pub(super) fn learn(&mut self, key: u64, e: &[Option<f64>]) {
        if !self.map.contains_key(&key) && self.map.len() >= self.max_cells {
            return;
        }
        let cell = self.map.entry(key).or_insert_with(|| Cell { count: 0, bias: vec![0.0; e.len()] });
        cell.count = cell.count.saturating_add(1);
        let w = 1.0 / f64::from(cell.count.min(self.cap));
        for (b, v) in cell.bias.iter_mut().zip(e) {
            if let Some(v) = v {
                *b += (w * (v - f64::from(*b))) as f32;
            }
        }
    }

    /// Components that place a row (0: every row is in one cube).
    pub(super) fn dims(&self) -> usize {
        self.axes.len() / self.n.max(1)
    }

    /// Cubes held.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1 with eigenvectors (1, 1)/√2 and (1, −1)/√2.
        let (values, vectors) = symmetric_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        let mut v = values.clone();
        v.sort_by(f64::total_cmp);
        assert!((v[0] - 1.0).abs() < 1e-9 && (v[1] - 3.0).abs() < 1e-9, "{values:?}");
        let big = if values[0] > values[1] { 0 } else { 1 };
        assert!((vectors[big].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-9);
        assert!((vectors[2 + big].abs() - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-9);
    }

    #[test]
    fn a_cube_is_used_only_once_mature_and_a_small_move_stays_in_it() {
        // Two metrics moving together (correlation 1): one component along (1, 1).
        let cov = |_i: usize, _j: usize| 1.0;
        let mut cells = Cells::new(vec![0.0, 0.0], cov, 2, 0.5, 3, 16);
        assert_eq!(cells.dims(), 1, "the second component has no variance");
        let here = cells.key(&[0.1, 0.1]);
        assert_eq!(cells.key(&[0.12, 0.11]), here, "a small move stays in the cube");
        assert_ne!(cells.key(&[2.0, 2.0]), here, "a move of two deviations leaves it");
        for _ in 0..2 {
            cells.learn(here, &[Some(1.0), None]);
        }
        assert!(cells.bias(here).is_none());
        cells.learn(here, &[Some(1.0), Some(-2.0)]);
        let bias = cells.bias(here).map(<[f32]>::to_vec);
        assert_eq!(bias, Some(vec![1.0, -2.0 / 3.0]));
    }

    #[test]
    fn the_number_of_cubes_is_bounded() {
        let mut cells = Cells::new(vec![0.0], |_, _| 1.0, 1, 1.0, 1, 4);
        for i in 0..10 {
            let key = cells.key(&[f64::from(i) * 3.0]);
            cells.learn(key, &[Some(0.0)]);
        }
        assert_eq!(cells.len(), 4);
    }
}
