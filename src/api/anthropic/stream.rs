//! The gateway's OpenAI chat stream (as the relay writes it: `data:` events, an error event then
//! `[DONE]` on failure) translated into Anthropic's typed Messages events, incrementally and
//! without knowing where the bytes were cut. Pure: bytes in, bytes out.
//!
//! `message_start` and a `ping` go out with the first event; text deltas open a text block,
//! each new tool call a `tool_use` block whose arguments stream as `input_json_delta`; a block
//! closes when another opens or the stream ends. The usage the upstream reports last goes out in
//! `message_delta` (input, output and cache-read tokens), then `message_stop`. An error event
//! becomes Anthropic's `error` event and ends the stream.

use super::response::{ending_of, error_type, message_id, usage, Ending};
use crate::api::chat_stream::{emit, ChatEvents, Chunk, Translate};
use serde_json::{json, Value};

/// The block being streamed.
#[derive(Debug, Clone, PartialEq)]
enum Open {
    None,
    Text(usize),
    /// A tool call: the block's index, the chat stream's index of the call, and its id.
    Tool(usize, u64, Option<String>),
}

impl Open {
    fn index(&self) -> Option<usize> {
        match self {
            Open::None => None,
            Open::Text(i) | Open::Tool(i, _, _) => Some(*i),
        }
    }
}

/// Translates one response's stream.
#[derive(Debug)]
pub struct Translator {
    events: ChatEvents,
    started: bool,
    done: bool,
    open: Open,
    next_block: usize,
    model: String,
    ending: Ending,
    usage: Value,
}

impl Translator {
    /// `model` names the model in `message_start` until the upstream's first chunk says.
    pub fn new(model: &str) -> Self {
        Self {
            events: ChatEvents::default(),
            started: false,
            done: false,
            open: Open::None,
            next_block: 0,
            model: model.to_string(),
            ending: Ending::default(),
            usage: Value::Null,
        }
    }

    /// Whether the stream ended (`message_stop` or an error went out).
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Feeds bytes of the chat stream; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.feed(bytes)
    }
}

impl Translate for Translator {
    fn reader(&mut self) -> &mut ChatEvents {
        &mut self.events
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.finish_message(out);
    }

    fn fail(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        let body = json!({"type": "error", "error": {"type": error_type(status), "message": message}});
        emit(out, "error", &body);
        self.done = true;
    }

    fn chunk(&mut self, v: &Value, out: &mut Vec<u8>) {
        self.start(v, out);
        let chunk = Chunk::of(v);
        if let Some(u) = chunk.usage {
            self.usage = u.clone();
        }
        if let Some(t) = chunk.text {
            let index = match &self.open {
                Open::Text(i) => *i,
                _ => self.open_block(json!({"type": "text", "text": ""}), None, out),
            };
            emit(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": t}}),
            );
        }
        for call in chunk.tool_calls {
            let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let id = call.get("id").and_then(Value::as_str);
            let index = match &self.open {
                // The same call goes on: same index, and no other call's id (servers that leave
                // out `index` still name each new call).
                Open::Tool(i, c, open_id) if *c == chat_index && (id.is_none() || id == open_id.as_deref()) => *i,
                _ => {
                    let block = json!({
                        "type": "tool_use",
                        "id": call.get("id").and_then(Value::as_str).unwrap_or("toolu_tollgate"),
                        "name": call.pointer("/function/name").and_then(Value::as_str).unwrap_or(""),
                        "input": {},
                    });
                    self.ending.called_tool = true;
                    self.open_block(block, Some((chat_index, id.map(str::to_string))), out)
                }
            };
            if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                emit(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": args}}),
                );
            }
        }
        if let (Some(_), Some(choice)) = (chunk.finish_reason, v.pointer("/choices/0")) {
            let called = self.ending.called_tool;
            self.ending = ending_of(choice, called);
        }
    }
}

impl Translator {
    fn start(&mut self, v: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(m) = v.get("model").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        let message = json!({
            "type": "message_start",
            "message": {
                "id": message_id(v.get("id").and_then(Value::as_str)),
                "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": Value::Null, "stop_sequence": Value::Null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        });
        emit(out, "message_start", &message);
        emit(out, "ping", &json!({"type": "ping"}));
    }

    fn open_block(&mut self, block: Value, tool: Option<(u64, Option<String>)>, out: &mut Vec<u8>) -> usize {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        emit(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        self.open = match tool {
            Some((c, id)) => Open::Tool(index, c, id),
            None => Open::Text(index),
        };
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(i) = self.open.index() {
            emit(out, "content_block_stop", &json!({"type": "content_block_stop", "index": i}));
        }
        self.open = Open::None;
    }

    fn finish_message(&mut self, out: &mut Vec<u8>) {
        self.start(&Value::Null, out);
        self.close_block(out);
        let (reason, sequence) = self.ending.reason();
        let delta = json!({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": sequence},
            "usage": usage(&self.usage),
        });
        emit(out, "message_delta", &delta);
        emit(out, "message_stop", &json!({"type": "message_stop"}));
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::chat_stream::testing::{events, CHAT};

    #[test]
    fn text_then_a_tool_call_stream_as_typed_blocks_wherever_the_bytes_are_cut() {
        let whole = {
            let mut t = Translator::new("m");
            t.push(CHAT.as_bytes())
        };
        // The same stream cut into 7-byte pieces gives the same events.
        let mut t = Translator::new("m");
        let mut cut = Vec::new();
        for piece in CHAT.as_bytes().chunks(7) {
            cut.extend(t.push(piece));
        }
        assert_eq!(cut, whole);
        assert!(t.finished());
        let ev = events(&whole);
        let names: Vec<&str> = ev.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(ev[0].1["message"]["id"], "msg_x");
        assert_eq!(ev[3].1["delta"], json!({"type": "text_delta", "text": "Hel"}));
        assert_eq!(ev[6].1["content_block"]["name"], "weather");
        assert_eq!(ev[6].1["index"], 1);
        let args: String = ev[7..9].iter().map(|e| e.1["delta"]["partial_json"].as_str().unwrap()).collect();
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
        assert_eq!(ev[10].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(ev[10].1["usage"]["output_tokens"], 5);
        assert_eq!(ev[10].1["usage"]["input_tokens"], 9);
    }

    #[test]
    fn parallel_calls_without_an_index_open_a_block_each_and_end_as_tool_use() {
        let mut t = Translator::new("m");
        let call = |id: &str, args: &str| {
            format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"tool_calls\":[{{\"id\":\"{id}\",\"function\":{{\"name\":\"f\",\"arguments\":\"{args}\"}}}}]}}}}]}}\n\n")
        };
        let mut body = call("a", "{}") + &call("b", "{}");
        // A forced call: the server says `stop`.
        body += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let ev = events(&t.push(body.as_bytes()));
        let starts: Vec<&Value> = ev.iter().filter(|e| e.0 == "content_block_start").map(|e| &e.1).collect();
        assert_eq!(starts.len(), 2);
        assert_eq!(
            (starts[0]["content_block"]["id"].as_str(), starts[1]["content_block"]["id"].as_str()),
            (Some("a"), Some("b"))
        );
        let delta = ev.iter().find(|e| e.0 == "message_delta").unwrap();
        assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn an_error_event_ends_the_stream_in_anthropics_shape() {
        let mut t = Translator::new("m");
        let out = t.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"cut\",\"type\":\"server_error\",\"code\":null}}\n\ndata: [DONE]\n\n");
        let ev = events(&out);
        let last = ev.last().unwrap();
        assert_eq!(last.0, "error");
        assert_eq!(last.1["error"], json!({"type": "api_error", "message": "cut"}));
        assert!(ev.iter().all(|e| e.0 != "message_stop"), "nothing after the error");
        assert!(t.finished());
    }
}
