//! The router's model: a logistic regression over [`super::features`] estimating the probability
//! that the cheaper model's answer is as good as the stronger one's (the cheaper one is right, or
//! the stronger one is wrong too). Trained by `tollgate router train`, saved as JSON, loaded by
//! the gateway, whose admission uses the estimate as the fallback's quality. Trained with
//! sentence embeddings (`router train --model-dir`), it also weighs the prompt's embedding; the
//! gateway then embeds each routed prompt with the same model.

use super::features::{extract, Features, DENSE};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FORMAT: &str = "tollgate-router/1";

/// One labelled prompt.
#[derive(Debug, Clone)]
pub struct Example {
    pub text: String,
    /// Whether the cheaper model's answer is as good as the stronger one's.
    pub weak_as_good: bool,
    /// The prompt's sentence embedding (unit length), or empty when trained without one.
    pub embedding: Vec<f32>,
}

/// Weights over the prompt's sentence embedding, and which model made the embeddings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmbeddingWeights {
    /// The embeddings model's name (its folder's), for the record and the gateway's check.
    pub model: String,
    pub weights: Vec<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouterModel {
    pub format: String,
    /// Hash buckets of the word n-gram features.
    pub buckets: u32,
    pub bias: f32,
    /// Weights of the dense features, named in `dense_names`.
    pub dense: Vec<f32>,
    pub dense_names: Vec<String>,
    /// Non-zero weights of the sparse features, as (bucket, weight).
    pub sparse: Vec<(u32, f32)>,
    /// Weights over the prompt's embedding, when trained with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingWeights>,
    /// What it was trained on, for the record.
    pub trained_on: TrainingRecord,
    #[serde(skip)]
    dense_sparse: Vec<f32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainingRecord {
    pub files: Vec<String>,
    pub examples: usize,
    /// Share of the training examples where the cheaper model was as good.
    pub base_rate: f64,
    pub epochs: usize,
    pub l2: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("reading router model {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("router model {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Training settings (fixed defaults; nothing is tuned on the evaluation split).
#[derive(Debug, Clone, Copy)]
pub struct TrainParams {
    pub buckets: u32,
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    pub seed: u64,
    /// Whether to weigh the examples' embeddings (when they have them).
    pub embedding: bool,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self { buckets: 1 << 16, epochs: 15, learning_rate: 0.2, l2: 1e-5, seed: 7, embedding: false }
    }
}

/// An embedding's coordinates scaled so that each is of order one, like the other features.
fn scaled(embedding: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let k = (embedding.len() as f32).sqrt();
    embedding.iter().map(move |x| x * k)
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

impl RouterModel {
    fn score(&self, f: &Features) -> f32 {
        let mut z = self.bias;
        z += f.dense.iter().zip(&self.dense).map(|(x, w)| x * w).sum::<f32>();
        z += f.sparse.iter().map(|(i, x)| x * self.dense_sparse[*i as usize]).sum::<f32>();
        z
    }

    /// The embeddings model this router needs, if any.
    pub fn embeddings_model(&self) -> Option<&str> {
        self.embedding.as_ref().map(|e| e.model.as_str())
    }

    /// The probability that the cheaper model's answer to `text` is as good, given the prompt's
    /// embedding when the router weighs one. `None` when it does and `embedding` is missing or
    /// of the wrong length: the caller then has no estimate (and routes nothing down).
    pub fn p_weak_as_good(&self, text: &str, embedding: Option<&[f32]>) -> Option<f64> {
        let mut z = self.score(&extract(text, self.buckets));
        if let Some(e) = &self.embedding {
            let v = embedding.filter(|v| v.len() == e.weights.len())?;
            z += scaled(v).zip(&e.weights).map(|(x, w)| x * w).sum::<f32>();
        }
        Some(f64::from(sigmoid(z)))
    }

    /// Logistic regression by AdaGrad over shuffled examples.
    pub fn train(examples: &[Example], params: TrainParams, files: Vec<String>) -> Self {
        Self::train_with(examples, params, files, "")
    }

    /// As [`Self::train`], naming the embeddings model when `params.embedding` is set.
    pub fn train_with(examples: &[Example], params: TrainParams, files: Vec<String>, embeddings_model: &str) -> Self {
        let feats: Vec<Features> = examples.iter().map(|e| extract(&e.text, params.buckets)).collect();
        let dim = if params.embedding { examples.first().map_or(0, |e| e.embedding.len()) } else { 0 };
        let mut ew = vec![0f32; dim];
        let mut eg2 = vec![1e-6f32; dim];
        let base_rate = examples.iter().filter(|e| e.weak_as_good).count() as f64 / examples.len().max(1) as f64;
        let mut w = vec![0f32; params.buckets as usize];
        let mut g2 = vec![1e-6f32; params.buckets as usize];
        let mut dense = [0f32; 6];
        let mut dg2 = [1e-6f32; 6];
        // Start at the base rate's log-odds.
        let mut bias = (base_rate.clamp(1e-3, 1.0 - 1e-3) / (1.0 - base_rate.clamp(1e-3, 1.0 - 1e-3))).ln() as f32;
        let mut bg2 = 1e-6f32;
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
        let lr = params.learning_rate;
        for _ in 0..params.epochs {
            order.shuffle(&mut rng);
            for &i in &order {
                let f = &feats[i];
                let mut z = bias;
                z += f.dense.iter().zip(&dense).map(|(x, w)| x * w).sum::<f32>();
                z += f.sparse.iter().map(|(j, x)| x * w[*j as usize]).sum::<f32>();
                let emb = &examples[i].embedding;
                if dim > 0 && emb.len() == dim {
                    z += scaled(emb).zip(&ew).map(|(x, w)| x * w).sum::<f32>();
                }
                let err = sigmoid(z) - if examples[i].weak_as_good { 1.0 } else { 0.0 };
                bg2 += err * err;
                bias -= lr * err / bg2.sqrt();
                for (k, x) in f.dense.iter().enumerate() {
                    let g = err * x + params.l2 * dense[k];
                    dg2[k] += g * g;
                    dense[k] -= lr * g / dg2[k].sqrt();
                }
                for (j, x) in &f.sparse {
                    let j = *j as usize;
                    let g = err * x + params.l2 * w[j];
                    g2[j] += g * g;
                    w[j] -= lr * g / g2[j].sqrt();
                }
                if dim > 0 && emb.len() == dim {
                    for (k, x) in scaled(emb).enumerate() {
                        let g = err * x + params.l2 * ew[k];
                        eg2[k] += g * g;
                        ew[k] -= lr * g / eg2[k].sqrt();
                    }
                }
            }
        }
        let sparse = w.iter().enumerate().filter(|(_, x)| **x != 0.0).map(|(i, x)| (i as u32, *x)).collect();
        let mut m = Self {
            format: FORMAT.into(),
            buckets: params.buckets,
            bias,
            dense: dense.to_vec(),
            dense_names: DENSE.iter().map(|s| s.to_string()).collect(),
            sparse,
            embedding: (dim > 0).then(|| EmbeddingWeights { model: embeddings_model.to_string(), weights: ew }),
            trained_on: TrainingRecord {
                files,
                examples: examples.len(),
                base_rate,
                epochs: params.epochs,
                l2: f64::from(params.l2),
            },
            dense_sparse: Vec::new(),
        };
        m.expand();
        m
    }

    fn expand(&mut self) {
        self.dense_sparse = vec![0.0; self.buckets as usize];
        for (i, w) in &self.sparse {
            self.dense_sparse[*i as usize] = *w;
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Io { path: p.clone(), source: e })?;
        let mut m: RouterModel =
            serde_json::from_str(&text).map_err(|e| ModelError::Invalid { path: p.clone(), message: e.to_string() })?;
        let bad = |message: String| Err(ModelError::Invalid { path: p.clone(), message });
        if m.format != FORMAT {
            return bad(format!("format `{}`, expected `{FORMAT}`", m.format));
        }
        if m.buckets == 0 || m.buckets > 1 << 24 || m.dense.len() != DENSE.len() {
            return bad("bucket count or dense weights do not match this tollgate".into());
        }
        if m.sparse.iter().any(|(i, w)| *i >= m.buckets || !w.is_finite())
            || !m.bias.is_finite()
            || m.dense.iter().any(|w| !w.is_finite())
            || m.embedding.as_ref().is_some_and(|e| e.weights.is_empty() || e.weights.iter().any(|w| !w.is_finite()))
        {
            return bad("a weight is out of range or not finite".into());
        }
        m.expand();
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<Example> {
        // The cheaper model is as good on arithmetic, not on proofs.
        (0..200)
            .map(|i| {
                if i % 2 == 0 {
                    Example { text: format!("add {i} and {} please", i + 1), weak_as_good: true, embedding: vec![] }
                } else {
                    Example { text: format!("prove theorem {i} rigorously"), weak_as_good: false, embedding: vec![] }
                }
            })
            .collect()
    }

    #[test]
    fn learns_separable_data_and_round_trips_through_its_file() {
        let m = RouterModel::train(&examples(), TrainParams::default(), vec!["synthetic".into()]);
        let p = |m: &RouterModel, t: &str| m.p_weak_as_good(t, None).unwrap();
        assert!(p(&m, "add 3 and 4 please") > 0.9);
        assert!(p(&m, "prove theorem 5 rigorously") < 0.1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.json");
        m.save(&path).unwrap();
        let back = RouterModel::load(&path).unwrap();
        assert_eq!(back, m);
        for t in ["add 1 and 2 please", "prove it", "something else entirely"] {
            assert_eq!(p(&back, t), p(&m, t));
        }
        std::fs::write(&path, r#"{"format":"other"}"#).unwrap();
        assert!(RouterModel::load(&path).is_err());
        let mut broken = m.clone();
        broken.sparse.push((m.buckets, 1.0));
        broken.save(&path).unwrap();
        assert!(matches!(RouterModel::load(&path), Err(ModelError::Invalid { .. })));
    }

    #[test]
    fn weighs_the_embedding_and_needs_it_once_trained_with_it() {
        // The same text throughout: only the embedding says which prompts are easy.
        let ex: Vec<Example> = (0..200)
            .map(|i| {
                let easy = i % 2 == 0;
                let embedding = if easy { vec![0.6, 0.8, 0.0] } else { vec![0.0, 0.6, 0.8] };
                Example { text: "the same question".into(), weak_as_good: easy, embedding }
            })
            .collect();
        let params = TrainParams { embedding: true, ..TrainParams::default() };
        let m = RouterModel::train_with(&ex, params, vec![], "minilm");
        assert_eq!(m.embeddings_model(), Some("minilm"));
        let easy = m.p_weak_as_good("the same question", Some(&[0.6, 0.8, 0.0])).unwrap();
        let hard = m.p_weak_as_good("the same question", Some(&[0.0, 0.6, 0.8])).unwrap();
        assert!(easy > 0.9 && hard < 0.1, "{easy} {hard}");
        assert_eq!(m.p_weak_as_good("the same question", None), None);
        assert_eq!(m.p_weak_as_good("the same question", Some(&[1.0, 0.0])), None);
        // Without the flag the embeddings are ignored and the text alone cannot tell.
        let plain = RouterModel::train(&ex, TrainParams::default(), vec![]);
        assert!(plain.embedding.is_none());
        assert!((plain.p_weak_as_good("the same question", None).unwrap() - 0.5).abs() < 0.1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.json");
        m.save(&path).unwrap();
        assert_eq!(RouterModel::load(&path).unwrap(), m);
    }
}
