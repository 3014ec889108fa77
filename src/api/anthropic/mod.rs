//! Anthropic's Messages API at the edge: `/v1/messages` and `/v1/messages/count_tokens`.
//!
//! A Messages request is translated into a chat request when it is classified
//! ([`request::to_chat`], called from `classify`), so everything after (auth, limits, budgets,
//! admission and prices, downgrades, caches scoped by tenant and endpoint, metering with one
//! ledger row under `/v1/messages`, spans) is the chat path's. The answer comes back as chat and
//! is translated on the way out by [`adapt`], a layer around these routes: a whole answer by
//! [`response::from_chat`], a stream event by event by [`stream::Translator`], and every error
//! (authentication included) into Anthropic's `{"type": "error", "error": {...}}` with the same
//! status and headers.

pub mod request;
pub mod response;
pub mod stream;
pub mod upstream;
pub mod upstream_stream;

use super::gateway::Gateway;
use super::openai::ChatMessage;
use super::{from_value, parse_json, tokens, ApiError};
use crate::auth::Caller;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest whole answer translated (the relay accepts no larger).
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The layer around the Messages routes: answers and errors in Anthropic's shapes.
pub async fn adapt(req: Request, next: Next) -> Response {
    let counting = req.uri().path().ends_with("/count_tokens");
    let resp = next.run(req).await;
    let (mut parts, body) = resp.into_parts();
    if let Some(id) = parts.headers.get("x-request-id").cloned() {
        parts.headers.insert("request-id", id);
    }
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if parts.status.is_success() && is_stream {
        parts.headers.remove(header::CONTENT_LENGTH);
        let translated = body.into_data_stream().scan(stream::Translator::new(""), |t, chunk| {
            let out = chunk.map(|b| Bytes::from(t.push(&b)));
            futures::future::ready(Some(out))
        });
        return Response::from_parts(parts, Body::from_stream(translated));
    }
    if parts.status.is_success() && counting {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(b) => b,
        Err(e) => return anthropic_error(StatusCode::BAD_GATEWAY, &format!("The answer could not be read: {e}")),
    };
    let out = if parts.status.is_success() {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(chat) => response::from_chat(&chat),
            Err(_) => return anthropic_error(StatusCode::BAD_GATEWAY, "The upstream's answer is not JSON."),
        }
    } else {
        response::error_from_openai(parts.status.as_u16(), &bytes)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(out.to_string()))
}

fn anthropic_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": response::error_type(status.as_u16()), "message": message}});
    (status, Json(body)).into_response()
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as tollgate counts them (cl100k, the
/// count admission and budgets use), system prompt and tool definitions included. Not an
/// inference: no admission and no ledger row.
pub async fn count_tokens(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let mut v = parse_json(&body?)?;
    if let Some(o) = v.as_object_mut() {
        // Counting needs no output bound; the translation wants one.
        o.entry("max_tokens").or_insert(json!(1));
    }
    let chat = request::to_chat(&v)?;
    let model = chat["model"].as_str().unwrap_or_default().to_string();
    if gw.registry.pool(&model).is_none() {
        return Err(ApiError::ModelNotFound(model));
    }
    if !gw.cfg.may_use(&caller.tenant, &model) {
        return Err(ApiError::ModelNotAllowed(model));
    }
    let messages: Vec<ChatMessage> = from_value(&chat["messages"])?;
    let mut n = tokens::chat_prompt_count(&messages);
    // Earlier tool calls are part of the prompt too (their names and arguments).
    for calls in chat["messages"].as_array().into_iter().flatten().filter_map(|m| m.get("tool_calls")) {
        n += tokens::count_text(&calls.to_string());
    }
    if let Some(tools) = chat.get("tools") {
        n += tokens::count_text(&tools.to_string());
    }
    Ok(Json(json!({"input_tokens": n})))
}
