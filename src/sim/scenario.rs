//! Scenario files: a fleet of pools (from profiles), tiers with prices or values, and classes of
//! traffic, each a tenant replaying a trace against a pool. The gateway configuration that the
//! shared allocator and admission code read is derived from it, so the simulator prices requests
//! exactly as the gateway would.

use crate::config::{CapacityConfig, Config, FallbackConfig, TierConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Demand relative to the fleet's SLA-safe capacity (1 = the traces' work fills it).
    #[serde(default = "one")]
    pub overload: f64,
    /// Replay only the first this many seconds of (rescaled) traffic.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Requests that have not started within this many seconds are dropped (FIFO's timeout).
    #[serde(default = "default_timeout")]
    pub queue_timeout_s: f64,
    pub pools: Vec<PoolSpec>,
    /// Tiers, exactly as in the gateway's configuration.
    pub tiers: Vec<TierConfig>,
    pub classes: Vec<ClassSpec>,
    /// Engine replicas lost during the replay (robustness runs; none by default).
    #[serde(default)]
    pub outages: Vec<Outage>,
    /// Deferrable tiers whose requests are Batch API lines: they hold out for a price that rises
    /// over their tier's `deadline_ms`, as a batch's lines do over its completion window. Other
    /// deferrable tiers' requests are held open by their clients and take what clears.
    #[serde(default)]
    pub batch_tiers: Vec<String>,
}

/// One replica of pool `pool` lost `at_s` seconds into the replay: what it was serving is lost,
/// and the pool goes on with one replica fewer. Admission is not told (the gateway learns of it
/// only through the latencies it measures).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    pub pool: String,
    pub at_s: f64,
}

/// A pool of the fleet: a gateway model's `capacity` (the same type, the same defaults), with
/// the model's fallbacks and placement beside it.
#[derive(Debug, Clone, Deserialize)]
pub struct PoolSpec {
    pub name: String,
    /// Profile, replicas, SLA-safe utilisation, cost, queue window: as a gateway model's
    /// `capacity`, whose fields sit in the pool's table (unknown ones are refused there).
    #[serde(flatten)]
    pub capacity: CapacityConfig,
    /// Cheaper pools this pool's requests may be downgraded to, with the quality they keep (a
    /// gateway model's `fallbacks`; `pool` names the fallback's pool).
    #[serde(default)]
    pub fallbacks: Vec<FallbackConfig>,
    /// How a request picks one of the pool's replicas (as a gateway model's `placement`).
    #[serde(default)]
    pub placement: crate::routing::placement::Placement,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub name: String,
    pub tier: String,
    /// The pool asked for.
    pub pool: String,
    /// Trace file (Azure CSV or Mooncake JSONL), relative to the scenario file.
    pub trace: PathBuf,
    /// Share of the trace's requests that belong to this class (thinning), default all.
    #[serde(default = "one")]
    pub share: f64,
    /// Tokens per minute for the `quota` policy (default: the class's fair share of capacity).
    #[serde(default)]
    pub quota_tpm: Option<f64>,
    /// The `max_tokens` this class's clients send, if they send one: outputs are cut to it and
    /// admission sees it. Without it (the default) admission sees only its forecast of the
    /// output, as the gateway does for a client that sends none; never the trace's true length.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The most this class's clients will pay, USD per 1,000 tokens (what the gateway's
    /// `x-tollgate-max-price` header says): a bidding tenant's requests are worth at least that
    /// to it, in admission and in the value counted (default: no bid).
    #[serde(default)]
    pub max_price_per_1k: Option<f64>,
}

fn one() -> f64 {
    1.0
}
fn default_timeout() -> f64 {
    30.0
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {field}: {message}")]
    Invalid { path: String, field: String, message: String },
}

impl Scenario {
    pub fn from_file(path: &Path) -> Result<(Scenario, PathBuf), ScenarioError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read { path: p.clone(), source: e })?;
        let de = toml::Deserializer::parse(&text).map_err(|e| ScenarioError::Invalid {
            path: p.clone(),
            field: "(syntax)".into(),
            message: e.to_string(),
        })?;
        let mut s: Scenario = serde_path_to_error::deserialize(de).map_err(|e| ScenarioError::Invalid {
            path: p.clone(),
            field: e.path().to_string(),
            message: e.inner().message().to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        // A profile file is named relative to the scenario (built-in names stay as they are).
        for pool in &mut s.pools {
            let beside = base.join(&pool.capacity.profile);
            if crate::capacity::Profile::builtin(&pool.capacity.profile).is_err() && beside.is_file() {
                pool.capacity.profile = beside.display().to_string();
            }
        }
        if let Some((i, o)) = s.outages.iter().enumerate().find(|(_, o)| !s.pools.iter().any(|p| p.name == o.pool)) {
            return Err(ScenarioError::Invalid {
                path: p,
                field: format!("outages[{i}].pool"),
                message: format!("no pool named `{}`", o.pool),
            });
        }
        let bad_bid = |c: &ClassSpec| c.max_price_per_1k.is_some_and(|b| !(b.is_finite() && b >= 0.0));
        if let Some((i, _)) = s.classes.iter().enumerate().find(|(_, c)| bad_bid(c)) {
            return Err(ScenarioError::Invalid {
                path: p,
                field: format!("classes[{i}].max_price_per_1k"),
                message: "must be a non-negative number".into(),
            });
        }
        let held = |t: &String| !s.tiers.iter().any(|x| &x.name == t && x.deferrable);
        if let Some((i, t)) = s.batch_tiers.iter().enumerate().find(|(_, t)| held(t)) {
            return Err(ScenarioError::Invalid {
                path: p,
                field: format!("batch_tiers[{i}]"),
                message: format!("no deferrable tier named `{t}`"),
            });
        }
        s.gateway_config().map_err(|e| ScenarioError::Invalid {
            path: p,
            field: "(fleet)".into(),
            message: e.to_string(),
        })?;
        Ok((s, base))
    }

    /// The gateway configuration equivalent to this scenario: one model per pool (backends are
    /// placeholders, never contacted), one tenant per class.
    pub fn gateway_config(&self) -> Result<Config, crate::config::ConfigError> {
        let urls: Vec<Vec<String>> =
            self.pools.iter().map(|p| vec![format!("http://sim.invalid/{}", p.name)]).collect();
        self.live_config(&urls, None)
    }

    /// As [`Self::gateway_config`], with pool `i` served by the backends at `urls[i]` (one per
    /// replica, placed by the pool's `placement`, or one for all), keeping its data in `data_dir`.
    pub fn live_config(
        &self,
        urls: &[Vec<String>],
        data_dir: Option<&Path>,
    ) -> Result<Config, crate::config::ConfigError> {
        let q = |s: &str| format!("{s:?}");
        let mut t = String::new();
        if let Some(d) = data_dir {
            t += &format!("data_dir = {}\n", q(&d.display().to_string()));
        }
        t += "[admission]\nsolve_interval_ms = 1000\n";
        let mut names: Vec<Vec<String>> = Vec::new();
        for (p, urls) in self.pools.iter().zip(urls) {
            let mut pool_names = Vec::new();
            for (i, url) in urls.iter().enumerate() {
                let name = if urls.len() == 1 { p.name.clone() } else { format!("{}-{i}", p.name) };
                t += &format!("[[backends]]\nname = {}\nurl = {}\n", q(&name), q(url));
                pool_names.push(q(&name));
            }
            names.push(pool_names);
        }
        for (p, backends) in self.pools.iter().zip(&names) {
            let fallbacks: Vec<String> =
                p.fallbacks.iter().map(|f| format!("{{ model = {}, quality = {} }}", q(&f.model), f.quality)).collect();
            t += &format!(
                "[[models]]\nname = {0}\nbackends = [{7}]\nplacement = {8}\nfallbacks = [{1}]\ncapacity = {{ profile = {2}, replicas = {3}, sla_utilisation = {4}, cost_per_engine_second = {5}, queue_window_s = {6} }}\n",
                q(&p.name),
                fallbacks.join(", "),
                q(&p.capacity.profile),
                p.capacity.replicas,
                p.capacity.sla_utilisation,
                p.capacity.cost_per_engine_second,
                p.capacity.queue_window_s,
                backends.join(", "),
                q(p.placement.as_str())
            );
        }
        for tier in &self.tiers {
            t += &format!(
                "[[tiers]]\nname = {}\ninput_price_per_1m = {}\noutput_price_per_1m = {}\ndeferrable = {}\ndeadline_ms = {}\npriority = {}\n",
                q(&tier.name),
                tier.input_price_per_1m,
                tier.output_price_per_1m,
                tier.deferrable,
                tier.deadline_ms,
                tier.priority
            );
            for (k, v) in
                [("value_per_1m_input", tier.value_per_1m_input), ("value_per_1m_output", tier.value_per_1m_output)]
            {
                if let Some(v) = v {
                    t += &format!("{k} = {v}\n");
                }
            }
            for (k, v) in [("ttft_slo_ms", tier.ttft_slo_ms), ("e2e_slo_ms", tier.e2e_slo_ms)] {
                if let Some(v) = v {
                    t += &format!("{k} = {v}\n");
                }
            }
        }
        for c in &self.classes {
            t += &format!("[[tenants]]\nname = {}\ntier = {}\n", q(&c.name), q(&c.tier));
        }
        Config::from_toml(&t, &format!("scenario {}", self.name))
    }

    pub fn tier(&self, name: &str) -> Option<&TierConfig> {
        self.tiers.iter().find(|t| t.name == name)
    }
}
