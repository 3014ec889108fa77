//! OpenAI wire types: the request fields tollgate reads, and the response and stream chunk
//! shapes it writes. Unknown request fields are accepted (and, in the gateway, passed through).

use super::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Text of a message: a string, or an array of content parts of which the text parts count.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub name: Option<String>,
}

impl ChatMessage {
    /// The message's text, parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(Content::Text(s)) => s.clone(),
            Some(Content::Parts(p)) => p.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>().join(""),
        }
    }
}

/// Generation fields common to chat and text completions. Lengths are signed so that negative
/// or absurd values reach validation and get a clear message instead of a type error.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Generation {
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    /// vLLM extension: generate exactly `max_tokens` (no end-of-sequence).
    #[serde(default)]
    pub ignore_eos: bool,
    /// vLLM extension: generate at least this many tokens.
    #[serde(default)]
    pub min_tokens: Option<i64>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub temperature: Option<f64>,
}

impl Generation {
    pub fn include_usage(&self) -> bool {
        self.stream_options.as_ref().is_some_and(|o| o.include_usage)
    }

    /// The requested completion limit (`max_completion_tokens` wins), validated.
    pub fn max_tokens(&self) -> Result<Option<u32>, ApiError> {
        let (v, param) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(v), _) => (v, "max_completion_tokens"),
            (None, Some(v)) => (v, "max_tokens"),
            (None, None) => return Ok(None),
        };
        positive(v, param).map(Some)
    }

    pub fn min_tokens(&self) -> Result<u32, ApiError> {
        match self.min_tokens {
            None | Some(0) => Ok(0),
            Some(v) => positive(v, "min_tokens"),
        }
    }

    /// Validates fields every endpoint shares.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::InvalidValue { message: format!("n must be 1 here; got {n}."), param: "n" });
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(ApiError::InvalidValue {
                    message: format!("{t} is not a valid temperature: it must be between 0 and 2."),
                    param: "temperature",
                });
            }
        }
        self.max_tokens()?;
        self.min_tokens()?;
        Ok(())
    }
}

fn positive(v: i64, param: &'static str) -> Result<u32, ApiError> {
    u32::try_from(v).ok().filter(|v| *v >= 1).ok_or_else(|| ApiError::InvalidValue {
        message: format!(
            "Invalid '{param}': integer {v} is out of range; it must be at least 1 and at most {}.",
            u32::MAX
        ),
        param,
    })
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
}

/// A completion prompt: a string, a list of strings, or token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
}

/// Parses a chat or completion body: the endpoint's own fields and the generation fields.
/// (Two typed reads of one parsed value rather than `#[serde(flatten)]`, which would lose the
/// path of a bad field.)
pub fn parse_generation_request<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(T, Generation), ApiError> {
    let v = super::error::parse_json(body)?;
    Ok((super::error::from_value(&v)?, super::error::from_value(&v)?))
}

/// Embedding input: a string, strings, or token ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default)]
    pub dimensions: Option<i64>,
    #[serde(default)]
    pub encoding_format: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt: u64, completion: u64) -> Self {
        Self { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
    }

    /// Usage JSON, with cached prompt tokens reported as OpenAI does.
    pub fn to_json(&self, cached_prompt_tokens: u64) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_prompt_tokens},
        })
    }
}

/// Which OpenAI endpoint a response is for; decides object names and choice shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }
}

/// What every response and chunk of one completion carries: its endpoint, id, creation time,
/// model, and whether the client asked for usage in the stream.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
}

impl ResponseMeta {
    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({"id": self.id, "object": self.endpoint.object(chunk), "created": self.created, "model": self.model, "choices": choices})
    }

    /// A non-streaming response.
    pub fn response(&self, text: &str, finish: &str, usage: Value) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completion => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish}),
        };
        let mut v = self.envelope(false, json!([choice]));
        v["usage"] = usage;
        v
    }

    /// A streamed chunk carrying `text` (and, on the first chat chunk, the role). With
    /// `include_usage`, every chunk but the last carries `"usage": null`, as OpenAI's do.
    pub fn chunk(&self, text: &str, first: bool, finish: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let delta = if first {
                    json!({"role": "assistant", "content": text})
                } else if finish.is_some() && text.is_empty() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Completion => json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish}),
        };
        let mut v = self.envelope(true, json!([choice]));
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// The final usage-only chunk sent when `stream_options.include_usage` is set.
    pub fn usage_chunk(&self, usage: Value) -> Value {
        let mut v = self.envelope(true, json!([]));
        v["usage"] = usage;
        v
    }
}
