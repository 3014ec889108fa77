//! `tollgate guard eval`: the extraction watch's evaluation on generated tenants
//! (`guard::eval`), printed as a table and optionally written as JSON.

use crate::guard::eval::{self, data, population, Group};
use crate::guard::Settings;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum GuardCommand {
    /// Fit the watch's weights and threshold on one half of generated tenants (normal
    /// applications replaying the shared prompts at the shipped traces' timing, and extraction
    /// campaigns), report recall, false flags and time to detection on the other half.
    Eval {
        /// The shared data folder (routing/ and semcache/).
        #[arg(long, default_value = "../shared/data")]
        data: PathBuf,
        /// The shipped traces (azure2023/, servegen/).
        #[arg(long, default_value = "data/traces")]
        traces: PathBuf,
        /// Normal tenants per half.
        #[arg(long, default_value_t = 1000)]
        normals: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds of traffic per half.
        #[arg(long, default_value_t = 3600.0)]
        seconds: f64,
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn line(g: &Group) -> String {
    let s = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
    format!(
        "{:<34} {:>7} {:>7} {:>9} {:>8} {:>8}",
        g.name,
        g.tenants,
        g.flagged,
        g.within_10_min,
        s(g.median_s),
        s(g.max_s)
    )
}

pub fn run(c: GuardCommand) -> anyhow::Result<()> {
    let GuardCommand::Eval { data, traces, normals, seed, seconds, json } = c;
    let prompts = data::prompts(&data)?;
    let timings = data::timings(&traces)?;
    let settings = Settings::default();
    let [p0, p1] = prompts;
    let [t0, t1] = timings;
    let tune = eval::replay(population::generate(&p0, &t0, seed, normals, seconds), settings);
    let test = eval::replay(population::generate(&p1, &t1, seed + 1, normals, seconds), settings);
    let r = eval::evaluate(&tune, &test, settings.min_requests);
    println!(
        "weights (fitted on the tuning half): bias {:.3}, {:?}",
        r.weights.bias,
        r.weights.w.map(|w| (w * 1000.0).round() / 1000.0)
    );
    println!("signals: {:?}", crate::guard::signals::Features::NAMES);
    println!("threshold (least flagging at most 0.5% of the tuning half's normal tenants): {:.4}", r.threshold);
    println!();
    println!("held-out half                      tenants flagged  in 10 min  median s    max s");
    for g in [&r.tuning_false_flags, &r.normal, &r.campaigns, &r.shipped[0], &r.shipped[1]] {
        println!("{}", line(g));
    }
    for (title, gs) in [
        ("campaigns by kind", &r.by_kind),
        ("campaigns by rate", &r.by_rate),
        ("campaigns open / stealthy", &r.by_stealth),
        ("normal tenants by kind (flagged = false flags)", &r.false_flags_by_kind),
        ("leave one campaign kind out of the fit", &r.leave_one_kind_out),
    ] {
        println!("\n{title}");
        for g in gs {
            println!("{}", line(g));
        }
    }
    println!("\ncampaigns not flagged within 10 minutes: requests and highest score by then, flagged at");
    for l in &r.late {
        let at = l.flagged_s.map_or("never".to_string(), |s| format!("{s:.0} s"));
        println!("{:<34} {:>7} {:>7.3} {:>9}", l.name, l.requests, l.score, at);
    }
    if let Some(p) = json {
        std::fs::write(&p, serde_json::to_vec_pretty(&r)?)?;
    }
    Ok(())
}
