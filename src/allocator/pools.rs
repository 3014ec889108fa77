//! The fleet as the allocator sees it: one pool per capacity-managed model (its backends' engines,
//! described by a profile), and power-capped sites.

use crate::capacity::Profile;
use crate::config::Config;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct PoolModel {
    /// The model this pool serves (pools are named by their model).
    pub name: String,
    pub profile: Profile,
    pub engines: f64,
    /// SLA-safe share of engine time that may be planned.
    pub rho: f64,
    /// USD per engine-second.
    pub cost: f64,
    pub watts: f64,
    pub site: Option<usize>,
    /// Seconds of SLA-safe capacity that may be in flight at once.
    pub window_s: f64,
}

impl PoolModel {
    /// Engine-seconds a request of `input` prompt and `output` generated tokens costs this pool:
    /// its prefill, chunk by chunk as the engine runs it (each chunk a step of its own cost), plus
    /// the output at the amortised decode cost of the operating batch (BRIEF.md section 1:
    /// `w = a * uncached_prompt + b * output`).
    pub fn work(&self, input: f64, output: f64) -> f64 {
        let (prefill, decode) = self.work_parts(input, output);
        prefill + decode
    }

    /// [`Self::work`] split into its prefill and decode parts.
    pub fn work_parts(&self, input: f64, output: f64) -> (f64, f64) {
        let p = &self.profile;
        let chunk = f64::from(p.max_step_tokens.max(1));
        let (mut done, mut prefill_ms) = (0.0, 0.0);
        while done < input {
            let c = chunk.min(input - done);
            prefill_ms += p.prefill_ms(c, c * (2.0 * done + c));
            done += c;
        }
        let ctx = (input + output / 2.0).max(1.0);
        let batch = p.operating_batch((input + output).max(1.0) as u32);
        (prefill_ms / 1000.0, output * p.decode_s_per_token(batch, ctx as u32))
    }

    /// Engine-seconds per second that may be planned.
    pub fn capacity(&self) -> f64 {
        self.rho * self.engines
    }

    /// Engine-seconds of work that may be in flight at once.
    pub fn room(&self) -> f64 {
        self.capacity() * self.window_s
    }
}

/// Every capacity-managed pool and site.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub pools: Vec<PoolModel>,
    pub site_caps: Vec<f64>,
    pub site_names: Vec<String>,
    index: HashMap<String, usize, foldhash::fast::FixedState>,
}

/// Why the fleet could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("model {model}: {source}")]
    Profile { model: String, source: crate::capacity::profile::ProfileError },
}

impl Fleet {
    pub fn from_config(cfg: &Config) -> Result<Fleet, FleetError> {
        let site_names: Vec<String> = cfg.sites.iter().map(|s| s.name.clone()).collect();
        let site_caps = cfg.sites.iter().map(|s| s.power_cap_watts).collect();
        let mut pools = Vec::new();
        for m in &cfg.models {
            let Some(c) = &m.capacity else { continue };
            let profile =
                Profile::resolve(&c.profile).map_err(|e| FleetError::Profile { model: m.name.clone(), source: e })?;
            pools.push(PoolModel {
                name: m.name.clone(),
                engines: f64::from(c.replicas),
                rho: c.sla_utilisation,
                cost: c.cost_per_engine_second,
                watts: c.watts.unwrap_or(profile.watts),
                site: c.site.as_ref().and_then(|s| site_names.iter().position(|n| n == s)),
                window_s: c.queue_window_s,
                profile,
            });
        }
        let index = pools.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
        Ok(Fleet { pools, site_caps, site_names, index })
    }

    pub fn pool(&self, model: &str) -> Option<usize> {
        self.index.get(model).copied()
    }
}
