//! A scenario's requests: load its traces, thin and merge them, rescale them to a load; and a
//! request's full value. Replaying them is `sim::suite::evaluate`'s.

use super::request::SimRequest;
use super::scenario::Scenario;
use super::trace;
use crate::allocator::pools::Fleet;
use crate::allocator::value_rates;
use rand::{Rng, SeedableRng};
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
pub fn load_requests(sc: &Scenario, base: &Path, load: &Load) -> Result<Vec<SimRequest>, super::error::SimError> {
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
                    output: c.max_tokens.map_or(r.output_tokens, |m| r.output_tokens.min(m.max(1))),
                    max_tokens: c.max_tokens,
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

/// Value of a request served in full by its own model, USD.
pub fn full_value(sc: &Scenario, cfg: &crate::config::Config, r: &SimRequest) -> f64 {
    class_value(sc, cfg, r.class, f64::from(r.input), f64::from(r.output))
}

/// What `input` and `output` tokens of `class` are worth: its tier's value, or its bid when that
/// is more (as the gateway values a request with `x-tollgate-max-price`).
pub fn class_value(sc: &Scenario, cfg: &crate::config::Config, class: usize, input: f64, output: f64) -> f64 {
    let c = &sc.classes[class];
    let tier = value_rates(cfg, &c.name).charge_f(input, output);
    tier.max(c.max_price_per_1k.map_or(0.0, |b| b * (input + output) / 1000.0))
}
