//! Router evaluation: route the share of prompts the router trusts least to the stronger model
//! and measure quality (accuracy of the answers served) against the share of strong-model calls,
//! beside random routing (a straight line between the two models) and the oracle (strong only
//! where only the strong model is right). The headline is the share of strong calls saved while
//! keeping 95% of the strong model's quality.

use super::data::Row;
use serde::Serialize;

/// Quality kept, as a share of the strong model's, at which savings are reported.
pub const TARGET: f64 = 0.95;

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub strong_share: f64,
    pub quality: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub benchmark: String,
    pub prompts: usize,
    pub weak_accuracy: f64,
    pub strong_accuracy: f64,
    /// Share of strong-model calls saved at 95% of strong quality: router, random, oracle.
    pub saved_at_95_router: f64,
    pub saved_at_95_random: f64,
    pub saved_at_95_oracle: f64,
    /// Area under the ROC curve of the router's estimate for "the cheaper model is as good".
    pub auc: f64,
    /// The router's quality curve, every 5% of strong calls.
    pub curve: Vec<Point>,
    /// What a cut-off chosen on the training prompts gives here (`saved_at_95_router` reads the
    /// cut-off off these prompts' own labels; this does not).
    pub operating_point: Option<OperatingPoint>,
}

/// A cut-off on the router's estimate chosen on training prompts, applied to held-out ones.
#[derive(Debug, Clone, Serialize)]
pub struct OperatingPoint {
    /// Prompts whose estimate is at most this go to the strong model.
    pub threshold: f64,
    /// Right answers served as a share of the strong model's, and the share of strong calls
    /// saved, on the held-out prompts, each with its 95% bootstrap interval (1,000 resamples).
    pub quality_share: f64,
    pub quality_ci: (f64, f64),
    pub saved: f64,
    pub saved_ci: (f64, f64),
}

/// The least cut-off on `scores` at which `rows` keep [`TARGET`] of the strong model's quality
/// (negative infinity: the cheaper model alone keeps it; infinity: only all-strong does).
pub fn choose_threshold(rows: &[Row], scores: &[f64]) -> f64 {
    let target = TARGET * rows.iter().filter(|r| r.strong).count() as f64;
    let mut right = rows.iter().filter(|r| r.weak).count() as f64;
    if right >= target {
        return f64::NEG_INFINITY;
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    for i in order {
        right += f64::from(u8::from(rows[i].strong)) - f64::from(u8::from(rows[i].weak));
        if right >= target {
            return scores[i];
        }
    }
    f64::INFINITY
}

/// Quality share and strong calls saved when prompts at or below `threshold` go to the strong
/// model, over the prompts `idx` of `rows`.
fn at_threshold(rows: &[Row], scores: &[f64], idx: &[usize], threshold: f64) -> (f64, f64) {
    let (mut right, mut strong_right, mut routed) = (0usize, 0usize, 0usize);
    for &i in idx {
        let to_strong = scores[i] <= threshold;
        routed += usize::from(to_strong);
        right += usize::from(if to_strong { rows[i].strong } else { rows[i].weak });
        strong_right += usize::from(rows[i].strong);
    }
    (right as f64 / strong_right.max(1) as f64, 1.0 - routed as f64 / idx.len().max(1) as f64)
}

/// The held-out figures of a cut-off chosen elsewhere, with bootstrap intervals.
pub fn operating_point(rows: &[Row], scores: &[f64], threshold: f64) -> OperatingPoint {
    let all: Vec<usize> = (0..rows.len()).collect();
    let (quality_share, saved) = at_threshold(rows, scores, &all, threshold);
    let (quality_ci, saved_ci) = bootstrap95(&all, 11, |sample| at_threshold(rows, scores, sample, threshold));
    OperatingPoint { threshold, quality_share, quality_ci, saved, saved_ci }
}

/// 95% intervals of two statistics of `idx`, from 1,000 resamples of it with replacement (seeded).
pub fn bootstrap95(idx: &[usize], seed: u64, stat: impl Fn(&[usize]) -> (f64, f64)) -> ((f64, f64), (f64, f64)) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut a, mut b) = (Vec::with_capacity(1000), Vec::with_capacity(1000));
    for _ in 0..1000 {
        let sample: Vec<usize> = (0..idx.len()).map(|_| idx[rng.random_range(0..idx.len().max(1))]).collect();
        let (x, y) = stat(&sample);
        a.push(x);
        b.push(y);
    }
    let interval = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[25], v[974])
    };
    (interval(a), interval(b))
}

/// Routes prompts in increasing order of `scores` (the router's confidence in the cheaper model)
/// to the strong model; returns, for k = 0..=n strong calls, the number of right answers.
fn right_answers(rows: &[Row], scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut right = rows.iter().filter(|r| r.weak).count();
    let mut out = vec![right];
    for &i in &order {
        right = right + rows[i].strong as usize - rows[i].weak as usize;
        out.push(right);
    }
    out
}

/// Least share of strong calls whose quality reaches `target` right answers.
fn share_needed(right: &[usize], target: f64) -> f64 {
    let n = right.len() - 1;
    right.iter().position(|&r| r as f64 >= target).map(|k| k as f64 / n.max(1) as f64).unwrap_or(1.0)
}

/// The router's estimates for `rows`, with their embeddings when they have them; a row it has no
/// estimate for (it needs an embedding the row lacks) scores 0, so it goes to the strong model,
/// as in the gateway.
pub fn estimates(m: &super::model::RouterModel, rows: &[Row]) -> Vec<f64> {
    rows.iter()
        .map(|r| m.p_weak_as_good(&r.text, (!r.embedding.is_empty()).then_some(&r.embedding[..])).unwrap_or(0.0))
        .collect()
}

pub fn evaluate(benchmark: &str, rows: &[Row], scores: &[f64]) -> Report {
    let n = rows.len().max(1) as f64;
    let weak = rows.iter().filter(|r| r.weak).count() as f64;
    let strong = rows.iter().filter(|r| r.strong).count() as f64;
    let target = TARGET * strong;
    let router = right_answers(rows, scores);
    // The oracle sends first exactly the prompts only the strong model gets right.
    let oracle_scores: Vec<f64> = rows.iter().map(|r| if r.strong && !r.weak { 0.0 } else { 1.0 }).collect();
    let oracle = right_answers(rows, &oracle_scores);
    let random_share = if strong > weak { ((target - weak) / (strong - weak)).clamp(0.0, 1.0) } else { 0.0 };
    let curve = (0..=20)
        .map(|i| {
            let k = (i as f64 / 20.0 * rows.len() as f64).round() as usize;
            Point { strong_share: k as f64 / n, quality: router[k] as f64 / n }
        })
        .collect();
    Report {
        benchmark: benchmark.into(),
        prompts: rows.len(),
        weak_accuracy: weak / n,
        strong_accuracy: strong / n,
        saved_at_95_router: 1.0 - share_needed(&router, target),
        saved_at_95_random: 1.0 - random_share,
        saved_at_95_oracle: 1.0 - share_needed(&oracle, target),
        auc: auc(rows, scores),
        curve,
        operating_point: None,
    }
}

/// ROC AUC of `scores` for the label "the cheaper model is as good" (ties count half).
pub fn auc(rows: &[Row], scores: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..rows.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let label = |i: usize| rows[i].weak || !rows[i].strong;
    let pos = idx.iter().filter(|&&i| label(i)).count() as f64;
    let neg = rows.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    // Sum of positive ranks (average rank for ties), Mann-Whitney.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += idx[i..=j].iter().filter(|&&k| label(k)).count() as f64 * avg;
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(weak: bool, strong: bool) -> Row {
        Row { benchmark: "t".into(), unit: String::new(), text: String::new(), weak, strong, embedding: vec![] }
    }

    #[test]
    fn oracle_random_and_a_perfect_router() {
        // 10 prompts: 6 both right, 2 only strong right, 2 both wrong. Strong 8/10, weak 6/10.
        let mut rows = vec![row(true, true); 6];
        rows.extend([row(false, true), row(false, true), row(false, false), row(false, false)]);
        let perfect: Vec<f64> = rows.iter().map(|r| if r.strong && !r.weak { 0.0 } else { 1.0 }).collect();
        let r = evaluate("t", &rows, &perfect);
        // 95% of 8 = 7.6 right answers: the oracle needs both strong-only prompts (20% strong).
        assert!((r.saved_at_95_oracle - 0.8).abs() < 1e-9);
        assert!((r.saved_at_95_router - 0.8).abs() < 1e-9);
        // Random: (7.6 - 6) / (8 - 6) = 80% strong calls, 20% saved.
        assert!((r.saved_at_95_random - 0.2).abs() < 1e-9);
        assert!((r.auc - 1.0).abs() < 1e-9);
        // The worst router sends the strong-only prompts last: it needs every call.
        let worst: Vec<f64> = perfect.iter().map(|s| 1.0 - s).collect();
        let w = evaluate("t", &rows, &worst);
        assert!(w.saved_at_95_router < 0.05 && w.auc < 0.01);
        assert_eq!(w.curve.len(), 21);
    }

    #[test]
    fn a_cut_off_chosen_on_one_set_is_measured_on_another() {
        let mut rows = vec![row(true, true); 6];
        rows.extend([row(false, true), row(false, true), row(false, false), row(false, false)]);
        let perfect: Vec<f64> = rows.iter().map(|r| if r.strong && !r.weak { 0.0 } else { 1.0 }).collect();
        // Both strong-only prompts must go strong: the cut-off is their estimate.
        assert_eq!(choose_threshold(&rows, &perfect), 0.0);
        let op = operating_point(&rows, &perfect, 0.0);
        assert!((op.quality_share - 1.0).abs() < 1e-9 && (op.saved - 0.8).abs() < 1e-9);
        assert!(op.saved_ci.0 <= 0.8 && 0.8 <= op.saved_ci.1);
        // The same cut-off on prompts the router ranks backwards keeps only the cheaper model's
        // answers (75% of the strong quality) and saves every call but the two it sends.
        let backwards: Vec<f64> = perfect.iter().map(|s| 1.0 - s).collect();
        let op = operating_point(&rows, &backwards, 0.0);
        assert!((op.quality_share - 0.75).abs() < 1e-9 && (op.saved - 0.2).abs() < 1e-9);
        // When the cheaper model alone keeps 95%, nothing goes strong.
        assert_eq!(choose_threshold(&vec![row(true, true); 4], &[0.5; 4]), f64::NEG_INFINITY);
    }
}
