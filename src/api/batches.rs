//! OpenAI's Batch API: `POST /v1/batches` (from an uploaded file, checked line by line at
//! once: a line for a model the tenant may not use refuses the batch; malformed lines fail it
//! with a line-numbered error file), `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel` and
//! `GET /v1/batches`. The lines run in [`crate::batch::dispatch`].

use super::error::invalid;
use super::gateway::Gateway;
use super::ApiError;
use crate::auth::Caller;
use crate::batch::{input, objects};
use crate::store::batches::{BatchRecord, BatchStatus, NewLine};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, serde::Deserialize)]
pub struct Create {
    input_file_id: String,
    endpoint: String,
    completion_window: String,
    #[serde(default)]
    metadata: Option<Value>,
}

/// `POST /v1/batches`.
pub async fn create(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: Create = serde_json::from_slice(&body).map_err(|e| ApiError::from_json(&e))?;
    if crate::batch::route_of(&req.endpoint).is_none() {
        return Err(invalid(
            "endpoint must be one of /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses.",
            "endpoint",
        ));
    }
    let Some(window_s) = crate::batch::window_s(&req.completion_window, &gw.cfg.batches) else {
        return Err(invalid("completion_window must be '24h'.", "completion_window"));
    };
    if req.metadata.as_ref().is_some_and(|m| !m.is_object() && !m.is_null()) {
        return Err(invalid("metadata must be an object.", "metadata"));
    }
    let file = super::files::find(&gw, &caller, &req.input_file_id).await?;
    if file.purpose != "batch" {
        return Err(invalid("The input file's purpose must be 'batch'.", "input_file_id"));
    }
    let bytes = gw.files.get(&file.id).await?;
    let now = crate::units::unix_ms();
    let id = format!("batch_{}", uuid::Uuid::new_v4().simple());
    let mut b = BatchRecord {
        id: id.clone(),
        tenant: caller.tenant.clone(),
        key_id: caller.key_id.clone(),
        endpoint: req.endpoint.clone(),
        input_file_id: file.id.clone(),
        completion_window: req.completion_window.clone(),
        status: BatchStatus::InProgress,
        created_at_ms: now,
        expires_at_ms: now + window_s * 1000,
        in_progress_at_ms: Some(now),
        finalizing_at_ms: None,
        completed_at_ms: None,
        failed_at_ms: None,
        expired_at_ms: None,
        cancelling_at_ms: None,
        cancelled_at_ms: None,
        output_file_id: None,
        error_file_id: None,
        total: 0,
        completed: 0,
        failed: 0,
        metadata: req.metadata.filter(|m| !m.is_null()).map(|m| m.to_string()),
        errors: None,
    };
    let lines = match input::parse(&bytes, &req.endpoint, gw.cfg.batches.max_lines) {
        Ok(lines) => lines,
        Err(errors) => {
            // Failed validation: the batch exists, failed, with its errors and an error file.
            let text = objects::validation_file(&errors);
            let err_id = crate::batch::keep_file::<ApiError>(&gw, &id, &caller.tenant, "errors", &text, now).await?;
            b.status = BatchStatus::Failed;
            (b.in_progress_at_ms, b.failed_at_ms) = (None, Some(now));
            b.errors = Some(objects::validation_errors(&errors).to_string());
            b.error_file_id = Some(err_id);
            gw.store.create_batch(&b, &[]).await?;
            return Ok(Json(objects::batch(&b)));
        }
    };
    // Every model is one the tenant may use, or the batch is refused now.
    let models: BTreeSet<&str> = lines.iter().map(|l| l.model.as_str()).collect();
    for m in models {
        if gw.registry.pool(m).is_none() {
            return Err(ApiError::ModelNotFound(m.to_string()));
        }
        if !gw.cfg.may_use(&caller.tenant, m) {
            return Err(ApiError::ModelNotAllowed(m.to_string()));
        }
    }
    b.total = lines.len() as i64;
    let rows: Vec<NewLine> =
        lines.into_iter().map(|l| NewLine { line: l.line, custom_id: l.custom_id, body: l.body.to_string() }).collect();
    gw.store.create_batch(&b, &rows).await?;
    gw.batch_wake.notify_one();
    Ok(Json(objects::batch(&b)))
}

async fn find(gw: &Gateway, caller: &Caller, id: &str) -> Result<BatchRecord, ApiError> {
    gw.store
        .get_batch(&caller.tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound { what: "batch", id: id.to_string() })
}

/// `GET /v1/batches/{id}`.
pub async fn retrieve(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(objects::batch(&find(&gw, &caller, &id).await?)))
}

/// `POST /v1/batches/{id}/cancel`: a batch in progress stops starting lines; those running
/// finish, the rest are cancelled. A batch already ended is returned as it is.
pub async fn cancel(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let b = find(&gw, &caller, &id).await?;
    let from = [BatchStatus::Validating, BatchStatus::InProgress];
    if gw.store.move_batch(&b.id, &from, BatchStatus::Cancelling, crate::units::unix_ms()).await? {
        gw.batch_wake.notify_one();
    }
    Ok(Json(objects::batch(&find(&gw, &caller, &id).await?)))
}

#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/batches`: newest first, `limit` (1-100, default 20) after the batch `after`.
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let mut batches = gw.store.list_batches(&caller.tenant, q.after.as_deref(), limit + 1).await?;
    let has_more = batches.len() as i64 > limit;
    batches.truncate(limit as usize);
    let data: Vec<Value> = batches.iter().map(objects::batch).collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "first_id": batches.first().map(|b| &b.id),
        "last_id": batches.last().map(|b| &b.id),
        "has_more": has_more,
    })))
}
