//! `[redis]` and `state`: how replicas share budgets, limits, reservations and prices; and
//! `[tracing]`: where request traces go.

use serde::Deserialize;

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

/// `[tracing]`: request traces exported over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Where spans are POSTed, e.g. `http://127.0.0.1:4318/v1/traces` (an OpenTelemetry
    /// Collector's OTLP/HTTP receiver); unset: no traces.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// How often finished spans are sent, milliseconds.
    #[serde(default = "default_export_interval")]
    pub export_interval_ms: u64,
    #[serde(default = "default_export_timeout")]
    pub export_timeout_ms: u64,
}

fn default_service_name() -> String {
    "tollgate".into()
}
fn default_export_interval() -> u64 {
    1000
}
fn default_export_timeout() -> u64 {
    5000
}
