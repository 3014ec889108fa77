//! The emulator's tool calls: when a chat request offers function tools and does not rule them
//! out, the answer calls one, with arguments made from its JSON schema, so that tool-calling
//! clients and translations are tested offline. Deterministic: the same request, the same call.
//!
//! Which tool: the one `tool_choice` names, else the first. When: unless `tool_choice` is
//! `"none"`, or the conversation's last message is a tool's result and `tool_choice` is not
//! `"required"` or a named function (the model then answers in text, ending the round trip).
//! Arguments: every property of an object schema (required or not), strings as the property's
//! name (or the first `enum` value), numbers and integers 1, booleans true, arrays of one item,
//! nested objects likewise, to a depth of 8. The arguments are streamed in pieces of about four
//! characters, one per generated token.

use serde_json::{json, Map, Value};

/// One call the answer makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments' JSON text in pieces, one per output token.
    pub pieces: Vec<String>,
}

impl ToolCall {
    pub fn arguments(&self) -> String {
        self.pieces.concat()
    }

    /// The call as a chat message's `tool_calls` entry (whole), or a stream's first delta.
    pub fn chat(&self, arguments: &str) -> Value {
        json!({"index": 0, "id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}})
    }
}

/// The call a chat request's answer makes, if any; `seed` numbers the call's id.
pub fn call_for(chat: &Value, seed: u64) -> Option<ToolCall> {
    let tools = chat.get("tools")?.as_array()?;
    let choice = chat.get("tool_choice");
    let named = choice.and_then(|c| c.pointer("/function/name")).and_then(Value::as_str);
    let forced = named.is_some() || choice.and_then(Value::as_str) == Some("required");
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let answered = chat
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .is_some_and(|m| m.get("role").and_then(Value::as_str) == Some("tool"));
    if answered && !forced {
        return None;
    }
    let function = tools
        .iter()
        .filter_map(|t| t.get("function"))
        .find(|f| named.is_none_or(|n| f.get("name").and_then(Value::as_str) == Some(n)))?;
    let name = function.get("name")?.as_str()?.to_string();
    let args = value_for(function.get("parameters").unwrap_or(&json!({"type": "object"})), "value", 0);
    let text = if args.is_object() { args.to_string() } else { "{}".to_string() };
    let chars: Vec<char> = text.chars().collect();
    let pieces = chars.chunks(4).map(|c| c.iter().collect()).collect();
    Some(ToolCall { id: format!("call_emu{seed:016x}"), name, pieces })
}

/// A value that fits `schema`, named `name` where a string is wanted.
fn value_for(schema: &Value, name: &str, depth: usize) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null"),
        Some(t) => t.as_str(),
        None if schema.get("properties").is_some() => Some("object"),
        None => None,
    };
    match kind {
        Some("object") if depth < 8 => {
            let mut out = Map::new();
            for (k, s) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
                out.insert(k.clone(), value_for(s, k, depth + 1));
            }
            Value::Object(out)
        }
        Some("array") if depth < 8 => json!([value_for(schema.get("items").unwrap_or(&json!({})), name, depth + 1)]),
        Some("number" | "integer") => json!(1),
        Some("boolean") => json!(true),
        Some("null") => Value::Null,
        Some("object") => json!({}),
        _ => Value::String(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Value {
        json!([{"type": "function", "function": {"name": "weather", "parameters": {
            "type": "object", "required": ["city"],
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]},
                           "days": {"type": "integer"}, "hourly": {"type": ["boolean", "null"]},
                           "stops": {"type": "array", "items": {"type": "object", "properties": {"at": {"type": "number"}}}}},
        }}}, {"type": "function", "function": {"name": "time"}}])
    }

    #[test]
    fn arguments_fit_the_schema_and_are_streamed_in_pieces() {
        let chat = json!({"tools": weather(), "messages": [{"role": "user", "content": "hi"}]});
        let call = call_for(&chat, 7).unwrap();
        assert_eq!((call.name.as_str(), call.id.as_str()), ("weather", "call_emu0000000000000007"));
        let args: Value = serde_json::from_str(&call.arguments()).unwrap();
        assert_eq!(args, json!({"city": "city", "unit": "celsius", "days": 1, "hourly": true, "stops": [{"at": 1}]}));
        assert!(call.pieces.len() > 10 && call.pieces.iter().all(|p| p.chars().count() <= 4));
        assert_eq!(call_for(&chat, 7), Some(call), "deterministic");
    }

    #[test]
    fn the_choice_and_the_conversation_decide_whether_and_which() {
        let after = json!([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c", "content": "x"}]);
        let named = json!({"type": "function", "function": {"name": "time"}});
        let with = |choice: Value, messages: Value| {
            call_for(&json!({"tools": weather(), "tool_choice": choice, "messages": messages}), 1)
        };
        assert_eq!(with(named.clone(), json!([])).unwrap().name, "time");
        assert_eq!(with(named, after.clone()).unwrap().arguments(), "{}", "a tool without parameters");
        assert!(with(json!("none"), json!([])).is_none());
        assert!(with(json!("auto"), after.clone()).is_none(), "a tool's result is answered in text");
        assert!(with(json!("required"), after).is_some());
        assert!(call_for(&json!({"messages": []}), 1).is_none());
        assert!(with(json!({"type": "function", "function": {"name": "missing"}}), json!([])).is_none());
    }
}
