//! One upstream backend: its client settings and URLs, requests outstanding, health, circuit
//! breaker and cool-down, and what a finished attempt reports to it.

use super::circuit::Circuit;
use crate::config::{BackendConfig, BackendKind, CircuitConfig};
use crate::metering::Rates;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A burst of 429s within this long halves a backend's limit once.
const DECREASE_EVERY: Duration = Duration::from_millis(100);

/// Why a backend could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend {backend}: ${var} is not set")]
    KeyUnset { backend: String, var: String },
    #[error("backend {backend}: the API key is not a valid header value")]
    KeyInvalid { backend: String },
    #[error("backend {backend}: url: {message}")]
    Url { backend: String, message: String },
    #[error("backend {backend}: {message}")]
    Client { backend: String, message: String },
}

/// The paths the gateway proxies, whose URLs each backend parses once.
const ENDPOINTS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

pub struct Backend {
    pub name: String,
    /// Base URL without a trailing slash.
    pub base: String,
    /// The OpenAI endpoints' URIs on this backend, parsed once.
    pub(super) endpoints: Vec<(&'static str, axum::http::Uri)>,
    /// The header carrying the upstream's own key (`Authorization: Bearer`, or Anthropic's
    /// `x-api-key`), marked sensitive: never logged.
    pub(super) auth_header: Option<(axum::http::HeaderName, axum::http::HeaderValue)>,
    pub cfg: BackendConfig,
    /// For health checks (off the request path).
    pub client: reqwest::Client,
    /// For proxied requests: hyper's pooled client, keep-alive per the configuration.
    pub http: super::client::HttpClient,
    pub(super) outstanding: AtomicUsize,
    pub(super) healthy: AtomicBool,
    /// Its last stream that ended well reported usage (so the next is trusted to).
    reports_usage: AtomicBool,
    pub(super) circuit: Mutex<Circuit>,
    /// Not picked before this instant: the backend answered 429 with a `Retry-After`.
    /// The concurrency limit (f64 bits): `max_in_flight`, halved by a 429, raised by one per
    /// success (AIMD).
    limit_bits: AtomicU64,
    /// When the limit was last halved, ms since `started` (0: never).
    last_decrease_ms: AtomicU64,
    started: Instant,
}

impl Backend {
    pub(super) fn new(cfg: &BackendConfig, circuit: &CircuitConfig) -> Result<Self, BackendError> {
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| BackendError::KeyUnset { backend: cfg.name.clone(), var: var.clone() })?,
            ),
            None => None,
        };
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true);
        if !cfg.keep_alive {
            b = b.pool_max_idle_per_host(0);
        }
        let client_err =
            |e: &dyn std::fmt::Display| BackendError::Client { backend: cfg.name.clone(), message: e.to_string() };
        // The `ca_file`'s certificates, read once: trusted by health checks and proxied requests alike.
        let extra = super::tls::extra_roots(cfg).map_err(|e| client_err(&e))?;
        for cert in &extra {
            b = b.add_root_certificate(reqwest::Certificate::from_der(cert).map_err(|e| client_err(&e))?);
        }
        let client = b.build().map_err(|e| client_err(&e))?;
        let tls = super::tls::connector(cfg, &extra).map_err(|e| client_err(&e))?;
        let http = super::client::http_client(cfg, tls);
        let base = cfg.url.trim_end_matches('/').to_string();
        let endpoints = ENDPOINTS
            .iter()
            .map(|p| format!("{base}{p}").parse::<axum::http::Uri>().map(|u| (*p, u)))
            .collect::<Result<_, _>>()
            .map_err(|e| BackendError::Url { backend: cfg.name.clone(), message: e.to_string() })?;
        let auth_header = match &api_key {
            Some(k) => {
                let (name, value) = match cfg.kind {
                    BackendKind::Openai | BackendKind::Responses => {
                        (axum::http::header::AUTHORIZATION, format!("Bearer {k}"))
                    }
                    BackendKind::Anthropic => (axum::http::HeaderName::from_static("x-api-key"), k.clone()),
                };
                let mut v = axum::http::HeaderValue::from_str(&value)
                    .map_err(|_| BackendError::KeyInvalid { backend: cfg.name.clone() })?;
                v.set_sensitive(true);
                Some((name, v))
            }
            None => None,
        };
        Ok(Self {
            name: cfg.name.clone(),
            base,
            endpoints,
            auth_header,
            http,
            cfg: cfg.clone(),
            client,
            outstanding: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            reports_usage: AtomicBool::new(false),
            circuit: Mutex::new(Circuit::new(circuit.failure_threshold, Duration::from_millis(circuit.open_ms))),
            limit_bits: AtomicU64::new((cfg.max_in_flight.max(1) as f64).to_bits()),
            last_decrease_ms: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// The URI of `path` on this backend.
    pub fn uri(&self, path: &str) -> Result<axum::http::Uri, axum::http::uri::InvalidUri> {
        match self.endpoints.iter().find(|(p, _)| *p == path) {
            Some((_, u)) => Ok(u.clone()),
            None => format!("{}{path}", self.base).parse::<axum::http::Uri>(),
        }
    }

    /// The header carrying the upstream's own key, if it has one.
    pub fn auth_header(&self) -> Option<&(axum::http::HeaderName, axum::http::HeaderValue)> {
        self.auth_header.as_ref()
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
        Rates::new(self.cfg.cost_per_1m_input, self.cfg.cost_per_1m_output)
            .with_cache(self.cfg.cost_per_1m_cached_input, self.cfg.cost_per_1m_cache_write)
    }

    /// Whether its last stream that ended well reported usage: a stream's events then need not
    /// be read for their text ([`crate::api::tally::Tally::trust_usage`]).
    pub fn reports_usage(&self) -> bool {
        self.reports_usage.load(Ordering::Relaxed)
    }

    /// A stream from it ended well, with usage reported or not.
    pub fn saw_usage(&self, reported: bool) {
        // Written only when it changes: every stream's end would otherwise write the line all
        // requests to this backend read.
        if self.reports_usage() != reported {
            self.reports_usage.store(reported, Ordering::Relaxed);
        }
    }

    /// The upstream said 429: halve this backend's concurrency limit (at most once per
    /// [`DECREASE_EVERY`], so one burst of 429s counts once; never below one), which lowers its
    /// share of new requests. It is never taken out of the pool for it.
    pub fn slow_down(&self) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        let last = self.last_decrease_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < DECREASE_EVERY.as_millis() as u64 {
            return;
        }
        self.last_decrease_ms.store(now_ms.max(1), Ordering::Relaxed);
        self.update_limit(|l| (l / 2.0).max(1.0));
        tracing::debug!(backend = %self.name, limit = self.limit(), "upstream said 429: concurrency limit halved");
    }

    /// The concurrency limit the 429s left (the configured `max_in_flight` when none came).
    pub fn limit(&self) -> f64 {
        f64::from_bits(self.limit_bits.load(Ordering::Relaxed))
    }

    fn update_limit(&self, f: impl Fn(f64) -> f64) {
        let max = self.cfg.max_in_flight as f64;
        let _ = self.limit_bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            Some(f(f64::from_bits(b)).clamp(1.0, max).to_bits())
        });
    }

    /// How busy this backend is for its limit: outstanding requests (plus the one being placed)
    /// per unit of limit, scaled so that an unthrottled backend's load is its outstanding count.
    pub fn effective_load(&self) -> f64 {
        (self.outstanding() + 1) as f64 * self.cfg.max_in_flight as f64 / self.limit()
    }

    pub(super) fn selectable(&self, now: Instant) -> bool {
        self.healthy()
            && self.outstanding() < self.cfg.max_in_flight
            && self.circuit.lock().expect("circuit lock").available(now)
    }

    /// Reports how a request ended, for the circuit breaker.
    pub fn report(&self, outcome: Report) {
        let mut c = self.circuit.lock().expect("circuit lock");
        let before = c.label();
        match outcome {
            Report::Success => {
                c.on_success();
                // Additive increase: one more request in flight per answer that went well.
                if self.limit() < self.cfg.max_in_flight as f64 {
                    self.update_limit(|l| l + 1.0);
                }
            }
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
