//! Fits engine profiles on measured timings (Splitwise's `perf_model.csv`) and derives
//! profiles for models that were not measured. `tollgate profiles fit` regenerates the
//! shipped `profiles/*.toml` from here; `docs/profiles.md` explains the derivation.

use super::lsq::{median, nnls, Obs};
use super::profile::{DecodeModel, FitReport, PrefillModel, Profile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One row of Splitwise's `perf_model.csv` (times in milliseconds, power as a fraction of TDP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfRow {
    pub model: String,
    pub hardware: String,
    pub prompt_size: u32,
    pub batch_size: u32,
    pub token_size: u32,
    pub peak_power: f64,
    pub average_power: f64,
    pub prompt_time: f64,
    pub token_time: f64,
    pub e2e_time: f64,
    pub tensor_parallel: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("{path}: {source}")]
    Csv { path: String, source: csv::Error },
    #[error("{path} line {line}: {problem}")]
    Row { path: String, line: u64, problem: String },
    #[error("no rows for {0}")]
    Empty(String),
    #[error("fit failed for {0}")]
    Singular(String),
    #[error("unknown model `{0}`: add its architecture to capacity::fit::ARCHS")]
    UnknownModel(String),
}

/// Architecture facts needed for memory and derivations.
#[derive(Debug, Clone, Copy)]
pub struct Arch {
    pub name: &'static str,
    pub params: f64,
    pub layers: u32,
    pub kv_heads: u32,
    pub q_heads: u32,
    pub head_dim: u32,
    pub max_context: u32,
}

impl Arch {
    /// fp16 weights, bytes.
    pub fn weight_bytes(&self) -> f64 {
        self.params * 2.0
    }
    /// fp16 K and V for every layer, bytes per token.
    pub fn kv_bytes_per_token(&self) -> f64 {
        f64::from(2 * self.layers * self.kv_heads * self.head_dim * 2)
    }
    /// Attention width summed over layers (query heads x head dim x layers).
    pub fn attn_width(&self) -> f64 {
        f64::from(self.layers * self.q_heads * self.head_dim)
    }
}

/// Llama-2-70B (GQA, 8 KV heads), BLOOM-176B (MHA), Llama-3-8B (GQA). Context: the measured
/// grid reaches 8,192-token prompts, so the fitted profiles allow 8,192 tokens.
pub const ARCHS: &[Arch] = &[
    Arch { name: "llama2-70b", params: 69.0e9, layers: 80, kv_heads: 8, q_heads: 64, head_dim: 128, max_context: 8192 },
    Arch {
        name: "bloom-176b",
        params: 176.2e9,
        layers: 70,
        kv_heads: 112,
        q_heads: 112,
        head_dim: 128,
        max_context: 8192,
    },
    Arch { name: "llama3-8b", params: 8.03e9, layers: 32, kv_heads: 8, q_heads: 32, head_dim: 128, max_context: 8192 },
];

pub fn arch(name: &str) -> Result<&'static Arch, FitError> {
    ARCHS.iter().find(|a| a.name == name).ok_or_else(|| FitError::UnknownModel(name.into()))
}

/// Accelerator facts: memory per GPU (bytes), thermal design power (W).
#[derive(Debug, Clone, Copy)]
pub struct Gpu {
    pub name: &'static str,
    pub short: &'static str,
    pub memory: f64,
    pub tdp_watts: f64,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
pub const GPUS: &[Gpu] = &[
    Gpu { name: "a100-80gb", short: "a100", memory: 80.0 * GIB, tdp_watts: 400.0 },
    Gpu { name: "h100-80gb", short: "h100", memory: 80.0 * GIB, tdp_watts: 700.0 },
    Gpu { name: "h100-80gb-pcap", short: "h100pcap", memory: 80.0 * GIB, tdp_watts: 700.0 },
];

/// vLLM's default `gpu_memory_utilization`: the share of GPU memory for weights and KV cache.
pub const GPU_MEMORY_UTILIZATION: f64 = 0.9;
/// vLLM's defaults for the running batch and the per-step token budget.
pub const MAX_BATCH: u32 = 256;
pub const MAX_STEP_TOKENS: u32 = 2048;
/// Assumed power of a power-capped H100 relative to an uncapped one (the CSV has no H100 power).
pub const PCAP_POWER_SHARE: f64 = 0.7;

/// KV-cache tokens left after the weights, at vLLM's memory share.
pub fn kv_tokens(arch: &Arch, gpu: &Gpu, tp: u32) -> u64 {
    let free = gpu.memory * f64::from(tp) * GPU_MEMORY_UTILIZATION - arch.weight_bytes();
    (free.max(0.0) / arch.kv_bytes_per_token()) as u64
}

/// Reads the Splitwise CSV; every row must parse, or the error names its line.
pub fn read_perf_csv(path: &Path) -> Result<Vec<PerfRow>, FitError> {
    let p = path.display().to_string();
    let mut rdr = csv::Reader::from_path(path).map_err(|e| FitError::Csv { path: p.clone(), source: e })?;
    let mut rows = Vec::new();
    for rec in rdr.deserialize::<PerfRow>() {
        let row = rec.map_err(|e| {
            let line = e.position().map(|pos| pos.line()).unwrap_or(0);
            FitError::Row { path: p.clone(), line, problem: e.to_string() }
        })?;
        if row.prompt_time <= 0.0 || row.token_time <= 0.0 || row.batch_size == 0 {
            return Err(FitError::Row {
                path: p,
                line: rows.len() as u64 + 2,
                problem: "non-positive time or batch".into(),
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The rows Splitwise's README flags as an artefact: llama2-70b at TP2 with batch 64
/// (prompt time falls about 8x below batch 32). Left out of the fit and the error figures.
pub fn is_artefact(r: &PerfRow) -> bool {
    r.model == "llama2-70b" && r.tensor_parallel == 2 && r.batch_size == 64
}
const ARTEFACT_NOTE: &str = "llama2-70b TP2 batch-64 rows (measurement artefact: prompt time 8x below batch 32)";

/// Features of the prompt-time model for one measured row: `[1, tokens, pairs]`.
pub fn prompt_features(r: &PerfRow) -> [f64; 3] {
    let (b, p) = (f64::from(r.batch_size), f64::from(r.prompt_size));
    [1.0, b * p, b * p * p]
}

/// Features of the token-time model: `[1, batch, context tokens]`, the context being the
/// prompt plus half the output (the mean over the decode phase).
pub fn token_features(r: &PerfRow) -> [f64; 3] {
    let (b, p, t) = (f64::from(r.batch_size), f64::from(r.prompt_size), f64::from(r.token_size));
    [1.0, b, b * (p + t / 2.0)]
}

/// A profile's predicted prompt and token times (ms) for a measured row.
pub fn predict(profile: &Profile, r: &PerfRow) -> (f64, f64) {
    let f = prompt_features(r);
    let g = token_features(r);
    (profile.prefill_ms(f[1], f[2]), profile.decode_ms(g[1], g[2]))
}

/// Median relative errors (prompt, token) of `profile` on `rows`.
pub fn errors(profile: &Profile, rows: &[&PerfRow]) -> (f64, f64) {
    let (mut pe, mut te) = (Vec::new(), Vec::new());
    for r in rows {
        let (p, t) = predict(profile, r);
        pe.push((p - r.prompt_time).abs() / r.prompt_time);
        te.push((t - r.token_time).abs() / r.token_time);
    }
    (median(&pe).unwrap_or(f64::NAN), median(&te).unwrap_or(f64::NAN))
}

fn fit3(
    rows: &[&PerfRow],
    feat: fn(&PerfRow) -> [f64; 3],
    y: fn(&PerfRow) -> f64,
    what: &str,
) -> Result<[f64; 3], FitError> {
    // Weights 1/y^2 make the least squares minimise relative error.
    let obs: Vec<Obs> = rows.iter().map(|r| Obs { x: feat(r).to_vec(), y: y(r), w: 1.0 / y(r).powi(2) }).collect();
    let c = nnls(&obs, 3).ok_or_else(|| FitError::Singular(what.into()))?;
    Ok([c[0], c[1], c[2]])
}

/// Profile name for a measured group, e.g. `llama2-70b-h100pcap-tp4`.
pub fn profile_name(model: &str, gpu: &Gpu, tp: u32) -> String {
    format!("{model}-{}-tp{tp}", gpu.short)
}

/// Fits one profile per (model, hardware, tensor-parallel) group in `rows`.
pub fn fit_all(rows: &[PerfRow]) -> Result<Vec<Profile>, FitError> {
    let mut groups: BTreeMap<(String, String, u32), Vec<&PerfRow>> = BTreeMap::new();
    for r in rows {
        groups.entry((r.model.clone(), r.hardware.clone(), r.tensor_parallel)).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((model, hw, tp), all) in &groups {
        let used: Vec<&PerfRow> = all.iter().copied().filter(|r| !is_artefact(r)).collect();
        let name_hint = format!("{model} {hw} tp{tp}");
        if used.is_empty() {
            return Err(FitError::Empty(name_hint));
        }
        let arch = arch(model)?;
        let gpu = GPUS.iter().find(|g| g.name == hw).ok_or_else(|| FitError::UnknownModel(hw.clone()))?;
        let prefill = fit_prefill(&used, &name_hint)?;
        let dc = fit3(&used, token_features, |r| r.token_time, &name_hint)?;
        let mut p = Profile {
            name: profile_name(model, gpu, *tp),
            model: model.clone(),
            hardware: hw.clone(),
            tensor_parallel: *tp,
            source: "fitted on Splitwise perf_model.csv (Mutinifni/splitwise-sim, MIT); see docs/profiles.md".into(),
            max_batch: MAX_BATCH,
            max_step_tokens: MAX_STEP_TOKENS,
            kv_tokens: kv_tokens(arch, gpu, *tp),
            max_context: arch.max_context,
            watts: round(engine_watts(rows, model, gpu, *tp), 1),
            prefill,
            decode: DecodeModel { base_ms: dc[0], per_seq_ms: dc[1], per_ctx_token_ms: dc[2] },
            fit: FitReport::default(),
        };
        let (pe, te) = errors(&p, &used);
        p.fit = FitReport {
            prompt_time_median_rel_err: round(pe, 4),
            token_time_median_rel_err: round(te, 4),
            rows: used.len(),
            excluded: if used.len() < all.len() {
                format!("{} {ARTEFACT_NOTE}", all.len() - used.len())
            } else {
                String::new()
            },
        };
        out.push(p);
    }
    Ok(out)
}

/// Fits the roofline prefill model: below a breakpoint in prompt tokens time is flat (the
/// floor, the median of those rows); above it, linear in tokens and attention pairs. Every
/// measured token count is tried as the breakpoint (including none) and the one with the least
/// median relative error over all rows wins.
fn fit_prefill(rows: &[&PerfRow], what: &str) -> Result<PrefillModel, FitError> {
    let tokens = |r: &PerfRow| prompt_features(r)[1];
    let mut cuts: Vec<f64> = rows.iter().map(|r| tokens(r)).collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let mut best: Option<(f64, PrefillModel)> = None;
    for &cut in &cuts {
        let (low, high): (Vec<&PerfRow>, Vec<&PerfRow>) = rows.iter().partition(|r| tokens(r) < cut);
        if high.len() < 4 {
            continue;
        }
        let floor = median(&low.iter().map(|r| r.prompt_time).collect::<Vec<_>>()).unwrap_or(0.0);
        let Ok(c) = fit3(&high, prompt_features, |r| r.prompt_time, what) else {
            continue;
        };
        let m = PrefillModel { floor_ms: floor, base_ms: c[0], per_token_ms: c[1], per_pair_ms: c[2] };
        let err: Vec<f64> = rows
            .iter()
            .map(|r| {
                let f = prompt_features(r);
                let pred = (m.base_ms + m.per_token_ms * f[1] + m.per_pair_ms * f[2]).max(m.floor_ms);
                (pred - r.prompt_time).abs() / r.prompt_time
            })
            .collect();
        let e = median(&err).unwrap_or(f64::INFINITY);
        if best.as_ref().is_none_or(|(b, _)| e < *b) {
            best = Some((e, m));
        }
    }
    best.map(|(_, m)| m).ok_or_else(|| FitError::Singular(what.into()))
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Mean measured average power (fraction of TDP) of a model at a TP size on A100, the only
/// hardware with power in the CSV; `None` when not measured.
fn measured_power_share(rows: &[PerfRow], model: &str, hw: &str, tp: u32) -> Option<f64> {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.model == model && r.hardware == hw && r.tensor_parallel == tp && r.average_power > 0.0)
        .map(|r| r.average_power)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Engine watts: measured share of TDP x TDP x GPUs. H100 rows carry no power, so they take the
/// A100 share of the same model and TP (an assumption), and the power-capped H100 draws
/// [`PCAP_POWER_SHARE`] of that.
fn engine_watts(rows: &[PerfRow], model: &str, gpu: &Gpu, tp: u32) -> f64 {
    let share = measured_power_share(rows, model, gpu.name, tp)
        .or_else(|| measured_power_share(rows, model, "a100-80gb", tp))
        .unwrap_or(0.6);
    let cap = if gpu.name.ends_with("pcap") { PCAP_POWER_SHARE } else { 1.0 };
    share * gpu.tdp_watts * f64::from(tp) * cap
}

/// Derives a profile for a smaller model from a measured one on the same GPU, scaling each
/// term by what bounds it (see docs/profiles.md):
/// - per-step fixed time (reading the weights) by weight bytes per GPU;
/// - per-token prefill compute and per-sequence decode compute by parameters per GPU;
/// - attention pairs by attention width per GPU; context reads by KV bytes per token per GPU.
pub fn derive(base: &Profile, base_arch: &Arch, target: &Arch, gpu: &Gpu, tp: u32) -> Profile {
    let per_gpu = |a: &Arch, t: u32| a.params / f64::from(t);
    let weights = per_gpu(target, tp) / per_gpu(base_arch, base.tensor_parallel);
    let compute = weights;
    let attn = (target.attn_width() / f64::from(tp)) / (base_arch.attn_width() / f64::from(base.tensor_parallel));
    let kv = (target.kv_bytes_per_token() / f64::from(tp))
        / (base_arch.kv_bytes_per_token() / f64::from(base.tensor_parallel));
    let per_gpu_watts = base.watts / f64::from(base.tensor_parallel);
    Profile {
        name: profile_name(target.name, gpu, tp),
        model: target.name.into(),
        hardware: gpu.name.into(),
        tensor_parallel: tp,
        source: format!(
            "derived from {} by scaling (weights x{weights:.3}, compute x{compute:.3}, attention x{attn:.3}, KV reads x{kv:.3}); not measured; see docs/profiles.md",
            base.name
        ),
        max_batch: MAX_BATCH,
        max_step_tokens: MAX_STEP_TOKENS,
        kv_tokens: kv_tokens(target, gpu, tp),
        max_context: target.max_context,
        watts: round(per_gpu_watts * f64::from(tp), 1),
        prefill: PrefillModel {
            floor_ms: base.prefill.floor_ms * weights,
            base_ms: base.prefill.base_ms * weights,
            per_token_ms: base.prefill.per_token_ms * compute,
            per_pair_ms: base.prefill.per_pair_ms * attn,
        },
        decode: DecodeModel {
            base_ms: base.decode.base_ms * weights,
            per_seq_ms: base.decode.per_seq_ms * compute,
            per_ctx_token_ms: base.decode.per_ctx_token_ms * kv,
        },
        fit: FitReport { excluded: "derived, not fitted: no measured rows".into(), ..Default::default() },
    }
}

/// Every shipped profile: the fitted ones plus the derived Llama-3-8B on one H100.
pub fn all_profiles(rows: &[PerfRow]) -> Result<Vec<Profile>, FitError> {
    let mut out = fit_all(rows)?;
    let base = out
        .iter()
        .find(|p| p.name == "llama2-70b-h100-tp2")
        .cloned()
        .ok_or_else(|| FitError::Empty("llama2-70b h100-80gb tp2".into()))?;
    let h100 = GPUS.iter().find(|g| g.name == "h100-80gb").expect("h100 listed");
    out.push(derive(&base, arch("llama2-70b")?, arch("llama3-8b")?, h100, 1));
    Ok(out)
}

/// Writes each profile as `<dir>/<name>.toml`.
pub fn write_profiles(profiles: &[Profile], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for p in profiles {
        let header = "# Generated by `tollgate profiles fit`; do not edit by hand (docs/profiles.md).\n";
        std::fs::write(dir.join(format!("{}.toml", p.name)), format!("{header}{}", p.to_toml()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::Profile;

    fn shipped_csv() -> Vec<PerfRow> {
        read_perf_csv(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/perf/perf_model.csv")).unwrap()
    }

    /// The shipped profiles reproduce every measured (model, hardware, TP) grid of the CSV with a
    /// median relative error under 10% for both prompt time and per-token time. Errors are
    /// recomputed here from the CSV, not read from the profiles' own fit reports.
    #[test]
    fn shipped_profiles_reproduce_the_measured_grid_within_ten_percent() {
        let rows = shipped_csv();
        let mut checked = 0;
        for p in Profile::builtins().into_iter().filter(|p| p.fit.rows > 0) {
            let grid: Vec<&PerfRow> = rows
                .iter()
                .filter(|r| {
                    profile_name(&r.model, GPUS.iter().find(|g| g.name == r.hardware).unwrap(), r.tensor_parallel)
                        == p.name
                })
                .filter(|r| !is_artefact(r))
                .collect();
            assert!(grid.len() >= 100, "{}: {} rows", p.name, grid.len());
            let (pe, te) = errors(&p, &grid);
            assert!(pe < 0.10, "{} prompt_time median rel err {pe}", p.name);
            assert!(te < 0.10, "{} token_time median rel err {te}", p.name);
            checked += 1;
        }
        assert_eq!(checked, 12, "every measured group has a shipped profile");
    }

    /// `tollgate profiles fit` is the derivation of the shipped files: refitting gives them back.
    #[test]
    fn refitting_reproduces_the_shipped_profiles() {
        for p in all_profiles(&shipped_csv()).unwrap() {
            assert_eq!(Profile::builtin(&p.name).unwrap(), p, "{} differs from a fresh fit", p.name);
        }
    }

    #[test]
    fn bad_rows_are_reported_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        let header = "model,hardware,prompt_size,batch_size,token_size,peak_power,average_power,prompt_time,token_time,e2e_time,tensor_parallel\n";
        std::fs::write(&path, format!("{header}llama2-70b,a100-80gb,512,1,128,1,0.7,196,54,7168,2\nllama2-70b,a100-80gb,oops,1,128,1,0.7,196,54,7168,2\n")).unwrap();
        let err = read_perf_csv(&path).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }
}
