//! OpenAI's `service_tier` through the real gateway and the official `openai` client: `flex` is
//! served at its cheaper tier's price while capacity is free and refused with 429 and Retry-After
//! while it is dear; `priority` is served ahead of the default tier under load; each answer
//! echoes the tier that served it, and the ledger charges that tier's prices.
//!
//! One tenant (consumer tier) asks for one emulated Llama-2-70B pool (batch capped at 8) in an
//! 8-second burst at over twice its capacity, a mix of default, flex (a tenth of the consumer
//! price) and priority (twenty times it) requests.

mod common;

use serde_json::{json, Value};

const CONFIG: &str = r#"
[admission]
enabled = true
solve_interval_ms = 500
forecast_half_life_s = 3.0
[service_tiers]
flex = "flexible"
priority = "priority"
[[tiers]]
name = "consumer"
input_price_per_1m = 0.5
output_price_per_1m = 1.5
ttft_slo_ms = 5000
[[tiers]]
name = "flexible"
input_price_per_1m = 0.05
output_price_per_1m = 0.15
ttft_slo_ms = 5000
[[tiers]]
name = "priority"
input_price_per_1m = 10.0
output_price_per_1m = 30.0
ttft_slo_ms = 5000
[[tenants]]
name = "con"
tier = "consumer"
"#;

async fn chat(base: &str, key: &str, service_tier: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "big", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8,
            "ignore_eos": true, "service_tier": service_tier}))
        .send()
        .await
        .unwrap()
}

/// Share of `kind`'s requests refused with 429, and how many were sent.
fn refused(results: &[Value], kind: &str) -> (f64, usize) {
    let rs: Vec<&Value> = results.iter().filter(|r| r["tenant"] == kind).collect();
    let n = rs.iter().filter(|r| r["status"] == 429).count();
    (n as f64 / rs.len().max(1) as f64, rs.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flex_yields_priority_leads_and_both_are_charged_their_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let (big, path) = common::test_profile("llama2-70b-h100-tp4", "big", 8, dir.path());
    let emu = common::start_emulator(big, 1, 1.0).await;
    let model = format!(
        "[[models]]\nname = \"big\"\nbackends = [\"big\"]\n[models.capacity]\nprofile = \"{path}\"\nreplicas = 1\n"
    );
    let gw = common::start_gateway(&format!("{}{model}{CONFIG}", common::backend("big", &emu.base, ""))).await;
    let key = gw.key("con").await;

    // Capacity is free: flex is served, and says so.
    let r = chat(&gw.base, &key, "flex").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tollgate-service-tier"], "flex");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["service_tier"], "flex", "{body}");
    // Streamed, every chunk names it, as OpenAI's do.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&key)
        .json(&json!({"model": "big", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4,
            "stream": true, "service_tier": "flex"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: ").filter(|d| *d != "[DONE]"))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(!chunks.is_empty() && chunks.iter().all(|c| c["service_tier"] == "flex"), "{text}");
    // A name OpenAI does not define is a 400 naming the field.
    let r = chat(&gw.base, &key, "scale").await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["param"], "service_tier", "{e}");

    // The burst, through the official client: three streams of requests under one key.
    let plan = json!({
        "keys": {"std": key, "flex": key, "prio": key}, "model": "big", "max_tokens": 32,
        "timeout_s": {"std": 15, "flex": 15, "prio": 15}, "stream": {},
        "service_tier": {"std": "default", "flex": "flex", "prio": "priority"},
        "phases": [{"seconds": 8, "rates": {"std": 16, "flex": 4, "prio": 3}}],
    });
    let results = common::overload(&gw.base, &plan).await;
    let (std, flex, prio) = (refused(&results, "std"), refused(&results, "flex"), refused(&results, "prio"));
    eprintln!("refused: default {std:?}, flex {flex:?}, priority {prio:?}");
    assert!(std.0 > 0.0, "the burst must make capacity dear: {std:?}");
    assert!(flex.0 > std.0, "flex yields first: flex {flex:?}, default {std:?}");
    assert!(prio.0 < std.0, "priority is served ahead of default: priority {prio:?}, default {std:?}");
    for r in &results {
        if r["tenant"] == "flex" && r["status"] == 429 {
            assert!(r["retry_after"].as_str().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1), "{r}");
        }
        if r["status"] == 200 {
            let want = match r["tenant"].as_str() {
                Some("flex") => "flex",
                Some("prio") => "priority",
                _ => "default",
            };
            assert_eq!(r["service_tier"], want, "{r}");
        }
    }

    // The load drains and the price falls back (downward corrections are damped, so this takes
    // a few seconds): flex is served again. Each refused try is a ledger row too.
    let mut tries = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let r = chat(&gw.base, &key, "flex").await;
        tries += 1;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429, "{:?}", r.headers());
        assert!(std::time::Instant::now() < deadline, "flex still refused 30 s after the burst: {:?}", r.headers());
    }

    // Each answer is charged its own tier's prices (flex a tenth and priority twenty times what
    // the default tier pays).
    let ledger = gw.stop_and_ledger().await;
    assert_eq!(ledger.len(), results.len() + 3 + tries, "one ledger row per request");
    let at = |price_in: f64| {
        move |l: &tollgate::metering::LedgerRow| {
            let paid =
                l.revenue_usd / ((l.input_tokens as f64 * price_in + l.output_tokens as f64 * 3.0 * price_in) / 1e6);
            (paid - 1.0).abs() < 1e-6
        }
    };
    let (n_flex, n_prio, n_std) = (
        ledger.iter().filter(|l| l.status == 200 && at(0.05)(l)).count(),
        ledger.iter().filter(|l| l.status == 200 && at(10.0)(l)).count(),
        ledger.iter().filter(|l| l.status == 200 && at(0.5)(l)).count(),
    );
    let served = |k: &str| results.iter().filter(|r| r["tenant"] == k && r["status"] == 200).count();
    assert_eq!(n_flex, served("flex") + 3, "flex rows charged at the flexible tier");
    assert_eq!(n_prio, served("prio"), "priority rows charged at the priority tier");
    assert_eq!(n_std, served("std"), "default rows charged at the consumer tier");
    // And each row names the service tier it was served at.
    let named = |t: &str| ledger.iter().filter(|l| l.status == 200 && l.service_tier.as_deref() == Some(t)).count();
    assert_eq!((named("flex"), named("priority"), named("default")), (n_flex, n_prio, n_std));
}
