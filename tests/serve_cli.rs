//! The `tollgate` binary as a user runs it: `serve` with the embedded default (prints a working
//! demo key, serves through the emulated fleet, drains in-flight streams and flushes the ledger on
//! SIGTERM), and `keys create|list|revoke`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tollgate::store::{SqliteStore, Store};

fn tollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

#[test]
fn serve_embedded_default_then_sigterm_drains_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::llama::free_port();
    let mut child = tollgate()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("TOLLGATE_ADMIN_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut demo, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while demo.is_none() || admin.is_none() {
        assert!(Instant::now() < deadline, "serve did not print its keys");
        let line = lines.next().expect("serve exited early").unwrap();
        if let Some(k) = line.strip_prefix("demo tenant key: ") {
            demo = Some(k.trim().to_string());
        }
        if let Some(k) = line.strip_prefix("admin key:") {
            admin = Some(k.trim().to_string());
        }
    }
    let (demo, admin) = (demo.unwrap(), admin.unwrap());
    // Transparent huge pages are off for the gateway (kernels before 5.0 do not report it).
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    if let Some(thp) = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")) {
        assert_eq!(thp.trim(), "0", "transparent huge pages are on for the gateway");
    }
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let chat = |stream: bool, max: u32| serde_json::json!({"model": "llama3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max, "ignore_eos": true, "stream": stream});
    let r = client.post(format!("{base}/v1/chat/completions")).bearer_auth(&demo).json(&chat(false, 5)).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tollgate-backend"], "emulator-llama3-8b");
    // The embedded default offers OpenAI's service tiers.
    let mut flex = chat(false, 5);
    flex["service_tier"] = "flex".into();
    let r = client.post(format!("{base}/v1/chat/completions")).bearer_auth(&demo).json(&flex).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tollgate-service-tier"], "flex");
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["service_tier"], "flex", "{body}");
    let r = client.get(format!("{base}/v1/tollgate/usage")).bearer_auth(&admin).send().unwrap();
    assert_eq!(r.status(), 200);

    // `tollgate admin` wraps the admin API: the decision just made, the demo tenant, a key
    // created and revoked; a wrong admin key fails with the API's 401.
    let admin_cli = |args: &[&str], key: &str| {
        let out =
            tollgate().arg("admin").args(["--url", &base]).args(args).env("TOLLGATE_ADMIN_KEY", key).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let (ok, out) = loop {
        // The ledger is written in the background: wait for the row.
        let (ok, out) = admin_cli(&["decisions", "--limit", "5"], &admin);
        if !out.contains("\"data\": []") || Instant::now() > deadline {
            break (ok, out);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && v["data"][0]["tenant"] == "demo" && v["data"][0]["status"] == 200, "{out}");
    let (ok, out) = admin_cli(&["tenants"], &admin);
    assert!(ok && out.contains("\"demo\""), "{out}");
    let (ok, out) = admin_cli(&["create-key", "--tenant", "demo", "--label", "cli"], &admin);
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && created["key"].as_str().unwrap().starts_with("tg_"), "{out}");
    let (ok, out) = admin_cli(&["revoke-key", created["id"].as_str().unwrap()], &admin);
    assert!(ok && out.contains("\"revoked\": true"), "{out}");
    let (ok, out) = admin_cli(&["tiers"], "tga_not_the_admin_key");
    assert!(!ok && out.contains("invalid_api_key"), "{out}");

    // A stream of 150 tokens (over a second at the emulated H100's pace) is in flight when
    // SIGTERM arrives: it must complete, and its row must be in the ledger after exit.
    let stream = std::thread::spawn({
        let (base, demo, body) = (base.clone(), demo.clone(), chat(true, 150));
        move || {
            reqwest::blocking::Client::new()
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(demo)
                .json(&body)
                .send()
                .unwrap()
                .text()
                .unwrap()
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let text = stream.join().unwrap();
    assert!(
        text.trim_end().ends_with("data: [DONE]"),
        "the in-flight stream was cut: {}",
        &text[text.len().saturating_sub(200)..]
    );
    assert_eq!(text.matches("\"content\":\" ").count(), 150);
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(SqliteStore::open(&dir.path().join("tollgate-data"))).unwrap();
    let rows = rt.block_on(store.ledger(10)).unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.status == 200 && r.tenant == "demo"));
    assert_eq!(rows.iter().map(|r| r.output_tokens).sum::<i64>(), 160);
    // Newest first: the flex answer was charged half what the same answer cost at the standard tier.
    assert!((rows[1].revenue_usd * 2.0 - rows[2].revenue_usd).abs() < 1e-12, "{rows:?}");
    // The keys are kept for the next start; the store holds only hashes.
    let kept = std::fs::read_to_string(dir.path().join("tollgate-data/demo.key")).unwrap();
    assert_eq!(kept.trim(), demo);
    let db = std::fs::read(dir.path().join("tollgate-data/tollgate.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains(&demo[16..]), "a key secret is stored in the database");
}

#[test]
fn keys_cli_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let out = tollgate().args(args).args(["--data-dir", data.to_str().unwrap()]).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, key, _) = run(&["keys", "create", "--tenant", "demo", "--label", "ci"]);
    assert!(ok);
    let key = key.trim().to_string();
    let id = tollgate::auth::key_id(&key).expect("a well-formed key").to_string();
    let (ok, list, _) = run(&["keys", "list"]);
    assert!(ok && list.contains(&id) && list.contains("active") && !list.contains(&key));
    let (ok, _, _) = run(&["keys", "revoke", &id]);
    assert!(ok);
    let (_, list, _) = run(&["keys", "list"]);
    assert!(list.contains("revoked"));
    let (ok, _, err) = run(&["keys", "revoke", &id]);
    assert!(!ok && err.contains("no active key"));
    let (ok, _, err) = run(&["keys", "create", "--tenant", "nobody"]);
    assert!(!ok && err.contains("unknown tenant"));
}
