//! The emulator's `/v1/messages` and `/v1/responses`: Anthropic's Messages API and OpenAI's
//! Responses API as those upstreams answer them, so that the gateway's backends of those kinds
//! are tested offline. The request is translated into chat by the gateway's own ingress
//! translation ([`as_chat`]) and served as chat; the route's layer translates the answer, stream
//! and errors back (`api::anthropic::adapt` for Messages, [`responses`] here for Responses).

use crate::api::responses::response::Echo;
use crate::api::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Largest request body read by the Responses layer (as the chat routes' own limit).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A request body of another API as the chat request the emulator serves, by that API's ingress
/// translation `to_chat` (usage asked for when streaming: the translations report it at the end).
pub fn as_chat(
    body: Result<Bytes, BytesRejection>,
    to_chat: fn(&Value) -> Result<Value, ApiError>,
) -> Result<Bytes, ApiError> {
    let v: Value = crate::api::parse_json(&body?)?;
    let mut chat = to_chat(&v)?;
    if chat.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        chat["stream_options"] = json!({"include_usage": true});
    }
    Ok(Bytes::from(chat.to_string()))
}

/// The layer around the emulator's `/v1/responses`: the chat answer as a Responses answer with
/// the request's settings echoed (nothing is stored: `previous_response_id` is refused).
pub async fn responses(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return ApiError::BodyTooLarge { limit: MAX_BODY }.into_response(),
    };
    let echo = serde_json::from_slice::<Value>(&bytes).map(|v| Echo::of(&v)).unwrap_or_default();
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    crate::api::responses::answer(resp, echo, None).await.unwrap_or_else(IntoResponse::into_response)
}
