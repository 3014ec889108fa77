//! Talking to one backend: send the request, and wait (within the first-byte timeout) for the
//! response head and the first body chunk, so that a failure before anything reaches the client
//! can still be retried elsewhere.

use super::Backend;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::StatusCode;
use std::time::Duration;

/// A response whose head and first chunk have arrived.
pub struct Opened {
    pub status: StatusCode,
    pub content_type: Option<String>,
    /// The upstream's `Retry-After`, in seconds (delta form only), passed on with its 429 or 503.
    pub retry_after_s: Option<u64>,
    pub first: Option<Bytes>,
    pub rest: BoxStream<'static, Result<Bytes, reqwest::Error>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to {0}")]
    Connect(String),
    #[error("no response from {0} within the first-byte timeout")]
    FirstByteTimeout(String),
    #[error("{0}")]
    Transport(String),
}

/// POSTs `body` to `path` on `backend`. Only the upstream's own key and the request id are sent
/// as headers: nothing of the client's request headers is forwarded.
pub async fn open(backend: &Backend, path: &str, body: Bytes, request_id: &str) -> Result<Opened, UpstreamError> {
    let url = backend.url(path).map_err(|e| UpstreamError::Transport(format!("{}: {e}", backend.name)))?;
    let mut req = backend
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-request-id", request_id)
        .body(body);
    if let Some(k) = backend.api_key() {
        req = req.bearer_auth(k);
    }
    let name = backend.name.clone();
    let exchange = async move {
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect(name.clone())
            } else {
                UpstreamError::Transport(format!("{name}: {e}"))
            }
        })?;
        let status = resp.status();
        let content_type =
            resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after_s = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut rest = resp.bytes_stream().boxed();
        let first = rest.next().await.transpose().map_err(|e| UpstreamError::Transport(format!("{name}: {e}")))?;
        Ok(Opened { status, content_type, retry_after_s, first, rest })
    };
    match tokio::time::timeout(Duration::from_millis(backend.cfg.first_byte_timeout_ms), exchange).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::FirstByteTimeout(backend.name.clone())),
    }
}
