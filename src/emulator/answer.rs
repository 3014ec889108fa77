//! One admitted emulator request between submission and its last token: the whole answer
//! collected, or the stream written chunk by chunk as the engine delivers tokens, a tool call's
//! arguments ([`super::tools`]) in place of text when the request offered tools.

use super::fault_http::{reset_connection, MALFORMED_EVENT};
use super::faults::Fault;
use super::metrics::Metrics;
use super::runtime::{Delivery, Ticket};
use super::text;
use super::tools::ToolCall;
use crate::api::openai::{Endpoint, ResponseMeta, Usage};
use crate::api::ApiError;
use crate::serve::http::ConnReset;
use axum::response::sse::{Event as SseEvent, Sse};
use futures::stream::{self, Stream, StreamExt};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::convert::Infallible;
use std::time::Instant;

/// One admitted request, between submission and its last token.
pub(super) struct Running {
    /// Where its latencies are recorded, in emulated seconds (`time_scale` per wall second).
    pub(super) metrics: Metrics,
    pub(super) time_scale: f64,
    pub(super) meta: ResponseMeta,
    pub(super) prompt_tokens: u32,
    pub(super) target: u32,
    /// Whether stopping at `target` is the length limit ("length") rather than a natural end.
    pub(super) limit_hit: bool,
    pub(super) rng: ChaCha8Rng,
    pub(super) arrived: Instant,
    pub(super) ticket: Ticket,
    /// The tool call the answer makes instead of text (one piece of its arguments per token).
    pub(super) tool: Option<ToolCall>,
}

impl Running {
    fn finish_reason(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_calls"
        } else if self.limit_hit {
            "length"
        } else {
            "stop"
        }
    }

    fn model(&self) -> &str {
        &self.meta.model
    }

    fn emulated_secs(&self) -> f64 {
        self.arrived.elapsed().as_secs_f64() * self.time_scale
    }

    fn record_first_token(&self) {
        self.metrics.ttft.with_label_values(&[self.model()]).observe(self.emulated_secs());
    }

    fn record_done(&mut self) {
        self.ticket.finish();
        let m = &self.metrics;
        m.e2e.with_label_values(&[self.model()]).observe(self.emulated_secs());
        m.success.with_label_values(&[self.model(), self.finish_reason()]).inc();
    }

    pub(super) async fn collect(mut self) -> Result<serde_json::Value, ApiError> {
        let mut out = String::new();
        let mut cached = 0;
        while let Some(d) = self.ticket.rx.recv().await {
            if let Delivery::Token { index, last, cached: c } = d {
                if index == 0 {
                    self.record_first_token();
                    cached = c;
                }
                out.push_str(text::WORDS[text::next_word(&mut self.rng)]);
                if last {
                    self.record_done();
                    let usage = Usage::new(u64::from(self.prompt_tokens), u64::from(self.target));
                    let mut whole = self.meta.response(&out, self.finish_reason(), usage.to_json(u64::from(cached)));
                    if let Some(call) = &self.tool {
                        let message = &mut whole["choices"][0]["message"];
                        message["content"] = serde_json::Value::Null;
                        let mut c = call.chat(&call.arguments());
                        c.as_object_mut().map(|o| o.remove("index"));
                        message["tool_calls"] = json!([c]);
                    }
                    return Ok(whole);
                }
            }
        }
        Err(ApiError::Internal("engine stopped".into()))
    }

    pub(super) fn stream(
        self,
        fault: Option<Fault>,
        reset: Option<ConnReset>,
    ) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
        // Token chunks are the hot path: build them from a precomputed prefix and suffix.
        let skeleton = self.meta.chunk("\u{1}", false, None).to_string();
        let (prefix, suffix) = skeleton.split_once("\"\\u0001\"").expect("marker present");
        let state = StreamState {
            req: self,
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            cached: 0,
            done: false,
            fault,
            reset,
        };
        let events = stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            st.next_events().await.map(|events| (events, st))
        })
        .flat_map(|v| stream::iter(v.into_iter().map(Ok)));
        Sse::new(events)
    }
}

/// A streaming response between chunks.
pub(super) struct StreamState {
    req: Running,
    prefix: String,
    suffix: String,
    cached: u32,
    done: bool,
    /// A fault acting half way through or on every event.
    fault: Option<Fault>,
    reset: Option<ConnReset>,
}

impl StreamState {
    /// The SSE events for the next engine delivery.
    async fn next_events(&mut self) -> Option<Vec<SseEvent>> {
        let req = &mut self.req;
        let Some(Delivery::Token { index, last, cached }) = req.ticket.rx.recv().await else {
            self.done = true;
            let err = ApiError::Internal("engine stopped".into()).body();
            return Some(vec![SseEvent::default().data(err.to_string())]);
        };
        let mut out = Vec::with_capacity(4);
        match self.fault {
            Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
            Some(f) if index == req.target / 2 => match f {
                Fault::StallMid(d) => tokio::time::sleep(d).await,
                Fault::Cut => {
                    reset_connection(self.reset.as_ref()).await;
                    self.done = true;
                    return None;
                }
                Fault::Truncate => {
                    self.done = true;
                    return None;
                }
                Fault::Malformed => out.push(SseEvent::default().data(MALFORMED_EVENT)),
                _ => {}
            },
            _ => {}
        }
        let word = text::WORDS[text::next_word(&mut req.rng)];
        if index == 0 {
            req.record_first_token();
            self.cached = cached;
            if req.meta.endpoint == Endpoint::Chat {
                out.push(SseEvent::default().data(req.meta.chunk("", true, None).to_string()));
            }
        }
        match &req.tool {
            None => {
                out.push(SseEvent::default().data(format!("{}{}{}", self.prefix, text::json_str(word), self.suffix)))
            }
            Some(call) => {
                let piece = call.pieces.get(index as usize).map_or("", String::as_str);
                let delta = if index == 0 {
                    json!({"tool_calls": [call.chat(piece)]})
                } else {
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                };
                let mut chunk = req.meta.chunk("", false, None);
                chunk["choices"][0]["delta"] = delta;
                out.push(SseEvent::default().data(chunk.to_string()));
            }
        }
        if last {
            self.done = true;
            req.record_done();
            out.push(SseEvent::default().data(req.meta.chunk("", false, Some(req.finish_reason())).to_string()));
            if req.meta.include_usage {
                let usage =
                    Usage::new(u64::from(req.prompt_tokens), u64::from(req.target)).to_json(u64::from(self.cached));
                out.push(SseEvent::default().data(req.meta.usage_chunk(usage).to_string()));
            }
            out.push(SseEvent::default().data("[DONE]"));
        }
        Some(out)
    }
}
