//! What the extraction evaluation replays: public prompts (the shared data's MMLU, GSM8K and Quora
//! texts) split in two halves by a hash of the text, and the shipped traces' arrival times and
//! output lengths split by time.

use crate::sim::trace::{self, TraceRequest};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("reading {path}: {problem}")]
    Read { path: String, problem: String },
    #[error("{0}")]
    Trace(#[from] trace::TraceError),
}

/// The prompts of one half.
#[derive(Debug, Default, Clone)]
pub struct Prompts {
    /// MMLU questions by subject (subjects in file-name order).
    pub mmlu: Vec<(String, Vec<String>)>,
    pub gsm8k: Vec<String>,
    pub quora: Vec<String>,
}

/// A trace's requests in one half: arrivals (seconds from the half's start) and output lengths.
#[derive(Debug, Clone)]
pub struct Timing {
    pub name: String,
    pub requests: Vec<TraceRequest>,
}

impl Timing {
    /// Mean arrival rate, requests per second.
    pub fn rate(&self) -> f64 {
        let span = self.requests.last().map_or(0.0, |r| r.at_s).max(1.0);
        self.requests.len() as f64 / span
    }
}

fn half_of(text: &str) -> usize {
    use std::hash::BuildHasher;
    (foldhash::fast::FixedState::with_seed(26).hash_one(text) % 2) as usize
}

fn csv_prompts(path: &Path) -> Result<Vec<String>, DataError> {
    let bad = |e: &dyn std::fmt::Display| DataError::Read { path: path.display().to_string(), problem: e.to_string() };
    let mut r = csv::Reader::from_path(path).map_err(|e| bad(&e))?;
    let col = r
        .headers()
        .map_err(|e| bad(&e))?
        .iter()
        .position(|h| h == "prompt")
        .ok_or_else(|| bad(&"no `prompt` column"))?;
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| bad(&e))?;
        out.push(rec.get(col).unwrap_or_default().to_string());
    }
    Ok(out)
}

/// Both halves of the shared prompts under `data` (the shared data folder).
pub fn prompts(data: &Path) -> Result<[Prompts; 2], DataError> {
    let mut halves = [Prompts::default(), Prompts::default()];
    let dir = data.join("routing/mmlu");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| DataError::Read { path: dir.display().to_string(), problem: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    for f in files {
        let subject = f.file_stem().and_then(|s| s.to_str()).unwrap_or("mmlu").trim_start_matches("mmlu_").to_string();
        let mut split = [Vec::new(), Vec::new()];
        for p in csv_prompts(&f)? {
            split[half_of(&p)].push(p);
        }
        for (h, ps) in halves.iter_mut().zip(split) {
            h.mmlu.push((subject.clone(), ps));
        }
    }
    for p in csv_prompts(&data.join("routing/gsm8k_responses.csv"))? {
        halves[half_of(&p)].gsm8k.push(p);
    }
    let qqp = data.join("semcache/qqp_pairs.jsonl");
    let text = std::fs::read_to_string(&qqp)
        .map_err(|e| DataError::Read { path: qqp.display().to_string(), problem: e.to_string() })?;
    let mut seen = std::collections::HashSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| DataError::Read { path: qqp.display().to_string(), problem: e.to_string() })?;
        for k in ["text_a", "text_b"] {
            if let Some(q) = v.get(k).and_then(|q| q.as_str()) {
                if seen.insert(q.to_string()) {
                    halves[half_of(q)].quora.push(q.to_string());
                }
            }
        }
    }
    Ok(halves)
}

/// The shipped traces (Azure 2023 conversation and code, ServeGen's heavy and light clients),
/// each cut in two at its middle: the first half's arrivals for one half of the evaluation, the
/// second's for the other, both timed from their own start.
pub fn timings(traces: &Path) -> Result<[Vec<Timing>; 2], DataError> {
    let files = [
        ("azure-conv", "azure2023/AzureLLMInferenceTrace_conv.csv"),
        ("azure-code", "azure2023/AzureLLMInferenceTrace_code.csv"),
        ("servegen-top", "servegen/language-m-large-top.csv"),
        ("servegen-rest", "servegen/language-m-large-rest.csv"),
    ];
    let mut halves = [Vec::new(), Vec::new()];
    for (name, f) in files {
        let reqs = trace::read(&traces.join(f))?;
        let mid = reqs.last().map_or(0.0, |r| r.at_s) / 2.0;
        let (a, b): (Vec<_>, Vec<_>) = reqs.into_iter().partition(|r| r.at_s < mid);
        for (h, mut part) in halves.iter_mut().zip([a, b]) {
            let t0 = part.first().map_or(0.0, |r| r.at_s);
            for r in &mut part {
                r.at_s -= t0;
            }
            h.push(Timing { name: name.to_string(), requests: part });
        }
    }
    Ok(halves)
}
