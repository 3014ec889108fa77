//! Running a scenario: load and rescale its traces, replay them under each policy, bound them by
//! the hindsight plan, and summarise value captured, decisions and SLA attainment.

use super::des::{Fate, Sim, SimRequest};
use super::policy::Policy;
use super::scenario::Scenario;
use super::trace;
use crate::allocator::pools::Fleet;
use crate::allocator::value_rates;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Which requests to replay.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// Class name to trace file, replacing the scenario's.
    pub overrides: HashMap<String, PathBuf>,
    /// Demand relative to the fleet's SLA-safe capacity.
    pub overload: f64,
    /// A synthetic load of this many requests, drawn at random (with their classes and token
    /// counts) from the traces, with Poisson arrivals at the traces' rate; replaces the
    /// scenario's duration.
    pub requests: Option<usize>,
}

/// Loads every class's trace (with overrides), thins each to its share, merges them (or
/// resamples them to `load.requests`), and rescales time so the fleet sees `load.overload` x its
/// SLA-safe capacity.
pub fn load_requests(sc: &Scenario, base: &Path, load: &Load) -> Result<Vec<SimRequest>, String> {
    let cfg = sc.gateway_config()?;
    let fleet = Fleet::from_config(&cfg)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut reqs = Vec::new();
    for (k, c) in sc.classes.iter().enumerate() {
        let path = load.overrides.get(&c.name).cloned().unwrap_or_else(|| base.join(&c.trace));
        let t = trace::read(&path).map_err(|e| e.to_string())?;
        for r in t {
            if c.share >= 1.0 || rng.random::<f64>() < c.share {
                reqs.push(SimRequest {
                    class: k,
                    at: r.at_s,
                    input: r.input_tokens,
                    output: r.output_tokens,
                    hashes: r.block_hashes,
                });
            }
        }
    }
    reqs.sort_by(|a, b| a.at.total_cmp(&b.at));
    if let Some(n) = load.requests {
        let span = reqs.last().map(|r| r.at).unwrap_or(0.0).max(1e-9);
        let rate = reqs.len().max(1) as f64 / span;
        let mut t = 0.0;
        reqs = (0..n)
            .map(|_| {
                t += -rng.random_range(f64::EPSILON..1.0f64).ln() / rate;
                SimRequest { at: t, ..reqs[rng.random_range(0..reqs.len())].clone() }
            })
            .collect();
    }
    let span = reqs.last().map(|r| r.at).unwrap_or(0.0).max(1e-9);
    // Work per second the traces ask of the pools they name, against their capacity.
    let mut demand = 0.0;
    for r in &reqs {
        let pool = fleet.pool(&sc.classes[r.class].pool).ok_or("class names an unknown pool")?;
        demand += fleet.pools[pool].work(f64::from(r.input), f64::from(r.output));
    }
    let capacity: f64 = fleet.pools.iter().map(|p| p.capacity()).sum();
    let speed = load.overload * capacity / (demand / span);
    for r in &mut reqs {
        r.at /= speed;
    }
    if let (Some(d), None) = (sc.duration_s, load.requests) {
        reqs.retain(|r| r.at <= d);
    }
    Ok(reqs)
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassReport {
    pub class: String,
    pub requests: usize,
    pub admitted: usize,
    pub downgraded: usize,
    pub deferred: usize,
    pub refused: usize,
    pub dropped: usize,
    pub within_sla: usize,
    pub value_usd: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    pub policy: String,
    pub value_usd: f64,
    pub share_of_hindsight: f64,
    pub sla_attainment: f64,
    pub classes: Vec<ClassReport>,
    pub prices: Vec<super::des::PriceSample>,
}

fn sla_met(sc: &Scenario, class: usize, ttft: f64, e2e: f64) -> bool {
    let Some(tier) = sc.tier(&sc.classes[class].tier) else { return true };
    let ttft_ok = tier.ttft_slo_ms.is_none_or(|s| ttft <= s as f64 / 1000.0);
    let e2e_ok = tier.e2e_slo_ms.is_none_or(|s| e2e <= s as f64 / 1000.0);
    let deadline_ok = !tier.deferrable || e2e <= tier.deadline_ms as f64 / 1000.0;
    ttft_ok && e2e_ok && deadline_ok
}

/// Value of a request served in full by its own model, USD.
fn full_value(sc: &Scenario, cfg: &crate::config::Config, r: &SimRequest) -> f64 {
    value_rates(cfg, &sc.classes[r.class].name).charge_f(f64::from(r.input), f64::from(r.output))
}

pub fn simulate(sc: &Scenario, policy: Policy, reqs: &[SimRequest], hindsight: f64) -> Result<PolicyReport, String> {
    let cfg = sc.gateway_config()?;
    let (fates, prices) = Sim::new(sc, policy, reqs)?.run();
    let mut classes: Vec<ClassReport> =
        sc.classes.iter().map(|c| ClassReport { class: c.name.clone(), ..Default::default() }).collect();
    let (mut value, mut met, mut served) = (0.0, 0, 0);
    for (r, f) in reqs.iter().zip(&fates) {
        let c = &mut classes[r.class];
        c.requests += 1;
        match *f {
            Fate::Served { pool, quality, ttft, e2e, deferred } => {
                served += 1;
                if deferred {
                    c.deferred += 1;
                } else if sc.pools[pool].name != sc.classes[r.class].pool {
                    c.downgraded += 1;
                } else {
                    c.admitted += 1;
                }
                if sla_met(sc, r.class, ttft, e2e) {
                    met += 1;
                    c.within_sla += 1;
                    let v = quality * full_value(sc, &cfg, r);
                    c.value_usd += v;
                    value += v;
                }
            }
            Fate::Refused => c.refused += 1,
            Fate::Dropped => c.dropped += 1,
        }
    }
    Ok(PolicyReport {
        policy: policy.name().into(),
        value_usd: value,
        share_of_hindsight: if hindsight > 0.0 { value / hindsight } else { 0.0 },
        sla_attainment: if served > 0 { met as f64 / served as f64 } else { 0.0 },
        classes,
        prices,
    })
}
