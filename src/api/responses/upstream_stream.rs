//! An OpenAI Responses upstream's stream read back as OpenAI chat chunks, incrementally and
//! whatever the cuts between chunks, so that the relay, its tally and every ingress's own
//! translation see the chat stream they see from any other backend. Pure: bytes in, bytes out.
//!
//! `response.created` becomes the first chunk (the assistant role); `response.output_text.delta`
//! a content delta and `response.refusal.delta` a refusal delta; a `function_call` item's
//! `response.output_item.added` a tool call (its call id and name) and each
//! `response.function_call_arguments.delta` a piece of its arguments; `response.completed` or
//! `response.incomplete` the finish reason, the usage chunk and `[DONE]`; `response.failed` and
//! `error` an OpenAI-style error event then `[DONE]`. Reasoning items and the other events
//! (`in_progress`, `*.done`, content parts) carry nothing a chat stream has and are dropped.

use super::upstream::{chat_id, chat_usage, finish_reason};
use crate::api::chat_stream::{ChunkWriter, FromUpstream, UpstreamEvents};
use serde_json::{json, Value};

/// Translates one response's stream.
pub type FromResponses = FromUpstream<ResponsesEvents>;

/// What a Responses stream's translation keeps between events.
#[derive(Debug, Default)]
pub struct ResponsesEvents {
    w: ChunkWriter,
    /// For each `function_call` item's output index: its chat tool call index.
    tool_of_item: Vec<(u64, u64)>,
}

impl UpstreamEvents for ResponsesEvents {
    fn event(&mut self, v: &Value, out: &mut Vec<u8>) -> bool {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        let index = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "response.created" => {
                let r = &v["response"];
                self.w.id = chat_id(r.get("id").and_then(Value::as_str));
                self.w.model = r.get("model").cloned().unwrap_or_default();
                self.w.write(json!({"role": "assistant", "content": ""}), None, out);
            }
            "response.output_item.added" if v.pointer("/item/type") == Some(&json!("function_call")) => {
                let item = &v["item"];
                let call = self.tool_of_item.len() as u64;
                self.tool_of_item.push((index, call));
                let delta = json!({"tool_calls": [{
                    "index": call, "id": item.get("call_id").cloned().unwrap_or_default(), "type": "function",
                    "function": {"name": item.get("name").cloned().unwrap_or_default(),
                                 "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!(""))},
                }]});
                self.w.write(delta, None, out);
            }
            "response.output_text.delta" if !text("delta").is_empty() => {
                self.w.write(json!({"content": text("delta")}), None, out)
            }
            "response.refusal.delta" if !text("delta").is_empty() => {
                self.w.write(json!({"refusal": text("delta")}), None, out)
            }
            "response.function_call_arguments.delta" if !text("delta").is_empty() => {
                if let Some(&(_, call)) = self.tool_of_item.iter().find(|(i, _)| *i == index) {
                    let delta = json!({"tool_calls": [{"index": call, "function": {"arguments": text("delta")}}]});
                    self.w.write(delta, None, out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let r = &v["response"];
                self.w.write(json!({}), Some(finish_reason(r, !self.tool_of_item.is_empty())), out);
                self.w.usage(chat_usage(r.get("usage").unwrap_or(&Value::Null)), out);
                ChunkWriter::done(out);
                return true;
            }
            "response.failed" => {
                let e = v.pointer("/response/error").unwrap_or(&Value::Null);
                return self.fail(e.get("message"), e.get("code"), out);
            }
            "error" => return self.fail(v.get("message"), v.get("code"), out),
            _ => {}
        }
        false
    }
}

impl ResponsesEvents {
    /// An error event then `[DONE]`: a rate limit if the code says so, else a server error.
    fn fail(&self, message: Option<&Value>, code: Option<&Value>, out: &mut Vec<u8>) -> bool {
        let rate_limited = code.and_then(Value::as_str).is_some_and(|c| c.contains("rate_limit"));
        self.w.error(message.and_then(Value::as_str).unwrap_or("upstream error"), rate_limited, out);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::chat_stream::testing::{chunks, reads_as_chat};
    use crate::api::chat_stream::{ChatEvent, ChatEvents};

    /// A Responses stream with reasoning, text, a tool call in two pieces, cached input, then the end.
    pub const RESPONSES: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt\",\"output\":[]}}\n\n",
        "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"response\":{\"id\":\"resp_1\"}}\n\n",
        "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"type\":\"reasoning\",\"id\":\"rs_1\"}}\n\n",
        "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"type\":\"message\",\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\"Hel\"}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\"lo\"}\n\n",
        "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":2,\"item\":{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"weather\",\"arguments\":\"\"}}\n\n",
        "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":2,\"delta\":\"{\\\"city\\\":\"}\n\n",
        "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":2,\"delta\":\"\\\"Paris\\\"}\"}\n\n",
        "event: response.function_call_arguments.done\ndata: {\"type\":\"response.function_call_arguments.done\",\"item_id\":\"fc_1\",\"output_index\":2,\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":13,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":12,\"output_tokens_details\":{\"reasoning_tokens\":3},\"total_tokens\":25}}}\n\n",
    );

    #[test]
    fn a_responses_stream_reads_as_a_chat_stream_wherever_it_is_cut() {
        let c = reads_as_chat::<ResponsesEvents>(RESPONSES, &[1, 7, 50, 333, 900, RESPONSES.len() - 3]);
        assert_eq!(c[0]["id"], "chatcmpl-1");
        let start = c.iter().find(|v| v.pointer("/choices/0/delta/tool_calls/0/id").is_some()).unwrap();
        assert_eq!(start["choices"][0]["delta"]["tool_calls"][0]["id"], "call_1");
    }

    #[test]
    fn an_incomplete_response_ends_for_length_and_failures_as_errors() {
        let mut t = FromResponses::new();
        let out = t.push(b"data: {\"type\":\"response.incomplete\",\"response\":{\"status\":\"incomplete\",\"incomplete_details\":{\"reason\":\"max_output_tokens\"},\"usage\":{\"input_tokens\":3,\"output_tokens\":16}}}\n\n");
        let (c, done) = chunks(&out);
        assert!(done && t.finished());
        assert_eq!(c[0]["choices"][0]["finish_reason"], "length");
        let mut t = FromResponses::new();
        let out = t.push(b"data: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"Overloaded\"}}}\n\ndata: {\"type\":\"response.completed\"}\n\n");
        let ev = ChatEvents::default().push(&out);
        assert_eq!(ev, vec![ChatEvent::Error { status: 502, message: "Overloaded".into() }, ChatEvent::Done]);
        let out = FromResponses::new().push(
            b"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"Slow down\"}\n\n",
        );
        assert_eq!(ChatEvents::default().push(&out)[0], ChatEvent::Error { status: 429, message: "Slow down".into() });
    }
}
