//! Emulator behaviour seen over HTTP: timing follows the engine model, disconnects free the
//! engine, request ids are echoed, and unknown routes get OpenAI-shaped errors.

mod common;

use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tollgate::capacity::{Profile, StepWork, DEFAULT_PROFILE};

async fn gauge(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines().filter(|l| l.starts_with(name)).map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_takes_at_least_its_modelled_time() {
    let profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    let scale = 4.0;
    let emu = common::start_emulator(profile.clone(), 1, scale).await;
    let body = json!({"model": profile.model, "prompt": "hello", "max_tokens": 60, "ignore_eos": true});
    let start = Instant::now();
    let r = common::post_json(&format!("{}/v1/completions", emu.base), None, &body).await;
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(r["usage"]["completion_tokens"], 60);
    let prompt = r["usage"]["prompt_tokens"].as_u64().unwrap();
    let prefill =
        StepWork { prefill_tokens: prompt as u32, prefill_pairs: (prompt * prompt) as f64, ..Default::default() };
    let modelled: f64 = profile.step_seconds(&prefill)
        + (1..60)
            .map(|i| {
                profile.step_seconds(&StepWork { decode_seqs: 1, decode_ctx_tokens: prompt + i, ..Default::default() })
            })
            .sum::<f64>();
    // The emulator may run late on a loaded machine but never ahead of the model.
    assert!(elapsed >= 0.95 * modelled / scale, "elapsed {elapsed} < modelled {}", modelled / scale);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_frees_its_batch_slot() {
    let profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    let emu = common::start_emulator(profile.clone(), 1, 1.0).await;
    let client = reqwest::Client::new();
    let body = json!({"model": profile.model, "messages": [{"role": "user", "content": "long"}], "max_tokens": 5000, "ignore_eos": true, "stream": true});
    let mut streams = Vec::new();
    for _ in 0..3 {
        let resp = client.post(format!("{}/v1/chat/completions", emu.base)).json(&body).send().await.unwrap();
        let mut s = resp.bytes_stream();
        s.next().await.unwrap().unwrap();
        streams.push(s);
    }
    assert_eq!(gauge(&emu.base, "vllm:num_requests_running").await, 3.0);
    drop(streams);
    let deadline = Instant::now() + Duration::from_secs(10);
    while gauge(&emu.base, "vllm:num_requests_running").await > 0.0 {
        assert!(Instant::now() < deadline, "aborted requests still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gauge(&emu.base, "vllm:gpu_cache_usage_perc").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_and_unknown_routes_are_openai_errors() {
    let profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    let emu = common::start_emulator(profile.clone(), 1, 50.0).await;
    let client = reqwest::Client::new();
    let body = json!({"model": profile.model, "prompt": "x", "max_tokens": 2});
    let r = client
        .post(format!("{}/v1/completions", emu.base))
        .header("x-request-id", "abc-123")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = client.get(format!("{}/v1/nothing", emu.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unknown_url");
    let r = client.get(format!("{}/health", emu.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_batch_wait_and_are_reported_waiting() {
    let mut profile = Profile::builtin(DEFAULT_PROFILE).unwrap();
    profile.max_batch = 2;
    let emu = common::start_emulator(profile.clone(), 1, 1.0).await;
    let client = reqwest::Client::new();
    let body = json!({"model": profile.model, "prompt": "x", "max_tokens": 3000, "ignore_eos": true, "stream": true});
    let mut held = Vec::new();
    for _ in 0..5 {
        let c = client.clone();
        let (url, body) = (format!("{}/v1/completions", emu.base), body.clone());
        held.push(tokio::spawn(async move { c.post(url).json(&body).send().await.unwrap().bytes().await }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (run, wait) =
            (gauge(&emu.base, "vllm:num_requests_running").await, gauge(&emu.base, "vllm:num_requests_waiting").await);
        if run == 2.0 && wait == 3.0 {
            break;
        }
        assert!(Instant::now() < deadline, "running {run} waiting {wait}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for h in held {
        h.abort();
    }
}
