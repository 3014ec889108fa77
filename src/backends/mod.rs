//! Upstream backends: each model's pool of backends, choosing one for a request (power of two
//! choices on outstanding requests among the healthy ones whose circuit allows), per-backend
//! circuit breakers, active health checks, and the HTTP client that talks to them.
//!
//! Only URLs from the configuration are ever contacted: a backend's URL is fixed at start and
//! requests only append the endpoint path to it.

pub mod circuit;
mod health;
pub mod upstream;

pub use health::spawn_health_checks;

use crate::config::{BackendConfig, CircuitConfig, Config};
use crate::metering::Rates;
use crate::routing::placement::{Placement, Placer};
use circuit::Circuit;
use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The paths the gateway proxies, whose URLs each backend parses once.
const ENDPOINTS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

pub struct Backend {
    pub name: String,
    /// Base URL without a trailing slash.
    pub base: String,
    /// The OpenAI endpoints' URIs on this backend, parsed once.
    endpoints: Vec<(&'static str, axum::http::Uri)>,
    /// `Authorization` for the upstream's own key (marked sensitive: never logged).
    auth_header: Option<axum::http::HeaderValue>,
    /// The upstream's own key, from the environment; never the client's.
    api_key: Option<String>,
    pub cfg: BackendConfig,
    /// For health checks (off the request path).
    pub client: reqwest::Client,
    /// For proxied requests: hyper's pooled client, keep-alive per the configuration.
    pub http: upstream::HttpClient,
    outstanding: AtomicUsize,
    healthy: AtomicBool,
    circuit: Mutex<Circuit>,
    /// Not picked before this instant: the backend answered 429 with a `Retry-After`.
    cool_until: Mutex<Option<Instant>>,
}

impl Backend {
    fn new(cfg: &BackendConfig, circuit: &CircuitConfig) -> Result<Self, String> {
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| format!("backend {}: ${var} is not set", cfg.name))?),
            None => None,
        };
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        if !cfg.keep_alive {
            b = b.pool_max_idle_per_host(0);
        }
        let client = b.build().map_err(|e| format!("backend {}: {e}", cfg.name))?;
        let http = upstream::http_client(cfg);
        let base = cfg.url.trim_end_matches('/').to_string();
        let endpoints = ENDPOINTS
            .iter()
            .map(|p| format!("{base}{p}").parse::<axum::http::Uri>().map(|u| (*p, u)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("backend {}: url: {e}", cfg.name))?;
        let auth_header = match &api_key {
            Some(k) => {
                let mut v = axum::http::HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| format!("backend {}: the API key is not a valid header value", cfg.name))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Self {
            name: cfg.name.clone(),
            base,
            endpoints,
            auth_header,
            http,
            api_key,
            cfg: cfg.clone(),
            client,
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            circuit: Mutex::new(Circuit::new(circuit.failure_threshold, Duration::from_millis(circuit.open_ms))),
            cool_until: Mutex::new(None),
        })
    }

    /// The URI of `path` on this backend.
    pub fn uri(&self, path: &str) -> Result<axum::http::Uri, String> {
        match self.endpoints.iter().find(|(p, _)| *p == path) {
            Some((_, u)) => Ok(u.clone()),
            None => format!("{}{path}", self.base).parse::<axum::http::Uri>().map_err(|e| e.to_string()),
        }
    }

    /// The `Authorization` header carrying the upstream's own key, if it has one.
    pub fn auth_header(&self) -> Option<&axum::http::HeaderValue> {
        self.auth_header.as_ref()
    }

    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, ok: bool) {
        if self.healthy.swap(ok, Ordering::Relaxed) != ok {
            tracing::warn!(backend = %self.name, healthy = ok, "backend health changed");
        }
    }

    pub fn circuit_label(&self) -> &'static str {
        self.circuit.lock().expect("circuit lock").label()
    }

    pub fn cost_rates(&self) -> Rates {
        Rates { input_per_1m: self.cfg.cost_per_1m_input, output_per_1m: self.cfg.cost_per_1m_output }
    }

    /// Skips this backend for `d` (it said 429 with `Retry-After`), at most a minute.
    pub fn cool_down(&self, d: Duration) {
        let until = Instant::now() + d.min(Duration::from_secs(60));
        let mut c = self.cool_until.lock().expect("cool-down lock");
        if c.is_none_or(|t| t < until) {
            *c = Some(until);
        }
    }

    /// How long this backend is still cooling down, if it is.
    fn cooling(&self, now: Instant) -> Option<Duration> {
        self.cool_until.lock().expect("cool-down lock").filter(|t| *t > now).map(|t| t - now)
    }

    fn selectable(&self, now: Instant) -> bool {
        self.cool_until.lock().expect("cool-down lock").is_none_or(|t| now >= t)
            && self.healthy()
            && self.outstanding() < self.cfg.max_in_flight
            && self.circuit.lock().expect("circuit lock").available(now)
    }

    /// Reports how a request ended, for the circuit breaker.
    pub fn report(&self, outcome: Report) {
        let mut c = self.circuit.lock().expect("circuit lock");
        let before = c.label();
        match outcome {
            Report::Success => c.on_success(),
            Report::Failure => c.on_failure(Instant::now()),
            Report::Neutral => c.on_abandon(),
        }
        if c.label() != before {
            tracing::warn!(backend = %self.name, from = before, to = c.label(), "circuit changed");
        }
    }
}

/// What a finished attempt tells the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Success,
    /// Connect error, timeout, 5xx: the backend is unwell.
    Failure,
    /// Neither (a 4xx, a 429, a cancelled request).
    Neutral,
}

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
    /// When every backend is cooling down after a 429: how long until the first is back.
    pub fn all_cooling(&self) -> Option<Duration> {
        let now = Instant::now();
        self.backends.iter().map(|b| b.cooling(now)).collect::<Option<Vec<_>>>()?.into_iter().min()
    }

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
            let loads: Vec<u32> = self.backends.iter().map(|b| b.outstanding().min(u32::MAX as usize) as u32).collect();
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
    /// with fewer outstanding requests wins. Takes its slot (and half-open probe) in the lease.
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
                    if cands[b].outstanding() < cands[a].outstanding() {
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
    pub fn new(cfg: &Config) -> Result<Self, String> {
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
