//! A batch yields to interactive load and fills the valleys: one emulated Llama-2-70B engine
//! (batch capped at 8) with a cheaper fallback, interactive tenants (enterprise, streaming, TTFT
//! target 2 s; consumer) offered in a 10-second burst at over twice the engine's capacity and then
//! a 12-second valley (official `openai` client), and a batch of 48 lines submitted as the burst
//! starts, at a deferrable batch tier at half the consumer price. Lines admitted while the engine
//! is still idle run at once; then lines wait for their price while the burst lasts and run in
//! the valley; every line completes, with one ledger row each, and enterprise keeps its target.

mod common;

use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_yields_to_a_burst_and_fills_the_valley() {
    let dir = tempfile::tempdir().unwrap();
    let (_emulators, pools) = common::big_and_small(dir.path()).await;
    let config = format!(
        r#"
[admission]
solve_interval_ms = 500
forecast_half_life_s = 3.0
[service_tiers]
batch = "batch"
[batches]
concurrency = 8
{pools}
[[tiers]]
name = "batch"
input_price_per_1m = 0.25
output_price_per_1m = 0.75
deferrable = true
deadline_ms = 3000
[[tenants]]
name = "ent"
tier = "enterprise"
[[tenants]]
name = "con"
tier = "consumer"
"#
    );
    let gw = common::start_gateway(&config).await;
    let (ent, con) = (gw.key("ent").await, gw.key("con").await);
    // The consumer tenant's batch: 48 lines for `big`.
    let text: String = (0..48)
        .map(|i| {
            json!({"custom_id": format!("b{i}"), "method": "POST", "url": "/v1/chat/completions",
                   "body": {"model": "big", "messages": [{"role": "user", "content": format!("batch {i}")}],
                            "max_tokens": 32, "ignore_eos": true}})
            .to_string()
                + "\n"
        })
        .collect();
    let start_ms = tollgate::units::unix_ms();
    let b = common::submit_batch(&gw.base, &con, text).await;
    let id = b["id"].as_str().unwrap().to_string();
    let burst = json!({"seconds": 10, "rates": {"ent": 3, "con": 16}});
    let valley = json!({"seconds": 12, "rates": {"ent": 1}});
    let plan = json!({
        "keys": {"ent": ent, "con": con}, "model": "big", "max_tokens": 32,
        "timeout_s": {"ent": 10, "con": 10}, "stream": {"ent": true},
        "phases": [burst, valley],
    });
    let results = common::overload(&gw.base, &plan).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let done = loop {
        let b = common::get_json(&format!("{}/v1/batches/{id}", gw.base), Some(&con)).await;
        if b["status"] == "completed" || std::time::Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rows = gw.stop_and_ledger().await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"]["completed"], 48, "{done}");
    let lines: Vec<_> = rows.iter().filter(|r| r.service_tier.as_deref() == Some("batch")).collect();
    assert_eq!(lines.len(), 48, "one ledger row per line");
    assert!(lines.iter().all(|r| r.status == 200 && r.model_served.as_deref() == Some("big")));
    assert_eq!(rows.len(), 48 + results.len(), "and one per interactive request");
    // When the lines finished: during the burst (the first 10 s) and in the valley (the next 12).
    let at = |r: &&&tollgate::metering::LedgerRow| (r.finished_at_ms - start_ms) as f64 / 1e3;
    let in_burst = lines.iter().filter(|r| at(r) < 10.0).count();
    let in_valley = lines.iter().filter(|r| (10.0..22.0).contains(&at(r))).count();
    let deferred = lines.iter().filter(|r| r.decision == "defer").count();
    let ent_ttft: Vec<f64> =
        results.iter().filter(|x| x["tenant"] == "ent").filter_map(|x| x["ttft"].as_f64()).collect();
    let ent_served = results.iter().filter(|x| x["tenant"] == "ent" && x["status"] == 200).count();
    let report = format!(
        "batch lines finished: {in_burst} in the 10 s burst ({:.2}/s), {in_valley} in the 12 s valley ({:.2}/s), {} after; \
         {deferred} waited for their price; enterprise: {ent_served}/{} served, TTFT max {:.2} s",
        in_burst as f64 / 10.0,
        in_valley as f64 / 12.0,
        48 - in_burst - in_valley,
        ent_ttft.len(),
        ent_ttft.iter().cloned().fold(0.0, f64::max)
    );
    let mut per_s = [0usize; 30];
    for r in lines.iter() {
        per_s[(at(&r).max(0.0) as usize).min(29)] += 1;
    }
    println!("{report}\nlines finished per second: {per_s:?}");
    // Lines admitted while the engine was still idle finish in the burst's first seconds; from
    // then on the burst has the engine (measured in three runs: 0-1 finished in seconds 3-8,
    // 0-2 in its last second as it ends), and the valley runs what waited (31-33 of 48).
    let mid_burst: usize = per_s[3..9].iter().sum();
    assert!(mid_burst <= 3, "{report}\n{per_s:?}");
    assert!(in_valley >= 24, "{report}\n{per_s:?}");
    assert!(deferred > 0, "{report}");
    assert_eq!(ent_served, ent_ttft.len(), "{report}");
    assert!(ent_ttft.iter().filter(|&&t| t < 2.0).count() * 20 >= ent_ttft.len() * 19, "{report}");
}
