//! Engine profiles: the timing, memory and power model of one engine (a model on some
//! hardware at some tensor-parallel size), and the capacity figures the allocator reads.
//!
//! A profile is data (TOML). Built-in profiles live in `profiles/` and are embedded in
//! the binary; `tollgate calibrate` writes new ones in the same format.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Time to prefill, in milliseconds: `max(floor_ms, base_ms + per_token_ms * tokens + per_pair_ms * pairs)`,
/// where `pairs` counts attention work (a prompt of length P contributes P^2; a chunk of c tokens
/// at offset o contributes c * (2o + c), so chunks of one prompt add up to P^2). The floor is the
/// roofline's memory-bound part: short prompts cost about one read of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefillModel {
    #[serde(default)]
    pub floor_ms: f64,
    pub base_ms: f64,
    pub per_token_ms: f64,
    pub per_pair_ms: f64,
}

/// Time of one decode step, in milliseconds: `base_ms + per_seq_ms * batch + per_ctx_token_ms * ctx`,
/// where `ctx` is the total number of context tokens the batch attends to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeModel {
    pub base_ms: f64,
    pub per_seq_ms: f64,
    pub per_ctx_token_ms: f64,
}

/// How well the timing model reproduces the data it was derived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FitReport {
    /// Median relative error of predicted prompt (prefill) time on the measured points.
    pub prompt_time_median_rel_err: f64,
    /// Median relative error of predicted per-token (decode step) time.
    pub token_time_median_rel_err: f64,
    /// Number of measured rows used.
    pub rows: usize,
    /// Rows left out, and why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub excluded: String,
}

/// One engine's physics. All times are for one engine (one replica).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name, e.g. `llama2-70b-h100-tp4`.
    pub name: String,
    /// Model served, reported by the emulator's `/v1/models`.
    pub model: String,
    pub hardware: String,
    pub tensor_parallel: u32,
    /// Where the numbers come from (measured data, derivation, or a calibrate run).
    pub source: String,
    /// Maximum sequences in the running batch (vLLM's `max_num_seqs`).
    pub max_batch: u32,
    /// Token budget of one step, shared by decodes and prefill chunks (`max_num_batched_tokens`).
    pub max_step_tokens: u32,
    /// KV-cache capacity in tokens.
    pub kv_tokens: u64,
    /// Longest context (prompt plus output) a request may have.
    pub max_context: u32,
    /// Average power draw of the engine under load, watts (all its GPUs).
    pub watts: f64,
    pub prefill: PrefillModel,
    pub decode: DecodeModel,
    #[serde(default)]
    pub fit: FitReport,
}

/// Work done in one engine step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepWork {
    /// Sequences producing one output token this step.
    pub decode_seqs: u32,
    /// Context tokens those sequences attend to.
    pub decode_ctx_tokens: u64,
    /// Prompt tokens prefilled this step (all chunks).
    pub prefill_tokens: u32,
    /// Attention pairs of those chunks (see [`PrefillModel`]).
    pub prefill_pairs: f64,
}

/// The figures the allocator plans with, for one engine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CapacityFigures {
    /// Engine-seconds per prompt token, at the reference prompt length.
    pub prefill_s_per_token: f64,
    /// Engine-seconds per output token, amortised over the operating batch.
    pub decode_s_per_token: f64,
    pub operating_batch: u32,
    pub max_batch: u32,
    pub kv_tokens: u64,
    pub watts: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown profile `{0}` (try `tollgate emulate --list-profiles`)")]
    Unknown(String),
    #[error("reading profile {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing profile {path}: {source}")]
    Parse { path: String, source: Box<toml::de::Error> },
    #[error("profile {name}: {problem}")]
    Invalid { name: String, problem: String },
}

/// Built-in profiles, embedded from `profiles/`.
const BUILTIN: &[(&str, &str)] = &[
    ("llama2-70b-a100-tp2", include_str!("../../profiles/llama2-70b-a100-tp2.toml")),
    ("llama2-70b-a100-tp4", include_str!("../../profiles/llama2-70b-a100-tp4.toml")),
    ("llama2-70b-a100-tp8", include_str!("../../profiles/llama2-70b-a100-tp8.toml")),
    ("llama2-70b-h100-tp2", include_str!("../../profiles/llama2-70b-h100-tp2.toml")),
    ("llama2-70b-h100-tp4", include_str!("../../profiles/llama2-70b-h100-tp4.toml")),
    ("llama2-70b-h100-tp8", include_str!("../../profiles/llama2-70b-h100-tp8.toml")),
    ("llama2-70b-h100pcap-tp2", include_str!("../../profiles/llama2-70b-h100pcap-tp2.toml")),
    ("llama2-70b-h100pcap-tp4", include_str!("../../profiles/llama2-70b-h100pcap-tp4.toml")),
    ("llama2-70b-h100pcap-tp8", include_str!("../../profiles/llama2-70b-h100pcap-tp8.toml")),
    ("bloom-176b-a100-tp8", include_str!("../../profiles/bloom-176b-a100-tp8.toml")),
    ("bloom-176b-h100-tp8", include_str!("../../profiles/bloom-176b-h100-tp8.toml")),
    ("bloom-176b-h100pcap-tp8", include_str!("../../profiles/bloom-176b-h100pcap-tp8.toml")),
    ("llama3-8b-h100-tp1", include_str!("../../profiles/llama3-8b-h100-tp1.toml")),
];

/// The profile `tollgate emulate` uses when none is named.
pub const DEFAULT_PROFILE: &str = "llama3-8b-h100-tp1";

impl Profile {
    /// Parses and validates a profile from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let p: Profile =
            toml::from_str(text).map_err(|e| ProfileError::Parse { path: origin.to_string(), source: Box::new(e) })?;
        p.validate()?;
        Ok(p)
    }

    /// Loads a profile from a file.
    pub fn from_file(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError::Read { path: path.display().to_string(), source: e })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let (_, text) =
            BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| ProfileError::Unknown(name.to_string()))?;
        Self::from_toml(text, name)
    }

    /// All built-in profiles.
    pub fn builtins() -> Vec<Profile> {
        BUILTIN.iter().map(|(n, t)| Self::from_toml(t, n).expect("built-in profiles are valid")).collect()
    }

    /// Resolves `spec` as a built-in name, or else as a path to a profile file.
    pub fn resolve(spec: &str) -> Result<Profile, ProfileError> {
        match Self::builtin(spec) {
            Ok(p) => Ok(p),
            Err(ProfileError::Unknown(_)) if Path::new(spec).is_file() => Self::from_file(Path::new(spec)),
            Err(e) => Err(e),
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("profile serialises")
    }

    fn validate(&self) -> Result<(), ProfileError> {
        let bad = |problem: &str| Err(ProfileError::Invalid { name: self.name.clone(), problem: problem.to_string() });
        let coeffs = [
            self.prefill.floor_ms,
            self.prefill.base_ms,
            self.prefill.per_token_ms,
            self.prefill.per_pair_ms,
            self.decode.base_ms,
            self.decode.per_seq_ms,
            self.decode.per_ctx_token_ms,
        ];
        if coeffs.iter().any(|c| !c.is_finite() || *c < 0.0) {
            return bad("timing coefficients must be finite and non-negative");
        }
        if self.prefill.per_token_ms <= 0.0 && self.prefill.per_pair_ms <= 0.0 {
            return bad("prefill must take time per token");
        }
        if self.decode.base_ms + self.decode.per_seq_ms <= 0.0 {
            return bad("a decode step must take time");
        }
        if self.max_batch == 0 || self.max_step_tokens == 0 {
            return bad("max_batch and max_step_tokens must be positive");
        }
        if self.max_context == 0 || self.kv_tokens < u64::from(self.max_context) {
            return bad("kv_tokens must hold at least one request of max_context tokens");
        }
        if !self.watts.is_finite() || self.watts < 0.0 {
            return bad("watts must be non-negative");
        }
        Ok(())
    }

    /// Prefill time in milliseconds for `tokens` prompt tokens with `pairs` attention pairs.
    pub fn prefill_ms(&self, tokens: f64, pairs: f64) -> f64 {
        let p = &self.prefill;
        (p.base_ms + self.prefill_marginal_ms(tokens, pairs)).max(p.floor_ms)
    }

    /// The compute that prefill adds to a step that already pays the fixed cost.
    pub fn prefill_marginal_ms(&self, tokens: f64, pairs: f64) -> f64 {
        self.prefill.per_token_ms * tokens + self.prefill.per_pair_ms * pairs
    }

    /// Decode step time in milliseconds for `batch` sequences attending to `ctx` tokens in all.
    pub fn decode_ms(&self, batch: f64, ctx: f64) -> f64 {
        let d = &self.decode;
        d.base_ms + d.per_seq_ms * batch + d.per_ctx_token_ms * ctx
    }

    /// Duration of one engine step in seconds. A step that mixes decodes and prefill chunks
    /// (chunked prefill) pays the decode step plus the prefill's marginal compute: the fixed
    /// per-step cost (reading the weights) is paid once.
    pub fn step_seconds(&self, w: &StepWork) -> f64 {
        let decode = (w.decode_seqs > 0).then(|| self.decode_ms(f64::from(w.decode_seqs), w.decode_ctx_tokens as f64));
        let tokens = f64::from(w.prefill_tokens);
        let ms = match (decode, w.prefill_tokens > 0) {
            (None, false) => 0.0,
            (Some(d), false) => d,
            (None, true) => self.prefill_ms(tokens, w.prefill_pairs),
            (Some(d), true) => d + self.prefill_marginal_ms(tokens, w.prefill_pairs),
        };
        ms / 1000.0
    }

    /// Engine-seconds per prompt token when prefilling a prompt of `prompt_len` tokens alone.
    pub fn prefill_s_per_token(&self, prompt_len: u32) -> f64 {
        let p = f64::from(prompt_len.max(1));
        self.prefill_ms(p, p * p) / p / 1000.0
    }

    /// Engine-seconds per output token, amortised over a batch of `batch` sequences whose
    /// mean context is `ctx_per_seq` tokens: `step_time(batch) / batch`.
    pub fn decode_s_per_token(&self, batch: u32, ctx_per_seq: u32) -> f64 {
        let b = f64::from(batch.max(1));
        self.decode_ms(b, b * f64::from(ctx_per_seq)) / b / 1000.0
    }

    /// The largest batch whose requests of `ctx_per_seq` context tokens all fit in the KV cache.
    pub fn operating_batch(&self, ctx_per_seq: u32) -> u32 {
        let fit = self.kv_tokens / u64::from(ctx_per_seq.max(1));
        fit.clamp(1, u64::from(self.max_batch)) as u32
    }

    /// Capacity figures at a reference request shape (`prompt` in, `output` out).
    pub fn capacity(&self, prompt: u32, output: u32) -> CapacityFigures {
        let ctx = prompt + output / 2;
        let batch = self.operating_batch(prompt + output);
        CapacityFigures {
            prefill_s_per_token: self.prefill_s_per_token(prompt),
            decode_s_per_token: self.decode_s_per_token(batch, ctx),
            operating_batch: batch,
            max_batch: self.max_batch,
            kv_tokens: self.kv_tokens,
            watts: self.watts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_loads_and_default_exists() {
        let all = Profile::builtins();
        assert_eq!(all.len(), BUILTIN.len());
        assert!(all.iter().any(|p| p.name == DEFAULT_PROFILE));
        for p in &all {
            let c = p.capacity(1024, 256);
            assert!(c.prefill_s_per_token > 0.0 && c.decode_s_per_token > 0.0, "{}", p.name);
            // Batching amortises decode: per-token cost at the operating batch is lower than alone.
            assert!(c.decode_s_per_token < p.decode_s_per_token(1, 1152), "{}", p.name);
        }
    }

    #[test]
    fn mixed_step_pays_overhead_once() {
        let p = Profile::builtin(DEFAULT_PROFILE).unwrap();
        let d = StepWork { decode_seqs: 8, decode_ctx_tokens: 8000, ..Default::default() };
        let f = StepWork { prefill_tokens: 512, prefill_pairs: 512.0 * 512.0, ..Default::default() };
        let both = StepWork { prefill_tokens: 512, prefill_pairs: 512.0 * 512.0, ..d };
        let sum = p.step_seconds(&d) + p.step_seconds(&f);
        let mixed = p.step_seconds(&both);
        assert!(mixed < sum && mixed > p.step_seconds(&d));
        let marginal = p.prefill_marginal_ms(512.0, 512.0 * 512.0) / 1000.0;
        assert!((mixed - p.step_seconds(&d) - marginal).abs() < 1e-12);
    }

    #[test]
    fn rejects_invalid_profiles() {
        let mut p = Profile::builtin(DEFAULT_PROFILE).unwrap();
        p.kv_tokens = 10;
        let err = Profile::from_toml(&p.to_toml(), "x").unwrap_err();
        assert!(err.to_string().contains("kv_tokens"), "{err}");
        let err = Profile::from_toml("name = 3", "y").unwrap_err();
        assert!(matches!(err, ProfileError::Parse { .. }));
    }
}
