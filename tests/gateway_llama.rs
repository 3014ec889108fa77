//! The gateway in front of a real llama.cpp `llama-server` (which closes the connection after
//! every streamed response), through the official `openai` client: the tiny random model for
//! many requests, and SmolLM2-135M for one real end-to-end exchange.

mod common;

use common::calls;
use common::llama::{llama_server, tiny_gguf};
use serde_json::json;

fn config(url: &str, model: &str) -> String {
    // Default keep_alive: the gateway must cope with llama-server closing pooled connections.
    format!(
        "{}[[models]]\nname = \"{model}\"\nbackends = [\"llama\"]\n{}",
        common::backend("llama", url, ""),
        common::TIERS_AND_TENANTS
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_completions_through_llama_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = tokio::task::block_in_place(|| llama_server(&tiny_gguf(dir.path()), 2, 4096));
    let gw = common::start_gateway(&config(&url, "tiny")).await;
    let key = gw.key("acme").await;
    let res = calls(
        &gw.base,
        &key,
        json!([{"model": "tiny", "stream": true, "max_tokens": 16, "repeat": 8}, {"model": "tiny", "max_tokens": 16, "repeat": 8},
               {"model": "tiny", "stream": true, "max_tokens": 16, "repeat": 4}]),
    )
    .await;
    assert_eq!(res.len(), 20);
    for r in &res {
        assert_eq!(r["ok"], true, "{r}");
        assert!(!r["text"].as_str().unwrap().is_empty(), "{r}");
    }
    let rows = gw.ledger(20).await;
    for r in &rows {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["output_tokens"], 16, "{r}");
        assert_eq!(r["tokens_estimated"], false, "llama-server reports usage: {r}");
    }
    assert_eq!(gw.stop_and_count().await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_end_to_end() {
    let (_server, url) =
        tokio::task::block_in_place(|| llama_server(&common::prepared("TOLLGATE_SMOLLM2_GGUF"), 1, 2048));
    let gw = common::start_gateway(&config(&url, "smollm2")).await;
    let key = gw.key("acme").await;
    let res = calls(
        &gw.base,
        &key,
        json!([{"model": "smollm2", "max_tokens": 12}, {"model": "smollm2", "stream": true, "max_tokens": 12}]),
    )
    .await;
    for r in &res {
        assert_eq!(r["ok"], true, "{r}");
        assert!(r["text"].as_str().unwrap().trim().len() > 3, "a real model writes text: {r}");
    }
    let rows = gw.ledger(2).await;
    assert!(rows
        .iter()
        .all(|r| r["status"] == 200 && r["output_tokens"] == 12 && r["value_usd"].as_f64().unwrap() > 0.0));
    assert_eq!(gw.stop_and_count().await, 2);
}
