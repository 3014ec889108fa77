//! Bids (`x-tollgate-max-price`, USD per 1,000 tokens): a request refused with a quote and
//! retried with a bid at the quote is served and charged the price that cleared it, never more
//! than its bid; a bid below the quote is refused again; a request its tier's value already
//! clears pays its tier whatever it bid; bids above the tenant's limit, from a tenant that may not
//! bid, or unreadable, are 400s. Every request leaves one ledger row, bids recorded.

mod common;

use serde_json::{json, Value};
use tollgate::capacity::Profile;

async fn post(base: &str, key: &str, bid: Option<&str>) -> reqwest::Response {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "Name three rivers."}], "max_tokens": 8, "ignore_eos": true});
    let mut r = reqwest::Client::new().post(format!("{base}/v1/chat/completions")).bearer_auth(key).json(&body);
    if let Some(b) = bid {
        r = r.header("x-tollgate-max-price", b);
    }
    r.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<f64> {
    r.headers().get(name).map(|v| v.to_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_at_the_quote_is_served_and_charged_no_more_than_the_bid() {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 50.0).await;
    // Capacity costs 0.05 USD per engine-second to run: far above what the cheap tier's tokens
    // are worth, so without a bid its requests are refused with a quote.
    let cfg = format!(
        r#"{}
[[models]]
name = "m"
backends = ["e"]
capacity = {{ profile = "llama3-8b-h100-tp1", replicas = 1, cost_per_engine_second = 0.05 }}
[[tiers]]
name = "cheap"
input_price_per_1m = 0.01
output_price_per_1m = 0.01
[[tiers]]
name = "rich"
input_price_per_1m = 5000.0
output_price_per_1m = 5000.0
[[tenants]]
name = "bidder"
tier = "cheap"
max_bid_per_1k = 10.0
[[tenants]]
name = "nobids"
tier = "cheap"
[[tenants]]
name = "rich"
tier = "rich"
max_bid_per_1k = 10.0
"#,
        common::backend("e", &emu.base, "")
    );
    let gw = common::start_gateway(&cfg).await;
    let (bidder, nobids, rich) = (gw.key("bidder").await, gw.key("nobids").await, gw.key("rich").await);

    let r = post(&gw.base, &bidder, None).await;
    assert_eq!(r.status(), 429);
    let quote = header(&r, "x-tollgate-quote-per-1k").unwrap();
    assert!(quote > 0.0);
    let half = format!("{:.9}", quote / 2.0);
    let r = post(&gw.base, &bidder, Some(&half)).await;
    assert_eq!(r.status(), 429, "a bid below the quote does not clear");

    let at_quote = format!("{quote:.9}");
    let r = post(&gw.base, &bidder, Some(&at_quote)).await;
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    assert_eq!(r.headers()["x-tollgate-decision"], "admit");
    let cleared = header(&r, "x-tollgate-cleared-per-1k").expect("charged the clearing price");
    assert!(cleared > 0.0 && cleared <= quote, "{cleared} vs {quote}");
    let answer: Value = r.json().await.unwrap();
    let tokens = answer["usage"]["total_tokens"].as_f64().unwrap();

    // A request its tier's value clears pays its tier, not its bid.
    let r = post(&gw.base, &rich, Some("9.5")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-tollgate-cleared-per-1k").is_none());
    let rich_tokens = r.json::<Value>().await.unwrap()["usage"]["total_tokens"].as_f64().unwrap();

    // Bids the tenant may not make, and unreadable ones.
    for (key, bid, says) in [
        (&bidder, "10.5", "above your tenant's limit"),
        (&nobids, "0.1", "may not bid"),
        (&bidder, "cheap", "non-negative number"),
        (&bidder, "-1", "non-negative number"),
        (&bidder, "NaN", "non-negative number"),
    ] {
        let r = post(&gw.base, key, Some(bid)).await;
        assert_eq!(r.status(), 400, "{bid}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["param"], "x-tollgate-max-price");
        assert!(e["error"]["message"].as_str().unwrap().contains(says), "{e}");
    }

    let rows = gw.ledger(9).await; // one row per request

    let served: Vec<&Value> = rows.iter().filter(|r| r["status"] == 200).collect();
    let bid_row = served.iter().find(|r| r["tenant"] == "bidder").unwrap();
    assert_eq!(bid_row["bid_per_1k"].as_f64().unwrap(), at_quote.parse::<f64>().unwrap());
    let charged = bid_row["revenue_usd"].as_f64().unwrap();
    assert!((charged - cleared * tokens / 1000.0).abs() < 1e-9 * (1.0 + charged), "{charged} vs {cleared} x {tokens}");
    assert!(charged <= quote * tokens / 1000.0 + 1e-12);
    let tier_charge = 0.01 * tokens / 1e6;
    assert!(charged > 100.0 * tier_charge, "the bid, not the tier, paid for the capacity");
    let rich_row = served.iter().find(|r| r["tenant"] == "rich").unwrap();
    assert!((rich_row["revenue_usd"].as_f64().unwrap() - 5000.0 * rich_tokens / 1e6).abs() < 1e-9);
    let refused_bid = rows.iter().find(|r| r["status"] == 429 && !r["bid_per_1k"].is_null()).unwrap();
    assert_eq!(refused_bid["decision"], "refuse");
    assert_eq!(gw.stop_and_count().await, 9);
}
