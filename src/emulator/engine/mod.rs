//! A pure, clock-agnostic model of one inference engine with vLLM-style continuous batching.
//!
//! The engine owns a running batch, a FCFS waiting queue and a KV cache with prefix caching.
//! Each call to [`Engine::step`] schedules one step (decodes first, then chunks of prefill within
//! a per-step token budget), advances the engine's own clock by the step's modelled duration and
//! returns what the step produced. It knows nothing of tokio or wall time: the real-time server
//! sleeps for the duration before delivering the events, the simulator just adds it to a virtual
//! clock.

pub mod kv;

use crate::capacity::{Profile, StepWork};
use kv::{KvCache, BLOCK_TOKENS};
use std::collections::VecDeque;

pub type RequestId = u64;

/// A request handed to the engine.
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: RequestId,
    pub prompt_tokens: u32,
    /// Hashes naming the prompt's leading 512-token blocks (chained, so equal leading hashes
    /// mean an equal prefix). May be shorter than the number of full blocks; never longer.
    pub block_hashes: Vec<u64>,
    /// Exact number of tokens to generate; 0 for a prefill-only request (embeddings).
    pub output_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("a request needs at least one prompt token")]
    EmptyPrompt,
    #[error("{needed} tokens exceed the maximum context of {max_context}")]
    TooLong { needed: u64, max_context: u32 },
    #[error("request id {0} is already in the engine")]
    Duplicate(RequestId),
}

/// What one step produced for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Output token number `index` (from 0). `last` is set on the final token; `cached` is the
    /// number of prompt tokens that came from the prefix cache.
    Token { id: RequestId, index: u32, last: bool, cached: u32 },
    /// A prefill-only request finished its prompt.
    Prefilled { id: RequestId, cached: u32 },
}

/// The outcome of one step: how long it took (seconds) and what it produced.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub duration: f64,
    pub work: StepWork,
    pub events: Vec<Event>,
}

/// A snapshot of the engine's load, in vLLM's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub running: usize,
    pub waiting: usize,
    /// Share of KV-cache tokens held by live requests (evictable prefix blocks count as free).
    pub kv_usage: f64,
}

/// Counters since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub steps: u64,
    pub prompt_tokens_computed: u64,
    pub generated_tokens: u64,
    pub prefix_queried_tokens: u64,
    pub prefix_hit_tokens: u64,
    pub preemptions: u64,
}

#[derive(Debug)]
struct Seq {
    id: RequestId,
    prompt: u32,
    hashes: Vec<u64>,
    target: u32,
    generated: u32,
    /// Context to compute before decoding: the prompt, plus tokens already generated when
    /// the sequence was preempted and must recompute (vLLM's recompute preemption).
    prefill_len: u32,
    /// Context tokens in the KV cache so far (cached prefix included).
    computed: u32,
    /// Prefix blocks held pinned, in order from the start of the prompt.
    pinned: Vec<u64>,
    /// Private KV tokens held.
    private: u64,
    /// Prompt tokens served from the prefix cache when first admitted.
    cached_tokens: u32,
    sched: Sched,
}

impl Seq {
    fn prefilling(&self) -> bool {
        self.computed < self.prefill_len
    }
}

/// Which output tokens a step reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Emit {
    /// Every token (the emulator server streams them).
    #[default]
    EveryToken,
    /// A request's first and last tokens only (the simulator times nothing else).
    FirstAndLast,
}

#[derive(Debug)]
pub struct Engine {
    profile: Profile,
    emit: Emit,
    /// Indices of the running sequences that finished in the step (a buffer kept between steps).
    finished: Vec<usize>,
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    kv: KvCache,
    clock: f64,
    counters: Counters,
}

impl Engine {
    pub fn new(profile: Profile) -> Self {
        let kv = KvCache::new(profile.kv_tokens);
        Self {
            profile,
            emit: Emit::default(),
            finished: Vec::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            kv,
            clock: 0.0,
            counters: Counters::default(),
        }
    }

    /// The same engine, reporting only the tokens that `emit` names.
    pub fn emitting(mut self, emit: Emit) -> Self {
        self.emit = emit;
        self
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Seconds of engine time elapsed (the sum of step durations).
    pub fn clock(&self) -> f64 {
        self.clock
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn load(&self) -> Load {
        let cap = self.kv.capacity().max(1) as f64;
        Load {
            running: self.running.len(),
            waiting: self.waiting.len(),
            kv_usage: (self.kv.capacity() - self.kv.available()) as f64 / cap,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    /// Prompt tokens of `id` that came from the prefix cache, if it is in the engine.
    pub fn cached_tokens(&self, id: RequestId) -> Option<u32> {
        self.running.iter().chain(self.waiting.iter()).find(|s| s.id == id).map(|s| s.cached_tokens)
    }

    /// Queues a request. It waits until the batch has room and its prompt fits in the KV cache.
    pub fn submit(&mut self, s: Submission) -> Result<(), SubmitError> {
        if s.prompt_tokens == 0 {
            return Err(SubmitError::EmptyPrompt);
        }
        let needed = u64::from(s.prompt_tokens) + u64::from(s.output_tokens);
        if needed > u64::from(self.profile.max_context) {
            return Err(SubmitError::TooLong { needed, max_context: self.profile.max_context });
        }
        if self.running.iter().chain(self.waiting.iter()).any(|q| q.id == s.id) {
            return Err(SubmitError::Duplicate(s.id));
        }
        let full_blocks = (s.prompt_tokens / BLOCK_TOKENS) as usize;
        let mut hashes = s.block_hashes;
        hashes.truncate(full_blocks);
        self.waiting.push_back(Seq {
            id: s.id,
            prompt: s.prompt_tokens,
            hashes,
            target: s.output_tokens,
            generated: 0,
            prefill_len: s.prompt_tokens,
            computed: 0,
            pinned: Vec::new(),
            private: 0,
            cached_tokens: 0,
            sched: Sched::Idle,
        });
        Ok(())
    }

    /// Removes a request wherever it is and frees what it holds. False if unknown.
    pub fn abort(&mut self, id: RequestId) -> bool {
        if let Some(i) = self.running.iter().position(|s| s.id == id) {
            let s = self.running.remove(i);
            self.release(&s);
            return true;
        }
        if let Some(i) = self.waiting.iter().position(|s| s.id == id) {
            let s = self.waiting.remove(i).expect("index from position");
            self.release(&s);
            return true;
        }
        false
    }

    fn release(&mut self, s: &Seq) {
        for h in &s.pinned {
            self.kv.unpin(*h);
        }
        self.kv.free(s.private);
    }

    /// Runs one step; `None` when there is nothing to do.
    pub fn step(&mut self) -> Option<Step> {
        let mut budget = self.profile.max_step_tokens;
        let mut work = StepWork::default();
        let mut events = Vec::new();
        // Running sequences first, in admission order.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            if self.running[i].prefilling() {
                Self::prefill_chunk(&mut self.running[i], &mut budget, &mut work);
                i += 1;
                continue;
            }
            if !self.kv.alloc(1) {
                // Out of KV: preempt the most recently admitted sequence (maybe this one).
                let victim = self.running.pop().expect("non-empty");
                self.preempt(victim);
                continue;
            }
            let s = &mut self.running[i];
            s.private += 1;
            s.sched = Sched::Decode;
            work.decode_seqs += 1;
            work.decode_ctx_tokens += u64::from(s.prompt + s.generated);
            budget -= 1;
            i += 1;
        }
        // Then admit waiting sequences, FCFS, while the batch, the budget and the KV cache allow.
        while budget > 0 && self.running.len() < self.profile.max_batch as usize {
            let Some(mut s) = self.waiting.pop_front() else {
                break;
            };
            if !self.admit(&mut s) {
                self.waiting.push_front(s);
                break;
            }
            Self::prefill_chunk(&mut s, &mut budget, &mut work);
            self.running.push(s);
        }
        if work.decode_seqs == 0 && work.prefill_tokens == 0 {
            return None;
        }
        self.finish_step(&mut events);
        let duration = self.profile.step_seconds(&work);
        self.clock += duration;
        self.counters.steps += 1;
        self.counters.prompt_tokens_computed += u64::from(work.prefill_tokens);
        Some(Step { duration, work, events })
    }

    /// Takes the KV tokens for `s`'s uncached context and pins its cached prefix blocks.
    /// False (and nothing taken) if the KV cache cannot hold it now.
    fn admit(&mut self, s: &mut Seq) -> bool {
        // At least one token is always computed, so a fully cached prompt still runs a step.
        let max_hit_blocks = ((s.prefill_len - 1) / BLOCK_TOKENS) as usize;
        let hit_blocks = self.kv.cached_prefix(&s.hashes).min(max_hit_blocks);
        let hit_tokens = hit_blocks as u32 * BLOCK_TOKENS;
        let need = u64::from(s.prefill_len - hit_tokens);
        // Pin the hits first so that making room cannot evict them.
        for h in &s.hashes[..hit_blocks] {
            self.kv.pin(*h);
        }
        if !self.kv.alloc(need) {
            for h in &s.hashes[..hit_blocks] {
                self.kv.unpin(*h);
            }
            return false;
        }
        s.pinned = s.hashes[..hit_blocks].to_vec();
        s.private = need;
        s.computed = hit_tokens;
        if s.generated == 0 {
            s.cached_tokens = hit_tokens;
            self.counters.prefix_queried_tokens += u64::from(s.prompt);
            self.counters.prefix_hit_tokens += u64::from(hit_tokens);
        }
        true
    }

    fn prefill_chunk(s: &mut Seq, budget: &mut u32, work: &mut StepWork) {
        let c = (s.prefill_len - s.computed).min(*budget);
        work.prefill_tokens += c;
        work.prefill_pairs += f64::from(c) * (2.0 * f64::from(s.computed) + f64::from(c));
        s.computed += c;
        *budget -= c;
        s.sched = if s.computed == s.prefill_len { Sched::PrefillDone } else { Sched::Prefill };
    }

    /// Sends a sequence back to the front of the queue; it will recompute its context.
    fn preempt(&mut self, mut s: Seq) {
        self.release(&s);
        s.pinned.clear();
        s.private = 0;
        s.computed = 0;
        s.prefill_len = s.prompt + s.generated;
        s.sched = Sched::Idle;
        self.counters.preemptions += 1;
        self.waiting.push_front(s);
    }

    /// Applies the results of the scheduled step: tokens out, prefix blocks published,
    /// finished sequences released.
    fn finish_step(&mut self, events: &mut Vec<Event>) {
        let mut finished = std::mem::take(&mut self.finished);
        let every = self.emit == Emit::EveryToken;
        for (i, s) in self.running.iter_mut().enumerate() {
            let emits = match std::mem::replace(&mut s.sched, Sched::Idle) {
                Sched::Idle | Sched::Prefill => false,
                Sched::Decode => true,
                Sched::PrefillDone => {
                    // The prompt's full blocks become shareable prefix-cache blocks.
                    let full = ((s.prompt / BLOCK_TOKENS) as usize).min(s.hashes.len());
                    for h in &s.hashes[s.pinned.len()..full] {
                        self.kv.publish(*h);
                        s.private -= u64::from(BLOCK_TOKENS);
                        s.pinned.push(*h);
                    }
                    if s.target == 0 {
                        events.push(Event::Prefilled { id: s.id, cached: s.cached_tokens });
                        finished.push(i);
                    }
                    s.target > 0
                }
            };
            if emits {
                let last = s.generated + 1 == s.target;
                if every || last || s.generated == 0 {
                    events.push(Event::Token { id: s.id, index: s.generated, last, cached: s.cached_tokens });
                }
                s.generated += 1;
                self.counters.generated_tokens += 1;
                if last {
                    finished.push(i);
                }
            }
        }
        for i in finished.drain(..).rev() {
            let s = self.running.remove(i);
            self.release(&s);
        }
        self.finished = finished;
    }
}

/// What a sequence does in the step being scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sched {
    Idle,
    Decode,
    Prefill,
    PrefillDone,
}

#[cfg(test)]
mod tests;
