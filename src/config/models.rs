//! `[[models]]`, their `capacity` and `fallbacks`, `[[sites]]` and `[admission]`: the pools the
//! allocator plans and how admission prices them.

use super::check::{ensure, non_negative, positive, Invalid};
use serde::Deserialize;
use std::path::PathBuf;

/// A site whose pools share a power cap.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    pub power_cap_watts: f64,
}

/// `[admission]`: the allocator and bid-price admission.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Off: every request is admitted first come, first served (a plain proxy).
    pub enabled: bool,
    /// How often the LP is re-solved.
    pub solve_interval_ms: u64,
    /// The planning horizon of the LP, seconds.
    pub horizon_s: f64,
    /// Half-life of the demand forecast's exponential weighting, seconds.
    pub forecast_half_life_s: f64,
    /// Step of the between-solves price correction, as a share of the mean value density; one
    /// step every [`crate::allocator::CORRECTION_INTERVAL_S`].
    pub price_step: f64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self { enabled: true, solve_interval_ms: 1_000, horizon_s: 60.0, forecast_half_life_s: 10.0, price_step: 0.05 }
    }
}

impl AdmissionConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        let ok = positive(self.horizon_s) && positive(self.forecast_half_life_s);
        ensure(ok, at, "horizon_s", "horizon and half-life must be positive")?;
        ensure(self.solve_interval_ms > 0, at, "solve_interval_ms", "must be positive")?;
        ensure(non_negative(self.price_step), at, "price_step", "must be non-negative")
    }
}

impl SiteConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(positive(self.power_cap_watts), at, "power_cap_watts", "must be positive")
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
    /// Work in flight may not exceed the pool's SLA-safe capacity times the mean request lifetime,
    /// nor less than this many seconds of it: the floor that lets a burst of short requests
    /// queue (each is still checked against its tier's time-to-first-token objective). The
    /// default, 20 s, is the value chosen on the simulator's development scenarios
    /// (docs/simulator.md); until stop 38 they set it while the default stayed 2 s.
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
    /// The sentence-embeddings model folder a router trained with `router train --model-dir`
    /// weighs (the same model): each routed prompt is embedded in process before admission.
    #[serde(default)]
    pub router_model_dir: Option<PathBuf>,
    /// How requests pick one of the model's backends: `round_robin`, `least_loaded` or
    /// `prefix` (the backend most likely to hold the prompt's prefix in its KV cache). Without
    /// it: two random backends, the less busy wins.
    #[serde(default)]
    pub placement: Option<crate::routing::placement::Placement>,
    /// If set, only these tenants may use (or see) the model.
    #[serde(default)]
    pub allowed_tenants: Option<Vec<String>>,
    /// What the model does for a tenant the extraction watch scores as harvesting it.
    #[serde(default)]
    pub extraction: Option<super::guard::ExtractionPolicy>,
}

impl CapacityConfig {
    /// Its own fields (the site's existence is checked with the sites).
    pub fn validate(&self, at: &str) -> Result<(), Invalid> {
        if let Err(e) = crate::capacity::Profile::resolve(&self.profile) {
            return ensure(false, at, "profile", e.to_string());
        }
        ensure(self.replicas > 0, at, "replicas", "must be at least 1")?;
        let rho = positive(self.sla_utilisation) && self.sla_utilisation <= 1.0;
        ensure(rho, at, "sla_utilisation", "must be in (0, 1]")?;
        let costs = non_negative(self.cost_per_engine_second) && self.watts.is_none_or(non_negative);
        ensure(costs, at, "cost_per_engine_second", "cost and watts must be non-negative")?;
        ensure(positive(self.queue_window_s), at, "queue_window_s", "must be positive")
    }
}

impl FallbackConfig {
    pub fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(positive(self.quality) && self.quality <= 1.0, at, "quality", "must be in (0, 1]")
    }
}

impl ModelConfig {
    /// Its own fields; references to backends, sites and models are checked across sections.
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(!self.backends.is_empty(), at, "backends", "a model needs at least one backend")?;
        if let Some(c) = &self.capacity {
            c.validate(&format!("{at}.capacity"))?;
        }
        ensure(
            self.router.is_none() || !self.fallbacks.is_empty(),
            at,
            "router",
            "a router needs fallbacks to route to",
        )?;
        if let Some(dir) = &self.router_model_dir {
            ensure(self.router.is_some(), at, "router_model_dir", "names the embeddings of a router: set `router`")?;
            for f in super::cache::LOCAL_MODEL_FILES {
                let path = dir.join(f);
                ensure(path.is_file(), at, "router_model_dir", format!("{} is missing", path.display()))?;
            }
        }
        for (j, fb) in self.fallbacks.iter().enumerate() {
            fb.validate(&format!("{at}.fallbacks[{j}]"))?;
        }
        Ok(())
    }
}

fn default_rho() -> f64 {
    0.85
}

fn default_window() -> f64 {
    20.0
}
