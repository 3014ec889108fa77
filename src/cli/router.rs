//! `tollgate router train|eval`: the offline side of cheaper-model routing, measured on
//! RouteLLM's public routing sets.

use crate::routing::data::{self, Selection, Split};
use crate::routing::eval::{choose_threshold, estimates, evaluate, operating_point, Report};
use crate::routing::model::{RouterModel, TrainParams};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum RouterCommand {
    /// Train a router model on RouteLLM-format CSVs and save it.
    Train {
        /// Files or folders of RouteLLM-format CSVs (folders are read recursively).
        #[arg(long, num_args = 1.., required = true)]
        data: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        /// L2 penalty of the logistic regression (default: chosen by cross-validation on the
        /// training split, with the feature set).
        #[arg(long)]
        l2: Option<f32>,
        #[arg(long, default_value_t = TrainParams::default().epochs)]
        epochs: usize,
        /// Hash buckets of the word n-gram features; 1 keeps only the shape features (default:
        /// chosen by cross-validation).
        #[arg(long)]
        buckets: Option<u32>,
        /// Folds of the cross-validation (by subject, or by prompt).
        #[arg(long, default_value_t = 5)]
        folds: usize,
        #[command(flatten)]
        embed: EmbedArgs,
    },
    /// Evaluate a router model: quality vs share of strong-model calls, savings at 95% quality.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, num_args = 1.., required = true)]
        data: Vec<PathBuf>,
        #[command(flatten)]
        select: SelectArgs,
        #[arg(long)]
        json: Option<PathBuf>,
        /// Folds of the cross-validation whose held-out estimates choose the operating point.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        #[command(flatten)]
        embed: EmbedArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// A sentence-embeddings model folder (`scripts/install-embeddings.sh`): the prompts'
    /// embeddings become features (cross-validation decides whether they are used). Evaluating
    /// a router trained with them needs the same model.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// A file keeping the prompts' embeddings between runs (created if missing).
    #[arg(long, requires = "model_dir")]
    pub embed_cache: Option<PathBuf>,
}

impl EmbedArgs {
    /// Embeds `rows` when a model is given; returns the model's name.
    fn apply(&self, rows: &mut [data::Row]) -> anyhow::Result<Option<String>> {
        let Some(dir) = &self.model_dir else { return Ok(None) };
        super::router_embed::embed_rows(rows, dir, self.embed_cache.as_deref()).map(Some)
    }
}

#[derive(Debug, clap::Args)]
pub struct SelectArgs {
    /// Which rows: `train` or `test` (held out: by subject for mmlu_*.csv, by prompt otherwise),
    /// or `all`. Default: train for `train`, test for `eval`.
    #[arg(long)]
    pub split: Option<Split>,
    /// Share held out for the test split.
    #[arg(long, default_value_t = 0.3)]
    pub holdout: f64,
    /// Salt of the split's hash.
    #[arg(long, default_value_t = 1)]
    pub split_seed: u64,
    /// Column of the cheaper model's correctness.
    #[arg(long, default_value = data::DEFAULT_WEAK)]
    pub weak: String,
    /// Column of the stronger model's correctness.
    #[arg(long, default_value = data::DEFAULT_STRONG)]
    pub strong: String,
}

impl SelectArgs {
    fn selection(&self, default: Split) -> Selection {
        Selection { split: self.split.unwrap_or(default), holdout: self.holdout, seed: self.split_seed }
    }
}

pub fn router(cmd: RouterCommand) -> anyhow::Result<()> {
    match cmd {
        RouterCommand::Train { data: paths, out, select, l2, epochs, buckets, folds, embed } => {
            let files = data::csv_files(&paths)?;
            let mut rows = data::load(&files, &select.weak, &select.strong, &select.selection(Split::Train))?;
            let embeddings_model = embed.apply(&mut rows)?;
            anyhow::ensure!(!rows.is_empty(), "no training rows in {paths:?}");
            anyhow::ensure!(folds >= 2, "--folds must be at least 2");
            let params = match (l2, buckets) {
                (Some(l2), Some(buckets)) => {
                    let embedding = embeddings_model.is_some();
                    TrainParams { l2, buckets: buckets.max(1), epochs, embedding, ..TrainParams::default() }
                }
                _ => {
                    let (best, scored) = crate::routing::select::choose(&rows, folds);
                    for (p, auc) in &scored {
                        eprintln!(
                            "cross-validated AUC {auc:.3}: buckets {}, l2 {}, embedding {}",
                            p.buckets, p.l2, p.embedding
                        );
                    }
                    TrainParams {
                        l2: l2.unwrap_or(best.l2),
                        buckets: buckets.unwrap_or(best.buckets).max(1),
                        epochs,
                        embedding: best.embedding,
                        ..TrainParams::default()
                    }
                }
            };
            let examples: Vec<_> = rows.iter().map(data::Row::example).collect();
            let name = embeddings_model.unwrap_or_default();
            let model = RouterModel::train_with(&examples, params, data::names(&files), &name);
            model.save(&out)?;
            eprintln!(
                "trained on {} prompts from {} files ({:.1}% where the cheaper model is as good); wrote {}",
                examples.len(),
                files.len(),
                model.trained_on.base_rate * 100.0,
                out.display()
            );
            Ok(())
        }
        RouterCommand::Eval { model, data: paths, select, json, folds, embed } => {
            anyhow::ensure!(folds >= 2, "--folds must be at least 2");
            let m = RouterModel::load(&model)?;
            if let Some(needed) = m.embeddings_model() {
                anyhow::ensure!(
                    embed.model_dir.is_some(),
                    "this router weighs `{needed}` embeddings: give --model-dir"
                );
            }
            let files = data::csv_files(&paths)?;
            let mut rows = data::load(&files, &select.weak, &select.strong, &select.selection(Split::Test))?;
            // The operating point's cut-off is chosen per benchmark on the other split's prompts,
            // on the estimates of routers trained as this one was on the other folds of that split
            // (cross-validation by unit): a router's estimates on its own training prompts are
            // more confident than on new ones.
            let other = if select.split == Some(Split::Train) { Split::Test } else { Split::Train };
            let mut choose_on = data::load(&files, &select.weak, &select.strong, &select.selection(other))?;
            if m.embeddings_model().is_some() {
                embed.apply(&mut rows)?;
                embed.apply(&mut choose_on)?;
            }
            let by_bench = |rows: Vec<data::Row>| {
                let mut by: BTreeMap<String, Vec<data::Row>> = BTreeMap::new();
                for r in rows {
                    by.entry(r.benchmark.clone()).or_default().push(r);
                }
                by
            };
            let params = TrainParams {
                buckets: m.buckets,
                epochs: m.trained_on.epochs,
                l2: m.trained_on.l2 as f32,
                embedding: m.embeddings_model().is_some(),
                ..TrainParams::default()
            };
            let oof = crate::routing::select::out_of_fold(&choose_on, params, folds);
            let mut choose_by: BTreeMap<String, (Vec<data::Row>, Vec<f64>)> = BTreeMap::new();
            for (r, s) in choose_on.into_iter().zip(oof) {
                let e = choose_by.entry(r.benchmark.clone()).or_default();
                e.0.push(r);
                e.1.push(s);
            }
            let reports: Vec<Report> = by_bench(rows)
                .iter()
                .map(|(b, rows)| {
                    let scores = estimates(&m, rows);
                    let mut report = evaluate(b, rows, &scores);
                    report.operating_point = choose_by
                        .get(b)
                        .filter(|c| !c.0.is_empty())
                        .map(|(c, s)| operating_point(rows, &scores, choose_threshold(c, s)));
                    report
                })
                .collect();
            println!("benchmark  prompts  weak acc  strong acc  AUC    saved at 95% quality: router  random  oracle");
            for r in &reports {
                println!(
                    "{:<10} {:>7}  {:>7.1}%  {:>9.1}%  {:.3}  {:>28.1}%  {:>5.1}%  {:>5.1}%",
                    r.benchmark,
                    r.prompts,
                    r.weak_accuracy * 100.0,
                    r.strong_accuracy * 100.0,
                    r.auc,
                    r.saved_at_95_router * 100.0,
                    r.saved_at_95_random * 100.0,
                    r.saved_at_95_oracle * 100.0
                );
            }
            println!("cut-off chosen for 95% of strong quality on the other split's prompts, applied here:");
            for r in &reports {
                if let Some(op) = &r.operating_point {
                    println!(
                        "{:<10} estimate <= {:.4} goes strong: quality {:.1}% of strong [{:.1}, {:.1}], strong calls saved {:.1}% [{:.1}, {:.1}]",
                        r.benchmark,
                        op.threshold,
                        op.quality_share * 100.0,
                        op.quality_ci.0 * 100.0,
                        op.quality_ci.1 * 100.0,
                        op.saved * 100.0,
                        op.saved_ci.0 * 100.0,
                        op.saved_ci.1 * 100.0
                    );
                }
            }
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&reports)?)?;
            }
            Ok(())
        }
    }
}
