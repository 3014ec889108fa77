//! Choosing the router's settings on the training split alone: k-fold cross-validation with
//! folds by split unit (a whole MMLU subject, or one prompt), scored by the ROC AUC of the
//! held-out fold, as the evaluation split will hold out whole subjects. The evaluation split is
//! never looked at.

use super::data::{unit_hash, Row};
use super::eval::auc;
use super::model::{RouterModel, TrainParams};

/// The settings tried: word n-grams or shape features only, with or without the prompts'
/// embeddings (when the rows have them), weak or strong regularisation.
pub fn grid(embedded: bool) -> Vec<TrainParams> {
    let base = TrainParams::default();
    let mut g = Vec::new();
    for embedding in if embedded { vec![false, true] } else { vec![false] } {
        for buckets in [1, base.buckets] {
            for l2 in [1e-5, 1e-3, 1e-2] {
                g.push(TrainParams { buckets, l2, embedding, ..base });
            }
        }
    }
    g
}

fn fold_of(r: &Row, folds: usize) -> usize {
    ((unit_hash(&r.unit, 99) * folds as f64) as usize).min(folds - 1)
}

/// For each fold by unit: its rows' indices and the estimates of a router trained on the others.
fn folded(rows: &[Row], params: TrainParams, folds: usize) -> Vec<(Vec<usize>, Vec<f64>)> {
    (0..folds)
        .map(|k| {
            let train: Vec<_> = rows.iter().filter(|r| fold_of(r, folds) != k).map(Row::example).collect();
            let idx: Vec<usize> = (0..rows.len()).filter(|&i| fold_of(&rows[i], folds) == k).collect();
            let test: Vec<Row> = idx.iter().map(|&i| rows[i].clone()).collect();
            let m = RouterModel::train(&train, params, vec![]);
            (idx, super::eval::estimates(&m, &test))
        })
        .collect()
}

/// Mean held-out AUC of `params` over `folds` folds by unit.
pub fn cv_auc(rows: &[Row], params: TrainParams, folds: usize) -> f64 {
    let total: f64 = folded(rows, params, folds)
        .into_iter()
        .map(|(idx, scores)| auc(&idx.iter().map(|&i| rows[i].clone()).collect::<Vec<_>>(), &scores))
        .sum();
    total / folds as f64
}

/// Each row's estimate from a router trained (with `params`) on the other folds: what a cut-off
/// is chosen on, since a router's estimates on its own training prompts are too confident.
pub fn out_of_fold(rows: &[Row], params: TrainParams, folds: usize) -> Vec<f64> {
    let mut out = vec![0.0; rows.len()];
    for (idx, scores) in folded(rows, params, folds) {
        idx.into_iter().zip(scores).for_each(|(i, s)| out[i] = s);
    }
    out
}

/// The grid's best settings by cross-validated AUC, with every setting's score.
pub fn choose(rows: &[Row], folds: usize) -> (TrainParams, Vec<(TrainParams, f64)>) {
    let embedded = rows.first().is_some_and(|r| !r.embedding.is_empty());
    let scored: Vec<(TrainParams, f64)> = grid(embedded).into_iter().map(|p| (p, cv_auc(rows, p, folds))).collect();
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
                Row { benchmark: "t".into(), unit: format!("t/{i}"), text, weak: easy, strong: true, embedding: vec![] }
            })
            .collect();
        let (best, scored) = choose(&rows, 3);
        assert_eq!(scored.len(), grid(false).len());
        assert!(best.buckets > 1, "{best:?}");
        assert!(scored.iter().any(|(_, auc)| *auc > 0.95), "{scored:?}");
    }
}
