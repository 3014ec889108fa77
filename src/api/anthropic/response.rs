//! An OpenAI chat answer (or error) translated into Anthropic's Messages shapes. Pure.

use serde_json::{json, Value};

/// How a chat answer ended, as far as Anthropic's `stop_reason` needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ending {
    pub finish: Option<String>,
    /// The stop string that matched, where the upstream says (vLLM's `choices[].stop_reason`).
    pub stop_string: Option<String>,
    /// The answer called a tool (a forced call ends with `stop` on OpenAI-compatible servers).
    pub called_tool: bool,
}

impl Ending {
    /// Anthropic's `stop_reason` and `stop_sequence`. Without the upstream naming the matched
    /// stop string, a stop is `end_turn`.
    pub fn reason(&self) -> (&'static str, Value) {
        match self.finish.as_deref() {
            Some("length") => ("max_tokens", Value::Null),
            Some("tool_calls" | "function_call") => ("tool_use", Value::Null),
            Some("content_filter") => ("refusal", Value::Null),
            _ if self.called_tool => ("tool_use", Value::Null),
            _ => match &self.stop_string {
                Some(s) => ("stop_sequence", Value::String(s.clone())),
                None => ("end_turn", Value::Null),
            },
        }
    }
}

/// Reads a chat choice's ending fields.
pub fn ending_of(choice: &Value, called_tool: bool) -> Ending {
    Ending {
        finish: choice.get("finish_reason").and_then(Value::as_str).map(str::to_string),
        stop_string: choice.get("stop_reason").and_then(Value::as_str).map(str::to_string),
        called_tool,
    }
}

/// Anthropic's usage from a chat `usage`: its `input_tokens` leave out what was read from the
/// prompt cache, which is reported apart.
pub fn usage(u: &Value) -> Value {
    let prompt = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
    let cached = u.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0).min(prompt);
    let output = u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0);
    json!({
        "input_tokens": prompt - cached,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    })
}

/// A message id from the chat answer's id (or the request's).
pub fn message_id(chat_id: Option<&str>) -> String {
    let raw = chat_id.unwrap_or("tollgate");
    let raw = raw.strip_prefix("chatcmpl-").unwrap_or(raw);
    format!("msg_{raw}")
}

/// A `tool_use` block's input from a call's JSON arguments (an object; anything else is
/// wrapped so the client still sees what the model wrote).
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => json!({"value": other}),
        Err(_) if arguments.trim().is_empty() => json!({}),
        Err(_) => json!({"arguments": arguments}),
    }
}

/// A whole chat completion as a Messages response (its first choice: Messages has no `n`).
pub fn from_chat(chat: &Value) -> Value {
    let choice = chat.pointer("/choices/0").cloned().unwrap_or(Value::Null);
    let msg = choice.get("message").cloned().unwrap_or(Value::Null);
    let mut content = Vec::new();
    if let Some(text) = msg.get("content").and_then(Value::as_str) {
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
    }
    for call in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let f = &call["function"];
        content.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or("toolu_tollgate"),
            "name": f.get("name").and_then(Value::as_str).unwrap_or(""),
            "input": tool_input(f.get("arguments").and_then(Value::as_str).unwrap_or("")),
        }));
    }
    let called_tool = content.iter().any(|b| b["type"] == "tool_use");
    let (reason, sequence) = ending_of(&choice, called_tool).reason();
    json!({
        "id": message_id(chat.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(chat.get("usage").unwrap_or(&Value::Null)),
    })
}

/// Anthropic's error type for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// An error in Anthropic's shape, from the status and an OpenAI-shaped error body (its message;
/// the body itself if it has none).
pub fn error_from_openai(status: u16, body: &[u8]) -> Value {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_answer_with_a_tool_call_becomes_text_and_tool_use_blocks() {
        let chat = json!({
            "id": "chatcmpl-abc", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me check.",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 16}}
        });
        let m = from_chat(&chat);
        assert_eq!(m["id"], "msg_abc");
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(m["content"][0], json!({"type": "text", "text": "Let me check."}));
        assert_eq!(m["content"][1]["input"], json!({"city": "Paris"}));
        assert_eq!(m["usage"]["input_tokens"], 4);
        assert_eq!(m["usage"]["cache_read_input_tokens"], 16);
        assert_eq!(m["usage"]["output_tokens"], 7);
    }

    #[test]
    fn errors_take_anthropics_shape_and_type() {
        let e = error_from_openai(429, br#"{"error":{"message":"slow down","type":"rate_limit"}}"#);
        assert_eq!(e, json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}));
        assert_eq!(error_from_openai(404, b"nope")["error"]["type"], "not_found_error");
        let end = |f: &str, s: Option<&str>, t: bool| {
            Ending { finish: Some(f.into()), stop_string: s.map(str::to_string), called_tool: t }.reason()
        };
        assert_eq!(end("length", None, false).0, "max_tokens");
        assert_eq!(end("stop", None, false).0, "end_turn");
        assert_eq!(end("stop", None, true).0, "tool_use", "a forced tool call ends with stop");
        assert_eq!(end("stop", Some("END"), false), ("stop_sequence", json!("END")));
        assert_eq!(tool_input("not json"), json!({"arguments": "not json"}));
    }
}
