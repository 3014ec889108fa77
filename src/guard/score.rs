//! The extraction score: a logistic model over the signals, its reasons, and how its weights are
//! fitted (by `tollgate guard eval`, on the half of the evaluation's tenants it tunes on).

use super::signals::Features;
use serde::Serialize;

/// Weights of the logistic score, one per signal in [`Features::NAMES`] order, and a bias.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    pub bias: f64,
    pub w: [f64; 7],
}

impl Default for Weights {
    /// The weights `tollgate guard eval` fitted on its tuning half (seed 1; docs/extraction.md),
    /// rounded to three places.
    fn default() -> Self {
        Self { bias: -0.840, w: [2.350, 6.243, -2.087, 5.080, -6.442, 0.109, 1.028] }
    }
}

/// The score at and above which a model's extraction policy acts unless it sets its own: the
/// threshold `tollgate guard eval` chose with these weights on its tuning half (0.7926, seed 1),
/// rounded down.
pub const DEFAULT_THRESHOLD: f64 = 0.79;

/// A subject's standing: its score, why, and the signals it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// In [0, 1]; 0 until the subject has made the minimum number of requests.
    pub score: f64,
    /// The signals that raised the score most (each adding at least a fifth of the largest
    /// push), strongest first.
    pub reasons: Vec<&'static str>,
    pub features: Features,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Weights {
    fn logit(&self, x: &[f64; 7]) -> f64 {
        self.bias + self.w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
    }

    /// The subject's standing given its signals; scored only from `min_requests` on.
    pub fn snapshot(&self, f: Features, min_requests: usize) -> Snapshot {
        if f.requests < min_requests.max(1) {
            return Snapshot { score: 0.0, reasons: Vec::new(), features: f };
        }
        let x = f.levels();
        let mut pushes: Vec<(f64, &'static str)> =
            self.w.iter().zip(x).zip(Features::NAMES).map(|((w, x), n)| (w * x, n)).filter(|p| p.0 > 0.0).collect();
        pushes.sort_by(|a, b| b.0.total_cmp(&a.0));
        let top = pushes.first().map_or(0.0, |p| p.0);
        let reasons = pushes.iter().take_while(|p| p.0 >= top / 5.0).take(4).map(|p| p.1).collect();
        Snapshot { score: sigmoid(self.logit(&x)), reasons, features: f }
    }

    /// Fits weights by gradient descent on the log loss over weighted samples (signals, whether
    /// it is a harvest, weight), with an L2 penalty `l2` on the signal weights.
    pub fn fit(samples: &[(Features, bool, f64)], l2: f64) -> Self {
        let mut m = Self { bias: 0.0, w: [0.0; 7] };
        let total: f64 = samples.iter().map(|s| s.2).sum::<f64>().max(1e-12);
        let xs: Vec<[f64; 7]> = samples.iter().map(|s| s.0.levels()).collect();
        for _ in 0..4000 {
            let (mut gb, mut gw) = (0.0, [0.0; 7]);
            for (x, s) in xs.iter().zip(samples) {
                let err = (sigmoid(m.logit(x)) - f64::from(u8::from(s.1))) * s.2 / total;
                gb += err;
                for (g, xi) in gw.iter_mut().zip(x) {
                    *g += err * xi;
                }
            }
            m.bias -= 1.0 * gb;
            for (w, g) in m.w.iter_mut().zip(gw) {
                *w -= 1.0 * (g + l2 * *w);
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(steady: f64, long_outputs: f64) -> Features {
        Features { requests: 50, steady, long_outputs, ..Features::default() }
    }

    #[test]
    fn nothing_is_scored_before_the_minimum_and_reasons_name_what_pushed() {
        let w = Weights { bias: -4.0, w: [4.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0] };
        assert_eq!(w.snapshot(Features { requests: 5, steady: 1.0, ..Features::default() }, 10).score, 0.0);
        let s = w.snapshot(f(1.0, 0.1), 10);
        assert!((s.score - 0.5).abs() > 0.0 && s.score > 0.5, "{s:?}");
        assert_eq!(s.reasons, vec!["steady"]);
        assert_eq!(w.snapshot(f(1.0, 1.0), 10).reasons, vec!["steady", "long_outputs"]);
    }

    #[test]
    fn fitting_separates_what_is_separable_and_weighs_the_signal_that_does_it() {
        let mut samples = Vec::new();
        for i in 0..50 {
            let j = f64::from(i) / 50.0;
            samples.push((f(j, 0.9), true, 1.0));
            samples.push((f(j, 0.1), false, 1.0));
        }
        let w = Weights::fit(&samples, 1e-4);
        assert!(w.w[1] > 2.0 && w.w[1] > w.w[0].abs() * 4.0, "{w:?}");
        assert!(w.snapshot(f(0.5, 0.9), 1).score > 0.8 && w.snapshot(f(0.5, 0.1), 1).score < 0.2);
    }
}
