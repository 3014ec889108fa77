//! The ledger's record of one request, and how a request ended.

use serde::Serialize;

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerRow {
    /// The gateway's own id of the request (time-ordered, unique): the ledger's key.
    pub id: String,
    /// The client's `x-request-id`, if it sent a sane one (not unique: clients choose it).
    pub client_request_id: Option<String>,
    pub tenant: String,
    pub key_id: String,
    pub endpoint: String,
    pub model_requested: String,
    pub model_served: Option<String>,
    pub backend: Option<String>,
    pub stream: bool,
    pub status: u16,
    /// `ok`, `client_error`, `upstream_error`, `client_closed`, `no_backend`, ...
    pub outcome: String,
    pub error: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Of `input_tokens`: read from the upstream's prompt cache (priced apart where a rate is set).
    pub cached_input_tokens: i64,
    /// Of `input_tokens`: written to the upstream's prompt cache.
    pub cache_write_tokens: i64,
    /// True when the upstream reported no usage and tokens were counted by tollgate.
    pub tokens_estimated: bool,
    pub attempts: u32,
    pub ttft_ms: Option<f64>,
    pub latency_ms: f64,
    pub cost_usd: f64,
    /// What the work was worth: the tier's value (or price) x tokens, x quality if downgraded.
    pub value_usd: f64,
    /// What the tenant pays: the tier's price x tokens.
    pub revenue_usd: f64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// Admission's decision: `admit`, `downgrade`, `defer` (then served), `refuse`, or `none`
    /// when admission did not run (off, unmanaged model, or refused before it).
    pub decision: String,
    /// The serving pool's price at decision time, USD per engine-second.
    pub price: Option<f64>,
    /// Value minus priced work at decision time, USD.
    pub net_value: Option<f64>,
    /// The service tier the request was served at (`default`, `flex`, `priority`), once
    /// classified.
    pub service_tier: Option<String>,
    /// The most the request bid (`x-tollgate-max-price`), USD per 1,000 tokens, if it bid.
    pub bid_per_1k: Option<f64>,
    /// The cache that answered (`exact`, `semantic`), `miss` if one was looked up and missed,
    /// `None` if no cache applied.
    pub cache: Option<String>,
    /// What the extraction watch did (`models[].extraction`): the action, the tenant's score
    /// and its reasons; `None` when no policy acted.
    pub guard: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    ClientError,
    UpstreamError,
    NoBackend,
    ClientClosed,
    /// A batch line its window closed on before it could be served.
    BatchExpired,
    /// A batch line its batch was cancelled before.
    BatchCancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientError => "client_error",
            Outcome::UpstreamError => "upstream_error",
            Outcome::NoBackend => "no_backend",
            Outcome::ClientClosed => "client_closed",
            Outcome::BatchExpired => "batch_expired",
            Outcome::BatchCancelled => "batch_cancelled",
        }
    }
}
