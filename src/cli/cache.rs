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

/// One threshold's figures: a pair is a hit when its two texts are at least this similar (the
/// second text looked up in a cache holding the first).
#[derive(Debug, Serialize)]
pub struct ThresholdRow {
    pub threshold: f32,
    pub hits: usize,
    /// Share of hits whose pair is labelled the same question (a correct hit).
    pub precision: f64,
    /// Hits over all pairs.
    pub hit_rate: f64,
    /// Correct hits over the same-question pairs.
    pub recall: f64,
}

#[derive(Debug, Serialize)]
pub struct CacheEval {
    pub pairs: usize,
    pub positives: usize,
    pub file: String,
    pub embeddings_model: String,
    pub thresholds: Vec<ThresholdRow>,
    /// The least threshold with precision >= 95%, if any reaches it.
    pub threshold_for_95_precision: Option<f32>,
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
    let sim: Vec<f32> = a.iter().zip(&b).map(|(x, y)| dot(x, y)).collect();
    let positives = ps.iter().filter(|p| p.label == 1).count();
    // 0.80 to 0.95 in steps of 0.01, then 0.955 to 1.0 in steps of 0.005, where precision moves.
    let grid = (0..15).map(|i| 0.80 + 0.01 * i as f32).chain((0..=10).map(|i| 0.95 + 0.005 * i as f32));
    let thresholds: Vec<ThresholdRow> = grid
        .map(|t| {
            let t = (t * 1000.0).round() / 1000.0;
            let hits: Vec<usize> = (0..ps.len()).filter(|&i| sim[i] >= t).collect();
            let right = hits.iter().filter(|&&i| ps[i].label == 1).count();
            ThresholdRow {
                threshold: t,
                hits: hits.len(),
                precision: right as f64 / hits.len().max(1) as f64,
                hit_rate: hits.len() as f64 / ps.len().max(1) as f64,
                recall: right as f64 / positives.max(1) as f64,
            }
        })
        .collect();
    let recommended = thresholds.iter().find(|t| t.hits > 0 && t.precision >= 0.95).map(|t| t.threshold);
    println!("threshold   hits  precision  hit rate  recall (same-question pairs hit)");
    for t in &thresholds {
        println!(
            "{:>9.3}  {:>5}  {:>8.1}%  {:>7.1}%  {:>6.1}%",
            t.threshold,
            t.hits,
            t.precision * 100.0,
            t.hit_rate * 100.0,
            t.recall * 100.0
        );
    }
    match recommended {
        Some(t) => println!("least threshold with >= 95% precision: {t}"),
        None => println!("no threshold reached 95% precision"),
    }
    let report = CacheEval {
        pairs: ps.len(),
        positives,
        file: pairs.display().to_string(),
        embeddings_model: model,
        thresholds,
        threshold_for_95_precision: recommended,
    };
    if let Some(p) = json {
        std::fs::write(&p, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
