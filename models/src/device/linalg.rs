//! The little linear algebra the device model needs: a ridge solve by Cholesky
//! factorisation of a small symmetric positive-definite system.

/// Solves `a · x = b` for a symmetric positive-definite `a` (`n × n`, row-major), in place:
/// `a` is overwritten by its Cholesky factor and `b` by the solution. Returns `false` (and
/// leaves `b` unspecified) if `a` is not positive definite to working precision.
pub(super) fn cholesky_solve(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    debug_assert_eq!(a.len(), n * n);
    debug_assert_eq!(b.len(), n);
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    // Forward: L y = b.
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    // Back: Lᵀ x = y.
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solve_recovers_a_known_solution() {
        // a = [[4, 2, 0], [2, 5, 1], [0, 1, 3]], x = [1, -2, 3] → b = a x = [0, -5, 7].
        let mut a = vec![4.0, 2.0, 0.0, 2.0, 5.0, 1.0, 0.0, 1.0, 3.0];
        let mut b = vec![0.0, -5.0, 7.0];
        assert!(cholesky_solve(&mut a, &mut b, 3));
        for (x, want) in b.iter().zip([1.0, -2.0, 3.0]) {
            assert!((x - want).abs() < 1e-12, "{b:?}");
        }
    }

    #[test]
    fn cholesky_solve_refuses_an_indefinite_matrix() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        let mut b = vec![1.0, 1.0];
        assert!(!cholesky_solve(&mut a, &mut b, 2));
    }
}
