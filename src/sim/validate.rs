//! Validation against reality: replays a slice of a scenario's traffic through the live gateway
//! (real HTTP, real time, streaming completions) in front of emulators of the scenario's pools,
//! replays the same requests through the simulator with the bid-price policy, and compares what
//! each served, the value captured and the latency percentiles.

use super::des::{Fate, Sim, SimRequest};
use super::policy::Policy;
use super::prompts::{prefixed_prompt, prompt};
use super::report::{percentile, sla_parts};
use super::run::full_value;
use super::scenario::Scenario;
use crate::capacity::Profile;
use crate::emulator::server::{Emulator, EmulatorConfig};
use anyhow::Context;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest relative difference accepted between live and simulated figures.
pub const TOLERANCE: f64 = 0.10;

/// A latency percentile q also agrees when the live figure's rank among the simulated latencies
/// is within this share of the tail beyond q (min(q, 1 - q)): 5 points at the median, half a point
/// at p95 (the same 10%, on the probability axis).
pub const RANK_TOLERANCE: f64 = 0.10;

/// What one side (live or simulated) did with the requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Side {
    pub requests: usize,
    pub served: usize,
    pub admitted: usize,
    pub downgraded: usize,
    pub deferred: usize,
    /// Refused, dropped or failed.
    pub not_served: usize,
    /// Value of the responses within their tier's SLA, USD.
    pub value_usd: f64,
    /// Latency percentiles of the served requests of tiers that are not deferrable.
    pub ttft_p50_s: f64,
    pub ttft_p95_s: f64,
    pub e2e_p50_s: f64,
    pub e2e_p95_s: f64,
    /// Share of prompt tokens the engines found in their prefix caches.
    pub prefix_hit_share: f64,
    /// The latencies the percentiles are taken from, sorted.
    #[serde(skip)]
    pub ttft_s: Vec<f64>,
    #[serde(skip)]
    pub e2e_s: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub metric: &'static str,
    pub live: f64,
    /// Mean over the simulator's replays, and the least and greatest of them.
    pub simulated: f64,
    pub simulated_min: f64,
    pub simulated_max: f64,
    pub relative_difference: f64,
    /// For a latency percentile q: the share of the simulator's latencies (all replays) at or
    /// below the live figure, minus q. Where the distribution is flat around q (a median falling
    /// between no-wait and one-step-wait requests) a shift of a point in rank moves the value by
    /// 10% or more, so the value alone is an ill-conditioned test there.
    pub rank_difference: Option<f64>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub live: Side,
    /// The mean of the simulator's replays.
    pub simulated: Side,
    pub checks: Vec<Check>,
    pub sim_runs: usize,
    /// How late the live client sent its requests against their scheduled times (99th
    /// percentile), seconds: the timing noise the simulator's replays are given.
    pub send_lateness_p99_s: f64,
    /// How long before the replay's time zero the live gateway's timers started, seconds (the
    /// simulator's replays run theirs at the same phase).
    pub timer_offset_s: f64,
    /// How late the live emulators ended their engine steps on average, seconds: timing noise
    /// the simulator is not given (its steps end when modelled).
    pub step_lag_mean_s: f64,
}

/// The figures compared, in the order of [`Side::figures`].
pub const FIGURES: [&str; 6] = ["served", "value_usd", "ttft_p50_s", "ttft_p95_s", "e2e_p50_s", "e2e_p95_s"];

impl Side {
    /// The figures compared, named by [`FIGURES`].
    pub fn figures(&self) -> [f64; 6] {
        [self.served as f64, self.value_usd, self.ttft_p50_s, self.ttft_p95_s, self.e2e_p50_s, self.e2e_p95_s]
    }
}

impl Comparison {
    pub fn agrees(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// One request's end, on either side.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    /// The pool that served it, if it was served.
    pool: Option<usize>,
    deferred: bool,
    ttft: f64,
    e2e: f64,
}

/// How the live gateway is exposed while it replays: where it listens, and the admin key that
/// opens its dashboard and admin API (none: both disabled).
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    pub listen: Option<String>,
    pub admin_key: Option<String>,
}

/// Runs both sides on `reqs` and compares them. The gateway keeps its ledger in `data_dir`.
pub async fn validate(sc: &Scenario, reqs: &[SimRequest], data_dir: &Path) -> anyhow::Result<Comparison> {
    validate_with(sc, reqs, data_dir, &LiveOptions::default()).await
}

/// As [`validate`], with the live gateway exposed as `opts` says (to watch its dashboard).
pub async fn validate_with(
    sc: &Scenario,
    reqs: &[SimRequest],
    data_dir: &Path,
    opts: &LiveOptions,
) -> anyhow::Result<Comparison> {
    let LiveRun { outcomes, lateness, hit_share, timer_offset, step_lag } = live(sc, reqs, data_dir, opts).await?;
    let mut live = side(sc, reqs, &outcomes)?;
    live.prefix_hit_share = hit_share;
    // The simulator is replayed several times, its timers at the live gateway's phase, each
    // replay but the first with the arrival times shifted by the lateness the live requests
    // actually had (drawn at random): tail percentiles at this size move with timing noise that
    // small, so the figure compared is their mean.
    let runs = simulated_replays(sc, reqs, timer_offset, &lateness, SIM_RUNS)?;
    let simulated = mean(&runs);
    let (figures, names) = (Side::figures, FIGURES);
    // Which latencies and percentile each figure is, for the rank check.
    let pooled = |f: fn(&Side) -> &Vec<f64>| {
        let mut v: Vec<f64> = runs.iter().flat_map(|r| f(r).iter().copied()).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (ttfts, e2es) = (pooled(|s| &s.ttft_s), pooled(|s| &s.e2e_s));
    let latency: [Option<(&Vec<f64>, f64)>; 6] =
        [None, None, Some((&ttfts, 0.5)), Some((&ttfts, 0.95)), Some((&e2es, 0.5)), Some((&e2es, 0.95))];
    let (l, m) = (figures(&live), figures(&simulated));
    let checks = names
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let each: Vec<f64> = runs.iter().map(|r| figures(r)[i]).collect();
            let d = (l[i] - m[i]).abs() / m[i].abs().max(1e-12);
            let rank = latency[i].and_then(|(v, q)| rank_difference(v, l[i], q));
            let rank_ok = latency[i].zip(rank).is_some_and(|((_, q), r)| rank_agrees(r, q));
            Check {
                metric,
                live: l[i],
                simulated: m[i],
                simulated_min: each.iter().copied().fold(f64::INFINITY, f64::min),
                simulated_max: each.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                relative_difference: d,
                rank_difference: rank,
                ok: d <= TOLERANCE || rank_ok,
            }
        })
        .collect();
    let late_p99 = {
        let mut v = lateness.clone();
        v.sort_by(f64::total_cmp);
        v.get(((v.len().max(1) - 1) as f64 * 0.99) as usize).copied().unwrap_or(0.0)
    };
    Ok(Comparison {
        live,
        simulated,
        checks,
        sim_runs: SIM_RUNS,
        send_lateness_p99_s: late_p99,
        timer_offset_s: timer_offset,
        step_lag_mean_s: step_lag,
    })
}

/// `n` replays of `reqs` through the simulator with bid prices, its timers `timer_offset` seconds
/// ahead, each replay but the first with every arrival shifted by a delay drawn from `lateness`
/// (seeded by the replay's index), as [`validate`] runs them.
pub fn simulated_replays(
    sc: &Scenario,
    reqs: &[SimRequest],
    timer_offset: f64,
    lateness: &[f64],
    n: usize,
) -> anyhow::Result<Vec<Side>> {
    let mut runs = Vec::with_capacity(n);
    for k in 0..n {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(k as u64);
        let mut shifted = reqs.to_vec();
        // The live client sends `max_tokens` = the output (so the emulator generates exactly
        // it): the simulator's admission sees the same.
        for r in &mut shifted {
            r.max_tokens = Some(r.output.max(1));
        }
        if k > 0 && !lateness.is_empty() {
            for r in &mut shifted {
                r.at += lateness[rng.random_range(0..lateness.len())];
            }
        }
        let (fates, _, hit_share) = Sim::new(sc, Policy::BidPrice, &shifted)
            .map_err(anyhow::Error::msg)?
            .with_timer_offset(timer_offset)
            .run_counting(&mut |_| {});
        let outcomes: Vec<Outcome> = fates
            .into_iter()
            .map(|f| match f {
                Fate::Served { pool, ttft, e2e, deferred, .. } => Outcome { pool: Some(pool), deferred, ttft, e2e },
                Fate::Refused | Fate::Dropped => Outcome::default(),
            })
            .collect();
        let mut run = side(sc, reqs, &outcomes)?;
        run.prefix_hit_share = hit_share;
        runs.push(run);
    }
    Ok(runs)
}

/// The share of `sorted` at or below `value`, minus `q` (none for no latencies).
fn rank_difference(sorted: &[f64], value: f64, q: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted.partition_point(|&x| x <= value) as f64 / sorted.len() as f64 - q)
}

/// Whether a rank difference at percentile `q` is within [`RANK_TOLERANCE`] of the tail beyond q.
fn rank_agrees(difference: f64, q: f64) -> bool {
    difference.abs() <= RANK_TOLERANCE * q.min(1.0 - q)
}

/// Replays of the simulator averaged per figure.
const SIM_RUNS: usize = 5;

fn mean(runs: &[Side]) -> Side {
    let n = runs.len().max(1) as f64;
    let avg = |f: &dyn Fn(&Side) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let count = |f: &dyn Fn(&Side) -> usize| (runs.iter().map(f).sum::<usize>() as f64 / n).round() as usize;
    Side {
        requests: runs.first().map(|r| r.requests).unwrap_or(0),
        served: count(&|s| s.served),
        admitted: count(&|s| s.admitted),
        downgraded: count(&|s| s.downgraded),
        deferred: count(&|s| s.deferred),
        not_served: count(&|s| s.not_served),
        value_usd: avg(&|s| s.value_usd),
        ttft_p50_s: avg(&|s| s.ttft_p50_s),
        ttft_p95_s: avg(&|s| s.ttft_p95_s),
        e2e_p50_s: avg(&|s| s.e2e_p50_s),
        e2e_p95_s: avg(&|s| s.e2e_p95_s),
        prefix_hit_share: avg(&|s| s.prefix_hit_share),
        ttft_s: Vec::new(),
        e2e_s: Vec::new(),
    }
}

fn side(sc: &Scenario, reqs: &[SimRequest], outcomes: &[Outcome]) -> anyhow::Result<Side> {
    let cfg = sc.gateway_config().map_err(anyhow::Error::msg)?;
    let mut s = Side { requests: reqs.len(), ..Default::default() };
    let (mut ttft, mut e2e) = (Vec::new(), Vec::new());
    for (r, o) in reqs.iter().zip(outcomes) {
        let class = &sc.classes[r.class];
        let Some(pool) = o.pool else {
            s.not_served += 1;
            continue;
        };
        s.served += 1;
        let own = sc.pools[pool].name == class.pool;
        match (o.deferred, own) {
            (true, _) => s.deferred += 1,
            (false, true) => s.admitted += 1,
            (false, false) => s.downgraded += 1,
        }
        // Latency is compared on interactive work: a deferred batch request's wait is a
        // scheduling choice bounded by its deadline, not an engine timing.
        if !sc.tier(&class.tier).is_some_and(|t| t.deferrable) {
            ttft.push(o.ttft);
            e2e.push(o.e2e);
        }
        let quality = if own {
            1.0
        } else {
            sc.pools
                .iter()
                .find(|p| p.name == class.pool)
                .and_then(|p| p.fallbacks.iter().find(|f| f.model == sc.pools[pool].name))
                .map(|f| f.quality)
                .unwrap_or(0.0)
        };
        if let (true, true) = sla_parts(sc, r.class, o.ttft, o.e2e) {
            s.value_usd += quality * full_value(sc, &cfg, r);
        }
    }
    ttft.sort_by(f64::total_cmp);
    e2e.sort_by(f64::total_cmp);
    s.ttft_p50_s = percentile(&ttft, 0.5);
    s.ttft_p95_s = percentile(&ttft, 0.95);
    s.e2e_p50_s = percentile(&e2e, 0.5);
    s.e2e_p95_s = percentile(&e2e, 0.95);
    (s.ttft_s, s.e2e_s) = (ttft, e2e);
    Ok(s)
}

/// What the live replay saw: each request's end, how late each was sent (seconds), the share of
/// prompt tokens the engines found cached, and how long before the replay's time zero the
/// gateway's timers started (seconds), and the emulators' mean step lag (seconds).
struct LiveRun {
    outcomes: Vec<Outcome>,
    lateness: Vec<f64>,
    hit_share: f64,
    timer_offset: f64,
    step_lag: f64,
}

/// The live side: emulators for the pools, the gateway in front, every request sent at its time.
async fn live(sc: &Scenario, reqs: &[SimRequest], data_dir: &Path, opts: &LiveOptions) -> anyhow::Result<LiveRun> {
    // Prompts are built before the gateway starts, so the client's tokenising does not compete
    // with the gateway and the emulators during the replay.
    let prompts = tokio::task::spawn_blocking({
        let shapes: Vec<(u32, Vec<u64>)> = reqs.iter().map(|r| (r.input.max(1), r.hashes.clone())).collect();
        move || {
            shapes
                .into_iter()
                .enumerate()
                .map(|(i, (n, hashes))| if hashes.is_empty() { prompt(i, n) } else { prefixed_prompt(i, n, &hashes) })
                .collect::<Vec<_>>()
        }
    })
    .await?;
    // One emulated engine per replica, placed by the gateway as the simulator places them.
    let mut urls = Vec::new();
    for p in &sc.pools {
        let profile = Profile::resolve(&p.capacity.profile)?;
        let mut pool_urls = Vec::new();
        for replica in 0..p.capacity.replicas {
            let emu = Emulator::start(EmulatorConfig {
                profile: profile.clone(),
                model_name: p.name.clone(),
                replicas: 1,
                seed: u64::from(replica),
                time_scale: 1.0,
                faults: Default::default(),
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            pool_urls.push(format!("http://{}", listener.local_addr()?));
            let router = emu.router();
            tokio::spawn(crate::serve::http::serve(listener, router, std::future::pending()));
        }
        urls.push(pool_urls);
    }
    let cfg = sc.live_config(&urls, Some(data_dir)).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(opts.listen.as_deref().unwrap_or("127.0.0.1:0")).await?;
    let gw = crate::serve::spawn(cfg, opts.admin_key.clone(), listener, None).await?;
    if opts.admin_key.is_some() {
        eprintln!("dashboard: {}/dashboard (log in with the admin key)", gw.base_url());
    }
    let mut keys = Vec::new();
    for c in &sc.classes {
        let k = crate::auth::generate(&c.name, "validate");
        gw.gateway.store.insert_key(&k.record).await.context("creating a key")?;
        keys.push(k.key);
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let base = Arc::new(gw.base_url());
    let keys = Arc::new(keys);
    let pools: Arc<Vec<String>> = Arc::new(sc.pools.iter().map(|p| p.name.clone()).collect());
    let asked: Vec<String> = sc.classes.iter().map(|c| c.pool.clone()).collect();
    // The replay's clock starts now; the gateway's timers started a little earlier (the
    // simulator runs its own at that phase).
    let start = tokio::time::Instant::now();
    let timer_offset = gw.gateway.allocator.as_ref().map_or(0.0, |a| a.now());
    let mut tasks = Vec::with_capacity(reqs.len());
    for ((r, text), asked) in reqs.iter().zip(prompts).zip(reqs.iter().map(|r| asked[r.class].clone())) {
        let (client, base, keys, pools) = (client.clone(), base.clone(), keys.clone(), pools.clone());
        let (at, class, max_tokens) = (r.at, r.class, r.output.max(1));
        tasks.push(tokio::spawn(async move {
            let due = start + Duration::from_secs_f64(at);
            tokio::time::sleep_until(due).await;
            let late = tokio::time::Instant::now().saturating_duration_since(due).as_secs_f64();
            let body = serde_json::json!({
                "model": asked,
                "prompt": text,
                "max_tokens": max_tokens,
                "ignore_eos": true,
                "stream": true,
            });
            (send(&client, &base, &keys[class], &pools, body).await, late)
        }));
    }
    let (mut out, mut lateness) = (Vec::with_capacity(tasks.len()), Vec::with_capacity(tasks.len()));
    for t in tasks {
        let (o, late) = t.await.context("a replay task")?;
        out.push(o);
        lateness.push(late);
    }
    gw.stop().await?;
    let (mut queried, mut hit, mut lag, mut steps) = (0.0, 0.0, 0.0, 0.0);
    for url in urls.iter().flatten() {
        let text = client.get(format!("{url}/metrics")).send().await?.text().await?;
        queried += counter(&text, "vllm:prefix_cache_queries_total");
        hit += counter(&text, "vllm:prefix_cache_hits_total");
        lag += counter(&text, "tollgate_emulator_step_lag_seconds_sum");
        steps += counter(&text, "tollgate_emulator_step_lag_seconds_count");
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ok(LiveRun { outcomes: out, lateness, hit_share: ratio(hit, queried), timer_offset, step_lag: ratio(lag, steps) })
}

/// The sum of a counter's samples in a Prometheus text exposition.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Sends one streaming completion and times its first token and its end.
async fn send(client: &reqwest::Client, base: &str, key: &str, pools: &[String], body: serde_json::Value) -> Outcome {
    let sent = Instant::now();
    let resp = match client.post(format!("{base}/v1/completions")).bearer_auth(key).json(&body).send().await {
        Ok(resp) if resp.status().is_success() => resp,
        _ => return Outcome::default(),
    };
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let served = header("x-tollgate-model");
    let deferred = header("x-tollgate-decision") == "defer";
    let pool = pools.iter().position(|p| *p == served);
    let mut ttft = None;
    let mut stream = resp.bytes_stream();
    let mut tail = String::new();
    let mut complete = false;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return Outcome::default() };
        tail.push_str(&String::from_utf8_lossy(&chunk));
        if ttft.is_none() && tail.contains("data: {") {
            ttft = Some(sent.elapsed().as_secs_f64());
        }
        if tail.contains("\"error\"") {
            return Outcome::default();
        }
        complete |= tail.contains("data: [DONE]");
        // Keep only the unfinished line.
        if let Some(p) = tail.rfind('\n') {
            tail.drain(..=p);
        }
    }
    let e2e = sent.elapsed().as_secs_f64();
    if !complete {
        return Outcome::default();
    }
    Outcome { pool, deferred, ttft: ttft.unwrap_or(e2e), e2e }
}

#[cfg(test)]
mod tests {
    use super::{rank_agrees, rank_difference};

    #[test]
    fn a_percentile_is_also_compared_by_rank() {
        // Half the latencies near 0.1 s, half near 0.4 s: the median sits in the gap, where
        // 0.2 s and 0.3 s are 40% apart in value but both within a point of the median in rank.
        let mut v: Vec<f64> = (0..500).map(|i| 0.1 + f64::from(i) * 1e-4).collect();
        v.extend((0..500).map(|i| 0.4 + f64::from(i) * 1e-4));
        let r = rank_difference(&v, 0.2, 0.5).unwrap();
        assert!(r.abs() < 1e-9 && rank_agrees(r, 0.5), "{r}");
        // A live median inside the upper cluster is 25 points off: it does not agree.
        let r = rank_difference(&v, 0.425, 0.5).unwrap();
        assert!((r - 0.25).abs() < 1e-9 && !rank_agrees(r, 0.5), "{r}");
        // At p95 only half a point either way is accepted.
        let p95 = v[950];
        assert!(rank_agrees(rank_difference(&v, p95, 0.95).unwrap(), 0.95));
        assert!(!rank_agrees(rank_difference(&v, v[940], 0.95).unwrap(), 0.95));
        assert_eq!(rank_difference(&[], 1.0, 0.5), None);
    }
}
