//! `[[backends]]`, `[health]` and `[circuit]`: the upstreams, their timeouts, probes and breakers.

use serde::Deserialize;

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
    #[serde(default = "super::yes")]
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
