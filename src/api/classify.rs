//! The classify stage: a request body read and validated into a [`Classified`] request (model,
//! stream flag, prompt, limits), every rejection a client error naming its field; then checked
//! against the configuration (the model exists, the tenant may use it).

use super::openai::{ChatMessage, EmbeddingInput, Prompt};
use super::{from_value, invalid, parse_json, tokens, ApiError};
use crate::auth::Caller;
use crate::cache::Kind;
use crate::config::ServiceTier;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;

/// The endpoints the gateway proxies: OpenAI's chat, completions and embeddings; OpenAI's
/// Responses and Anthropic's Messages (each translated into a chat request here, and its answer
/// back at the edge: `api::responses`, `api::anthropic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Chat,
    Completions,
    Embeddings,
    Messages,
    Responses,
}

impl Route {
    /// The shape of a cacheable answer on this endpoint (embeddings are not cached).
    pub fn cache_kind(self) -> Option<Kind> {
        match self {
            Route::Chat | Route::Messages | Route::Responses => Some(Kind::Chat),
            Route::Completions => Some(Kind::Completion),
            Route::Embeddings => None,
        }
    }

    /// The OpenTelemetry GenAI operation name.
    pub fn operation(self) -> &'static str {
        match self {
            Route::Chat | Route::Messages | Route::Responses => "chat",
            Route::Completions => "text_completion",
            Route::Embeddings => "embeddings",
        }
    }

    /// The path an upstream is sent the request on: a translated request goes as chat.
    pub fn upstream_path(self) -> &'static str {
        match self {
            Route::Messages | Route::Responses => Route::Chat.path(),
            other => other.path(),
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Route::Chat => "/v1/chat/completions",
            Route::Completions => "/v1/completions",
            Route::Embeddings => "/v1/embeddings",
            Route::Messages => "/v1/messages",
            Route::Responses => "/v1/responses",
        }
    }
}

/// A request after classification: what is asked for, by whom, and the body to send on.
pub struct Classified {
    pub model: String,
    pub stream: bool,
    /// Whether the client asked for the usage chunk (tollgate always asks upstream).
    pub client_wants_usage: bool,
    /// The request body, with `stream_options.include_usage` set when streaming.
    pub json: Value,
    /// The validated prompt, counted only when needed (admission, or no usage upstream).
    pub prompt: Arc<PromptInput>,
    /// `max_completion_tokens` or `max_tokens`, if given.
    pub max_tokens: Option<u32>,
    /// Choices asked for (`n`, at least 1): the output may be this many times `max_tokens`.
    pub choices: u32,
    /// OpenAI's `service_tier` as the request named it (taken out of the upstream body: it names
    /// one of this gateway's tiers, not the upstream's), if it named one.
    pub service_tier: Option<ServiceTier>,
}

impl Classified {
    /// The service tier the request is served at.
    pub fn service(&self) -> ServiceTier {
        self.service_tier.unwrap_or_default()
    }
}

impl Classified {
    /// The upstream body: the client's, with the model name the serving pool uses (and, when
    /// admission capped the output of a request that set no `max_tokens`, that cap). Always
    /// serialised again from what was validated, never the client's bytes as they came: a body
    /// with a repeated key (two `model`s, say) could be read one way here and another upstream.
    pub fn body_for(&self, upstream_model: &str, output_cap: Option<u32>) -> Result<Bytes, ApiError> {
        let mut v = self.json.clone();
        v["model"] = Value::String(upstream_model.to_string());
        if let (Some(cap), None) = (output_cap, self.max_tokens) {
            // Admission held the charge of at most this many output tokens: the upstream must
            // not generate more.
            v["max_tokens"] = Value::from(cap);
        }
        serde_json::to_vec(&v).map(Bytes::from).map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// A request's prompt, kept so that tokens can be counted if (and only if) the upstream does not
/// report usage: tokenising every prompt would cost more than the rest of the request path.
pub enum PromptInput {
    Chat(Vec<ChatMessage>),
    Completion(Prompt),
    Embedding(EmbeddingInput),
}

impl PromptInput {
    /// The text a router judges: the last user message, or the completion prompt.
    pub fn router_text(&self) -> Option<String> {
        match self {
            PromptInput::Chat(m) => m.iter().rev().find(|m| m.role == "user").map(ChatMessage::text),
            PromptInput::Completion(Prompt::Text(t)) => Some(t.clone()),
            PromptInput::Completion(Prompt::Texts(t)) => t.first().cloned(),
            _ => None,
        }
    }

    /// Chained hashes of the prompt text's 2,048-character blocks (about 512 tokens), for
    /// prefix-aware placement.
    pub fn prefix_hashes(&self) -> Vec<u64> {
        let text = match self {
            PromptInput::Chat(m) => {
                let mut t = String::new();
                for msg in m {
                    t.push_str(&msg.role);
                    t.push('\n');
                    t.push_str(&msg.text());
                    t.push('\n');
                }
                t
            }
            PromptInput::Completion(Prompt::Text(t)) => t.clone(),
            _ => return Vec::new(),
        };
        crate::routing::placement::text_block_hashes(&text, 2048)
    }

    pub fn is_embedding(&self) -> bool {
        matches!(self, PromptInput::Embedding(_))
    }

    pub fn count(&self) -> i64 {
        (match self {
            PromptInput::Chat(m) => tokens::chat_prompt_count(m),
            PromptInput::Completion(p) => tokens::completion_prompt_count(p),
            PromptInput::Embedding(i) => tokens::embedding_count(i),
        }) as i64
    }
}

pub fn classify(
    cfg: &crate::config::Config,
    registry: &crate::backends::Registry,
    route: Route,
    caller: &Caller,
    body: &[u8],
) -> Result<Classified, ApiError> {
    let c = read_request(route, body)?;
    if registry.pool(&c.model).is_none() {
        return Err(ApiError::ModelNotFound(c.model));
    }
    if !cfg.may_use(&caller.tenant, &c.model) {
        return Err(ApiError::ModelNotAllowed(c.model));
    }
    if cfg.request_tier(&caller.tenant, c.service()).is_none() && c.service() != ServiceTier::Default {
        let name = c.service().as_str();
        return Err(invalid(format!("service_tier `{name}` is not offered by this gateway."), "service_tier"));
    }
    Ok(c)
}

/// Reads and validates a request body for `route` (no configuration involved): the model, the
/// stream flag, the prompt, the limits. Every rejection is a client error naming its field.
pub fn read_request(route: Route, body: &[u8]) -> Result<Classified, ApiError> {
    let mut v = parse_json(body)?;
    match route {
        Route::Messages => v = super::anthropic::request::to_chat(&v)?,
        Route::Responses => v = super::responses::request::to_chat(&v)?,
        _ => {}
    }
    let obj = v.as_object_mut().ok_or_else(|| ApiError::InvalidBody {
        message: "The request body must be a JSON object.".into(),
        param: None,
    })?;
    let model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::InvalidBody {
                message: "'model' must be a string.".into(),
                param: Some("model".into()),
            })
        }
        None => {
            return Err(ApiError::InvalidBody {
                message: "you must provide a model parameter.".into(),
                param: Some("model".into()),
            })
        }
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::InvalidBody {
                message: "'stream' must be a boolean.".into(),
                param: Some("stream".into()),
            })
        }
    };
    if stream && route == Route::Embeddings {
        return Err(ApiError::InvalidValue { message: "Embeddings cannot be streamed.".into(), param: "stream" });
    }
    let prompt = Arc::new(validate_prompt(route, obj)?);
    let client_wants_usage =
        obj.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_u64))
        .map(|m| m.min(u64::from(u32::MAX)) as u32);
    if stream {
        // Always meter: ask the upstream for usage even when the client did not.
        let opts = obj.entry("stream_options").or_insert_with(|| Value::Object(Default::default()));
        if let Some(o) = opts.as_object_mut() {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let choices = obj.get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 128) as u32;
    let service_tier = match obj.remove("service_tier") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(ServiceTier::parse(&name).ok_or_else(|| {
            invalid("service_tier must be one of 'auto', 'default', 'flex' or 'priority'.", "service_tier")
        })?),
        Some(_) => return Err(invalid("service_tier must be a string.", "service_tier")),
    };
    Ok(Classified { model, stream, client_wants_usage, json: v, prompt, max_tokens, choices, service_tier })
}

/// Validates the endpoint's required prompt field.
fn validate_prompt(route: Route, obj: &serde_json::Map<String, Value>) -> Result<PromptInput, ApiError> {
    let missing = |f: &str| ApiError::InvalidBody {
        message: format!("Missing required parameter: '{f}'."),
        param: Some(f.into()),
    };
    Ok(match route {
        Route::Chat | Route::Messages | Route::Responses => {
            let msgs = obj.get("messages").ok_or_else(|| missing("messages"))?;
            let msgs: Vec<ChatMessage> = from_value(msgs).map_err(|e| prefix_param(e, "messages"))?;
            if msgs.is_empty() {
                return Err(ApiError::InvalidValue {
                    message: "messages must not be empty.".into(),
                    param: "messages",
                });
            }
            PromptInput::Chat(msgs)
        }
        Route::Completions => {
            let p = obj.get("prompt").ok_or_else(|| missing("prompt"))?;
            PromptInput::Completion(from_value(p).map_err(|e| prefix_param(e, "prompt"))?)
        }
        Route::Embeddings => {
            let i = obj.get("input").ok_or_else(|| missing("input"))?;
            PromptInput::Embedding(from_value(i).map_err(|e| prefix_param(e, "input"))?)
        }
    })
}

fn prefix_param(e: ApiError, field: &str) -> ApiError {
    match e {
        ApiError::InvalidBody { message, param } => ApiError::InvalidBody {
            message,
            param: Some(match param {
                Some(p) if p.starts_with('[') => format!("{field}{p}"),
                Some(p) => format!("{field}.{p}"),
                None => field.into(),
            }),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_checks_the_model_exists_and_the_tenant_may_use_it() {
        let cfg = crate::config::one_pool_for_tests(1);
        let registry = crate::backends::Registry::new(&cfg).unwrap();
        let body =
            |m: &str| format!(r#"{{"model": "{m}", "messages": [{{"role": "user", "content": "hi"}}], "n": 3}}"#);
        let a = Caller { tenant: "a".into(), key_id: "k".into() };
        let c = classify(&cfg, &registry, Route::Chat, &a, body("m").as_bytes()).unwrap();
        assert_eq!((c.model.as_str(), c.choices, c.max_tokens), ("m", 3, None));
        let err = classify(&cfg, &registry, Route::Chat, &a, body("nope").as_bytes()).err();
        assert!(matches!(err, Some(ApiError::ModelNotFound(_))), "{err:?}");
        let stranger = Caller { tenant: "stranger".into(), key_id: "k".into() };
        let err = classify(&cfg, &registry, Route::Chat, &stranger, body("m").as_bytes()).err();
        assert!(matches!(err, Some(ApiError::ModelNotAllowed(_))), "{err:?}");
    }

    #[test]
    fn a_service_tier_is_read_out_of_the_body_and_must_be_offered() {
        let mut cfg = crate::config::one_pool_for_tests(1);
        let registry = crate::backends::Registry::new(&cfg).unwrap();
        let a = Caller { tenant: "a".into(), key_id: "k".into() };
        let body = |t: &str| {
            format!(r#"{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}], "service_tier": {t}}}"#)
        };
        let c = classify(&cfg, &registry, Route::Chat, &a, body(r#""auto""#).as_bytes()).unwrap();
        assert_eq!(c.service_tier, Some(ServiceTier::Default));
        assert!(c.json.get("service_tier").is_none(), "not sent upstream: {}", c.json);
        let param = |r: Result<Classified, ApiError>| match r {
            Err(ApiError::InvalidBody { param, .. }) => param,
            other => panic!("{:?}", other.map(|c| c.json)),
        };
        // Not offered by this configuration, not OpenAI's, not a string: 400s naming the field.
        for bad in [r#""flex""#, r#""scale""#, "3"] {
            let r = classify(&cfg, &registry, Route::Chat, &a, body(bad).as_bytes());
            assert_eq!(param(r).as_deref(), Some("service_tier"), "{bad}");
        }
        let tier = cfg.tiers[0].name.clone();
        cfg.service_tiers.flex = Some(tier.clone());
        let c = classify(&cfg, &registry, Route::Chat, &a, body(r#""flex""#).as_bytes()).unwrap();
        assert_eq!(cfg.request_tier("a", c.service()).map(|t| t.name.as_str()), Some(tier.as_str()));
    }

    #[test]
    fn the_upstream_body_carries_the_output_cap_only_when_the_client_set_none() {
        let c =
            read_request(Route::Chat, br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#).unwrap();
        let v: Value = serde_json::from_slice(&c.body_for("up", Some(16)).unwrap()).unwrap();
        assert_eq!((v["model"].as_str(), v["max_tokens"].as_u64()), (Some("up"), Some(16)));
        let c = read_request(Route::Chat, br#"{"model": "m", "messages": [], "max_tokens": 3}"#);
        assert!(c.is_err(), "empty messages are refused");
        let c = read_request(
            Route::Chat,
            br#"{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&c.body_for("up", Some(16)).unwrap()).unwrap();
        assert_eq!(v["max_tokens"].as_u64(), Some(3));
    }
}
