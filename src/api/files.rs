//! OpenAI's Files API, for the Batch API: `POST /v1/files` (a multipart upload of a JSONL file
//! with purpose `batch`), `GET /v1/files`, `GET /v1/files/{id}`, `GET /v1/files/{id}/content`
//! and `DELETE /v1/files/{id}`. Files are a tenant's own: another tenant's id is not found.

use super::error::invalid;
use super::gateway::Gateway;
use super::ApiError;
use crate::auth::Caller;
use crate::batch::objects;
use crate::store::batches::FileRecord;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::Arc;

/// `POST /v1/files`.
pub async fn upload(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    mut form: Multipart,
) -> Result<Json<Value>, ApiError> {
    let (mut bytes, mut filename, mut purpose) = (None, None, None);
    while let Some(field) = form.next_field().await? {
        match field.name() {
            Some("file") => {
                filename = Some(field.file_name().unwrap_or("upload.jsonl").to_string());
                bytes = Some(field.bytes().await?);
            }
            Some("purpose") => purpose = Some(field.text().await?),
            _ => {}
        }
    }
    let Some(bytes) = bytes else { return Err(invalid("A file is required.", "file")) };
    if purpose.as_deref() != Some("batch") {
        return Err(invalid("purpose must be 'batch' (the only purpose this gateway keeps files for).", "purpose"));
    }
    if bytes.len() > gw.cfg.batches.max_file_bytes {
        return Err(invalid(format!("A file may be at most {} bytes.", gw.cfg.batches.max_file_bytes), "file"));
    }
    let f = FileRecord {
        id: format!("file-{}", uuid::Uuid::new_v4().simple()),
        tenant: caller.tenant.clone(),
        purpose: "batch".into(),
        filename: filename.unwrap_or_default(),
        bytes: bytes.len() as i64,
        created_at_ms: crate::units::unix_ms(),
    };
    gw.files.put(&f.id, &bytes).await?;
    gw.store.put_file(&f).await?;
    Ok(Json(objects::file(&f)))
}

#[derive(Debug, serde::Deserialize)]
pub struct ListQuery {
    purpose: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/files`.
pub async fn list(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(10_000).clamp(1, 10_000);
    let files = gw.store.list_files(&caller.tenant, q.purpose.as_deref(), limit).await?;
    let data: Vec<Value> = files.iter().map(objects::file).collect();
    Ok(Json(json!({"object": "list", "data": data, "has_more": false})))
}

/// The caller's file `id`, or 404.
pub(super) async fn find(gw: &Gateway, caller: &Caller, id: &str) -> Result<FileRecord, ApiError> {
    gw.store.get_file(&caller.tenant, id).await?.ok_or_else(|| ApiError::NotFound { what: "file", id: id.to_string() })
}

/// `GET /v1/files/{id}`.
pub async fn retrieve(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(objects::file(&find(&gw, &caller, &id).await?)))
}

/// `GET /v1/files/{id}/content`.
pub async fn content(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let f = find(&gw, &caller, &id).await?;
    let bytes = gw.files.get(&f.id).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// `DELETE /v1/files/{id}`.
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let f = find(&gw, &caller, &id).await?;
    gw.store.delete_file(&caller.tenant, &f.id).await?;
    gw.files.delete(&f.id).await?;
    Ok(Json(json!({"id": f.id, "object": "file", "deleted": true})))
}
