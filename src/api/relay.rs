//! Relaying an upstream's stream to the client while metering it: [`Relay`] drives a
//! [`Tally`] between the upstream's chunks and the client, ending in exactly one ledger row
//! however the stream ends.

use super::classify::PromptInput;
use super::sse::MAX_EVENT_BYTES;
use super::tally::Tally;
use super::ApiError;
use crate::api::admit::Admitted;
use crate::backends::upstream::{BodyStream, Opened};
use crate::backends::{Lease, Report};
use crate::cache::{Cached, Capture};
use crate::metering::{Meter, Outcome};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A streaming relay between upstream chunks and the client.
struct Relay {
    rest: BodyStream,
    pending_first: Option<Bytes>,
    tally: Tally,
    meter: Option<Meter>,
    lease: Option<Lease>,
    admitted: Option<Admitted>,
    idle: Duration,
    /// One timer for the idle limit between chunks, reset per chunk (not one per chunk).
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    /// What the coalescing read saw after the bytes it returned: an error, or the end.
    deferred_err: Option<String>,
    upstream_done: bool,
    prompt: Arc<PromptInput>,
    capture: Option<Capture>,
    finished: bool,
    /// The ledger row's commit, waited for before the last bytes go out (durable mode).
    durable: Option<crate::metering::Durable>,
    _span: tracing::Span,
}

/// Most bytes gathered into one write to the client from chunks already received.
const COALESCE_BYTES: usize = 64 * 1024;

impl Relay {
    /// Ends the stream: the ledger row, the backend's report, and for failures an error event.
    fn end(&mut self, err: Option<ApiError>) -> Option<Bytes> {
        self.finished = true;
        let (mut meter, lease) = (self.meter.take()?, self.lease.take()?);
        let tokens = self.tally.tokens(&self.prompt);
        meter.tokens(tokens);
        if let Some(a) = self.admitted.take() {
            a.settle(tokens, err.is_none());
        }
        match err {
            None => {
                lease.backend.saw_usage(self.tally.reported_usage());
                lease.report(Report::Success);
                self.durable = Some(meter.finish(200, Outcome::Ok, None));
                if let (Some(cap), Some(events)) = (self.capture.take(), self.tally.captured()) {
                    if let Some(answer) = Cached::from_events(cap.kind(), events) {
                        cap.store(answer);
                    }
                }
                None
            }
            Some(e) => {
                lease.report(Report::Failure);
                self.durable = Some(meter.finish(e.status().as_u16(), Outcome::UpstreamError, Some(e.to_string())));
                Some(Bytes::from(format!("data: {}\n\ndata: [DONE]\n\n", e.body())))
            }
        }
    }

    /// Ends the stream and waits for its ledger row to be committed (durable mode) before the
    /// last bytes are handed to the client.
    async fn end_durably(&mut self, err: Option<ApiError>) -> Option<Bytes> {
        let out = self.end(err);
        if let Some(d) = self.durable.take() {
            d.wait().await;
        }
        out
    }

    /// The next upstream chunk, with any others already received appended to it: a burst of
    /// events goes to the client in one write (nothing waits for more to arrive).
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        let first = match self.pending_first.take() {
            Some(first) => first,
            None => {
                self.idle_timer.as_mut().reset(tokio::time::Instant::now() + self.idle);
                tokio::select! {
                    c = self.rest.next() => match c {
                        Some(Ok(c)) => c,
                        Some(Err(e)) => return Err(ApiError::Upstream(format!("stream cut: {e}"))),
                        None => return Ok(None),
                    },
                    _ = self.idle_timer.as_mut() => return Err(ApiError::UpstreamTimeout("idle between chunks".into())),
                }
            }
        };
        let mut more: Option<Vec<u8>> = None;
        while more.as_ref().map_or(first.len(), Vec::len) < COALESCE_BYTES {
            match self.rest.next().now_or_never() {
                Some(Some(Ok(c))) => more.get_or_insert_with(|| first.to_vec()).extend_from_slice(&c),
                // An error or the end is seen on the next call, after what came before it.
                Some(Some(Err(e))) => {
                    self.deferred_err = Some(e.to_string());
                    break;
                }
                Some(None) => {
                    self.upstream_done = true;
                    break;
                }
                None => break,
            }
        }
        Ok(Some(more.map(Bytes::from).unwrap_or(first)))
    }

    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.finished {
                return None;
            }
            let got = if let Some(e) = self.deferred_err.take() {
                Err(ApiError::Upstream(format!("stream cut: {e}")))
            } else if self.upstream_done {
                Ok(None)
            } else {
                self.next_chunk().await
            };
            let chunk = match got {
                Ok(Some(chunk)) => chunk,
                Ok(None) if self.tally.saw_done() => return self.end_durably(None).await,
                Ok(None) => {
                    return self.end_durably(Some(ApiError::Upstream("stream ended before [DONE]".into()))).await
                }
                Err(e) => return self.end_durably(Some(e)).await,
            };
            let out = self.tally.process(chunk);
            if let Some(m) = self.meter.as_mut() {
                m.tokens(self.tally.running());
            }
            if self.tally.malformed() {
                // What came before the broken event goes out, then the error event.
                let err = ApiError::Upstream("the upstream sent an event that is not JSON".into());
                let tail = self.end_durably(Some(err)).await.unwrap_or_default();
                return Some([out, tail].concat().into());
            }
            if self.tally.saw_done() {
                // The response is complete: record it now, before the client (which stops reading
                // at [DONE]) closes the connection.
                self.end_durably(None).await;
                return (!out.is_empty()).then_some(out);
            }
            if self.tally.pending() > MAX_EVENT_BYTES {
                return self.end_durably(Some(ApiError::Upstream("an SSE event exceeded 8 MiB".into()))).await;
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The client left before the end: meter what was generated, counting the prompt now
        // if the upstream never reported usage.
        if let Some(m) = self.meter.as_mut() {
            m.tokens(self.tally.tokens(&self.prompt));
        }
        // What was generated counts against the tenant's token window (nothing is charged).
        if let Some(a) = self.admitted.take() {
            a.abandon(self.tally.tokens(&self.prompt));
        }
    }
}

/// What a streamed response carries besides the upstream and the meter.
pub struct StreamParts {
    /// Whether the client asked for the usage chunk.
    pub client_wants_usage: bool,
    /// The service tier the request named, echoed in every chunk as OpenAI's streams do.
    pub service_tier: Option<&'static str>,
    pub prompt: Arc<PromptInput>,
    pub headers: HeaderMap,
    pub admitted: Admitted,
    /// Where to store the answer once complete, if it is to be cached.
    pub capture: Option<Capture>,
    /// The relay stage's span, closed when the relay ends.
    pub span: tracing::Span,
}

/// The client's streaming response, relayed from an opened upstream stream.
pub fn relay_stream(opened: Opened, lease: Lease, meter: Meter, parts: StreamParts) -> Response {
    let StreamParts { client_wants_usage, service_tier, prompt, mut headers, admitted, capture, span } = parts;
    let mut tally = Tally::new(client_wants_usage);
    if lease.backend.reports_usage() {
        tally.trust_usage();
    }
    if capture.is_some() {
        tally.capture();
    }
    let relay = Relay {
        idle: Duration::from_millis(lease.backend.cfg.idle_timeout_ms),
        idle_timer: Box::pin(tokio::time::sleep(Duration::from_millis(lease.backend.cfg.idle_timeout_ms))),
        deferred_err: None,
        upstream_done: false,
        rest: opened.rest,
        pending_first: opened.first,
        tally,
        meter: Some(meter),
        lease: Some(lease),
        admitted: Some(admitted),
        prompt,
        capture,
        finished: false,
        durable: None,
        _span: span,
    };
    let body = futures::stream::unfold(relay, |mut r| async move { r.next().await.map(|b| (b, r)) });
    // A named service tier goes into every chunk (the field built once; chunks of other
    // requests pass as they are).
    let field = service_tier.map(|t| format!("\"service_tier\":\"{t}\","));
    let body = body.map(move |b| {
        let b = match &field {
            Some(f) => crate::api::sse::with_leading_field(&b, f.as_bytes()),
            None => b,
        };
        Ok::<_, std::io::Error>(b)
    });
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, headers, Body::from_stream(body)).into_response()
}
