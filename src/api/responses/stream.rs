//! The gateway's chat stream translated into the Responses API's typed events, incrementally and
//! without knowing where the bytes were cut. Pure: bytes in, bytes out.
//!
//! `response.created` and `response.in_progress` go out with the first event. Text opens a
//! `message` item (`response.output_item.added`, `response.content_part.added`, then
//! `response.output_text.delta`s); each tool call a `function_call` item whose arguments stream as
//! `response.function_call_arguments.delta`. An item closes (its `.done` events) when another
//! opens or the stream ends; then `response.completed` (or `response.incomplete` after a length
//! stop) carries the whole response with its usage. An error event becomes `response.failed` and
//! ends the stream. Every event carries its `sequence_number`.

use super::response::{call_item, call_item_id, message_item, message_item_id, response_id, status_of, usage, Echo};
use crate::api::chat_stream::{emit, ChatEvents, Chunk, Translate};
use serde_json::{json, Value};

/// The output item being streamed.
#[derive(Debug, Clone, PartialEq)]
enum Open {
    None,
    Text {
        index: usize,
        id: String,
        text: String,
    },
    /// A tool call: its output index, the chat stream's index of the call, id, name, arguments.
    Call {
        index: usize,
        chat_index: u64,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Translates one response's stream.
#[derive(Debug)]
pub struct Translator {
    events: ChatEvents,
    echo: Echo,
    started: bool,
    done: bool,
    seq: u64,
    id: String,
    created: u64,
    open: Open,
    items: Vec<Value>,
    finish: Option<String>,
    usage: Value,
    /// The whole response once it completed (or ended incomplete): what is stored.
    last: Option<Value>,
}

impl Translator {
    pub fn new(echo: Echo) -> Self {
        Self {
            events: ChatEvents::default(),
            echo,
            started: false,
            done: false,
            seq: 0,
            id: response_id(None),
            created: 0,
            open: Open::None,
            items: Vec::new(),
            finish: None,
            usage: Value::Null,
            last: None,
        }
    }

    /// Whether the stream ended (`response.completed`, `.incomplete` or `.failed` went out).
    pub fn finished(&self) -> bool {
        self.done
    }

    /// The whole response, once it completed or ended incomplete (not after a failure).
    pub fn take_response(&mut self) -> Option<Value> {
        self.last.take()
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
        self.finish_response(out);
    }

    fn fail(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        self.start(&Value::Null, out);
        let code = if status == 429 { "rate_limit_exceeded" } else { "server_error" };
        let mut r = self.echo.response(&self.id, self.created, "failed", self.items.clone(), Value::Null);
        r["error"] = json!({"code": code, "message": message});
        self.send(out, "response.failed", json!({"response": r}));
        self.done = true;
    }

    fn chunk(&mut self, v: &Value, out: &mut Vec<u8>) {
        self.start(v, out);
        let chunk = Chunk::of(v);
        if let Some(u) = chunk.usage {
            self.usage = u.clone();
        }
        if let Some(t) = chunk.text {
            if !matches!(self.open, Open::Text { .. }) {
                self.open_text(out);
            }
            if let Open::Text { index, id, text } = &mut self.open {
                text.push_str(t);
                let ev = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": t, "logprobs": []});
                self.send(out, "response.output_text.delta", ev);
            }
        }
        for call in chunk.tool_calls {
            let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let id = call.get("id").and_then(Value::as_str);
            let same = matches!(&self.open, Open::Call { chat_index: c, call_id, .. }
                if *c == chat_index && id.is_none_or(|id| id == call_id));
            if !same {
                let call_id = id.map(str::to_string).unwrap_or_else(|| format!("call_{}", self.items.len()));
                let name = call.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_string();
                self.open_call(chat_index, call_id, name, out);
            }
            if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                if let Open::Call { index, call_id, arguments, .. } = &mut self.open {
                    arguments.push_str(args);
                    let ev = json!({"item_id": call_item_id(call_id), "output_index": index, "delta": args});
                    self.send(out, "response.function_call_arguments.delta", ev);
                }
            }
        }
        if let Some(f) = chunk.finish_reason {
            self.finish = Some(f.to_string());
        }
    }
}

impl Translator {
    fn send(&mut self, out: &mut Vec<u8>, name: &str, mut data: Value) {
        data["type"] = json!(name);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        emit(out, name, &data);
    }

    fn start(&mut self, v: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = self.echo.id(v.get("id").and_then(Value::as_str));
        self.created = v.get("created").and_then(Value::as_u64).unwrap_or(0);
        let r = self.echo.response(&self.id, self.created, "in_progress", Vec::new(), Value::Null);
        self.send(out, "response.created", json!({"response": r.clone()}));
        self.send(out, "response.in_progress", json!({"response": r}));
    }

    fn open_text(&mut self, out: &mut Vec<u8>) {
        self.close(out);
        let index = self.items.len();
        let base = message_item_id(&self.id);
        let id = if index == 0 { base } else { format!("{base}_{index}") };
        let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
        self.send(out, "response.output_item.added", json!({"output_index": index, "item": item}));
        let part = json!({"type": "output_text", "text": "", "annotations": []});
        self.send(
            out,
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
        );
        self.open = Open::Text { index, id, text: String::new() };
    }

    fn open_call(&mut self, chat_index: u64, call_id: String, name: String, out: &mut Vec<u8>) {
        self.close(out);
        let index = self.items.len();
        let item = call_item(&call_id, &name, "", "in_progress");
        self.send(out, "response.output_item.added", json!({"output_index": index, "item": item}));
        self.open = Open::Call { index, chat_index, call_id, name, arguments: String::new() };
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Text { index, id, text } => {
                let at = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut done = at.clone();
                done["text"] = json!(text);
                done["logprobs"] = json!([]);
                self.send(out, "response.output_text.done", done);
                let mut part = at;
                part["part"] = json!({"type": "output_text", "text": text, "annotations": []});
                self.send(out, "response.content_part.done", part);
                let item = message_item(&id, &text, "completed");
                self.send(out, "response.output_item.done", json!({"output_index": index, "item": item.clone()}));
                self.items.push(item);
            }
            Open::Call { index, call_id, name, arguments, .. } => {
                let ev = json!({"item_id": call_item_id(&call_id), "output_index": index, "name": name, "arguments": arguments});
                self.send(out, "response.function_call_arguments.done", ev);
                let item = call_item(&call_id, &name, &arguments, "completed");
                self.send(out, "response.output_item.done", json!({"output_index": index, "item": item.clone()}));
                self.items.push(item);
            }
        }
    }

    fn finish_response(&mut self, out: &mut Vec<u8>) {
        self.start(&Value::Null, out);
        self.close(out);
        let status = status_of(self.finish.as_deref());
        let r = self.echo.response(&self.id, self.created, status, self.items.clone(), usage(&self.usage));
        let name = if status == "incomplete" { "response.incomplete" } else { "response.completed" };
        self.send(out, name, json!({"response": r.clone()}));
        self.last = Some(r);
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::chat_stream::testing::{events, CHAT};

    #[test]
    fn text_then_a_tool_call_stream_as_typed_events_whatever_the_cuts() {
        let whole = Translator::new(Echo::of(&json!({"model": "m"}))).push(CHAT.as_bytes());
        for cut in [1, 7, 50] {
            let mut t = Translator::new(Echo::of(&json!({"model": "m"})));
            let out: Vec<u8> = CHAT.as_bytes().chunks(cut).flat_map(|c| t.push(c)).collect();
            assert_eq!(out, whole, "cut every {cut} bytes");
            assert!(t.finished());
        }
        let ev = events(&whole);
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert!(ev.iter().enumerate().all(|(i, (_, d))| d["sequence_number"] == i as u64));
        let done = &ev.last().unwrap().1["response"];
        assert_eq!(done["id"], "resp_x");
        assert_eq!(done["model"], "m");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["output"][1]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(done["usage"]["output_tokens"], 5);
        assert_eq!(ev[6].1["text"], "Hello");
    }

    #[test]
    fn an_error_mid_stream_fails_the_response_and_ends_it() {
        let mut t = Translator::new(Echo::default());
        let out = t.push(
            concat!(
                "data: {\"id\":\"chatcmpl-y\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
                "data: {\"error\":{\"message\":\"upstream failed\",\"type\":\"server_error\"}}\n\n",
                "data: [DONE]\n\n",
            )
            .as_bytes(),
        );
        let ev = events(&out);
        let (name, data) = ev.last().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(data["response"]["error"]["message"], "upstream failed");
        assert!(t.finished());
    }

    #[test]
    fn a_length_stop_ends_incomplete() {
        let mut t = Translator::new(Echo::default());
        let out = t.push(concat!(
            "data: {\"id\":\"chatcmpl-z\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abc\"},\"finish_reason\":\"length\"}]}\n\n",
            "data: [DONE]\n\n",
        ).as_bytes());
        let ev = events(&out);
        assert_eq!(ev.last().unwrap().0, "response.incomplete");
        assert_eq!(ev.last().unwrap().1["response"]["incomplete_details"]["reason"], "max_output_tokens");
    }
}
