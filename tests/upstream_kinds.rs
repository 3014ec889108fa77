//! Backends of kind `anthropic`: every ingress (chat, Messages, Responses) through the official
//! `openai` and `anthropic` clients to an emulator's `/v1/messages` and to a stub Anthropic
//! upstream that calls a tool (whole and streamed, the result sent back), failover between
//! backends of different kinds, and what reaches the upstream: its own key in `x-api-key` with
//! `anthropic-version`, never the client's, and the request in Messages form.

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

async fn messages(State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap, body: Bytes) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let stream = v["stream"].as_bool().unwrap_or(false);
    let mut s = seen.lock().unwrap();
    s.headers.push(headers);
    s.bodies.push(v);
    if stream {
        ([("content-type", "text/event-stream")], tool_use_stream()).into_response()
    } else {
        ([("content-type", "application/json")], TOOL_USE).into_response()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ingress_reaches_anthropic_upstreams() {
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 20.0).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = axum::Router::new().route("/v1/messages", axum::routing::post(messages)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // A closed port: the backend that is down.
    let down = "http://127.0.0.1:9";
    std::env::set_var("TOLLGATE_TEST_ANTHROPIC_KEY", "sk-ant-upstream-own-key");
    let anthropic = "kind = \"anthropic\"";
    let config = format!(
        "{}{}{}{}\n[[models]]\nname = \"llama3-8b\"\nbackends = [\"emu-messages\"]\n\
         [[models]]\nname = \"claude-tools\"\nupstream_model = \"claude-stub\"\nbackends = [\"stub\"]\n\
         [[models]]\nname = \"failover\"\nupstream_model = \"llama3-8b\"\nbackends = [\"down\", \"emu-chat\"]\n{}",
        common::backend("emu-messages", &emu.base, anthropic),
        common::backend("emu-chat", &emu.base, ""),
        common::backend("stub", &stub, "kind = \"anthropic\"\napi_key_env = \"TOLLGATE_TEST_ANTHROPIC_KEY\""),
        common::backend("down", down, anthropic),
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
    let back = bodies.iter().find(|b| b["messages"].as_array().unwrap().len() == 3).expect("the tool result sent");
    assert_eq!(back["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(back["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(back["messages"][2]["content"][0]["tool_use_id"], "toolu_1");

    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), metered, "one ledger row per request that passed authentication");
    let served: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), metered - 1, "all but the n=2 request");
    assert!(served.iter().all(|r| r.output_tokens > 0 && r.input_tokens > 0), "tokens from the upstream's usage");
    let failover: Vec<_> = served.iter().filter(|r| r.model_requested == "failover").collect();
    assert_eq!(failover.len(), 4);
    assert!(failover.iter().all(|r| r.backend.as_deref() == Some("emu-chat")));
    for e in ["/v1/chat/completions", "/v1/messages", "/v1/responses"] {
        assert!(served.iter().any(|r| r.endpoint == e && r.model_served.as_deref() == Some("llama3-8b")), "{e}");
    }
}
