//! The dashboard in a real browser: tests/dashboard/dashboard.mjs drives Debian's Chromium with
//! playwright-core (installed by scripts/test-deps.sh; Chromium by .ci/run) against a gateway in
//! front of an emulator, and saves a screenshot to target/dashboard.png.

mod common;

use tollgate::capacity::Profile;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_matches_metrics_and_ledger() {
    let dir = common::script("tests/dashboard");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in tests/dashboard: run scripts/test-deps.sh"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "no Chromium at {chromium}: apt-get install chromium (.ci/run does)"
    );
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 50.0).await;
    let cfg = format!(
        r#"{}
{}
[[models]]
name = "m"
backends = ["e"]
capacity = {{ profile = "llama3-8b-h100-tp1", replicas = 2 }}
[[models]]
name = "down"
backends = ["closed"]
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "acme"
tier = "standard"
"#,
        common::backend("e", &emu.base, ""),
        common::backend("closed", "http://127.0.0.1:9", ""),
    );
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    let shot = common::script("target/dashboard.png");
    let out = tokio::process::Command::new("node")
        .arg(dir.join("dashboard.mjs"))
        .args([&gw.base, &gw.admin, &key, "m", shot.to_str().unwrap()])
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(shot.exists(), "no screenshot");
    gw.handle.stop().await.unwrap();
}
