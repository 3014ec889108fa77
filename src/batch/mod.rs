//! OpenAI's Batch API: uploaded JSONL files of requests, run as deferrable work that admission
//! prices like any other (each line a request of the batch tier, waiting for its price to clear),
//! with one ledger row per line and the output and error files in OpenAI's format.
//!
//! - [`files`]: where file bytes live (a trait; the data directory by default).
//! - [`input`]: a batch's input file read and checked line by line (pure).
//! - [`objects`]: the API's JSON shapes: file and batch objects, output and error lines (pure).
//! - [`dispatch`]: the task that claims lines, runs them through the gateway's own pipeline,
//!   records each result with its ledger row in one transaction, and finalizes, expires or
//!   cancels batches. Durable: a restart (or another replica) resumes from the store.

pub mod dispatch;
pub mod files;
pub mod input;
pub mod objects;

/// The endpoints a batch may target (the pipeline's routes for them).
pub fn route_of(endpoint: &str) -> Option<crate::api::classify::Route> {
    use crate::api::classify::Route;
    match endpoint {
        "/v1/chat/completions" => Some(Route::Chat),
        "/v1/completions" => Some(Route::Completions),
        "/v1/embeddings" => Some(Route::Embeddings),
        "/v1/responses" => Some(Route::Responses),
        _ => None,
    }
}

/// The completion windows offered (OpenAI's one, `24h`), and their length in seconds here
/// (`[batches] completion_window_s`).
pub fn window_s(window: &str, cfg: &crate::config::BatchesConfig) -> Option<i64> {
    match window {
        "24h" => Some(cfg.completion_window_s as i64),
        _ => None,
    }
}

/// Keeps batch `batch_id`'s output or error file (`suffix` `output` or `errors`) for `tenant`:
/// the bytes in the file store and the record in the store. Its id is derived from the batch's,
/// so writing it again (finalizing after a crash) replaces it. Returns the id.
pub async fn keep_file<E>(
    gw: &crate::api::gateway::Gateway,
    batch_id: &str,
    tenant: &str,
    suffix: &str,
    text: &str,
    now_ms: i64,
) -> Result<String, E>
where
    E: From<files::FileError> + From<crate::store::StoreError>,
{
    let id = format!("file-{}-{suffix}", batch_id.trim_start_matches("batch_"));
    gw.files.put(&id, text.as_bytes()).await?;
    let f = crate::store::batches::FileRecord {
        id: id.clone(),
        tenant: tenant.to_string(),
        purpose: "batch_output".into(),
        filename: format!("{batch_id}_{suffix}.jsonl"),
        bytes: text.len() as i64,
        created_at_ms: now_ms,
    };
    gw.store.put_file(&f).await?;
    Ok(id)
}
