//! `[batches]`: OpenAI's Batch API (`/v1/files`, `/v1/batches`): how large an input file may be,
//! how many of a replica's batch lines are in admission at once, and how long a replica's claim
//! on a line lasts without its heartbeat, and how long the `24h` completion window lasts here.
//! The tier batch lines are served at is
//! `[service_tiers] batch`.

use super::check::{ensure, Invalid};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchesConfig {
    /// Largest uploaded file, bytes (OpenAI's limit for batch input is 200 MB).
    pub max_file_bytes: usize,
    /// Most requests in one batch (OpenAI's limit is 50,000).
    pub max_lines: usize,
    /// Batch lines one replica has in admission at once (each waits there for its price).
    pub concurrency: usize,
    /// Seconds after which a line claimed by a replica that stopped renewing its claim (it died)
    /// is dispatched again; claims are renewed every third of this.
    pub claim_ttl_s: u64,
    /// How long the `24h` completion window lasts, seconds: OpenAI's 24 hours by default; an
    /// operator may promise less (a batch that cannot finish in it expires sooner, its pending
    /// lines failed with `batch_expired`).
    pub completion_window_s: u64,
}

impl Default for BatchesConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 200 * 1024 * 1024,
            max_lines: 50_000,
            concurrency: 16,
            claim_ttl_s: 30,
            completion_window_s: 24 * 3_600,
        }
    }
}

impl BatchesConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(self.max_file_bytes > 0, at, "max_file_bytes", "must be positive")?;
        ensure(self.max_lines > 0, at, "max_lines", "must be positive")?;
        ensure(self.concurrency > 0, at, "concurrency", "must be positive")?;
        ensure(self.claim_ttl_s >= 3, at, "claim_ttl_s", "must be at least 3")?;
        ensure(
            (1..=24 * 3_600).contains(&self.completion_window_s),
            at,
            "completion_window_s",
            "must be 1 to 86400 (24 hours)",
        )
    }
}
