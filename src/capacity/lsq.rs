//! Small weighted non-negative least squares, used to fit engine timing models.
//!
//! Problems here have at most four coefficients, so the exact solution is found by
//! solving the normal equations on every subset of active coefficients and keeping
//! the feasible subset with the least weighted residual. No linear-algebra crate needed.

/// One observation: feature values `x`, target `y`, weight `w`.
#[derive(Debug, Clone)]
pub struct Obs {
    pub x: Vec<f64>,
    pub y: f64,
    pub w: f64,
}

/// Minimises `sum w * (x . c - y)^2` subject to `c >= 0`.
/// Returns `None` when there are no observations or every subset is singular.
pub fn nnls(obs: &[Obs], n: usize) -> Option<Vec<f64>> {
    if obs.is_empty() || n == 0 || n > 8 {
        return None;
    }
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 1u32..(1 << n) {
        let idx: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let Some(sub) = solve_subset(obs, &idx) else {
            continue;
        };
        if sub.iter().any(|c| *c < 0.0) {
            continue;
        }
        let mut c = vec![0.0; n];
        for (k, &i) in idx.iter().enumerate() {
            c[i] = sub[k];
        }
        let r = residual(obs, &c);
        if best.as_ref().is_none_or(|(br, _)| r < *br) {
            best = Some((r, c));
        }
    }
    best.map(|(_, c)| c)
}

fn residual(obs: &[Obs], c: &[f64]) -> f64 {
    obs.iter()
        .map(|o| {
            let pred: f64 = o.x.iter().zip(c).map(|(a, b)| a * b).sum();
            o.w * (pred - o.y).powi(2)
        })
        .sum()
}

/// Weighted normal equations restricted to the columns in `idx`, solved by Gaussian
/// elimination with partial pivoting on a column-scaled system.
fn solve_subset(obs: &[Obs], idx: &[usize]) -> Option<Vec<f64>> {
    let m = idx.len();
    // Scale columns so that features of very different magnitude stay well conditioned.
    let scale: Vec<f64> = idx
        .iter()
        .map(|&i| {
            let s = obs.iter().map(|o| o.x[i].abs()).fold(0.0, f64::max);
            if s > 0.0 {
                s
            } else {
                1.0
            }
        })
        .collect();
    let mut a = vec![vec![0.0; m + 1]; m];
    for o in obs {
        for r in 0..m {
            let xr = o.x[idx[r]] / scale[r];
            for c in 0..m {
                a[r][c] += o.w * xr * o.x[idx[c]] / scale[c];
            }
            a[r][m] += o.w * xr * o.y;
        }
    }
    for col in 0..m {
        let piv = (col..m).max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))?;
        if a[piv][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, piv);
        let pivot = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot[col];
                for (v, p) in row.iter_mut().zip(&pivot).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    Some((0..m).map(|r| a[r][m] / a[r][r] / scale[r]).collect())
}

/// Median of a slice (NaN-free); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_exact_coefficients() {
        let obs: Vec<Obs> = (1..20)
            .map(|i| {
                let x = i as f64;
                Obs { x: vec![1.0, x, x * x], y: 3.0 + 2.0 * x + 0.5 * x * x, w: 1.0 }
            })
            .collect();
        let c = nnls(&obs, 3).unwrap();
        assert!((c[0] - 3.0).abs() < 1e-6 && (c[1] - 2.0).abs() < 1e-6 && (c[2] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn clamps_negative_coefficients_to_zero() {
        // y = 5 - x would need a negative slope; the best non-negative fit has slope 0.
        let obs: Vec<Obs> = (0..10).map(|i| Obs { x: vec![1.0, i as f64], y: 5.0 - i as f64, w: 1.0 }).collect();
        let c = nnls(&obs, 2).unwrap();
        assert_eq!(c[1], 0.0);
        assert!((c[0] - 0.5).abs() < 1e-9);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
