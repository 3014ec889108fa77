//! The place and send stages: a backend of the serving pool chosen by its placement, the
//! request sent, and retried on another backend before anything reaches the client (connect
//! errors, 5xx, 429, first-byte timeouts; a stale pooled connection once on the same backend).
//! A 429 lowers the backend's share ([`crate::backends::Backend::slow_down`]); a 4xx passes
//! through as the upstream said it.

use super::{anthropic, responses, ApiError};
use crate::backends::upstream::{self, Opened, UpstreamError};
use crate::backends::{Lease, Pool, Report};
use crate::config::BackendKind;
use crate::metering::Meter;
use axum::http::StatusCode;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// An upstream answer that began well (2xx, head and first chunk in), on its backend's lease.
pub struct Sent {
    pub opened: Opened,
    pub lease: Lease,
}

/// Sends `body` to `path` on a backend of `pool` (placed by the prompt's prefix `hashes` when
/// the pool places by prefix), recording each attempt in `meter`.
pub async fn send(
    pool: &Pool,
    path: &str,
    body: Bytes,
    request_id: &str,
    hashes: &[u64],
    meter: &mut Meter,
) -> Result<Sent, ApiError> {
    let mut tried: Vec<String> = Vec::new();
    // A transport error on a backend's first attempt may be a pooled connection the server had
    // already closed (llama.cpp's server closes after every stream): retry it once on the same
    // backend before counting it as a failure.
    let mut retried_same: Vec<String> = Vec::new();
    let mut last_err: Option<ApiError> = None;
    let mut last_upstream: Option<(StatusCode, Option<u64>, Bytes)> = None;
    while let Some(lease) = pool.place(&tried, hashes) {
        let backend = lease.backend.clone();
        meter.attempt(&pool.upstream_model, &backend.name, backend.cost_rates());
        let (upath, ubody) = match to_upstream(backend.cfg.kind, path, &body) {
            Ok(sent) => sent,
            Err(message) => {
                // Another backend of the pool may carry it.
                tried.push(backend.name.clone());
                last_err = Some(ApiError::InvalidBody { message, param: None });
                continue;
            }
        };
        match upstream::open(&backend, upath, ubody, request_id).await {
            Err(UpstreamError::Transport(e)) if !retried_same.contains(&backend.name) => {
                tracing::debug!(backend = %backend.name, error = %e, "transport error; retrying on the same backend");
                retried_same.push(backend.name.clone());
                drop(lease);
                continue;
            }
            Ok(opened) if opened.status.is_success() => {
                let idle = Duration::from_millis(backend.cfg.idle_timeout_ms);
                let opened = from_upstream(backend.cfg.kind, opened, idle).await;
                return Ok(Sent { opened, lease });
            }
            Ok(opened) => {
                tried.push(backend.name.clone());
                let status = opened.status;
                let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                lease.report(if status.is_server_error() { Report::Failure } else { Report::Neutral });
                let retry_after = opened.retry_after_s;
                if status == StatusCode::TOO_MANY_REQUESTS {
                    // Asked to slow down: a smaller share for a while, never out of the pool.
                    backend.slow_down();
                }
                let body = collect(opened, Duration::from_millis(backend.cfg.idle_timeout_ms), 1 << 20).await;
                if !retryable {
                    // The client's own mistake as the upstream saw it: pass it through.
                    return Err(passthrough_error(status, None, body));
                }
                last_upstream = Some((status, retry_after, body));
            }
            Err(e) => {
                tried.push(backend.name.clone());
                lease.report(Report::Failure);
                tracing::warn!(backend = %backend.name, error = %e, "upstream attempt failed");
                last_err = Some(match e {
                    UpstreamError::FirstByteTimeout(_) => ApiError::UpstreamTimeout(e.to_string()),
                    _ => ApiError::Upstream(e.to_string()),
                });
            }
        }
    }
    if let Some((status, retry_after, body)) = last_upstream {
        return Err(passthrough_error(status, retry_after, body));
    }
    Err(last_err.unwrap_or_else(|| ApiError::NoBackend(pool.model.clone())))
}

/// The path and body sent to a backend of `kind`: as they are to an OpenAI-compatible one, a
/// chat request translated for the others (`Err` says what it cannot carry).
fn to_upstream<'a>(kind: BackendKind, path: &'a str, body: &Bytes) -> Result<(&'a str, Bytes), String> {
    type Translate = fn(&Value) -> Result<Value, String>;
    let (upath, api, translate): (&str, &str, Translate) = match kind {
        BackendKind::Openai => return Ok((path, without_cache_control(body))),
        BackendKind::Anthropic => ("/v1/messages", "an Anthropic", anthropic::upstream::request),
        BackendKind::Responses => ("/v1/responses", "a Responses", responses::upstream::request),
    };
    if path != "/v1/chat/completions" {
        return Err(format!("{path} is not served by {api} upstream"));
    }
    let chat: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok((upath, Bytes::from(translate(&chat)?.to_string())))
}

/// `body` without the `cache_control` keys the Messages ingress keeps on text parts and tools
/// for Anthropic upstreams (OpenAI's API does not define them); a body without any (the
/// substring is looked for first) is sent as it is.
fn without_cache_control(body: &Bytes) -> Bytes {
    const KEY: &[u8] = b"\"cache_control\"";
    if !body.windows(KEY.len()).any(|w| w == KEY) {
        return body.clone();
    }
    let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(body) else { return body.clone() };
    let (mut messages, mut tools) = (v.remove("messages"), v.remove("tools"));
    let parts = messages
        .iter_mut()
        .filter_map(Value::as_array_mut)
        .flatten()
        .filter_map(|m| m.get_mut("content").and_then(Value::as_array_mut));
    for holder in parts.flatten().chain(tools.iter_mut().filter_map(Value::as_array_mut).flatten()) {
        if let Some(o) = holder.as_object_mut() {
            o.remove("cache_control");
        }
    }
    v.extend(messages.map(|m| ("messages".to_string(), m)));
    v.extend(tools.map(|t| ("tools".to_string(), t)));
    Bytes::from(Value::Object(v).to_string())
}

/// A backend's answer read as chat: a stream event by event, a whole answer once read (within
/// `idle` per chunk, up to the relay's limit). An OpenAI-compatible backend's is already chat.
async fn from_upstream(kind: BackendKind, opened: Opened, idle: Duration) -> Opened {
    type Push = Box<dyn FnMut(&[u8]) -> Vec<u8> + Send>;
    let streaming = opened.content_type.as_deref().is_some_and(|c| c.starts_with("text/event-stream"));
    let (push, whole): (Push, fn(&Value) -> Value) = match kind {
        BackendKind::Openai => return opened,
        BackendKind::Anthropic => {
            let mut t = anthropic::upstream_stream::FromMessages::new();
            (Box::new(move |b| t.push(b)), anthropic::upstream::answer)
        }
        BackendKind::Responses => {
            let mut t = responses::upstream_stream::FromResponses::new();
            (Box::new(move |b| t.push(b)), responses::upstream::answer)
        }
    };
    if streaming {
        let Opened { status, content_type, retry_after_s, first, rest } = opened;
        let chunks = futures::stream::iter(first.map(Ok)).chain(rest);
        let rest =
            chunks.scan(push, |push, chunk| futures::future::ready(Some(chunk.map(|b| Bytes::from(push(&b)))))).boxed();
        return Opened { status, content_type, retry_after_s, first: None, rest };
    }
    let (status, retry_after_s) = (opened.status, opened.retry_after_s);
    let body = collect(opened, idle, anthropic::MAX_ANSWER_BYTES).await;
    let chat = match serde_json::from_slice::<Value>(&body) {
        Ok(answer) => Bytes::from(whole(&answer).to_string()),
        // Not an answer of that API: passed on as it came, for the relay to judge.
        Err(_) => body,
    };
    Opened {
        status,
        content_type: Some("application/json".into()),
        retry_after_s,
        first: Some(chat),
        rest: futures::stream::empty().boxed(),
    }
}

pub(super) fn passthrough_error(status: StatusCode, retry_after_s: Option<u64>, body: Bytes) -> ApiError {
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    ApiError::UpstreamStatus { status: status.as_u16(), message, retry_after_s }
}

/// Reads the rest of a response, each chunk within `idle`, up to `limit` bytes.
pub(super) async fn collect(opened: Opened, idle: Duration, limit: usize) -> Bytes {
    let mut buf = Vec::new();
    if let Some(f) = opened.first {
        buf.extend_from_slice(&f);
    }
    let mut rest = opened.rest;
    while buf.len() < limit {
        match tokio::time::timeout(idle, rest.next()).await {
            Ok(Some(Ok(b))) => buf.extend_from_slice(&b),
            _ => break,
        }
    }
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backend_that_refuses_connections_fails_as_an_upstream_error_with_its_attempt_recorded() {
        let cfg = crate::config::one_pool_for_tests(1);
        let registry = crate::backends::Registry::new(&cfg).unwrap();
        let pool = registry.pool("m").unwrap();
        let (sink, mut rows) = crate::metering::LedgerSink::detached();
        let mut meter =
            Meter::new(sink, "r".into(), "a", "k", "/v1/chat/completions", Default::default(), Default::default());
        let err = send(pool, "/v1/chat/completions", Bytes::from_static(b"{}"), "r", &[], &mut meter).await.err();
        assert!(matches!(err, Some(ApiError::Upstream(_))), "{err:?}");
        // Nothing is left outstanding on the backend, and the row names the attempt (a refused
        // connection is not a stale pooled one: no second try on the same backend).
        assert_eq!(pool.backends[0].outstanding(), 0);
        meter.finish(502, crate::metering::Outcome::UpstreamError, None).wait().await;
        let row = rows.recv().await.unwrap();
        assert_eq!((row.attempts, row.backend.as_deref()), (1, Some("b")));
    }

    #[test]
    fn cache_control_is_removed_for_openai_upstreams_and_other_bodies_pass_untouched() {
        let body = Bytes::from_static(
            br#"{"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"S","cache_control":{"type":"ephemeral"}}]},{"role":"user","content":"hi"},7],"tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}}]}"#,
        );
        let (path, sent) = to_upstream(BackendKind::Openai, "/v1/chat/completions", &body).unwrap();
        let v: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(path, "/v1/chat/completions");
        assert!(!String::from_utf8_lossy(&sent).contains("cache_control"), "{v}");
        assert_eq!(v["messages"][0]["content"][0]["text"], "S");
        assert_eq!(v["tools"][0]["function"]["name"], "f");
        let plain = Bytes::from_static(br#"{"model":"m",  "messages":[]}"#);
        assert_eq!(to_upstream(BackendKind::Openai, "/v1/chat/completions", &plain).unwrap().1, plain);
        let err = to_upstream(BackendKind::Responses, "/v1/embeddings", &plain).unwrap_err();
        assert!(err.contains("not served by a Responses upstream"), "{err}");
        let err = to_upstream(BackendKind::Anthropic, "/v1/completions", &plain).unwrap_err();
        assert!(err.contains("not served by an Anthropic upstream"), "{err}");
    }

    #[test]
    fn an_upstream_error_passes_through_with_its_message_and_retry_after() {
        let e = passthrough_error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(7),
            Bytes::from_static(br#"{"error": {"message": "slow down"}}"#),
        );
        match e {
            ApiError::UpstreamStatus { status, message, retry_after_s } => {
                assert_eq!((status, message.as_str(), retry_after_s), (429, "slow down", Some(7)))
            }
            other => panic!("{other:?}"),
        }
    }
}
