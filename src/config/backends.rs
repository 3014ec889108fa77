//! `[[backends]]`, `[health]` and `[circuit]`: the upstreams, their timeouts, probes and breakers.

use super::check::{ensure, http_url, non_negative, Invalid};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Any server speaking OpenAI's HTTP API (vLLM, SGLang, llama.cpp, TGI, hosted APIs).
    #[default]
    Openai,
    /// Anthropic's Messages API (`/v1/messages`, the key in `x-api-key`, `anthropic-version`):
    /// chat requests are translated on the way there and answers on the way back.
    Anthropic,
    /// OpenAI's Responses API (`/v1/responses`, the key as a bearer token): chat requests are
    /// translated on the way there (`store: false`: tollgate keeps conversations itself) and
    /// answers on the way back.
    Responses,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub name: String,
    /// Base URL; `/v1/...` paths are appended. `https://` is spoken over TLS (rustls, Mozilla's
    /// roots plus `ca_file`).
    pub url: String,
    /// PEM file of certificate authorities trusted for this backend besides the public roots
    /// (an internal CA, or a self-signed engine); only for an `https://` URL.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
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
    #[serde(default = "super::yes")]
    pub keep_alive: bool,
    /// Path probed by active health checks; by default `/health`, or `/v1/models` on an
    /// Anthropic backend (Anthropic's API has no health route; listing models needs its key).
    #[serde(default)]
    pub health_path: Option<String>,
    /// What serving costs, USD per 1M tokens (hosted API list price, or internal cost).
    #[serde(default)]
    pub cost_per_1m_input: f64,
    #[serde(default)]
    pub cost_per_1m_output: f64,
    /// Input read from the upstream's prompt cache, USD per 1M tokens (unset: as other input).
    #[serde(default)]
    pub cost_per_1m_cached_input: Option<f64>,
    /// Input written to the upstream's prompt cache (Anthropic's cache creation), USD per 1M
    /// tokens (unset: as other input).
    #[serde(default)]
    pub cost_per_1m_cache_write: Option<f64>,
}

/// `[health]`: active probes of every backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive failed probes that take a backend out (one late probe, as when the gateway
    /// itself was paused, does not).
    pub unhealthy_threshold: u32,
    /// Consecutive good probes that bring it back.
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { interval_ms: 5_000, timeout_ms: 2_000, unhealthy_threshold: 3, healthy_threshold: 2 }
    }
}

impl HealthConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(self.interval_ms > 0 && self.timeout_ms > 0, at, "", "interval_ms and timeout_ms must be positive")?;
        ensure(
            self.unhealthy_threshold > 0 && self.healthy_threshold > 0,
            at,
            "",
            "unhealthy_threshold and healthy_threshold must be at least 1",
        )
    }
}

/// `[circuit]`: when a failing backend is taken out, and for how long.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitConfig {
    /// Consecutive failures that open a backend's circuit.
    pub failure_threshold: u32,
    /// How long an open circuit stays open before a half-open probe.
    pub open_ms: u64,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, open_ms: 10_000 }
    }
}

impl CircuitConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(self.failure_threshold > 0, at, "failure_threshold", "must be at least 1")
    }
}

impl BackendConfig {
    /// Whether the backend is reached over TLS.
    pub fn is_https(&self) -> bool {
        self.url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// The path active health checks probe.
    pub fn health_path(&self) -> &str {
        match (&self.health_path, self.kind) {
            (Some(p), _) => p,
            (None, BackendKind::Openai) => "/health",
            // Hosted APIs have no `/health`; their model list needs the key, as the probe sends.
            (None, BackendKind::Anthropic | BackendKind::Responses) => "/v1/models",
        }
    }

    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(http_url(&self.url), at, "url", format!("`{}` is not an http(s) URL", self.url))?;
        ensure(self.ca_file.is_none() || self.is_https(), at, "ca_file", "is only read for an https:// url")?;
        let timeouts = self.connect_timeout_ms > 0 && self.first_byte_timeout_ms > 0 && self.idle_timeout_ms > 0;
        ensure(timeouts, at, "*_timeout_ms", "timeouts must be positive")?;
        ensure(self.max_in_flight > 0, at, "max_in_flight", "must be at least 1")?;
        let costs = non_negative(self.cost_per_1m_input)
            && non_negative(self.cost_per_1m_output)
            && self.cost_per_1m_cached_input.is_none_or(non_negative)
            && self.cost_per_1m_cache_write.is_none_or(non_negative);
        ensure(costs, at, "cost_per_1m_input", "costs must be non-negative")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anthropic_backend_is_probed_where_anthropic_answers() {
        let parse = |extra: &str| {
            toml::from_str::<BackendConfig>(&format!("name = \"a\"\nurl = \"http://x\"\n{extra}")).unwrap()
        };
        assert_eq!(parse("").health_path(), "/health");
        assert_eq!(parse("kind = \"anthropic\"").health_path(), "/v1/models");
        assert_eq!(parse("kind = \"anthropic\"\nhealth_path = \"/up\"").health_path(), "/up");
    }

    #[test]
    fn health_thresholds_default_to_three_out_and_two_back_and_must_be_at_least_one() {
        let parse = |toml: &str| toml::from_str::<HealthConfig>(toml).unwrap();
        let d = parse("");
        assert_eq!((d.unhealthy_threshold, d.healthy_threshold), (3, 2));
        assert!(d.validate("health").is_ok());
        let err = parse("unhealthy_threshold = 0").validate("health").unwrap_err().message;
        assert!(err.contains("at least 1"), "{err}");
        assert!(parse("healthy_threshold = 0").validate("health").is_err());
    }
}
