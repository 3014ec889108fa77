//! The response cache end to end through the official `openai` Python client: exact hits replay
//! whole and as SSE with usage marked cached, sampled requests are not cached, the semantic cache
//! answers within its scope, and no tenant ever gets another's cached answer. The ledger and
//! `/metrics` count the same hits and misses, and hits cost nothing.

mod common;

use tollgate::capacity::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_through_the_openai_client() {
    let mut small = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 50.0).await;
    let config = format!(
        "{}\n[cache.semantic]\nurl = \"{}\"\nmodel = \"llama3-8b\"\nthreshold = 0.9\n\
         [[models]]\nname = \"llama3-8b\"\nbackends = [\"emu\"]\n{}\
         [[tenants]]\nname = \"beta\"\ntier = \"standard\"\n\
         [[tiers]]\nname = \"semantic\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\ncache = \"off\"\nsemantic_cache = true\n\
         [[tenants]]\nname = \"gamma\"\ntier = \"semantic\"\n[[tenants]]\nname = \"delta\"\ntier = \"semantic\"\n",
        common::backend("emu", &emu.base, "cost_per_1m_input = 0.5\ncost_per_1m_output = 0.5"),
        emu.base,
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&config).await;
    let keys = [gw.key("acme").await, gw.key("beta").await, gw.key("gamma").await, gw.key("delta").await];
    let out = tokio::process::Command::new(common::python())
        .arg(common::script("tests/python/cache_client.py"))
        .arg(&gw.base)
        .args(&keys)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python client failed:\n{stdout}\n{stderr}");
    let counts: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let n = |k: &str| counts[k].as_i64().unwrap();

    let metrics = gw.metrics().await;
    let series = |result: &str| -> i64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("tollgate_cache_lookups_total{") && l.contains(&format!("result=\"{result}\"")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as i64)
            .sum()
    };
    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len() as i64, n("requests"), "one ledger row per request");
    for result in ["exact", "semantic", "miss"] {
        let in_ledger = rows.iter().filter(|r| r.cache.as_deref() == Some(result)).count() as i64;
        assert_eq!(in_ledger, n(result), "{result} in the ledger");
        assert_eq!(series(result), n(result), "{result} in /metrics");
    }
    for r in &rows {
        assert_eq!(r.status, 200, "{r:?}");
        let hit = matches!(r.cache.as_deref(), Some("exact" | "semantic"));
        if hit {
            // A hit used no capacity: no backend, no cost, admission not consulted; the tenant
            // still pays and the work still counts as value.
            assert_eq!((r.backend.as_deref(), r.cost_usd, r.decision.as_str()), (None, 0.0, "cache"), "{r:?}");
            assert!(r.revenue_usd > 0.0 && r.value_usd > 0.0 && r.output_tokens > 0, "{r:?}");
        } else {
            assert!(r.backend.is_some() && r.cost_usd > 0.0, "{r:?}");
        }
    }
    // Tenants never share an entry: each tenant's hits follow its own earlier miss of the same key.
    for tenant in ["beta", "delta"] {
        let first = rows.iter().filter(|r| r.tenant == tenant).min_by_key(|r| r.id.clone()).unwrap();
        assert_eq!(first.cache.as_deref(), Some("miss"), "{tenant}'s first request cannot hit");
    }
}
