//! Trace readers: the Azure LLM inference trace (CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`)
//! and Mooncake's JSONL (`timestamp` in ms, `input_length`, `output_length`, `hash_ids` naming
//! 512-token prompt blocks). Unknown columns or fields and bad rows are errors that name the line.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::io::BufRead;
use std::path::Path;

/// One request of a trace, timed from the trace's first request.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRequest {
    pub at_s: f64,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Prompt block hashes, when the trace has them (Mooncake); empty otherwise.
    pub block_hashes: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("reading {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} line {line}: {problem}")]
    Bad { path: String, line: usize, problem: String },
    #[error("{path}: unknown trace format (expected .csv for Azure or .jsonl for Mooncake)")]
    Format { path: String },
    #[error("{path}: the trace is empty")]
    Empty { path: String },
}

/// Reads a trace, choosing the format by extension.
pub fn read(path: &Path) -> Result<Vec<TraceRequest>, TraceError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| TraceError::Io { path: p.clone(), source: e })?;
    let reader = std::io::BufReader::new(file);
    let out = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => read_azure(reader, &p)?,
        Some("jsonl") => read_mooncake(reader, &p)?,
        _ => return Err(TraceError::Format { path: p }),
    };
    if out.is_empty() {
        return Err(TraceError::Empty { path: p });
    }
    Ok(out)
}

/// Seconds since the Unix epoch of `YYYY-MM-DD HH:MM:SS[.fraction]` (UTC).
fn parse_timestamp(s: &str) -> Option<f64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss: f64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || !(0.0..61.0).contains(&ss) {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

fn read_azure(reader: impl BufRead, path: &str) -> Result<Vec<TraceRequest>, TraceError> {
    let bad = |line: usize, problem: String| TraceError::Bad { path: path.into(), line, problem };
    let mut lines = reader.lines();
    let header = lines.next().transpose().map_err(|e| TraceError::Io { path: path.into(), source: e })?;
    let header = header.ok_or_else(|| TraceError::Empty { path: path.into() })?;
    let cols: Vec<&str> = header.trim().split(',').map(str::trim).collect();
    if cols != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"] {
        let unknown: Vec<&&str> =
            cols.iter().filter(|c| !["TIMESTAMP", "ContextTokens", "GeneratedTokens"].contains(c)).collect();
        return Err(bad(1, format!("expected columns TIMESTAMP,ContextTokens,GeneratedTokens; unknown: {unknown:?}")));
    }
    let mut out = Vec::new();
    let mut first = None;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.map_err(|e| TraceError::Io { path: path.into(), source: e })?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 3 {
            return Err(bad(n, format!("expected 3 fields, found {}", f.len())));
        }
        let t = parse_timestamp(f[0]).ok_or_else(|| bad(n, format!("bad TIMESTAMP `{}`", f[0])))?;
        let num = |s: &str, what: &str| s.trim().parse::<u32>().map_err(|_| bad(n, format!("bad {what} `{s}`")));
        let (input, output) = (num(f[1], "ContextTokens")?, num(f[2], "GeneratedTokens")?);
        let t0 = *first.get_or_insert(t);
        if t < t0 {
            return Err(bad(n, "timestamps go backwards".into()));
        }
        out.push(TraceRequest {
            at_s: t - t0,
            input_tokens: input.max(1),
            output_tokens: output,
            block_hashes: Vec::new(),
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MooncakeRow {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
    #[serde(default)]
    hash_ids: Vec<u64>,
}

fn read_mooncake(reader: impl BufRead, path: &str) -> Result<Vec<TraceRequest>, TraceError> {
    let mut out: Vec<TraceRequest> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| TraceError::Io { path: path.into(), source: e })?;
        if line.trim().is_empty() {
            continue;
        }
        let r: MooncakeRow = serde_json::from_str(&line).map_err(|e| TraceError::Bad {
            path: path.into(),
            line: i + 1,
            problem: e.to_string(),
        })?;
        let at_s = r.timestamp / 1000.0;
        if out.last().is_some_and(|p| at_s < p.at_s) {
            return Err(TraceError::Bad { path: path.into(), line: i + 1, problem: "timestamps go backwards".into() });
        }
        out.push(TraceRequest {
            at_s,
            input_tokens: r.input_length.max(1),
            output_tokens: r.output_length,
            block_hashes: r.hash_ids,
        });
    }
    if let Some(t0) = out.first().map(|r| r.at_s) {
        out.iter_mut().for_each(|r| r.at_s -= t0);
    }
    Ok(out)
}

/// A synthetic trace of `n` requests drawn (with replacement) from `trace`'s token pairs, arriving
/// as a Poisson process at the trace's own mean rate scaled by `rate_factor`.
pub fn resample(trace: &[TraceRequest], n: usize, rate_factor: f64, seed: u64) -> Vec<TraceRequest> {
    let span = trace.last().map(|r| r.at_s).unwrap_or(0.0).max(1e-9);
    let rate = trace.len() as f64 / span * rate_factor;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = 0.0;
    (0..n)
        .map(|_| {
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            t += -u.ln() / rate;
            let src = &trace[rng.random_range(0..trace.len())];
            TraceRequest { at_s: t, ..src.clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("data/traces").join(rel)
    }

    #[test]
    fn reads_the_shipped_traces() {
        let conv = read(&shipped("azure2023/AzureLLMInferenceTrace_conv.csv")).unwrap();
        assert_eq!(conv.len(), 19_366);
        let mean_in = conv.iter().map(|r| f64::from(r.input_tokens)).sum::<f64>() / conv.len() as f64;
        assert!((mean_in - 1155.0).abs() < 5.0, "{mean_in}");
        assert!(conv.last().unwrap().at_s > 3000.0 && conv.last().unwrap().at_s < 3700.0);
        let code = read(&shipped("azure2023/AzureLLMInferenceTrace_code.csv")).unwrap();
        assert_eq!(code.len(), 8_819);
        let moon = read(&shipped("mooncake/synthetic_trace.jsonl")).unwrap();
        assert_eq!(moon.len(), 3_993);
        assert_eq!(moon[0].block_hashes.len(), moon[0].input_tokens.div_ceil(512) as usize);
    }

    #[test]
    fn bad_rows_and_unknown_columns_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let e = read(&write("a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens,Extra\n")).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("Extra"), "{e}");
        let e = read(&write(
            "b.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6,374,44\n2023-11-16 18:15:47,x,1\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3") && e.contains("ContextTokens"), "{e}");
        let e = read(&write("c.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1}\n{\"timestamp\": 1, \"input_length\": 5, \"output_length\": 1, \"oops\": 2}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("oops"), "{e}");
        assert!(matches!(read(&write("d.txt", "x")), Err(TraceError::Format { .. })));
    }

    #[test]
    fn resampling_keeps_the_token_mix_and_scales_the_rate() {
        let conv = read(&shipped("azure2023/AzureLLMInferenceTrace_conv.csv")).unwrap();
        let syn = resample(&conv, 100_000, 2.0, 7);
        assert_eq!(syn.len(), 100_000);
        let rate = syn.len() as f64 / syn.last().unwrap().at_s;
        let orig = conv.len() as f64 / conv.last().unwrap().at_s;
        assert!((rate / orig - 2.0).abs() < 0.05, "{rate} vs {orig}");
    }
}
