//! How injected faults reach the wire: an error answer or a connection reset before any byte,
//! and a whole answer cut, truncated, stalled or malformed on the way out.

use super::faults::Fault;
use crate::serve::http::ConnReset;
use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::{self, StreamExt};
use serde_json::json;
use std::convert::Infallible;

/// What a `malformed` fault sends in place of a JSON event or body.
pub const MALFORMED_EVENT: &str =
    "{\"id\": \"broken\", \"choices\": [{\"delta\": {\"content\": <html>Bad Gateway</html>";

/// A fault that acts before any byte: an error answer, a reset, or a stall before going on.
pub async fn before_response(fault: Option<Fault>, reset: Option<&ConnReset>) -> Option<Response> {
    match fault? {
        Fault::Status(code) => {
            Some(injected_error(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), None))
        }
        Fault::RateLimit { retry_after_s } => Some(injected_error(StatusCode::TOO_MANY_REQUESTS, Some(retry_after_s))),
        Fault::Reset => {
            reset_connection(reset).await;
            Some(injected_error(StatusCode::INTERNAL_SERVER_ERROR, None))
        }
        Fault::StallFirst(d) => {
            tokio::time::sleep(d).await;
            None
        }
        _ => None,
    }
}

/// Resets the request's connection and never returns; without a handle (routes served by
/// another server) it logs and returns.
pub async fn reset_connection(reset: Option<&ConnReset>) {
    match reset {
        Some(r) => {
            r.reset();
            std::future::pending::<()>().await
        }
        None => tracing::warn!("fault 'reset' needs the emulator's own server (serve::http); ignored"),
    }
}

fn injected_error(status: StatusCode, retry_after_s: Option<u64>) -> Response {
    let kind = if status == StatusCode::TOO_MANY_REQUESTS { "rate_limit_exceeded" } else { "server_error" };
    let body = json!({"error": {
        "message": format!("Injected fault: {} {}.", status.as_u16(), status.canonical_reason().unwrap_or("")),
        "type": kind, "param": null, "code": "injected_fault",
    }});
    let mut r = (status, Json(body)).into_response();
    if let Some(s) = retry_after_s {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// A whole JSON answer, delivered as a fault says: half then a pause, half then a reset, half
/// only, or not JSON at all.
pub async fn whole_response(value: &serde_json::Value, fault: Option<Fault>, reset: Option<ConnReset>) -> Response {
    let bytes = Bytes::from(value.to_string());
    let half = bytes.slice(..bytes.len() / 2);
    let rest = bytes.slice(bytes.len() / 2..);
    let json_body = |body: axum::body::Body| {
        let mut r = body.into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    let parts: Vec<Bytes> = match fault {
        Some(Fault::Slow(d)) => {
            tokio::time::sleep(d).await;
            vec![bytes]
        }
        Some(Fault::Malformed) => vec![Bytes::from_static(MALFORMED_EVENT.as_bytes())],
        Some(Fault::Truncate) => vec![half],
        Some(Fault::StallMid(d)) => {
            let tail = stream::once(async move {
                tokio::time::sleep(d).await;
                Ok::<_, Infallible>(rest)
            });
            return json_body(axum::body::Body::from_stream(stream::iter([Ok(half)]).chain(tail)));
        }
        Some(Fault::Cut) => {
            let tail = stream::once(async move {
                reset_connection(reset.as_ref()).await;
                Err::<Bytes, _>(std::io::Error::other("injected cut"))
            });
            return json_body(axum::body::Body::from_stream(stream::iter([Ok(half)]).chain(tail)));
        }
        _ => return Json(value).into_response(),
    };
    json_body(axum::body::Body::from_stream(stream::iter(parts.into_iter().map(Ok::<_, Infallible>))))
}
