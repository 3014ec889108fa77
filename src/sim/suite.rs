//! Evaluating policies on a scenario against hindsight, and the scenario suite: every scenario
//! of a directory at several loads, one matrix of shares (of the bound and of the replay).
//!
//! Hindsight is reported three ways: the bound on SLA-safe capacity (what the allocator plans
//! with), the bound on every engine's whole time (a true upper bound on what any policy can
//! capture on this fleet), and the replay: the better of the two feasible hindsight schedules
//! (planned on either capacity) run through the same discrete-event engines, so its value is
//! achievable with real batching and latency. Bound -> replay is the bound's looseness; replay
//! -> a policy is the policy's loss.

use super::des::{Sim, SimRequest};
use super::error::SimError;
use super::hindsight::{solve, Basis, Solved};
use super::policy::Policy;
use super::report::{summarise, Hindsight, PolicyReport, Report};
use super::run::{full_value, load_requests, Load};
use super::scenario::Scenario;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The baselines and bid prices, in the order reports list them.
pub const POLICIES: [Policy; 4] = [Policy::Fifo, Policy::Priority, Policy::Quota, Policy::BidPrice];

/// Replays `reqs` under `policy` (with `plan` for the hindsight replay) and summarises it.
fn replay(
    sc: &Scenario,
    policy: Policy,
    reqs: &[SimRequest],
    plan: Option<&Solved>,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<PolicyReport, SimError> {
    let cfg = sc.gateway_config()?;
    let mut sim = Sim::new(sc, policy, reqs)?;
    if let Some(s) = plan {
        sim = sim.with_plan(s.plan.clone());
    }
    let (fates, prices, prefix_hit_share) = sim.run_counting(&mut |n| progress(policy.name(), n));
    let mut report = summarise(sc, policy.name(), reqs, &fates, &prices, |r| full_value(sc, &cfg, r), None);
    report.prefix_hit_share = prefix_hit_share;
    Ok(report)
}

/// Every policy on `reqs`, with hindsight (bounds and replay) unless `with_hindsight` is false.
/// `progress` hears (what is running, requests so far).
pub fn evaluate(
    sc: &Scenario,
    reqs: &[SimRequest],
    overload: f64,
    policies: &[Policy],
    with_hindsight: bool,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<Report, SimError> {
    let hindsight = if with_hindsight {
        progress("hindsight", 0);
        let sla = solve(sc, reqs, Basis::SlaSafe)?;
        let full = solve(sc, reqs, Basis::FullEngines)?;
        let on_sla = replay(sc, Policy::Hindsight, reqs, Some(&sla), progress)?;
        let on_full = replay(sc, Policy::Hindsight, reqs, Some(&full), progress)?;
        let (replay_usd, replay_basis) = if on_full.value_usd > on_sla.value_usd {
            (on_full.value_usd, Basis::FullEngines)
        } else {
            (on_sla.value_usd, Basis::SlaSafe)
        };
        Some(Hindsight {
            bound_usd: sla.bound.value_usd,
            feasible_usd: sla.bound.feasible_usd,
            full_engines_bound_usd: full.bound.value_usd,
            replay_usd,
            replay_basis,
        })
    } else {
        None
    };
    let mut reports = Vec::with_capacity(policies.len());
    for &p in policies {
        let mut r = replay(sc, p, reqs, None, progress)?;
        if let Some(h) = &hindsight {
            let share = |of: f64| (of > 0.0).then(|| r.value_usd / of);
            r.share_of_hindsight = share(h.bound_usd);
            r.share_of_full_bound = share(h.full_engines_bound_usd);
            r.share_of_replay = share(h.replay_usd);
        }
        reports.push(r);
    }
    Ok(Report {
        scenario: sc.name.clone(),
        description: sc.description.clone(),
        overload,
        requests: reqs.len(),
        duration_s: reqs.last().map(|r| r.at).unwrap_or(0.0),
        hindsight,
        policies: reports,
    })
}

/// One cell of the suite's matrix: a policy on a scenario at a load.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub scenario: String,
    pub overload: f64,
    pub policy: String,
    pub value_usd: f64,
    pub share_of_full_bound: Option<f64>,
    pub share_of_replay: Option<f64>,
}

/// The scenario files of `dir` (`*.toml`), by name.
pub fn scenarios_in(dir: &Path) -> Result<Vec<PathBuf>, SimError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    Ok(v)
}

/// Runs `scenario` at `overload` with every policy and hindsight.
pub fn run_one(
    path: &Path,
    overload: f64,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<(Report, Vec<Cell>), SimError> {
    let (sc, base) = Scenario::from_file(path).map_err(|e| e.to_string())?;
    let reqs = load_requests(&sc, &base, &Load { overload, ..Load::default() })?;
    let report = evaluate(&sc, &reqs, overload, &POLICIES, true, progress)?;
    let cells = report
        .policies
        .iter()
        .map(|p| Cell {
            scenario: sc.name.clone(),
            overload,
            policy: p.policy.clone(),
            value_usd: p.value_usd,
            share_of_full_bound: p.share_of_full_bound,
            share_of_replay: p.share_of_replay,
        })
        .collect();
    Ok((report, cells))
}
