//! A chat completion translated into an OpenAI Responses object. Pure: JSON in, JSON out.
//!
//! The answer's text becomes a `message` output item with one `output_text` part, each tool call a
//! `function_call` item (after the message, as the Responses API orders them); a length stop is
//! `status: "incomplete"` with `incomplete_details.reason = "max_output_tokens"`; usage is renamed
//! (`input_tokens`, `output_tokens`, cached and reasoning token details). The request's settings
//! are echoed as the Responses API does ([`Echo`]), with the id the gateway gave the response.

use serde_json::{json, Map, Value};

/// The request's settings a Responses object repeats, read once from the request, and the id the
/// response is given.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    settings: Map<String, Value>,
    id: Option<String>,
}

impl Echo {
    /// Takes the echoed settings from a Responses request (defaults where it left them out).
    pub fn of(request: &Value) -> Self {
        let mut m = Map::new();
        let get = |k: &str| request.get(k).filter(|x| !x.is_null()).cloned();
        m.insert("instructions".into(), get("instructions").unwrap_or(Value::Null));
        m.insert("max_output_tokens".into(), get("max_output_tokens").unwrap_or(Value::Null));
        m.insert("metadata".into(), get("metadata").unwrap_or_else(|| json!({})));
        m.insert("parallel_tool_calls".into(), get("parallel_tool_calls").unwrap_or(Value::Bool(true)));
        m.insert("temperature".into(), get("temperature").unwrap_or(Value::Null));
        m.insert("top_p".into(), get("top_p").unwrap_or(Value::Null));
        m.insert("tool_choice".into(), get("tool_choice").unwrap_or_else(|| json!("auto")));
        m.insert("tools".into(), get("tools").unwrap_or_else(|| json!([])));
        m.insert("text".into(), get("text").unwrap_or_else(|| json!({"format": {"type": "text"}})));
        m.insert("reasoning".into(), get("reasoning").unwrap_or_else(|| json!({"effort": null, "summary": null})));
        m.insert("user".into(), get("user").unwrap_or(Value::Null));
        m.insert("model".into(), get("model").unwrap_or(Value::Null));
        m.insert("previous_response_id".into(), get("previous_response_id").unwrap_or(Value::Null));
        m.insert("store".into(), Value::Bool(request.get("store").and_then(Value::as_bool) != Some(false)));
        Self { settings: m, id: None }
    }

    /// The same settings, for a response with id `id`.
    pub fn with_id(mut self, id: String) -> Self {
        self.id = Some(id);
        self
    }

    /// Whether the response is to be kept (the request did not say `store: false`).
    pub fn store(&self) -> bool {
        self.settings.get("store").and_then(Value::as_bool).unwrap_or(false)
    }

    /// The response's id: the one given, else one derived from the chat completion's.
    pub fn id(&self, chat_id: Option<&str>) -> String {
        self.id.clone().unwrap_or_else(|| response_id(chat_id))
    }

    /// A Responses object with these settings, `status` and `output`.
    pub fn response(&self, id: &str, created: u64, status: &str, output: Vec<Value>, usage: Value) -> Value {
        let mut r = Map::new();
        r.insert("id".into(), json!(id));
        r.insert("object".into(), json!("response"));
        r.insert("created_at".into(), json!(created));
        r.insert("status".into(), json!(status));
        r.insert("error".into(), Value::Null);
        let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
        r.insert("incomplete_details".into(), incomplete.unwrap_or(Value::Null));
        r.insert("output".into(), Value::Array(output));
        r.insert("usage".into(), usage);
        r.insert("store".into(), json!(false));
        r.insert("previous_response_id".into(), Value::Null);
        for (k, v) in &self.settings {
            r.insert(k.clone(), v.clone());
        }
        Value::Object(r)
    }
}

/// The Responses id for a chat completion id (`chatcmpl-abc` -> `resp_abc`).
pub fn response_id(chat_id: Option<&str>) -> String {
    let tail = chat_id.map(|id| id.strip_prefix("chatcmpl-").unwrap_or(id)).filter(|t| !t.is_empty());
    format!("resp_{}", tail.unwrap_or("tollgate"))
}

/// The id of the message item of response `resp_id`.
pub fn message_item_id(resp_id: &str) -> String {
    format!("msg_{}", resp_id.strip_prefix("resp_").unwrap_or(resp_id))
}

/// The id of the function-call item for call `call_id`.
pub fn call_item_id(call_id: &str) -> String {
    format!("fc_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
}

/// Chat usage in the Responses API's names.
pub fn usage(u: &Value) -> Value {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (n("/prompt_tokens"), n("/completion_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": n("/prompt_tokens_details/cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": n("/completion_tokens_details/reasoning_tokens")},
        "total_tokens": input + output,
    })
}

/// The status a chat finish reason gives a response.
pub fn status_of(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "incomplete",
        _ => "completed",
    }
}

/// A completed message item holding `text`.
pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// A function-call item.
pub fn call_item(call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({
        "type": "function_call", "id": call_item_id(call_id), "call_id": call_id,
        "name": name, "arguments": arguments, "status": status,
    })
}

/// Translates a whole chat completion (its first choice) into a Responses object.
pub fn from_chat(chat: &Value, echo: &Echo) -> Value {
    let id = echo.id(chat.get("id").and_then(Value::as_str));
    let choice = &chat["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        output.push(message_item(&message_item_id(&id), text, "completed"));
    }
    for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let s = |p: &str| call.pointer(p).and_then(Value::as_str).unwrap_or_default();
        output.push(call_item(s("/id"), s("/function/name"), s("/function/arguments"), "completed"));
    }
    let status = status_of(choice.get("finish_reason").and_then(Value::as_str));
    let created = chat.get("created").and_then(Value::as_u64).unwrap_or(0);
    let mut r = echo.response(&id, created, status, output, usage(&chat["usage"]));
    for key in ["model", "service_tier"] {
        if let Some(v) = chat.get(key).filter(|v| v.is_string()) {
            r[key] = v.clone();
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_tool_calls_become_output_items() {
        let chat = json!({"id": "chatcmpl-7", "created": 5, "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4}}});
        let echo = Echo::of(&json!({"model": "m", "input": "x", "instructions": "Be brief.", "metadata": {"k": "v"}}));
        let r = from_chat(&chat, &echo);
        assert_eq!(r["id"], "resp_7");
        assert_eq!(r["status"], "completed");
        assert_eq!(
            r["output"][0]["content"][0],
            json!({"type": "output_text", "text": "Checking.", "annotations": []})
        );
        assert_eq!(r["output"][1]["type"], "function_call");
        assert_eq!(r["output"][1]["call_id"], "call_1");
        assert_eq!(r["usage"]["input_tokens"], 11);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 4);
        assert_eq!(r["usage"]["total_tokens"], 18);
        assert_eq!(r["instructions"], "Be brief.");
        assert_eq!(r["metadata"], json!({"k": "v"}));
        assert_eq!(r["store"], true, "kept unless the request says store: false");
        let echo = Echo::of(&json!({"store": false, "previous_response_id": "resp_1"})).with_id("resp_9".into());
        let r = from_chat(&chat, &echo);
        assert_eq!((r["id"].as_str(), r["store"].as_bool()), (Some("resp_9"), Some(false)));
        assert_eq!(r["previous_response_id"], "resp_1");
    }

    #[test]
    fn a_length_stop_is_incomplete() {
        let chat = json!({"id": "chatcmpl-8", "choices": [{"finish_reason": "length", "message": {"content": "abc"}}]});
        let r = from_chat(&chat, &Echo::of(&json!({"max_output_tokens": 3})));
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(r["max_output_tokens"], 3);
    }
}
