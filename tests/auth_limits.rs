//! Failed authentication is rate limited per client address: after the configured number of
//! failures in a minute, the address gets 429 with Retry-After before any key is checked.

mod common;

use tollgate::capacity::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_bad_keys_are_stopped_with_429() {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 50.0).await;
    let cfg = format!(
        "auth_failures_per_minute = 3\n{}[[models]]\nname = \"m\"\nbackends = [\"e\"]\n{}",
        common::backend("e", &emu.base, ""),
        common::TIERS_AND_TENANTS
    );
    let gw = common::start_gateway(&cfg).await;
    let good = gw.key("acme").await;
    let client = reqwest::Client::new();
    let models = format!("{}/v1/models", gw.base);
    // A good key before any failure works.
    assert_eq!(client.get(&models).bearer_auth(&good).send().await.unwrap().status(), 200);
    for bad in ["tg_000000000000_nope", "garbage", "tg_123456789abc_wrong"] {
        let r = client.get(&models).bearer_auth(bad).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    // The fourth failure within the minute is refused before the key is looked at, for tenant
    // and admin routes alike, and with a good key too: the address is blocked, not the key.
    for (url, key) in [
        (models.clone(), "tg_000000000000_again"),
        (format!("{}/v1/tollgate/usage", gw.base), "not-the-admin-key"),
        (models.clone(), good.as_str()),
    ] {
        let r = client.get(&url).bearer_auth(key).send().await.unwrap();
        assert_eq!(r.status(), 429, "{url}");
        let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "too_many_failed_authentications");
        assert_eq!(e["error"]["type"], "rate_limit_error");
    }
    gw.stop_and_count().await;
}
