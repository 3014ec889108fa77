//! OpenAI's Responses API at the edge: `/v1/responses`, the API Codex and the OpenAI Agents SDK
//! speak.
//!
//! A Responses request is translated into a chat request when it is classified
//! ([`request::to_chat`], called from `classify`), so everything after (auth, limits, budgets,
//! admission and prices, downgrades, caches scoped by tenant and endpoint, metering with one
//! ledger row under `/v1/responses`, spans) is the chat path's. Around it, [`adapt`] (inside the
//! authentication, so it knows the tenant) expands a `previous_response_id` into the earlier turns
//! before, and after translates the chat answer (whole by [`response::from_chat`], a stream event
//! by event by [`stream::Translator`]) and keeps it in the store unless the request said
//! `store: false`, for `[responses] retention_s`. Stored responses belong to their tenant: another
//! tenant's id is not found. Errors are already in OpenAI's shape and pass unchanged.

pub mod conversation;
pub mod request;
pub mod response;
pub mod stream;
pub mod upstream;
pub mod upstream_stream;

use super::gateway::{new_request_id, Gateway};
use super::ApiError;
use crate::auth::Caller;
use crate::store::{Store, StoredResponse};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use response::Echo;
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest request or whole answer handled here (the body limit in front is smaller).
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// What a response is kept with: the conversation's input up to it, whose it is, for how long.
pub(crate) struct Keep {
    store: Arc<dyn Store>,
    tenant: String,
    input: Value,
    retention_ms: i64,
}

impl Keep {
    async fn save(self, response: Value) {
        let now = crate::metering::unix_ms();
        let r = StoredResponse {
            id: response["id"].as_str().unwrap_or_default().to_string(),
            tenant: self.tenant,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(self.retention_ms),
            input: self.input.to_string(),
            response: response.to_string(),
        };
        if let Err(e) = self.store.put_response(&r).await {
            tracing::error!(error = %e, response = %r.id, "a response could not be stored");
        }
    }
}

/// The layer around `POST /v1/responses` (inside authentication).
pub async fn adapt(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    match adapt_inner(gw, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn adapt_inner(gw: Arc<Gateway>, req: Request, next: Next) -> Result<Response, ApiError> {
    let tenant = req.extensions().get::<Caller>().map(|c| c.tenant.clone()).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BYTES).await.map_err(|_| ApiError::BodyTooLarge { limit: MAX_BYTES })?;
    // An unreadable body is classify's to reject, with its message.
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(next.run(Request::from_parts(parts, Body::from(bytes))).await);
    };
    let id = format!("resp_{}", new_request_id().trim_start_matches("req_"));
    let echo = Echo::of(&v).with_id(id);
    let input = match v.get("previous_response_id").and_then(Value::as_str) {
        Some(prev) => {
            let not_found = || ApiError::InvalidBody {
                message: format!("Previous response with id '{prev}' not found."),
                param: Some("previous_response_id".into()),
            };
            let stored = gw.store.get_response(&tenant, prev, crate::metering::unix_ms()).await.map_err(|e| {
                tracing::error!(error = %e, "stored responses unavailable");
                ApiError::StateUnavailable
            })?;
            let stored = stored.ok_or_else(not_found)?;
            let parse = |s: &str| serde_json::from_str::<Value>(s).map_err(|_| not_found());
            let items = conversation::continued(&parse(&stored.input)?, &parse(&stored.response)?, &v["input"]);
            let o = v.as_object_mut().expect("a previous_response_id was read from an object");
            o.remove("previous_response_id");
            o.insert("input".into(), Value::Array(items.clone()));
            Value::Array(items)
        }
        None => Value::Array(conversation::input_items(&v["input"])),
    };
    let keep = echo.store().then(|| Keep {
        store: gw.store.clone(),
        tenant,
        input,
        retention_ms: i64::try_from(gw.cfg.responses.retention_s.saturating_mul(1000)).unwrap_or(i64::MAX),
    });
    let resp = next.run(Request::from_parts(parts, Body::from(v.to_string()))).await;
    answer(resp, echo, keep).await
}

/// A chat answer (whole or streamed) as a Responses answer with the request's settings `echo`,
/// kept by `keep` once complete. Errors are in OpenAI's shape already and pass unchanged. The
/// emulator's `/v1/responses` answers through this too (keeping nothing).
pub(crate) async fn answer(resp: Response, echo: Echo, keep: Option<Keep>) -> Result<Response, ApiError> {
    let (mut parts, body) = resp.into_parts();
    if !parts.status.is_success() {
        return Ok(Response::from_parts(parts, body));
    }
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    parts.headers.remove(header::CONTENT_LENGTH);
    if is_stream {
        let mut keep = keep;
        let translated = body.into_data_stream().scan(stream::Translator::new(echo), move |t, chunk| {
            let out = chunk.map(|b| Bytes::from(t.push(&b)));
            if let (Some(r), Some(k)) = (t.take_response(), keep.take()) {
                tokio::spawn(k.save(r));
            }
            futures::future::ready(Some(out))
        });
        return Ok(Response::from_parts(parts, Body::from_stream(translated)));
    }
    let b = axum::body::to_bytes(body, MAX_BYTES)
        .await
        .map_err(|e| ApiError::Upstream(format!("the answer could not be read: {e}")))?;
    let chat: Value =
        serde_json::from_slice(&b).map_err(|_| ApiError::Upstream("the upstream's answer is not JSON".into()))?;
    let out = response::from_chat(&chat, &echo);
    if let Some(k) = keep {
        k.save(out.clone()).await;
    }
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(Response::from_parts(parts, Body::from(out.to_string())))
}

async fn find(gw: &Gateway, caller: &Caller, id: &str) -> Result<StoredResponse, ApiError> {
    let found = gw.store.get_response(&caller.tenant, id, crate::metering::unix_ms()).await.map_err(|e| {
        tracing::error!(error = %e, "stored responses unavailable");
        ApiError::StateUnavailable
    })?;
    found.ok_or_else(|| ApiError::NotFound { what: "response", id: id.to_string() })
}

fn stored_json(s: &str) -> Result<Value, ApiError> {
    serde_json::from_str(s).map_err(|_| ApiError::Upstream("a stored response is unreadable".into()))
}

/// `GET /v1/responses/{id}`: the stored response, if the caller's tenant has it.
pub async fn retrieve(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(stored_json(&find(&gw, &caller, &id).await?.response)?))
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deleted = gw.store.delete_response(&caller.tenant, &id).await.map_err(|e| {
        tracing::error!(error = %e, "stored responses unavailable");
        ApiError::StateUnavailable
    })?;
    if !deleted {
        return Err(ApiError::NotFound { what: "response", id });
    }
    Ok(Json(json!({"id": id, "object": "response", "deleted": true})))
}

/// The query of `input_items`: `order` (`asc` or `desc`, the default) and `limit` (1 to 100).
#[derive(Debug, serde::Deserialize)]
pub struct ItemsQuery {
    order: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/responses/{id}/input_items`.
pub async fn input_items(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    q: Result<Query<ItemsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let descending = match q.order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::InvalidValue { message: "order must be asc or desc.".into(), param: "order" }),
    };
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidValue { message: "limit must be between 1 and 100.".into(), param: "limit" });
    }
    let stored = find(&gw, &caller, &id).await?;
    Ok(Json(conversation::listing(&id, &stored_json(&stored.input)?, descending, limit)))
}
