//! The request path of the gateway: classify -> route -> upstream -> relay, metering throughout.
//!
//! Authentication happened in a layer before this (the `Caller` extension). From here on every
//! request carries a [`Meter`], so it ends in exactly one ledger row whatever happens: a
//! response, an error, a retry exhausted, or the client going away mid-stream.

use super::classify::{classify, Classified, Route};
use super::relay;
use super::ApiError;
use crate::auth::Caller;
use crate::backends::upstream::{self, Opened, UpstreamError};
use crate::backends::{Lease, Pool, Report};
use crate::cache::{Cached, Capture, Hit, Kind};
use crate::metering::{Meter, Outcome};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

use super::admit::{self, Admitted};
use super::gateway::{Gateway, RequestIds};

/// Largest non-streamed upstream response accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Runs one proxied request. Never fails: errors become OpenAI-shaped responses and ledger rows.
pub async fn handle(gw: &Gateway, route: Route, caller: &Caller, ids: RequestIds, body: Bytes) -> Response {
    let tier = gw.tier_rates(&caller.tenant);
    let mut m = Meter::new(
        gw.sink.clone(),
        ids.id.clone(),
        &caller.tenant,
        &caller.key_id,
        route.path(),
        tier,
        crate::allocator::value_rates(&gw.cfg, &caller.tenant),
    );
    m.client_request_id(ids.client.clone());
    let mut meter = Some(m);
    let result = run(gw, route, caller, &ids.id, body, &mut meter).await;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            if let Some(m) = meter.take() {
                m.finish(err.status().as_u16(), err.outcome(), Some(err.to_string())).wait().await;
            }
            err.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(ids.echoed()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn run(
    gw: &Gateway,
    route: Route,
    caller: &Caller,
    request_id: &str,
    body: Bytes,
    meter: &mut Option<Meter>,
) -> Result<Response, ApiError> {
    let c = classify(gw, route, caller, &body)?;
    let m = meter.as_mut().expect("meter present until the response is built");
    m.requested(&c.model, c.stream);
    let mut capture = None;
    if let Some(kind) = route.cache_kind() {
        let tier = gw.cfg.tenant(&caller.tenant).and_then(|t| gw.cfg.tier(&t.tier));
        if let Some((probe, hit)) = gw.cache.lookup(tier, &caller.tenant, &c.model, route.path(), kind, &c.json).await {
            if let Some(hit) = hit {
                let m = meter.take().expect("meter present");
                return replay(gw, caller, &c, request_id, hit, m).await;
            }
            m.cache("miss");
            capture = Some(Capture::new(gw.cache.clone(), probe));
        }
    }
    let admitted = admit::admit(gw, caller, &c, m).await?;
    // Only the asked-for model's own answer is stored: a downgraded answer is another model's.
    let capture = capture.filter(|_| admitted.model == c.model);
    let pool: &Pool =
        gw.registry.pool(&admitted.model).ok_or_else(|| ApiError::ModelNotFound(admitted.model.clone()))?;
    let body = c.body_for(&pool.upstream_model, admitted.output_cap)?;
    let mut admitted = Some(admitted);
    let mut tried: Vec<String> = Vec::new();
    // A transport error on a backend's first attempt may be a pooled connection the server had
    // already closed (llama.cpp's server closes after every stream): retry it once on the same
    // backend before counting it as a failure.
    let mut retried_same: Vec<String> = Vec::new();
    let mut last_err: Option<ApiError> = None;
    let mut last_upstream: Option<(StatusCode, Option<u64>, Bytes)> = None;
    let hashes = if pool.wants_prefix() { c.prompt.prefix_hashes() } else { Vec::new() };
    while let Some(lease) = pool.place(&tried, &hashes) {
        let backend = lease.backend.clone();
        let m = meter.as_mut().expect("meter present until the response is built");
        m.attempt(&pool.upstream_model, &backend.name, backend.cost_rates());
        match upstream::open(&backend, route.path(), body.clone(), request_id).await {
            Err(UpstreamError::Transport(e)) if !retried_same.contains(&backend.name) => {
                tracing::debug!(backend = %backend.name, error = %e, "transport error; retrying on the same backend");
                retried_same.push(backend.name.clone());
                drop(lease);
                continue;
            }
            Ok(opened) if opened.status.is_success() => {
                m.first_token();
                let meter = meter.take().expect("meter present");
                let mut admitted = admitted.take().expect("admitted once");
                // A stream's first chunk is its first token; a whole response's first bytes
                // come at its end, so its prefill stays in the backlog until then (conservative).
                admitted.first_token();
                let headers = served_headers(&pool.model, &backend.name, &admitted);
                return Ok(if c.stream {
                    let stream = relay::StreamParts {
                        client_wants_usage: c.client_wants_usage,
                        prompt: c.prompt.clone(),
                        headers,
                        admitted,
                        capture,
                    };
                    relay::relay_stream(opened, lease, meter, stream)
                } else {
                    relay_whole(opened, lease, meter, &c, headers, admitted, capture).await
                });
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

fn served_headers(model: &str, backend: &str, admitted: &Admitted) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-tollgate-decision", HeaderValue::from_static(admitted.decision.as_str()));
    if let Some(p) = admitted.price {
        if let Ok(v) = HeaderValue::from_str(&format!("{p:.9}")) {
            h.insert("x-tollgate-price", v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert("x-tollgate-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(backend) {
        h.insert("x-tollgate-backend", v);
    }
    h
}

/// Answers from the cache: no admission, no backend, no capacity; the tenant's budget is still
/// charged and the ledger row says which cache answered.
async fn replay(
    gw: &Gateway,
    caller: &Caller,
    c: &Classified,
    request_id: &str,
    hit: Hit,
    mut meter: Meter,
) -> Result<Response, ApiError> {
    let answer = hit.answer();
    let tokens = crate::metering::Tokens { input: answer.input_tokens, output: answer.output_tokens, estimated: false };
    let charge = gw.tier_rates(&caller.tenant).charge(tokens);
    let total = (tokens.input + tokens.output).max(0) as u64;
    let hold = match super::admit::admit_tenant(gw, &caller.tenant, charge, total).await {
        Ok(h) => h,
        Err(e) => {
            meter.finish(e.status().as_u16(), e.outcome(), Some(e.to_string())).wait().await;
            return Ok(e.into_response());
        }
    };
    hold.settle(charge, total);
    meter.cache(hit.label());
    meter.served_from_cache(&c.model, tokens);
    meter.finish(200, Outcome::Ok, None).wait().await;
    let created = crate::metering::unix_ms() / 1000;
    let id = match answer.kind() {
        Kind::Chat => format!("chatcmpl-{request_id}"),
        Kind::Completion => format!("cmpl-{request_id}"),
    };
    let mut headers = HeaderMap::new();
    let label = match &hit {
        Hit::Exact(_) => "exact".to_string(),
        Hit::Semantic(_, score) => format!("semantic; score={score:.4}"),
    };
    if let Ok(v) = HeaderValue::from_str(&label) {
        headers.insert("x-tollgate-cache", v);
    }
    headers.insert("x-tollgate-decision", HeaderValue::from_static(crate::admission::Verdict::Cache.as_str()));
    if let Ok(v) = HeaderValue::from_str(&c.model) {
        headers.insert("x-tollgate-model", v);
    }
    Ok(if c.stream {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        (StatusCode::OK, headers, Body::from(answer.sse(&id, created, c.client_wants_usage))).into_response()
    } else {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        (StatusCode::OK, headers, Body::from(answer.whole(&id, created))).into_response()
    })
}

fn passthrough_error(status: StatusCode, retry_after_s: Option<u64>, body: Bytes) -> ApiError {
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
    ApiError::UpstreamStatus { status: status.as_u16(), message, retry_after_s }
}

/// Reads the rest of a response, each chunk within `idle`, up to `limit` bytes.
async fn collect(opened: Opened, idle: Duration, limit: usize) -> Bytes {
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

async fn relay_whole(
    opened: Opened,
    lease: Lease,
    mut meter: Meter,
    c: &Classified,
    mut headers: HeaderMap,
    admitted: Admitted,
    capture: Option<Capture>,
) -> Response {
    let idle = Duration::from_millis(lease.backend.cfg.idle_timeout_ms);
    let status = opened.status;
    let content_type = opened.content_type.clone();
    let mut buf = Vec::new();
    if let Some(f) = &opened.first {
        buf.extend_from_slice(f);
    }
    let mut rest = opened.rest;
    loop {
        match tokio::time::timeout(idle, rest.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(b))) if buf.len() + b.len() <= MAX_RESPONSE_BYTES => buf.extend_from_slice(&b),
            Ok(Some(Ok(_))) => return fail(meter, lease, ApiError::Upstream("response too large".into())).await,
            Ok(Some(Err(e))) => return fail(meter, lease, ApiError::Upstream(format!("response cut: {e}"))).await,
            Err(_) => return fail(meter, lease, ApiError::UpstreamTimeout("idle between chunks".into())).await,
        }
    }
    let Some(tokens) = relay::whole_tokens(&buf, &c.prompt) else {
        // Cut short or broken: the client would get a 200 it cannot read.
        return fail(meter, lease, ApiError::Upstream("the upstream's response is not JSON".into())).await;
    };
    meter.tokens(tokens);
    if let Some(cap) = capture.filter(|_| status == StatusCode::OK) {
        if let Some(answer) = Cached::from_whole(cap.kind(), &buf) {
            cap.store(answer);
        }
    }
    lease.report(Report::Success);
    admitted.settle(tokens, true);
    meter.finish(status.as_u16(), Outcome::Ok, None).wait().await;
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type.as_deref().unwrap_or("application/json"))
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    (status, headers, Body::from(buf)).into_response()
}

async fn fail(meter: Meter, lease: Lease, err: ApiError) -> Response {
    lease.report(Report::Failure);
    meter.finish(err.status().as_u16(), err.outcome(), Some(err.to_string())).wait().await;
    err.into_response()
}
