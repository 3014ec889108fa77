//! The gateway's configuration (`tollgate.toml`): listen address, backends, models and their
//! pools, tiers and tenants. Parsed with field paths in errors and validated as a whole at start,
//! so a bad file fails with a message naming the field (`models[1].backends[0]: unknown backend`).

mod backends;
mod batches;
mod cache;
mod check;
mod guard;
mod models;
mod responses;
mod service_tiers;
mod state;
mod tenants;
mod validate;

pub use backends::{BackendConfig, BackendKind, CircuitConfig, HealthConfig};
pub use batches::BatchesConfig;
pub use cache::{CacheConfig, CacheMode, SemanticCacheConfig, LOCAL_MODEL_FILES};
pub use check::Invalid;
pub use guard::{ExtractionPolicy, GuardConfig};
pub use models::{AdmissionConfig, CapacityConfig, FallbackConfig, ModelConfig, SiteConfig};
pub use responses::ResponsesConfig;
pub use service_tiers::{ServiceTier, ServiceTiers};
pub use state::{OnUnavailable, RedisConfig, TracingConfig};
pub use tenants::{TenantConfig, TierConfig, DEFAULT_MAX_TOKENS};

use serde::Deserialize;
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
    /// How long a client may take to send its request line and headers, milliseconds; a slower
    /// one (slow-headers) is disconnected. At least 100.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
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
    #[serde(default)]
    pub responses: ResponsesConfig,
    #[serde(default)]
    pub batches: BatchesConfig,
    /// The extraction watch (`models[].extraction` says what each model does with its scores).
    #[serde(default)]
    pub guard: GuardConfig,
    /// The tiers OpenAI's `service_tier` values name (`flex`, `priority`).
    #[serde(default)]
    pub service_tiers: ServiceTiers,
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
    /// Traces of every request over OTLP (off unless `otlp_endpoint` is set).
    #[serde(default)]
    pub tracing: Option<TracingConfig>,
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

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("tollgate-data")
}

fn default_admin_key_env() -> String {
    "TOLLGATE_ADMIN_KEY".into()
}

fn default_header_timeout() -> u64 {
    30_000
}

fn default_header_limit() -> usize {
    64 * 1024
}

fn default_body_limit() -> usize {
    2 * 1024 * 1024
}

fn default_auth_failures() -> u32 {
    crate::auth::DEFAULT_FAILURES_PER_MINUTE
}

pub(super) fn yes() -> bool {
    true
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

    /// What the tenant's tier charges (zero for an unknown tenant).
    pub fn tier_rates(&self, tenant: &str) -> crate::units::Rates {
        self.request_tier(tenant, ServiceTier::Default).map(TierConfig::price_rates).unwrap_or_default()
    }

    /// The tier a request of `tenant` naming `service` is served, charged and valued at: the
    /// tenant's own, or the one `[service_tiers]` names (none if it names none; batch lines
    /// without a batch tier are the tenant's own).
    pub fn request_tier(&self, tenant: &str, service: ServiceTier) -> Option<&TierConfig> {
        match self.service_tiers.tier_name(service) {
            Some(name) => self.tier(name),
            None if matches!(service, ServiceTier::Default | ServiceTier::Batch) => {
                self.tenant(tenant).and_then(|t| self.tier(&t.tier))
            }
            None => None,
        }
    }

    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// A configuration with one capacity-managed model `m` on `replicas` engines (its backend on a
/// port nothing listens on), one tier `t`, a tenant `a` and a tenant `b` with a budget of 100
/// micro-USD, for unit tests of the policy modules and the request stages.
#[cfg(test)]
pub(crate) fn one_pool_for_tests(replicas: u32) -> Config {
    let toml = format!(
        "[[backends]]\nname = \"b\"\nurl = \"http://127.0.0.1:9\"\n\
         [[models]]\nname = \"m\"\nbackends = [\"b\"]\n\
         capacity = {{ profile = \"llama3-8b-h100-tp1\", replicas = {replicas} }}\n\
         [[tiers]]\nname = \"t\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\n\
         [[tenants]]\nname = \"a\"\ntier = \"t\"\n\
         [[tenants]]\nname = \"b\"\ntier = \"t\"\nmonthly_budget_usd = 0.0001\n"
    );
    Config::from_toml(&toml, "test").expect("test config")
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
    fn an_empty_section_is_its_default() {
        let c =
            Config::from_toml(&format!("{GOOD}[admission]\n[cache]\n[redis]\n[health]\n[circuit]\n[tracing]\n"), "x")
                .unwrap();
        let d = Config::from_toml(GOOD, "x").unwrap();
        let same = |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| assert_eq!(format!("{a:?}"), format!("{b:?}"));
        same(&c.admission, &AdmissionConfig::default());
        same(&c.cache, &d.cache);
        same(&c.redis, &RedisConfig::default());
        same(&c.health, &HealthConfig::default());
        same(&c.circuit, &CircuitConfig::default());
        same(&c.tracing.unwrap(), &TracingConfig::default());
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
            (format!("{GOOD}[health]\ninterval_ms = 0\n"), "health"),
            (format!("{GOOD}[circuit]\nfailure_threshold = 0\n"), "circuit.failure_threshold"),
            (format!("{GOOD}[cache.semantic]\nurl = \"http://e\"\nthreshold = 2.0\n"), "cache.semantic.threshold"),
            (format!("{GOOD}[cache.semantic]\nmodel_dir = \"/nonexistent\"\n"), "cache.semantic.model_dir"),
            (format!("{GOOD}[cache.semantic]\nmodel_dir = \"/\"\nurl = \"http://e\"\n"), "cache.semantic.model_dir"),
            (format!("{GOOD}[cache.semantic]\nthreshold = 0.9\n"), "cache.semantic.model_dir"),
            (
                GOOD.replace(
                    "backends = [\"a\"]",
                    "backends = [\"a\"]\ncapacity = { profile = \"llama3-8b-h100-tp1\", replicas = 0 }",
                ),
                "models[0].capacity.replicas",
            ),
            (
                format!("{GOOD}[[tiers]]\nname = \"std\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 1.0\n"),
                "tiers[1].name",
            ),
        ];
        for (text, field) in cases {
            let err = Config::from_toml(&text, "x").unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }
}
