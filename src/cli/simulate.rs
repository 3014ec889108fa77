//! `tollgate simulate`: replay a scenario under each policy, bound it by hindsight, and print,
//! save (JSON) and draw (HTML) the comparison.

use super::{SimulateArgs, ValidateArgs};
use crate::sim::policy::Policy;
use crate::sim::report::Report;
use crate::sim::run::{load_requests, Load};
use crate::sim::scenario::Scenario;
use crate::sim::suite::evaluate;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Instant;

pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    let (mut sc, base) = Scenario::from_file(&a.scenario)?;
    if let Some(placement) = a.placement {
        sc.pools.iter_mut().for_each(|p| p.placement = placement);
    }
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
    anyhow::ensure!(overload > 0.0 && overload.is_finite(), "--overload must be a positive number");
    let load = Load { overrides, overload, requests: a.requests };
    let reqs = load_requests(&sc, &base, &load).map_err(anyhow::Error::msg)?;
    let duration = reqs.last().map(|r| r.at).unwrap_or(0.0);
    eprintln!("{}: {} requests over {duration:.0} s at {overload}x capacity", sc.name, reqs.len());
    let show = !a.quiet && std::io::stderr().is_terminal();

    let t0 = Instant::now();
    let mut pb: Option<(String, ProgressBar)> = None;
    let total = reqs.len() as u64;
    let report = evaluate(&sc, &reqs, overload, &policies, !a.no_hindsight, &mut |what, n| {
        if pb.as_ref().is_none_or(|(w, _)| w != what) {
            if let Some((w, b)) = pb.take() {
                b.finish_and_clear();
                eprintln!("{w:<16} done at {:.1} s", t0.elapsed().as_secs_f64());
            }
            pb = Some((what.to_string(), bar(show, if what == "hindsight" { 0 } else { total }, what)));
        }
        if let Some((_, b)) = &pb {
            b.set_position(n as u64);
        }
    })
    .map_err(anyhow::Error::msg)?;
    if let Some((w, b)) = pb.take() {
        b.finish_and_clear();
        eprintln!("{w:<16} done at {:.1} s", t0.elapsed().as_secs_f64());
    }
    print_table(&report);
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.html {
        std::fs::write(path, crate::sim::html::render(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A progress bar on a terminal (hidden otherwise); `len` 0 makes a spinner.
fn bar(show: bool, len: u64, label: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = if len == 0 { ProgressBar::new_spinner() } else { ProgressBar::new(len) };
    let style = if len == 0 {
        ProgressStyle::with_template("{spinner} {prefix:<10} {elapsed}")
    } else {
        ProgressStyle::with_template("{prefix:<10} [{bar:40}] {pos}/{len} requests, {elapsed} (eta {eta})")
    };
    pb.set_style(style.expect("a valid template").progress_chars("=> "));
    pb.set_prefix(label.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

pub(super) fn print_table(r: &Report) {
    match r.hindsight {
        Some(h) => println!(
            "\n{} at {}x: value captured (responses within their tier's SLA); hindsight bound on full \
             engines {:.4} USD (on SLA-safe capacity {:.4}, its feasible schedule {:.4}); hindsight \
             schedule replayed {:.4} (planned on {:?})",
            r.scenario, r.overload, h.full_engines_bound_usd, h.bound_usd, h.feasible_usd, h.replay_usd, h.replay_basis
        ),
        None => println!("\n{} at {}x: value captured (responses within their tier's SLA)", r.scenario, r.overload),
    }
    println!(
        "{:<10} {:>10} {:>9} {:>9} {:>9} {:>8}   per class: served (admitted/downgraded/deferred), refused, dropped",
        "policy", "value USD", "of bound", "of full", "of replay", "SLA met"
    );
    for p in &r.policies {
        let classes: Vec<String> = p
            .classes
            .iter()
            .map(|c| {
                format!("{} {}/{}/{} r{} d{}", c.class, c.admitted, c.downgraded, c.deferred, c.refused, c.dropped)
            })
            .collect();
        let pct = |s: Option<f64>| s.map(|s| format!("{:.1}%", 100.0 * s)).unwrap_or_else(|| "n/a".into());
        println!(
            "{:<10} {:>10.4} {:>9} {:>9} {:>9} {:>7.1}%   {}",
            p.policy,
            p.value_usd,
            pct(p.share_of_hindsight),
            pct(p.share_of_full_bound),
            pct(p.share_of_replay),
            100.0 * p.sla_attainment,
            classes.join("; ")
        );
    }
    println!(
        "\n{:<10} {:<11} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "policy", "tier", "served", "TTFT p50", "TTFT p95", "e2e p50", "e2e p95", "TTFT met", "e2e met"
    );
    for p in &r.policies {
        for t in &p.tiers {
            println!(
                "{:<10} {:<11} {:>7} {:>8.2}s {:>8.2}s {:>8.1}s {:>8.1}s {:>8.1}% {:>8.1}%",
                p.policy,
                t.tier,
                t.served,
                t.ttft_p50_s,
                t.ttft_p95_s,
                t.e2e_p50_s,
                t.e2e_p95_s,
                100.0 * t.ttft_attainment,
                100.0 * t.e2e_attainment
            );
        }
    }
}

/// `tollgate validate`: the live gateway against the simulator on the same slice of traffic.
pub fn validate(a: ValidateArgs) -> anyhow::Result<()> {
    let (mut sc, base) = Scenario::from_file(&a.scenario)?;
    anyhow::ensure!(a.duration > 0.0 && a.duration.is_finite(), "--duration must be a positive number of seconds");
    sc.duration_s = Some(a.duration);
    if let Some(placement) = a.placement {
        sc.pools.iter_mut().for_each(|p| p.placement = placement);
    }
    let overload = a.overload.unwrap_or(sc.overload);
    let load = Load { overload, ..Load::default() };
    let reqs = load_requests(&sc, &base, &load).map_err(anyhow::Error::msg)?;
    eprintln!(
        "{}: replaying {} requests over {:.0} s at {overload}x through the live gateway, then the simulator",
        sc.name,
        reqs.len(),
        a.duration
    );
    let dir = tempfile_dir()?;
    let rt = tokio::runtime::Runtime::new()?;
    let opts = crate::sim::validate::LiveOptions {
        listen: a.listen.clone(),
        admin_key: std::env::var("TOLLGATE_ADMIN_KEY").ok().filter(|k| !k.is_empty()),
    };
    let cmp = rt.block_on(crate::sim::validate::validate_with(&sc, &reqs, &dir, &opts))?;
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{:<12} {:>12} {:>12} {:>25} {:>9} {:>8}",
        "metric",
        "live",
        "simulated",
        format!("(range of {} replays)", cmp.sim_runs),
        "differs",
        "rank"
    );
    for c in &cmp.checks {
        println!(
            "{:<12} {:>12.4} {:>12.4} {:>25} {:>8.1}% {:>8} {}",
            c.metric,
            c.live,
            c.simulated,
            format!("{:.4}..{:.4}", c.simulated_min, c.simulated_max),
            100.0 * c.relative_difference,
            c.rank_difference.map(|r| format!("{:+.1}pt", 100.0 * r)).unwrap_or_default(),
            if c.ok { "ok" } else { "DIFFERS" }
        );
    }
    println!(
        "live requests were sent up to {:.1} ms late (p99); the gateway's timers started {:.0} ms before the replay (the simulator's run at that phase); the emulators' engine steps ended {:.2} ms late on average",
        1000.0 * cmp.send_lateness_p99_s,
        1000.0 * cmp.timer_offset_s,
        1000.0 * cmp.step_lag_mean_s
    );
    println!(
        "prompt tokens found in the engines' prefix caches: live {:.1}%, simulated {:.1}%",
        100.0 * cmp.live.prefix_hit_share,
        100.0 * cmp.simulated.prefix_hit_share
    );
    let (l, s) = (&cmp.live, &cmp.simulated);
    println!(
        "admitted/downgraded/deferred/not served: live {}/{}/{}/{}, simulated {}/{}/{}/{}",
        l.admitted, l.downgraded, l.deferred, l.not_served, s.admitted, s.downgraded, s.deferred, s.not_served
    );
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&cmp)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    anyhow::ensure!(
        cmp.agrees(),
        "live and simulated differ by more than {:.0}%",
        100.0 * crate::sim::validate::TOLERANCE
    );
    Ok(())
}

/// A fresh directory for the gateway's store.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tollgate-validate-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
