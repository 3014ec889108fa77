//! The admin API (admin key only): keys, usage and the recent ledger.

use super::gateway::Gateway;
use super::ApiError;
use crate::auth;
use crate::metering::unix_ms;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

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
        return Err(ApiError::InvalidValue { message: format!("Unknown tenant `{}`.", req.tenant), param: "tenant" });
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
        return Err(ApiError::InvalidValue { message: format!("No live key `{id}`."), param: "id" });
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
    let rows = gw.store.ledger(q.limit.clamp(1, 10_000)).await.map_err(internal)?;
    let total = gw.store.ledger_count().await.map_err(internal)?;
    Ok(Json(json!({"object": "list", "total": total, "data": rows})))
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
            json!({"pool": p.name, "price": a.price(i), "inflight_engine_s": a.loads[i].inflight(), "room_engine_s": a.loads[i].room(), "utilisation": a.loads[i].utilisation()})
        })
        .collect();
    Json(json!({"enabled": gw.cfg.admission.enabled, "board": *board, "live": live}))
}
