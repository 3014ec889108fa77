//! The Batch and Files APIs' JSON shapes, as OpenAI's SDKs read them (pure): file and batch
//! objects, and the lines of a batch's output file (a 2xx answer) and error file (anything
//! else: a non-2xx answer with its body, or a request that never ran).

use super::input::LineError;
use crate::store::batches::{BatchRecord, FileRecord};
use serde_json::{json, Value};

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

pub fn file(f: &FileRecord) -> Value {
    json!({
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": secs(f.created_at_ms),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": null,
    })
}

pub fn batch(b: &BatchRecord) -> Value {
    let at = |ms: Option<i64>| ms.map(secs);
    let parse = |s: &Option<String>| s.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
    json!({
        "id": b.id,
        "object": "batch",
        "endpoint": b.endpoint,
        "errors": parse(&b.errors),
        "input_file_id": b.input_file_id,
        "completion_window": b.completion_window,
        "status": b.status.as_str(),
        "output_file_id": b.output_file_id,
        "error_file_id": b.error_file_id,
        "created_at": secs(b.created_at_ms),
        "in_progress_at": at(b.in_progress_at_ms),
        "expires_at": secs(b.expires_at_ms),
        "finalizing_at": at(b.finalizing_at_ms),
        "completed_at": at(b.completed_at_ms),
        "failed_at": at(b.failed_at_ms),
        "expired_at": at(b.expired_at_ms),
        "cancelling_at": at(b.cancelling_at_ms),
        "cancelled_at": at(b.cancelled_at_ms),
        "request_counts": {"total": b.total, "completed": b.completed, "failed": b.failed},
        "metadata": parse(&b.metadata),
    })
}

/// OpenAI's `errors` of a batch that failed validation.
pub fn validation_errors(errors: &[LineError]) -> Value {
    let data: Vec<Value> = errors
        .iter()
        .map(|e| json!({"code": e.code, "message": e.message, "param": null, "line": (e.line > 0).then_some(e.line)}))
        .collect();
    json!({"object": "list", "data": data})
}

/// The id of a batch line's request (`batch_req_...`): the batch's and the line's.
pub fn request_id(batch_id: &str, line: i64) -> String {
    format!("batch_req_{}_{line}", batch_id.trim_start_matches("batch_"))
}

/// A line of the output or error file for a request that was answered with `status` and `body`.
pub fn answered(batch_id: &str, line: i64, custom_id: &str, status: u16, rid: &str, body: Value) -> String {
    json!({
        "id": request_id(batch_id, line),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": rid, "body": body},
        "error": null,
    })
    .to_string()
}

/// A line of the error file for a request that never ran (`batch_expired`, `batch_cancelled`).
pub fn not_run(batch_id: &str, line: i64, custom_id: &str, code: &str, message: &str) -> String {
    json!({
        "id": request_id(batch_id, line),
        "custom_id": custom_id,
        "response": null,
        "error": {"code": code, "message": message},
    })
    .to_string()
}

/// The error file of a batch that failed validation: a line per problem, with its line number.
pub fn validation_file(errors: &[LineError]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(
            &json!({"line": (e.line > 0).then_some(e.line), "error": {"code": e.code, "message": e.message}})
                .to_string(),
        );
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_custom_id_and_either_a_response_or_an_error() {
        let ok: Value =
            serde_json::from_str(&answered("batch_x", 3, "c3", 200, "r", json!({"id": "chatcmpl"}))).unwrap();
        assert_eq!(ok["custom_id"], "c3");
        assert_eq!(ok["id"], "batch_req_x_3");
        assert_eq!(ok["response"]["status_code"], 200);
        assert!(ok["error"].is_null());
        let gone: Value = serde_json::from_str(&not_run("batch_x", 4, "c4", "batch_expired", "late")).unwrap();
        assert!(gone["response"].is_null());
        assert_eq!(gone["error"]["code"], "batch_expired");
        let e = [LineError { line: 2, code: "invalid_json", message: "bad".into() }];
        assert_eq!(validation_errors(&e)["data"][0]["line"], 2);
        assert!(validation_file(&e).starts_with(r#"{"error":{"code":"invalid_json""#));
    }
}
