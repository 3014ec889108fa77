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

/// Sends `total` requests for `model` from `concurrency` clients at once; each is served or
/// refused with 429.
async fn flood(gw: &common::TestGateway, key: &str, model: &str, body: Value, total: usize, concurrency: usize) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, base, key, body) = (next.clone(), gw.base.clone(), key.to_string(), body.clone());
        let mut body = body;
        body["model"] = json!(model);
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let s = post(&base, &key, body.clone()).await.status().as_u16();
                assert!(s == 200 || s == 429, "status {s}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn spent(rows: &[Value], tenant: &str) -> (f64, f64, usize) {
    let ok: Vec<&Value> = rows.iter().filter(|r| r["tenant"] == tenant && r["status"] == 200).collect();
    let spent = ok.iter().map(|r| r["revenue_usd"].as_f64().unwrap()).sum();
    let dearest = ok.iter().map(|r| r["revenue_usd"].as_f64().unwrap()).fold(0.0, f64::max);
    (spent, dearest, ok.len())
}

/// A tenant with only a monthly budget never spends more than it, however many requests are in
/// flight: the hold counts the prompt and the most the request may generate (`max_tokens`, or
/// the tier's `default_max_tokens`, then sent upstream), on a model with and without capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_only_tenant_never_spends_more_than_its_budget() {
    // 0.01 USD is 100 tokens at this tier's price: not one 2,000-token prompt fits; 0.1 USD
    // fits a few dozen short requests.
    let budget = |i: usize| if i < 2 { 0.01 } else { 0.1 };
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "plain".into();
    let emu = common::start_emulator(p.clone(), 4, 1000.0).await;
    p.model = "managed".into();
    let emu2 = common::start_emulator(p, 4, 1000.0).await;
    let cfg = format!(
        r#"{}{}
[[models]]
name = "plain"
backends = ["e"]
[[models]]
name = "managed"
backends = ["m"]
capacity = {{ profile = "llama3-8b-h100-tp1", replicas = 4 }}
[[tiers]]
name = "dear"
input_price_per_1m = 100.0
output_price_per_1m = 100.0
default_max_tokens = 16
{tenants}
"#,
        common::backend("e", &emu.base, ""),
        common::backend("m", &emu2.base, ""),
        tenants = (0..4)
            .map(|i| format!("[[tenants]]\nname = \"b{i}\"\ntier = \"dear\"\nmonthly_budget_usd = {}\n", budget(i)))
            .collect::<String>()
    );
    let gw = common::start_gateway(&cfg).await;
    let long = "lorem ipsum dolor sit amet ".repeat(400);
    let cases = [
        // The reported case: 2,000-token prompts, 300 requests, 60 at a time.
        ("b0", "plain", json!({"messages": [{"role": "user", "content": long}], "max_tokens": 50, "ignore_eos": true})),
        (
            "b1",
            "managed",
            json!({"messages": [{"role": "user", "content": long}], "max_tokens": 50, "ignore_eos": true}),
        ),
        // Short prompts without max_tokens: the tier's cap bounds the output.
        ("b2", "plain", json!({"messages": [{"role": "user", "content": "hi there"}]})),
        ("b3", "managed", json!({"messages": [{"role": "user", "content": "hi there"}], "ignore_eos": true})),
    ];
    for (tenant, model, body) in &cases {
        let key = gw.key(tenant).await;
        flood(&gw, &key, model, body.clone(), 300, 60).await;
    }
    let rows = gw.ledger(1200).await;
    for (i, (tenant, model, _)) in cases.iter().enumerate() {
        let (spent, dearest, served) = spent(&rows, tenant);
        let b = budget(i);
        println!("{tenant} on {model}: spent {spent:.6} USD of {b} in {served} requests (dearest {dearest:.6})");
        assert!(spent <= b + 1e-6, "{tenant} on {model} overspent: {spent} USD of a {b} USD budget");
    }
    // The short requests fit: the budget was used, and no answer went past the cap.
    for tenant in ["b2", "b3"] {
        let (spent, dearest, served) = spent(&rows, tenant);
        assert!(served > 10 && spent >= 0.1 - 2.0 * dearest, "{tenant}: {served} served, {spent} spent");
        let longest = rows.iter().filter(|r| r["tenant"] == tenant).filter_map(|r| r["output_tokens"].as_i64()).max();
        assert!(longest.unwrap_or(0) <= 16, "{tenant}: an answer of {longest:?} tokens passed the cap of 16");
    }
}
