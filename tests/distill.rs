//! Opt-in distillation export, end to end: a tenant whose tier keeps pairs gets its answered
//! chat completions (whole and streamed) back from `tollgate export` as OpenAI fine-tuning JSONL,
//! with the answers the clients got, masked as asked and each distinct pair once; the files are
//! readable by the gateway's user alone; a tenant whose tier does not opt in has nothing kept.

mod common;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use tollgate::capacity::Profile;

const TENANTS: &str = r#"
[[tiers]]
name = "distil"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
keep_for_distillation = true
[[tiers]]
name = "standard"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "acme"
tier = "distil"
models = ["*"]
[[tenants]]
name = "globex"
tier = "standard"
models = ["*"]
"#;

/// Sends one chat completion; returns the answer's text as the client saw it.
async fn ask(base: &str, key: &str, prompt: &str, stream: bool) -> String {
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": 12, "stream": stream});
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    if !stream {
        let v: Value = serde_json::from_str(&text).unwrap();
        return v["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

fn export(config: &std::path::Path, tenant: &str, out: &std::path::Path) -> Vec<Value> {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["export", "--config", config.to_str().unwrap(), "--tenant", tenant, "--mask-emails", "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::metadata(out).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::read_to_string(out).unwrap().lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_pairs_export_as_fine_tuning_jsonl_and_nothing_is_kept_for_others() {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 1000.0).await;
    let body =
        format!("{}[[models]]\nname = \"m\"\nbackends = [\"e\"]\n{TENANTS}", common::backend("e", &emu.base, ""));
    let gw = common::start_gateway(&body).await;
    let data = gw._dir.path().to_path_buf();
    let (acme, globex) = (gw.key("acme").await, gw.key("globex").await);

    let asked = [
        ("Summarise the meeting for ann@example.com", false),
        ("Write a haiku about rivers", true),
        ("Write a haiku about rivers", false),
    ];
    let mut expected = BTreeSet::new();
    for (prompt, stream) in asked {
        let answer = ask(&gw.base, &acme, prompt, stream).await;
        assert!(!answer.is_empty());
        expected.insert((prompt.replace("ann@example.com", "[email]"), answer));
        ask(&gw.base, &globex, prompt, stream).await;
    }
    // Pairs are written off the response path: wait for all three.
    let acme_dir = tollgate::distill::tenant_dir(&data, "acme");
    let kept = || -> usize {
        std::fs::read_dir(&acme_dir)
            .map(|d| d.filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok()).map(|t| t.lines().count()).sum())
            .unwrap_or(0)
    };
    for _ in 0..100 {
        if kept() == asked.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(kept(), asked.len());
    for e in std::fs::read_dir(&acme_dir).unwrap() {
        assert_eq!(e.unwrap().metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!tollgate::distill::tenant_dir(&data, "globex").exists(), "nothing kept for a tier that did not opt in");

    let config = data.join("tollgate.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n{body}", data.display().to_string())).unwrap();
    let lines = export(&config, "acme", &data.join("acme.jsonl"));
    let got: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| {
            let m = l["messages"].as_array().expect("messages");
            assert_eq!(l.as_object().unwrap().len(), 1, "only `messages`: {l}");
            assert_eq!((m.len(), &m[0]["role"], &m[1]["role"]), (2, &json!("user"), &json!("assistant")));
            (m[0]["content"].as_str().unwrap().to_string(), m[1]["content"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(lines.len(), got.len(), "each distinct pair once");
    assert_eq!(got, expected, "the answers the client got, the e-mail masked");
    assert!(export(&config, "globex", &data.join("globex.jsonl")).is_empty());
    gw.stop_and_count().await;
}
