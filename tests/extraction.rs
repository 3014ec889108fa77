//! The extraction watch, live (issue 26): through the official `openai` client, a harvesting
//! campaign against a model whose policy refuses extraction is stopped, while a normal
//! application's tenant on the same model, at the same time, is served throughout; the ledger
//! records each refusal with its score and reasons, and the admin API and `/metrics` show the
//! campaign's score.

mod common;

use serde_json::Value;
use tollgate::capacity::Profile;
use tollgate::guard::score::DEFAULT_THRESHOLD;

const TENANTS: &str = r#"
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "harvester"
tier = "standard"
models = ["*"]
[[tenants]]
name = "bookshop"
tier = "standard"
models = ["*"]
"#;

/// Runs tests/python/extraction_client.py; one (status, code) per request.
async fn client(base: &str, key: &str, mode: &str, n: usize) -> Vec<(u64, Option<String>)> {
    let out = tokio::process::Command::new(common::python())
        .arg(common::script("tests/python/extraction_client.py"))
        .args([base, key, mode, &n.to_string()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "extraction_client.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["status"].as_u64().unwrap(), v["code"].as_str().map(str::to_string))
        })
        .collect()
}

/// A gateway in front of one emulated engine serving `gated` with `model_extra` (its extraction
/// policy) and the campaign's and the bookshop's requests run through it at the same time.
async fn run(
    model_extra: &str,
    n: usize,
) -> (common::TestGateway, Vec<(u64, Option<String>)>, Vec<(u64, Option<String>)>) {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "gated".into();
    let emu = common::start_emulator(p, 1, 1000.0).await;
    let body = format!(
        "{}[[models]]\nname = \"gated\"\nbackends = [\"e\"]\n{model_extra}\n{TENANTS}",
        common::backend("e", &emu.base, "")
    );
    let gw = common::start_gateway(&body).await;
    let (harvester, bookshop) = (gw.key("harvester").await, gw.key("bookshop").await);
    let (campaign, normal) =
        tokio::join!(client(&gw.base, &harvester, "campaign", n), client(&gw.base, &bookshop, "normal", 40));
    (gw, campaign, normal)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_past_its_threshold_is_throttled_or_priced_out_and_a_normal_tenant_is_not() {
    // Throttled: once scored, at most 5 of its requests a minute pass. The run lasts a few
    // seconds: it starts in a minute's first 50 s so that it ends in the same minute.
    let into_minute = tollgate::metering::unix_ms().rem_euclid(60_000);
    if into_minute > 50_000 {
        tokio::time::sleep(std::time::Duration::from_millis((60_000 - into_minute) as u64 + 100)).await;
    }
    let (gw, campaign, normal) = run("[models.extraction]\naction = \"throttle\"\nper_minute = 5", 60).await;
    let limited = campaign.iter().position(|r| r.0 == 429).expect("the campaign is throttled");
    assert!((19..=25).contains(&limited), "scored from its 20th request, then 5 pass: throttled at {limited}");
    assert!(campaign[limited..].iter().all(|r| r.0 == 429 && r.1.as_deref() == Some("extraction_throttled")));
    assert!(normal.iter().all(|r| r.0 == 200), "{normal:?}");
    let rows = gw.stop_and_ledger().await;
    let passed =
        rows.iter().filter(|r| r.guard.as_deref().is_some_and(|g| g.starts_with("throttle ")) && r.status == 200);
    assert!(passed.count() <= 5, "at most 5 let through in the minute");

    // Priced: a premium of 1,000 USD per 1,000 tokens is more than the tier values any request
    // at, so admission refuses the campaign with a quote once it is scored, however idle the pool.
    let premium = "capacity = { profile = \"llama3-8b-h100-tp1\", replicas = 1 }\n\
                   [models.extraction]\naction = \"premium\"\nper_1k_usd = 1000.0";
    let (gw, campaign, normal) = run(premium, 40).await;
    let priced = campaign.iter().position(|r| r.0 != 200).expect("the campaign is priced out");
    assert!((19..=21).contains(&priced), "priced out from its 20th request: at {priced}");
    assert!(campaign[priced..].iter().all(|r| r.0 == 429 && r.1.as_deref() == Some("capacity_priced")), "{campaign:?}");
    assert!(normal.iter().all(|r| r.0 == 200), "{normal:?}");
    let rows = gw.stop_and_ledger().await;
    let refused: Vec<_> = rows.iter().filter(|r| r.tenant == "harvester" && r.status == 429).collect();
    assert!(refused
        .iter()
        .all(|r| r.decision == "refuse" && r.guard.as_deref().is_some_and(|g| g.starts_with("premium "))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_on_a_gated_model_is_refused_and_a_normal_tenant_is_not() {
    // More refused requests than a window holds (256): the refusal must hold past them.
    let (gw, campaign, normal) = run("[models.extraction]\naction = \"refuse\"", 300).await;

    let first_refused = campaign.iter().position(|r| r.0 == 403).expect("the campaign is refused");
    assert!(first_refused >= 19, "nothing is scored before its 20th request: refused at {first_refused}");
    assert!(first_refused <= 60, "the campaign is stopped within 60 requests: at {first_refused}");
    assert!(
        campaign[first_refused..].iter().all(|r| r.0 == 403 && r.1.as_deref() == Some("extraction_risk")),
        "once refused, the campaign stays refused: {:?}",
        &campaign[first_refused..]
    );
    assert!(normal.iter().all(|r| r.0 == 200), "the normal tenant is served throughout: {normal:?}");

    let standings = common::get_json(&format!("{}/v1/tollgate/extraction", gw.base), Some(&gw.admin)).await;
    let score = |tenant: &str| {
        standings["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == tenant).cloned().unwrap()
    };
    let h = score("harvester");
    assert!(h["score"].as_f64().unwrap() >= DEFAULT_THRESHOLD, "{h}");
    assert!(!h["reasons"].as_array().unwrap().is_empty(), "{h}");
    assert!(score("bookshop")["score"].as_f64().unwrap() < DEFAULT_THRESHOLD, "{standings}");
    let metrics = gw.metrics().await;
    assert!(metrics.contains("tollgate_extraction_score{tenant=\"harvester\"}"), "{metrics}");
    assert!(metrics.contains("tollgate_extraction_actions_total{action=\"refuse\""), "refusals are counted");

    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), 340, "one ledger row per request");
    let refused: Vec<_> = rows.iter().filter(|r| r.tenant == "harvester" && r.status == 403).collect();
    assert_eq!(refused.len(), 300 - first_refused);
    let scored = |g: &str| {
        let (action, rest) = g.split_once(' ').unwrap();
        let (score, reasons) = rest.split_once(": ").unwrap();
        action == "refuse" && score.parse::<f64>().unwrap() >= DEFAULT_THRESHOLD && !reasons.is_empty()
    };
    assert!(refused.iter().all(|r| r.guard.as_deref().is_some_and(scored)), "{refused:?}");
    assert!(rows.iter().filter(|r| r.tenant == "bookshop").all(|r| r.status == 200 && r.guard.is_none()));
}
