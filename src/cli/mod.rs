//! Command-line interface: one subcommand per job, each a thin wrapper over a library module.

mod admin;
mod cache;
mod engine;
mod export;
mod gateway;
mod guard;
mod router;
mod router_embed;
mod simulate;
mod suite;

use crate::capacity::DEFAULT_PROFILE;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// Run the gateway: with no --config, in front of an emulated fleet with a demo tenant.
    Serve(ServeArgs),
    /// Manage tenant API keys in the gateway's store.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Call a running gateway's admin API (admin key from $TOLLGATE_ADMIN_KEY); prints JSON.
    Admin(admin::AdminArgs),
    /// Run an emulated inference engine (OpenAI-compatible, vLLM-like timing and metrics).
    Emulate(EmulateArgs),
    /// Measure a live OpenAI-compatible engine and write its profile.
    Calibrate(CalibrateArgs),
    /// Replay traces against a fleet under several policies and report the value each captures.
    Simulate(SimulateArgs),
    /// Run every scenario of a directory at several loads under every policy and print one
    /// matrix: each policy's share of the hindsight bound and of the hindsight replay.
    Suite(suite::SuiteArgs),
    /// Replay a slice of a scenario through the live gateway in front of emulators and through
    /// the simulator, and check that they agree (exit status 1 if they differ by more than 10%).
    Validate(ValidateArgs),
    /// Cheaper-model routing: train a router on RouteLLM-format data, or evaluate one.
    #[command(subcommand)]
    Router(router::RouterCommand),
    /// Response caching: measure the semantic cache's precision and hit rate on labelled pairs.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// The extraction watch: evaluate its signals on generated normal tenants and campaigns.
    #[command(subcommand)]
    Guard(guard::GuardCommand),
    /// Opt-in distillation data: write a tenant's kept prompt/response pairs as a fine-tuning file.
    Export(export::ExportArgs),
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
    /// Inject a fault into a share of requests: KIND[=ARG]@RATE, repeatable, e.g.
    /// `--fault status=503@0.02 --fault stall-first=5000@0.01 --fault cut@0.01`. Kinds: status,
    /// rate-limit, reset, stall-first, stall-mid, slow, cut, truncate, malformed. A request can
    /// also name one in its `x-emulator-fault` header.
    #[arg(long = "fault", value_name = "RULE")]
    pub faults: Vec<crate::emulator::faults::FaultRule>,
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

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Scenario file (see scenarios/).
    pub scenario: PathBuf,
    /// Policies to compare (fifo, priority, quota, bid-price); default all.
    #[arg(long = "policy")]
    pub policies: Vec<String>,
    /// Demand relative to the fleet's SLA-safe capacity (overrides the scenario's).
    #[arg(long)]
    pub overload: Option<f64>,
    /// Replace a class's trace: CLASS=PATH (same format).
    #[arg(long = "trace", value_parser = parse_kv)]
    pub traces: Vec<(String, PathBuf)>,
    /// Write the full results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Replay a synthetic load of this many requests resampled from the traces (instead of the
    /// scenario's duration), e.g. 1000000 to time the simulator.
    #[arg(long)]
    pub requests: Option<usize>,
    /// How every pool places requests on its replicas (overrides the scenario's).
    #[arg(long, value_enum)]
    pub placement: Option<crate::routing::placement::Placement>,
    /// Skip the hindsight bound (shares of it are then not reported).
    #[arg(long)]
    pub no_hindsight: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Scenario file (see scenarios/).
    pub scenario: PathBuf,
    /// Demand relative to the fleet's SLA-safe capacity (overrides the scenario's).
    #[arg(long)]
    pub overload: Option<f64>,
    /// How every pool places requests on its replicas (overrides the scenario's).
    #[arg(long, value_enum)]
    pub placement: Option<crate::routing::placement::Placement>,
    /// Where the live gateway listens (default: a free loopback port). With $TOLLGATE_ADMIN_KEY
    /// set, its dashboard is open at /dashboard while the replay runs.
    #[arg(long)]
    pub listen: Option<String>,
    /// Seconds of traffic to replay (in real time).
    #[arg(long, default_value_t = 300.0)]
    pub duration: f64,
    /// Write the comparison as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_kv(s: &str) -> Result<(String, PathBuf), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
        .ok_or_else(|| format!("expected CLASS=PATH, got `{s}`"))
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Gateway configuration (see tollgate.example.toml). Without it: the embedded default.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address (overrides the configuration).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a tenant and print it (once: only its hash is stored).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by id.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The gateway configuration whose store and tenants to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory, when there is no configuration (the embedded default's).
    #[arg(long, default_value = "tollgate-data")]
    pub data_dir: PathBuf,
}

/// Runs a command; logging starts here (`serve` starts it itself, with the traces its
/// configuration asks for).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let _telemetry = match &cli.command {
        Command::Serve(_) => None,
        _ => Some(crate::serve::telemetry::init(None)?),
    };
    match cli.command {
        Command::Serve(a) => gateway::serve(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Suite(a) => suite::run(a),
        Command::Validate(a) => simulate::validate(a),
        Command::Keys(k) => gateway::keys(k),
        Command::Admin(a) => admin::run(a),
        Command::Router(c) => router::router(c),
        Command::Cache(c) => cache::run(c),
        Command::Export(a) => export::run(a),
        Command::Guard(c) => guard::run(c),
        Command::Emulate(a) if a.list_profiles => engine::list_profiles(),
        Command::Emulate(a) => engine::emulate(a),
        Command::Calibrate(a) => engine::run_calibrate(a),
        Command::Profiles(ProfilesCommand::List) => engine::list_profiles(),
        Command::Profiles(ProfilesCommand::Fit { csv, out }) => engine::fit_profiles(&csv, &out),
    }
}
