//! `tollgate router train|eval`: the offline side of cheaper-model routing, measured on
//! RouteLLM's public routing sets.

use crate::routing::data::{self, Selection, Split};
use crate::routing::eval::{choose_threshold, evaluate, operating_point, Report};
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
    },
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
        RouterCommand::Train { data: paths, out, select, l2, epochs, buckets, folds } => {
            let files = data::csv_files(&paths)?;
            let rows = data::load(&files, &select.weak, &select.strong, &select.selection(Split::Train))?;
            anyhow::ensure!(!rows.is_empty(), "no training rows in {paths:?}");
            anyhow::ensure!(folds >= 2, "--folds must be at least 2");
            let params = match (l2, buckets) {
                (Some(l2), Some(buckets)) => {
                    TrainParams { l2, buckets: buckets.max(1), epochs, ..TrainParams::default() }
                }
                _ => {
                    let (best, scored) = crate::routing::select::choose(&rows, folds);
                    for (p, auc) in &scored {
                        eprintln!("cross-validated AUC {auc:.3}: buckets {}, l2 {}", p.buckets, p.l2);
                    }
                    TrainParams {
                        l2: l2.unwrap_or(best.l2),
                        buckets: buckets.unwrap_or(best.buckets).max(1),
                        epochs,
                        ..TrainParams::default()
                    }
                }
            };
            let examples: Vec<_> = rows.iter().map(data::Row::example).collect();
            let model = RouterModel::train(&examples, params, data::names(&files));
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
        RouterCommand::Eval { model, data: paths, select, json } => {
            let m = RouterModel::load(&model)?;
            let files = data::csv_files(&paths)?;
            let rows = data::load(&files, &select.weak, &select.strong, &select.selection(Split::Test))?;
            // The operating point's cut-off is chosen per benchmark on the other split's prompts.
            let other = if select.split == Some(Split::Train) { Split::Test } else { Split::Train };
            let choose_on = data::load(&files, &select.weak, &select.strong, &select.selection(other))?;
            let by_bench = |rows: Vec<data::Row>| {
                let mut by: BTreeMap<String, Vec<data::Row>> = BTreeMap::new();
                for r in rows {
                    by.entry(r.benchmark.clone()).or_default().push(r);
                }
                by
            };
            let choose_on = by_bench(choose_on);
            let reports: Vec<Report> = by_bench(rows)
                .iter()
                .map(|(b, rows)| {
                    let scores: Vec<f64> = rows.iter().map(|r| m.p_weak_as_good(&r.text)).collect();
                    let mut report = evaluate(b, rows, &scores);
                    report.operating_point = choose_on.get(b).filter(|c| !c.is_empty()).map(|c| {
                        let s: Vec<f64> = c.iter().map(|r| m.p_weak_as_good(&r.text)).collect();
                        operating_point(rows, &scores, choose_threshold(c, &s))
                    });
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
