//! `tollgate cache eval`: the semantic cache's precision and hit rate per similarity threshold,
//! measured on labelled question pairs (Quora) with a real embeddings model.

use crate::cache::embed::{EmbedError, Embedder, Remote};
use crate::cache::semantic::{dot, Salient};
use crate::routing::eval::bootstrap95;
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
        /// A sentence-embedding model's folder, run in process (no server needed).
        #[arg(long, conflicts_with = "embeddings", required_unless_present = "embeddings")]
        model_dir: Option<PathBuf>,
        /// Base URL of an OpenAI-compatible embeddings server, instead of `--model-dir`.
        #[arg(long)]
        embeddings: Option<String>,
        /// The model's name (sent to the server; recorded in the report).
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
/// second text looked up in a cache holding the first) and, under the salient-words rule, have
/// the same salient words.
#[derive(Debug, Serialize, Clone, Copy)]
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

/// A rule's operating point: the least threshold whose precision reaches 95% on the pairs it is
/// chosen on (even-numbered lines), and what it gives on the others (odd-numbered), with 95%
/// bootstrap intervals.
#[derive(Debug, Serialize)]
pub struct OperatingPoint {
    pub rule: &'static str,
    pub threshold: Option<f32>,
    pub held_out: Option<ThresholdRow>,
    pub precision_ci: Option<(f64, f64)>,
    pub recall_ci: Option<(f64, f64)>,
}

#[derive(Debug, Serialize)]
pub struct CacheEval {
    pub pairs: usize,
    pub positives: usize,
    pub file: String,
    pub embeddings_model: String,
    /// Every pair, similarity alone.
    pub thresholds: Vec<ThresholdRow>,
    /// Every pair, similarity and the same salient words (the cache's default).
    pub thresholds_salient: Vec<ThresholdRow>,
    /// Chosen on even-numbered pairs, reported on odd-numbered ones.
    pub operating_points: Vec<OperatingPoint>,
}

#[derive(serde::Deserialize)]
struct Pair {
    text_a: String,
    text_b: String,
    label: u8,
}

pub fn run(cmd: CacheCommand) -> anyhow::Result<()> {
    let CacheCommand::Eval { pairs, model_dir, embeddings, model, limit, json } = cmd;
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
    let embedder = match (&model_dir, &embeddings) {
        (Some(dir), _) => Embedder::local(dir)?,
        (None, url) => Embedder::Remote(Remote::new(
            url.as_deref().unwrap_or_default(),
            &model,
            std::env::var("TOLLGATE_EMBEDDINGS_API_KEY").ok(),
            Duration::from_secs(120),
        )),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // A text the model cannot take whole (over its length) is not looked up, as in the cache: its
    // pair never hits.
    let embed_all = |texts: Vec<&str>| -> anyhow::Result<Vec<Option<Vec<f32>>>> {
        rt.block_on(async {
            let mut out = Vec::with_capacity(texts.len());
            for (i, chunk) in texts.chunks(64).enumerate() {
                match embedder.embed(chunk).await {
                    Ok(v) => out.extend(v.into_iter().map(Some)),
                    Err(EmbedError::TooLong { .. }) => {
                        for t in chunk {
                            match embedder.embed(&[t]).await {
                                Ok(mut v) => out.push(v.pop()),
                                Err(EmbedError::TooLong { .. }) => out.push(None),
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
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
    let sim: Vec<f32> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => dot(x, y),
            _ => f32::NEG_INFINITY,
        })
        .collect();
    let same_words: Vec<bool> = ps.iter().map(|p| Salient::of(&p.text_a).agrees(&Salient::of(&p.text_b))).collect();
    let label: Vec<bool> = ps.iter().map(|p| p.label == 1).collect();
    let positives = label.iter().filter(|&&l| l).count();
    let all: Vec<usize> = (0..ps.len()).collect();
    let plain = |i: usize, t: f32| sim[i] >= t;
    let guarded = |i: usize, t: f32| sim[i] >= t && same_words[i];
    let thresholds = rows(&all, &label, &plain);
    let thresholds_salient = rows(&all, &label, &guarded);
    println!("threshold | similarity alone: hits  precision  hit rate  recall | with the same salient words: hits  precision  hit rate  recall");
    for (t, g) in thresholds.iter().zip(&thresholds_salient) {
        println!(
            "{:>9.3} | {:>5} {:>7.1}% {:>7.1}% {:>6.1}% | {:>5} {:>7.1}% {:>7.1}% {:>6.1}%",
            t.threshold,
            t.hits,
            t.precision * 100.0,
            t.hit_rate * 100.0,
            t.recall * 100.0,
            g.hits,
            g.precision * 100.0,
            g.hit_rate * 100.0,
            g.recall * 100.0
        );
    }
    let (choose, report): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&i| i % 2 == 0);
    let operating_points = vec![
        operating_point("similarity alone", &choose, &report, &label, &plain),
        operating_point("same salient words", &choose, &report, &label, &guarded),
    ];
    for op in &operating_points {
        match (op.threshold, op.held_out, op.precision_ci, op.recall_ci) {
            (Some(t), Some(r), Some(pc), Some(rc)) => println!(
                "{}: threshold {t} (95% precision on even pairs); on odd pairs precision {:.1}% [{:.1}, {:.1}], recall {:.1}% [{:.1}, {:.1}], hit rate {:.1}%",
                op.rule,
                r.precision * 100.0,
                pc.0 * 100.0,
                pc.1 * 100.0,
                r.recall * 100.0,
                rc.0 * 100.0,
                rc.1 * 100.0,
                r.hit_rate * 100.0
            ),
            _ => println!("{}: no threshold reaches 95% precision on even pairs", op.rule),
        }
    }
    let report = CacheEval {
        pairs: ps.len(),
        positives,
        file: pairs.display().to_string(),
        embeddings_model: model,
        thresholds,
        thresholds_salient,
        operating_points,
    };
    if let Some(p) = json {
        std::fs::write(&p, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

/// 0.80 to 0.95 in steps of 0.01, then 0.955 to 1.0 in steps of 0.005, where precision moves.
fn grid() -> impl Iterator<Item = f32> {
    (0..15)
        .map(|i| 0.80 + 0.01 * i as f32)
        .chain((0..=10).map(|i| 0.95 + 0.005 * i as f32))
        .map(|t| (t * 1000.0).round() / 1000.0)
}

/// The figures at `t` over the pairs `idx`, a hit being what `hit` says.
fn row(idx: &[usize], label: &[bool], hit: &dyn Fn(usize, f32) -> bool, t: f32) -> ThresholdRow {
    let hits: Vec<usize> = idx.iter().copied().filter(|&i| hit(i, t)).collect();
    let right = hits.iter().filter(|&&i| label[i]).count();
    let positives = idx.iter().filter(|&&i| label[i]).count();
    ThresholdRow {
        threshold: t,
        hits: hits.len(),
        precision: right as f64 / hits.len().max(1) as f64,
        hit_rate: hits.len() as f64 / idx.len().max(1) as f64,
        recall: right as f64 / positives.max(1) as f64,
    }
}

fn rows(idx: &[usize], label: &[bool], hit: &dyn Fn(usize, f32) -> bool) -> Vec<ThresholdRow> {
    grid().map(|t| row(idx, label, hit, t)).collect()
}

/// The least threshold with 95% precision on `choose`, reported on `report` with 1,000 bootstrap
/// resamples of it.
fn operating_point(
    rule: &'static str,
    choose: &[usize],
    report: &[usize],
    label: &[bool],
    hit: &dyn Fn(usize, f32) -> bool,
) -> OperatingPoint {
    let threshold =
        rows(choose, label, hit).into_iter().find(|r| r.hits > 0 && r.precision >= 0.95).map(|r| r.threshold);
    let Some(t) = threshold else {
        return OperatingPoint { rule, threshold, held_out: None, precision_ci: None, recall_ci: None };
    };
    let (precision_ci, recall_ci) = bootstrap95(report, 7, |sample| {
        let r = row(sample, label, hit, t);
        (r.precision, r.recall)
    });
    OperatingPoint {
        rule,
        threshold,
        held_out: Some(row(report, label, hit, t)),
        precision_ci: Some(precision_ci),
        recall_ci: Some(recall_ci),
    }
}
