//! Relaying an upstream's response to the client while metering it: [`Tally`] reads each SSE
//! event as it passes (usage when the upstream reports it, else the text to count), decides what
//! to forward, and knows when the stream is complete; [`Relay`] drives it between the upstream's
//! chunks and the client, ending in exactly one ledger row however the stream ends.

use super::classify::PromptInput;
use super::sse::{SseSplitter, MAX_EVENT_BYTES};
use super::{tokens, ApiError};
use crate::api::admit::Admitted;
use crate::backends::upstream::{BodyStream, Opened};
use crate::backends::{Lease, Report};
use crate::cache::{Cached, Capture};
use crate::metering::{Meter, Outcome, Tokens};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Most text kept for estimating output tokens when an upstream reports no usage.
const MAX_ESTIMATE_TEXT: usize = 4 * 1024 * 1024;

/// Most bytes of events kept to store a stream's answer in the cache; a longer one is not stored.
const MAX_CAPTURE_BYTES: usize = 1024 * 1024;

/// The parts of a response or chunk that metering reads, borrowed from the bytes where possible.
/// Anything else in the JSON is skipped without being built.
#[derive(Deserialize)]
struct View<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(default)]
    usage: Option<UsageView>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(default, borrow)]
    delta: Option<TextView<'a>>,
    #[serde(default, borrow)]
    message: Option<TextView<'a>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TextView<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct UsageView {
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: Option<i64>,
}

/// What one JSON document (a whole response or one chunk) says for metering.
#[derive(Debug, Default, PartialEq)]
struct Read {
    usage: Option<(i64, i64)>,
    /// Whether it has a `choices` array that is empty (OpenAI's usage-only last chunk).
    no_choices: bool,
}

/// Reads usage and appends the output text of `json`; `None` when it is not JSON at all.
/// The typed view is tried first (no allocation for unescaped text); a document of unusual
/// shape (content as an array, odd usage) falls back to a generic parse.
fn read(json: &[u8], text: &mut String) -> Option<Read> {
    match serde_json::from_slice::<View>(json) {
        Ok(v) => {
            for c in v.choices.iter().flatten() {
                for t in [
                    c.message.as_ref().and_then(|m| m.content.as_ref()),
                    c.delta.as_ref().and_then(|d| d.content.as_ref()),
                    c.text.as_ref(),
                ]
                .into_iter()
                .flatten()
                {
                    text.push_str(t);
                }
            }
            Some(Read {
                usage: v.usage.map(|u| (u.prompt_tokens, u.completion_tokens.unwrap_or(0))),
                no_choices: v.choices.as_ref().is_some_and(Vec::is_empty),
            })
        }
        Err(_) => {
            let v: Value = serde_json::from_slice(json).ok()?;
            let usage = v.get("usage").and_then(|u| {
                let p = u.get("prompt_tokens")?.as_i64()?;
                Some((p, u.get("completion_tokens").and_then(Value::as_i64).unwrap_or(0)))
            });
            let choices = v.get("choices").and_then(Value::as_array);
            for c in choices.into_iter().flatten() {
                for t in [&c["message"]["content"], &c["delta"]["content"], &c["text"]] {
                    if let Some(s) = t.as_str() {
                        text.push_str(s);
                    }
                }
            }
            Some(Read { usage, no_choices: choices.is_some_and(Vec::is_empty) })
        }
    }
}

/// Tokens of a whole (non-streamed) response: its usage, else estimated from its text and the
/// prompt; `None` when the body is not JSON.
pub fn whole_tokens(body: &[u8], prompt: &PromptInput) -> Option<Tokens> {
    let mut text = String::new();
    Some(match read(body, &mut text)?.usage {
        Some((p, o)) => Tokens { input: p, output: o, estimated: false },
        None => Tokens { input: prompt.count(), output: tokens::count_text(&text) as i64, estimated: true },
    })
}

/// The metering state of a stream, fed the upstream's bytes as they come.
#[derive(Debug, Default)]
pub struct Tally {
    splitter: SseSplitter,
    /// Whether the client asked for the usage chunk (tollgate always asks the upstream for it).
    client_wants_usage: bool,
    usage: Option<(i64, i64)>,
    text: String,
    content_events: i64,
    saw_done: bool,
    /// An event whose data is not JSON arrived: the stream is broken (nothing after it is read).
    malformed: bool,
    /// The events' payloads, kept when the answer is to be cached (`None` once past the bound).
    captured: Option<Vec<String>>,
    captured_bytes: usize,
}

impl Tally {
    pub fn new(client_wants_usage: bool) -> Self {
        Self { client_wants_usage, ..Default::default() }
    }

    /// Takes upstream bytes; returns the bytes to forward (whole events only; the usage-only
    /// chunk is dropped unless the client asked for it). An event whose data is not JSON is not
    /// forwarded and ends the reading ([`Tally::malformed`]).
    pub fn process(&mut self, chunk: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(chunk.len());
        if self.malformed {
            return Bytes::new();
        }
        for ev in self.splitter.push(chunk) {
            if ev.data.is_empty() {
                // A comment or keep-alive: no payload to read.
                out.extend_from_slice(&ev.raw);
                continue;
            }
            if ev.data == "[DONE]" {
                self.saw_done = true;
                out.extend_from_slice(&ev.raw);
                continue;
            }
            if let Some(kept) = self.captured.as_mut() {
                self.captured_bytes += ev.data.len();
                if self.captured_bytes > MAX_CAPTURE_BYTES {
                    self.captured = None;
                } else {
                    kept.push(ev.data.clone());
                }
            }
            let mut forward = true;
            let before = self.text.len();
            let mut sink = String::new();
            let text = if before < MAX_ESTIMATE_TEXT { &mut self.text } else { &mut sink };
            match read(ev.data.as_bytes(), text) {
                Some(r) => {
                    if let Some(u) = r.usage {
                        self.usage = Some(u);
                        forward = self.client_wants_usage || !r.no_choices;
                    }
                    if self.text.len() > before {
                        self.content_events += 1;
                    }
                }
                None => {
                    self.malformed = true;
                    break;
                }
            }
            if forward {
                out.extend_from_slice(&ev.raw);
            }
        }
        Bytes::from(out)
    }

    /// Keeps the events' payloads from now on, to assemble the answer for the cache.
    pub fn capture(&mut self) {
        self.captured = Some(Vec::new());
    }

    /// The kept payloads, if every one was kept.
    pub fn captured(&self) -> Option<&[String]> {
        self.captured.as_deref()
    }

    /// Whether an event that is not JSON arrived.
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    /// Whether `[DONE]` has passed: the response is complete.
    pub fn saw_done(&self) -> bool {
        self.saw_done
    }

    /// Bytes of an unfinished event.
    pub fn pending(&self) -> usize {
        self.splitter.pending()
    }

    /// A cheap running figure (an event is about a token) while the stream goes on.
    pub fn running(&self) -> Tokens {
        match self.usage {
            Some((p, o)) => Tokens { input: p, output: o, estimated: false },
            None => Tokens { input: 0, output: self.content_events, estimated: true },
        }
    }

    /// The final figure: the upstream's usage, else counted from the prompt and the text.
    pub fn tokens(&self, prompt: &PromptInput) -> Tokens {
        match self.usage {
            Some((p, o)) => Tokens { input: p, output: o, estimated: false },
            None => Tokens { input: prompt.count(), output: tokens::count_text(&self.text) as i64, estimated: true },
        }
    }
}

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
                lease.report(Report::Success);
                self.durable = Some(meter.finish(200, Outcome::Ok, None));
                if let (Some(cap), Some(events)) = (self.capture.take(), self.tally.captured()) {
                    if let Some(answer) = Cached::from_events(cap.kind(), events.iter().map(String::as_str)) {
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
            let out = self.tally.process(&chunk);
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
    let StreamParts { client_wants_usage, prompt, mut headers, admitted, capture, span } = parts;
    let mut tally = Tally::new(client_wants_usage);
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
    let body =
        futures::stream::unfold(relay, |mut r| async move { r.next().await.map(|b| (Ok::<_, std::io::Error>(b), r)) });
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (StatusCode::OK, headers, Body::from_stream(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::openai::Prompt;

    fn prompt() -> PromptInput {
        PromptInput::Completion(Prompt::Text("hello there".into()))
    }

    #[test]
    fn reads_usage_and_drops_the_usage_chunk_the_client_did_not_ask_for() {
        let mut t = Tally::new(false);
        let a =
            t.process(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":");
        assert_eq!(&a[..], b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n");
        let b = t.process(b"{\"content\":\"lo \\\"x\\\"\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        assert_eq!(&b[..], b"data: {\"choices\":[{\"delta\":{\"content\":\"lo \\\"x\\\"\"}}]}\n\ndata: [DONE]\n\n");
        assert!(t.saw_done());
        assert_eq!(t.text, "Hello \"x\"");
        assert_eq!(t.running(), Tokens { input: 7, output: 2, estimated: false });
        let mut keep = Tally::new(true);
        let c = keep.process(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n");
        assert!(!c.is_empty());
    }

    #[test]
    fn estimates_without_usage_tolerates_unusual_shapes_and_stops_at_a_malformed_event() {
        let mut t = Tally::new(false);
        // Content as an array of parts is not text; the document is still read (fallback parse).
        t.process(b"data: {\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\"}]}}]}\n\n");
        let out = t.process(
            b"data: {\"choices\":[{\"text\":\"hi there\"}]}\n\n: keep-alive\n\ndata: not json\n\ndata: {}\n\n",
        );
        // The good event and the comment pass; the broken one and anything after it do not.
        assert_eq!(&out[..], b"data: {\"choices\":[{\"text\":\"hi there\"}]}\n\n: keep-alive\n\n");
        assert!(t.malformed());
        assert!(t.process(b"data: {}\n\n").is_empty());
        assert_eq!(t.content_events, 1);
        let tok = t.tokens(&prompt());
        assert!(tok.estimated);
        assert_eq!((tok.input, tok.output), (2, 2));
        // A whole response with usage, and one with odd usage (no prompt_tokens) estimated instead.
        let whole = br#"{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#;
        assert_eq!(whole_tokens(whole, &prompt()).unwrap(), Tokens { input: 5, output: 1, estimated: false });
        let odd = br#"{"choices":[{"message":{"content":"ok then"}}],"usage":{"completion_tokens":1}}"#;
        assert_eq!(whole_tokens(odd, &prompt()).unwrap(), Tokens { input: 2, output: 2, estimated: true });
    }
}
