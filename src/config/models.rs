//! `[[models]]`, their `capacity` and `fallbacks`, `[[sites]]` and `[admission]`: the pools the
//! allocator plans and how admission prices them.

use serde::Deserialize;
use std::path::PathBuf;

/// A site whose pools share a power cap.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    pub power_cap_watts: f64,
}

/// The allocator and bid-price admission.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Off: every request is admitted first come, first served (a plain proxy).
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// How often the LP is re-solved.
    #[serde(default = "default_solve_interval")]
    pub solve_interval_ms: u64,
    /// The planning horizon of the LP, seconds.
    #[serde(default = "default_horizon")]
    pub horizon_s: f64,
    /// Half-life of the demand forecast's exponential weighting, seconds.
    #[serde(default = "default_half_life")]
    pub forecast_half_life_s: f64,
    /// Step of the between-solves price correction, as a share of the mean value density.
    #[serde(default = "default_step")]
    pub price_step: f64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            solve_interval_ms: default_solve_interval(),
            horizon_s: default_horizon(),
            forecast_half_life_s: default_half_life(),
            price_step: default_step(),
        }
    }
}

/// The capacity behind a model's backends: one pool of engines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityConfig {
    /// Built-in profile name or profile file (prefill and decode seconds per token, batch, power).
    pub profile: String,
    /// Engines in the pool.
    pub replicas: u32,
    /// Share of the pool's engine-seconds that may be planned (SLA-safe utilisation).
    #[serde(default = "default_rho")]
    pub sla_utilisation: f64,
    /// Running cost of one engine, USD per engine-second (hardware amortisation plus power).
    #[serde(default)]
    pub cost_per_engine_second: f64,
    /// Power of one engine under load, watts (defaults to the profile's).
    #[serde(default)]
    pub watts: Option<f64>,
    #[serde(default)]
    pub site: Option<String>,
    /// Work in flight may not exceed this many seconds of the pool's SLA-safe capacity.
    #[serde(default = "default_window")]
    pub queue_window_s: f64,
}

/// A cheaper model that may serve a request for this one, keeping `quality` of its value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// The fallback model (in a scenario file: its pool, `pool = "..."`).
    #[serde(alias = "pool")]
    pub model: String,
    pub quality: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Public name clients ask for.
    pub name: String,
    /// Name sent upstream (defaults to `name`).
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// The pool: backends that serve this model.
    pub backends: Vec<String>,
    /// The engines behind those backends; without it the model is not capacity-managed.
    #[serde(default)]
    pub capacity: Option<CapacityConfig>,
    /// Cheaper models that may serve this one's requests when capacity is dear.
    #[serde(default)]
    pub fallbacks: Vec<FallbackConfig>,
    /// A router model (`tollgate router train`): per request, the probability that a fallback's
    /// answer is as good as this model's, used as that fallback's quality.
    #[serde(default)]
    pub router: Option<PathBuf>,
    /// How requests pick one of the model's backends: `round_robin`, `least_loaded` or
    /// `prefix` (the backend most likely to hold the prompt's prefix in its KV cache). Without
    /// it: two random backends, the less busy wins.
    #[serde(default)]
    pub placement: Option<crate::routing::placement::Placement>,
    /// If set, only these tenants may use (or see) the model.
    #[serde(default)]
    pub allowed_tenants: Option<Vec<String>>,
}

fn default_solve_interval() -> u64 {
    1_000
}

fn default_horizon() -> f64 {
    60.0
}

fn default_half_life() -> f64 {
    10.0
}

fn default_step() -> f64 {
    0.05
}

fn default_rho() -> f64 {
    0.85
}

fn default_window() -> f64 {
    2.0
}
