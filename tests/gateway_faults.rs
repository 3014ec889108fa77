//! Gateway behaviour when upstreams misbehave, seen through the official `openai` client:
//! failover, circuit breakers, a stream cut mid-way, a stalled stream, a client that leaves,
//! and what reaches an upstream (never the client's credentials). Every test checks that the
//! ledger holds exactly one row per request.

mod common;

use common::calls;
use common::stub;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tollgate::capacity::Profile;

fn model(name: &str, backends: &[&str]) -> String {
    let list: Vec<String> = backends.iter().map(|b| format!("\"{b}\"")).collect();
    format!("[[models]]\nname = \"{name}\"\nbackends = [{}]\n", list.join(", "))
}

async fn emulator(name: &str, scale: f64) -> common::RunningEmulator {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = name.into();
    common::start_emulator(p, 1, scale).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_when_a_backend_is_down() {
    let live = emulator("m", 50.0).await;
    // Nothing listens on the dead backend's port.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let cfg = format!(
        "[health]\ninterval_ms = 60000\n[circuit]\nfailure_threshold = 3\n{}{}{}{}",
        common::backend("dead", &dead_url, ""),
        common::backend("live", &live.base, ""),
        model("m", &["dead", "live"]),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    let spec = json!([{"model": "m", "repeat": 12}, {"model": "m", "stream": true, "repeat": 8}]);
    let res = calls(&gw.base, &key, spec).await;
    assert_eq!(res.len(), 20);
    for r in &res {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["backend"], "live", "{r}");
    }
    let rows = gw.ledger(20).await;
    assert!(rows.iter().all(|r| r["status"] == 200 && r["backend"] == "live"));
    // Each request picks one of two backends at random first, so the dead one is tried first by
    // about half of them until its circuit opens after 3 failures; then it is no longer tried.
    let failed_over = rows.iter().filter(|r| r["attempts"] == 2).count();
    assert!((1..=3).contains(&failed_over), "{failed_over} requests failed over");
    let state = gw.handle.gateway.registry.backends[0].circuit_label();
    assert_eq!(state == "open", failed_over == 3, "circuit {state} after {failed_over} failures");
    assert_eq!(gw.stop_and_count().await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_dead_backend_out_and_bring_it_back() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let cfg = format!(
        "[health]\ninterval_ms = 100\ntimeout_ms = 100\n{}{}{}",
        common::backend("b", &format!("http://{addr}"), ""),
        model("m", &["b"]),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let b = gw.handle.gateway.registry.backends[0].clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while b.healthy() {
        assert!(std::time::Instant::now() < deadline, "never marked unhealthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // With its only backend out, a request gets a clear 503 (and a ledger row).
    let key = gw.key("acme").await;
    let res = calls(&gw.base, &key, json!([{"model": "m"}])).await;
    assert_eq!(res[0]["status"], 503, "{}", res[0]);
    // The backend comes up on the same port: the next probe brings it back.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !b.healthy() {
        assert!(std::time::Instant::now() < deadline, "never marked healthy again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.stop_and_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_opens_on_failures_and_closes_after_a_good_probe() {
    let (bad, bad_url) = stub::start().await;
    let good = emulator("m", 50.0).await;
    bad.mode.store(stub::FAIL_500, Ordering::SeqCst);
    let cfg = format!(
        "[circuit]\nfailure_threshold = 3\nopen_ms = 1500\n[health]\ninterval_ms = 60000\n{}{}{}{}",
        common::backend("bad", &bad_url, ""),
        common::backend("good", &good.base, ""),
        model("m", &["bad", "good"]),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    // Every request succeeds (retried on the good backend); the bad one fails three times and opens.
    let res = calls(&gw.base, &key, json!([{"model": "m", "repeat": 20}])).await;
    assert!(res.iter().all(|r| r["ok"] == true));
    let hits_open = bad.stub_hits();
    assert_eq!(hits_open, 3, "the circuit opened after 3 failures; no more traffic reached the bad backend");
    assert_eq!(gw.handle.gateway.registry.backends[0].circuit_label(), "open");
    // After open_ms, one half-open probe; the backend is healthy again, so the circuit closes.
    bad.mode.store(stub::OK, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let res = calls(&gw.base, &key, json!([{"model": "m", "repeat": 20}])).await;
    assert!(res.iter().all(|r| r["ok"] == true));
    assert_eq!(gw.handle.gateway.registry.backends[0].circuit_label(), "closed");
    assert!(bad.stub_hits() > hits_open + 1, "traffic returned to the recovered backend");
    gw.ledger(40).await;
    assert_eq!(gw.stop_and_count().await, 40);
}

trait Hits {
    fn stub_hits(&self) -> u32;
}
impl Hits for stub::Stub {
    fn stub_hits(&self) -> u32 {
        self.hits.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_or_stalled_upstream_ends_with_an_error_event() {
    let (s, url) = stub::start().await;
    let cfg = format!(
        "{}{}{}",
        common::backend("s", &url, "idle_timeout_ms = 500"),
        model("m", &["s"]),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    s.mode.store(stub::CUT_STREAM, Ordering::SeqCst);
    let cut = calls(&gw.base, &key, json!([{"model": "m", "stream": true}])).await;
    s.mode.store(stub::STALL_STREAM, Ordering::SeqCst);
    let stalled = calls(&gw.base, &key, json!([{"model": "m", "stream": true}])).await;
    s.mode.store(stub::OK, Ordering::SeqCst);
    let fine = calls(&gw.base, &key, json!([{"model": "m", "stream": true}])).await;
    // The client saw the two chunks that arrived, then an error (not a hang, not a clean end).
    for r in [&cut[0], &stalled[0]] {
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["text"], " hi hi", "the chunks before the failure arrived");
        assert!(r["error"].as_str().unwrap().len() > 5, "{r}");
    }
    assert_eq!(fine[0]["ok"], true);
    assert_eq!(fine[0]["text"], " hi hi");
    let rows = gw.ledger(3).await;
    let by_status: Vec<i64> = rows.iter().rev().map(|r| r["status"].as_i64().unwrap()).collect();
    assert_eq!(by_status, vec![502, 504, 200], "{rows:?}");
    assert_eq!(rows[0]["output_tokens"], 2, "usage reported by the upstream");
    assert_eq!(gw.stop_and_count().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_cancels_the_upstream_request() {
    let emu = emulator("m", 1.0).await;
    let cfg = format!("{}{}{}", common::backend("e", &emu.base, ""), model("m", &["e"]), common::TIERS_AND_TENANTS);
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    let res =
        calls(&gw.base, &key, json!([{"model": "m", "stream": true, "max_tokens": 4000, "read_chunks": 3}])).await;
    assert_eq!(res[0]["ok"], true);
    // The emulator stops generating for it: nothing left running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = reqwest::get(format!("{}/metrics", emu.base)).await.unwrap().text().await.unwrap();
        let running: f64 = m
            .lines()
            .filter(|l| l.starts_with("vllm:num_requests_running"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        if running == 0.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "upstream request still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = gw.ledger(1).await;
    assert_eq!(rows[0]["status"], 499);
    assert_eq!(rows[0]["outcome"], "client_closed");
    assert!(rows[0]["output_tokens"].as_i64().unwrap() >= 1, "tokens generated before leaving are metered");
    assert_eq!(gw.stop_and_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_get_their_own_key_and_the_untouched_body_never_the_clients_credentials() {
    let (s, url) = stub::start().await;
    std::env::set_var("TOLLGATE_TEST_UPSTREAM_KEY", "upstream-secret");
    let cfg = format!(
        "{}[[models]]\nname = \"public\"\nupstream_model = \"private-name\"\nbackends = [\"s\"]\n{}",
        common::backend("s", &url, "api_key_env = \"TOLLGATE_TEST_UPSTREAM_KEY\""),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    let body = json!({"model": "public", "messages": [{"role": "user", "content": "x"}], "stream": true,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "tool_choice": "auto",
        "logprobs": true, "n": 1, "seed": 9, "stop": ["."], "response_format": {"type": "json_object"}, "vendor_x": [1, 2]});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&key)
        .header("cookie", "session=abc")
        .header("x-api-key", "client-other-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("\"choices\":[]"), "usage-only chunk withheld: the client did not ask for it");
    let headers = s.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(headers["authorization"], "Bearer upstream-secret");
    for h in ["cookie", "x-api-key"] {
        assert!(headers.get(h).is_none(), "{h} was forwarded");
    }
    assert!(!format!("{headers:?}").contains(&key), "the client's key reached the upstream");
    let sent = s.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["model"], "private-name");
    assert_eq!(sent["stream_options"]["include_usage"], true);
    for f in ["tools", "tool_choice", "logprobs", "n", "seed", "stop", "response_format", "vendor_x", "messages"] {
        assert_eq!(sent[f], body[f], "{f} changed on the way");
    }
    // A 429 from the only backend is passed back as a 429 with its Retry-After, still one row.
    s.mode.store(stub::RATE_LIMITED, Ordering::SeqCst);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&key)
        .json(&json!({"model": "public", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let rows = gw.ledger(2).await;
    assert_eq!(rows[0]["status"], 429, "{rows:?}");
    assert_eq!(rows[1]["status"], 200, "{rows:?}");
    assert_eq!(gw.stop_and_count().await, 2);
}
