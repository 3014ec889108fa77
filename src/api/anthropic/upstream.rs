//! A chat request sent to an Anthropic Messages upstream (a backend of `kind = "anthropic"`), and
//! its whole answer read back as chat, so that every ingress reaches such a backend through the
//! chat path. Pure: JSON in, JSON out. The stream's translation is in [`super::upstream_stream`].
//!
//! Carried: system and developer messages (joined into `system`), user and assistant turns
//! (text and images), assistant tool calls as `tool_use` blocks, `tool` messages as
//! `tool_result` blocks in the next user turn, tools and `tool_choice` (with
//! `parallel_tool_calls: false`), `max_tokens` / `max_completion_tokens` (Anthropic requires one:
//! [`DEFAULT_MAX_TOKENS`] when the client set none), `stop`, `temperature`, `top_p`, `stream`,
//! `user` as `metadata.user_id`, and `cache_control` on text parts (system ones included) and on
//! tools, as the Messages ingress keeps it (a cached system prompt is then sent as text blocks).
//! Not carried, and refused so that another backend may serve: `n`
//! above 1, `logprobs`, audio. Dropped without notice, as Anthropic has no equivalent: `seed`,
//! penalties, `logit_bias`, `response_format`, `stream_options` (usage always comes back).

use serde_json::{json, Map, Value};

/// `max_tokens` sent when the client set none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The chat request `chat` as a Messages request. `Err` names what Anthropic cannot carry.
pub fn request(chat: &Value) -> Result<Value, String> {
    let obj = chat.as_object().ok_or("the request body is not a JSON object")?;
    if obj.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err("n above 1 is not carried to an Anthropic upstream".into());
    }
    if obj.get("logprobs").and_then(Value::as_bool).unwrap_or(false) {
        return Err("logprobs are not carried to an Anthropic upstream".into());
    }
    let mut out = Map::new();
    out.insert("model".into(), obj.get("model").cloned().unwrap_or(Value::Null));
    let (system, messages) = messages(obj.get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice))?;
    if !system.is_empty() {
        out.insert("system".into(), system_value(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    let max = obj.get("max_completion_tokens").or_else(|| obj.get("max_tokens")).and_then(Value::as_u64);
    out.insert("max_tokens".into(), json!(max.unwrap_or(DEFAULT_MAX_TOKENS)));
    for (from, to) in [("temperature", "temperature"), ("top_p", "top_p"), ("stream", "stream")] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    match obj.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(user) = obj.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(tools) = obj.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        out.insert("tools".into(), Value::Array(tools.iter().filter_map(tool).collect()));
        let parallel = obj.get("parallel_tool_calls").and_then(Value::as_bool).unwrap_or(true);
        if let Some(mut choice) = tool_choice(obj.get("tool_choice")) {
            if !parallel && choice["type"] != "none" {
                choice["disable_parallel_tool_use"] = Value::Bool(true);
            }
            out.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(out))
}

fn tool(t: &Value) -> Option<Value> {
    let f = t.get("function")?;
    let mut out = json!({
        "name": f.get("name")?,
        "input_schema": f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"})),
    });
    if let Some(d) = f.get("description") {
        out["description"] = d.clone();
    }
    Some(cached(out, t))
}

/// `block` with `from`'s `cache_control`, if it has one.
fn cached(mut block: Value, from: &Value) -> Value {
    if let Some(c) = from.get("cache_control").filter(|c| !c.is_null()) {
        block["cache_control"] = c.clone();
    }
    block
}

/// The system blocks as Messages' `system`: a string unless a block carries `cache_control`.
fn system_value(blocks: Vec<Value>) -> Value {
    if blocks.iter().any(|b| b.get("cache_control").is_some()) {
        return Value::Array(blocks);
    }
    Value::String(blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n\n"))
}

fn tool_choice(c: Option<&Value>) -> Option<Value> {
    match c? {
        Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
        Value::String(s) if s == "none" => Some(json!({"type": "none"})),
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        v => v.pointer("/function/name").map(|n| json!({"type": "tool", "name": n})),
    }
}

/// The system text and the turns, consecutive messages of one role joined into one turn (tool
/// results answer the assistant's calls in the user turn that follows them).
fn messages(chat: &[Value]) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for m in chat {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        let (role, blocks) = match role {
            "system" | "developer" => {
                match m.get("content") {
                    Some(Value::Array(parts)) if parts.iter().any(|p| p.get("cache_control").is_some()) => system
                        .extend(parts.iter().filter_map(|p| {
                            let text = p.get("text")?;
                            Some(cached(json!({"type": "text", "text": text}), p))
                        })),
                    content => {
                        let text = text_of(content);
                        if !text.is_empty() {
                            system.push(json!({"type": "text", "text": text}));
                        }
                    }
                }
                continue;
            }
            "assistant" => ("assistant", assistant_blocks(m)),
            "tool" => ("user", vec![tool_result(m)]),
            "user" => ("user", content_blocks(m.get("content"))?),
            other => return Err(format!("messages: the role {other:?} is not carried to an Anthropic upstream")),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    let turns = turns.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect();
    Ok((system, turns))
}

/// A message's text, whether a string or text parts.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
        }
        _ => String::new(),
    }
}

fn content_blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    let parts = match content {
        Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts,
        _ => return Ok(Vec::new()),
    };
    parts
        .iter()
        .map(|p| match p.get("type").and_then(Value::as_str) {
            Some("text") => Ok(cached(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()}), p)),
            Some("image_url") => image(p.pointer("/image_url/url").and_then(Value::as_str).unwrap_or("")),
            other => Err(format!("messages: content of type {other:?} is not carried to an Anthropic upstream")),
        })
        .collect()
}

/// An image part: a data URL becomes a base64 source, any other URL a URL source.
fn image(url: &str) -> Result<Value, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media, data) = rest.split_once(";base64,").ok_or("an image data URL must be base64")?;
        return Ok(json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}));
    }
    Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
}

fn assistant_blocks(m: &Value) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = text_of(m.get("content"));
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    for call in m.get("tool_calls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
        blocks.push(json!({
            "type": "tool_use",
            "id": call.get("id").cloned().unwrap_or_default(),
            "name": call.pointer("/function/name").cloned().unwrap_or_default(),
            "input": super::response::tool_input(args),
        }));
    }
    blocks
}

fn tool_result(m: &Value) -> Value {
    json!({
        "type": "tool_result",
        "tool_use_id": m.get("tool_call_id").cloned().unwrap_or_default(),
        "content": text_of(m.get("content")),
    })
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Chat's usage from Anthropic's: the prompt is input plus cache reads plus cache writes, the
/// cache reads reported as `cached_tokens` and the writes as `cache_write_tokens`.
pub fn chat_usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (read, write) = (n("cache_read_input_tokens"), n("cache_creation_input_tokens"));
    let prompt = n("input_tokens") + read + write;
    let output = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": { "cached_tokens": read, "cache_write_tokens": write },
    })
}

/// A whole Messages answer as a chat completion.
pub fn answer(msg: &Value) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in msg.get("content").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or_default(),
                    "arguments": b.get("input").map(Value::to_string).unwrap_or_else(|| "{}".into()),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let mut choice = json!({
        "index": 0,
        "message": message,
        "finish_reason": finish_reason(msg.get("stop_reason").and_then(Value::as_str)),
    });
    if let Some(s) = msg.get("stop_sequence").and_then(Value::as_str) {
        choice["stop_reason"] = Value::String(s.to_string());
    }
    json!({
        "id": chat_id(msg.get("id").and_then(Value::as_str)),
        "object": "chat.completion",
        "created": 0,
        "model": msg.get("model").cloned().unwrap_or_default(),
        "choices": [choice],
        "usage": chat_usage(msg.get("usage").unwrap_or(&Value::Null)),
    })
}

/// A chat completion id from a message id.
pub fn chat_id(msg_id: Option<&str>) -> String {
    let raw = msg_id.unwrap_or("anthropic");
    format!("chatcmpl-{}", raw.strip_prefix("msg_").unwrap_or(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_round_trip_is_carried_as_messages() {
        let chat = json!({
            "model": "claude", "max_tokens": 100, "stop": "END", "user": "u1", "stream": true,
            "parallel_tool_calls": false, "tool_choice": "required", "seed": 7,
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": [{"type": "text", "text": "And "}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
            ],
        });
        let m = request(&chat).unwrap();
        assert_eq!(m["system"], "Be brief.\n\nUse tools.");
        assert_eq!(
            (m["max_tokens"].as_u64(), &m["stop_sequences"], &m["metadata"]["user_id"]),
            (Some(100), &json!(["END"]), &json!("u1"))
        );
        assert_eq!(m["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
        assert_eq!(m["tools"][0]["input_schema"]["properties"]["city"]["type"], "string");
        assert!(m.get("seed").is_none() && m["stream"] == true);
        let turns = m["messages"].as_array().unwrap();
        assert_eq!(
            turns.iter().map(|t| t["role"].as_str().unwrap()).collect::<Vec<_>>(),
            ["user", "assistant", "user"]
        );
        assert_eq!(
            turns[1]["content"][0],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
        );
        // The tool's result and the next user text share one user turn, the result first.
        assert_eq!(turns[2]["content"][0], json!({"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}));
        assert_eq!(
            turns[2]["content"][2]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "QUJD"})
        );
    }

    /// A Messages request's `cache_control` reaches an Anthropic upstream where the client put it.
    #[test]
    fn cache_control_goes_round_the_chat_form_and_back() {
        let cc = json!({"type": "ephemeral"});
        let messages = json!({
            "model": "c", "max_tokens": 9,
            "system": [{"type": "text", "text": "Policy."}, {"type": "text", "text": "Long manual.", "cache_control": cc}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": cc}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Doc", "cache_control": cc}, {"type": "text", "text": "Q?"}]}],
        });
        let m = request(&super::super::request::to_chat(&messages).unwrap()).unwrap();
        assert_eq!(m["system"], messages["system"]);
        assert_eq!(m["tools"][0]["cache_control"], cc);
        assert_eq!(m["messages"][0]["content"], messages["messages"][0]["content"]);
        // Without any, the system prompt stays a string.
        let plain = json!({"model": "c", "max_tokens": 9, "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}], "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(request(&super::super::request::to_chat(&plain).unwrap()).unwrap()["system"], "A\nB");
    }

    #[test]
    fn a_default_max_tokens_is_set_and_what_cannot_be_carried_is_refused() {
        let m = request(&json!({"model": "c", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(m["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(request(&json!({"model": "c", "n": 2, "messages": []})).unwrap_err().contains("n above 1"));
        assert!(request(&json!({"model": "c", "logprobs": true, "messages": []})).is_err());
        let audio = json!({"model": "c", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]});
        assert!(request(&audio).unwrap_err().contains("input_audio"));
        assert!(request(&json!([1])).is_err());
    }

    #[test]
    fn a_whole_answer_reads_back_as_chat_with_cache_tokens_apart() {
        let msg = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 3},
        });
        let c = answer(&msg);
        assert_eq!(c["id"], "chatcmpl-01");
        let choice = &c["choices"][0];
        assert_eq!(
            (choice["finish_reason"].as_str(), choice["message"]["content"].as_str()),
            (Some("tool_calls"), Some("Let me check."))
        );
        assert_eq!(choice["message"]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(c["usage"]["prompt_tokens"], 33);
        assert_eq!(c["usage"]["prompt_tokens_details"], json!({"cached_tokens": 20, "cache_write_tokens": 3}));
        let stopped = answer(
            &json!({"content": [{"type": "text", "text": "x"}], "stop_reason": "stop_sequence", "stop_sequence": "END"}),
        );
        assert_eq!(
            (stopped["choices"][0]["finish_reason"].as_str(), stopped["choices"][0]["stop_reason"].as_str()),
            (Some("stop"), Some("END"))
        );
        assert_eq!(answer(&json!({"stop_reason": "max_tokens"}))["choices"][0]["finish_reason"], "length");
    }
}
