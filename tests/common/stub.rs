//! A scriptable OpenAI-compatible upstream for fault tests: it can answer normally, fail with a
//! status, cut a stream halfway, or stall; it counts hits and records what it received.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const OK: u8 = 0;
pub const FAIL_500: u8 = 1;
pub const CUT_STREAM: u8 = 2;
pub const STALL_STREAM: u8 = 3;
pub const RATE_LIMITED: u8 = 4;
/// Answers with a call of the tool `weather` for Paris (whole, or streamed in pieces).
pub const TOOL_CALL: u8 = 5;

#[derive(Default)]
pub struct Stub {
    pub mode: AtomicU8,
    pub hits: AtomicU32,
    pub last_headers: Mutex<Option<HeaderMap>>,
    pub last_body: Mutex<Option<serde_json::Value>>,
    /// Every body received, in order.
    pub bodies: Mutex<Vec<serde_json::Value>>,
}

const CHUNK: &str = r#"data: {"id":"s","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}"#;

async fn chat(State(s): State<Arc<Stub>>, headers: HeaderMap, body: Bytes) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let stream = v["stream"].as_bool().unwrap_or(false);
    *s.last_headers.lock().unwrap() = Some(headers);
    s.bodies.lock().unwrap().push(v.clone());
    *s.last_body.lock().unwrap() = Some(v);
    match s.mode.load(Ordering::SeqCst) {
        FAIL_500 => (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":{"message":"boom","type":"server_error"}}"#).into_response(),
        RATE_LIMITED => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], r#"{"error":{"message":"slow down"}}"#).into_response(),
        TOOL_CALL if stream => {
            let pieces = [
                r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":""}}]}"#,
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#,
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#,
            ];
            let mut body = String::new();
            for p in pieces {
                body += &format!("data: {{\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{p},\"finish_reason\":null}}]}}\n\n");
            }
            body += "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n";
            body += "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":8,\"total_tokens\":38}}\n\ndata: [DONE]\n\n";
            ([("content-type", "text/event-stream")], body).into_response()
        }
        TOOL_CALL => (
            [("content-type", "application/json")],
            r#"{"id":"s","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":30,"completion_tokens":8,"total_tokens":38}}"#,
        )
            .into_response(),
        mode if stream => {
            let cut = mode == CUT_STREAM;
            let stall = mode == STALL_STREAM;
            let body = async_stream(cut, stall);
            ([("content-type", "text/event-stream")], Body::from_stream(body)).into_response()
        }
        _ => (
            [("content-type", "application/json")],
            r#"{"id":"s","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        )
            .into_response(),
    }
}

fn async_stream(cut: bool, stall: bool) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(0u32, move |i| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match i {
            0 | 1 => Some((Ok(Bytes::from(format!("{CHUNK}\n\n"))), i + 1)),
            2 if cut => Some((Err(std::io::Error::other("cut")), 99)),
            2 if stall => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                None
            }
            2 => Some((
                Ok(Bytes::from(
                    "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\ndata: [DONE]\n\n",
                )),
                3,
            )),
            _ => None,
        }
    })
}

/// Starts the stub; returns it and its base URL.
pub async fn start() -> (Arc<Stub>, String) {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/health", get(|| async { StatusCode::OK }))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (stub, base)
}

/// The fleet the translation tests use: an emulated `llama3-8b` (text) and a model `tools` served
/// by a stub that always calls the tool `weather` for Paris. Returns the emulator, the stub and
/// the gateway configuration (with the common tiers and tenants).
pub async fn text_and_tools() -> (super::RunningEmulator, Arc<Stub>, String) {
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = super::start_emulator(small, 1, 20.0).await;
    let (tools, tools_url) = start().await;
    tools.mode.store(TOOL_CALL, Ordering::SeqCst);
    let config = format!(
        "{}{}\n[[models]]\nname = \"llama3-8b\"\nbackends = [\"emu\"]\n[[models]]\nname = \"tools\"\nbackends = [\"stub\"]\n{}",
        super::backend("emu", &emu.base, ""),
        super::backend("stub", &tools_url, ""),
        super::TIERS_AND_TENANTS
    );
    (emu, tools, config)
}

/// Asserts that a tool's result, sent back through a translated API, reached the stub as chat:
/// the question, the call on the assistant turn, the result (`18C, clear`) as a `tool` message
/// answering it, and the tool's schema.
pub fn assert_tool_result_as_chat(body: &serde_json::Value) {
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{body}");
    assert_eq!(msgs[1]["tool_calls"][0]["function"]["name"], "weather");
    assert_eq!(msgs[2]["role"], "tool");
    assert_eq!(msgs[2]["tool_call_id"], msgs[1]["tool_calls"][0]["id"]);
    assert_eq!(msgs[2]["content"], "18C, clear");
    assert_eq!(body["tools"][0]["function"]["parameters"]["required"][0], "city");
}
