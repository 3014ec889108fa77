//! The evaluation's tenants: normal ones (eight kinds of application replaying the shared prompts
//! at the shipped traces' timing, slowed or sped to the tenant's rate, with the traces' output
//! lengths) and extraction campaigns (four kinds at three rates, open or stealthy). What each
//! kind does is written out here, so the evaluation's assumptions can be read and argued with.

use super::data::{Prompts, Timing};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Quora questions as a chat user asks them; answers as long as the trace's.
    Chat,
    /// GSM8K problems behind a tutoring app's template; answers capped at 512.
    Tutor,
    /// MMLU questions of two to four subjects; short answers.
    Study,
    /// A classification pipeline: one template, `max_tokens` 1-3 (always reached), top-5 logprobs;
    /// half of them machine-steady.
    Classifier,
    /// "Write a blog post about ...": long answers to short prompts, bursty.
    Writer,
    /// An evaluation harness running MMLU in order: steady, tiny answers at their cap, logprobs
    /// in half of them: the normal tenant that looks most like a sweep.
    EvalRunner,
    /// A company's chat traffic through three to ten keys.
    MultiKey,
    /// An agent: long system prompt, tool-style template, moderate answers.
    Agent,
    /// Campaign: every MMLU subject and GSM8K in order, "explain step by step in full detail",
    /// long answers.
    Sweep,
    /// Campaign: Quora questions behind templates asking for several detailed answers.
    Paraphrase,
    /// Campaign: prompts of every source with top-20 logprobs (top-5 when stealthy).
    Logprobs,
    /// Campaign: a sweep spread over 8-32 keys.
    ManyKeys,
}

impl Kind {
    pub const NORMAL: [(Kind, f64); 8] = [
        (Kind::Chat, 0.30),
        (Kind::Tutor, 0.12),
        (Kind::Study, 0.12),
        (Kind::Classifier, 0.08),
        (Kind::Writer, 0.10),
        (Kind::EvalRunner, 0.05),
        (Kind::MultiKey, 0.13),
        (Kind::Agent, 0.10),
    ];
    pub const CAMPAIGNS: [Kind; 4] = [Kind::Sweep, Kind::Paraphrase, Kind::Logprobs, Kind::ManyKeys];

    pub fn is_campaign(self) -> bool {
        Self::CAMPAIGNS.contains(&self)
    }
}

/// Campaign rates, requests per second.
pub const RATES: [f64; 3] = [0.05, 0.2, 1.0];

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub name: String,
    pub kind: Kind,
    /// A campaign shaped to pass for people: bursty timing, rotating templates, no `max_tokens`.
    pub stealth: bool,
    pub rate_per_s: f64,
    pub start_ms: i64,
}

/// One generated request.
#[derive(Debug, Clone)]
pub struct Req {
    pub t_ms: i64,
    pub tenant: usize,
    pub key: String,
    pub text: String,
    pub logprobs: f64,
    pub max_tokens: Option<u32>,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

pub struct Population {
    pub tenants: Vec<Tenant>,
    /// In time order.
    pub requests: Vec<Req>,
}

/// Arrival times (seconds) and trace output lengths at `rate` from `start` to `end`, following a
/// randomly chosen trace from a random point, stretched in time to the rate.
fn bursty(rng: &mut ChaCha8Rng, timings: &[Timing], rate: f64, start: f64, end: f64) -> Vec<(f64, u32)> {
    let t = &timings[rng.random_range(0..timings.len())];
    let reqs = &t.requests;
    let stretch = t.rate() / rate;
    let span = reqs.last().map_or(1.0, |r| r.at_s).max(1.0);
    let mut i = rng.random_range(0..reqs.len());
    let (mut base, mut out) = (reqs[i].at_s, Vec::new());
    let mut offset = 0.0;
    loop {
        let at = start + (reqs[i].at_s - base + offset) * stretch;
        if at > end {
            return out;
        }
        out.push((at, reqs[i].output_tokens.max(1)));
        i += 1;
        if i == reqs.len() {
            i = 0;
            offset += span - base;
            base = 0.0;
        }
    }
}

/// Machine-steady arrivals: every 1 / rate seconds, each gap off by up to a fifth.
fn steady(rng: &mut ChaCha8Rng, rate: f64, start: f64, end: f64) -> Vec<(f64, u32)> {
    let mut t = start;
    let mut out = Vec::new();
    while t <= end {
        out.push((t, 0));
        t += (1.0 / rate) * (1.0 + rng.random_range(-0.2..0.2));
    }
    out
}

fn pick<'a>(rng: &mut ChaCha8Rng, v: &'a [String]) -> &'a str {
    &v[rng.random_range(0..v.len())]
}

fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp()
}

fn tokens(text: &str) -> u32 {
    (text.len() / 4).max(1) as u32
}

const SWEEP: &str = "Answer the following question. Think step by step and explain your reasoning in full detail, then state the final answer.\n\n";
const PARAPHRASE: [&str; 6] = [
    "Give five distinct, detailed answers to the question below, each from a different angle.\n\n",
    "Rewrite the following question in three ways and answer each rewrite thoroughly:\n",
    "Provide a comprehensive expert answer with examples to this question:\n",
    "You are an expert. Answer at length and cover every aspect: ",
    "Explain in depth, as a textbook would, the answer to: ",
    "Produce a long, well-structured answer (with headings) for: ",
];

/// All the tenants of one half and their requests over `hour_s` seconds.
pub fn generate(p: &Prompts, timings: &[Timing], seed: u64, normals: usize, hour_s: f64) -> Population {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tenants = Vec::new();
    for i in 0..normals {
        let mut x = rng.random::<f64>();
        let kind = Kind::NORMAL.iter().find(|(_, w)| {
            x -= w;
            x < 0.0
        });
        let kind = kind.map_or(Kind::Chat, |k| k.0);
        let (lo, hi) =
            if matches!(kind, Kind::Classifier | Kind::EvalRunner) { (200.0, 3600.0) } else { (20.0, 1500.0) };
        let rate = log_uniform(&mut rng, lo, hi) / 3600.0;
        tenants.push(Tenant { name: format!("normal-{i}"), kind, stealth: false, rate_per_s: rate, start_ms: 0 });
    }
    for kind in Kind::CAMPAIGNS {
        for rate in RATES {
            for stealth in [false, true] {
                for rep in 0..2 {
                    let start = rng.random_range(0.0..hour_s / 2.0);
                    tenants.push(Tenant {
                        name: format!("{kind:?}-{rate}-{}-{rep}", if stealth { "stealth" } else { "open" })
                            .to_lowercase(),
                        kind,
                        stealth,
                        rate_per_s: rate,
                        start_ms: (start * 1e3) as i64,
                    });
                }
            }
        }
    }
    let mut requests = Vec::new();
    for (ti, t) in tenants.iter().enumerate() {
        requests.extend(tenant_requests(&mut rng, p, timings, ti, t, hour_s));
    }
    requests.sort_by_key(|r| (r.t_ms, r.tenant));
    Population { tenants, requests }
}

fn tenant_requests(
    rng: &mut ChaCha8Rng,
    p: &Prompts,
    timings: &[Timing],
    ti: usize,
    t: &Tenant,
    hour_s: f64,
) -> Vec<Req> {
    let start = t.start_ms as f64 / 1e3;
    let machine = match t.kind {
        Kind::EvalRunner => true,
        Kind::Classifier => rng.random_bool(0.5),
        k => k.is_campaign() && !t.stealth,
    };
    let times = if machine {
        steady(rng, t.rate_per_s, start, hour_s)
    } else {
        bursty(rng, timings, t.rate_per_s, start, hour_s)
    };
    let system = match t.kind {
        Kind::Agent => rng.random_range(1500..6000),
        Kind::Tutor | Kind::Study | Kind::Classifier => rng.random_range(50..600),
        k if k.is_campaign() => 0,
        _ => rng.random_range(0..300),
    };
    let keys = match t.kind {
        Kind::MultiKey => rng.random_range(3..=10),
        Kind::ManyKeys => rng.random_range(8..=32),
        Kind::EvalRunner => rng.random_range(1..=2),
        _ => 1,
    };
    let subjects: Vec<usize> = (0..rng.random_range(2..=4)).map(|_| rng.random_range(0..p.mmlu.len())).collect();
    let chat_max = [None, None, Some(1024), Some(2048), Some(4096)][rng.random_range(0..5)];
    let lp_runner = rng.random_bool(0.5);
    let all_mmlu: Vec<&String> = p.mmlu.iter().flat_map(|(_, q)| q).chain(&p.gsm8k).collect();
    let mut out = Vec::with_capacity(times.len());
    for (i, (at, trace_out)) in times.into_iter().enumerate() {
        let (text, logprobs, max, want): (String, f64, Option<u32>, u32) = match t.kind {
            Kind::Chat | Kind::MultiKey => (pick(rng, &p.quora).into(), 0.0, chat_max, trace_out),
            Kind::Tutor => (
                format!("Help the student with this problem: {}", pick(rng, &p.gsm8k)),
                0.0,
                Some(512),
                trace_out * 3 / 2,
            ),
            Kind::Study => {
                let s = subjects[i % subjects.len()];
                (pick(rng, &p.mmlu[s].1).into(), 0.0, Some([64, 128, 256][i % 3]), trace_out / 3)
            }
            Kind::Classifier => {
                let q = pick(rng, &p.quora);
                (
                    format!("Classify the topic of this question into one of 20 categories.\nQuestion: {q}\nCategory:"),
                    0.25,
                    Some(2),
                    2,
                )
            }
            Kind::Writer => {
                let q = pick(rng, &p.quora);
                (format!("Write a blog post about this: {q}"), 0.0, Some(2048), log_uniform(rng, 400.0, 2500.0) as u32)
            }
            Kind::EvalRunner => {
                let q = all_mmlu[i % all_mmlu.len()];
                (q.to_string(), if lp_runner { 0.25 } else { 0.0 }, Some(8), 8)
            }
            Kind::Agent => {
                let q = if rng.random_bool(0.5) { pick(rng, &p.quora) } else { pick(rng, &p.gsm8k) };
                (format!("<task>{q}</task>\nUse the tools when needed and reply in JSON."), 0.0, Some(4096), trace_out)
            }
            Kind::Sweep | Kind::ManyKeys => {
                let q = all_mmlu[(i * 7 + ti) % all_mmlu.len()];
                (format!("{SWEEP}{q}"), 0.0, (!t.stealth).then_some(2048), log_uniform(rng, 300.0, 2600.0) as u32)
            }
            Kind::Paraphrase => {
                let n = if t.stealth { 6 } else { 2 };
                let tpl = PARAPHRASE[rng.random_range(0..n)];
                (
                    format!("{tpl}{}", pick(rng, &p.quora)),
                    0.0,
                    (!t.stealth).then_some(1500),
                    log_uniform(rng, 300.0, 2000.0) as u32,
                )
            }
            Kind::Logprobs => {
                let q = match i % 3 {
                    0 => pick(rng, &p.quora),
                    1 => pick(rng, &p.gsm8k),
                    _ => all_mmlu[rng.random_range(0..all_mmlu.len())].as_str(),
                };
                (q.to_string(), if t.stealth { 0.25 } else { 1.0 }, Some(512), log_uniform(rng, 100.0, 700.0) as u32)
            }
        };
        let output = max.map_or(want, |m| want.min(m)).max(1);
        out.push(Req {
            t_ms: (at * 1e3) as i64,
            tenant: ti,
            key: format!("{}-k{}", t.name, i % keys),
            input_tokens: tokens(&text) + system,
            text,
            logprobs,
            max_tokens: max,
            output_tokens: output,
        });
    }
    out
}
