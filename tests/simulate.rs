//! The simulator on the shipped scenario, briefly: every request meets exactly one fate, no
//! policy beats the hindsight bound, and bid prices capture more than first come, first served.

use std::collections::HashMap;
use std::path::Path;
use tollgate::sim::hindsight::{bound, Basis};
use tollgate::sim::policy::Policy;
use tollgate::sim::run::{load_requests, Load};
use tollgate::sim::scenario::Scenario;
use tollgate::sim::suite::{evaluate, POLICIES};

#[test]
fn shipped_scenario_short_replay() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/azure-conv-code.toml");
    let (mut sc, base) = Scenario::from_file(&path).unwrap();
    sc.duration_s = Some(180.0);
    let reqs = load_requests(&sc, &base, &Load { overload: 2.0, ..Load::default() }).unwrap();
    assert!(reqs.len() > 500, "{}", reqs.len());
    let hs = bound(&sc, &reqs, Basis::SlaSafe).unwrap();
    assert!(hs.feasible_usd <= hs.value_usd, "{hs:?}");
    let r = evaluate(&sc, &reqs, 2.0, &POLICIES, true, &mut |_, _| {}).unwrap();
    let h = r.hindsight.unwrap();
    // The full-engine bound is a true bound on every policy and on the replayed schedule.
    assert!(h.replay_usd <= h.full_engines_bound_usd * (1.0 + 1e-6), "{h:?}");
    let mut values = HashMap::new();
    for p in &r.policies {
        let accounted: usize =
            p.classes.iter().map(|c| c.admitted + c.downgraded + c.deferred + c.refused + c.dropped).sum();
        assert_eq!(accounted, reqs.len(), "{}", p.policy);
        let full = h.full_engines_bound_usd;
        assert!(p.value_usd <= full * (1.0 + 1e-6), "{} {} > full-engine bound {full}", p.policy, p.value_usd);
        values.insert(p.policy.clone(), p.value_usd);
    }
    println!("{values:?} {h:?}");
    let best = ["fifo", "priority", "quota"].iter().map(|p| values[*p]).fold(0.0, f64::max);
    assert!(values["bid-price"] > 1.5 * best, "{values:?}");
    // Over 600 s at 2x bid prices capture 90% of the replayed hindsight schedule
    // (docs/simulator.md); over this 3-minute slice, at least 80%.
    assert!(values["bid-price"] >= 0.8 * h.replay_usd, "{values:?} {h:?}");
}

#[test]
fn the_command_writes_a_table_json_and_a_self_contained_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/azure-conv-code.toml");
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("duration_s = 600.0", "duration_s = 60.0")
        .replace("../data/", &format!("{}/data/", env!("CARGO_MANIFEST_DIR")));
    let sc = dir.path().join("short.toml");
    std::fs::write(&sc, text).unwrap();
    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["simulate", sc.to_str().unwrap(), "--overload", "2", "--policy", "fifo", "--policy", "bid-price"])
        .args(["--json", json.to_str().unwrap(), "--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("hindsight bound") && table.contains("bid-price") && table.contains("TTFT p95"), "{table}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let policies = r["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2);
    for p in policies {
        // The bound on full engines bounds every policy; the one on SLA-safe capacity does not
        // (a policy runs the full engines), so only its sign is checked.
        let full = p["share_of_full_bound"].as_f64().unwrap();
        assert!((0.0..=1.0 + 1e-9).contains(&full), "{full}");
        assert!(p["share_of_hindsight"].as_f64().unwrap() >= 0.0);
        assert_eq!(p["classes"].as_array().unwrap().len(), 3);
        assert_eq!(p["tiers"].as_array().unwrap().len(), 3);
        assert!(!p["timeline"].as_array().unwrap().is_empty());
        assert_eq!(p["pools"].as_array().unwrap().len(), 2);
    }
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("TollgateCharts") && page.contains("\"scenario\":\"azure-conv-code\""), "report page");
    assert!(!page.contains("<script src="), "the report must not load anything");
    // Bad input: a clear error, not a panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["simulate", sc.to_str().unwrap(), "--policy", "lottery"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown policy `lottery`"));
}

#[test]
fn bad_scenarios_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.toml");
    std::fs::write(&p, "name = \"x\"\npools = []\ntiers = []\nclasses = [{ name = \"c\", tier = \"t\", pool = \"p\", trace = \"t.csv\", bogus = 1 }]\n").unwrap();
    let e = Scenario::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("classes[0]") && e.contains("bogus"), "{e}");
}

#[test]
fn batch_tiers_must_name_deferrable_tiers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let variant = root.join("scenarios/variants/mixed-fleet-batch-lines.toml");
    let (sc, _) = Scenario::from_file(&variant).unwrap();
    assert_eq!(sc.batch_tiers, ["internal-batch"]);
    // A name that is not a deferrable tier is refused, saying where.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&variant).unwrap();
    std::fs::write(&bad, text.replace(r#"batch_tiers = ["internal-batch"]"#, r#"batch_tiers = ["public-chat"]"#))
        .unwrap();
    let err = Scenario::from_file(&bad).unwrap_err().to_string();
    assert!(err.contains("batch_tiers[0]") && err.contains("public-chat"), "{err}");
}

#[test]
fn a_bidding_class_is_served_ahead_of_the_tier_it_would_otherwise_lose_to() {
    // servegen-clients at 2x: bid prices refuse many of the heavy clients' bulk requests. The same
    // clients bidding 10 USD per 1M tokens (above the pro tier's prices) are served ahead of it,
    // and their bid is what their requests are worth.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/servegen-clients.toml");
    let run = |bid: Option<f64>| {
        let (mut sc, base) = Scenario::from_file(&path).unwrap();
        sc.duration_s = Some(120.0);
        sc.classes[0].max_price_per_1k = bid;
        let reqs = load_requests(&sc, &base, &Load { overload: 2.0, ..Load::default() }).unwrap();
        let r = evaluate(&sc, &reqs, 2.0, &[Policy::BidPrice], false, &mut |_, _| {}).unwrap();
        let p = &r.policies[0];
        let served = |name: &str| {
            let c = p.classes.iter().find(|c| c.class == name).unwrap();
            (c.admitted + c.downgraded + c.deferred) as f64
                / (c.admitted + c.downgraded + c.deferred + c.refused + c.dropped) as f64
        };
        (served("heavy-clients"), served("light-clients"), p.value_usd)
    };
    let (heavy, light, value) = run(None);
    let (heavy_bid, light_bid, value_bid) = run(Some(0.01));
    println!("served: heavy {heavy:.3} -> {heavy_bid:.3}, light {light:.3} -> {light_bid:.3}; value {value:.2} -> {value_bid:.2}");
    assert!(heavy < 0.9, "the heavy clients are refused without a bid: {heavy}");
    assert!(heavy_bid > heavy + 0.05, "bidding: {heavy_bid} against {heavy}");
    assert!(light_bid <= light, "{light_bid} {light}");
    assert!(value_bid > value, "{value_bid} {value}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "pool = \"llama2-70b\"\ntrace = \"../data/traces/servegen/language-m-large-top.csv\"",
        "pool = \"llama2-70b\"\ntrace = \"../data/traces/servegen/language-m-large-top.csv\"\nmax_price_per_1k = -1.0",
    );
    std::fs::write(&bad, text).unwrap();
    let err = Scenario::from_file(&bad).unwrap_err().to_string();
    assert!(err.contains("classes[0].max_price_per_1k"), "{err}");
}
