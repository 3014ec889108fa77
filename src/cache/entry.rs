//! A cached answer: the whole response as the upstream gave it (or as assembled from its stream),
//! replayed to a later client whole or as server-sent events, with its usage marked as cached.

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// Which OpenAI endpoint's shape the answer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// One stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    kind: Kind,
    /// The whole response (`chat.completion` or `text_completion`).
    body: Value,
    /// Prompt and completion tokens of the original response.
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Approximate bytes held, for the cache's size bound.
    pub weight: u32,
}

impl Cached {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The whole response as stored.
    pub fn body(&self) -> &Value {
        &self.body
    }

    /// From a whole response; `None` unless it has choices and usage (what replay needs).
    pub fn from_whole(kind: Kind, bytes: &[u8]) -> Option<Self> {
        let body: Value = serde_json::from_slice(bytes).ok()?;
        Self::new(kind, body, bytes.len())
    }

    /// The stored form shared between replicas (through Redis).
    pub fn to_bytes(&self) -> Vec<u8> {
        let kind = match self.kind {
            Kind::Chat => "chat",
            Kind::Completion => "completion",
        };
        serde_json::to_vec(&json!({"kind": kind, "body": self.body})).unwrap_or_default()
    }

    /// Reads [`Self::to_bytes`]'s form back; `None` if it is not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let kind = match v.get("kind")?.as_str()? {
            "chat" => Kind::Chat,
            "completion" => Kind::Completion,
            _ => return None,
        };
        Self::new(kind, v.get("body")?.clone(), bytes.len())
    }

    fn new(kind: Kind, body: Value, size: usize) -> Option<Self> {
        let choices = body.get("choices")?.as_array()?;
        if choices.is_empty() {
            return None;
        }
        let usage = body.get("usage")?;
        let input_tokens = usage.get("prompt_tokens")?.as_i64()?;
        let output_tokens = usage.get("completion_tokens").and_then(Value::as_i64).unwrap_or(0);
        let weight = (size + 256).min(u32::MAX as usize) as u32;
        Some(Self { kind, body, input_tokens, output_tokens, weight })
    }

    /// Assembles the whole response from a stream's `data` payloads (without `[DONE]`): content
    /// and tool-call deltas joined per choice. `None` for anything replay could not reproduce
    /// (log probabilities, no usage, not JSON).
    pub fn from_events<'a>(kind: Kind, events: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut head: Option<Map<String, Value>> = None;
        let mut choices: Vec<Assembled> = Vec::new();
        let mut usage = None;
        let mut size = 0;
        for data in events {
            size += data.len();
            let v: Value = serde_json::from_str(data).ok()?;
            let obj = v.as_object()?;
            if head.is_none() {
                head = Some(obj.clone());
            }
            if let Some(u) = obj.get("usage").filter(|u| !u.is_null()) {
                usage = Some(u.clone());
            }
            for c in obj.get("choices").and_then(Value::as_array).into_iter().flatten() {
                if c.get("logprobs").is_some_and(|l| !l.is_null()) {
                    return None;
                }
                let i = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                if i >= 128 {
                    return None;
                }
                if choices.len() <= i {
                    choices.resize_with(i + 1, Assembled::default);
                }
                choices[i].add(kind, c)?;
            }
        }
        let head = head?;
        let mut body = Map::new();
        for k in ["id", "created", "model", "system_fingerprint"] {
            if let Some(v) = head.get(k) {
                body.insert(k.into(), v.clone());
            }
        }
        body.insert(
            "object".into(),
            Value::from(if kind == Kind::Chat { "chat.completion" } else { "text_completion" }),
        );
        body.insert(
            "choices".into(),
            Value::Array(choices.into_iter().enumerate().map(|(i, c)| c.into_choice(kind, i)).collect()),
        );
        body.insert("usage".into(), usage?);
        Self::new(kind, Value::Object(body), size)
    }

    /// The response body for a hit: the stored answer under the new request's id, its usage
    /// marked as cached (`prompt_tokens_details.cached_tokens`).
    pub fn whole(&self, id: &str, created: i64) -> Bytes {
        let mut body = self.body.clone();
        body["id"] = Value::from(id);
        body["created"] = Value::from(created);
        body["usage"] = self.usage();
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    fn usage(&self) -> Value {
        let mut u = self.body["usage"].clone();
        u["prompt_tokens_details"] = json!({ "cached_tokens": self.input_tokens });
        u
    }

    /// The answer as a stream: per choice a role chunk (chat), its content, its tool calls and
    /// its finish reason; the usage chunk if the client asked for it; then `[DONE]`.
    pub fn sse(&self, id: &str, created: i64, include_usage: bool) -> Bytes {
        let model = self.body.get("model").cloned().unwrap_or(Value::Null);
        let object = if self.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" };
        let chunk = |choices: Value| json!({"id": id, "object": object, "created": created, "model": model, "choices": choices});
        let mut out = Vec::new();
        let mut push = |v: Value| {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
            out.extend_from_slice(b"\n\n");
        };
        for (i, c) in self.body["choices"].as_array().into_iter().flatten().enumerate() {
            let index = c.get("index").cloned().unwrap_or(Value::from(i));
            let finish = c.get("finish_reason").cloned().unwrap_or(Value::Null);
            match self.kind {
                Kind::Chat => {
                    let msg = &c["message"];
                    let role = msg.get("role").cloned().unwrap_or(Value::from("assistant"));
                    push(chunk(
                        json!([{"index": index, "delta": {"role": role, "content": ""}, "finish_reason": null}]),
                    ));
                    if let Some(text) = msg.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                        push(chunk(json!([{"index": index, "delta": {"content": text}, "finish_reason": null}])));
                    }
                    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
                        let calls: Vec<Value> = calls
                            .iter()
                            .enumerate()
                            .map(|(k, call)| {
                                let mut call = call.clone();
                                call["index"] = Value::from(k);
                                call
                            })
                            .collect();
                        push(chunk(json!([{"index": index, "delta": {"tool_calls": calls}, "finish_reason": null}])));
                    }
                    push(chunk(json!([{"index": index, "delta": {}, "finish_reason": finish}])));
                }
                Kind::Completion => {
                    let text = c.get("text").cloned().unwrap_or(Value::from(""));
                    push(chunk(json!([{"index": index, "text": text, "finish_reason": finish, "logprobs": null}])));
                }
            }
        }
        if include_usage {
            let mut last = chunk(json!([]));
            last["usage"] = self.usage();
            push(last);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        Bytes::from(out)
    }
}

/// One choice being assembled from stream deltas.
#[derive(Debug, Default)]
struct Assembled {
    role: Option<Value>,
    text: String,
    tool_calls: Vec<Map<String, Value>>,
    finish_reason: Option<Value>,
}

impl Assembled {
    fn add(&mut self, kind: Kind, c: &Value) -> Option<()> {
        if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
            self.finish_reason = Some(f.clone());
        }
        if kind == Kind::Completion {
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                self.text.push_str(t);
            }
            return Some(());
        }
        let Some(delta) = c.get("delta").and_then(Value::as_object) else { return Some(()) };
        if let Some(r) = delta.get("role").filter(|r| !r.is_null()) {
            self.role = Some(r.clone());
        }
        match delta.get("content") {
            Some(Value::String(t)) => self.text.push_str(t),
            None | Some(Value::Null) => {}
            // Content parts, audio, ...: not reproduced, so not cached.
            Some(_) => return None,
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let k = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if k >= 128 {
                return None;
            }
            if self.tool_calls.len() <= k {
                self.tool_calls.resize_with(k + 1, Map::new);
            }
            let slot = &mut self.tool_calls[k];
            for key in ["id", "type"] {
                if let Some(v) = call.get(key).filter(|v| !v.is_null()) {
                    slot.insert(key.into(), v.clone());
                }
            }
            if let Some(f) = call.get("function").and_then(Value::as_object) {
                let func = slot.entry("function").or_insert_with(|| json!({"name": "", "arguments": ""}));
                for key in ["name", "arguments"] {
                    if let Some(part) = f.get(key).and_then(Value::as_str) {
                        let joined = format!("{}{part}", func[key].as_str().unwrap_or(""));
                        func[key] = Value::from(joined);
                    }
                }
            }
        }
        Some(())
    }

    fn into_choice(self, kind: Kind, index: usize) -> Value {
        let finish = self.finish_reason.unwrap_or(Value::Null);
        match kind {
            Kind::Completion => json!({"index": index, "text": self.text, "finish_reason": finish, "logprobs": null}),
            Kind::Chat => {
                let mut msg = json!({"role": self.role.unwrap_or(Value::from("assistant")), "content": self.text});
                if !self.tool_calls.is_empty() {
                    msg["tool_calls"] = Value::Array(self.tool_calls.into_iter().map(Value::Object).collect());
                    if self.text.is_empty() {
                        msg["content"] = Value::Null;
                    }
                }
                json!({"index": index, "message": msg, "finish_reason": finish, "logprobs": null})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(sse: &Bytes) -> Vec<String> {
        std::str::from_utf8(sse)
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_stream_assembles_into_the_whole_response_and_replays_to_the_same_stream() {
        let stream = [
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#,
        ];
        let c = Cached::from_events(Kind::Chat, stream).expect("assembles");
        assert_eq!((c.input_tokens, c.output_tokens), (9, 4));
        let whole: Value = serde_json::from_slice(&c.whole("new", 7)).unwrap();
        assert_eq!(whole["id"], "new");
        assert_eq!(whole["object"], "chat.completion");
        assert_eq!(whole["choices"][0]["message"]["content"], "Hello");
        assert_eq!(whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 9);
        // Replayed as a stream and assembled again: the same answer.
        let sse = c.sse("new", 7, true);
        assert!(sse.ends_with(b"data: [DONE]\n\n"));
        let again = Cached::from_events(Kind::Chat, events(&sse).iter().map(String::as_str)).unwrap();
        assert_eq!(again.body["choices"], c.body["choices"]);
        // Without include_usage there is no usage chunk.
        assert!(!std::str::from_utf8(&c.sse("x", 1, false)).unwrap().contains("usage"));
    }

    #[test]
    fn whole_responses_and_completions_round_trip_and_odd_ones_are_refused() {
        let body = br#"{"id":"x","object":"text_completion","model":"m","choices":[{"index":0,"text":"abc","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":3}}"#;
        let c = Cached::from_whole(Kind::Completion, body).unwrap();
        let again =
            Cached::from_events(Kind::Completion, events(&c.sse("y", 1, true)).iter().map(String::as_str)).unwrap();
        assert_eq!(again.body["choices"][0]["text"], "abc");
        assert_eq!(again.output_tokens, 3);
        assert!(Cached::from_whole(Kind::Chat, br#"{"choices":[]}"#).is_none());
        assert!(Cached::from_whole(Kind::Chat, br#"{"choices":[{"message":{}}]}"#).is_none(), "no usage");
        let logprobs = [
            r#"{"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[]}}],"usage":{"prompt_tokens":1}}"#,
        ];
        assert!(Cached::from_events(Kind::Chat, logprobs).is_none());
    }
}
