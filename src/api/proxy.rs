//! The request path of the gateway: classify -> route -> upstream -> relay, metering throughout.
//!
//! Authentication happened in a layer before this (the `Caller` extension). From here on every
//! request carries a [`Meter`], so it ends in exactly one ledger row whatever happens: a
//! response, an error, a retry exhausted, or the client going away mid-stream.

use super::classify::{classify, Classified, Route};
use super::ApiError;
use super::{relay, tally};
use crate::auth::Caller;
use crate::backends::upstream::Opened;
use crate::backends::{Lease, Pool, Report};
use crate::cache::{Cached, Capture, Hit, Kind};
use crate::config::ServiceTier;
use crate::metering::{Meter, Outcome};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;

use super::admit::{self, Admitted};
use super::gateway::{Gateway, RequestIds};
use super::send::{self, Sent};
use crate::serve::telemetry::SPAN_TARGET;
use tracing::Instrument;

/// Largest non-streamed upstream response accepted.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Runs one proxied request through its stages (classify -> cache -> admit -> place and send
/// -> relay -> record). Never fails: errors become OpenAI-shaped responses and ledger rows. The
/// meter lives here and is finished exactly once: with the error, by the cache's replay, or by
/// the relay (which takes it with the upstream's answer).
pub async fn handle(gw: &Gateway, route: Route, caller: &Caller, ids: RequestIds, body: Bytes) -> Response {
    handle_metered(gw, gw.sink.clone(), route, caller, ids, body).await
}

/// As [`handle`], with the request's ledger row sent to `sink` (the batch dispatcher records a
/// line's row with its result).
pub async fn handle_metered(
    gw: &Gateway,
    sink: crate::metering::LedgerSink,
    route: Route,
    caller: &Caller,
    ids: RequestIds,
    body: Bytes,
) -> Response {
    let mut meter = Meter::new(
        sink,
        ids.id.clone(),
        &caller.tenant,
        &caller.key_id,
        route.path(),
        gw.tier_rates(&caller.tenant),
        crate::allocator::value_rates(&gw.cfg, &caller.tenant),
    );
    meter.client_request_id(ids.client.clone());
    let span = request_span(route, caller, &ids.id);
    meter.trace(span.clone());
    let mut resp = match prepare(gw, route, caller, &ids, &body, &mut meter).instrument(span.clone()).await {
        Err(err) => {
            meter.finish(err.status().as_u16(), err.outcome(), Some(err.to_string())).wait().await;
            err.into_response()
        }
        Ok(Prepared::Cached { c, hit }) => replay(gw, caller, &c, &ids.id, hit, meter).instrument(span.clone()).await,
        Ok(Prepared::Upstream { c, sent, admitted, capture, model }) => {
            let headers = served_headers(&model, &sent.lease.backend.name, &admitted, c.service());
            let relay_span = tracing::debug_span!(target: SPAN_TARGET, parent: &span, "relay", stream = c.stream);
            if c.stream {
                let stream = relay::StreamParts {
                    client_wants_usage: c.client_wants_usage,
                    service_tier: c.service_tier.map(ServiceTier::as_str),
                    prompt: c.prompt.clone(),
                    headers,
                    admitted,
                    capture,
                    span: relay_span,
                };
                relay::relay_stream(sent.opened, sent.lease, meter, stream)
            } else {
                relay_whole(sent.opened, sent.lease, meter, &c, headers, admitted, capture).instrument(relay_span).await
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(ids.echoed()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The request's span: the stages' spans hang under it, and the meter records the GenAI
/// attributes (models, tokens, decision, price, cache, status) into it when it finishes.
fn request_span(route: Route, caller: &Caller, request_id: &str) -> tracing::Span {
    tracing::debug_span!(
        target: SPAN_TARGET,
        "request",
        otel.name = route.path(),
        otel.kind = "server",
        gen_ai.operation.name = route.operation(),
        gen_ai.request.model = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        tollgate.tenant = %caller.tenant,
        tollgate.request_id = request_id,
        tollgate.decision = tracing::field::Empty,
        tollgate.price = tracing::field::Empty,
        tollgate.cache = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    )
}

/// Where a request stands after the stages before the relay. Built once per request and moved
/// straight into the relay, so the larger variant is not boxed (no allocation per request).
#[allow(clippy::large_enum_variant)]
enum Prepared {
    /// The cache answers.
    Cached { c: Classified, hit: Hit },
    /// A backend began to answer; `model` is the serving pool's public name.
    Upstream { c: Classified, sent: Sent, admitted: Admitted, capture: Option<Capture>, model: String },
}

/// The stages up to the upstream's first byte, each recording what it did in `meter`.
async fn prepare(
    gw: &Gateway,
    route: Route,
    caller: &Caller,
    ids: &RequestIds,
    body: &[u8],
    meter: &mut Meter,
) -> Result<Prepared, ApiError> {
    let request_id = ids.id.as_str();
    let mut c = {
        let _stage = tracing::debug_span!(target: SPAN_TARGET, "classify").entered();
        classify(&gw.cfg, &gw.registry, route, caller, body)?
    };
    if ids.service.is_some() {
        c.service_tier = ids.service;
    }
    meter.requested(&c.model, c.stream);
    meter.service_tier(c.service().as_str());
    let bid = bid_of(ids.bid.as_ref())?;
    // The request's tier (its tenant's, or the one its `service_tier` names) charges and values it.
    let tier = gw.cfg.request_tier(&caller.tenant, c.service());
    let rates = tier.map(|t| (t.price_rates(), t.value_rates())).unwrap_or_default();
    meter.rates(rates.0, rates.1);
    let premium = {
        let _stage = tracing::debug_span!(target: SPAN_TARGET, "guard").entered();
        super::guard::guard(gw, caller, &c, request_id, meter)?
    };
    let mut capture = None;
    if let Some(kind) = route.cache_kind() {
        let lookup = gw.cache.lookup(tier, &caller.tenant, &c.model, route.path(), kind, &c.json);
        if let Some((probe, hit)) = lookup.instrument(tracing::debug_span!(target: SPAN_TARGET, "cache")).await {
            if let Some(hit) = hit {
                return Ok(Prepared::Cached { c, hit });
            }
            meter.cache("miss");
            capture = Some(Capture::new(gw.cache.clone(), probe));
        }
    }
    let admit_span = tracing::debug_span!(target: SPAN_TARGET, "admit");
    let mut admitted = admit::admit(gw.admission(), caller, &c, bid, premium, ids.window_ms.as_ref(), meter)
        .instrument(admit_span)
        .await?;
    // Only the asked-for model's own answer is cached: a downgraded answer is another model's.
    let capture = capture.filter(|_| admitted.model == c.model);
    let capture = match (keeper(gw, tier, &caller.tenant, route, &c, &admitted.model), capture) {
        (Some(keep), Some(cap)) => Some(cap.and_keep(keep)),
        (Some(keep), None) => Some(Capture::keeping(Kind::Chat, keep)),
        (None, cap) => cap,
    };
    let pool: &Pool =
        gw.registry.pool(&admitted.model).ok_or_else(|| ApiError::ModelNotFound(admitted.model.clone()))?;
    let upstream_body = c.body_for(&pool.upstream_model, admitted.output_cap)?;
    let hashes = if pool.wants_prefix() { c.prompt.prefix_hashes() } else { Vec::new() };
    let send_span = tracing::debug_span!(target: SPAN_TARGET, "send", backend = tracing::field::Empty);
    let sent = send::send(pool, route.upstream_path(), upstream_body, request_id, &hashes, meter)
        .instrument(send_span)
        .await?;
    meter.first_token();
    // A stream's first chunk is its first token; a whole response's first bytes come at its
    // end, so its prefill stays in the backlog until then (conservative).
    admitted.first_token();
    Ok(Prepared::Upstream { c, sent, admitted, capture, model: pool.model.clone() })
}

/// A bid header as USD per 1,000 tokens: a finite, non-negative number, or a 400.
fn bid_of(h: Option<&HeaderValue>) -> Result<Option<f64>, ApiError> {
    let Some(h) = h else { return Ok(None) };
    match h.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()) {
        Some(b) if b.is_finite() && b >= 0.0 => Ok(Some(b)),
        _ => Err(ApiError::InvalidValue {
            message: format!("{} must be a non-negative number of USD per 1,000 tokens.", super::gateway::BID_HEADER),
            param: super::gateway::BID_HEADER,
        }),
    }
}

fn served_headers(model: &str, backend: &str, admitted: &Admitted, service: ServiceTier) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-tollgate-service-tier", HeaderValue::from_static(service.as_str()));
    h.insert("x-tollgate-decision", HeaderValue::from_static(admitted.decision.as_str()));
    if let Some(p) = admitted.price {
        if let Ok(v) = HeaderValue::from_str(&format!("{p:.9}")) {
            h.insert("x-tollgate-price", v);
        }
    }
    if let Some(Ok(v)) = admitted.cleared_per_1k.map(|c| HeaderValue::from_str(&format!("{c:.9}"))) {
        h.insert("x-tollgate-cleared-per-1k", v);
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
) -> Response {
    let answer = hit.answer();
    let tokens = crate::metering::Tokens::new(answer.input_tokens, answer.output_tokens, false);
    let rates = gw.cfg.request_tier(&caller.tenant, c.service()).map(crate::config::TierConfig::price_rates);
    let charge = rates.unwrap_or_default().charge(tokens);
    let total = (tokens.input + tokens.output).max(0) as u64;
    let hold = match super::admit::admit_tenant(gw.admission(), &caller.tenant, charge, total).await {
        Ok(h) => h,
        Err(e) => {
            meter.finish(e.status().as_u16(), e.outcome(), Some(e.to_string())).wait().await;
            return e.into_response();
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
    if c.stream {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        (StatusCode::OK, headers, Body::from(answer.sse(&id, created, c.client_wants_usage))).into_response()
    } else {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        (StatusCode::OK, headers, Body::from(answer.whole(&id, created))).into_response()
    }
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
    let Some(tokens) = tally::whole_tokens(&buf, &c.prompt) else {
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
    if let (Some(service), true) = (c.service_tier, status == StatusCode::OK) {
        // OpenAI echoes the service tier that served the request in its answer.
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&buf) {
            if let Some(o) = v.as_object_mut() {
                o.insert("service_tier".into(), service.as_str().into());
                buf = serde_json::to_vec(&v).unwrap_or(buf);
            }
        }
    }
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

/// For a tier that keeps distillation data, what keeps this chat completion's answer with its
/// request's messages (the answering model recorded with it).
fn keeper(
    gw: &Gateway,
    tier: Option<&crate::config::TierConfig>,
    tenant: &str,
    route: Route,
    c: &Classified,
    model: &str,
) -> Option<crate::cache::Keep> {
    let tier = tier.filter(|t| t.keep_for_distillation)?;
    // Chat completions as clients sent them (Messages and Responses requests are not kept yet).
    if !matches!(route, Route::Chat) {
        return None;
    }
    let messages = c.json.get("messages")?.clone();
    let keeper = crate::distill::keep::Keeper {
        dir: crate::distill::tenant_dir(&gw.cfg.data_dir, tenant),
        retention_days: tier.distillation_retention_days,
    };
    let model = model.to_string();
    Some(Box::new(move |answer: &Cached| {
        let at = crate::metering::unix_ms();
        if let Some(r) = crate::distill::keep::record(&messages, answer.body(), &model, at) {
            keeper.spawn_append(r, at);
        }
    }))
}
