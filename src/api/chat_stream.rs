//! The gateway's own chat stream read back, for the translations at the edge (Anthropic's
//! Messages, OpenAI's Responses): the relay writes `data:` chunks, and on failure one error event
//! then `[DONE]`. Pure: bytes in, events out, whatever the cuts between chunks.

use super::sse::{write_data, SseSplitter};
use serde_json::{json, Value};

/// One upstream API's stream events read as chat chunks: the per-API part of [`FromUpstream`].
pub trait UpstreamEvents: Default {
    /// Writes the chat events for one upstream event (its parsed data); true once the stream has
    /// ended (`[DONE]` written).
    fn event(&mut self, v: &Value, out: &mut Vec<u8>) -> bool;
}

/// An upstream's SSE stream read back as chat, incrementally and whatever the cuts between
/// chunks: the framing, and nothing after the end, around the API's own reader `R`.
#[derive(Debug, Default)]
pub struct FromUpstream<R> {
    sse: SseSplitter,
    reader: R,
    done: bool,
}

impl<R: UpstreamEvents> FromUpstream<R> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the stream has ended (`[DONE]` written).
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Feeds bytes of the upstream's stream; returns the chat events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.sse.push(bytes) {
            if self.done {
                break;
            }
            let Ok(v) = serde_json::from_str::<Value>(e.data()) else { continue };
            self.done = self.reader.event(&v, &mut out);
        }
        out
    }
}

/// Writes one completion's chat stream, for the translations from other upstreams' streams:
/// chunks under one id and model, the usage chunk, an error event, `[DONE]`.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    pub id: String,
    pub model: Value,
}

impl ChunkWriter {
    /// A chunk with one choice (`delta`, `finish_reason`), not yet written.
    pub fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }

    /// Writes a chunk with one choice.
    pub fn write(&self, delta: Value, finish: Option<&str>, out: &mut Vec<u8>) {
        write_data(out, &self.chunk(delta, finish));
    }

    /// Writes the usage-only chunk.
    pub fn usage(&self, usage: Value, out: &mut Vec<u8>) {
        let c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": 0, "model": self.model,
            "choices": [], "usage": usage,
        });
        write_data(out, &c);
    }

    /// Writes an OpenAI-style error event (`rate_limit_error` or `server_error`), then `[DONE]`.
    pub fn error(&self, message: &str, rate_limited: bool, out: &mut Vec<u8>) {
        let kind = if rate_limited { "rate_limit_error" } else { "server_error" };
        write_data(out, &json!({"error": {"message": message, "type": kind}}));
        Self::done(out);
    }

    pub fn done(out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
}

/// One event of the chat stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// A chat completion chunk.
    Chunk(Value),
    /// `[DONE]`: the stream ended.
    Done,
    /// The stream failed; `status` is what a whole answer would have carried.
    Error { status: u16, message: String },
}

/// Reads a chat stream incrementally.
#[derive(Debug, Default)]
pub struct ChatEvents {
    sse: SseSplitter,
}

impl ChatEvents {
    /// Feeds bytes; returns the events they complete (comments, keep-alives and unreadable
    /// chunks are skipped).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<ChatEvent> {
        self.sse.push(bytes).into_iter().filter_map(|e| read(e.data())).collect()
    }
}

fn read(data: &str) -> Option<ChatEvent> {
    if data.is_empty() {
        return None;
    }
    if data == "[DONE]" {
        return Some(ChatEvent::Done);
    }
    let v: Value = serde_json::from_str(data).ok()?;
    let Some(err) = v.get("error") else { return Some(ChatEvent::Chunk(v)) };
    let message = err.get("message").and_then(Value::as_str).unwrap_or("upstream error").to_string();
    // A stream fails mid-way only upstream (5xx), or by a rate limit it relayed.
    let status = match err.get("type").and_then(Value::as_str) {
        Some("rate_limit_error") => 429,
        _ if message.contains("timed out") => 504,
        _ => 502,
    };
    Some(ChatEvent::Error { status, message })
}

/// A translation of the chat stream into another API's events: told each chunk, the end, or a
/// failure. [`Translate::feed`] drives it from the stream's bytes.
pub trait Translate {
    /// The reader of the chat stream this translation is fed from.
    fn reader(&mut self) -> &mut ChatEvents;
    /// Whether the translated stream has ended (nothing more is written).
    fn ended(&self) -> bool;
    fn chunk(&mut self, v: &Value, out: &mut Vec<u8>);
    /// The chat stream's `[DONE]`.
    fn end(&mut self, out: &mut Vec<u8>);
    /// The chat stream failed with what a whole answer would have said.
    fn fail(&mut self, status: u16, message: &str, out: &mut Vec<u8>);

    /// Feeds bytes of the chat stream; returns the translated events they complete.
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in self.reader().push(bytes) {
            if self.ended() {
                break;
            }
            match event {
                ChatEvent::Chunk(v) => self.chunk(&v, &mut out),
                ChatEvent::Done => self.end(&mut out),
                ChatEvent::Error { status, message } => self.fail(status, &message, &mut out),
            }
        }
        out
    }
}

/// What a translation reads from one chat chunk (its first choice).
#[derive(Debug, Default)]
pub struct Chunk<'a> {
    /// The usage, when the chunk carries it (the last one normally does).
    pub usage: Option<&'a Value>,
    /// Text added by this chunk (never empty).
    pub text: Option<&'a str>,
    /// Tool-call pieces of this chunk.
    pub tool_calls: &'a [Value],
    pub finish_reason: Option<&'a str>,
}

impl<'a> Chunk<'a> {
    pub fn of(v: &'a Value) -> Self {
        let choice = v.pointer("/choices/0");
        let delta = choice.map(|c| &c["delta"]);
        Self {
            usage: v.get("usage").filter(|u| u.is_object()),
            text: delta.and_then(|d| d.get("content")).and_then(Value::as_str).filter(|t| !t.is_empty()),
            tool_calls: delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array).map_or(&[], Vec::as_slice),
            finish_reason: choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str),
        }
    }
}

/// Writes one named server-sent event.
pub fn emit(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// What the translations' tests share: a chat stream with text then a tool call, and the named
/// events of a translation read back.
#[cfg(test)]
pub mod testing {
    use serde_json::Value;

    pub const CHAT: &str = concat!(
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}}]}\n\n",
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-x\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );

    /// A chat stream's chunks, and whether it ended with `[DONE]`.
    pub fn chunks(out: &[u8]) -> (Vec<Value>, bool) {
        let ev = super::ChatEvents::default().push(out);
        let done = ev.last() == Some(&super::ChatEvent::Done);
        (ev.into_iter().filter_map(|e| if let super::ChatEvent::Chunk(v) = e { Some(v) } else { None }).collect(), done)
    }

    /// An upstream stream translation of `stream`, which must say "Hello", call `weather` with
    /// `{"city":"Paris"}` and report 13 tokens in (4 of them cached) and 12 out: it reads as that
    /// chat stream, ended, and the same wherever the bytes are cut. Returns its chunks.
    pub fn reads_as_chat<R: super::UpstreamEvents>(stream: &str, cuts: &[usize]) -> Vec<Value> {
        let whole = super::FromUpstream::<R>::new().push(stream.as_bytes());
        let (c, done) = chunks(&whole);
        assert!(done);
        assert_eq!(c[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String =
            c.iter().filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
        assert_eq!(text, "Hello");
        let args: String = c
            .iter()
            .filter_map(|v| v.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str))
            .collect();
        assert_eq!(args, "{\"city\":\"Paris\"}");
        let start = c.iter().find(|v| v.pointer("/choices/0/delta/tool_calls/0/id").is_some()).unwrap();
        assert_eq!(start["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "weather");
        let finish = c.iter().find_map(|v| v.pointer("/choices/0/finish_reason").and_then(Value::as_str));
        assert_eq!(finish, Some("tool_calls"));
        let usage = &c.last().unwrap()["usage"];
        assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(13), Some(12)));
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4);
        for &cut in cuts {
            let mut t = super::FromUpstream::<R>::new();
            let mut out = t.push(&stream.as_bytes()[..cut]);
            out.extend(t.push(&stream.as_bytes()[cut..]));
            assert_eq!(out, whole, "cut at {cut}");
        }
        c
    }

    /// A translation's output as (event name, data) pairs.
    pub fn events(out: &[u8]) -> Vec<(String, Value)> {
        String::from_utf8_lossy(out)
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut lines = e.lines();
                let name = lines.next().unwrap().strip_prefix("event: ").unwrap().to_string();
                let data = serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
                (name, data)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_done_and_errors_are_told_apart_across_cuts() {
        let mut r = ChatEvents::default();
        assert!(r.push(b"data: {\"choices\":[]").is_empty());
        let ev = r.push(b"}\n\n: keep-alive\n\ndata: {\"error\":{\"message\":\"upstream timed out\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n");
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(matches!(&ev[0], ChatEvent::Chunk(v) if v["choices"].is_array()));
        assert_eq!(ev[1], ChatEvent::Error { status: 504, message: "upstream timed out".into() });
        assert_eq!(ev[2], ChatEvent::Done);
        let ev = r.push(b"data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}\r\n\r\n");
        assert!(matches!(&ev[0], ChatEvent::Error { status: 429, .. }));
    }
}
