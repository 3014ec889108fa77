//! `[redis]` and `state`: how replicas share budgets, limits, reservations and prices; and
//! `[tracing]`: where request traces go.

use super::check::{ensure, Invalid};
use serde::Deserialize;

/// How a replica uses the shared state in Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// What admission does when Redis cannot be reached.
    pub on_unavailable: OnUnavailable,
    /// Replicas sharing the state: when degraded, each enforces this share of every limit.
    pub replicas: u32,
    /// A replica that has not renewed its presence for this long is dead: its reservations and
    /// budget holds stop counting. Also the LP leader's lease.
    pub ttl_ms: u64,
    /// Longest wait for one Redis call before it counts as unreachable.
    pub timeout_ms: u64,
    /// Prefix of every key, so several deployments can share one Redis.
    pub prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            on_unavailable: OnUnavailable::default(),
            replicas: 1,
            ttl_ms: 3000,
            timeout_ms: 250,
            prefix: "tollgate".into(),
        }
    }
}

impl RedisConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        let ok = self.replicas > 0 && self.ttl_ms >= 100 && self.timeout_ms > 0;
        ensure(ok, at, "", "replicas >= 1, ttl_ms >= 100 and timeout_ms > 0")
    }
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

/// `[tracing]`: request traces exported over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Where spans are POSTed, e.g. `http://127.0.0.1:4318/v1/traces` (an OpenTelemetry
    /// Collector's OTLP/HTTP receiver); unset: no traces.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
    /// How often finished spans are sent, milliseconds.
    pub export_interval_ms: u64,
    pub export_timeout_ms: u64,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "tollgate".into(), export_interval_ms: 1000, export_timeout_ms: 5000 }
    }
}

impl TracingConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        let url = self.otlp_endpoint.as_deref().is_none_or(|e| e.starts_with("http://") || e.starts_with("https://"));
        ensure(url, at, "otlp_endpoint", "must be an http:// or https:// URL")?;
        let times = self.export_interval_ms > 0 && self.export_timeout_ms > 0;
        ensure(times, at, "", "export_interval_ms and export_timeout_ms must be > 0")
    }
}
