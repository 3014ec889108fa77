//! `[[tiers]]` and `[[tenants]]`: prices, values, objectives and limits, and who may use what.

use super::cache::CacheMode;
use super::check::{ensure, non_negative, Invalid};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    /// What the tenant pays, USD per 1M tokens.
    pub input_price_per_1m: f64,
    pub output_price_per_1m: f64,
    /// What the tenant pays for input the upstream read from its prompt cache, USD per 1M tokens
    /// (unset: as other input).
    #[serde(default)]
    pub cached_input_price_per_1m: Option<f64>,
    /// What the tenant pays for input written to the upstream's prompt cache (unset: as other
    /// input).
    #[serde(default)]
    pub cache_write_price_per_1m: Option<f64>,
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
    /// Output tokens a request that sets no `max_tokens` may generate when its tenant has a
    /// monthly budget or a tokens-per-minute limit: the budget hold and the token window count
    /// this many, and it is sent upstream as `max_tokens`, so neither can be overrun.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
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
    /// Opt-in distillation data: keep each answered chat completion of this tier's tenants as a
    /// prompt/response pair under the data directory, for `tollgate export` (off by default).
    #[serde(default)]
    pub keep_for_distillation: bool,
    /// Days kept pairs are kept before they are deleted.
    #[serde(default = "default_retention_days")]
    pub distillation_retention_days: u32,
}

fn default_retention_days() -> u32 {
    30
}

impl TierConfig {
    /// What the tier charges per token.
    pub fn price_rates(&self) -> crate::units::Rates {
        crate::units::Rates::new(self.input_price_per_1m, self.output_price_per_1m)
            .with_cache(self.cached_input_price_per_1m, self.cache_write_price_per_1m)
    }

    /// What the tier's work is worth per token (its prices unless values are set).
    pub fn value_rates(&self) -> crate::units::Rates {
        crate::units::Rates::new(
            self.value_per_1m_input.unwrap_or(self.input_price_per_1m),
            self.value_per_1m_output.unwrap_or(self.output_price_per_1m),
        )
    }

    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        let prices = non_negative(self.input_price_per_1m)
            && non_negative(self.output_price_per_1m)
            && self.cached_input_price_per_1m.is_none_or(non_negative)
            && self.cache_write_price_per_1m.is_none_or(non_negative);
        ensure(prices, at, "input_price_per_1m", "prices must be non-negative")?;
        let values =
            self.value_per_1m_input.is_none_or(non_negative) && self.value_per_1m_output.is_none_or(non_negative);
        ensure(values, at, "value_per_1m_input", "values must be non-negative")?;
        ensure(non_negative(self.reserved_engine_seconds), at, "reserved_engine_seconds", "must be non-negative")
    }

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
    /// The most a request of this tenant may bid (`x-tollgate-max-price`), USD per 1,000 tokens;
    /// unset: the tenant's requests may not bid.
    #[serde(default)]
    pub max_bid_per_1k: Option<f64>,
}

/// Output tokens held for a budgeted or token-limited request without `max_tokens`, unless its
/// tier says otherwise.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

fn default_max_tokens() -> u32 {
    DEFAULT_MAX_TOKENS
}

fn default_deadline() -> u64 {
    300_000
}

fn all_models() -> Vec<String> {
    vec!["*".into()]
}

impl TenantConfig {
    pub fn may_use(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == "*" || m == model)
    }
}
