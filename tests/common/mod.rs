//! Helpers shared by the integration tests: starting an emulator in-process and finding the
//! Python interpreter and engines that `scripts/test-deps.sh` prepared.
#![allow(dead_code)]

pub mod llama;
pub mod process;
pub mod services;
pub mod stub;

use std::path::PathBuf;
use std::sync::Arc;
use tollgate::capacity::Profile;
use tollgate::emulator::{Emulator, EmulatorConfig};

/// An emulator serving on a loopback port; stops with the test's runtime.
pub struct RunningEmulator {
    pub base: String,
    pub emu: Arc<Emulator>,
}

pub async fn start_emulator(profile: Profile, replicas: usize, time_scale: f64) -> RunningEmulator {
    start_emulator_with_faults(profile, replicas, time_scale, Default::default()).await
}

/// An emulator that injects faults at random by `faults` (and when a request names one).
pub async fn start_emulator_with_faults(
    profile: Profile,
    replicas: usize,
    time_scale: f64,
    faults: tollgate::emulator::faults::FaultPlan,
) -> RunningEmulator {
    let cfg = EmulatorConfig { model_name: profile.model.clone(), profile, replicas, seed: 1, time_scale, faults };
    let emu = Emulator::start(cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = emu.router();
    tokio::spawn(tollgate::serve::http::serve(listener, router, std::future::pending()));
    RunningEmulator { base, emu }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv Python with the `openai` client: `$TOLLGATE_PYTHON`, else `.venv/bin/python`.
pub fn python() -> PathBuf {
    let p = std::env::var_os("TOLLGATE_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no Python with the openai client at {}: run scripts/test-deps.sh (or scripts/test.sh)",
        p.display()
    );
    p
}

/// A path named by `var`, prepared by scripts/test-deps.sh.
pub fn prepared(var: &str) -> PathBuf {
    let p = std::env::var_os(var).map(PathBuf::from);
    match p {
        Some(p) if p.exists() => p,
        _ => panic!("${var} is not set to an existing file: run the tests through scripts/test.sh"),
    }
}

pub fn script(name: &str) -> PathBuf {
    repo().join(name)
}

/// Asserts one ledger row per metered request, all under `endpoint`, all served but `refused`,
/// with tokens counted, streamed and whole.
pub fn assert_rows(rows: &[tollgate::metering::LedgerRow], metered: usize, endpoint: &str, refused: usize) {
    assert_eq!(rows.len(), metered, "one ledger row per request that passed authentication");
    assert!(rows.iter().all(|r| r.endpoint == endpoint), "every row is under {endpoint}");
    let served: Vec<_> = rows.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), metered - refused, "all but the {refused} refused");
    assert!(served.iter().all(|r| r.output_tokens > 0 && r.input_tokens > 0));
    assert!(served.iter().any(|r| r.stream) && served.iter().any(|r| !r.stream));
}

/// Runs a client script of `tests/python` with the venv's Python; asserts that it succeeded and
/// returns the number it printed as `METERED=n` (the requests that must each leave a ledger row).
pub async fn run_python(name: &str, args: &[&str]) -> usize {
    let out = tokio::process::Command::new(python()).arg(script(name)).args(args).output().await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "python client {name} failed:\n{stdout}\n{stderr}");
    stdout.lines().find_map(|l| l.strip_prefix("METERED=")).expect("METERED=n printed").trim().parse().unwrap()
}

/// A gateway started in-process on a loopback port, with its data in a temporary directory.
pub struct TestGateway {
    pub handle: tollgate::serve::GatewayHandle,
    pub base: String,
    pub admin: String,
    pub _dir: tempfile::TempDir,
}

pub const ADMIN_KEY: &str = "tga_test_admin_key_for_integration_tests_only";

/// Starts a gateway from a configuration body (backends, models, tiers, tenants); `listen` and
/// `data_dir` are filled in.
pub async fn start_gateway(config_body: &str) -> TestGateway {
    // Warnings and errors of the gateway show in a failing test's output.
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let dir = tempfile::tempdir().unwrap();
    let text = format!("listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{config_body}", dir.path().display());
    let cfg = tollgate::config::Config::from_toml(&text, "test").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = tollgate::serve::spawn(cfg, Some(ADMIN_KEY.to_string()), listener, None).await.unwrap();
    let base = handle.base_url();
    TestGateway { handle, base, admin: ADMIN_KEY.to_string(), _dir: dir }
}

impl TestGateway {
    /// Creates a key for `tenant` through the admin API.
    pub async fn key(&self, tenant: &str) -> String {
        let url = format!("{}/v1/tollgate/keys", self.base);
        let r = post_json(&url, Some(&self.admin), &serde_json::json!({"tenant": tenant})).await;
        r["key"].as_str().expect("key created").to_string()
    }

    /// Ledger rows, newest first, once `expected` rows are written (waits up to 10 s).
    pub async fn ledger(&self, expected: i64) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let r = get_json(&format!("{}/v1/tollgate/ledger?limit=10000", self.base), Some(&self.admin)).await;
            // Count the rows returned: `total` is a separate query and may already include more.
            let rows = r["data"].as_array().unwrap().clone();
            if rows.len() as i64 >= expected || std::time::Instant::now() > deadline {
                assert_eq!(rows.len() as i64, expected, "ledger rows");
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The gateway's `/metrics` text (with the admin key).
    pub async fn metrics(&self) -> String {
        let r = reqwest::Client::new().get(format!("{}/metrics", self.base)).bearer_auth(&self.admin).send();
        r.await.unwrap().text().await.unwrap()
    }

    /// Stops the gateway (draining requests and the ledger) and returns every ledger row.
    pub async fn stop_and_ledger(self) -> Vec<tollgate::metering::LedgerRow> {
        let store = self.handle.gateway.store.clone();
        self.handle.stop().await.unwrap();
        let rows = store.ledger(1_000_000).await.unwrap();
        drop(self._dir);
        rows
    }

    /// Stops the gateway (draining requests and the ledger) and returns the rows in the store.
    pub async fn stop_and_count(self) -> i64 {
        let store = self.handle.gateway.store.clone();
        self.handle.stop().await.unwrap();
        store.ledger_count().await.unwrap()
    }
}

/// GETs `url` (with a bearer key if given) and parses the JSON answer.
pub async fn get_json(url: &str, key: Option<&str>) -> serde_json::Value {
    let mut r = reqwest::Client::new().get(url);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap().json().await.unwrap()
}

/// POSTs `body` to `url` (with a bearer key if given) and parses the JSON answer.
pub async fn post_json(url: &str, key: Option<&str>, body: &serde_json::Value) -> serde_json::Value {
    let mut r = reqwest::Client::new().post(url).json(body);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap().json().await.unwrap()
}

/// A backend section for a server at `base`.
pub fn backend(name: &str, base: &str, extra: &str) -> String {
    format!("[[backends]]\nname = \"{name}\"\nurl = \"{base}\"\n{extra}\n")
}

pub const TIERS_AND_TENANTS: &str = r#"
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "acme"
tier = "standard"
models = ["*"]
"#;

/// Offers a phased load through tests/python/overload.py (the official `openai` client; `plan`
/// as that script says) and returns one result per request, in arrival order.
pub async fn overload(base: &str, plan: &serde_json::Value) -> Vec<serde_json::Value> {
    let out = tokio::process::Command::new(python())
        .arg(script("tests/python/overload.py"))
        .args([base, &plan.to_string()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "overload.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Runs chat calls through tests/python/calls.py (the official `openai` client) and returns one
/// result per call.
pub async fn calls(base: &str, key: &str, spec: serde_json::Value) -> Vec<serde_json::Value> {
    let out = tokio::process::Command::new(python())
        .arg(script("tests/python/calls.py"))
        .args([base, key, &spec.to_string()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "calls.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A copy of built-in profile `name` for model `model` with `max_batch`, written to `dir`: the
/// profile and its path (for a gateway model's `capacity.profile`).
pub fn test_profile(name: &str, model: &str, max_batch: u32, dir: &std::path::Path) -> (Profile, String) {
    let mut p = Profile::builtin(name).unwrap();
    p.model = model.into();
    p.name = format!("{model}-test");
    p.max_batch = max_batch;
    let path = dir.join(format!("{model}.toml"));
    std::fs::write(&path, p.to_toml()).unwrap();
    (p, path.display().to_string())
}

/// Two emulated pools for admission tests: `big` (Llama-2-70B on H100 TP4, batch capped at 8)
/// with `small` (Llama-3-8B on one H100, batch 4) as its fallback keeping 30% of the value, both
/// capacity-managed with a 2-s queue window (the tests' bursts last 8 s: with the 20-s default
/// a whole burst fits in the room, and consumers were served on `big` at a TTFT p95 of 5.5 s
/// against their 5-s objective), and the enterprise (TTFT target 2 s) and consumer tiers. Returns the
/// emulators (keep them alive) and the configuration's backends, models and those two tiers.
pub async fn big_and_small(dir: &std::path::Path) -> ((RunningEmulator, RunningEmulator), String) {
    let (big, big_path) = test_profile("llama2-70b-h100-tp4", "big", 8, dir);
    let (small, small_path) = test_profile("llama3-8b-h100-tp1", "small", 4, dir);
    let (eb, es) = (start_emulator(big, 1, 1.0).await, start_emulator(small, 1, 1.0).await);
    let config = format!(
        r#"{}{}
[[models]]
name = "big"
backends = ["big"]
fallbacks = [{{ model = "small", quality = 0.3 }}]
[models.capacity]
profile = "{big_path}"
replicas = 1
cost_per_engine_second = 0.0001
queue_window_s = 2.0
[[models]]
name = "small"
backends = ["small"]
[models.capacity]
profile = "{small_path}"
replicas = 1
cost_per_engine_second = 0.00002
queue_window_s = 2.0
[[tiers]]
name = "enterprise"
input_price_per_1m = 10.0
output_price_per_1m = 30.0
ttft_slo_ms = 2000
[[tiers]]
name = "consumer"
input_price_per_1m = 0.5
output_price_per_1m = 1.5
ttft_slo_ms = 5000
"#,
        backend("big", &eb.base, ""),
        backend("small", &es.base, ""),
    );
    ((eb, es), config)
}

/// Uploads `text` (JSONL) as a file with purpose `batch` and creates a batch of it for
/// `/v1/chat/completions`; the batch object.
pub async fn submit_batch(base: &str, key: &str, text: String) -> serde_json::Value {
    let part = reqwest::multipart::Part::bytes(text.into_bytes()).file_name("in.jsonl");
    let form = reqwest::multipart::Form::new().text("purpose", "batch").part("file", part);
    let r = reqwest::Client::new().post(format!("{base}/v1/files")).bearer_auth(key).multipart(form).send().await;
    let f: serde_json::Value = r.unwrap().json().await.unwrap();
    let body =
        serde_json::json!({"input_file_id": f["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    post_json(&format!("{base}/v1/batches"), Some(key), &body).await
}
