//! `tollgate simulate`: replay a scenario under each policy and print the comparison.

use super::SimulateArgs;
use crate::sim::hindsight::{bound, Basis};
use crate::sim::policy::Policy;
use crate::sim::run::{load_requests, simulate, Load, PolicyReport};
use crate::sim::scenario::Scenario;
use anyhow::Context;
use std::collections::HashMap;
use std::time::Instant;

pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    let (sc, base) = Scenario::from_file(&a.scenario)?;
    let policies: Vec<Policy> = if a.policies.is_empty() {
        vec![Policy::Fifo, Policy::Priority, Policy::Quota, Policy::BidPrice]
    } else {
        a.policies
            .iter()
            .map(|p| {
                Policy::parse(p).with_context(|| format!("unknown policy `{p}` (fifo, priority, quota, bid-price)"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let overrides: HashMap<_, _> = a.traces.into_iter().collect();
    for class in overrides.keys() {
        anyhow::ensure!(sc.classes.iter().any(|c| &c.name == class), "--trace names unknown class `{class}`");
    }
    let overload = a.overload.unwrap_or(sc.overload);
    let load = Load { overrides, overload, requests: a.requests };
    let reqs = load_requests(&sc, &base, &load).map_err(anyhow::Error::msg)?;
    eprintln!(
        "{}: {} requests over {:.0} s at {overload}x capacity",
        sc.name,
        reqs.len(),
        reqs.last().map(|r| r.at).unwrap_or(0.0)
    );
    let t0 = Instant::now();
    let bound = if a.no_hindsight {
        0.0
    } else {
        let hs = bound(&sc, &reqs, Basis::SlaSafe).map_err(anyhow::Error::msg)?;
        let hs_full = bound(&sc, &reqs, Basis::FullEngines).map_err(anyhow::Error::msg)?;
        eprintln!(
            "hindsight bound {:.4} USD (a feasible schedule: {:.4}), on full engines {:.4}; solved in {:.1} s",
            hs.value_usd,
            hs.feasible_usd,
            hs_full.value_usd,
            t0.elapsed().as_secs_f64()
        );
        hs.value_usd
    };
    let mut reports: Vec<PolicyReport> = Vec::new();
    for p in policies {
        let t0 = Instant::now();
        let r = simulate(&sc, p, &reqs, bound).map_err(anyhow::Error::msg)?;
        eprintln!("{:<10} replayed in {:.1} s", p.name(), t0.elapsed().as_secs_f64());
        reports.push(r);
    }
    println!(
        "\n{} at {overload}x: value captured (responses within their tier's SLA), hindsight bound {bound:.4} USD",
        sc.name
    );
    println!(
        "{:<10} {:>12} {:>10} {:>8}   per class: served (admit/downgrade/defer) refused dropped",
        "policy", "value USD", "of bound", "SLA met"
    );
    for r in &reports {
        let classes: Vec<String> = r
            .classes
            .iter()
            .map(|c| {
                format!("{} {}/{}/{} r{} d{}", c.class, c.admitted, c.downgraded, c.deferred, c.refused, c.dropped)
            })
            .collect();
        println!(
            "{:<10} {:>12.4} {:>9.1}% {:>7.1}%   {}",
            r.policy,
            r.value_usd,
            100.0 * r.share_of_hindsight,
            100.0 * r.sla_attainment,
            classes.join("; ")
        );
    }
    if let Some(path) = a.json {
        let json = serde_json::json!({"scenario": sc.name, "overload": overload, "requests": reqs.len(), "hindsight_usd": bound, "policies": reports});
        std::fs::write(&path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
