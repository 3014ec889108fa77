//! Talking to one backend: send the request, and wait (within the first-byte timeout) for the
//! response head and the first body chunk, so that a failure before anything reaches the client
//! can still be retried elsewhere.

use super::backend::Backend;
use super::client::ClientError;
use crate::config::BackendKind;
use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http_body_util::Full;
use std::time::Duration;

/// The Messages API version sent to Anthropic upstreams.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// An upstream body's chunks.
pub type BodyStream = BoxStream<'static, Result<Bytes, hyper::Error>>;

/// A response whose head and first chunk have arrived.
pub struct Opened {
    pub status: StatusCode,
    pub content_type: Option<String>,
    /// The upstream's `Retry-After`, in seconds (delta form only), passed on with its 429 or 503.
    pub retry_after_s: Option<u64>,
    pub first: Option<Bytes>,
    pub rest: BodyStream,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The backend's name, and why (refused, timed out, a TLS certificate not trusted).
    #[error("could not connect to {0}: {1}")]
    Connect(String, String),
    #[error("no response from {0} within the first-byte timeout")]
    FirstByteTimeout(String),
    #[error("{0}")]
    Transport(String),
}

/// POSTs `body` to `path` on `backend`. Only the upstream's own key and the request id are sent
/// as headers: nothing of the client's request headers is forwarded.
pub async fn open(backend: &Backend, path: &str, body: Bytes, request_id: &str) -> Result<Opened, UpstreamError> {
    let name = &backend.name;
    let uri = backend.uri(path).map_err(|e| UpstreamError::Transport(format!("{name}: {e}")))?;
    let mut req =
        Request::post(uri).header(header::CONTENT_TYPE, "application/json").header("x-request-id", request_id);
    if let Some((name, value)) = backend.auth_header() {
        req = req.header(name, value.clone());
    }
    if backend.cfg.kind == BackendKind::Anthropic {
        req = req.header("anthropic-version", ANTHROPIC_VERSION);
    }
    let req = req.body(Full::new(body)).map_err(|e| UpstreamError::Transport(format!("{name}: {e}")))?;
    let exchange = async {
        let resp = backend.http.request(req).await.map_err(|e| match e {
            ClientError::Connect(why) => UpstreamError::Connect(name.clone(), why),
            ClientError::Transport(e) => UpstreamError::Transport(format!("{name}: {e}")),
        })?;
        let status = resp.status();
        let headers = resp.headers();
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after_s =
            headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        let mut rest = resp.into_body().boxed();
        let first = rest.next().await.transpose().map_err(|e| UpstreamError::Transport(format!("{name}: {e}")))?;
        Ok(Opened { status, content_type, retry_after_s, first, rest })
    };
    match tokio::time::timeout(Duration::from_millis(backend.cfg.first_byte_timeout_ms), exchange).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::FirstByteTimeout(backend.name.clone())),
    }
}
