//! Shared state (Redis) going away, under each configured behaviour: `fail_closed` answers 503
//! with a clear error (and a ledger row), `degrade` keeps serving under its share of the limits
//! (a requests-per-minute limit of 9 across 3 replicas becomes 3 here); both raise
//! `tollgate_state_degraded`, and both go back to the shared state when Redis returns.

mod common;

use common::services::Redis;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tollgate::capacity::Profile;

async fn chat(base: &str, key: &str) -> (u16, Value) {
    let body = json!({"model": "llama3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4});
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn degraded_gauge(gw: &common::TestGateway) -> f64 {
    let m = reqwest::Client::new()
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(&gw.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    m.lines()
        .find_map(|l| l.strip_prefix("tollgate_state_degraded "))
        .map(|v| v.trim().parse().unwrap())
        .expect("tollgate_state_degraded in /metrics")
}

async fn gateway(redis: &str, mode: &str, emu: &str) -> common::TestGateway {
    let config = format!(
        "state = \"{redis}\"\n[redis]\non_unavailable = \"{mode}\"\nreplicas = 3\nttl_ms = 1000\ntimeout_ms = 200\n\
         prefix = \"{mode}\"\n{}[[models]]\nname = \"llama3-8b\"\nbackends = [\"emu\"]\n\
         [[tiers]]\nname = \"standard\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\n\
         [[tenants]]\nname = \"acme\"\ntier = \"standard\"\nrequests_per_minute = 9\n",
        common::backend("emu", emu, "")
    );
    common::start_gateway(&config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_or_degrades_as_configured() {
    let mut redis = Redis::start();
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "llama3-8b".into();
    let emu = common::start_emulator(p, 1, 100.0).await;
    let closed = gateway(&redis.url, "fail_closed", &emu.base).await;
    let degrade = gateway(&redis.url, "degrade", &emu.base).await;
    let (kc, kd) = (closed.key("acme").await, degrade.key("acme").await);
    let mut sent = (0, 0);

    // Redis up: both serve, through the shared limit.
    assert_eq!(chat(&closed.base, &kc).await.0, 200);
    assert_eq!(chat(&degrade.base, &kd).await.0, 200);
    sent.0 += 1;
    sent.1 += 1;
    assert_eq!(degraded_gauge(&closed).await, 0.0);

    redis.kill();

    // Fail closed: 503 with the state_unavailable code, and still a ledger row.
    let (status, body) = chat(&closed.base, &kc).await;
    sent.0 += 1;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "state_unavailable", "{body}");
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(degraded_gauge(&closed).await, 1.0);

    // Degrade: this replica's share of 9 requests per minute over 3 replicas is 3.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, body) = chat(&degrade.base, &kd).await;
        sent.1 += 1;
        if status == 429 {
            assert_eq!(body["error"]["code"], "requests_per_minute_exceeded", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(degraded_gauge(&degrade).await, 1.0);

    // Redis back: fail-closed serves again once it reconnects, and the gauge falls.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = chat(&closed.base, &kc).await;
        sent.0 += 1;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "fail-closed replica did not recover after Redis returned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(degraded_gauge(&closed).await, 0.0);

    assert_eq!(closed.stop_and_count().await, sent.0, "one ledger row per request (fail_closed)");
    assert_eq!(degrade.stop_and_count().await, sent.1, "one ledger row per request (degrade)");
}

/// A replica that degrades to local limits starts from the spend Redis last reported, not from
/// the ledger's figure at its start: an outage cannot hand out a month's budget again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_limits_start_from_the_last_spend_redis_reported() {
    use std::sync::Arc;
    use tollgate::state::{Denied, LocalState, RedisState, Resilient, SharedState, TenantLimits};
    let mut redis = Redis::start();
    let cfg = tollgate::config::RedisConfig {
        on_unavailable: tollgate::config::OnUnavailable::Degrade,
        replicas: 1,
        ..Default::default()
    };
    let limits: std::collections::HashMap<String, TenantLimits> =
        [("t".to_string(), TenantLimits { budget_usd: Some(1.0), ..Default::default() })].into();
    let health = Arc::new(tollgate::state::resilient::StateHealth::default());
    let state = Resilient::new(
        RedisState::new(&redis.url, &cfg, limits.clone(), vec!["p".into()]).unwrap(),
        LocalState::new(limits),
        cfg.on_unavailable,
        health.clone(),
        cfg.replicas,
    );
    state.heartbeat().await.unwrap();
    // 0.8 USD spent through Redis since this replica started (the ledger said 0 at start).
    let g = state.admit_tenant("t", 0.8, 0).await.unwrap().unwrap();
    state.settle_tenant(g, 0.8, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let g = state.admit_tenant("t", 0.01, 0).await.unwrap().unwrap();
    state.settle_tenant(g, 0.01, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    // Degraded: 0.3 more would pass a budget that started from the ledger's 0, not this one.
    assert_eq!(state.admit_tenant("t", 0.3, 0).await.unwrap().unwrap_err(), Denied::Budget);
    assert!(health.degraded.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(health.seeded_tenants.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(state.admit_tenant("t", 0.15, 0).await.unwrap().is_ok(), "what is left can still be spent");
}
