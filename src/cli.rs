//! Command-line interface: one subcommand per job, each a thin wrapper over a library module.

use crate::capacity::calibrate::{calibrate, CalibrateOptions};
use crate::capacity::{fit, Profile, DEFAULT_PROFILE};
use crate::emulator::{Emulator, EmulatorConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An LLM gateway that allocates scarce inference capacity by opportunity cost"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an emulated inference engine (OpenAI-compatible, vLLM-like timing and metrics).
    Emulate(EmulateArgs),
    /// Measure a live OpenAI-compatible engine and write its profile.
    Calibrate(CalibrateArgs),
    /// Engine profiles: list them, or refit the shipped ones from measured data.
    #[command(subcommand)]
    Profiles(ProfilesCommand),
}

#[derive(Debug, clap::Args)]
pub struct EmulateArgs {
    /// Built-in profile name, or a path to a profile TOML (e.g. from `tollgate calibrate`).
    #[arg(long, default_value = DEFAULT_PROFILE)]
    pub profile: String,
    /// Engine replicas behind this server.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Seed for output lengths and text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Emulated seconds per wall-clock second (10 runs ten times faster than real time).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Model name to serve (defaults to the profile's model).
    #[arg(long)]
    pub model_name: Option<String>,
    /// List the built-in profiles and their capacity figures, then exit.
    #[arg(long)]
    pub list_profiles: bool,
}

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Base URL of the engine, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub url: String,
    /// Model name to request.
    #[arg(long)]
    pub model: String,
    /// Where to write the profile TOML.
    #[arg(long, default_value = "calibrated.toml")]
    pub out: PathBuf,
    /// Bearer key for the engine, read from this environment variable if set.
    #[arg(long, env = "TOLLGATE_CALIBRATE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Prompt lengths (approximate tokens) for the prefill probes.
    #[arg(long, value_delimiter = ',', default_value = "32,128,512,1024")]
    pub prompt_sizes: Vec<u32>,
    /// Concurrent streams for the decode probes.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub batches: Vec<u32>,
    /// Tokens generated per decode probe.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: u32,
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    #[arg(long)]
    pub kv_tokens: Option<u64>,
    #[arg(long)]
    pub max_batch: Option<u32>,
    #[arg(long)]
    pub max_context: Option<u32>,
    /// Power draw of the engine, watts (not measurable from outside).
    #[arg(long, default_value_t = 0.0)]
    pub watts: f64,
    #[arg(long, default_value = "unknown")]
    pub hardware: String,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// List the built-in profiles with their capacity figures.
    List,
    /// Refit the shipped profiles from Splitwise's perf_model.csv.
    Fit {
        #[arg(long, default_value = "data/perf/perf_model.csv")]
        csv: PathBuf,
        #[arg(long, default_value = "profiles")]
        out: PathBuf,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Emulate(a) if a.list_profiles => list_profiles(),
        Command::Emulate(a) => emulate(a),
        Command::Calibrate(a) => run_calibrate(a),
        Command::Profiles(ProfilesCommand::List) => list_profiles(),
        Command::Profiles(ProfilesCommand::Fit { csv, out }) => {
            let rows = fit::read_perf_csv(&csv)?;
            let profiles = fit::all_profiles(&rows)?;
            fit::write_profiles(&profiles, &out)?;
            for p in &profiles {
                println!(
                    "{:<26} prompt_time median rel err {:>6.2}%  token_time {:>6.2}%  ({} rows)",
                    p.name,
                    100.0 * p.fit.prompt_time_median_rel_err,
                    100.0 * p.fit.token_time_median_rel_err,
                    p.fit.rows
                );
            }
            println!("wrote {} profiles to {}", profiles.len(), out.display());
            Ok(())
        }
    }
}

fn list_profiles() -> anyhow::Result<()> {
    println!(
        "{:<26} {:>10} {:>13} {:>13} {:>6} {:>9} {:>7} {:>8}",
        "profile", "ctx", "prefill s/tok", "decode s/tok", "batch", "kv tokens", "watts", "fit err"
    );
    for p in Profile::builtins() {
        let c = p.capacity(1024, 256);
        let err = if p.fit.rows > 0 {
            format!("{:.1}%", 100.0 * p.fit.prompt_time_median_rel_err.max(p.fit.token_time_median_rel_err))
        } else {
            "derived".into()
        };
        println!(
            "{:<26} {:>10} {:>13.3e} {:>13.3e} {:>6} {:>9} {:>7.0} {:>8}",
            p.name,
            p.max_context,
            c.prefill_s_per_token,
            c.decode_s_per_token,
            c.operating_batch,
            c.kv_tokens,
            c.watts,
            err
        );
    }
    println!(
        "(per-token figures at a 1024-token prompt and 256-token output; decode amortised over the operating batch)"
    );
    Ok(())
}

fn emulate(a: EmulateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.time_scale > 0.0 && a.time_scale.is_finite(), "--time-scale must be a positive number");
    anyhow::ensure!((1..=1024).contains(&a.replicas), "--replicas must be between 1 and 1024");
    let profile = Profile::resolve(&a.profile)?;
    let cfg = EmulatorConfig {
        model_name: a.model_name.unwrap_or_else(|| profile.model.clone()),
        profile,
        replicas: a.replicas,
        seed: a.seed,
        time_scale: a.time_scale,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        tracing::info!(
            addr = %listener.local_addr()?, profile = %cfg.profile.name, model = %cfg.model_name,
            replicas = cfg.replicas, time_scale = cfg.time_scale, "emulator listening"
        );
        // Machine-readable, for scripts and tests that start the emulator on port 0.
        println!("tollgate emulator listening on http://{}", listener.local_addr()?);
        let emu = Emulator::start(cfg);
        axum::serve(listener, emu.router()).with_graceful_shutdown(shutdown_signal()).await?;
        Ok(())
    })
}

fn run_calibrate(a: CalibrateArgs) -> anyhow::Result<()> {
    let opts = CalibrateOptions {
        url: a.url,
        model: a.model,
        api_key: a.api_key,
        prompt_sizes: a.prompt_sizes,
        batches: a.batches,
        decode_tokens: a.decode_tokens.max(4),
        repeats: a.repeats.max(1),
        kv_tokens: a.kv_tokens,
        max_batch: a.max_batch,
        max_context: a.max_context,
        watts: a.watts,
        hardware: a.hardware,
        timeout: Duration::from_secs(a.timeout),
    };
    let rt = tokio::runtime::Runtime::new()?;
    let cal = rt.block_on(calibrate(opts))?;
    println!("prefill probes (prompt tokens -> time to first token):");
    for (p, t) in &cal.prefill {
        println!("  {p:>6} tokens  {:>9.2} ms", t * 1000.0);
    }
    println!("decode probes (batch, context tokens -> time per step):");
    for (b, ctx, s) in &cal.decode {
        println!("  batch {b:>3}  ctx {ctx:>6}  {:>8.2} ms", s * 1000.0);
    }
    let p = &cal.profile;
    println!(
        "fit: prefill {:.3} ms + {:.5} ms/token + {:.3e} ms/pair; decode {:.3} ms + {:.4} ms/seq + {:.3e} ms/ctx token",
        p.prefill.base_ms,
        p.prefill.per_token_ms,
        p.prefill.per_pair_ms,
        p.decode.base_ms,
        p.decode.per_seq_ms,
        p.decode.per_ctx_token_ms
    );
    println!(
        "median relative error: prefill {:.1}%, decode {:.1}%; kv_tokens {}, max_batch {}, max_context {}",
        100.0 * p.fit.prompt_time_median_rel_err,
        100.0 * p.fit.token_time_median_rel_err,
        p.kv_tokens,
        p.max_batch,
        p.max_context
    );
    let header = "# Written by `tollgate calibrate`; load with `tollgate emulate --profile FILE`.\n";
    std::fs::write(&a.out, format!("{header}{}", p.to_toml()))
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(())
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
