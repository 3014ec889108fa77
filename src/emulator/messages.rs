//! The emulator's `/v1/messages`: Anthropic's Messages API as an Anthropic upstream answers it,
//! so that the gateway's Anthropic backends are tested offline. The request is translated into
//! chat by the gateway's own ingress translation ([`as_chat`]) and served as chat; the route's
//! layer (`api::anthropic::adapt`) translates the answer, stream and errors back.

use crate::api::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde_json::json;

/// A Messages request body as the chat request the emulator serves (usage asked for when
/// streaming: the translation reports it in `message_delta`).
pub fn as_chat(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let v: serde_json::Value = crate::api::parse_json(&body?)?;
    let mut chat = crate::api::anthropic::request::to_chat(&v)?;
    if chat.get("stream").and_then(serde_json::Value::as_bool).unwrap_or(false) {
        chat["stream_options"] = json!({"include_usage": true});
    }
    Ok(Bytes::from(chat.to_string()))
}
