//! An Anthropic Messages request translated into the OpenAI chat request the rest of the gateway
//! (and every OpenAI-compatible upstream) speaks. Pure: JSON in, JSON out, every rejection a
//! client error naming its field.
//!
//! Carried: `system` (string or text blocks), multi-turn `messages` with text, image (base64 or
//! URL), `tool_use` and `tool_result` blocks (a result's images in a user message after the
//! tool messages), `tools`, `tool_choice` (with `disable_parallel_tool_use`), `stop_sequences`,
//! //! `max_tokens`, `temperature`, `top_p`, `top_k`, `metadata.user_id`, `stream`, and
//! `cache_control` on system and text blocks and on tools (kept in the chat form as a
//! `cache_control` key on the text part or the tool, as LiteLLM does: an Anthropic upstream gets
//! it back, any other upstream has it removed before sending). Dropped: a top-level
//! `cache_control`, `thinking` and thinking blocks in the history, `service_tier`, `container`,
//! `mcp_servers`, `context_management`. Refused with 400: document and server-tool blocks, server
//! tools. Fields Anthropic does not define (an engine's extensions such as vLLM's `ignore_eos`)
//! pass through to the upstream, as they do on the chat endpoint.

use crate::api::{body_object, invalid, token_limit, ApiError};
use serde_json::{json, Map, Value};

/// The fields translated (or dropped) here; any other passes through.
const MESSAGES_FIELDS: [&str; 20] = [
    "model",
    // Messages has one answer; a chat `n` would interleave choices in the stream.
    "n",
    "max_tokens",
    "messages",
    "system",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "metadata",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "cache_control",
    "anthropic_version",
];

/// Translates a Messages request body (already parsed) into a chat request body.
pub fn to_chat(v: &Value) -> Result<Value, ApiError> {
    let obj = body_object(v)?;
    let mut chat = Map::new();
    match obj.get("model") {
        Some(Value::String(m)) => chat.insert("model".into(), Value::String(m.clone())),
        Some(_) => return Err(invalid("model: must be a string", "model")),
        None => return Err(invalid("model: Field required", "model")),
    };
    match obj.get("max_tokens").and_then(token_limit) {
        Some(n) => chat.insert("max_tokens".into(), Value::from(n)),
        _ => return Err(invalid("max_tokens: Field required (an integer of at least 1)", "max_tokens")),
    };
    let mut messages = Vec::new();
    if let Some(system) = obj.get("system") {
        let content = system_content(system)?;
        if content != "" {
            messages.push(json!({"role": "system", "content": content}));
        }
    }
    let turns = match obj.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(invalid("messages: at least one message is required", "messages")),
        Some(_) => return Err(invalid("messages: must be an array", "messages")),
        None => return Err(invalid("messages: Field required", "messages")),
    };
    for (i, turn) in turns.iter().enumerate() {
        turn_to_chat(turn, &format!("messages.{i}"), &mut messages)?;
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(stop) = obj.get("stop_sequences") {
        match stop {
            Value::Array(a) if a.iter().all(Value::is_string) => {
                if !a.is_empty() {
                    chat.insert("stop".into(), stop.clone());
                }
            }
            _ => return Err(invalid("stop_sequences: must be an array of strings", "stop_sequences")),
        }
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")] {
        match obj.get(from) {
            None | Some(Value::Null) => {}
            Some(x) if x.is_number() => {
                chat.insert(to.into(), x.clone());
            }
            Some(_) => return Err(invalid(format!("{from}: must be a number"), from)),
        }
    }
    match obj.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => {
            chat.insert("stream".into(), Value::Bool(*b));
            if *b {
                // A Messages stream always ends with its usage (in `message_delta`).
                chat.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        Some(_) => return Err(invalid("stream: must be a boolean", "stream")),
    }
    if let Some(user) = obj.get("metadata").and_then(|m| m.get("user_id")).and_then(Value::as_str) {
        chat.insert("user".into(), Value::String(user.to_string()));
    }
    let mut choice = Map::new();
    if let Some(c) = obj.get("tool_choice") {
        tool_choice_to_chat(c, &mut choice)?;
    }
    if let Some(tools) = obj.get("tools") {
        let tools = tools_to_chat(tools)?;
        // OpenAI-compatible servers refuse an empty list, and a tool choice without tools.
        if tools.as_array().is_some_and(|t| !t.is_empty()) {
            chat.insert("tools".into(), tools);
            chat.extend(choice);
        }
    }
    for (k, v) in obj {
        if !MESSAGES_FIELDS.contains(&k.as_str()) && !chat.contains_key(k) {
            chat.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(chat))
}

/// The system prompt: a string, or text blocks joined (kept as text parts when one of them
/// carries `cache_control`).
fn system_content(system: &Value) -> Result<Value, ApiError> {
    match system {
        Value::String(s) => Ok(Value::String(s.clone())),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match (b.get("type").and_then(Value::as_str), b.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push(text_part(t, b)),
                    _ => return Err(invalid(format!("system.{i}: only text blocks are accepted"), "system")),
                }
            }
            Ok(joined_unless_cached(out, "\n"))
        }
        _ => Err(invalid("system: must be a string or an array of text blocks", "system")),
    }
}

/// A chat text part of a text block, with the block's `cache_control` if it has one.
fn text_part(text: &str, block: &Value) -> Value {
    let mut part = json!({"type": "text", "text": text});
    if let Some(c) = block.get("cache_control").filter(|c| !c.is_null()) {
        part["cache_control"] = c.clone();
    }
    part
}

/// Text parts as one string joined by `sep`, unless one carries `cache_control` or is not text.
fn joined_unless_cached(parts: Vec<Value>, sep: &str) -> Value {
    if parts.iter().all(|p| p["type"] == "text" && p.get("cache_control").is_none()) {
        Value::String(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(sep))
    } else {
        Value::Array(parts)
    }
}

/// One Messages turn as chat messages: a user turn's tool results become `tool` messages (first,
/// as they answer the assistant's calls), an assistant turn's `tool_use` blocks its `tool_calls`.
fn turn_to_chat(turn: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = match turn.get("role").and_then(Value::as_str) {
        Some(r @ ("user" | "assistant")) => r,
        _ => return Err(invalid(format!("{at}.role: must be \"user\" or \"assistant\""), "messages")),
    };
    let blocks = match turn.get("content") {
        Some(Value::String(s)) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => return Err(invalid(format!("{at}.content: must be a string or an array of blocks"), "messages")),
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let here = format!("{at}.content.{j}");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = b.get("text").and_then(Value::as_str).ok_or_else(|| invalid(format!("{here}.text: Field required"), "messages"))?;
                parts.push(text_part(t, b));
            }
            Some("image") if role == "user" => parts.push(image_part(b, &here)?),
            Some("tool_use") if role == "assistant" => {
                let id = b.get("id").and_then(Value::as_str).ok_or_else(|| invalid(format!("{here}.id: Field required"), "messages"))?;
                let name = b.get("name").and_then(Value::as_str).ok_or_else(|| invalid(format!("{here}.name: Field required"), "messages"))?;
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}}));
            }
            Some("tool_result") if role == "user" => {
                let id = b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{here}.tool_use_id: Field required"), "messages"))?;
                let mut text = tool_result_content(b.get("content"), id, &here, &mut parts)?;
                if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            // Earlier thinking is the model's own scratch work: a chat upstream takes none.
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(invalid(
                    format!("{here}.type: `{other}` blocks in a {role} turn are not supported by tollgate's translation to chat upstreams"),
                    "messages",
                ))
            }
            None => return Err(invalid(format!("{here}.type: Field required"), "messages")),
        }
    }
    let content = if parts.is_empty() { Value::Null } else { joined_unless_cached(parts, "") };
    if !calls.is_empty() {
        out.push(json!({"role": "assistant", "content": content, "tool_calls": calls}));
    } else if !content.is_null() {
        out.push(json!({"role": role, "content": content}));
    }
    Ok(())
}

fn image_part(b: &Value, at: &str) -> Result<Value, ApiError> {
    let src = b.get("source").ok_or_else(|| invalid(format!("{at}.source: Field required"), "messages"))?;
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = src.get("media_type").and_then(Value::as_str).unwrap_or("image/png");
            let data = src
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{at}.source.data: Field required"), "messages"))?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => src
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}.source.url: Field required"), "messages"))?
            .to_string(),
        _ => return Err(invalid(format!("{at}.source.type: must be \"base64\" or \"url\""), "messages")),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A tool result's text; its images (a chat tool message carries text only) go to `parts`, the
/// user message that follows the turn's tool messages, after a line naming the call they came from.
fn tool_result_content(
    content: Option<&Value>,
    id: &str,
    at: &str,
    parts: &mut Vec<Value>,
) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut out = Vec::new();
            let mut images = Vec::new();
            for (k, b) in blocks.iter().enumerate() {
                match (b.get("type").and_then(Value::as_str), b.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push(t),
                    (Some("image"), _) => images.push(image_part(b, &format!("{at}.content.{k}"))?),
                    _ => {
                        return Err(invalid(
                            format!("{at}.content: only text and images are carried in a tool result"),
                            "messages",
                        ))
                    }
                }
            }
            if !images.is_empty() {
                parts.push(json!({"type": "text", "text": format!("Images returned by tool call {id}:")}));
                parts.extend(images);
            }
            Ok(out.join("\n"))
        }
        Some(_) => Err(invalid(format!("{at}.content: must be a string or text and image blocks"), "messages")),
    }
}

fn tools_to_chat(tools: &Value) -> Result<Value, ApiError> {
    let list = tools.as_array().ok_or_else(|| invalid("tools: must be an array", "tools"))?;
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        // Client tools have no `type` (or `custom`); server tools (web search, code execution)
        // run at Anthropic and cannot run behind a chat upstream.
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(other) => {
                return Err(invalid(
                    format!("tools.{i}.type: server tool `{other}` is not supported by tollgate"),
                    "tools",
                ))
            }
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("tools.{i}.name: Field required"), "tools"))?;
        let schema = t
            .get("input_schema")
            .cloned()
            .ok_or_else(|| invalid(format!("tools.{i}.input_schema: Field required"), "tools"))?;
        let mut f = json!({"name": name, "parameters": schema});
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            f["description"] = Value::String(d.to_string());
        }
        let mut tool = json!({"type": "function", "function": f});
        if let Some(c) = t.get("cache_control").filter(|c| !c.is_null()) {
            tool["cache_control"] = c.clone();
        }
        out.push(tool);
    }
    Ok(Value::Array(out))
}

fn tool_choice_to_chat(choice: &Value, chat: &mut Map<String, Value>) -> Result<(), ApiError> {
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name: Field required", "tool_choice"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => return Err(invalid("tool_choice.type: must be auto, any, tool or none", "tool_choice")),
    };
    chat.insert("tool_choice".into(), mapped);
    if choice.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        chat.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_round_trip_becomes_chat_messages_in_order() {
        let req = json!({
            "model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "stop_sequences": ["END"], "metadata": {"user_id": "u1"}, "temperature": 0.2,
            "tools": [{"name": "weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "18C"}]}, {"type": "text", "text": "And tomorrow?"}]},
                {"role": "user", "content": [{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
            ]
        });
        let chat = to_chat(&req).unwrap();
        assert_eq!(chat["max_tokens"], 64);
        assert!(chat.get("system").is_none() && chat.get("metadata").is_none() && chat.get("stop_sequences").is_none());
        assert_eq!(chat["stop"], json!(["END"]));
        assert_eq!(chat["user"], "u1");
        assert_eq!(chat["tool_choice"], "required");
        assert_eq!(chat["parallel_tool_calls"], false);
        assert_eq!(chat["tools"][0]["function"]["parameters"]["properties"]["city"]["type"], "string");
        let m = chat["messages"].as_array().unwrap();
        // `cache_control` stays on its text part (and tool) for an Anthropic upstream.
        let cc = json!({"type": "ephemeral"});
        assert_eq!(
            m[0],
            json!({"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": cc}]})
        );
        assert_eq!(chat["tools"][0]["cache_control"], cc);
        assert_eq!(m[5]["content"][0]["cache_control"], json!({"type": "ephemeral", "ttl": "1h"}));
        assert_eq!(m[1], json!({"role": "user", "content": "Weather in Paris?"}));
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(m[2]["content"], "Checking.");
        assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "tu_1", "content": "18C"}));
        assert_eq!(m[4], json!({"role": "user", "content": "And tomorrow?"}));
    }

    #[test]
    fn bad_requests_name_their_field() {
        let base = json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
        assert!(to_chat(&base).is_ok());
        for (field, bad) in [
            ("max_tokens", json!(0)),
            ("messages", json!([])),
            ("system", json!(3)),
            ("stop_sequences", json!("x")),
            ("tools", json!([{"type": "web_search_20250305", "name": "web_search"}])),
            ("tool_choice", json!({"type": "tool"})),
        ] {
            let mut v = base.clone();
            v[field] = bad;
            match to_chat(&v) {
                Err(ApiError::InvalidBody { param: Some(p), .. }) => assert_eq!(p, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let mut v = base.clone();
        v["messages"] = json!([{"role": "user", "content": [{"type": "document", "source": {}}]}]);
        assert!(matches!(to_chat(&v), Err(ApiError::InvalidBody { .. })));
        let mut v = base;
        v.as_object_mut().unwrap().remove("max_tokens");
        assert!(to_chat(&v).is_err(), "max_tokens is required");
    }

    #[test]
    fn fields_anthropic_does_not_define_pass_through_and_its_own_do_not() {
        let v = json!({"model": "m", "max_tokens": 8, "ignore_eos": true, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "hi"}]});
        let chat = to_chat(&v).unwrap();
        assert_eq!(chat["ignore_eos"], true);
        assert!(chat.get("thinking").is_none());
    }

    #[test]
    fn an_empty_tool_list_and_its_choice_are_left_out_and_n_is_dropped() {
        let v = json!({"model": "m", "max_tokens": 8, "tools": [], "tool_choice": {"type": "auto"}, "n": 3,
            "messages": [{"role": "user", "content": "hi"}]});
        let chat = to_chat(&v).unwrap();
        assert!(chat.get("tools").is_none() && chat.get("tool_choice").is_none() && chat.get("n").is_none(), "{chat}");
    }

    #[test]
    fn a_tool_results_images_follow_the_tool_message_in_a_user_message() {
        let v = json!({"model": "m", "max_tokens": 8, "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_9", "name": "screenshot", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_9", "content": [
                {"type": "text", "text": "Captured."},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/s.png"}}]},
                {"type": "text", "text": "What does it show?"}]}]});
        let chat = to_chat(&v).unwrap();
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m[1], json!({"role": "tool", "tool_call_id": "tu_9", "content": "Captured."}));
        assert_eq!(m[2]["role"], "user");
        let parts = m[2]["content"].as_array().unwrap();
        assert_eq!(parts[0]["text"], "Images returned by tool call tu_9:");
        assert_eq!(parts[1]["image_url"]["url"], "https://example.com/s.png");
        assert_eq!(parts[2]["text"], "What does it show?");
        // A block that is neither text nor image is still refused, naming the field.
        let mut bad = v.clone();
        bad["messages"][1]["content"][0]["content"][1] = json!({"type": "document", "source": {}});
        assert!(matches!(to_chat(&bad), Err(ApiError::InvalidBody { param: Some(p), .. }) if p == "messages"));
    }

    #[test]
    fn images_become_image_url_parts() {
        let v = json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}},
            {"type": "text", "text": "What is this?"}]}]});
        let chat = to_chat(&v).unwrap();
        let parts = chat["messages"][0]["content"].as_array().unwrap();
        assert_eq!(parts[0]["image_url"]["url"], "data:image/jpeg;base64,QUJD");
        assert_eq!(parts[1]["text"], "What is this?");
    }
}
