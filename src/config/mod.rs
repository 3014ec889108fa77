//! The gateway's configuration (`tollgate.toml`): listen address, backends, models and their
//! pools, tiers and tenants. Parsed with field paths in errors and validated as a whole at start,
//! so a bad file fails with a message naming the field (`models[1].backends[0]: unknown backend`).

use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the SQLite ledger and key store live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Environment variable holding the admin key.
    #[serde(default = "default_admin_key_env")]
    pub admin_key_env: String,
    /// Largest request body accepted, bytes.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Largest request line and headers accepted, in bytes (431 beyond); at least 8,192.
    #[serde(default = "default_header_limit")]
    pub header_limit_bytes: usize,
    /// Failed authentication attempts allowed per client address and minute; past it, 429.
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_minute: u32,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub circuit: CircuitConfig,
    pub backends: Vec<BackendConfig>,
    pub models: Vec<ModelConfig>,
    pub tiers: Vec<TierConfig>,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Power-capped sites that pools may belong to.
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    #[serde(default)]
    pub admission: AdmissionConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Where replicas share budgets, limits, reservations, prices and the exact cache:
    /// `"memory"` (the default: this process alone) or a `redis://` URL.
    #[serde(default)]
    pub state: Option<String>,
    /// The ledger and key store: SQLite in `data_dir` by default, or a `postgres://` URL.
    #[serde(default)]
    pub ledger: Option<String>,
    /// Whether a response's end waits until its ledger row is committed, so a replica killed
    /// mid-load has recorded every request its clients saw complete. Default: on with
    /// PostgreSQL (replicas come and go), off with SQLite (one process, drained on shutdown).
    #[serde(default)]
    pub ledger_durable: Option<bool>,
    #[serde(default)]
    pub redis: RedisConfig,
}

/// How a replica uses the shared state in Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// What admission does when Redis cannot be reached.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// Replicas sharing the state: when degraded, each enforces this share of every limit.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// A replica that has not renewed its presence for this long is dead: its reservations and
    /// budget holds stop counting. Also the LP leader's lease.
    #[serde(default = "default_redis_ttl")]
    pub ttl_ms: u64,
    /// Longest wait for one Redis call before it counts as unreachable.
    #[serde(default = "default_redis_timeout")]
    pub timeout_ms: u64,
    /// Prefix of every key, so several deployments can share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            on_unavailable: OnUnavailable::default(),
            replicas: default_replicas(),
            ttl_ms: default_redis_ttl(),
            timeout_ms: default_redis_timeout(),
            prefix: default_redis_prefix(),
        }
    }
}

fn default_replicas() -> u32 {
    1
}
fn default_redis_ttl() -> u64 {
    3000
}
fn default_redis_timeout() -> u64 {
    250
}
fn default_redis_prefix() -> String {
    "tollgate".into()
}

/// When shared state is unreachable: refuse everything with 503 (exact limits, no service), or
/// keep serving under local limits divided by the replica count (service, approximate limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    #[default]
    FailClosed,
    Degrade,
}

/// Response caching: an exact cache always available to tiers that allow it, and a semantic
/// cache when an embeddings backend is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most bytes of cached responses held (exact and semantic together).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: u64,
    /// How long an entry may be served after it was stored, seconds.
    #[serde(default = "default_cache_ttl")]
    pub ttl_s: u64,
    #[serde(default)]
    pub semantic: Option<SemanticCacheConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { max_bytes: default_cache_bytes(), ttl_s: default_cache_ttl(), semantic: None }
    }
}

/// Where the semantic cache's embeddings come from and how close a hit must be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticCacheConfig {
    /// Base URL of an OpenAI-compatible embeddings server (`/v1/embeddings` is appended).
    pub url: String,
    /// Model name sent to it.
    #[serde(default = "default_embedding_model")]
    pub model: String,
    /// Environment variable holding its API key, if it needs one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Least cosine similarity of a hit (`tollgate cache eval` measures precision per threshold).
    #[serde(default = "default_semantic_threshold")]
    pub threshold: f32,
    /// Most entries kept per (tenant, model, parameters); the oldest go first.
    #[serde(default = "default_semantic_entries")]
    pub max_entries_per_scope: usize,
    #[serde(default = "default_embed_timeout")]
    pub timeout_ms: u64,
}

/// When a tier's requests may be answered from the exact cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    Off,
    /// Only deterministic requests: `temperature` 0 or a `seed`.
    #[default]
    Deterministic,
    /// Every request: the tier accepts a stored answer to a sampled request.
    Always,
}

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
    #[serde(default = "yes")]
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
    pub model: String,
    pub quality: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Any server speaking OpenAI's HTTP API (vLLM, SGLang, llama.cpp, TGI, hosted APIs).
    #[default]
    Openai,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: String,
    /// Base URL; `/v1/...` paths are appended.
    pub url: String,
    #[serde(default)]
    pub kind: BackendKind,
    /// Environment variable holding the upstream's API key (never the client's).
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Longest wait for the upstream's response head and first body bytes.
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout_ms: u64,
    /// Longest silence between two chunks of a response.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Reuse connections; set false for servers that close them after each response anyway.
    #[serde(default = "yes")]
    pub keep_alive: bool,
    /// Path probed by active health checks.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// What serving costs, USD per 1M tokens (hosted API list price, or internal cost).
    #[serde(default)]
    pub cost_per_1m_input: f64,
    #[serde(default)]
    pub cost_per_1m_output: f64,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    /// What the tenant pays, USD per 1M tokens.
    pub input_price_per_1m: f64,
    pub output_price_per_1m: f64,
    #[serde(default)]
    pub ttft_slo_ms: Option<u64>,
    #[serde(default)]
    pub e2e_slo_ms: Option<u64>,
    /// Value of the work to the operator, USD per 1M tokens, for internal products that pay no
    /// price (defaults to the price).
    #[serde(default)]
    pub value_per_1m_input: Option<f64>,
    #[serde(default)]
    pub value_per_1m_output: Option<f64>,
    /// Batch work: may wait for cheaper capacity until its deadline.
    #[serde(default)]
    pub deferrable: bool,
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    /// Capacity held for this tier on each pool it uses, engine-seconds per second.
    #[serde(default)]
    pub reserved_engine_seconds: f64,
    /// Longest prompt accepted, tokens.
    #[serde(default)]
    pub max_context_tokens: Option<u32>,
    /// Strict priority, higher first: what a priority scheduler would use (the simulator's
    /// `priority` policy); tollgate's own admission prices value instead.
    #[serde(default)]
    pub priority: u32,
    /// When responses may come from the exact cache.
    #[serde(default)]
    pub cache: CacheMode,
    /// Whether a close enough earlier answer (the semantic cache) may be served.
    #[serde(default)]
    pub semantic_cache: bool,
}

impl Config {
    /// Whether responses wait for their ledger row to be committed (see `ledger_durable`).
    pub fn ledger_durable(&self) -> bool {
        self.ledger_durable.unwrap_or(self.ledger.is_some())
    }

    /// The shared-state URL, if replicas share state through Redis.
    pub fn redis_url(&self) -> Option<&str> {
        self.state.as_deref().filter(|s| *s != "memory")
    }
}

impl TierConfig {
    /// The time-to-first-token objective in seconds, infinite when the tier has none.
    pub fn ttft_slo_s(&self) -> f64 {
        self.ttft_slo_ms.map(|m| m as f64 / 1000.0).unwrap_or(f64::INFINITY)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    pub tier: String,
    /// Models this tenant may use; `["*"]` for all.
    #[serde(default = "all_models")]
    pub models: Vec<String>,
    /// Monthly budget, USD: admission holds each request's expected charge against it.
    #[serde(default)]
    pub monthly_budget_usd: Option<f64>,
    /// Tokens (prompt plus `max_tokens`, or the expected output) admitted per sliding minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Requests admitted per sliding minute.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default = "default_health_interval")]
    pub interval_ms: u64,
    #[serde(default = "default_health_timeout")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    /// Consecutive failures that open a backend's circuit.
    #[serde(default = "default_failures")]
    pub failure_threshold: u32,
    /// How long an open circuit stays open before a half-open probe.
    #[serde(default = "default_open_ms")]
    pub open_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { interval_ms: default_health_interval(), timeout_ms: default_health_timeout() }
    }
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self { failure_threshold: default_failures(), open_ms: default_open_ms() }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("tollgate-data")
}
fn default_admin_key_env() -> String {
    "TOLLGATE_ADMIN_KEY".into()
}
fn default_header_limit() -> usize {
    64 * 1024
}

fn default_body_limit() -> usize {
    2 * 1024 * 1024
}
fn default_connect_timeout() -> u64 {
    2_000
}
fn default_first_byte_timeout() -> u64 {
    60_000
}
fn default_idle_timeout() -> u64 {
    30_000
}
fn default_max_in_flight() -> usize {
    1_024
}
fn default_health_path() -> String {
    "/health".into()
}
fn default_health_interval() -> u64 {
    5_000
}
fn default_health_timeout() -> u64 {
    2_000
}
fn default_failures() -> u32 {
    5
}
fn default_open_ms() -> u64 {
    10_000
}
fn default_solve_interval() -> u64 {
    1_000
}
fn default_auth_failures() -> u32 {
    crate::auth::DEFAULT_FAILURES_PER_MINUTE
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
fn default_cache_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_cache_ttl() -> u64 {
    3_600
}
fn default_embedding_model() -> String {
    "all-minilm-l6-v2".into()
}
/// all-MiniLM-L6-v2 on Quora question pairs: 92% precision at 0.98 (no threshold reaches 95%;
/// docs/routing.md).
fn default_semantic_threshold() -> f32 {
    0.98
}
fn default_semantic_entries() -> usize {
    10_000
}
fn default_embed_timeout() -> u64 {
    2_000
}
fn default_rho() -> f64 {
    0.85
}
fn default_window() -> f64 {
    2.0
}
fn default_deadline() -> u64 {
    300_000
}
/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}
/// `x >= 0`, false for NaN.
fn non_negative(x: f64) -> bool {
    x >= 0.0
}
fn yes() -> bool {
    true
}
fn all_models() -> Vec<String> {
    vec!["*".into()]
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {field}: {message}")]
    Parse { path: String, field: String, message: String },
    #[error("{origin}: {field}: {message}")]
    Invalid { origin: String, field: String, message: String },
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), source: e })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            field: "(syntax)".into(),
            message: e.to_string().trim().to_string(),
        })?;
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            field: e.path().to_string(),
            message: e.inner().message().trim().to_string(),
        })?;
        // URLs that may hold passwords can come from the environment instead of the file.
        if let Ok(v) = std::env::var("TOLLGATE_STATE") {
            cfg.state = Some(v);
        }
        if let Ok(v) = std::env::var("TOLLGATE_LEDGER") {
            cfg.ledger = Some(v);
        }
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Checks what types cannot: references resolve, names are unique, numbers are sane.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| Err(ConfigError::Invalid { origin: origin.into(), field, message });
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("listen".into(), format!("`{}` is not an address like 127.0.0.1:8080", self.listen));
        }
        if self.body_limit_bytes < 1024 {
            return bad("body_limit_bytes".into(), "must be at least 1024".into());
        }
        if self.header_limit_bytes < 8192 {
            return bad("header_limit_bytes".into(), "must be at least 8192".into());
        }
        if self.circuit.failure_threshold == 0 {
            return bad("circuit.failure_threshold".into(), "must be at least 1".into());
        }
        if self.auth_failures_per_minute == 0 {
            return bad("auth_failures_per_minute".into(), "must be at least 1".into());
        }
        match self.state.as_deref() {
            None | Some("memory") => {}
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {}
            Some(_) => return bad("state".into(), "must be \"memory\" or a redis:// URL".into()),
        }
        if let Some(u) = &self.ledger {
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                return bad("ledger".into(), "must be a postgres:// URL (SQLite in data_dir is the default)".into());
            }
        }
        if self.redis.replicas == 0 || self.redis.ttl_ms < 100 || self.redis.timeout_ms == 0 {
            return bad("redis".into(), "replicas >= 1, ttl_ms >= 100 and timeout_ms > 0".into());
        }
        let mut names = HashSet::new();
        for (i, b) in self.backends.iter().enumerate() {
            let f = |k: &str| format!("backends[{i}].{k}");
            if !names.insert(b.name.as_str()) {
                return bad(f("name"), format!("duplicate backend `{}`", b.name));
            }
            match reqwest::Url::parse(&b.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return bad(f("url"), format!("`{}` is not an http(s) URL", b.url)),
            }
            if b.connect_timeout_ms == 0 || b.first_byte_timeout_ms == 0 || b.idle_timeout_ms == 0 {
                return bad(f("*_timeout_ms"), "timeouts must be positive".into());
            }
            if b.max_in_flight == 0 {
                return bad(f("max_in_flight"), "must be at least 1".into());
            }
            if b.cost_per_1m_input < 0.0 || b.cost_per_1m_output < 0.0 {
                return bad(f("cost_per_1m_input"), "costs must be non-negative".into());
            }
        }
        if self.models.is_empty() {
            return bad("models".into(), "at least one model is needed".into());
        }
        let mut models = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            if !models.insert(m.name.as_str()) {
                return bad(format!("models[{i}].name"), format!("duplicate model `{}`", m.name));
            }
            if m.backends.is_empty() {
                return bad(format!("models[{i}].backends"), "a model needs at least one backend".into());
            }
            for (j, b) in m.backends.iter().enumerate() {
                if !names.contains(b.as_str()) {
                    return bad(format!("models[{i}].backends[{j}]"), format!("unknown backend `{b}`"));
                }
            }
        }
        if let Some(sc) = &self.cache.semantic {
            match reqwest::Url::parse(&sc.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return bad("cache.semantic.url".into(), format!("`{}` is not an http(s) URL", sc.url)),
            }
            if !(sc.threshold > 0.0 && sc.threshold <= 1.0) {
                return bad("cache.semantic.threshold".into(), "must be in (0, 1]".into());
            }
            if sc.max_entries_per_scope == 0 {
                return bad("cache.semantic.max_entries_per_scope".into(), "must be at least 1".into());
            }
        }
        let sites: HashSet<&str> = self.sites.iter().map(|s| s.name.as_str()).collect();
        for (i, site) in self.sites.iter().enumerate() {
            if !positive(site.power_cap_watts) {
                return bad(format!("sites[{i}].power_cap_watts"), "must be positive".into());
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            if let Some(c) = &m.capacity {
                let f = |k: &str| format!("models[{i}].capacity.{k}");
                if let Err(e) = crate::capacity::Profile::resolve(&c.profile) {
                    return bad(f("profile"), e.to_string());
                }
                if c.replicas == 0 {
                    return bad(f("replicas"), "must be at least 1".into());
                }
                if !(positive(c.sla_utilisation) && c.sla_utilisation <= 1.0) {
                    return bad(f("sla_utilisation"), "must be in (0, 1]".into());
                }
                if !non_negative(c.cost_per_engine_second) || c.watts.is_some_and(|w| !non_negative(w)) {
                    return bad(f("cost_per_engine_second"), "cost and watts must be non-negative".into());
                }
                if !positive(c.queue_window_s) {
                    return bad(f("queue_window_s"), "must be positive".into());
                }
                if let Some(site) = &c.site {
                    if !sites.contains(site.as_str()) {
                        return bad(f("site"), format!("unknown site `{site}`"));
                    }
                }
            }
            if m.router.is_some() && m.fallbacks.is_empty() {
                return bad(format!("models[{i}].router"), "a router needs fallbacks to route to".into());
            }
            for (j, fb) in m.fallbacks.iter().enumerate() {
                if !models.contains(fb.model.as_str()) || fb.model == m.name {
                    return bad(
                        format!("models[{i}].fallbacks[{j}].model"),
                        format!("unknown or same model `{}`", fb.model),
                    );
                }
                if !(positive(fb.quality) && fb.quality <= 1.0) {
                    return bad(format!("models[{i}].fallbacks[{j}].quality"), "must be in (0, 1]".into());
                }
            }
        }
        let mut tiers = HashSet::new();
        for (i, t) in self.tiers.iter().enumerate() {
            if !tiers.insert(t.name.as_str()) {
                return bad(format!("tiers[{i}].name"), format!("duplicate tier `{}`", t.name));
            }
            if !(non_negative(t.input_price_per_1m) && non_negative(t.output_price_per_1m)) {
                return bad(format!("tiers[{i}].input_price_per_1m"), "prices must be non-negative".into());
            }
            if t.value_per_1m_input.is_some_and(|v| !non_negative(v))
                || t.value_per_1m_output.is_some_and(|v| !non_negative(v))
            {
                return bad(format!("tiers[{i}].value_per_1m_input"), "values must be non-negative".into());
            }
            if !non_negative(t.reserved_engine_seconds) {
                return bad(format!("tiers[{i}].reserved_engine_seconds"), "must be non-negative".into());
            }
        }
        let mut tenants = HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !tenants.insert(t.name.as_str()) {
                return bad(format!("tenants[{i}].name"), format!("duplicate tenant `{}`", t.name));
            }
            if !tiers.contains(t.tier.as_str()) {
                return bad(format!("tenants[{i}].tier"), format!("unknown tier `{}`", t.tier));
            }
            for (j, m) in t.models.iter().enumerate() {
                if m != "*" && !models.contains(m.as_str()) {
                    return bad(format!("tenants[{i}].models[{j}]"), format!("unknown model `{m}`"));
                }
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            for (j, t) in m.allowed_tenants.iter().flatten().enumerate() {
                if !tenants.contains(t.as_str()) {
                    return bad(format!("models[{i}].allowed_tenants[{j}]"), format!("unknown tenant `{t}`"));
                }
            }
        }
        if !(positive(self.admission.horizon_s) && positive(self.admission.forecast_half_life_s)) {
            return bad("admission.horizon_s".into(), "horizon and half-life must be positive".into());
        }
        if self.admission.solve_interval_ms == 0 {
            return bad("admission.solve_interval_ms".into(), "must be positive".into());
        }
        Ok(())
    }

    /// Whether `tenant` may use (and see) `model`: the tenant's allow-list and the model's gate.
    pub fn may_use(&self, tenant: &str, model: &str) -> bool {
        let Some(t) = self.tenant(tenant) else { return false };
        let gate_ok = self
            .models
            .iter()
            .find(|m| m.name == model)
            .is_some_and(|m| m.allowed_tenants.as_ref().is_none_or(|a| a.iter().any(|x| x == tenant)));
        gate_ok && t.may_use(model)
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn tier(&self, name: &str) -> Option<&TierConfig> {
        self.tiers.iter().find(|t| t.name == name)
    }

    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

impl TenantConfig {
    pub fn may_use(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:9000"
[[backends]]
name = "a"
url = "http://127.0.0.1:8001"
[[models]]
name = "m"
backends = ["a"]
[[tiers]]
name = "std"
input_price_per_1m = 1.0
output_price_per_1m = 2.0
[[tenants]]
name = "t"
tier = "std"
"#;

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tollgate.example.toml");
        Config::from_file(&path).unwrap();
        let c = Config::from_toml(GOOD, "good").unwrap();
        assert!(c.tenant("t").unwrap().may_use("m"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("backends = [\"a\"]", "backends = [\"zz\"]"), "models[0].backends[0]"),
            (GOOD.replace("http://127.0.0.1:8001", "ftp:/x"), "backends[0].url"),
            (GOOD.replace("tier = \"std\"", "tier = \"gold\""), "tenants[0].tier"),
            (GOOD.replace("input_price_per_1m = 1.0", "input_price_per_1m = \"cheap\""), "tiers[0].input_price_per_1m"),
            (GOOD.replace("listen = ", "lisen = "), "lisen"),
            (GOOD.replace("127.0.0.1:9000", "nowhere"), "listen"),
        ];
        for (text, field) in cases {
            let err = Config::from_toml(&text, "x").unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }
}

/// A configuration with one capacity-managed model `m` on `replicas` engines, one tier `t` and
/// one tenant `a`, for unit tests of the policy modules.
#[cfg(test)]
pub(crate) fn one_pool_for_tests(replicas: u32) -> Config {
    let toml = format!(
        "[[backends]]\nname = \"b\"\nurl = \"http://127.0.0.1:9\"\n\
         [[models]]\nname = \"m\"\nbackends = [\"b\"]\n\
         capacity = {{ profile = \"llama3-8b-h100-tp1\", replicas = {replicas} }}\n\
         [[tiers]]\nname = \"t\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\n\
         [[tenants]]\nname = \"a\"\ntier = \"t\"\n"
    );
    Config::from_toml(&toml, "test").expect("test config")
}
