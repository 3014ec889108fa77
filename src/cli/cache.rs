//! `tollgate cache eval`: the semantic cache's precision and hit rate per similarity threshold,
//! measured on labelled question pairs (Quora) with a real embeddings model.

use crate::cache::embed::Embedder;
use crate::cache::semantic::dot;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum CacheCommand {
    /// Precision and hit rate of the semantic cache per similarity threshold on labelled pairs.
    Eval {
        /// JSONL of {"text_a", "text_b", "label"} (label 1: the same question).
        #[arg(long)]
        pairs: PathBuf,
        /// Base URL of an OpenAI-compatible embeddings server.
        #[arg(long)]
        embeddings: String,
        #[arg(long, default_value = "all-minilm-l6-v2")]
        model: String,
        /// Use only the first N pairs.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// One threshold's figures.
#[derive(Debug, Serialize)]
pub struct ThresholdRow {
    pub threshold: f32,
    /// Pairwise: a pair is a hit when its two texts are at least this similar.
    pub pair_hits: usize,
    pub pair_precision: f64,
    /// Share of same-question pairs that hit (recall).
    pub pair_hit_rate: f64,
    /// As a cache: every `text_a` stored, each `text_b` looked up; a hit is the nearest stored
    /// text at or above the threshold, correct only if it is the pair's own (labelled 1).
    pub cache_hits: usize,
    pub cache_precision: f64,
    /// Hits over lookups.
    pub cache_hit_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct CacheEval {
    pub pairs: usize,
    pub positives: usize,
    pub file: String,
    pub embeddings_model: String,
    pub thresholds: Vec<ThresholdRow>,
    /// The least threshold with cache precision >= 95%.
    pub recommended_threshold: Option<f32>,
}

#[derive(serde::Deserialize)]
struct Pair {
    text_a: String,
    text_b: String,
    label: u8,
}

pub fn run(cmd: CacheCommand) -> anyhow::Result<()> {
    let CacheCommand::Eval { pairs, embeddings, model, limit, json } = cmd;
    let text = std::fs::read_to_string(&pairs)?;
    let mut ps: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", pairs.display()))?;
    if let Some(n) = limit {
        ps.truncate(n);
    }
    let embedder =
        Embedder::new(&embeddings, &model, std::env::var("TOLLGATE_EMBEDDINGS_API_KEY").ok(), Duration::from_secs(120));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let embed_all = |texts: Vec<&str>| -> anyhow::Result<Vec<Vec<f32>>> {
        rt.block_on(async {
            let mut out = Vec::with_capacity(texts.len());
            for (i, chunk) in texts.chunks(64).enumerate() {
                out.extend(embedder.embed(chunk).await?);
                if i % 50 == 0 {
                    eprint!("\rembedded {}/{}", out.len(), texts.len());
                }
            }
            eprintln!("\rembedded {}/{}", out.len(), texts.len());
            Ok(out)
        })
    };
    let a = embed_all(ps.iter().map(|p| p.text_a.as_str()).collect())?;
    let b = embed_all(ps.iter().map(|p| p.text_b.as_str()).collect())?;
    let pair_sim: Vec<f32> = a.iter().zip(&b).map(|(x, y)| dot(x, y)).collect();
    // Nearest stored text_a for each text_b (brute force, as the gateway's index does), on every core.
    let nearest = nearest_all(&a, &b);
    let positives = ps.iter().filter(|p| p.label == 1).count();
    let thresholds: Vec<ThresholdRow> = (0..=20)
        .map(|i| 0.80 + 0.01 * i as f32)
        .map(|t| {
            let hits: Vec<usize> = (0..ps.len()).filter(|&i| pair_sim[i] >= t).collect();
            let right = hits.iter().filter(|&&i| ps[i].label == 1).count();
            let cache_hits: Vec<usize> = (0..ps.len()).filter(|&i| nearest[i].1 >= t).collect();
            // Right only for a same-question pair whose own text (or an identical one) came back.
            let cache_right = cache_hits
                .iter()
                .filter(|&&i| ps[i].label == 1 && (nearest[i].0 == i || ps[nearest[i].0].text_a == ps[i].text_a))
                .count();
            ThresholdRow {
                threshold: (t * 1000.0).round() / 1000.0,
                pair_hits: hits.len(),
                pair_precision: right as f64 / hits.len().max(1) as f64,
                pair_hit_rate: right as f64 / positives.max(1) as f64,
                cache_hits: cache_hits.len(),
                cache_precision: cache_right as f64 / cache_hits.len().max(1) as f64,
                cache_hit_rate: cache_hits.len() as f64 / ps.len().max(1) as f64,
            }
        })
        .collect();
    let recommended = thresholds.iter().find(|t| t.cache_hits > 0 && t.cache_precision >= 0.95).map(|t| t.threshold);
    println!("threshold  pairs: hits  precision  hit rate (of same)   cache: hits  precision  hit rate");
    for t in &thresholds {
        println!(
            "{:>9.3}  {:>11}  {:>8.1}%  {:>17.1}%  {:>12}  {:>8.1}%  {:>7.1}%",
            t.threshold,
            t.pair_hits,
            t.pair_precision * 100.0,
            t.pair_hit_rate * 100.0,
            t.cache_hits,
            t.cache_precision * 100.0,
            t.cache_hit_rate * 100.0
        );
    }
    match recommended {
        Some(t) => println!("least threshold with >= 95% cache precision: {t}"),
        None => println!("no threshold reached 95% cache precision"),
    }
    let report = CacheEval {
        pairs: ps.len(),
        positives,
        file: pairs.display().to_string(),
        embeddings_model: model,
        thresholds,
        recommended_threshold: recommended,
    };
    if let Some(p) = json {
        std::fs::write(&p, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// For each query, the index and similarity of the nearest stored vector.
fn nearest_all(stored: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<(usize, f32)> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = queries
            .chunks(per)
            .map(|qs| {
                s.spawn(move || {
                    qs.iter()
                        .map(|q| {
                            stored
                                .iter()
                                .enumerate()
                                .map(|(i, v)| (i, dot(v, q)))
                                .max_by(|x, y| x.1.total_cmp(&y.1))
                                .unwrap_or((0, -1.0))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|h| h.join().expect("search thread")).collect()
    })
}
