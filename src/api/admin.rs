//! The admin API (admin key only): keys, usage and the recent ledger.

use super::gateway::Gateway;
use super::ApiError;
use crate::auth;
use crate::metering::unix_ms;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// A query string, whose rejection is an OpenAI-shaped 400 like every other error.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

#[derive(Deserialize)]
pub struct CreateKey {
    tenant: String,
    #[serde(default)]
    label: String,
}

pub async fn create_key(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let req: CreateKey = super::parse_body(&body)?;
    if gw.cfg.tenant(&req.tenant).is_none() {
        return Err(ApiError::NotFound { what: "tenant", id: req.tenant });
    }
    let k = auth::generate(&req.tenant, &req.label);
    gw.store.insert_key(&k.record).await.map_err(internal)?;
    gw.auth.evict(&k.record.id);
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": k.record.id, "tenant": k.record.tenant, "label": k.record.label, "key": k.key})),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ListKeys {
    tenant: Option<String>,
}

pub async fn list_keys(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<ListKeys>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let keys = gw.store.list_keys(q.tenant.as_deref()).await.map_err(internal)?;
    Ok(Json(json!({"object": "list", "data": keys})))
}

pub async fn revoke_key(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let done = gw.store.revoke_key(&id, unix_ms()).await.map_err(internal)?;
    gw.auth.evict(&id);
    if !done {
        return Err(ApiError::NotFound { what: "live key", id });
    }
    Ok(Json(json!({"id": id, "revoked": true})))
}

#[derive(Deserialize)]
pub struct Since {
    #[serde(default)]
    since_ms: i64,
}

pub async fn usage(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<Since>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.since_ms < 0 {
        let message = format!("since_ms must be a Unix time in milliseconds (0 or more); got {}.", q.since_ms);
        return Err(ApiError::InvalidValue { message, param: "since_ms" });
    }
    let rows = gw.store.usage(q.since_ms).await.map_err(internal)?;
    Ok(Json(json!({"object": "list", "since_ms": q.since_ms, "data": rows, "ledger_queue": gw.sink.queued()})))
}

#[derive(Deserialize)]
pub struct Limit {
    #[serde(default = "hundred")]
    limit: i64,
}

fn hundred() -> i64 {
    100
}

pub async fn ledger(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<Limit>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = gw.store.ledger(checked_limit(q.limit)?).await.map_err(internal)?;
    let total = gw.store.ledger_count().await.map_err(internal)?;
    Ok(Json(json!({"object": "list", "total": total, "data": rows})))
}

/// The extraction watch's standings: every tenant and key with requests in its window, highest
/// score first, with the score's reasons and signals.
pub async fn extraction(State(gw): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let Some(w) = &gw.guard else {
        return Json(json!({"enabled": false, "tenants": [], "keys": []}));
    };
    let (tenants, keys) = w.standings();
    let list = |v: crate::guard::watch::Ranked, field: &str| -> Vec<serde_json::Value> {
        v.into_iter()
            .map(|(name, s)| json!({field: name, "score": s.score, "reasons": s.reasons, "signals": s.features}))
            .collect()
    };
    Json(
        json!({"enabled": true, "dropped": w.dropped(), "tenants": list(tenants, "tenant"), "keys": list(keys, "key_id")}),
    )
}

/// The price board: the last plan's shadow prices and per-class plan, with each pool's live
/// price (after between-solve corrections) and load.
pub async fn prices(State(gw): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let Some(a) = &gw.allocator else {
        return Json(json!({"enabled": false, "pools": []}));
    };
    let board = a.board();
    let live: Vec<_> = a
        .fleet
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let l = &a.load(i);
            json!({"pool": p.name, "price": a.price(i), "inflight_engine_s": l.inflight(),
                   "all_replicas_inflight_engine_s": l.total_inflight(), "room_engine_s": l.room(),
                   "utilisation": l.utilisation()})
        })
        .collect();
    let leader = gw.state_health.leader.load(std::sync::atomic::Ordering::Acquire);
    Json(json!({"enabled": gw.cfg.admission.enabled, "replica": gw.state.replica_id(), "leader": leader,
                "board": *board, "live": live}))
}

/// Tenants: tier, allowed models, monthly budget, and what is spent and held against it now.
pub async fn tenants(State(gw): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let mut data = Vec::with_capacity(gw.cfg.tenants.len());
    for t in &gw.cfg.tenants {
        // Unreachable shared state shows as nulls rather than failing the listing.
        let usage = gw.state.tenant_usage(&t.name).await.ok().flatten();
        data.push(json!({
            "name": t.name, "tier": t.tier, "models": t.models,
            "monthly_budget_usd": t.monthly_budget_usd,
            "tokens_per_minute": t.tokens_per_minute, "requests_per_minute": t.requests_per_minute,
            "spent_usd": usage.map(|u| u.0), "held_usd": usage.map(|u| u.1),
        }));
    }
    Json(json!({"object": "list", "data": data}))
}

/// Tiers: prices, value, SLOs, deferral.
pub async fn tiers(State(gw): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    let data: Vec<_> = gw
        .cfg
        .tiers
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "input_price_per_1m": t.input_price_per_1m, "output_price_per_1m": t.output_price_per_1m,
                "value_per_1m_input": t.value_per_1m_input.unwrap_or(t.input_price_per_1m),
                "value_per_1m_output": t.value_per_1m_output.unwrap_or(t.output_price_per_1m),
                "ttft_slo_ms": t.ttft_slo_ms, "e2e_slo_ms": t.e2e_slo_ms,
                "deferrable": t.deferrable, "deadline_ms": t.deadline_ms,
                "reserved_engine_seconds": t.reserved_engine_seconds,
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The most recent admission decisions, newest first (from the ledger).
pub async fn decisions(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<Limit>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = gw.store.ledger(checked_limit(q.limit)?).await.map_err(internal)?;
    let data: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "tenant": r.tenant, "model_requested": r.model_requested,
                "model_served": r.model_served, "decision": r.decision, "price": r.price,
                "net_value_usd": r.net_value, "status": r.status, "started_at_ms": r.started_at_ms,
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// A list's `limit`: 1 to 10,000 rows.
fn checked_limit(limit: i64) -> Result<i64, ApiError> {
    if (1..=10_000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::InvalidValue {
            message: format!("limit must be between 1 and 10000; got {limit}."),
            param: "limit",
        })
    }
}
