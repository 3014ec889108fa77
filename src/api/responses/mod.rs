//! OpenAI's Responses API at the edge: `POST /v1/responses`, the API Codex and the OpenAI Agents
//! SDK speak.
//!
//! A Responses request is translated into a chat request when it is classified
//! ([`request::to_chat`], called from `classify`), so everything after (auth, limits, budgets,
//! admission and prices, downgrades, caches scoped by tenant and endpoint, metering with one
//! ledger row under `/v1/responses`, spans) is the chat path's. The answer comes back as chat and
//! is translated on the way out by [`adapt`], a layer around the route: a whole answer by
//! [`response::from_chat`], a stream event by event by [`stream::Translator`]. Errors are already
//! in OpenAI's shape and pass unchanged.
//!
//! Stateless for now: nothing is stored (`store` is answered `false`), a `previous_response_id`
//! is refused with 400, and `GET`/`DELETE /v1/responses/{id}` answer 404 saying so.

pub mod request;
pub mod response;
pub mod stream;

use super::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use response::Echo;
use serde_json::Value;

/// Largest request or whole answer handled here (the body limit in front is smaller).
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// The layer around `POST /v1/responses`: reads the settings a response echoes, then translates
/// a successful answer (whole or streamed) into the Responses shape.
pub async fn adapt(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BYTES).await {
        Ok(b) => b,
        Err(_) => return ApiError::BodyTooLarge { limit: MAX_BYTES }.into_response(),
    };
    // An unreadable body is classify's to reject, with its message; nothing to echo then.
    let echo = serde_json::from_slice::<Value>(&bytes).map(|v| Echo::of(&v)).unwrap_or_default();
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let (mut parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        return Response::from_parts(parts, body);
    }
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    parts.headers.remove(header::CONTENT_LENGTH);
    if is_stream {
        let translated = body.into_data_stream().scan(stream::Translator::new(echo), |t, chunk| {
            futures::future::ready(Some(chunk.map(|b| Bytes::from(t.push(&b)))))
        });
        return Response::from_parts(parts, Body::from_stream(translated));
    }
    let out = match axum::body::to_bytes(body, MAX_BYTES).await {
        Ok(b) => match serde_json::from_slice::<Value>(&b) {
            Ok(chat) => response::from_chat(&chat, &echo),
            Err(_) => return ApiError::Upstream("the upstream's answer is not JSON".into()).into_response(),
        },
        Err(e) => return ApiError::Upstream(format!("the answer could not be read: {e}")).into_response(),
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(out.to_string()))
}

/// `GET`/`DELETE /v1/responses/{id}` (and its `input_items`): nothing is stored yet.
pub async fn not_stored(Path(id): Path<String>) -> ApiError {
    ApiError::NotFound { what: "stored response (this gateway keeps none yet)", id }
}
