//! Router evaluation data in RouteLLM's CSV format: a `prompt` column and, per model, a column
//! saying whether its answer was right. Files named `mmlu_<subject>.csv` belong to the `mmlu`
//! benchmark and split by subject; any other file is its own benchmark and splits by prompt.
//! Splits are by hash, so they are the same on every machine and run.

use super::model::Example;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const DEFAULT_WEAK: &str = "mistralai/Mixtral-8x7B-Instruct-v0.1";
pub const DEFAULT_STRONG: &str = "gpt-4-1106-preview";

/// One prompt with both models' correctness.
#[derive(Debug, Clone)]
pub struct Row {
    pub benchmark: String,
    /// What the split holds out together: `mmlu/<subject>`, or the benchmark and the prompt.
    pub unit: String,
    pub text: String,
    pub weak: bool,
    pub strong: bool,
    /// The prompt's sentence embedding, when the caller embedded the rows (else empty).
    pub embedding: Vec<f32>,
}

impl Row {
    pub fn example(&self) -> Example {
        Example { text: self.text.clone(), weak_as_good: self.weak || !self.strong, embedding: self.embedding.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    All,
    Train,
    Test,
}

/// Which rows to read: the split, the held-out share and the hash's salt.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub split: Split,
    pub holdout: f64,
    pub seed: u64,
}

/// A number in [0, 1) fixed by the unit and the seed.
pub fn unit_hash(unit: &str, seed: u64) -> f64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(unit.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64
}

fn held_out(unit: &str, sel: &Selection) -> bool {
    unit_hash(unit, sel.seed) < sel.holdout
}

/// Every `.csv` under the given files and folders (recursively), sorted.
pub fn csv_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> =
                std::fs::read_dir(p)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
            entries.sort();
            out.extend(csv_files(&entries)?);
        } else if p.extension().is_some_and(|e| e == "csv") {
            out.push(p.clone());
        } else if !p.exists() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} does not exist", p.display())));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the rows of `files` in the selected split.
pub fn load(files: &[PathBuf], weak: &str, strong: &str, sel: &Selection) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for f in files {
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let (benchmark, subject) = match stem.strip_prefix("mmlu_") {
            Some(subject) => ("mmlu".to_string(), Some(subject.to_string())),
            None => (stem.trim_end_matches("_responses").to_string(), None),
        };
        let mut r = csv::Reader::from_path(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        let headers = r.headers()?.clone();
        let col = |name: &str| {
            headers.iter().position(|h| h == name).ok_or_else(|| anyhow::anyhow!("{}: no column `{name}`", f.display()))
        };
        let (p, w, s) = (col("prompt")?, col(weak)?, col(strong)?);
        for rec in r.records() {
            let rec = rec.map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            let text = rec.get(p).unwrap_or_default().to_string();
            let unit = subject.as_deref().map(|s| format!("mmlu/{s}")).unwrap_or_else(|| format!("{benchmark}/{text}"));
            let keep = match sel.split {
                Split::All => true,
                Split::Test => held_out(&unit, sel),
                Split::Train => !held_out(&unit, sel),
            };
            if keep {
                let truth = |i: usize| rec.get(i).is_some_and(|v| v.eq_ignore_ascii_case("true"));
                rows.push(Row {
                    benchmark: benchmark.clone(),
                    unit,
                    text,
                    weak: truth(w),
                    strong: truth(s),
                    embedding: vec![],
                });
            }
        }
    }
    Ok(rows)
}

/// The files' names relative to nothing in particular, for the model's record.
pub fn names(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()).collect()
}

pub fn is_csv(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "csv")
}
