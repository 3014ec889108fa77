//! Traces over OTLP: a `tollgate serve` process whose configuration names an OTLP/HTTP endpoint
//! exports one span tree per request. The receiver here is built on the official protobuf
//! definitions (`opentelemetry-proto`), decodes what arrives, and checks the tree of a whole and
//! a streamed chat request: the request span with its GenAI attributes, and under it one span
//! per stage.

mod common;

use axum::http::{header, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate::capacity::Profile;

fn attr(span: &Span, key: &str) -> Option<Any> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).and_then(|v| v.value)
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attr(span, key)? {
        Any::StringValue(s) => Some(s),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(span, key)? {
        Any::IntValue(i) => Some(i),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_one_span_tree_with_genai_attributes() {
    // The receiver: OTLP/HTTP with protobuf bodies, as a Collector's would be.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Span>();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            let _ = tx.send(s);
                        }
                    }
                }
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}/v1/traces", receiver.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(receiver, app).await.unwrap() });

    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 100.0).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::llama::free_port();
    let config = format!(
        "data_dir = \"{data}\"\n[tracing]\notlp_endpoint = \"{otlp}\"\nexport_interval_ms = 200\n{backend}\
         [[models]]\nname = \"m\"\nbackends = [\"e\"]\ncapacity = {{ profile = \"llama3-8b-h100-tp1\", replicas = 1 }}\n{tenants}",
        data = dir.path().display(),
        backend = common::backend("e", &emu.base, ""),
        tenants = common::TIERS_AND_TENANTS,
    );
    let cfg_path = dir.path().join("tollgate.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(["serve", "--config", cfg_path.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .env("TOLLGATE_ADMIN_KEY", common::ADMIN_KEY);
    let (mut child, log) = common::process::spawn_logged(&mut cmd, "tollgate-serve-otlp");
    let base = format!("http://127.0.0.1:{port}");
    let health = format!("{base}/health");
    tokio::task::block_in_place(|| {
        let c = reqwest::blocking::Client::new();
        common::process::wait_ready(&mut child, "tollgate serve", &log, Duration::from_secs(30), || {
            c.get(&health).send().map(|r| r.status() == 200).unwrap_or(false)
        })
    });
    let key =
        common::post_json(&format!("{base}/v1/tollgate/keys"), Some(common::ADMIN_KEY), &json!({"tenant": "acme"}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_string();
    let client = reqwest::Client::new();
    for stream in [false, true] {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "tell me a story"}],
                          "max_tokens": 5, "ignore_eos": true, "stream": stream});
        let r = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-request-id", format!("trace-{stream}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
    }

    // Collect spans until both requests' trees are complete (the relay span ends last).
    let mut spans: Vec<Span> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let complete = |spans: &[Span]| {
        let roots: Vec<&Span> = spans.iter().filter(|s| s.parent_span_id.is_empty()).collect();
        roots.len() >= 2
            && roots.iter().all(|r| spans.iter().any(|s| s.name == "relay" && s.parent_span_id == r.span_id))
    };
    while !complete(&spans) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "spans received: {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
        if let Ok(Some(s)) = tokio::time::timeout(left, rx.recv()).await {
            spans.push(s);
        }
    }
    let _ = child.kill();

    let roots: Vec<&Span> = spans.iter().filter(|s| s.parent_span_id.is_empty()).collect();
    assert_eq!(roots.len(), 2, "one root span per request");
    for root in roots {
        let children: Vec<&Span> = spans.iter().filter(|s| s.parent_span_id == root.span_id).collect();
        let names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
        println!("{} [{}] -> {:?}", root.name, text(root, "tollgate.request_id").unwrap_or_default(), names);
        assert_eq!(root.name, "/v1/chat/completions");
        for stage in ["classify", "cache", "admit", "send", "relay"] {
            assert_eq!(
                names.iter().filter(|n| **n == stage).count(),
                1,
                "one {stage} span under the request: {names:?}"
            );
        }
        assert!(children.iter().all(|s| s.trace_id == root.trace_id), "one trace per request");
        assert!(children.iter().all(|s| s.start_time_unix_nano >= root.start_time_unix_nano));
        assert_eq!(text(root, "gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(text(root, "gen_ai.request.model").as_deref(), Some("m"));
        assert_eq!(text(root, "gen_ai.response.model").as_deref(), Some("m"));
        assert!(int(root, "gen_ai.usage.input_tokens").unwrap_or(0) > 0);
        assert_eq!(int(root, "gen_ai.usage.output_tokens"), Some(5));
        assert_eq!(text(root, "tollgate.tenant").as_deref(), Some("acme"));
        assert_eq!(text(root, "tollgate.decision").as_deref(), Some("admit"));
        assert!(matches!(attr(root, "tollgate.price"), Some(Any::DoubleValue(p)) if p >= 0.0));
        assert_eq!(int(root, "http.response.status_code"), Some(200));
    }
    // The prompt is never exported: no attribute of any span holds it.
    let everything: HashMap<&str, String> =
        spans.iter().flat_map(|s| s.attributes.iter().map(|a| (a.key.as_str(), format!("{:?}", a.value)))).collect();
    assert!(everything.values().all(|v| !v.contains("tell me a story")), "a prompt was exported");
}
