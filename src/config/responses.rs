//! `[responses]`: how long stored Responses (for `previous_response_id` and `GET`) are kept.

use super::check::{ensure, Invalid};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// Seconds a stored response is kept (OpenAI keeps them 30 days). A request with
    /// `store: false` is never kept.
    pub retention_s: u64,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        Self { retention_s: 30 * 24 * 3_600 }
    }
}

impl ResponsesConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(self.retention_s > 0, at, "retention_s", "must be at least 1 (send `store: false` not to keep one)")
    }
}
