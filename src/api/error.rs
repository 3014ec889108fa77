//! Every error a client can see, and its mapping to an HTTP status and OpenAI's error shape
//! (`{"error": {"message", "type", "param", "code"}}`). This is the one place that mapping lives.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON this endpoint takes.
    #[error("{message}")]
    InvalidBody { message: String, param: Option<String> },
    /// A field has a value outside what the endpoint accepts.
    #[error("{message}")]
    InvalidValue { message: String, param: &'static str },
    #[error("This model's maximum context length is {max_context} tokens. However, you requested {requested} tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length of the messages or completion.")]
    ContextLengthExceeded { max_context: u32, requested: u64, prompt: u64, completion: u64 },
    #[error("The request body is larger than the {limit}-byte limit.")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("Too many failed authentication attempts from your address; retry after {retry_after_s} s.")]
    AuthRateLimited { retry_after_s: u64 },
    #[error("Your API key may not use the model `{0}`.")]
    ModelNotAllowed(String),
    #[error("Admin endpoints need the admin key.")]
    AdminOnly,
    #[error("No backend for `{0}` is available now (all unhealthy, circuit open or at capacity).")]
    NoBackend(String),
    /// An upstream's own error response, relayed with its status (and its Retry-After).
    #[error("{message}")]
    UpstreamStatus { status: u16, message: String, retry_after_s: Option<u64> },
    /// Refused by bid-price admission: capacity is dearer now than the request is worth.
    #[error("Capacity for `{model}` is priced above this request's value right now. It would be served at {quote_per_1k:.6} USD per 1,000 tokens; retry after {retry_after_s} s.")]
    Priced { model: String, quote_per_1k: f64, price: f64, retry_after_s: u64 },
    #[error("Your tenant's monthly budget would be exceeded by this request.")]
    BudgetExceeded,
    /// The model's extraction policy refuses a tenant scored as harvesting it.
    #[error("Requests to `{0}` from your organisation are refused: its recent traffic is scored as systematic extraction of this model's outputs. Contact the operator if this is wrong.")]
    ExtractionRisk(String),
    /// The model's extraction policy throttles a tenant scored as harvesting it.
    #[error("Requests to `{model}` from your organisation are limited to {per_minute} a minute: its recent traffic is scored as systematic extraction of this model's outputs. Retry after {retry_after_s} s.")]
    ExtractionThrottled { model: String, per_minute: u32, retry_after_s: u64 },
    /// A tenant's tokens or requests per minute. `retry_after_s` is `None` when the request
    /// alone is over the limit.
    #[error("{}", rate_limited_message(.what, *.limit, *.retry_after_s))]
    RateLimited { what: &'static str, limit: u64, retry_after_s: Option<u64> },
    /// Shared state (Redis) is unreachable and the gateway is configured to fail closed.
    #[error("The gateway cannot reach its shared state (limits and budgets), and refuses requests rather than enforce them inexactly. Retry shortly.")]
    StateUnavailable,
    #[error("The prompt has {tokens} tokens; your tier allows at most {limit}.")]
    PromptTooLong { tokens: u64, limit: u32 },
    #[error("The upstream failed: {0}")]
    Upstream(String),
    #[error("The upstream timed out: {0}")]
    UpstreamTimeout(String),
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    /// An admin API object (a key, a tenant) that does not exist.
    #[error("No {what} `{id}`.")]
    NotFound { what: &'static str, id: String },
    #[error("Unknown request URL: {method} {path}.")]
    UnknownRoute { method: String, path: String },
    #[error("The server is overloaded: {0}")]
    Overloaded(String),
    #[error("Internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// How a request that ends in this error is recorded in the ledger: the one mapping from
    /// error to outcome (503: no backend could take it; other 5xx: the upstream failed; 4xx: the
    /// client's request).
    pub fn outcome(&self) -> crate::metering::Outcome {
        use crate::metering::Outcome;
        match self.status().as_u16() {
            503 => Outcome::NoBackend,
            s if s >= 500 => Outcome::UpstreamError,
            _ => Outcome::ClientError,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidBody { .. } | Self::InvalidValue { .. } | Self::ContextLengthExceeded { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) | Self::AdminOnly => StatusCode::UNAUTHORIZED,
            Self::ModelNotAllowed(_) | Self::ExtractionRisk(_) => StatusCode::FORBIDDEN,
            Self::NoBackend(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Priced { .. }
            | Self::BudgetExceeded
            | Self::AuthRateLimited { .. }
            | Self::RateLimited { .. }
            | Self::ExtractionThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::StateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::PromptTooLong { .. } => StatusCode::BAD_REQUEST,
            Self::UpstreamStatus { status, .. } => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::ModelNotFound(_) | Self::UnknownRoute { .. } | Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self.status() {
            StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => "server_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            _ => "invalid_request_error",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            Self::InvalidBody { param, .. } => param.as_deref(),
            Self::InvalidValue { param, .. } => Some(param),
            Self::ContextLengthExceeded { .. } => Some("messages"),
            Self::ModelNotFound(_) | Self::ModelNotAllowed(_) => Some("model"),
            _ => None,
        }
    }

    fn code(&self) -> Option<&'static str> {
        match self {
            Self::ContextLengthExceeded { .. } => Some("context_length_exceeded"),
            Self::ModelNotFound(_) => Some("model_not_found"),
            Self::Unauthorized(_) | Self::AdminOnly => Some("invalid_api_key"),
            Self::ModelNotAllowed(_) => Some("model_not_allowed"),
            Self::Priced { .. } => Some("capacity_priced"),
            Self::BudgetExceeded => Some("insufficient_quota"),
            Self::ExtractionRisk(_) => Some("extraction_risk"),
            Self::ExtractionThrottled { .. } => Some("extraction_throttled"),
            Self::RateLimited { what: "tokens", .. } => Some("tokens_per_minute_exceeded"),
            Self::RateLimited { .. } => Some("requests_per_minute_exceeded"),
            Self::StateUnavailable => Some("state_unavailable"),
            Self::AuthRateLimited { .. } => Some("too_many_failed_authentications"),
            Self::PromptTooLong { .. } => Some("context_length_exceeded"),
            Self::UnknownRoute { .. } => Some("unknown_url"),
            Self::NotFound { .. } => Some("not_found"),
            _ => None,
        }
    }

    /// The OpenAI-shaped JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.to_string(), "type": self.kind(), "param": self.param(), "code": self.code()}})
    }

    /// A body that failed to deserialise, naming the offending field (`messages[0].content`).
    pub fn from_json_path(e: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let inner = e.inner();
        if matches!(inner.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof) {
            return Self::from_json(inner);
        }
        let path = e.path().to_string();
        let msg = inner.to_string();
        let missing = msg.strip_prefix("missing field `").and_then(|r| r.split('`').next());
        let param = match (path.as_str(), missing) {
            (".", Some(f)) => Some(f.to_string()),
            (p, Some(f)) => Some(format!("{p}.{f}")),
            (".", None) => None,
            (p, None) => Some(p.to_string()),
        };
        let mut api = Self::from_json(inner);
        if let Self::InvalidBody { param: p, message } = &mut api {
            *p = param.clone();
            if let (Some(field), None) = (&param, missing) {
                *message = format!("Invalid value for '{field}': {msg}.");
            }
        }
        api
    }

    /// A serde_json error on a request body, naming the field when serde does.
    pub fn from_json(e: &serde_json::Error) -> Self {
        let msg = e.to_string();
        let param = msg.split('`').nth(1).filter(|_| msg.starts_with("missing field")).map(str::to_string);
        let message = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("We could not parse the JSON body of your request ({msg}).")
            }
            _ => format!("Invalid request body: {msg}."),
        };
        Self::InvalidBody { message, param }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), axum::Json(self.body())).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Self::AuthRateLimited { retry_after_s }
        | Self::UpstreamStatus { retry_after_s: Some(retry_after_s), .. }
        | Self::RateLimited { retry_after_s: Some(retry_after_s), .. }
        | Self::ExtractionThrottled { retry_after_s, .. } = &self
        {
            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        if let Self::Priced { quote_per_1k, price, retry_after_s, .. } = &self {
            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            h.insert("x-tollgate-decision", HeaderValue::from_static(crate::admission::Verdict::Refuse.as_str()));
            // Rounded up: a bid of the quote as written clears (while prices stay where they are).
            let quote = (quote_per_1k * 1e9).ceil() / 1e9;
            if let Ok(v) = HeaderValue::from_str(&format!("{quote:.9}")) {
                h.insert("x-tollgate-quote-per-1k", v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("{price:.9}")) {
                h.insert("x-tollgate-price", v);
            }
        }
        resp
    }
}

fn rate_limited_message(what: &str, limit: u64, retry_after_s: Option<u64>) -> String {
    match retry_after_s {
        Some(s) => format!("Your tenant's limit of {limit} {what} per minute is reached; retry after {s} s."),
        None => format!("This request alone is over your tenant's limit of {limit} {what} per minute."),
    }
}

/// Largest request body accepted, bytes (axum's default).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::BodyTooLarge { limit: BODY_LIMIT }
        } else {
            Self::InvalidBody { message: format!("Could not read the request body: {r}."), param: None }
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        Self::InvalidBody { message: format!("Invalid query string: {}.", r.body_text()), param: None }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store unavailable");
        Self::StateUnavailable
    }
}

impl From<crate::batch::files::FileError> for ApiError {
    fn from(e: crate::batch::files::FileError) -> Self {
        tracing::error!(error = %e, "file store unavailable");
        Self::Internal("the file store is unavailable".into())
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::InvalidBody {
                message: format!("The file is too large: {}.", e.body_text()),
                param: Some("file".into()),
            }
        } else {
            Self::InvalidBody { message: format!("Could not read the upload: {}.", e.body_text()), param: None }
        }
    }
}

/// Parses a JSON request body into a value, or an OpenAI-shaped 400 when it is not JSON.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::from_json(&e))
}

/// A client error (400) naming the field at fault.
pub fn invalid(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::InvalidBody { message: message.into(), param: Some(param.to_string()) }
}

/// A parsed body as a JSON object, or a 400 saying it must be one.
pub fn body_object(v: &serde_json::Value) -> Result<&serde_json::Map<String, serde_json::Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| ApiError::InvalidBody { message: "The request body must be a JSON object.".into(), param: None })
}

/// A token limit as a client sends it: an integer of at least 1, however large (JSON integers
/// beyond 64 bits parse as floats), capped at `u32::MAX` as the gateway counts tokens.
pub fn token_limit(v: &serde_json::Value) -> Option<u32> {
    let n = v.as_u64().map(|n| n as f64).or_else(|| v.as_f64().filter(|f| f.fract() == 0.0))?;
    (n >= 1.0).then(|| n.min(f64::from(u32::MAX)) as u32)
}

/// Reads `T` out of a parsed body, or an OpenAI-shaped 400 naming the field at fault.
pub fn from_value<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| ApiError::from_json_path(&e))
}

/// Parses a JSON request body into `T`.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    from_value(&parse_json(body)?)
}

/// The fallback handler of the gateway and the emulator: 404 naming the method and path.
pub async fn unknown_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::UnknownRoute { method: method.to_string(), path: uri.path().to_string() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_limit_is_any_integer_of_at_least_one() {
        use serde_json::json;
        assert_eq!(super::token_limit(&json!(16)), Some(16));
        assert_eq!(super::token_limit(&json!(1e30)), Some(u32::MAX));
        assert_eq!(super::token_limit(&json!(u64::MAX)), Some(u32::MAX));
        for bad in [json!(0), json!(-3), json!(2.5), json!("8"), json!(null)] {
            assert_eq!(super::token_limit(&bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn json_errors_name_the_missing_field() {
        let e = serde_json::from_str::<crate::api::openai::ChatRequest>(r#"{"messages": []}"#).unwrap_err();
        let api = ApiError::from_json(&e);
        assert_eq!(api.status(), StatusCode::BAD_REQUEST);
        assert_eq!(api.body()["error"]["param"], "model");
        let e = serde_json::from_str::<crate::api::openai::ChatRequest>("{not json").unwrap_err();
        assert!(ApiError::from_json(&e).to_string().contains("could not parse"));
    }
}
