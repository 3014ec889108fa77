//! The operator's web views: the live dashboard at `/dashboard` (login with the admin key; a
//! session cookie after), its state as JSON at `/dashboard/state`, and the chart code the
//! simulator's HTML report embeds too.
//! The session token is derived from the admin key (it changes when the key does); the cookie
//! is HttpOnly, SameSite=Strict, for 12 hours. Failed logins count against the address.

use crate::api::gateway::Gateway;
use crate::auth::sha256_hex;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// Plain-JavaScript SVG line and bar charts (`window.TollgateCharts`).
pub const CHARTS_JS: &str = include_str!("assets/charts.js");
const PAGE: &str = include_str!("assets/dashboard.html");
const LOGIN: &str = include_str!("assets/login.html");
const COOKIE: &str = "tollgate_session";

/// The session token a successful login sets: derived from the admin key, so it changes with it.
fn session_token(admin_key_hash: &str) -> String {
    sha256_hex(&format!("tollgate-dashboard-session:{admin_key_hash}"))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Whether the request carries the admin key (bearer) or a valid session cookie.
fn authorised(gw: &Gateway, headers: &HeaderMap) -> bool {
    let bearer = crate::auth::bearer(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
    if gw.auth.is_admin(bearer) {
        return true;
    }
    match (cookie(headers, COOKIE), gw.auth.admin_hash()) {
        (Some(c), Some(h)) => crate::auth::constant_time_eq(c.as_bytes(), session_token(h).as_bytes()),
        _ => false,
    }
}

fn login_page(status: StatusCode, message: &str) -> Response {
    (status, Html(LOGIN.replace("{{message}}", message))).into_response()
}

async fn page(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if authorised(&gw, &headers) {
        Html(PAGE).into_response()
    } else {
        login_page(StatusCode::UNAUTHORIZED, "")
    }
}

async fn charts(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !authorised(&gw, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    ([(header::CONTENT_TYPE, "application/javascript")], CHARTS_JS).into_response()
}

#[derive(serde::Deserialize)]
struct Login {
    key: String,
}

async fn login(
    State(gw): State<Arc<Gateway>>,
    ext: axum::http::Extensions,
    axum::Form(f): axum::Form<Login>,
) -> Response {
    // Failed logins count against the address like failed API authentications.
    let ip = ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|a| a.0.ip());
    if let Some(ip) = ip {
        if let Err(retry_after_s) = gw.auth.failures.check(ip) {
            return crate::api::ApiError::AuthRateLimited { retry_after_s }.into_response();
        }
    }
    match (gw.auth.is_admin(Some(f.key.trim())), gw.auth.admin_hash()) {
        (true, Some(h)) => {
            let set =
                format!("{COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=43200", session_token(h));
            (StatusCode::SEE_OTHER, [(header::SET_COOKIE, set), (header::LOCATION, "/dashboard".to_string())])
                .into_response()
        }
        _ => {
            if let Some(ip) = ip {
                gw.auth.failures.fail(ip);
            }
            login_page(StatusCode::UNAUTHORIZED, "That is not the admin key.")
        }
    }
}

/// Everything the page draws, now: pools (price, utilisation, work in flight), usage by tenant
/// and model (spend, value, cost, margin), recent decisions by class, cache hits, backends, open
/// batches.
async fn state(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    if !authorised(&gw, &headers) {
        return crate::api::ApiError::AdminOnly.into_response();
    }
    let pools: Vec<_> = match &gw.allocator {
        Some(a) => a
            .fleet
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"pool": p.name, "price": a.price(i), "utilisation": a.load(i).utilisation(),
                       "inflight_engine_s": a.load(i).inflight(), "room_engine_s": a.load(i).room()})
            })
            .collect(),
        None => vec![],
    };
    let usage = gw.store.usage(0).await.unwrap_or_default();
    let recent = gw.store.ledger(2000).await.unwrap_or_default();
    let mut classes: std::collections::BTreeMap<(String, String, String), u64> = Default::default();
    for r in &recent {
        *classes.entry((r.tenant.clone(), r.model_requested.clone(), r.decision.clone())).or_default() += 1;
    }
    let decisions: Vec<_> =
        classes.into_iter().map(|((t, m, d), n)| json!({"tenant": t, "model": m, "decision": d, "count": n})).collect();
    let backends: Vec<_> = gw
        .registry
        .backends
        .iter()
        .map(|b| json!({"backend": b.name, "healthy": b.healthy(), "circuit": b.circuit_label(), "outstanding": b.outstanding()}))
        .collect();
    // Cache lookups since start, per tenant and model, from the same counters as /metrics.
    let mut cache: std::collections::BTreeMap<(String, String), [u64; 3]> = Default::default();
    for (tenant, model, result, n) in gw.sink.metrics().cache_counts() {
        let slot = match result.as_str() {
            "exact" => 0,
            "semantic" => 1,
            _ => 2,
        };
        cache.entry((tenant, model)).or_default()[slot] += n;
    }
    let cache: Vec<_> = cache
        .into_iter()
        .map(|((t, m), [exact, semantic, miss])| {
            json!({"tenant": t, "model": m, "lookups": exact + semantic + miss, "exact_hits": exact, "semantic_hits": semantic})
        })
        .collect();
    // The extraction watch's 20 highest-scored tenants, with the score's reasons.
    let extraction: Vec<_> =
        gw.guard.as_ref().map_or_else(Vec::new, |w| {
            w.standings().0.into_iter().take(20).map(|(t, s)| {
            json!({"tenant": t, "score": s.score, "reasons": s.reasons, "requests": s.features.requests})
        }).collect()
        });
    Json(json!({
        "now_ms": crate::metering::unix_ms(), "pools": pools, "usage": usage,
        "decisions": decisions, "backends": backends, "ledger_queue": gw.sink.queued(), "cache": cache,
        "batches": open_batches(&gw).await, "extraction": extraction,
    }))
    .into_response()
}

/// Every tenant's open batches (in progress, finalizing or cancelling) with their lines' states,
/// the value their finished lines earned and when the rest should finish.
async fn open_batches(gw: &Gateway) -> Vec<serde_json::Value> {
    let now = crate::metering::unix_ms();
    let mut out = Vec::new();
    for b in gw.store.open_batches().await.unwrap_or_default() {
        let c = gw.store.line_counts(&b.id).await.unwrap_or_default();
        out.push(json!({"id": b.id, "tenant": b.tenant, "endpoint": b.endpoint, "status": b.status.as_str(),
            "pending": c.pending, "running": c.running, "done": c.done, "value_usd": c.value_usd,
            "expected_finish_ms": expected_finish(now, b.in_progress_at_ms, &c),
            "created_at_ms": b.created_at_ms, "expires_at_ms": b.expires_at_ms}));
    }
    out
}

/// When a batch's remaining lines should be done if they keep finishing at the rate its lines
/// have since it started (which follows the prices they have met); unknown before one finishes.
fn expected_finish(now_ms: i64, started_ms: Option<i64>, c: &crate::store::batches::LineCounts) -> Option<i64> {
    let started = started_ms.filter(|s| *s < now_ms && c.done > 0)?;
    let per_line = (now_ms - started) as f64 / c.done as f64;
    Some(now_ms + (per_line * (c.pending + c.running) as f64).round() as i64)
}

/// The dashboard's routes (they check the admin key or session themselves).
pub fn router() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/login", post(login))
        .route("/dashboard/state", get(state))
        .route("/dashboard/charts.js", get(charts))
}

#[cfg(test)]
mod tests {
    use crate::store::batches::LineCounts;

    #[test]
    fn a_batch_finishes_at_the_rate_its_lines_have_finished() {
        let c = |done, pending| LineCounts { pending, running: 0, done, value_usd: 0.0 };
        // 10 lines in 20 s: the other 5 take 10 s more.
        assert_eq!(super::expected_finish(120_000, Some(100_000), &c(10, 5)), Some(130_000));
        assert_eq!(super::expected_finish(120_000, Some(100_000), &c(0, 5)), None, "no line done yet");
        assert_eq!(super::expected_finish(120_000, None, &c(3, 5)), None, "not started");
        assert_eq!(super::expected_finish(120_000, Some(100_000), &c(10, 0)), Some(120_000), "all done");
    }
}
