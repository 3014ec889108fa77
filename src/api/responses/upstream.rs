//! A chat request sent to an OpenAI Responses upstream (a backend of `kind = "responses"`), and
//! its whole answer read back as chat, so that every ingress reaches such a backend through the
//! chat path. Pure: JSON in, JSON out. The stream's translation is in [`super::upstream_stream`].
//!
//! Carried: system and developer messages (as input messages of their role, in place), user
//! turns (text and images), assistant turns, assistant tool calls as `function_call` items and
//! `tool` messages as `function_call_output` items, function tools, `tool_choice`,
//! `parallel_tool_calls`, `max_tokens` / `max_completion_tokens` as `max_output_tokens`,
//! `response_format` as `text.format`, `reasoning_effort` as `reasoning.effort`, `temperature`,
//! `top_p`, `user`, `stream`. Always sent: `store: false` (tollgate keeps conversations itself;
//! nothing is left at the provider). Not carried, and refused so that another backend may serve:
//! `n` above 1, `logprobs`, `stop` (the Responses API has no stop sequences), audio and file
//! parts, tools other than functions. Dropped without notice: `seed`, penalties, `logit_bias`,
//! `stream_options` (usage always comes back), `service_tier` (the gateway's own) and fields the
//! chat API does not define (the Responses API refuses unknown parameters). OpenAI refuses a
//! `max_output_tokens` under 16; such a request gets that upstream's 400 as it said it.

use serde_json::{json, Map, Value};

/// The chat request `chat` as a Responses request. `Err` names what the Responses API cannot carry.
pub fn request(chat: &Value) -> Result<Value, String> {
    let obj = chat.as_object().ok_or("the request body is not a JSON object")?;
    if obj.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Err("n above 1 is not carried to a Responses upstream".into());
    }
    if obj.get("logprobs").and_then(Value::as_bool).unwrap_or(false) {
        return Err("logprobs are not carried to a Responses upstream".into());
    }
    if obj.get("stop").is_some_and(|s| !s.is_null() && s != &json!([])) {
        return Err("stop sequences are not carried to a Responses upstream".into());
    }
    let mut out = Map::new();
    out.insert("model".into(), obj.get("model").cloned().unwrap_or(Value::Null));
    let mut input = Vec::new();
    for m in obj.get("messages").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        items(m, &mut input)?;
    }
    out.insert("input".into(), Value::Array(input));
    out.insert("store".into(), Value::Bool(false));
    let max = obj.get("max_completion_tokens").or_else(|| obj.get("max_tokens")).filter(|m| !m.is_null());
    if let Some(m) = max {
        out.insert("max_output_tokens".into(), m.clone());
    }
    for k in ["temperature", "top_p", "stream", "user", "parallel_tool_calls"] {
        if let Some(v) = obj.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(tools) = obj.get("tools").and_then(Value::as_array).filter(|t| !t.is_empty()) {
        out.insert("tools".into(), Value::Array(tools.iter().map(tool).collect::<Result<_, _>>()?));
        if let Some(c) = obj.get("tool_choice").filter(|c| !c.is_null()) {
            out.insert("tool_choice".into(), tool_choice(c));
        }
    }
    if let Some(f) = obj.get("response_format").and_then(format) {
        out.insert("text".into(), json!({ "format": f }));
    }
    if let Some(e) = obj.get("reasoning_effort").filter(|e| !e.is_null()) {
        out.insert("reasoning".into(), json!({ "effort": e }));
    }
    Ok(Value::Object(out))
}

/// Appends the input items of one chat message.
fn items(m: &Value, out: &mut Vec<Value>) -> Result<(), String> {
    let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
    match role {
        "system" | "developer" => out.push(json!({"role": role, "content": text_of(m.get("content"))})),
        "user" => out.push(json!({"role": "user", "content": user_content(m.get("content"))?})),
        "assistant" => {
            let text = text_of(m.get("content"));
            if !text.is_empty() {
                out.push(json!({"role": "assistant", "content": text}));
            }
            for call in m.get("tool_calls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
                out.push(json!({
                    "type": "function_call",
                    "call_id": call.get("id").cloned().unwrap_or_default(),
                    "name": call.pointer("/function/name").cloned().unwrap_or_default(),
                    "arguments": call.pointer("/function/arguments").cloned().unwrap_or_else(|| json!("{}")),
                }));
            }
        }
        "tool" => out.push(json!({
            "type": "function_call_output",
            "call_id": m.get("tool_call_id").cloned().unwrap_or_default(),
            "output": text_of(m.get("content")),
        })),
        other => return Err(format!("messages: the role {other:?} is not carried to a Responses upstream")),
    }
    Ok(())
}

/// A message's text, whether a string or text parts.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// A user message's content: a string as it is, parts as input parts.
fn user_content(content: Option<&Value>) -> Result<Value, String> {
    let Some(Value::Array(parts)) = content else {
        return Ok(Value::String(text_of(content)));
    };
    parts
        .iter()
        .map(|p| match p.get("type").and_then(Value::as_str) {
            Some("text") => Ok(json!({"type": "input_text", "text": p.get("text").cloned().unwrap_or_default()})),
            Some("image_url") => {
                let mut image = json!({"type": "input_image", "image_url": p.pointer("/image_url/url").cloned().unwrap_or_default()});
                image["detail"] = p.pointer("/image_url/detail").cloned().unwrap_or_else(|| json!("auto"));
                Ok(image)
            }
            other => Err(format!("messages: content of type {other:?} is not carried to a Responses upstream")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn tool(t: &Value) -> Result<Value, String> {
    let f = t.get("function").filter(|_| t.get("type").and_then(Value::as_str) == Some("function"));
    let f = f.ok_or("tools: only function tools are carried to a Responses upstream")?;
    let mut out = json!({"type": "function", "name": f.get("name").cloned().unwrap_or_default()});
    for k in ["description", "parameters", "strict"] {
        if let Some(x) = f.get(k).filter(|x| !x.is_null()) {
            out[k] = x.clone();
        }
    }
    Ok(out)
}

fn tool_choice(c: &Value) -> Value {
    match c.pointer("/function/name") {
        Some(name) => json!({"type": "function", "name": name}),
        None => c.clone(),
    }
}

/// Chat's `response_format` as `text.format`.
fn format(rf: &Value) -> Option<Value> {
    match rf.get("type").and_then(Value::as_str)? {
        "json_schema" => {
            let mut f = json!({"type": "json_schema"});
            for (k, x) in rf.get("json_schema")?.as_object()? {
                f[k] = x.clone();
            }
            Some(f)
        }
        kind => Some(json!({ "type": kind })),
    }
}

/// Chat's usage from the Responses API's (cached input reported as `cached_tokens`, reasoning
/// as `reasoning_tokens`).
pub fn chat_usage(u: &Value) -> Value {
    let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (n("/input_tokens"), n("/output_tokens"));
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": input + output,
        "prompt_tokens_details": { "cached_tokens": n("/input_tokens_details/cached_tokens") },
        "completion_tokens_details": { "reasoning_tokens": n("/output_tokens_details/reasoning_tokens") },
    })
}

/// OpenAI's `finish_reason` for a response: an incomplete one by its reason, one that called a
/// tool `tool_calls`, any other `stop`.
pub fn finish_reason(response: &Value, called: bool) -> &'static str {
    match (response.get("status").and_then(Value::as_str), response.pointer("/incomplete_details/reason")) {
        (Some("incomplete"), Some(r)) if r == "content_filter" => "content_filter",
        (Some("incomplete"), _) => "length",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// A chat completion id from a response id.
pub fn chat_id(resp_id: Option<&str>) -> String {
    let raw = resp_id.unwrap_or("responses");
    format!("chatcmpl-{}", raw.strip_prefix("resp_").unwrap_or(raw))
}

/// A whole Responses answer as a chat completion (reasoning items are dropped).
pub fn answer(resp: &Value) -> Value {
    let (mut text, mut refusal, mut calls) = (String::new(), String::new(), Vec::new());
    for item in resp.get("output").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for p in item.get("content").and_then(Value::as_array).map_or(&[][..], Vec::as_slice) {
                    text.push_str(p.get("text").and_then(Value::as_str).unwrap_or(""));
                    refusal.push_str(p.get("refusal").and_then(Value::as_str).unwrap_or(""));
                }
            }
            Some("function_call") => calls.push(json!({
                "id": item.get("call_id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": item.get("name").cloned().unwrap_or_default(),
                    "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!("{}")),
                },
            })),
            _ => {}
        }
    }
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    let mut message = json!({"role": "assistant", "content": content});
    if !refusal.is_empty() {
        message["refusal"] = Value::String(refusal);
    }
    let called = !calls.is_empty();
    if called {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": chat_id(resp.get("id").and_then(Value::as_str)),
        "object": "chat.completion",
        "created": resp.get("created_at").cloned().unwrap_or(json!(0)),
        "model": resp.get("model").cloned().unwrap_or_default(),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(resp, called)}],
        "usage": chat_usage(resp.get("usage").unwrap_or(&Value::Null)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_round_trip_is_carried_as_items() {
        let chat = json!({
            "model": "gpt", "max_completion_tokens": 100, "user": "u1", "stream": true, "seed": 7,
            "parallel_tool_calls": false, "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "ignore_eos": true, "service_tier": "flex", "reasoning_effort": "low",
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
                {"role": "user", "content": [{"type": "text", "text": "And "}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
            ],
        });
        let r = request(&chat).unwrap();
        assert_eq!((r["max_output_tokens"].as_u64(), r["store"].as_bool()), (Some(100), Some(false)));
        assert_eq!(r["tool_choice"], json!({"type": "function", "name": "weather"}));
        assert_eq!(r["tools"][0], json!({"type": "function", "name": "weather", "parameters": {"type": "object"}}));
        assert_eq!(
            r["text"]["format"],
            json!({"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true})
        );
        assert_eq!(r["reasoning"], json!({"effort": "low"}));
        for dropped in ["seed", "ignore_eos", "service_tier", "messages", "response_format"] {
            assert!(r.get(dropped).is_none(), "{dropped}");
        }
        let input = r["input"].as_array().unwrap();
        assert_eq!(input[0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(
            input[2],
            json!({"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(input[3], json!({"type": "function_call_output", "call_id": "call_1", "output": "sunny"}));
        assert_eq!(input[4]["content"][1]["type"], "input_image");
        assert_eq!(input[4]["content"][1]["image_url"], "data:image/png;base64,QUJD");
    }

    #[test]
    fn what_cannot_be_carried_is_refused() {
        let user = json!([{"role": "user", "content": "hi"}]);
        for (k, v, says) in [
            ("n", json!(2), "n above 1"),
            ("logprobs", json!(true), "logprobs"),
            ("stop", json!(["END"]), "stop sequences"),
        ] {
            let mut chat = json!({"model": "g", "messages": user});
            chat[k] = v;
            assert!(request(&chat).unwrap_err().contains(says), "{k}");
        }
        let audio = json!({"model": "g", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]});
        assert!(request(&audio).unwrap_err().contains("input_audio"));
        let web = json!({"model": "g", "messages": user, "tools": [{"type": "web_search"}]});
        assert!(request(&web).unwrap_err().contains("function tools"));
        assert!(request(&json!([1])).is_err());
        assert!(request(&json!({"model": "g", "messages": user, "stop": null})).is_ok());
    }

    #[test]
    fn a_whole_answer_reads_back_as_chat() {
        let resp = json!({
            "id": "resp_01", "object": "response", "created_at": 5, "status": "completed", "model": "gpt",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            ],
            "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 20}, "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 39},
        });
        let c = answer(&resp);
        assert_eq!((c["id"].as_str(), c["created"].as_u64()), (Some("chatcmpl-01"), Some(5)));
        let choice = &c["choices"][0];
        assert_eq!(
            (choice["finish_reason"].as_str(), choice["message"]["content"].as_str()),
            (Some("tool_calls"), Some("Let me check."))
        );
        assert_eq!(choice["message"]["tool_calls"][0]["id"], "call_1");
        assert_eq!(c["usage"]["prompt_tokens"], 30);
        assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
        assert_eq!(c["usage"]["completion_tokens_details"]["reasoning_tokens"], 4);
        let cut = json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []});
        assert_eq!(answer(&cut)["choices"][0]["finish_reason"], "length");
        let refused = json!({"status": "completed", "output": [{"type": "message", "content": [{"type": "refusal", "refusal": "No."}]}]});
        assert_eq!(answer(&refused)["choices"][0]["message"]["refusal"], "No.");
    }
}
