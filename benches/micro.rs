//! Micro-benchmarks of the request path's pieces and of the allocator's background work: one
//! admission decision, the whole pricing step, a price-board read, the SSE relay's work per
//! chunk, a prompt's token count, and one LP solve for 1,000 classes x 50 pools.
//! `bench/run.sh` runs them and puts the figures in docs/benchmarks.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tollgate::admission::{decide, Ask, Candidate};
use tollgate::allocator::lp::{solve, LpClass, LpOption, LpPool, Planner};

/// A fleet of two pools (a big model with a cheaper fallback) and one tenant.
fn fleet() -> tollgate::config::Config {
    tollgate::config::Config::from_toml(
        r#"
[[backends]]
name = "a"
url = "http://127.0.0.1:1"
[[backends]]
name = "b"
url = "http://127.0.0.1:2"
[[models]]
name = "big"
backends = ["a"]
fallbacks = [{ model = "small", quality = 0.6 }]
capacity = { profile = "llama2-70b-h100-tp4", replicas = 4 }
[[models]]
name = "small"
backends = ["b"]
capacity = { profile = "llama3-8b-h100-tp1", replicas = 8 }
[[tiers]]
name = "t"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "acme"
tier = "t"
"#,
        "bench",
    )
    .unwrap()
}

/// The whole pricing step the gateway runs per request: the class's pools and their work, each
/// pool's live price and room, then the decision.
fn priced_admission(c: &mut Criterion) {
    let cfg = fleet();
    let alloc = tollgate::allocator::Allocator::new(&cfg).unwrap();
    let class = tollgate::allocator::forecast::ClassKey::new("acme", "big");
    c.bench_function("priced admission (pools, prices, room, decision)", |b| {
        b.iter(|| {
            let options = alloc.options(&cfg, black_box(&class), 500.0, 200.0).unwrap();
            let cands: Vec<Candidate> = options
                .iter()
                .map(|o| Candidate {
                    pool: o.pool,
                    quality: o.quality,
                    work: o.work,
                    price: alloc.price(o.pool),
                    low_price: 0.0,
                    room_left: alloc.load(o.pool).room() - alloc.load(o.pool).inflight(),
                    prefill: o.work / 2.0,
                    ttft_s: 0.0,
                })
                .collect();
            decide(&Ask { value: 0.0009, tokens: 700.0, window_left: None, ttft_slo_s: f64::INFINITY }, &cands)
        })
    });
}

/// What admission reads per candidate pool: the live price (board, correction, scarcity).
fn board_read(c: &mut Criterion) {
    let cfg = fleet();
    let alloc = tollgate::allocator::Allocator::new(&cfg).unwrap();
    c.bench_function("price-board read (one pool's live price)", |b| b.iter(|| alloc.price(black_box(0))));
}

/// The relay's work for one upstream chunk of a stream: SSE framing, reading the event for
/// usage and text, choosing what to forward.
fn sse_relay(c: &mut Criterion) {
    let chunk = bytes::Bytes::from_static(br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":" hello"},"finish_reason":null}]}

"#);
    let mut tally = tollgate::api::tally::Tally::new(false);
    c.bench_function("SSE relay, per chunk (one content event)", |b| {
        b.iter(|| tally.process(black_box(chunk.clone())))
    });
}

/// Translating one chat stream event into Anthropic's Messages events (the `/v1/messages`
/// stream's extra work per chunk, beside the relay's), and a short request into chat.
fn messages_translation(c: &mut Criterion) {
    let chunk = br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":" hello"},"finish_reason":null}]}

"#;
    let mut t = tollgate::api::anthropic::stream::Translator::new("m");
    t.push(chunk);
    c.bench_function("Messages stream translation, per chunk (one text delta)", |b| {
        b.iter(|| t.push(black_box(chunk)))
    });
    let echo = tollgate::api::responses::response::Echo::of(&serde_json::json!({"model": "m"}));
    let mut r = tollgate::api::responses::stream::Translator::new(echo);
    r.push(chunk);
    c.bench_function("Responses stream translation, per chunk (one text delta)", |b| {
        b.iter(|| r.push(black_box(chunk)))
    });
    let req: serde_json::Value = serde_json::from_str(
        r#"{"model":"m","max_tokens":256,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"Summarise the opportunity cost of serving this request in one sentence, please."}]}"#,
    )
    .unwrap();
    c.bench_function("Messages request translation, short prompt", |b| {
        b.iter(|| tollgate::api::anthropic::request::to_chat(black_box(&req)).unwrap())
    });
    let req: serde_json::Value = serde_json::from_str(
        r#"{"model":"m","max_output_tokens":256,"instructions":"You are a helpful assistant.","input":"Summarise the opportunity cost of serving this request in one sentence, please."}"#,
    )
    .unwrap();
    c.bench_function("Responses request translation, short prompt", |b| {
        b.iter(|| tollgate::api::responses::request::to_chat(black_box(&req)).unwrap())
    });
    // The other way, for an Anthropic upstream: a chat request out, a text delta back as chat.
    let up = br#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" hello"}}

"#;
    let mut m = tollgate::api::anthropic::upstream_stream::FromMessages::new();
    m.push(up);
    c.bench_function("Anthropic upstream stream to chat, per chunk (one text delta)", |b| {
        b.iter(|| m.push(black_box(up)))
    });
    let req: serde_json::Value = serde_json::from_str(
        r#"{"model":"m","max_tokens":256,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the opportunity cost of serving this request in one sentence, please."}]}"#,
    )
    .unwrap();
    c.bench_function("chat request to an Anthropic upstream, short prompt", |b| {
        b.iter(|| tollgate::api::anthropic::upstream::request(black_box(&req)).unwrap())
    });
    // And for a Responses upstream.
    let up = br#"event: response.output_text.delta
data: {"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":" hello","sequence_number":5}

"#;
    let mut r = tollgate::api::responses::upstream_stream::FromResponses::new();
    r.push(up);
    c.bench_function("Responses upstream stream to chat, per chunk (one text delta)", |b| {
        b.iter(|| r.push(black_box(up)))
    });
    c.bench_function("chat request to a Responses upstream, short prompt", |b| {
        b.iter(|| tollgate::api::responses::upstream::request(black_box(&req)).unwrap())
    });
}

/// Counting a short chat prompt's tokens (cl100k_base), as admission does for every request.
fn token_count(c: &mut Criterion) {
    let msgs: Vec<tollgate::api::openai::ChatMessage> = serde_json::from_str(
        r#"[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Summarise the opportunity cost of serving this request in one sentence, please."}]"#,
    )
    .unwrap();
    c.bench_function("token count, short chat prompt (cl100k_base)", |b| {
        b.iter(|| tollgate::api::tokens::chat_prompt_count(black_box(&msgs)))
    });
}

/// An exact-cache lookup on a cache of 10,000 entries: the request's canonical key (SHA-256 over
/// tenant, model and parameters) and the moka get, as the gateway does before admission.
fn cache_lookup(c: &mut Criterion) {
    use tollgate::cache::{Cached, Kind, ResponseCache};
    let cache = ResponseCache::new(&tollgate::config::CacheConfig::default()).expect("no model to load");
    let tier: tollgate::config::TierConfig =
        toml::from_str("name = \"t\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 1.0").unwrap();
    let answer = br#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"An answer of a few words."},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":7}}"#;
    let request = |i: usize| {
        serde_json::json!({"model": "m", "temperature": 0, "max_tokens": 64,
            "messages": [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": format!("Question number {i}, please answer briefly.")}]})
    };
    for i in 0..10_000 {
        let (probe, _) = futures::executor::block_on(cache.lookup(
            Some(&tier),
            "acme",
            "m",
            "/v1/chat/completions",
            Kind::Chat,
            &request(i),
        ))
        .unwrap();
        cache.store(probe, Cached::from_whole(Kind::Chat, answer).unwrap());
    }
    let hit = request(4_321);
    c.bench_function("exact cache lookup, hit (key + get; 10,000 entries)", |b| {
        b.iter(|| {
            futures::executor::block_on(cache.lookup(
                Some(&tier),
                "acme",
                "m",
                "/v1/chat/completions",
                Kind::Chat,
                black_box(&hit),
            ))
        })
    });
    let index = tollgate::cache::semantic::Index::new(10_000, std::time::Duration::from_secs(3600));
    let scope = tollgate::cache::key::Scope([7; 32]);
    let unit = |seed: usize| {
        let v: Vec<f32> = (0..384).map(|k| ((seed * 31 + k * 17) % 97) as f32 - 48.0).collect();
        tollgate::cache::semantic::normalised(v).unwrap()
    };
    use tollgate::cache::semantic::Salient;
    for i in 0..10_000 {
        let words = Salient::of(&format!("What is the population of City{i} in 2020?"));
        index.insert(scope, unit(i), Some(words), std::sync::Arc::new(Cached::from_whole(Kind::Chat, answer).unwrap()));
    }
    let q = unit(123_456);
    let words = Salient::of("What is the population of City77 in 2020?");
    c.bench_function("semantic nearest neighbour (10,000 x 384 in one scope)", |b| {
        b.iter(|| index.nearest(black_box(&scope), black_box(&q), Some(&words), 0.95))
    });
}

/// The router's estimate for a short prompt: features (hashed n-grams) and the logistic score.
fn router_estimate(c: &mut Criterion) {
    use tollgate::routing::model::{Example, RouterModel, TrainParams};
    let examples: Vec<Example> = (0..500)
        .map(|i| Example {
            text: format!("question {i} about topic {}", i % 7),
            weak_as_good: i % 3 != 0,
            embedding: vec![],
        })
        .collect();
    let m = RouterModel::train(&examples, TrainParams::default(), vec![]);
    let prompt = "Summarise the opportunity cost of serving this request in one sentence, please.";
    c.bench_function("router estimate, short prompt", |b| b.iter(|| m.p_weak_as_good(black_box(prompt), None)));
}

/// The extraction watch: what a request's guard stage reads (its tenant's standing), and what the
/// watch's own thread does per arrival (the prompt's sign, the windows, two scores).
fn extraction_watch(c: &mut Criterion) {
    use tollgate::guard::sketch::sign;
    use tollgate::guard::tracker::{Arrival, Tracker};
    let watch = tollgate::guard::Watch::start(tollgate::guard::Settings::default());
    for i in 0..100u64 {
        watch.arrive(tollgate::guard::Seen {
            request_id: i,
            tenant: "acme".into(),
            key: "k".into(),
            t_ms: i as i64,
            text: Box::new(|| Some("Why is the sky blue?".into())),
            logprobs: 0.0,
            max_tokens: None,
        });
    }
    while watch.tenant("acme").is_none() {
        std::thread::yield_now();
    }
    c.bench_function("extraction watch, request path: the tenant's standing", |b| {
        b.iter(|| watch.tenant(black_box("acme")).map(|s| s.score()))
    });
    let mut t = Tracker::new(tollgate::guard::Settings::default());
    let prompt = "Answer the following question. Think step by step and explain your reasoning in full detail, \
                  then state the final answer. Why do leaves change colour in autumn, and what pigments are involved?";
    let mut i = 0u64;
    c.bench_function("extraction watch, its thread per arrival (sign, windows, scores; 256 in the window)", |b| {
        b.iter(|| {
            i += 1;
            let a = Arrival {
                id: i,
                tenant: "acme".into(),
                key: "k".into(),
                t_ms: i as i64 * 100,
                sign: sign(black_box(prompt)),
                logprobs: 1.0,
                max_tokens: Some(512),
            };
            t.arrive(a);
            t.complete(i, 40, 512)
        })
    });
}

fn admission(c: &mut Criterion) {
    let cands = [
        Candidate {
            pool: 0,
            quality: 1.0,
            work: 0.25,
            price: 0.02,
            low_price: 0.0,
            prefill: 0.1,
            room_left: 3.0,
            ttft_s: 0.1,
        },
        Candidate {
            pool: 1,
            quality: 0.6,
            work: 0.04,
            price: 0.01,
            low_price: 0.0,
            prefill: 0.1,
            room_left: 9.0,
            ttft_s: 0.1,
        },
        Candidate {
            pool: 2,
            quality: 0.8,
            work: 0.10,
            price: 0.03,
            low_price: 0.0,
            prefill: 0.1,
            room_left: 0.05,
            ttft_s: 0.1,
        },
    ];
    let ask = Ask { value: 0.0011, tokens: 300.0, window_left: None, ttft_slo_s: f64::INFINITY };
    c.bench_function("admission decision (3 candidate pools)", |b| {
        b.iter(|| decide(black_box(&ask), black_box(&cands)))
    });
}

/// A fleet of 50 pools, and 1,000 classes each with its own pool and two fallbacks, demand at
/// about twice the capacity so that prices are positive.
fn big_problem() -> (Vec<LpPool>, Vec<LpClass>) {
    let pools: Vec<LpPool> = (0..50)
        .map(|i| LpPool {
            capacity: 2.0 + (i % 7) as f64,
            cost: 0.0001 * (1 + i % 5) as f64,
            watts: 700.0,
            site: Some(i % 5),
        })
        .collect();
    let classes = (0..1000)
        .map(|k| {
            let own = k % 50;
            LpClass {
                rate: 0.2 + (k % 13) as f64 * 0.05,
                value: 0.0005 + (k % 17) as f64 * 0.0002,
                options: vec![
                    LpOption { pool: own, quality: 1.0, work: 0.1 + (k % 11) as f64 * 0.02 },
                    LpOption { pool: (own + 7) % 50, quality: 0.7, work: 0.05 },
                    LpOption { pool: (own + 19) % 50, quality: 0.5, work: 0.03 },
                ],
                reserved: if k % 10 == 0 { 0.01 } else { 0.0 },
            }
        })
        .collect();
    (pools, classes)
}

fn lp(c: &mut Criterion) {
    let (pools, classes) = big_problem();
    let sites = vec![40_000.0; 5];
    let mut g = c.benchmark_group("lp");
    g.sample_size(20);
    g.bench_function("solve 1000 classes x 50 pools", |b| b.iter(|| solve(&pools, &sites, &classes, 60.0).unwrap()));
    // The gateway's case: every interval, the same classes with demand that moved since the last
    // solve (the planner keeps its set-up between solves of one shape).
    let mut planner = Planner::default();
    let moved: Vec<Vec<LpClass>> = (0..4)
        .map(|i| {
            let mut c = classes.clone();
            c.iter_mut().enumerate().for_each(|(k, c)| c.rate *= 1.0 + 0.05 * ((k + i) % 4) as f64);
            c
        })
        .collect();
    let mut turn = 0;
    g.bench_function("re-solve 1000 classes x 50 pools, demand moved", |b| {
        b.iter(|| {
            turn += 1;
            planner.solve(&pools, &sites, &moved[turn % 4], 60.0).unwrap()
        })
    });
    g.finish();
}

/// The semantic cache's in-process embeddings (all-MiniLM-L6-v2 on the CPU): one short prompt,
/// and a batch of 16 (per batch), through onnxruntime where it is installed in the folder (and
/// then one prompt through candle too, for the ratio), else through candle. Needs
/// `TOLLGATE_MINILM_DIR` (`scripts/install-embeddings.sh`); skipped without it. Run under
/// `taskset -c 0` for the one-core figure.
fn embed(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("TOLLGATE_MINILM_DIR") else {
        eprintln!("embed: TOLLGATE_MINILM_DIR not set, skipped");
        return;
    };
    let dir = std::path::Path::new(&dir);
    let model = tollgate::cache::local::LocalModel::load(dir).unwrap();
    let engine = if model.is_onnx() { "onnxruntime" } else { "candle" };
    let short = "What is the fastest way to lose weight?";
    let mut g = c.benchmark_group("embed");
    g.bench_function(format!("one_short_prompt_{engine}"), |b| b.iter(|| model.embed(black_box(&[short])).unwrap()));
    if model.is_onnx() {
        // The same prompt through candle, loaded only here (the model above already is candle otherwise).
        let candle = tollgate::cache::local::LocalModel::load_candle(dir).unwrap();
        g.bench_function("one_short_prompt_candle", |b| b.iter(|| candle.embed(black_box(&[short])).unwrap()));
    }
    let batch: Vec<&str> =
        [short, "How do I learn Rust quickly?", "What is the capital of Australia?", "Why is the sky blue?"]
            .into_iter()
            .cycle()
            .take(16)
            .collect();
    g.bench_function(format!("batch_of_16_{engine}"), |b| b.iter(|| model.embed(black_box(&batch)).unwrap()));
    g.finish();
}

criterion_group!(
    benches,
    embed,
    admission,
    priced_admission,
    board_read,
    sse_relay,
    messages_translation,
    token_count,
    cache_lookup,
    router_estimate,
    extraction_watch,
    lp
);
criterion_main!(benches);
