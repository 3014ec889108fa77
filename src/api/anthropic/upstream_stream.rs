//! An Anthropic Messages upstream's stream read back as OpenAI chat chunks, incrementally and
//! whatever the cuts between chunks, so that the relay, its tally and every ingress's own
//! translation see the chat stream they see from any other backend. Pure: bytes in, bytes out.
//!
//! `message_start` becomes the first chunk (the assistant role); `text_delta` a content delta;
//! a `tool_use` block's start a tool call (its id and name) and each `input_json_delta` a piece
//! of its arguments; `message_delta` the finish reason; `message_stop` the usage chunk (input from
//! `message_start`, output from `message_delta`; cache reads and writes apart) then `[DONE]`; an
//! `error` event an OpenAI-style error event then `[DONE]`. Thinking blocks and pings are dropped.

use super::upstream::{chat_id, chat_usage, finish_reason};
use crate::api::chat_stream::{ChunkWriter, FromUpstream, UpstreamEvents};
use crate::api::sse::write_data;
use serde_json::{json, Value};

/// Translates one response's stream.
pub type FromMessages = FromUpstream<MessagesEvents>;

/// What a Messages stream's translation keeps between events.
#[derive(Debug, Default)]
pub struct MessagesEvents {
    w: ChunkWriter,
    /// Anthropic's usage so far (from `message_start`, updated by `message_delta`).
    usage: Value,
    /// For each content block index: the chat tool call index, if it is a `tool_use` block.
    tool_of_block: Vec<(u64, u64)>,
    tools: u64,
}

impl UpstreamEvents for MessagesEvents {
    fn event(&mut self, v: &Value, out: &mut Vec<u8>) -> bool {
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let m = &v["message"];
                self.w.id = chat_id(m.get("id").and_then(Value::as_str));
                self.w.model = m.get("model").cloned().unwrap_or_default();
                self.usage = m.get("usage").cloned().unwrap_or_else(|| json!({}));
                self.w.write(json!({"role": "assistant", "content": ""}), None, out);
            }
            Some("content_block_start") => {
                let b = &v["content_block"];
                if b.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                    let call = self.tools;
                    self.tools += 1;
                    self.tool_of_block.push((index, call));
                    let delta = json!({"tool_calls": [{
                        "index": call, "id": b.get("id").cloned().unwrap_or_default(), "type": "function",
                        "function": {"name": b.get("name").cloned().unwrap_or_default(), "arguments": ""},
                    }]});
                    self.w.write(delta, None, out);
                }
            }
            Some("content_block_delta") => {
                let d = &v["delta"];
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = d.get("text").and_then(Value::as_str).unwrap_or("");
                        if !text.is_empty() {
                            self.w.write(json!({"content": text}), None, out);
                        }
                    }
                    Some("input_json_delta") => {
                        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let piece = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                        if let (Some(&(_, call)), false) =
                            (self.tool_of_block.iter().find(|(b, _)| *b == index), piece.is_empty())
                        {
                            self.w.write(
                                json!({"tool_calls": [{"index": call, "function": {"arguments": piece}}]}),
                                None,
                                out,
                            );
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(u) = v.get("usage").and_then(Value::as_object) {
                    for (k, x) in u {
                        self.usage[k] = x.clone();
                    }
                }
                let stop = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                let mut c = self.w.chunk(json!({}), Some(finish_reason(stop)));
                if let Some(s) = v.pointer("/delta/stop_sequence").and_then(Value::as_str) {
                    c["choices"][0]["stop_reason"] = Value::String(s.to_string());
                }
                write_data(out, &c);
            }
            Some("message_stop") => {
                self.w.usage(chat_usage(&self.usage), out);
                ChunkWriter::done(out);
                return true;
            }
            Some("error") => {
                let e = &v["error"];
                let rate_limited = e.get("type").and_then(Value::as_str) == Some("rate_limit_error");
                let message = e.get("message").and_then(Value::as_str).unwrap_or("upstream error");
                self.w.error(message, rate_limited, out);
                return true;
            }
            _ => {}
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::chat_stream::testing::reads_as_chat;
    use crate::api::chat_stream::{ChatEvent, ChatEvents};

    /// A Messages stream with thinking (dropped), text, a tool call in two pieces, cache tokens,
    /// then the end.
    pub const MESSAGES: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":1,\"cache_read_input_tokens\":4}}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn a_messages_stream_reads_as_a_chat_stream_wherever_it_is_cut() {
        let c = reads_as_chat::<MessagesEvents>(MESSAGES, &[1, 7, 50, 333, MESSAGES.len() - 3]);
        assert_eq!(c[0]["id"], "chatcmpl-1");
    }

    #[test]
    fn an_error_event_ends_the_stream_as_an_openai_error() {
        let mut t = FromMessages::new();
        let out = t.push(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        let ev = ChatEvents::default().push(&out);
        assert_eq!(ev, vec![ChatEvent::Error { status: 502, message: "Overloaded".into() }, ChatEvent::Done]);
        assert!(t.finished());
    }
}
