//! Backends of kinds `anthropic` and `responses`: every ingress (chat, Messages, Responses)
//! through the official `openai` and `anthropic` clients to an emulator's `/v1/messages` and
//! `/v1/responses` (tool calls included), and to stub Anthropic and Responses upstreams that call
//! a tool (whole and streamed, the result sent back), failover between backends of different
//! kinds, and what reaches each upstream: its own key (Anthropic's in `x-api-key` with
//! `anthropic-version`, OpenAI's as a bearer token), never the client's, and the request in the
//! upstream's form.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Seen {
    headers: Vec<HeaderMap>,
    bodies: Vec<serde_json::Value>,
}

const TOOL_USE: &str = r#"{"id":"msg_stub","type":"message","role":"assistant","model":"claude-stub","content":[{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":13,"output_tokens":9,"cache_read_input_tokens":4,"cache_creation_input_tokens":2}}"#;

fn tool_use_stream() -> String {
    let events = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_stub","type":"message","role":"assistant","model":"claude-stub","content":[],"usage":{"input_tokens":13,"output_tokens":1}}}"#,
        ),
        ("ping", r#"{"type":"ping"}"#),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"weather","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}"#,
        ),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    events.iter().map(|(n, d)| format!("event: {n}\ndata: {d}\n\n")).collect()
}

const FUNCTION_CALL: &str = r#"{"id":"resp_stub","object":"response","status":"completed","model":"gpt-stub","output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"function_call","id":"fc_1","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}],"usage":{"input_tokens":21,"input_tokens_details":{"cached_tokens":16},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":30}}"#;

fn function_call_stream() -> String {
    let events = [
        r#"{"type":"response.created","response":{"id":"resp_stub","status":"in_progress","model":"gpt-stub","output":[]}}"#,
        r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"weather","arguments":""}}"#,
        r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"city\":"}"#,
        r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"\"Paris\"}"}"#,
        r#"{"type":"response.completed","response":{"id":"resp_stub","status":"completed","usage":{"input_tokens":21,"input_tokens_details":{"cached_tokens":16},"output_tokens":9,"total_tokens":30}}}"#,
    ];
    events.iter().map(|d| format!("event: x\ndata: {d}\n\n")).collect()
}

/// The stub upstream of either kind: records what it was sent, answers with a call to `weather`.
async fn stub(uri: axum::http::Uri, State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap, body: Bytes) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let stream = v["stream"].as_bool().unwrap_or(false);
    let mut s = seen.lock().unwrap();
    s.headers.push(headers);
    s.bodies.push(v);
    let (whole, streamed) = match uri.path() {
        "/v1/messages" => (TOOL_USE.to_string(), tool_use_stream()),
        _ => (FUNCTION_CALL.to_string(), function_call_stream()),
    };
    if stream {
        ([("content-type", "text/event-stream")], streamed).into_response()
    } else {
        ([("content-type", "application/json")], whole).into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ingress_reaches_anthropic_upstreams() {
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 20.0).await;
    let (seen, stub_a) = start_stub().await;
    let (seen_r, stub_r) = start_stub().await;
    // A closed port: the backend that is down.
    let down = "http://127.0.0.1:9";
    std::env::set_var("TOLLGATE_TEST_ANTHROPIC_KEY", "sk-ant-upstream-own-key");
    std::env::set_var("TOLLGATE_TEST_OPENAI_KEY", "sk-openai-upstream-own-key");
    let (anthropic, responses) = ("kind = \"anthropic\"", "kind = \"responses\"");
    let config = format!(
        "{}{}{}{}{}{}{}\n[[models]]\nname = \"llama3-8b\"\nbackends = [\"emu-messages\"]\n\
         [[models]]\nname = \"gpt-r\"\nupstream_model = \"llama3-8b\"\nbackends = [\"emu-responses\"]\n\
         [[models]]\nname = \"claude-tools\"\nupstream_model = \"claude-stub\"\nbackends = [\"stub\"]\n\
         [[models]]\nname = \"gpt-tools\"\nupstream_model = \"gpt-stub\"\nbackends = [\"stub-r\"]\n\
         [[models]]\nname = \"failover\"\nupstream_model = \"llama3-8b\"\nbackends = [\"down\", \"down-r\", \"emu-chat\"]\n\
         [[models]]\nname = \"failover-r\"\nupstream_model = \"llama3-8b\"\nbackends = [\"down\", \"emu-responses\"]\n{}",
        common::backend("emu-messages", &emu.base, anthropic),
        common::backend("emu-responses", &emu.base, responses),
        common::backend("emu-chat", &emu.base, ""),
        common::backend(
            "stub",
            &stub_a,
            "kind = \"anthropic\"\napi_key_env = \"TOLLGATE_TEST_ANTHROPIC_KEY\"\ncost_per_1m_input = 3.0\n\
             cost_per_1m_output = 15.0\ncost_per_1m_cached_input = 0.3\ncost_per_1m_cache_write = 3.75"
        ),
        common::backend("stub-r", &stub_r, "kind = \"responses\"\napi_key_env = \"TOLLGATE_TEST_OPENAI_KEY\""),
        common::backend("down", down, anthropic),
        common::backend("down-r", down, responses),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&config).await;
    let key = gw.key("acme").await;
    let metered = common::run_python("tests/python/upstream_kinds.py", &[&gw.base, &key]).await;

    let (headers, bodies) = {
        let s = seen.lock().unwrap();
        (s.headers.clone(), s.bodies.clone())
    };
    // The upstream's own key, in Anthropic's header, with the version; never the client's.
    for h in &headers {
        assert_eq!(h.get("x-api-key").unwrap(), "sk-ant-upstream-own-key");
        assert_eq!(h.get("anthropic-version").unwrap(), "2023-06-01");
        assert!(h.get("authorization").is_none());
        assert!(h.values().all(|v| !v.to_str().unwrap_or("").contains(&key)));
    }
    // The request in Messages form: the upstream model, a `max_tokens`, tools with input schemas,
    // and the tool's result in a user turn after the assistant's `tool_use`.
    let first = &bodies[0];
    assert_eq!(first["model"], "claude-stub");
    assert_eq!(first["tool_choice"], serde_json::json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(first["tools"][0]["input_schema"]["type"], "object");
    assert!(first["max_tokens"].as_u64().unwrap() > 0 && first.get("messages").is_some());
    let cached =
        serde_json::json!([{"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}}]);
    assert!(bodies.iter().any(|b| b["system"] == cached), "cache_control carried to the Anthropic upstream");
    let back = bodies.iter().find(|b| b["messages"].as_array().unwrap().len() == 3).expect("the tool result sent");
    assert_eq!(back["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(back["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(back["messages"][2]["content"][0]["tool_use_id"], "toolu_1");

    // The Responses upstream: its own key as a bearer token, nothing stored there, the request as
    // items with function tools, and the tool's result sent back as a `function_call_output`.
    let (headers, bodies) = {
        let s = seen_r.lock().unwrap();
        (s.headers.clone(), s.bodies.clone())
    };
    assert!(!headers.is_empty());
    for h in &headers {
        assert_eq!(h.get("authorization").unwrap(), "Bearer sk-openai-upstream-own-key");
        assert!(h.get("x-api-key").is_none() && h.get("anthropic-version").is_none());
        assert!(h.values().all(|v| !v.to_str().unwrap_or("").contains(&key)));
    }
    let first = &bodies[0];
    assert_eq!((first["model"].as_str(), first["store"].as_bool()), (Some("gpt-stub"), Some(false)));
    assert_eq!(first["tools"][0]["name"], "weather");
    assert_eq!(first["input"][0]["role"], "user");
    assert!(first.get("messages").is_none() && first.get("stream_options").is_none());
    let back = bodies.iter().find(|b| b["input"].as_array().unwrap().len() == 3).expect("the tool result sent");
    assert_eq!(back["input"][1]["type"], "function_call");
    assert_eq!(
        back["input"][2],
        serde_json::json!({"type": "function_call_output", "call_id": "call_1", "output": "18C, clear"})
    );

    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), metered, "one ledger row per request that passed authentication");
    let served: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), metered - 2, "all but the two refused");
    assert!(served.iter().all(|r| r.output_tokens > 0 && r.input_tokens > 0), "tokens from the upstream's usage");
    let refused: Vec<_> = rows.iter().filter(|r| r.status == 400).collect();
    assert_eq!(refused.len(), 2, "n=2 to Anthropic, stop sequences to Responses");
    let failover: Vec<_> = served.iter().filter(|r| r.model_requested == "failover").collect();
    assert_eq!(failover.len(), 4);
    assert!(failover.iter().all(|r| r.backend.as_deref() == Some("emu-chat")));
    let failover: Vec<_> = served.iter().filter(|r| r.model_requested == "failover-r").collect();
    assert_eq!(failover.len(), 2);
    assert!(failover.iter().all(|r| r.backend.as_deref() == Some("emu-responses")));
    // Cached input is counted apart whichever upstream reported it, and priced apart where the
    // backend sets a rate for cache reads and writes.
    let gpt = served.iter().find(|r| r.model_requested == "gpt-tools" && !r.stream).unwrap();
    assert_eq!((gpt.input_tokens, gpt.cached_input_tokens, gpt.cache_write_tokens), (21, 16, 0));
    let claude = served.iter().find(|r| r.model_requested == "claude-tools" && !r.stream).unwrap();
    assert_eq!((claude.input_tokens, claude.cached_input_tokens, claude.cache_write_tokens), (19, 4, 2));
    let cost = (13.0 * 3.0 + 4.0 * 0.3 + 2.0 * 3.75 + 9.0 * 15.0) / 1e6;
    assert!((claude.cost_usd - cost).abs() < 1e-12, "{} vs {cost}", claude.cost_usd);
    for e in ["/v1/chat/completions", "/v1/messages", "/v1/responses"] {
        for model in ["llama3-8b", "gpt-r"] {
            assert!(served.iter().any(|r| r.endpoint == e && r.model_requested == model), "{e} {model}");
        }
    }
}

async fn start_stub() -> (Arc<Mutex<Seen>>, String) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = axum::Router::new()
        .route("/v1/messages", axum::routing::post(stub))
        .route("/v1/responses", axum::routing::post(stub))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, base)
}
