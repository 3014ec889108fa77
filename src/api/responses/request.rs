//! An OpenAI Responses request translated into the chat request the rest of the gateway (and
//! every OpenAI-compatible upstream) speaks. Pure: JSON in, JSON out, every rejection a client
//! error naming its field.
//!
//! Carried: `input` as a string or as items (messages with `input_text`, `output_text` and
//! `input_image` parts; `function_call` and `function_call_output` items), `instructions`,
//! function `tools`, `tool_choice`, `parallel_tool_calls`, `max_output_tokens`, `text.format`
//! (text, JSON object, JSON schema), `reasoning.effort`, `temperature`, `top_p`, `user`,
//! `stream`, `service_tier` (read by the gateway, as on chat). Dropped: `reasoning` items in the
//! history, `store` and `metadata` (the edge keeps and echoes them), `include`, `truncation`,
//! `background`, `prompt_cache_key`, `safety_identifier`. Refused with 400: built-in tools (web
//! search, file search, computer use...), `input_file` parts, and a `previous_response_id` that
//! reaches here (the edge expands it into `input` first; a request read without that layer cannot
//! be served). Fields the Responses API does not define pass through to the upstream, as they do
//! on the chat endpoint.

use crate::api::{body_object, invalid, token_limit, ApiError};
use serde_json::{json, Map, Value};

/// The fields translated (or dropped) here; any other passes through.
const RESPONSES_FIELDS: [&str; 23] = [
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "max_tool_calls",
    "text",
    "reasoning",
    "temperature",
    "top_p",
    "user",
    "stream",
    "store",
    "metadata",
    "include",
    "truncation",
    "background",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
    "previous_response_id",
];

/// Translates a Responses request body (already parsed) into a chat request body.
pub fn to_chat(v: &Value) -> Result<Value, ApiError> {
    let obj = body_object(v)?;
    if obj.get("previous_response_id").is_some_and(|p| !p.is_null()) {
        return Err(invalid(
            "previous_response_id is resolved at the /v1/responses edge only.",
            "previous_response_id",
        ));
    }
    let mut chat = Map::new();
    match obj.get("model") {
        Some(Value::String(m)) => chat.insert("model".into(), Value::String(m.clone())),
        Some(_) => return Err(invalid("'model' must be a string.", "model")),
        None => return Err(invalid("Missing required parameter: 'model'.", "model")),
    };
    let mut messages = Vec::new();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(invalid("'instructions' must be a string.", "instructions")),
    }
    match obj.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) if items.is_empty() => return Err(invalid("'input' must not be empty.", "input")),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                item_to_chat(item, &format!("input[{i}]"), &mut messages)?;
            }
        }
        Some(_) => return Err(invalid("'input' must be a string or an array of items.", "input")),
        None => return Err(invalid("Missing required parameter: 'input'.", "input")),
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(n) = obj.get("max_output_tokens").filter(|n| !n.is_null()) {
        match token_limit(n) {
            Some(n) => chat.insert("max_tokens".into(), Value::from(n)),
            _ => return Err(invalid("'max_output_tokens' must be an integer of at least 1.", "max_output_tokens")),
        };
    }
    for key in ["temperature", "top_p", "user", "stream", "parallel_tool_calls", "service_tier"] {
        if let Some(x) = obj.get(key).filter(|x| !x.is_null()) {
            chat.insert(key.into(), x.clone());
        }
    }
    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        // The usage chunk must reach the translation: `response.completed` carries the usage.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = obj.get("tools").filter(|t| !t.is_null()) {
        let tools = tools_to_chat(tools)?;
        if !tools.is_empty() {
            chat.insert("tools".into(), Value::Array(tools));
            if let Some(choice) = obj.get("tool_choice").filter(|c| !c.is_null()) {
                chat.insert("tool_choice".into(), tool_choice_to_chat(choice)?);
            }
        }
    }
    if let Some(format) = obj.get("text").and_then(|t| t.get("format")).filter(|f| !f.is_null()) {
        if let Some(rf) = format_to_chat(format)? {
            chat.insert("response_format".into(), rf);
        }
    }
    if let Some(effort) = obj.get("reasoning").and_then(|r| r.get("effort")).filter(|e| !e.is_null()) {
        chat.insert("reasoning_effort".into(), effort.clone());
    }
    for (k, x) in obj {
        if !RESPONSES_FIELDS.contains(&k.as_str()) {
            chat.insert(k.clone(), x.clone());
        }
    }
    Ok(Value::Object(chat))
}

/// Appends the chat messages of one input item.
fn item_to_chat(item: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        None | Some("message") => {
            let role = match item.get("role").and_then(Value::as_str) {
                Some("developer") | Some("system") => "system",
                Some(r @ ("user" | "assistant")) => r,
                _ => return Err(invalid(format!("{at}.role must be user, assistant, system or developer."), at)),
            };
            let content = match item.get("content") {
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(Value::Array(parts)) => content_to_chat(parts, role, &format!("{at}.content"))?,
                _ => return Err(invalid(format!("{at}.content must be a string or an array of parts."), at)),
            };
            out.push(json!({"role": role, "content": content}));
        }
        Some("function_call") => {
            let field = |k: &str| {
                item.get(k).and_then(Value::as_str).ok_or_else(|| invalid(format!("{at}.{k} must be a string."), at))
            };
            let call = json!({
                "id": field("call_id")?,
                "type": "function",
                "function": {"name": field("name")?, "arguments": field("arguments")?},
            });
            // Calls that follow an assistant turn (or each other) belong to it.
            match out.last_mut() {
                Some(last) if last["role"] == "assistant" => {
                    let calls = last.as_object_mut().expect("a message is an object");
                    match calls.entry("tool_calls").or_insert_with(|| json!([])) {
                        Value::Array(a) => a.push(call),
                        other => *other = json!([call]),
                    }
                }
                _ => out.push(json!({"role": "assistant", "content": Value::Null, "tool_calls": [call]})),
            }
        }
        Some("function_call_output") => {
            let id = item
                .get("call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{at}.call_id must be a string."), at))?;
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect()
                }
                _ => return Err(invalid(format!("{at}.output must be a string or an array of text parts."), at)),
            };
            out.push(json!({"role": "tool", "tool_call_id": id, "content": output}));
        }
        // Reasoning from an earlier turn: a chat upstream has nowhere to put it.
        Some("reasoning") => {}
        Some(other) => {
            return Err(invalid(
                format!("{at}.type `{other}` is not supported here (messages, function calls and their outputs are)."),
                at,
            ))
        }
    }
    Ok(())
}

/// A message's parts as chat content: a string when it is all text, parts otherwise.
fn content_to_chat(parts: &[Value], role: &str, at: &str) -> Result<Value, ApiError> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let here = format!("{at}[{i}]");
        match p.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                let text = p
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{here}.text must be a string."), &here))?;
                out.push(json!({"type": "text", "text": text}));
            }
            Some("refusal") => {
                let text = p.get("refusal").and_then(Value::as_str).unwrap_or_default();
                out.push(json!({"type": "text", "text": text}));
            }
            Some("input_image") if role == "user" => {
                let url = p.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                    invalid(format!("{here}.image_url must be a URL or a data URL (file_id is not supported)."), &here)
                })?;
                let mut image = json!({"url": url});
                if let Some(d) = p.get("detail").filter(|d| d.is_string()) {
                    image["detail"] = d.clone();
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            _ => {
                return Err(invalid(
                    format!("{here}: only text parts (and images from the user) are supported here."),
                    &here,
                ))
            }
        }
    }
    if out.iter().all(|p| p["type"] == "text") {
        let text: String = out.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n");
        return Ok(Value::String(text));
    }
    Ok(Value::Array(out))
}

/// Function tools in chat's shape; built-in tools are refused.
fn tools_to_chat(tools: &Value) -> Result<Vec<Value>, ApiError> {
    let tools = tools.as_array().ok_or_else(|| invalid("'tools' must be an array.", "tools"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("tools[{i}]");
            match t.get("type").and_then(Value::as_str) {
                Some("function") => {
                    let name = t
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("{at}.name must be a string."), &at))?;
                    let mut f = json!({"name": name});
                    for k in ["description", "parameters", "strict"] {
                        if let Some(x) = t.get(k).filter(|x| !x.is_null()) {
                            f[k] = x.clone();
                        }
                    }
                    Ok(json!({"type": "function", "function": f}))
                }
                Some(other) => Err(invalid(
                    format!(
                        "{at}: built-in tool `{other}` is not available through this gateway (function tools are)."
                    ),
                    &at,
                )),
                None => Err(invalid(format!("{at}.type is required."), &at)),
            }
        })
        .collect()
}

fn tool_choice_to_chat(choice: &Value) -> Result<Value, ApiError> {
    match choice {
        Value::String(s) if ["auto", "none", "required"].contains(&s.as_str()) => Ok(choice.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name must be a string.", "tool_choice"))?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(invalid("tool_choice must be auto, none, required or a function.", "tool_choice")),
    }
}

/// `text.format` as chat's `response_format` (none for plain text).
fn format_to_chat(format: &Value) -> Result<Option<Value>, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(x) = format.get(k).filter(|x| !x.is_null()) {
                    schema.insert(k.into(), x.clone());
                }
            }
            if !schema.contains_key("name") || !schema.contains_key("schema") {
                return Err(invalid("text.format of type json_schema needs `name` and `schema`.", "text.format"));
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(invalid("text.format.type must be text, json_object or json_schema.", "text.format")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_input_with_instructions_becomes_system_and_user() {
        let chat = to_chat(&json!({"model": "m", "instructions": "Be brief.", "input": "Hi", "max_output_tokens": 20,
            "store": true, "metadata": {"a": "b"}, "ignore_eos": true}))
        .unwrap();
        assert_eq!(
            chat["messages"],
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        );
        assert_eq!(chat["max_tokens"], 20);
        assert_eq!(chat["ignore_eos"], true, "unknown fields pass through");
        assert!(chat.get("store").is_none() && chat.get("metadata").is_none() && chat.get("input").is_none());
    }

    #[test]
    fn function_calls_and_their_outputs_become_tool_turns() {
        let chat = to_chat(&json!({"model": "m", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
        ], "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": true}],
           "tool_choice": {"type": "function", "name": "weather"}}))
        .unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[0], json!({"role": "user", "content": "Weather in Paris?"}));
        assert_eq!(m[1]["tool_calls"].as_array().unwrap().len(), 2);
        assert_eq!(m[1]["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(m[2], json!({"role": "tool", "tool_call_id": "call_1", "content": "18C"}));
        assert_eq!(chat["tools"][0]["function"]["strict"], true);
        assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
    }

    #[test]
    fn text_format_and_reasoning_map_to_chat_fields() {
        let chat = to_chat(&json!({"model": "m", "input": "x", "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}, "strict": true}}}))
        .unwrap();
        assert_eq!(chat["response_format"]["type"], "json_schema");
        assert_eq!(chat["response_format"]["json_schema"]["name"], "r");
        assert_eq!(chat["reasoning_effort"], "low");
    }

    #[test]
    fn what_cannot_be_served_is_refused_naming_the_field() {
        let param = |v: Value| match to_chat(&v) {
            Err(ApiError::InvalidBody { param, .. }) => param.unwrap_or_default(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            param(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"})),
            "previous_response_id"
        );
        assert_eq!(param(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]})), "tools[0]");
        assert_eq!(param(json!({"model": "m"})), "input");
        assert_eq!(param(json!({"model": "m", "input": []})), "input");
        assert_eq!(
            param(
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})
            ),
            "input[0].content[0]"
        );
        assert_eq!(param(json!({"model": "m", "input": "x", "max_output_tokens": 0})), "max_output_tokens");
        assert_eq!(param(json!({"model": 3, "input": "x"})), "model");
    }
}
