//! Bid-price admission under a 2x overload, through the real gateway and the `openai` client.
//!
//! Two emulated pools: `big` (Llama-2-70B on H100 TP4, batch capped at 8) and `small` (Llama-3-8B
//! on one H100, batch 4), the cheaper fallback keeping 30% of the value. Three tenants ask for
//! `big`: enterprise (high value, streaming, TTFT target 2 s), consumer (low value) and batch
//! (deferrable, 30 s deadline, half the consumer price). The load comes in two 8-second bursts at
//! over twice `big`'s capacity, each followed by a 6-second valley. The same load is offered twice: with admission,
//! and with admission off (first come, first served); the ledger says what each served.

mod common;

use serde_json::{json, Value};

struct Run {
    results: Vec<Value>,
    ledger: Vec<tollgate::metering::LedgerRow>,
}

async fn run(admission: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (_emulators, pools) = common::big_and_small(dir.path()).await;
    let config = format!(
        r#"
[admission]
enabled = {admission}
solve_interval_ms = 500
forecast_half_life_s = 3.0
{pools}
[[tiers]]
name = "batch"
input_price_per_1m = 0.25
output_price_per_1m = 0.75
deferrable = true
deadline_ms = 30000
[[tenants]]
name = "ent"
tier = "enterprise"
[[tenants]]
name = "con"
tier = "consumer"
[[tenants]]
name = "bat"
tier = "batch"
"#
    );
    let gw = common::start_gateway(&config).await;
    let keys = json!({"ent": gw.key("ent").await, "con": gw.key("con").await, "bat": gw.key("bat").await});
    let burst = json!({"seconds": 8, "rates": {"ent": 3, "con": 16, "bat": 2}});
    let valley = json!({"seconds": 6, "rates": {"ent": 1}});
    let plan = json!({
        "keys": keys, "model": "big", "max_tokens": 32,
        "timeout_s": {"ent": 10, "con": 10, "bat": 45}, "stream": {"ent": true, "bat": true},
        "phases": [burst, valley, burst, valley],
    });
    let results = common::overload(&gw.base, &plan).await;
    let ledger = gw.stop_and_ledger().await;
    assert_eq!(ledger.len(), results.len(), "one ledger row per request");
    Run { results, ledger }
}

/// TTFT targets of the tiers, seconds: a response later than its tenant's target earns nothing
/// (an interactive user has given up); batch has a deadline instead.
fn ttft_target(tenant: &str) -> f64 {
    match tenant {
        "ent" => 2.0,
        "con" => 5.0,
        _ => f64::INFINITY,
    }
}

/// Value captured: the value of responses served within their tenant's target.
fn value_served(r: &Run) -> f64 {
    r.ledger
        .iter()
        .filter(|l| l.status == 200 && l.ttft_ms.is_some_and(|t| t / 1e3 <= ttft_target(&l.tenant)))
        .map(|l| l.value_usd)
        .sum()
}

fn of<'a>(r: &'a Run, tenant: &str) -> Vec<&'a Value> {
    r.results.iter().filter(|x| x["tenant"] == tenant).collect()
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * 0.95).round() as usize).copied().unwrap_or(f64::NAN)
}

fn summary(name: &str, r: &Run) -> String {
    let mut s = format!("{name}: value served {:.6} USD\n", value_served(r));
    for t in ["ent", "con", "bat"] {
        let rs = of(r, t);
        let ok = rs.iter().filter(|x| x["status"] == 200).count();
        let ttft: Vec<f64> = rs.iter().filter_map(|x| x["ttft"].as_f64()).collect();
        let count = |d: &str| rs.iter().filter(|x| x["decision"] == d).count();
        s += &format!(
            "  {t}: {} sent, {ok} served (admit {}, downgrade {}, defer {}), {} refused, {} failed; TTFT p95 {:.2} s; e2e max {:.1} s\n",
            rs.len(),
            count("admit"),
            count("downgrade"),
            count("defer"),
            rs.iter().filter(|x| x["status"] == 429).count(),
            rs.iter().filter(|x| x["status"] == -1 || x["status"].as_i64().is_some_and(|s| s >= 500)).count(),
            p95(ttft),
            rs.iter().filter_map(|x| x["e2e"].as_f64()).fold(0.0, f64::max),
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bid_price_admission_beats_fifo_under_twice_the_capacity() {
    let priced = run(true).await;
    let fifo = run(false).await;
    let report = format!("{}{}", summary("bid-price", &priced), summary("fifo", &fifo));
    println!("{report}");

    // Enterprise is served, every request of it within its 2 s TTFT target (the README's words).
    let ent = of(&priced, "ent");
    assert!(ent.iter().all(|x| x["status"] == 200), "{report}");
    let ent_ttft: Vec<f64> = ent.iter().filter_map(|x| x["ttft"].as_f64()).collect();
    assert_eq!(ent_ttft.len(), ent.len(), "every enterprise answer has a TTFT");
    let worst = ent_ttft.iter().cloned().fold(0.0, f64::max);
    println!("enterprise TTFT: p95 {:.3} s, max {worst:.3} s", p95(ent_ttft.clone()));
    assert!(worst < 2.0, "an enterprise request waited {worst} s for its first token\n{report}");
    // Consumer work is downgraded to the small model or refused with a quote.
    let con = of(&priced, "con");
    let downgraded = con.iter().filter(|x| x["decision"] == "downgrade" && x["served_model"] == "small").count();
    let quoted = con
        .iter()
        .filter(|x| x["status"] == 429 && x["quote"].as_str().is_some_and(|q| q.parse::<f64>().unwrap() > 0.0))
        .count();
    assert!(downgraded + quoted >= con.len() / 2, "{report}");
    assert!(downgraded > 0, "{report}");
    // Batch work (streamed, so its first token marks its dispatch) is held during bursts and
    // dispatched before its 30 s deadline, on its model.
    // The deadline bounds the wait (docs/allocator.md), not the completion: a request that
    // clears at 29 s may finish after 30 s (CI saw 30.1 s once). Completion within the window
    // is the Batch API issue's to guarantee.
    let bat = of(&priced, "bat");
    assert!(bat.iter().all(|x| x["status"] == 200 && x["served_model"] == "big"), "{report}");
    assert!(bat.iter().filter(|x| x["decision"] == "defer").count() >= bat.len() / 2, "{report}");
    assert!(bat.iter().all(|x| x["ttft"].as_f64().unwrap() < 30.0), "{report}");
    // The ledger explains each decision with the price at the time.
    assert!(
        priced.ledger.iter().filter(|l| l.status == 200).all(|l| l.decision != "none" && l.price.is_some()),
        "{report}"
    );
    // And it is worth more than first come, first served.
    let (v, f) = (value_served(&priced), value_served(&fifo));
    println!("value served: bid-price {v:.6} USD vs fifo {f:.6} USD = {:.2}x", v / f);
    // The README says about 8 times (measured 7.9-8.6x on a 2-core machine); at least 6 times
    // leaves room for the noise of a shared machine, not for a different result.
    assert!(v > 6.0 * f, "bid-price {v} vs fifo {f}\n{report}");
}
