//! The admin API against its OpenAPI document: every documented admin operation refuses a
//! missing or tenant key with 401 and answers the admin key; every route the gateway serves is
//! documented; tenants, tiers and decisions say what the configuration and the ledger say.

mod common;

use serde_json::{json, Value};
use tollgate::capacity::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_matches_its_openapi_document() {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 50.0).await;
    // Many failed authentications on purpose: the per-address limiter must not step in.
    let cfg = format!(
        r#"auth_failures_per_minute = 1000
{}
[[models]]
name = "m"
backends = ["e"]
capacity = {{ profile = "llama3-8b-h100-tp1", replicas = 2 }}
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
ttft_slo_ms = 2000
[[tiers]]
name = "batch"
input_price_per_1m = 0.5
output_price_per_1m = 1.0
deferrable = true
[[tenants]]
name = "acme"
tier = "standard"
monthly_budget_usd = 5.0
[[tenants]]
name = "bulk"
tier = "batch"
"#,
        common::backend("e", &emu.base, ""),
    );
    let gw = common::start_gateway(&cfg).await;
    let tenant_key = gw.key("acme").await;
    let client = reqwest::Client::new();

    // The document is served without a key and is valid JSON with the admin operations in it.
    let spec: Value = client.get(format!("{}/openapi.json", gw.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    for p in ["/v1/tollgate/tenants", "/v1/tollgate/tiers", "/v1/tollgate/decisions", "/v1/tollgate/keys", "/metrics"] {
        assert!(paths.contains_key(p), "{p} documented");
    }

    // One request, so the ledger has a decision.
    let r = client
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(&tenant_key)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    gw.ledger(1).await;

    let mut admin_ops = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let admin = op["security"].as_array().unwrap().iter().any(|s| s.get("adminKey").is_some());
            let tenant = op["security"].as_array().unwrap().iter().any(|s| s.get("tenantKey").is_some());
            let url = format!("{}{}", gw.base, path.replace("{id}", "tg_nosuchkey"));
            let call = |key: Option<&str>| {
                let mut b = client.request(method.to_uppercase().parse().unwrap(), &url);
                if let Some(k) = key {
                    b = b.bearer_auth(k);
                }
                if method == "post" {
                    b = b.json(&json!({"tenant": "acme", "label": "from-the-spec-test",
                        "model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi", "input": "hi", "max_tokens": 2}));
                }
                b.send()
            };
            // Every documented route exists: a 404 may say the thing named is missing (no such key
            // or stored response), never that the route is.
            let key = if admin {
                Some(gw.admin.as_str())
            } else if tenant {
                Some(tenant_key.as_str())
            } else {
                None
            };
            let ok = call(key).await.unwrap();
            let status = ok.status().as_u16();
            let body = ok.text().await.unwrap();
            assert!(status != 404 || !body.contains("Unknown request URL"), "{method} {path}: {status} {body}");
            assert!(status < 500, "{method} {path}: {status} {body}");
            if admin {
                admin_ops += 1;
                assert!(
                    status == 200 || status == 201 || status == 400 || status == 404,
                    "{method} {path} with the admin key: {status} {body}"
                );
                for k in [None, Some(tenant_key.as_str()), Some("tga_wrong")] {
                    let r = call(k).await.unwrap();
                    assert_eq!(r.status(), 401, "{method} {path} with {k:?}");
                    let e: Value = r.json().await.unwrap();
                    assert!(e["error"]["message"].is_string(), "OpenAI-shaped error");
                }
            }
        }
    }
    assert!(admin_ops >= 10, "{admin_ops} admin operations documented");

    let tenants = common::get_json(&format!("{}/v1/tollgate/tenants", gw.base), Some(&gw.admin)).await;
    let acme = tenants["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{tenants}"))
        .iter()
        .find(|t| t["name"] == "acme")
        .unwrap()
        .clone();
    assert_eq!(acme["tier"], "standard");
    assert_eq!(acme["monthly_budget_usd"], 5.0);
    assert!(acme["spent_usd"].as_f64().unwrap() > 0.0, "the request was charged: {acme}");
    let tiers = common::get_json(&format!("{}/v1/tollgate/tiers", gw.base), Some(&gw.admin)).await;
    let batch = tiers["data"].as_array().unwrap().iter().find(|t| t["name"] == "batch").unwrap().clone();
    assert_eq!(batch["deferrable"], true);
    assert_eq!(batch["value_per_1m_output"], 1.0);
    let decisions = common::get_json(&format!("{}/v1/tollgate/decisions?limit=10", gw.base), Some(&gw.admin)).await;
    let d = decisions["data"].as_array().unwrap();
    assert!(d.iter().any(|r| r["decision"] == "admit" && r["tenant"] == "acme" && r["status"] == 200), "{decisions}");
    gw.handle.stop().await.unwrap();
}
