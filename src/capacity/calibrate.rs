//! `tollgate calibrate`: measures a live OpenAI-compatible engine's prefill and decode times and
//! fits a [`Profile`] in the same form as the shipped ones, so a user can describe their fleet.
//!
//! Prefill: single streamed completions with `max_tokens = 1` at several prompt lengths; the
//! time to first token is the prefill time (plus one HTTP round trip, which lands in `base_ms`).
//! Decode: `B` concurrent streams with `ignore_eos`; each stream's time per token after the
//! first is the step time at batch `B`. One long-prompt stream separates the context term.
//! Prompts start with a random nonce and ask the engine not to reuse its prompt cache, so no
//! prefix cache hides the prefill.

use super::fit::MAX_STEP_TOKENS;
use super::lsq::{median, nnls, Obs};
use super::profile::{DecodeModel, FitReport, PrefillModel, Profile};
use futures::StreamExt;
use rand::Rng;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub prompt_sizes: Vec<u32>,
    pub batches: Vec<u32>,
    pub decode_tokens: u32,
    pub repeats: u32,
    /// Overrides for what the engine does not report.
    pub kv_tokens: Option<u64>,
    pub max_batch: Option<u32>,
    pub max_context: Option<u32>,
    pub watts: f64,
    pub hardware: String,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("the engine's stream had no usable tokens or usage ({0})")]
    BadStream(String),
    #[error("could not fit the {0} model to the measurements")]
    Fit(&'static str),
    #[error("the engine does not report {what}; pass --{flag}")]
    Missing { what: &'static str, flag: &'static str },
}

/// One streamed request as measured by the client.
#[derive(Debug, Clone)]
pub struct Sample {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Seconds from sending to the first token.
    pub ttft: f64,
    /// Seconds from the first token to the last.
    pub decode_span: f64,
}

impl Sample {
    /// Mean seconds per token after the first.
    pub fn per_token(&self) -> Option<f64> {
        (self.completion_tokens > 1).then(|| self.decode_span / f64::from(self.completion_tokens - 1))
    }
}

/// What a calibration measured, with the fitted profile.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub profile: Profile,
    /// (prompt tokens, seconds to first token) per prefill probe.
    pub prefill: Vec<(u32, f64)>,
    /// (batch, context tokens, seconds per step) per decode probe.
    pub decode: Vec<(u32, u64, f64)>,
}

struct Client {
    http: reqwest::Client,
    opts: CalibrateOptions,
}

impl Client {
    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.opts.url.trim_end_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.endpoint(path)).timeout(self.opts.timeout);
        match &self.opts.api_key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        let r = self.request(reqwest::Method::GET, path).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn get_text(&self, path: &str) -> Option<String> {
        let r = self.request(reqwest::Method::GET, path).send().await.ok()?;
        r.status().is_success().then_some(())?;
        r.text().await.ok()
    }

    /// A prompt of about `words` tokens that no cache has seen.
    fn prompt(words: u32) -> String {
        let nonce: u64 = rand::rng().random();
        let mut s = format!("{nonce:x}");
        for i in 0..words.saturating_sub(1) {
            s.push_str(if i % 2 == 0 { " hello" } else { " world" });
        }
        s
    }

    /// One streamed completion, timed from the client.
    async fn stream(&self, prompt_words: u32, max_tokens: u32) -> Result<Sample, CalibrateError> {
        let url = self.endpoint("/v1/completions");
        let body = json!({
            "model": self.opts.model, "prompt": Self::prompt(prompt_words), "max_tokens": max_tokens,
            "stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true,
            "temperature": 0.0, "cache_prompt": false,
        });
        let start = Instant::now();
        let resp = self
            .request(reqwest::Method::POST, "/v1/completions")
            .json(&body)
            .send()
            .await
            .map_err(|e| CalibrateError::Http { url: url.clone(), source: e })?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            return Err(CalibrateError::Status { url, status, body });
        }
        let (mut first, mut last, mut usage) = (None, None, None);
        let mut buf = Vec::new();
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| CalibrateError::Http { url: url.clone(), source: e })?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buf.drain(..pos + 2).collect();
                let text = String::from_utf8_lossy(&event);
                for line in text.lines() {
                    let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                        continue;
                    };
                    if data == "[DONE]" {
                        continue;
                    }
                    let Ok(v) = serde_json::from_str::<Value>(data) else {
                        continue;
                    };
                    let has_token = v["choices"].as_array().is_some_and(|c| !c.is_empty());
                    if has_token {
                        let now = start.elapsed().as_secs_f64();
                        first.get_or_insert(now);
                        last = Some(now);
                    }
                    if v["usage"].is_object() {
                        usage = Some(v["usage"].clone());
                    }
                }
            }
        }
        let usage = usage.ok_or_else(|| CalibrateError::BadStream("no usage chunk".into()))?;
        let (Some(first), Some(last)) = (first, last) else {
            return Err(CalibrateError::BadStream("no token chunks".into()));
        };
        let count = |k: &str| {
            usage[k].as_u64().map(|v| v as u32).ok_or_else(|| CalibrateError::BadStream(format!("usage without {k}")))
        };
        Ok(Sample {
            prompt_tokens: count("prompt_tokens")?,
            completion_tokens: count("completion_tokens")?,
            ttft: first,
            decode_span: last - first,
        })
    }

    /// Engine limits from llama.cpp's `/props`, vLLM's metrics or `/v1/models`, else the overrides.
    async fn limits(&self) -> Result<(u64, u32, u32), CalibrateError> {
        let (mut kv, mut batch, mut ctx) = (None, None, None);
        if let Some(p) = self.get_json("/props").await {
            let slots = p["total_slots"].as_u64();
            let n_ctx = p["default_generation_settings"]["n_ctx"].as_u64();
            if let (Some(s), Some(n)) = (slots, n_ctx) {
                kv = Some(s * n);
                batch = Some(s as u32);
                ctx = Some(n as u32);
            }
        }
        if let Some(m) = self.get_text("/metrics").await {
            if let Some(line) = m.lines().find(|l| l.starts_with("vllm:cache_config_info{")) {
                let label = |k: &str| {
                    line.split(&format!("{k}=\""))
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .and_then(|v| v.parse::<u64>().ok())
                };
                if let (Some(blocks), Some(size)) = (label("num_gpu_blocks"), label("block_size")) {
                    kv = Some(blocks * size);
                }
            }
        }
        if let Some(models) = self.get_json("/v1/models").await {
            let this = models["data"].as_array().and_then(|d| d.iter().find(|m| m["id"] == self.opts.model.as_str()));
            if let Some(len) = this.and_then(|m| m["max_model_len"].as_u64()) {
                ctx = Some(len as u32);
            }
        }
        let kv = self
            .opts
            .kv_tokens
            .or(kv)
            .ok_or(CalibrateError::Missing { what: "its KV-cache size", flag: "kv-tokens" })?;
        let batch = self
            .opts
            .max_batch
            .or(batch)
            .ok_or(CalibrateError::Missing { what: "its maximum batch", flag: "max-batch" })?;
        let ctx = self.opts.max_context.or(ctx).unwrap_or(kv.min(u64::from(u32::MAX)) as u32);
        Ok((kv, batch, ctx))
    }
}

/// Runs the measurements and fits a profile.
pub async fn calibrate(opts: CalibrateOptions) -> Result<Calibration, CalibrateError> {
    // A fresh connection per request: llama.cpp's server closes the connection after every
    // streamed response although it advertises keep-alive, so a pooled one may be dead.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| CalibrateError::Http { url: opts.url.clone(), source: e })?;
    let client = Client { http, opts: opts.clone() };
    let (kv_tokens, max_batch, max_context) = client.limits().await?;
    // Warm-up, so that lazy initialisation does not count as prefill.
    client.stream(8, 2).await?;

    let mut prefill = Vec::new();
    for &p in &opts.prompt_sizes {
        for _ in 0..opts.repeats {
            let s = client.stream(p, 1).await?;
            prefill.push((s.prompt_tokens, s.ttft));
        }
    }
    let short = opts.prompt_sizes.iter().copied().min().unwrap_or(16);
    let long = opts.prompt_sizes.iter().copied().max().unwrap_or(512);
    let mut decode = Vec::new();
    let probe = |b: u32, prompt: u32| {
        let client = &client;
        async move {
            let runs = futures::future::join_all((0..b).map(|_| client.stream(prompt, opts.decode_tokens))).await;
            let samples: Vec<Sample> = runs.into_iter().collect::<Result<_, _>>()?;
            let per: Vec<f64> = samples.iter().filter_map(Sample::per_token).collect();
            let step =
                median(&per).ok_or_else(|| CalibrateError::BadStream("fewer than two tokens per stream".into()))?;
            let ctx: u64 =
                samples.iter().map(|s| u64::from(s.prompt_tokens) + u64::from(s.completion_tokens) / 2).sum();
            Ok::<_, CalibrateError>((b, ctx, step))
        }
    };
    for &b in &opts.batches {
        for _ in 0..opts.repeats {
            decode.push(probe(b.min(max_batch), short).await?);
        }
    }
    for _ in 0..opts.repeats {
        decode.push(probe(1, long).await?);
    }

    let pobs: Vec<Obs> = prefill
        .iter()
        .map(|&(p, t)| {
            let (p, ms) = (f64::from(p), t * 1000.0);
            Obs { x: vec![1.0, p, p * p], y: ms, w: 1.0 / (ms * ms) }
        })
        .collect();
    let dobs: Vec<Obs> = decode
        .iter()
        .map(|&(b, ctx, s)| {
            let ms = s * 1000.0;
            Obs { x: vec![1.0, f64::from(b), ctx as f64], y: ms, w: 1.0 / (ms * ms) }
        })
        .collect();
    let pc = nnls(&pobs, 3).ok_or(CalibrateError::Fit("prefill"))?;
    let dc = nnls(&dobs, 3).ok_or(CalibrateError::Fit("decode"))?;
    let rel = |obs: &[Obs], c: &[f64]| {
        let e: Vec<f64> =
            obs.iter().map(|o| (o.x.iter().zip(c).map(|(a, b)| a * b).sum::<f64>() - o.y).abs() / o.y).collect();
        median(&e).unwrap_or(f64::NAN)
    };
    let name = format!("{}-calibrated", opts.model.replace(['/', ' ', ':'], "-"));
    let profile = Profile {
        name,
        model: opts.model.clone(),
        hardware: opts.hardware.clone(),
        tensor_parallel: 1,
        source: format!(
            "calibrated by `tollgate calibrate` against {} ({} prefill and {} decode probes, {} tokens each)",
            opts.url,
            prefill.len(),
            decode.len(),
            opts.decode_tokens
        ),
        max_batch,
        max_step_tokens: MAX_STEP_TOKENS,
        kv_tokens: kv_tokens.max(u64::from(max_context)),
        max_context,
        watts: opts.watts,
        prefill: PrefillModel { floor_ms: 0.0, base_ms: pc[0], per_token_ms: pc[1], per_pair_ms: pc[2] },
        decode: DecodeModel { base_ms: dc[0], per_seq_ms: dc[1], per_ctx_token_ms: dc[2] },
        fit: FitReport {
            prompt_time_median_rel_err: rel(&pobs, &pc),
            token_time_median_rel_err: rel(&dobs, &dc),
            rows: pobs.len() + dobs.len(),
            excluded: String::new(),
        },
    };
    Ok(Calibration { profile, prefill, decode })
}
