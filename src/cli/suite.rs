//! `tollgate suite`: every scenario of a directory at several loads, one matrix of shares of the
//! hindsight bound (on full engines) and of the hindsight replay; a JSON and an HTML report per
//! run, and the matrix as JSON, in `--out`.

use crate::sim::suite::{run_one, scenarios_in, Cell};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct SuiteArgs {
    /// Directory of scenario files.
    #[arg(default_value = "scenarios")]
    pub dir: PathBuf,
    /// Loads, relative to each fleet's SLA-safe capacity.
    #[arg(long = "load", default_values_t = [1.0, 1.5, 2.0, 3.0])]
    pub loads: Vec<f64>,
    /// Only these scenarios (by file stem); default all.
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// Where the reports go (`<scenario>-<load>x.json` and `.html`, and `matrix.json`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: SuiteArgs) -> anyhow::Result<()> {
    for l in &a.loads {
        anyhow::ensure!(*l > 0.0 && l.is_finite(), "--load must be positive");
    }
    let mut paths = scenarios_in(&a.dir).map_err(anyhow::Error::msg)?;
    if !a.only.is_empty() {
        paths.retain(|p| p.file_stem().is_some_and(|s| a.only.iter().any(|o| o.as_str() == s)));
    }
    anyhow::ensure!(!paths.is_empty(), "no scenario files in {}", a.dir.display());
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let mut cells: Vec<Cell> = Vec::new();
    for path in &paths {
        for &load in &a.loads {
            let t0 = Instant::now();
            let (report, mut c) = run_one(path, load, &mut |_, _| {}).map_err(anyhow::Error::msg)?;
            eprintln!(
                "{} at {load}x: {} requests, {:.1} s",
                report.scenario,
                report.requests,
                t0.elapsed().as_secs_f64()
            );
            if let Some(out) = &a.out {
                // Named in full: `with_extension` would cut "1.5x" to "1".
                let stem = format!("{}-{load}x", report.scenario);
                std::fs::write(out.join(format!("{stem}.json")), serde_json::to_vec_pretty(&report)?)?;
                std::fs::write(out.join(format!("{stem}.html")), crate::sim::html::render(&report))?;
            }
            cells.append(&mut c);
        }
    }
    print_matrix(&cells);
    if let Some(out) = &a.out {
        std::fs::write(out.join("matrix.json"), serde_json::to_vec_pretty(&cells)?)?;
    }
    Ok(())
}

/// One row per scenario and load; per policy, its share of the full-engine bound / of the replay.
fn print_matrix(cells: &[Cell]) {
    let mut policies: Vec<&str> = Vec::new();
    for c in cells {
        if !policies.contains(&c.policy.as_str()) {
            policies.push(&c.policy);
        }
    }
    let mut rows: BTreeMap<(String, u64), Vec<&Cell>> = BTreeMap::new();
    for c in cells {
        rows.entry((c.scenario.clone(), (c.overload * 1000.0) as u64)).or_default().push(c);
    }
    println!("\nshare of the hindsight bound on full engines / of the hindsight schedule replayed");
    print!("{:<20} {:>5}", "scenario", "load");
    for p in &policies {
        print!(" {:>16}", p);
    }
    println!();
    let pct = |s: Option<f64>| s.map(|s| format!("{:.1}", 100.0 * s)).unwrap_or_else(|| "-".into());
    for ((scenario, load), cs) in rows {
        print!("{:<20} {:>4}x", scenario, load as f64 / 1000.0);
        for p in &policies {
            match cs.iter().find(|c| c.policy == *p) {
                Some(c) => print!(" {:>16}", format!("{} / {}", pct(c.share_of_full_bound), pct(c.share_of_replay))),
                None => print!(" {:>16}", "-"),
            }
        }
        println!();
    }
}
