//! The gateway's own chat stream read back, for the translations at the edge (Anthropic's
//! Messages, OpenAI's Responses): the relay writes `data:` chunks, and on failure one error event
//! then `[DONE]`. Pure: bytes in, events out, whatever the cuts between chunks.

use super::sse::SseSplitter;
use serde_json::Value;

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
        self.sse.push(bytes).into_iter().filter_map(|e| read(&e.data)).collect()
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

/// Writes one named server-sent event.
pub fn emit(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
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
