//! The gateway's state: configuration, allocator, shared state, authenticator, backends, ledger
//! sink, store, cache and routers, built once at start and shared by every request; and request
//! ids. The routes and layers in front of it are in [`super::routes`].

use crate::auth::Authenticator;
use crate::backends::Registry;
use crate::config::Config;
use crate::metering::{LedgerSink, Rates};
use crate::store::Store;
use axum::http::HeaderMap;
use std::sync::Arc;

pub struct Gateway {
    pub cfg: Config,
    /// The allocator, when any model is capacity-managed.
    pub allocator: Option<Arc<crate::allocator::Allocator>>,
    /// Budgets, rate limits and what replicas share (in process, or Redis).
    pub state: Arc<dyn crate::state::SharedState>,
    pub state_health: Arc<crate::state::resilient::StateHealth>,
    pub auth: Authenticator,
    pub registry: Registry,
    pub sink: LedgerSink,
    pub store: Arc<dyn Store>,
    pub cache: Arc<crate::cache::ResponseCache>,
    /// Router models by the model name they route for (`models[].router`).
    pub routers: std::collections::HashMap<String, Arc<super::estimate::Router>>,
    /// Where the Batch API's file bytes live.
    pub files: Arc<dyn crate::batch::files::FileStore>,
    /// Wakes the batch dispatcher (a batch was created or cancelled, or a line finished).
    pub batch_wake: Arc<tokio::sync::Notify>,
    /// The extraction watch (`[guard]`), unless turned off.
    pub guard: Option<Arc<crate::guard::Watch>>,
}

impl Gateway {
    /// What the tenant's tier charges (zero for an unknown tenant).
    pub fn tier_rates(&self, tenant: &str) -> Rates {
        self.cfg.tier_rates(tenant)
    }

    /// What the admission stage reads: no more of the gateway than that.
    pub fn admission(&self) -> super::admit::Admission<'_> {
        super::admit::Admission {
            cfg: &self.cfg,
            allocator: self.allocator.as_ref(),
            state: &self.state,
            routers: &self.routers,
        }
    }
}

/// A new request id: `req_`, the Unix time in milliseconds, a random number drawn once per
/// process and a per-process counter, in hex. Unique across processes and replicas, ordered in
/// time (the ledger's index appends), and free: UUIDv7 costs two `getrandom` calls and a global
/// lock per id, which showed in the profile.
pub fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nonce = *NONCE.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("req_{:012x}{nonce:016x}{n:08x}", crate::metering::unix_ms())
}

/// A request's ids: the gateway's own (unique and time-ordered, the ledger's key, sent upstream)
/// and the client's `x-request-id` if it is sane (echoed back, kept in the ledger beside ours).
pub struct RequestIds {
    pub id: String,
    pub client: Option<String>,
    /// The client's `x-tollgate-max-price`, as sent (read, and refused if unreadable, by the
    /// admission stage, so that the refusal has its ledger row).
    pub bid: Option<axum::http::HeaderValue>,
    /// A service tier the gateway itself sets (a batch's lines), over the body's.
    pub service: Option<crate::config::ServiceTier>,
    /// A batch line's completion window, Unix milliseconds: admission holds out for a lower
    /// price the more of it is ahead.
    pub window_ms: Option<std::ops::Range<i64>>,
}

/// The header in which a request states the most it will pay, USD per 1,000 tokens.
pub const BID_HEADER: &str = "x-tollgate-max-price";

impl RequestIds {
    pub fn of(headers: &HeaderMap) -> Self {
        let client = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string);
        Self { id: new_request_id(), client, bid: headers.get(BID_HEADER).cloned(), service: None, window_ms: None }
    }

    /// The id the client sees in the response's `x-request-id`: its own, else ours.
    pub fn echoed(&self) -> &str {
        self.client.as_deref().unwrap_or(&self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::new_request_id;

    #[test]
    fn request_ids_are_unique_and_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "ids from one process are distinct and increase");
        assert!(ids.iter().all(|i| i.len() == 40 && i.starts_with("req_")));
    }
}
