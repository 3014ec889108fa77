//! `tollgate emulate`: an OpenAI-compatible HTTP server whose timing comes from the engine
//! model. Chat and text completions (plain and SSE; tool calls when tools are offered), Anthropic
//! Messages and OpenAI Responses (translated to and from chat), embeddings, models, health and
//! vLLM-named metrics. Faults ([`super::faults`]) are injected where a request names one or the server's
//! rules draw one.

use super::answer::Running;
use super::engine::Submission;
use super::fault_http::{before_response, whole_response};
use super::faults::{self, Fault, Stage};
use super::metrics::Metrics;
use super::runtime::{Delivery, Fleet};
use super::text;
use super::tools::{self, ToolCall};
use crate::api::openai::{
    parse_generation_request, ChatRequest, CompletionRequest, EmbeddingRequest, Endpoint, Generation, Prompt,
    ResponseMeta,
};
use crate::api::{parse_body as parse, tokens, ApiError};
use crate::serve::http::ConnReset;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

pub use super::config::EmulatorConfig;

pub struct Emulator {
    cfg: EmulatorConfig,
    fleet: Fleet,
    metrics: Metrics,
    created: u64,
}

/// Default embedding width (as all-MiniLM-L6-v2).
const EMBEDDING_DIMS: usize = 384;
const MAX_EMBEDDING_DIMS: i64 = 8192;

impl Emulator {
    /// Starts the engine replicas; must be called inside a tokio runtime.
    pub fn start(cfg: EmulatorConfig) -> Arc<Emulator> {
        let metrics = Metrics::new();
        let fleet = Fleet::start(&cfg.profile, cfg.replicas, cfg.time_scale, metrics.clone());
        Arc::new(Emulator { cfg, fleet, metrics, created: (crate::units::unix_ms() / 1000) as u64 })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat))
            .route(
                "/v1/messages",
                post(|s, r, h, b| as_chat(crate::api::anthropic::request::to_chat, (s, r, h, b)))
                    .layer(axum::middleware::from_fn(crate::api::anthropic::adapt)),
            )
            .route(
                "/v1/responses",
                post(|s, r, h, b| as_chat(crate::api::responses::request::to_chat, (s, r, h, b)))
                    .layer(axum::middleware::from_fn(super::ingress::responses)),
            )
            .route("/v1/completions", post(completions))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .route("/health", get(|| async { StatusCode::OK }))
            .route("/metrics", get(metrics))
            .fallback(crate::api::error::unknown_route)
            .with_state(self.clone())
    }

    fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if model == self.cfg.model_name {
            Ok(())
        } else {
            Err(ApiError::ModelNotFound(model.to_string()))
        }
    }

    /// Validates lengths and decides how many tokens to generate.
    fn output_len(&self, gen: &Generation, prompt: u32, rng: &mut ChaCha8Rng) -> Result<u32, ApiError> {
        let max_context = self.cfg.profile.max_context;
        let requested = gen.max_tokens()?;
        let min = gen.min_tokens()?;
        let too_long = |completion: u64| ApiError::ContextLengthExceeded {
            max_context,
            requested: u64::from(prompt) + completion,
            prompt: u64::from(prompt),
            completion,
        };
        if prompt >= max_context {
            return Err(too_long(u64::from(requested.unwrap_or(1))));
        }
        let room = max_context - prompt;
        if let Some(m) = requested {
            if m > room {
                return Err(too_long(u64::from(m)));
            }
        }
        if min > requested.unwrap_or(room) {
            return Err(ApiError::InvalidValue {
                message: format!(
                    "min_tokens ({min}) must not exceed the completion limit ({}).",
                    requested.unwrap_or(room)
                ),
                param: "min_tokens",
            });
        }
        let limit = requested.unwrap_or(room);
        Ok(if gen.ignore_eos { limit } else { text::sample_output_len(rng, min.max(1), limit) })
    }

    /// A request's random source: reproducible from the request's `seed` and prompt when given,
    /// else from the server seed and the request number.
    fn request_rng(&self, gen: &Generation, prompt: &[u32], id: u64) -> ChaCha8Rng {
        let seed = match gen.seed {
            Some(s) => (s as u64) ^ text::tokens_hash(prompt).rotate_left(17),
            None => self.cfg.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        text::rng(seed)
    }

    /// The fault for request `id`: the one its header names, else a draw from the server's rules
    /// (reproducible from the server seed and the request number).
    fn fault(&self, headers: &HeaderMap, id: u64) -> Result<Option<Fault>, ApiError> {
        let named = match headers.get(faults::HEADER) {
            None => None,
            Some(v) => Some(v.to_str().unwrap_or("").parse::<Fault>().map_err(|e| ApiError::InvalidValue {
                message: format!("{}: {e}", faults::HEADER),
                param: faults::HEADER,
            })?),
        };
        let mut rng = text::rng(self.cfg.seed ^ id.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0xFA17);
        Ok(self.cfg.faults.choose(named, &mut rng))
    }

    async fn generate(
        self: &Arc<Self>,
        endpoint: Endpoint,
        gen: Generation,
        prompt: Vec<u32>,
        call: Call,
        tool: Option<ToolCall>,
    ) -> Result<Response, ApiError> {
        gen.validate()?;
        let arrived = Instant::now();
        let id = self.fleet.next_id();
        let fault = self.fault(&call.headers, id)?;
        if let Some(r) = before_response(fault, call.reset.as_ref()).await {
            return Ok(r);
        }
        let mut rng = self.request_rng(&gen, &prompt, id);
        let prompt_len = u32::try_from(prompt.len()).unwrap_or(u32::MAX);
        if prompt_len == 0 {
            return Err(ApiError::InvalidValue { message: "The prompt must not be empty.".into(), param: "prompt" });
        }
        let output = self.output_len(&gen, prompt_len, &mut rng)?;
        // A tool call takes one token per piece of its arguments, if the limit allows them all.
        let limit = gen.max_tokens().ok().flatten().unwrap_or(u32::MAX);
        let tool = tool.filter(|t| (t.pieces.len() as u32) <= limit && !t.pieces.is_empty());
        let output = tool.as_ref().map_or(output, |t| t.pieces.len() as u32);
        let ticket = self
            .fleet
            .submit(Submission {
                id,
                prompt_tokens: prompt_len,
                block_hashes: text::block_hashes(&prompt),
                output_tokens: output,
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let req = Running {
            metrics: self.metrics.clone(),
            time_scale: self.cfg.time_scale,
            meta: ResponseMeta {
                endpoint,
                id: format!("{}-{id}", if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" }),
                created: self.created,
                model: self.cfg.model_name.clone(),
                include_usage: gen.include_usage(),
            },
            prompt_tokens: prompt_len,
            target: output,
            limit_hit: gen.ignore_eos || gen.max_tokens().ok().flatten() == Some(output),
            rng,
            arrived,
            ticket,
            tool,
        };
        let fault = fault.filter(|f| f.stage() != Stage::Before);
        let mut resp = if gen.stream {
            req.stream(fault, call.reset).into_response()
        } else {
            let whole = req.collect().await?;
            whole_response(&whole, fault, call.reset).await
        };
        if let Some(v) = call.headers.get("x-request-id") {
            resp.headers_mut().insert("x-request-id", v.clone());
        }
        Ok(resp)
    }
}

/// One request's HTTP context: its headers (a named fault, `x-request-id`) and the handle that
/// resets its connection.
struct Call {
    headers: HeaderMap,
    reset: Option<ConnReset>,
}

/// A request body, or the reason it could not be read (too large, say).
type Body = Result<Bytes, BytesRejection>;

async fn chat(
    State(emu): State<Arc<Emulator>>,
    reset: Option<Extension<ConnReset>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let (req, gen): (ChatRequest, Generation) = parse_generation_request(&body)?;
    emu.check_model(&req.model)?;
    if req.messages.is_empty() {
        return Err(ApiError::InvalidValue {
            message: "messages must contain at least one message.".into(),
            param: "messages",
        });
    }
    let prompt = tokens::chat_prompt_tokens(&req.messages);
    // Only a body that offers tools is read again for them (prompts can be long).
    const TOOLS: &[u8] = b"\"tools\"";
    let offers = body.windows(TOOLS.len()).any(|w| w == TOOLS);
    let tool = offers
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
        .and_then(|v| tools::call_for(&v, text::tokens_hash(&prompt)));
    emu.generate(Endpoint::Chat, gen, prompt, Call { headers, reset: reset.map(|e| e.0) }, tool).await
}

/// Another API's request (Anthropic's Messages, OpenAI's Responses: `to_chat` is its ingress
/// translation) served as chat; the route's layer translates the answer.
async fn as_chat(
    to_chat: fn(&serde_json::Value) -> Result<serde_json::Value, ApiError>,
    (s, r, h, b): (State<Arc<Emulator>>, Option<Extension<ConnReset>>, HeaderMap, Body),
) -> Result<Response, ApiError> {
    chat(s, r, h, Ok(super::ingress::as_chat(b, to_chat)?)).await
}

async fn completions(
    State(emu): State<Arc<Emulator>>,
    reset: Option<Extension<ConnReset>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let (req, gen): (CompletionRequest, Generation) = parse_generation_request(&body)?;
    emu.check_model(&req.model)?;
    if matches!(&req.prompt, Prompt::Texts(v) if v.len() != 1) {
        return Err(ApiError::InvalidValue {
            message: "The emulator takes one prompt per request; send a string or a list of one string.".into(),
            param: "prompt",
        });
    }
    let prompt = tokens::completion_prompt_tokens(&req.prompt);
    emu.generate(Endpoint::Completion, gen, prompt, Call { headers, reset: reset.map(|e| e.0) }, None).await
}

async fn embeddings(
    State(emu): State<Arc<Emulator>>,
    reset: Option<Extension<ConnReset>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = body?;
    let req: EmbeddingRequest = parse(&body)?;
    emu.check_model(&req.model)?;
    let reset = reset.map(|e| e.0);
    let fault = emu.fault(&headers, emu.fleet.next_id())?;
    if let Some(r) = before_response(fault, reset.as_ref()).await {
        return Ok(r);
    }
    let dims = match req.dimensions {
        None => EMBEDDING_DIMS,
        Some(d) if (1..=MAX_EMBEDDING_DIMS).contains(&d) => d as usize,
        Some(d) => {
            return Err(ApiError::InvalidValue {
                message: format!("dimensions must be between 1 and {MAX_EMBEDDING_DIMS}; got {d}."),
                param: "dimensions",
            })
        }
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::InvalidValue {
                message: format!("encoding_format must be 'float' or 'base64'; got '{other}'."),
                param: "encoding_format",
            })
        }
    };
    let inputs = tokens::embedding_inputs(&req.input);
    if inputs.is_empty() || inputs.iter().any(Vec::is_empty) {
        return Err(ApiError::InvalidValue { message: "input must not be empty.".into(), param: "input" });
    }
    let max_context = emu.cfg.profile.max_context;
    // Each input is a prefill-only request through the engine, so embeddings load it as they would.
    let mut tickets = Vec::new();
    for toks in &inputs {
        let n = toks.len() as u32;
        if n > max_context {
            return Err(ApiError::ContextLengthExceeded {
                max_context,
                requested: u64::from(n),
                prompt: u64::from(n),
                completion: 0,
            });
        }
        let id = emu.fleet.next_id();
        let t = emu
            .fleet
            .submit(Submission { id, prompt_tokens: n, block_hashes: text::block_hashes(toks), output_tokens: 0 })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        tickets.push(t);
    }
    let mut data = Vec::new();
    let mut total = 0u64;
    for (i, (mut t, toks)) in tickets.into_iter().zip(&inputs).enumerate() {
        match t.rx.recv().await {
            Some(Delivery::Prefilled { .. }) => t.finish(),
            _ => return Err(ApiError::Internal("engine stopped".into())),
        }
        total += toks.len() as u64;
        let v = text::embedding(toks, dims);
        let emb = if base64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            json!(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            json!(v)
        };
        data.push(json!({"object": "embedding", "index": i, "embedding": emb}));
    }
    let answer = json!({"object": "list", "data": data, "model": emu.cfg.model_name, "usage": {"prompt_tokens": total, "total_tokens": total}});
    Ok(whole_response(&answer, fault.filter(|f| f.stage() != Stage::Before), reset).await)
}

async fn models(State(emu): State<Arc<Emulator>>) -> Json<serde_json::Value> {
    Json(json!({"object": "list", "data": [{
        "id": emu.cfg.model_name, "object": "model", "created": emu.created, "owned_by": "tollgate-emulator",
        "max_model_len": emu.cfg.profile.max_context, "profile": emu.cfg.profile.name,
    }]}))
}

async fn metrics(State(emu): State<Arc<Emulator>>) -> Response {
    let mut r = emu.metrics.render().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}
