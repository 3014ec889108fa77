//! OpenAI's Batch and Files APIs: the official `openai` client uploads a file, runs a batch to
//! completion and checks each answer against the same request alone, a malformed file fails
//! with line-numbered errors, a gated model is refused at creation (tests/python/batch_client.py);
//! one ledger row per line at the batch tier. A batch whose lines cannot be served yet is
//! cancelled: every line ends in the error file, each with its ledger row. A gateway killed with
//! SIGKILL mid-batch is restarted and finishes the batch: every `custom_id` exactly once across
//! the output and error files, and exactly one ledger row each; likewise two replicas sharing
//! PostgreSQL and a files directory, the one the batch was created on killed mid-batch. A tenant whose budget runs out
//! mid-batch gets its remaining lines failed with `insufficient_quota` (not retried for a day).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

const TIERS: &str = r#"
[service_tiers]
batch = "batch"
[batches]
concurrency = 4
claim_ttl_s = 3
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tiers]]
name = "batch"
input_price_per_1m = 0.5
output_price_per_1m = 1.0
deferrable = true
deadline_ms = 2000
[[tenants]]
name = "acme"
tier = "standard"
models = ["llama3-8b", "down"]
[[tenants]]
name = "lean"
tier = "standard"
models = ["llama3-8b"]
monthly_budget_usd = 0.00012
"#;

fn config(emu: &str) -> String {
    format!(
        "{}{}[[models]]\nname = \"llama3-8b\"\nbackends = [\"emu\"]\n[[models]]\nname = \"gated\"\n\
         upstream_model = \"llama3-8b\"\nbackends = [\"emu\"]\n[[models]]\nname = \"down\"\nbackends = [\"closed\"]\n{TIERS}",
        common::backend("emu", emu, ""),
        common::backend("closed", "http://127.0.0.1:9", "")
    )
}

fn lines(model: &str, n: usize, max_tokens: u32) -> String {
    (0..n)
        .map(|i| {
            serde_json::json!({"custom_id": format!("c{i}"), "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": format!("q{i}")}],
                         "max_tokens": max_tokens, "ignore_eos": true}})
            .to_string()
                + "\n"
        })
        .collect()
}

/// Uploads `text` and creates a batch of it; the batch's id.
async fn submit(base: &str, key: &str, text: String) -> String {
    let b = common::submit_batch(base, key, text).await;
    b["id"].as_str().unwrap_or_else(|| panic!("{b}")).to_string()
}

async fn batch(base: &str, key: &str, id: &str) -> serde_json::Value {
    common::get_json(&format!("{base}/v1/batches/{id}"), Some(key)).await
}

async fn wait_for(base: &str, key: &str, id: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let b = batch(base, key, id).await;
        if done(&b) {
            return b;
        }
        assert!(Instant::now() < deadline, "batch did not get there: {b}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts `tollgate serve` with `config` on `port` and waits until it answers.
fn serve(config: &std::path::Path, port: u16, admin: &str, what: &str) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.args(["serve", "--config"]).arg(config).args(["--listen", &format!("127.0.0.1:{port}")]);
    let (mut child, log) = common::process::spawn_logged(cmd.env("TOLLGATE_ADMIN_KEY", admin), what);
    let health = format!("http://127.0.0.1:{port}/health");
    common::process::wait_ready(&mut child, what, &log, Duration::from_secs(30), || {
        reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success())
    });
    child
}

/// Requests of `tenant` in the gateway's `tollgate_requests_total`.
async fn counted(base: &str, admin: &str, tenant: &str) -> f64 {
    let metrics = reqwest::Client::new().get(format!("{base}/metrics")).bearer_auth(admin).send();
    let text = metrics.await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("tollgate_requests_total{") && l.contains(&format!("tenant=\"{tenant}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Exactly one batch-tier ledger row per line, by custom id.
async fn one_row_per_line(store: &dyn tollgate::store::Store, lines: usize) {
    let rows = store.ledger(100_000).await.unwrap();
    let mut per: HashMap<String, usize> = HashMap::new();
    for r in rows.iter().filter(|r| r.service_tier.as_deref() == Some("batch")) {
        *per.entry(r.client_request_id.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(per.len(), lines, "{per:?}");
    assert!(per.values().all(|&n| n == 1), "exactly one ledger row per line: {per:?}");
}

/// The lines of the batch's output and error files, by custom id (each must appear once).
async fn results(base: &str, key: &str, b: &serde_json::Value) -> HashMap<String, serde_json::Value> {
    let mut out = HashMap::new();
    for f in ["output_file_id", "error_file_id"] {
        let Some(id) = b[f].as_str() else { continue };
        let text = reqwest::Client::new()
            .get(format!("{base}/v1/files/{id}/content"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let cid = v["custom_id"].as_str().unwrap().to_string();
            assert!(out.insert(cid.clone(), v).is_none(), "{cid} twice");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_through_the_openai_client_and_cancelled() {
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 50.0).await;
    let gw = common::start_gateway(&config(&emu.base)).await;
    let key = gw.key("acme").await;
    let metered = common::run_python("tests/python/batch_client.py", &[&gw.base, &key, "120"]).await;

    // Lines of a model whose backend is down cannot be served yet (they wait, pending); the
    // batch is cancelled and every line ends in the error file with its ledger row.
    let id = submit(&gw.base, &key, lines("down", 5, 3)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/batches/{id}/cancel", gw.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(["cancelling", "cancelled"].contains(&r["status"].as_str().unwrap()), "{r}");
    let b = wait_for(&gw.base, &key, &id, |b| b["status"] == "cancelled").await;
    assert_eq!((b["request_counts"]["total"].as_i64(), b["request_counts"]["failed"].as_i64()), (Some(5), Some(5)));
    let res = results(&gw.base, &key, &b).await;
    assert_eq!(res.len(), 5);
    assert!(res.values().all(|v| v["error"]["code"] == "batch_cancelled"), "{res:?}");

    // Every kept row, batch lines (served and cancelled) included, is counted once in /metrics.
    let in_metrics = counted(&gw.base, &gw.admin, "acme").await;
    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), metered + 5, "one ledger row per batch line and per request alone");
    assert_eq!(in_metrics, rows.len() as f64, "/metrics counts each kept row once");
    let lines: Vec<_> = rows.iter().filter(|r| r.service_tier.as_deref() == Some("batch")).collect();
    // 120 chat lines and 3 Responses lines served, 5 cancelled.
    assert_eq!(lines.len(), 120 + 3 + 5);
    let served: Vec<_> = lines.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), 123);
    // Charged at the batch tier: half the standard prices.
    for r in &served {
        let at_batch = (r.input_tokens as f64 * 0.5 + r.output_tokens as f64 * 1.0) / 1e6;
        assert!((r.revenue_usd - at_batch).abs() < 1e-12, "{} vs {at_batch}", r.revenue_usd);
    }
    let mut ids: Vec<_> = lines.iter().map(|r| r.client_request_id.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 128, "each line's custom id on exactly one row");
    assert_eq!(lines.iter().filter(|r| r.outcome == "batch_cancelled").count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_batch_finishes_it_after_a_restart() {
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    // Real time: each line takes a second or so, so the kill lands mid-batch.
    let emu = common::start_emulator(small, 1, 1.0).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::llama::free_port();
    let path = dir.path().join("tollgate.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{}", data.display(), config(&emu.base)),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let admin = "tga_batches_restart_admin_key";
    let start = {
        let path = path.clone();
        move || serve(&path, port, admin, "batch-gateway")
    };
    let mut child = tokio::task::spawn_blocking(start.clone()).await.unwrap();
    let key =
        common::post_json(&format!("{base}/v1/tollgate/keys"), Some(admin), &serde_json::json!({"tenant": "acme"}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_string();
    let id = submit(&base, &key, lines("llama3-8b", 40, 40)).await;
    let before = wait_for(&base, &key, &id, |b| b["request_counts"]["completed"].as_i64().unwrap_or(0) >= 8).await;
    child.kill().unwrap();
    let done_before = before["request_counts"]["completed"].as_i64().unwrap();
    assert!(done_before < 40, "the kill came after the batch finished: {before}");
    child.wait().unwrap();
    let mut child = tokio::task::spawn_blocking(start).await.unwrap();
    let b = wait_for(&base, &key, &id, |b| b["status"] == "completed").await;
    let res = results(&base, &key, &b).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(res.len(), 40, "every custom id exactly once across the output and error files");
    assert!(res.values().all(|v| v["response"]["status_code"] == 200), "{res:?}");
    assert_eq!(b["request_counts"]["completed"], 40);
    let store = tollgate::store::SqliteStore::open(&data).await.unwrap();
    one_row_per_line(&store, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_share_a_batch_and_one_finishes_it_when_the_other_dies() {
    let pg = common::services::Postgres::start();
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 1.0).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    // One store (PostgreSQL) and one files directory (a shared volume in production).
    let data = dir.path().join("data");
    let toml = format!("ledger = \"{}\"\ndata_dir = \"{}\"\n{}", pg.url, data.display(), config(&emu.base));
    std::fs::write(&path, toml).unwrap();
    let admin = "tga_batches_replicas_admin_key";
    let ports = [common::llama::free_port(), common::llama::free_port()];
    let mut children = Vec::new();
    for (i, port) in ports.into_iter().enumerate() {
        let path = path.clone();
        children.push(
            tokio::task::spawn_blocking(move || serve(&path, port, admin, &format!("replica-{i}"))).await.unwrap(),
        );
    }
    let bases = ports.map(|p| format!("http://127.0.0.1:{p}"));
    let key = common::post_json(
        &format!("{}/v1/tollgate/keys", bases[0]),
        Some(admin),
        &serde_json::json!({"tenant": "acme"}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    // Created on the first replica, seen by the second: one store.
    let id = submit(&bases[0], &key, lines("llama3-8b", 40, 40)).await;
    let served_by = |base: String| async move { counted(&base, admin, "acme").await };
    // Both replicas run lines (each counts the lines it finished in its metrics)...
    let deadline = Instant::now() + Duration::from_secs(60);
    while served_by(bases[0].clone()).await == 0.0 || served_by(bases[1].clone()).await == 0.0 {
        assert!(Instant::now() < deadline, "a replica ran no line");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...then the first dies mid-batch, and the second finishes it.
    let before = batch(&bases[1], &key, &id).await;
    children[0].kill().unwrap();
    children[0].wait().unwrap();
    assert!(before["request_counts"]["completed"].as_i64().unwrap() < 40, "the kill came after the batch finished");
    let b = wait_for(&bases[1], &key, &id, |b| b["status"] == "completed").await;
    let res = results(&bases[1], &key, &b).await;
    children[1].kill().unwrap();
    children[1].wait().unwrap();
    assert_eq!(res.len(), 40, "every custom id exactly once across the output and error files");
    assert!(res.values().all(|v| v["response"]["status_code"] == 200), "{res:?}");
    let store = tollgate::store::open(Some(&pg.url), &data).await.unwrap();
    one_row_per_line(store.as_ref(), 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_beyond_the_tenants_budget_fail_and_the_batch_completes() {
    let mut small = tollgate::capacity::Profile::builtin("llama3-8b-h100-tp1").unwrap();
    small.model = "llama3-8b".into();
    let emu = common::start_emulator(small, 1, 50.0).await;
    let gw = common::start_gateway(&config(&emu.base)).await;
    let key = gw.key("lean").await;
    // Each line costs about 55 micro-USD at the batch tier (50 output tokens at 1 USD per 1M);
    // the tenant's budget is 120.
    let id = submit(&gw.base, &key, lines("llama3-8b", 10, 50)).await;
    let b = wait_for(&gw.base, &key, &id, |b| b["status"] == "completed").await;
    let (done, failed) =
        (b["request_counts"]["completed"].as_i64().unwrap(), b["request_counts"]["failed"].as_i64().unwrap());
    assert_eq!(done + failed, 10, "{b}");
    assert!((1..=2).contains(&done), "{b}");
    let res = results(&gw.base, &key, &b).await;
    assert_eq!(res.len(), 10);
    let refused: Vec<_> = res.values().filter(|v| v["response"]["status_code"] == 429).collect();
    assert_eq!(refused.len() as i64, failed, "{res:?}");
    assert!(refused.iter().all(|v| v["response"]["body"]["error"]["code"] == "insufficient_quota"), "{refused:?}");
    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), 10, "one ledger row per line");
    let spent: f64 = rows.iter().map(|r| r.revenue_usd).sum();
    assert!(spent <= 0.00012 + 1e-12, "the budget holds: {spent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_cannot_finish_in_its_window_expires() {
    // The operator's window is 2 s; the lines' backend is down, so they stay pending.
    let cfg = config("http://127.0.0.1:9").replace("claim_ttl_s = 3", "claim_ttl_s = 3\ncompletion_window_s = 2");
    let gw = common::start_gateway(&cfg).await;
    let key = gw.key("acme").await;
    let id = submit(&gw.base, &key, lines("down", 4, 3)).await;
    let b = wait_for(&gw.base, &key, &id, |b| b["status"] == "expired").await;
    assert!(b["expired_at"].as_i64().is_some(), "{b}");
    assert_eq!((b["request_counts"]["total"].as_i64(), b["request_counts"]["failed"].as_i64()), (Some(4), Some(4)));
    let res = results(&gw.base, &key, &b).await;
    assert_eq!(res.len(), 4);
    assert!(res.values().all(|v| v["error"]["code"] == "batch_expired"), "{res:?}");
    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), 4, "one ledger row per line");
    assert!(rows.iter().all(|r| r.outcome == "batch_expired" && r.status == 408), "{rows:?}");
}
