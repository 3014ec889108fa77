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

/// Both halves of the shared prompts under `data` (the shared data folder). The MMLU and GSM8K
/// prompts are read as the router's evaluation reads them (`routing::data`).
pub fn prompts(data: &Path) -> Result<[Prompts; 2], DataError> {
    use crate::routing::data::{csv_files, load, Selection, Split, DEFAULT_STRONG, DEFAULT_WEAK};
    let mut halves = [Prompts::default(), Prompts::default()];
    let dir = data.join("routing");
    let files = csv_files(std::slice::from_ref(&dir))
        .map_err(|e| DataError::Read { path: dir.display().to_string(), problem: e.to_string() })?;
    let all = Selection { split: Split::All, holdout: 0.0, seed: 0 };
    let rows = load(&files, DEFAULT_WEAK, DEFAULT_STRONG, &all)
        .map_err(|e| DataError::Read { path: dir.display().to_string(), problem: e.to_string() })?;
    for r in rows {
        let h = &mut halves[half_of(&r.text)];
        match r.unit.strip_prefix("mmlu/") {
            Some(subject) => match h.mmlu.iter_mut().find(|(s, _)| s == subject) {
                Some((_, qs)) => qs.push(r.text),
                None => h.mmlu.push((subject.to_string(), vec![r.text])),
            },
            None => h.gsm8k.push(r.text),
        }
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
