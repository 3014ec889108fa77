//! Choosing the router's settings on the training split alone: k-fold cross-validation with
//! folds by split unit (a whole MMLU subject, or one prompt), scored by the ROC AUC of the
//! held-out fold, as the evaluation split will hold out whole subjects. The evaluation split is
//! never looked at.

use super::data::{unit_hash, Row};
use super::eval::auc;
use super::model::{RouterModel, TrainParams};

/// The settings tried: word n-grams or shape features only, weak or strong regularisation.
pub fn grid() -> Vec<TrainParams> {
    let base = TrainParams::default();
    let mut g = Vec::new();
    for buckets in [1, base.buckets] {
        for l2 in [1e-5, 1e-3, 1e-2] {
            g.push(TrainParams { buckets, l2, ..base });
        }
    }
    g
}

/// Mean held-out AUC of `params` over `folds` folds by unit.
pub fn cv_auc(rows: &[Row], params: TrainParams, folds: usize) -> f64 {
    let fold = |r: &Row| ((unit_hash(&r.unit, 99) * folds as f64) as usize).min(folds - 1);
    let mut total = 0.0;
    for k in 0..folds {
        let train: Vec<_> = rows.iter().filter(|r| fold(r) != k).map(Row::example).collect();
        let test: Vec<Row> = rows.iter().filter(|r| fold(r) == k).cloned().collect();
        let m = RouterModel::train(&train, params, vec![]);
        let scores: Vec<f64> = test.iter().map(|r| m.p_weak_as_good(&r.text)).collect();
        total += auc(&test, &scores);
    }
    total / folds as f64
}

/// The grid's best settings by cross-validated AUC, with every setting's score.
pub fn choose(rows: &[Row], folds: usize) -> (TrainParams, Vec<(TrainParams, f64)>) {
    let scored: Vec<(TrainParams, f64)> = grid().into_iter().map(|p| (p, cv_auc(rows, p, folds))).collect();
    let best = scored.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|s| s.0).unwrap_or_default();
    (best, scored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_validation_finds_the_words_that_matter() {
        let rows: Vec<Row> = (0..300)
            .map(|i| {
                let easy = i % 2 == 0;
                let text = if easy { format!("add {i} and {}", i + 1) } else { format!("prove theorem {i}") };
                // Length alone does not separate them: only the words do.
                Row { benchmark: "t".into(), unit: format!("t/{i}"), text, weak: easy, strong: true }
            })
            .collect();
        let (best, scored) = choose(&rows, 3);
        assert_eq!(scored.len(), grid().len());
        assert!(best.buckets > 1, "{best:?}");
        assert!(scored.iter().any(|(_, auc)| *auc > 0.95), "{scored:?}");
    }
}
