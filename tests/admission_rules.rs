//! Admission rules at the gateway: gated models, the tier's context limit, budgets, refusals with
//! a quote and Retry-After, the decision headers and the price board.

mod common;

use serde_json::{json, Value};
use tollgate::capacity::Profile;

async fn post(base: &str, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gating_context_budget_quotes_and_the_price_board() {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p.clone(), 1, 50.0).await;
    let mut q = p.clone();
    q.model = "secret".into();
    let emu2 = common::start_emulator(q, 1, 50.0).await;
    let cfg = format!(
        r#"{}{}
[[models]]
name = "m"
backends = ["e"]
capacity = {{ profile = "llama3-8b-h100-tp1", replicas = 1, queue_window_s = 0.05 }}
[[models]]
name = "secret"
backends = ["s"]
allowed_tenants = ["acme"]
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
max_context_tokens = 200
[[tiers]]
name = "tiny"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "acme"
tier = "standard"
[[tenants]]
name = "other"
tier = "standard"
[[tenants]]
name = "bulk"
tier = "tiny"
[[tenants]]
name = "broke"
tier = "tiny"
monthly_budget_usd = 0.000001
"#,
        common::backend("e", &emu.base, ""),
        common::backend("s", &emu2.base, "")
    );
    let gw = common::start_gateway(&cfg).await;
    let (acme, other, broke, bulk) =
        (gw.key("acme").await, gw.key("other").await, gw.key("broke").await, gw.key("bulk").await);
    let msg = |text: &str, max: u32| json!({"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": max, "ignore_eos": true});

    // A gated model is invisible and refused to others.
    let models = common::get_json(&format!("{}/v1/models", gw.base), Some(&other)).await;
    assert!(!models.to_string().contains("secret"));
    let r = post(&gw.base, &other, json!({"model": "secret", "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status(), 403);
    let r = post(
        &gw.base,
        &acme,
        json!({"model": "secret", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}),
    )
    .await;
    assert_eq!(r.status(), 200);

    // Admitted requests say so, with the price.
    let r = post(&gw.base, &acme, msg("hello", 4)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tollgate-decision"], "admit");
    assert!(r.headers()["x-tollgate-price"].to_str().unwrap().parse::<f64>().unwrap() >= 0.0);

    // Over the tier's context limit: a clear 400.
    let r = post(&gw.base, &acme, msg(&"word ".repeat(400), 4)).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "context_length_exceeded");

    // A tenant at its budget gets 429 insufficient_quota.
    let r = post(&gw.base, &broke, msg("hi", 500)).await;
    assert_eq!(r.status(), 429);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "insufficient_quota");

    // The pool holds only 0.05 s of work in flight: a 3,000-token prompt does not fit and is
    // refused with a quote and Retry-After.
    let r = post(&gw.base, &bulk, msg(&"word ".repeat(3000), 4)).await;
    assert_eq!(r.status(), 429, "{:?}", r.headers());
    assert_eq!(r.headers()["x-tollgate-decision"], "refuse");
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(r.headers()["x-tollgate-quote-per-1k"].to_str().unwrap().parse::<f64>().unwrap() >= 0.0);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "capacity_priced");

    // The price board is published for the admin.
    let board = common::get_json(&format!("{}/v1/tollgate/prices", gw.base), Some(&gw.admin)).await;
    assert_eq!(board["enabled"], true);
    assert_eq!(board["live"][0]["pool"], "m");
    let rows = gw.ledger(6).await;
    let decisions: Vec<&str> = rows.iter().map(|r| r["decision"].as_str().unwrap()).collect();
    assert!(decisions.contains(&"refuse") && decisions.contains(&"admit"), "{decisions:?}");

    // Prometheus metrics: admin only; request and token series equal the ledger's.
    let url = format!("{}/metrics", gw.base);
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(client.get(&url).bearer_auth(&acme).send().await.unwrap().status(), 401);
    let r = client.get(&url).bearer_auth(&gw.admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let sum = |name: &str, filter: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(sum("tollgate_requests_total{", ""), rows.len() as f64, "{text}");
    let refused = rows.iter().filter(|r| r["decision"] == "refuse").count() as f64;
    assert_eq!(sum("tollgate_requests_total{", "decision=\"refuse\""), refused);
    let ledger_in: i64 = rows.iter().map(|r| r["input_tokens"].as_i64().unwrap()).sum();
    let ledger_out: i64 = rows.iter().map(|r| r["output_tokens"].as_i64().unwrap()).sum();
    assert_eq!(sum("tollgate_tokens_total{", "kind=\"input\""), ledger_in as f64);
    assert_eq!(sum("tollgate_tokens_total{", "kind=\"output\""), ledger_out as f64);
    assert_eq!(sum("tollgate_request_duration_seconds_count{", ""), rows.len() as f64);
    for series in [
        "tollgate_pool_utilisation_ratio{pool=\"m\"}",
        "tollgate_pool_price_usd_per_engine_second{pool=\"m\"}",
        "tollgate_backend_up{backend=\"e\"} 1",
        "tollgate_backend_circuit_open{backend=\"s\"} 0",
        "tollgate_ledger_queue_rows",
        "tollgate_lp_solve_seconds",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    assert_eq!(gw.stop_and_count().await, 6);
}
