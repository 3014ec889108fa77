//! Behaviour of the engine model: batching, chunked prefill, KV limits, prefix caching.

use super::*;
use crate::capacity::DEFAULT_PROFILE;

fn profile() -> Profile {
    Profile::builtin(DEFAULT_PROFILE).unwrap()
}

fn sub(id: RequestId, prompt: u32, out: u32) -> Submission {
    Submission { id, prompt_tokens: prompt, block_hashes: Vec::new(), output_tokens: out }
}

/// Runs until idle; returns (engine time of each request's first token, of its last token).
fn run(e: &mut Engine) -> std::collections::HashMap<RequestId, (f64, f64)> {
    let mut t = std::collections::HashMap::new();
    while let Some(step) = e.step() {
        for ev in step.events {
            match ev {
                Event::Token { id, index, last, .. } => {
                    let entry = t.entry(id).or_insert((f64::NAN, f64::NAN));
                    if index == 0 {
                        entry.0 = e.clock();
                    }
                    if last {
                        entry.1 = e.clock();
                    }
                }
                Event::Prefilled { id, .. } => {
                    t.insert(id, (e.clock(), e.clock()));
                }
            }
        }
    }
    t
}

#[test]
fn single_request_prefills_then_decodes_one_token_per_step() {
    let p = profile();
    let mut e = Engine::new(p.clone());
    e.submit(sub(1, 1000, 10)).unwrap();
    let first = e.step().unwrap();
    assert_eq!(first.work.prefill_tokens, 1000);
    assert_eq!(first.events, vec![Event::Token { id: 1, index: 0, last: false, cached: 0 }]);
    let expect = p.prefill_ms(1000.0, 1e6) / 1000.0;
    assert!((first.duration - expect).abs() < 1e-12);
    let mut steps = 1;
    while let Some(s) = e.step() {
        assert_eq!(s.work.decode_seqs, 1);
        steps += 1;
    }
    assert_eq!(steps, 10);
    assert!(e.is_idle());
    assert_eq!(e.load().kv_usage, 0.0);
}

#[test]
fn long_prompt_is_prefilled_in_chunks_within_the_step_budget() {
    let p = profile();
    let budget = p.max_step_tokens;
    let mut e = Engine::new(p);
    e.submit(sub(1, 2 * budget + 100, 2)).unwrap();
    let a = e.step().unwrap();
    let b = e.step().unwrap();
    let c = e.step().unwrap();
    assert_eq!((a.work.prefill_tokens, b.work.prefill_tokens, c.work.prefill_tokens), (budget, budget, 100));
    assert!(a.events.is_empty() && b.events.is_empty());
    assert_eq!(c.events.len(), 1);
    // Chunks sum to the same attention work as one prompt.
    let pairs = a.work.prefill_pairs + b.work.prefill_pairs + c.work.prefill_pairs;
    assert_eq!(pairs, f64::from(2 * budget + 100).powi(2));
}

#[test]
fn concurrent_requests_share_decode_steps_and_finish_sooner_than_in_series() {
    let p = profile();
    let mut series = 0.0;
    for id in 0..16 {
        let mut e = Engine::new(p.clone());
        e.submit(sub(id, 200, 100)).unwrap();
        run(&mut e);
        series += e.clock();
    }
    let mut e = Engine::new(p);
    for id in 0..16 {
        e.submit(sub(id, 200, 100)).unwrap();
    }
    let mut max_batch = 0;
    while let Some(s) = e.step() {
        max_batch = max_batch.max(s.work.decode_seqs);
    }
    assert_eq!(max_batch, 16);
    assert!(e.clock() < series / 5.0, "batched {} vs series {}", e.clock(), series);
}

#[test]
fn batch_size_is_capped_and_the_rest_wait() {
    let mut p = profile();
    p.max_batch = 4;
    let mut e = Engine::new(p);
    for id in 0..10 {
        e.submit(sub(id, 100, 50)).unwrap();
    }
    e.step().unwrap();
    assert_eq!(e.load(), Load { running: 4, waiting: 6, kv_usage: e.load().kv_usage });
    let t = run(&mut e);
    assert_eq!(t.len(), 10);
    // FCFS: the fifth request starts only after one of the first four finished.
    assert!(t[&4].0 >= t[&0].1);
}

#[test]
fn requests_wait_when_the_kv_cache_is_full() {
    let mut p = profile();
    p.kv_tokens = 4096;
    p.max_context = 4096;
    let mut e = Engine::new(p);
    e.submit(sub(1, 3000, 20)).unwrap();
    e.submit(sub(2, 3000, 20)).unwrap();
    e.step().unwrap();
    e.step().unwrap();
    assert_eq!((e.load().running, e.load().waiting), (1, 1));
    assert!(e.load().kv_usage > 0.7);
    let t = run(&mut e);
    assert!(t[&2].0 > t[&1].1, "second starts after the first frees its KV");
}

#[test]
fn decode_growth_beyond_kv_preempts_the_newest_sequence() {
    let mut p = profile();
    p.kv_tokens = 1200;
    p.max_context = 1200;
    let mut e = Engine::new(p);
    e.submit(sub(1, 500, 300)).unwrap();
    e.submit(sub(2, 500, 300)).unwrap();
    let t = run(&mut e);
    assert!(e.counters().preemptions >= 1);
    assert_eq!(t.len(), 2, "both finish despite preemption");
    assert_eq!(e.counters().generated_tokens, 600);
    assert!(t[&2].1 > t[&1].1);
    assert_eq!(e.load().kv_usage, 0.0);
}

#[test]
fn shared_prefix_skips_prefill_and_lru_evicts_it_under_pressure() {
    let mut p = profile();
    p.kv_tokens = 8 * u64::from(BLOCK_TOKENS);
    p.max_context = 4 * BLOCK_TOKENS;
    let mut e = Engine::new(p);
    let with = |id, hashes: Vec<u64>| Submission {
        id,
        prompt_tokens: 3 * BLOCK_TOKENS + 100,
        block_hashes: hashes,
        output_tokens: 4,
    };
    e.submit(with(1, vec![11, 12, 13])).unwrap();
    let cold = e.step().unwrap();
    run(&mut e);
    assert_eq!(cold.work.prefill_tokens, 3 * BLOCK_TOKENS + 100);

    e.submit(with(2, vec![11, 12, 99])).unwrap();
    let warm = e.step().unwrap();
    assert_eq!(e.cached_tokens(2), Some(2 * BLOCK_TOKENS));
    assert_eq!(warm.work.prefill_tokens, BLOCK_TOKENS + 100);
    assert!(warm.duration < cold.duration);
    run(&mut e);
    assert_eq!(e.counters().prefix_hit_tokens, u64::from(2 * BLOCK_TOKENS));

    // Other prompts fill the cache; the least recently used blocks (11, 12, 13, 99) go first.
    for id in 3..6 {
        e.submit(with(id, vec![id * 100, id * 100 + 1, id * 100 + 2])).unwrap();
        run(&mut e);
    }
    e.submit(with(9, vec![11, 12, 13])).unwrap();
    let evicted = e.step().unwrap();
    assert_eq!(evicted.work.prefill_tokens, 3 * BLOCK_TOKENS + 100);
}

#[test]
fn fully_cached_prompt_still_computes_its_last_token() {
    let mut e = Engine::new(profile());
    let s = |id| Submission { id, prompt_tokens: 2 * BLOCK_TOKENS, block_hashes: vec![1, 2], output_tokens: 1 };
    e.submit(s(1)).unwrap();
    run(&mut e);
    e.submit(s(2)).unwrap();
    let step = e.step().unwrap();
    assert_eq!(step.work.prefill_tokens, BLOCK_TOKENS);
}

#[test]
fn prefill_only_requests_finish_without_tokens() {
    let mut e = Engine::new(profile());
    e.submit(sub(7, 64, 0)).unwrap();
    let s = e.step().unwrap();
    assert_eq!(s.events, vec![Event::Prefilled { id: 7, cached: 0 }]);
    assert!(e.is_idle());
}

#[test]
fn abort_frees_everything_and_bad_submissions_are_refused() {
    let p = profile();
    let max = p.max_context;
    let mut e = Engine::new(p);
    e.submit(sub(1, 1000, 100)).unwrap();
    e.step().unwrap();
    assert!(e.load().kv_usage > 0.0);
    assert!(e.abort(1));
    assert!(!e.abort(1));
    assert_eq!(e.load(), Load::default());
    assert!(e.step().is_none());
    assert_eq!(e.submit(sub(2, 0, 1)), Err(SubmitError::EmptyPrompt));
    assert!(matches!(e.submit(sub(3, max, 1)), Err(SubmitError::TooLong { .. })));
    e.submit(sub(4, 10, 1)).unwrap();
    assert_eq!(e.submit(sub(4, 10, 1)), Err(SubmitError::Duplicate(4)));
}
