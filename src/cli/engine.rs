//! The engine-side commands: emulate, calibrate, and profile listing and fitting.

use super::{CalibrateArgs, EmulateArgs};
use crate::capacity::calibrate::{calibrate, CalibrateOptions};
use crate::capacity::{fit, Profile};
use crate::emulator::{Emulator, EmulatorConfig};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

pub fn fit_profiles(csv: &Path, out: &Path) -> anyhow::Result<()> {
    let rows = fit::read_perf_csv(csv)?;
    let profiles = fit::all_profiles(&rows)?;
    fit::write_profiles(&profiles, out)?;
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

pub fn list_profiles() -> anyhow::Result<()> {
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

pub fn emulate(a: EmulateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.time_scale > 0.0 && a.time_scale.is_finite(), "--time-scale must be a positive number");
    anyhow::ensure!((1..=1024).contains(&a.replicas), "--replicas must be between 1 and 1024");
    let profile = Profile::resolve(&a.profile)?;
    let cfg = EmulatorConfig {
        model_name: a.model_name.unwrap_or_else(|| profile.model.clone()),
        profile,
        replicas: a.replicas,
        seed: a.seed,
        time_scale: a.time_scale,
        faults: crate::emulator::faults::FaultPlan::new(a.faults)?,
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", a.host, a.port);
        let listener = crate::serve::http::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        tracing::info!(
            addr = %listener.local_addr()?, profile = %cfg.profile.name, model = %cfg.model_name,
            replicas = cfg.replicas, time_scale = cfg.time_scale, faults = ?cfg.faults.rules, "emulator listening"
        );
        // Machine-readable, for scripts and tests that start the emulator on port 0.
        println!("tollgate emulator listening on http://{}", listener.local_addr()?);
        let emu = Emulator::start(cfg);
        crate::serve::http::serve(listener, emu.router(), crate::serve::shutdown_signal()).await?;
        Ok(())
    })
}

pub fn run_calibrate(a: CalibrateArgs) -> anyhow::Result<()> {
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
