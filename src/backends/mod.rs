//! Upstream backends: each model's pool of backends, choosing one for a request (power of two
//! choices on outstanding requests among the healthy ones whose circuit allows), per-backend
//! circuit breakers, active health checks, and the HTTP client that talks to them.
//!
//! Only URLs from the configuration are ever contacted: a backend's URL is fixed at start and
//! requests only append the endpoint path to it.

pub mod circuit;
mod client;
mod health;
mod tls;
pub mod upstream;

mod backend;

pub use backend::{Backend, BackendError, Report};
pub use health::spawn_health_checks;

use crate::config::Config;
use crate::routing::placement::{Placement, Placer};
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A request in flight on a backend; releases its slot (and an unused probe) on drop.
pub struct Lease {
    pub backend: Arc<Backend>,
    reported: bool,
}

impl Lease {
    pub fn report(mut self, r: Report) {
        self.reported = true;
        self.backend.report(r);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.outstanding.fetch_sub(1, Ordering::Relaxed);
        if !self.reported {
            self.backend.report(Report::Neutral);
        }
    }
}

/// The backends serving one public model.
pub struct Pool {
    pub model: String,
    pub upstream_model: String,
    pub backends: Vec<Arc<Backend>>,
    /// The configured placement; without one, two random choices (the less busy wins).
    placer: Option<Mutex<Placer>>,
}

impl Pool {
    /// Whether placement uses the prompt's prefix hashes (so the caller should compute them).
    pub fn wants_prefix(&self) -> bool {
        self.placer.as_ref().is_some_and(|p| p.lock().expect("placer lock").policy() == Placement::Prefix)
    }

    /// Picks a backend not in `tried` by the configured placement, for a prompt whose prefix
    /// blocks hash to `hashes`; falls back to [`Self::pick`] when it has no placement.
    pub fn place(&self, tried: &[String], hashes: &[u64]) -> Option<Lease> {
        let Some(placer) = &self.placer else { return self.pick(tried) };
        let now = Instant::now();
        for _ in 0..4 {
            let eligible: Vec<bool> =
                self.backends.iter().map(|b| !tried.contains(&b.name) && b.selectable(now)).collect();
            let loads: Vec<u32> =
                self.backends.iter().map(|b| (b.effective_load() - 1.0).min(u32::MAX as f64) as u32).collect();
            let i = placer.lock().expect("placer lock").choose(hashes, &loads, &eligible)?;
            let chosen = &self.backends[i];
            if chosen.circuit.lock().expect("circuit lock").acquire(now) {
                chosen.outstanding.fetch_add(1, Ordering::Relaxed);
                return Some(Lease { backend: chosen.clone(), reported: false });
            }
        }
        None
    }

    /// Picks a backend not in `tried`: two random candidates among the selectable ones, the one
    /// with the lower load for its concurrency limit wins (a backend that said 429 lately has a
    /// lower limit, so a smaller share). Takes its slot (and half-open probe) in the lease.
    pub fn pick(&self, tried: &[String]) -> Option<Lease> {
        let now = Instant::now();
        for _ in 0..4 {
            let cands: Vec<&Arc<Backend>> =
                self.backends.iter().filter(|b| !tried.contains(&b.name) && b.selectable(now)).collect();
            let chosen = match cands.len() {
                0 => return None,
                1 => cands[0],
                n => {
                    let mut rng = rand::rng();
                    let a = rng.random_range(0..n);
                    let b = (a + rng.random_range(1..n)) % n;
                    if cands[b].effective_load() < cands[a].effective_load() {
                        cands[b]
                    } else {
                        cands[a]
                    }
                }
            };
            // Another request may have taken the half-open probe meanwhile: then look again.
            if chosen.circuit.lock().expect("circuit lock").acquire(now) {
                chosen.outstanding.fetch_add(1, Ordering::Relaxed);
                return Some(Lease { backend: chosen.clone(), reported: false });
            }
        }
        None
    }
}

/// Every backend and every model's pool.
pub struct Registry {
    pub backends: Vec<Arc<Backend>>,
    pools: HashMap<String, Pool>,
}

impl Registry {
    pub fn new(cfg: &Config) -> Result<Self, BackendError> {
        let backends: Vec<Arc<Backend>> =
            cfg.backends.iter().map(|b| Backend::new(b, &cfg.circuit).map(Arc::new)).collect::<Result<_, _>>()?;
        let pools = cfg
            .models
            .iter()
            .map(|m| {
                let members =
                    m.backends.iter().filter_map(|name| backends.iter().find(|b| &b.name == name).cloned()).collect();
                let pool = Pool {
                    model: m.name.clone(),
                    upstream_model: m.upstream_model.clone().unwrap_or_else(|| m.name.clone()),
                    backends: members,
                    placer: m.placement.map(|p| Mutex::new(Placer::new(p))),
                };
                (m.name.clone(), pool)
            })
            .collect();
        Ok(Self { backends, pools })
    }

    pub fn pool(&self, model: &str) -> Option<&Pool> {
        self.pools.get(model)
    }

    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }
}
