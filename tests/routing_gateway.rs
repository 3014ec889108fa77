//! Routing at the gateway: a router model's estimate becomes the fallback's quality (and the
//! value the ledger records), and prefix-aware placement sends prompts sharing a prefix to the
//! backend that holds it, where the engine's prefix cache then hits.

mod common;

use serde_json::{json, Value};
use tollgate::capacity::Profile;
use tollgate::routing::model::{Example, RouterModel, TrainParams};

async fn chat(base: &str, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn profile(model: &str) -> Profile {
    let mut p = Profile::builtin("llama3-8b-h100-tp1").unwrap();
    p.model = model.into();
    p
}

/// The big model's config with `router` (and its embeddings model, if any), falling back to a
/// small one; the big pool's capacity is so dear that every request is worth more on the small.
fn config(big: &str, small: &str, router: &std::path::Path, model_dir: Option<&std::path::Path>) -> String {
    let dir = model_dir.map(|d| format!("router_model_dir = {:?}\n", d.display().to_string())).unwrap_or_default();
    let models = format!(
        "[[models]]\nname = \"big\"\nbackends = [\"b\"]\nrouter = {:?}\n{dir}fallbacks = [{{ model = \"small\", quality = 0.5 }}]\n\
         capacity = {{ profile = \"llama3-8b-h100-tp1\", replicas = 1, cost_per_engine_second = 1000.0 }}\n\
         [[models]]\nname = \"small\"\nbackends = [\"s\"]\ncapacity = {{ profile = \"llama3-8b-h100-tp1\", replicas = 1 }}\n",
        router.display().to_string()
    );
    format!("{}{}{models}{}", common::backend("b", big, ""), common::backend("s", small, ""), common::TIERS_AND_TENANTS)
}

/// Sends each prompt to the big model through a gateway on `cfg`; every one is downgraded, and
/// the ledger's value of each, as a share of its full value, is returned in order.
async fn kept_shares(cfg: &str, prompts: &[&str]) -> Vec<f64> {
    let gw = common::start_gateway(cfg).await;
    let key = gw.key("acme").await;
    for p in prompts {
        let r = chat(
            &gw.base,
            &key,
            json!({"model": "big", "messages": [{"role": "user", "content": p}], "max_tokens": 4}),
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-tollgate-model"], "small");
        assert_eq!(r.headers()["x-tollgate-decision"], "downgrade");
    }
    let rows = gw.stop_and_ledger().await;
    assert_eq!(rows.len(), prompts.len());
    rows.iter()
        .rev()
        .map(|row| row.value_usd / ((row.input_tokens as f64 * 1.0 + row.output_tokens as f64 * 2.0) / 1e6))
        .collect()
}

async fn emulators() -> (common::RunningEmulator, common::RunningEmulator) {
    (common::start_emulator(profile("big"), 1, 50.0).await, common::start_emulator(profile("small"), 1, 50.0).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_estimate_is_the_downgrades_quality() {
    // A router that trusts the cheaper model with sums and not with proofs.
    let examples: Vec<Example> = (0..200)
        .map(|i| match i % 2 {
            0 => Example { text: format!("add {i} and {} please", i + 1), weak_as_good: true, embedding: vec![] },
            _ => Example { text: format!("prove theorem {i} rigorously"), weak_as_good: false, embedding: vec![] },
        })
        .collect();
    let model = RouterModel::train(&examples, TrainParams::default(), vec!["synthetic".into()]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.json");
    model.save(&path).unwrap();

    let (big, small) = emulators().await;
    let cfg = config(&big.base, &small.base, &path, None);
    let prompts = ["add 3 and 4 please", "prove theorem 5 rigorously"];
    let kept = kept_shares(&cfg, &prompts).await;
    for (p, kept) in prompts.iter().zip(kept) {
        let expected = model.p_weak_as_good(p, None).unwrap().clamp(0.01, 1.0);
        assert!((kept - expected).abs() < 1e-9, "{p}: kept {kept}, router says {expected}");
    }
    let easy = model.p_weak_as_good(prompts[0], None).unwrap();
    let hard = model.p_weak_as_good(prompts[1], None).unwrap();
    assert!(easy > 0.9 && hard < 0.1, "{easy} {hard}");

    // A router without fallbacks is a configuration error; a missing file stops the start.
    let bad = cfg.replace("fallbacks = [{ model = \"small\", quality = 0.5 }]\n", "");
    let err = tollgate::config::Config::from_toml(&format!("data_dir = \"x\"\n{bad}"), "t").unwrap_err();
    assert!(err.to_string().contains("models[0].router"), "{err}");
    let missing = cfg.replace(&path.display().to_string(), "/nonexistent/router.json");
    let c =
        tollgate::config::Config::from_toml(&format!("data_dir = {:?}\n{missing}", dir.path().join("d")), "t").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = tollgate::serve::spawn(c, None, listener, None).await.err().expect("start fails");
    assert!(format!("{e:#}").contains("router"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_trained_on_embeddings_gets_them_from_the_same_model_at_the_gateway() {
    // Labels by topic, not by any word the two sets share: cooking is easy, law is hard. The
    // texts are varied, so only what the sentence embedding says about them separates the two.
    let minilm = common::prepared("TOLLGATE_MINILM_DIR");
    let easy = [
        "How long should I boil an egg?",
        "What goes well with roast potatoes?",
        "How do I bake bread at home?",
        "Which spices suit a lentil soup?",
        "Can I freeze cooked rice?",
        "How do I make pancakes fluffy?",
    ];
    let hard = [
        "What is the statute of limitations for fraud?",
        "Can a contract be void for mistake?",
        "What does habeas corpus protect?",
        "When is a search warrant required?",
        "What is adverse possession?",
        "How does a court interpret an ambiguous will?",
    ];
    let local = tollgate::cache::local::LocalModel::load(&minilm).unwrap();
    let texts: Vec<&str> = easy.iter().chain(&hard).copied().collect();
    let vectors = local.embed_head(&texts).unwrap();
    let examples: Vec<Example> = texts
        .iter()
        .zip(&vectors)
        .enumerate()
        .cycle()
        .take(240)
        .map(|(i, (t, v))| Example { text: t.to_string(), weak_as_good: i < easy.len(), embedding: v.clone() })
        .collect();
    let params = TrainParams { buckets: 1, embedding: true, ..TrainParams::default() };
    let model = RouterModel::train_with(&examples, params, vec![], "minilm");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.json");
    model.save(&path).unwrap();

    let prompts = ["What is the best way to fry an onion?", "Is a verbal agreement legally binding?"];
    let expected: Vec<f64> = local
        .embed_head(&prompts)
        .unwrap()
        .iter()
        .zip(prompts)
        .map(|(v, p)| model.p_weak_as_good(p, Some(v)).unwrap())
        .collect();
    assert!(expected[0] > 0.7 && expected[1] < 0.3, "new prompts by topic: {expected:?}");
    assert_eq!(model.p_weak_as_good(prompts[0], None), None, "no estimate without the embedding");

    let (big, small) = emulators().await;
    let cfg = config(&big.base, &small.base, &path, Some(&minilm));
    let kept = kept_shares(&cfg, &prompts).await;
    for (k, e) in kept.iter().zip(&expected) {
        assert!((k - e.clamp(0.01, 1.0)).abs() < 1e-4, "kept {kept:?}, router offline {expected:?}");
    }

    // Without its embeddings model the gateway does not start; a model folder without a router
    // is a configuration error.
    let data = format!("data_dir = {:?}\n", dir.path().join("d"));
    let c = tollgate::config::Config::from_toml(&format!("{data}{}", config(&big.base, &small.base, &path, None)), "t")
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = tollgate::serve::spawn(c, None, listener, None).await.err().expect("start fails");
    assert!(format!("{e:#}").contains("router_model_dir"), "{e:#}");
    let stray = cfg.replace(&format!("router = {:?}\n", path.display().to_string()), "");
    let err = tollgate::config::Config::from_toml(&format!("{data}{stray}"), "t").unwrap_err();
    assert!(err.to_string().contains("router_model_dir"), "{err}");
}

async fn prefix_hits(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("vllm:prefix_cache_hits_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_placement_keeps_a_prefix_on_one_backend_where_it_hits() {
    let mut with_prefix = 0.0;
    for placement in ["prefix", "round_robin"] {
        let emus = [
            common::start_emulator(profile("m"), 1, 100.0).await,
            common::start_emulator(profile("m"), 1, 100.0).await,
        ];
        let cfg = format!(
            "{}{}[[models]]\nname = \"m\"\nbackends = [\"e0\", \"e1\"]\nplacement = \"{placement}\"\n{}",
            common::backend("e0", &emus[0].base, ""),
            common::backend("e1", &emus[1].base, ""),
            common::TIERS_AND_TENANTS
        );
        let gw = common::start_gateway(&cfg).await;
        let key = gw.key("acme").await;
        // Three documents of about 3,000 tokens, each asked about four times, one at a time.
        let docs: Vec<String> = (0..3).map(|d| format!("Document {d}: {}", " lorem ipsum".repeat(1500))).collect();
        let mut served: Vec<Vec<String>> = vec![Vec::new(); 3];
        for q in 0..4 {
            for (d, doc) in docs.iter().enumerate() {
                let body = json!({"model": "m", "max_tokens": 2, "messages": [
                    {"role": "system", "content": doc}, {"role": "user", "content": format!("question {q}")}]});
                let r = chat(&gw.base, &key, body).await;
                assert_eq!(r.status(), 200);
                served[d].push(r.headers()["x-tollgate-backend"].to_str().unwrap().to_string());
                r.bytes().await.unwrap();
            }
        }
        let hits = prefix_hits(&emus[0].base).await + prefix_hits(&emus[1].base).await;
        if placement == "prefix" {
            for s in &served {
                assert!(s.iter().all(|b| *b == s[0]), "a document stays on one backend: {s:?}");
            }
            // Every repeat of a document found its blocks cached: 3 repeats x 3 documents.
            assert!(hits >= 9.0 * 2048.0, "prefix hits {hits}");
            with_prefix = hits;
        } else {
            // Alternating backends: each document visits both, so fewer repeats hit.
            assert!(served.iter().all(|s| s.iter().any(|b| *b != s[0])), "{served:?}");
            assert!(hits < with_prefix, "round-robin hits {hits} vs prefix {with_prefix}");
        }
        gw.stop_and_count().await;
    }
}
