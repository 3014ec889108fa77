//! State that replicas share: tenant budgets and rate limits, pool capacity reservations, the
//! LP leader's lease with the published price board, and the exact cache. One trait,
//! [`SharedState`], with two implementations: [`LocalState`] (in process, the default: this
//! replica alone) and [`RedisState`] (every replica through one Redis, each admission one atomic
//! script). [`Resilient`] wraps Redis with the configured behaviour when it is unreachable:
//! fail closed (503) or degrade to local limits divided by the replica count.
//!
//! What is granted comes back as guards ([`TenantHold`]) or is tied to the capacity
//! reservation's guard, so a dropped request releases it on every path; a replica that dies
//! holding grants stops renewing its presence, and after `redis.ttl_ms` its holds and
//! reservations no longer count.

pub mod local;
pub mod redis;
pub mod resilient;
pub mod window;

pub use local::LocalState;
pub use redis::RedisState;
pub use resilient::Resilient;

pub use crate::admission::reservation::PoolView;
use crate::allocator::board::PriceBoard;
use crate::allocator::forecast::{ClassKey, ClassStats};
use std::sync::Arc;

/// USD are counted in micro-USD, engine-seconds in micro-engine-seconds, as integers.
pub const MICRO: f64 = 1e6;

pub fn micro(x: f64) -> i64 {
    (x.max(0.0) * MICRO).round() as i64
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("shared state unreachable: {0}")]
    Unavailable(String),
}

/// Why a tenant's request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Its month's budget is spent (or held by requests in flight).
    Budget,
    /// Its tokens per minute: retry after that many seconds (`None`: the request alone is over).
    Tokens(Option<u64>),
    /// Its requests per minute.
    Requests(Option<u64>),
}

/// The limits a tenant is admitted under.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantLimits {
    pub budget_usd: Option<f64>,
    /// Spent this month before this process started, from the ledger.
    pub spent_usd: f64,
    pub tokens_per_minute: Option<u64>,
    pub requests_per_minute: Option<u64>,
}

impl TenantLimits {
    /// Each of `replicas` replicas' share, for degraded operation.
    pub fn share(&self, replicas: u32) -> Self {
        let n = f64::from(replicas.max(1));
        let div = |x: u64| (x as f64 / n).floor() as u64;
        Self {
            budget_usd: self.budget_usd.map(|b| b / n),
            spent_usd: self.spent_usd / n,
            tokens_per_minute: self.tokens_per_minute.map(div),
            requests_per_minute: self.requests_per_minute.map(div),
        }
    }
}

/// Which implementation granted something (a degraded replica settles locally what it granted
/// locally).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Local,
    Shared,
}

/// What a tenant's admission granted: settled once by [`TenantHold`].
#[derive(Debug, Clone)]
pub struct TenantGrant {
    pub tenant: String,
    /// Micro-USD held against the budget (0 without a budget).
    pub hold: i64,
    /// Tokens counted in the window (0 without a token limit).
    pub tokens: i64,
    /// The second they were counted in.
    pub second: i64,
    pub origin: Origin,
}

#[async_trait::async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// Whether other replicas share this state (false: this process alone).
    fn shared(&self) -> bool;

    /// This replica's name in the shared state.
    fn replica_id(&self) -> &str;

    /// Holds `hold_usd` against the tenant's budget and counts `tokens` and one request in its
    /// minute windows, atomically, if all stay within the tenant's limits.
    async fn admit_tenant(
        &self,
        tenant: &str,
        hold_usd: f64,
        tokens: u64,
    ) -> Result<Result<TenantGrant, Denied>, StateError>;

    /// Settles a grant: `charge_usd` spent (0 for a failed request) and `tokens` really used.
    /// Never waits: a remote implementation sends it in the background.
    fn settle_tenant(&self, grant: TenantGrant, charge_usd: f64, tokens: u64);

    /// (spent, held) this month, USD.
    async fn tenant_usage(&self, tenant: &str) -> Result<Option<(f64, f64)>, StateError>;

    /// Reserves `work` micro-engine-seconds (`prefill` of them in the prefill backlog) on pool
    /// `pool` across replicas if the total stays within `room`; `work` 0 only reads the totals.
    /// `None` for a state that is not shared (the pool's local room is the whole truth).
    async fn reserve_pool(
        &self,
        pool: usize,
        work: i64,
        prefill: i64,
        room: i64,
    ) -> Result<Option<PoolView>, StateError>;

    /// Gives back what [`Self::reserve_pool`] granted (in the background).
    fn release_pool(&self, pool: usize, work: i64, prefill: i64);

    /// Renews this replica's presence (and what hangs on it).
    async fn heartbeat(&self) -> Result<(), StateError>;

    /// Takes or renews the LP leader's lease; true if this replica should solve and publish.
    async fn lead(&self) -> Result<bool, StateError>;

    /// Publishes this replica's demand forecast; returns the live replicas' (including its own).
    async fn exchange_forecasts(
        &self,
        own: &[(ClassKey, ClassStats)],
    ) -> Result<Vec<(ClassKey, ClassStats)>, StateError>;

    async fn publish_board(&self, board: &PriceBoard) -> Result<(), StateError>;

    /// The last board a leader published, if any.
    async fn fetch_board(&self) -> Result<Option<PriceBoard>, StateError>;

    /// The shared exact cache: a stored answer's bytes.
    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// Stores an answer for `ttl_ms` (in the background).
    fn cache_put(&self, key: &str, value: Vec<u8>, ttl_ms: u64);
}

/// A tenant's admission, given back (settled) exactly once: by [`TenantHold::settle`] with the
/// real charge, or on drop with nothing charged.
pub struct TenantHold {
    state: Arc<dyn SharedState>,
    grant: Option<TenantGrant>,
}

impl TenantHold {
    pub fn new(state: Arc<dyn SharedState>, grant: TenantGrant) -> Self {
        Self { state, grant: Some(grant) }
    }

    pub fn settle(mut self, charge_usd: f64, tokens: u64) {
        if let Some(g) = self.grant.take() {
            self.state.settle_tenant(g, charge_usd, tokens);
        }
    }
}

impl Drop for TenantHold {
    fn drop(&mut self) {
        if let Some(g) = self.grant.take() {
            // Not settled (refused after the tenant's admission, or abandoned before anything
            // ran): nothing is charged and no tokens were used.
            self.state.settle_tenant(g, 0.0, 0);
        }
    }
}

/// Sums forecasts of the same class from several replicas: rates add, token means weigh by
/// rate.
pub fn merge_forecasts(all: Vec<(ClassKey, ClassStats)>) -> Vec<(ClassKey, ClassStats)> {
    let mut by: std::collections::BTreeMap<ClassKey, ClassStats> = std::collections::BTreeMap::new();
    for (k, s) in all {
        match by.get_mut(&k) {
            None => {
                by.insert(k, s);
            }
            Some(m) => {
                let w = m.rate + s.rate;
                let (a, b) = if w > 0.0 { (m.rate / w, s.rate / w) } else { (0.5, 0.5) };
                m.mean_in = a * m.mean_in + b * s.mean_in;
                m.mean_out = a * m.mean_out + b * s.mean_out;
                m.rate = w;
                m.last = m.last.max(s.last);
                m.arrivals += s.arrivals;
                m.finished += s.finished;
            }
        }
    }
    by.into_iter().collect()
}

/// Builds the configured state: in process, or Redis wrapped in the unavailability behaviour.
pub fn open(
    cfg: &crate::config::Config,
    limits: std::collections::HashMap<String, TenantLimits>,
    pools: Vec<String>,
    health: Arc<resilient::StateHealth>,
) -> Result<Arc<dyn SharedState>, StateError> {
    match cfg.redis_url() {
        None => Ok(Arc::new(LocalState::new(limits))),
        Some(url) => {
            let local = LocalState::new(limits.iter().map(|(t, l)| (t.clone(), l.share(cfg.redis.replicas))).collect());
            let redis = RedisState::new(url, &cfg.redis, limits, pools)?;
            Ok(Arc::new(Resilient::new(redis, local, cfg.redis.on_unavailable, health)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_hold_gives_back_its_budget_and_tokens_and_a_settled_one_charges() {
        let limits = TenantLimits { budget_usd: Some(1.0), tokens_per_minute: Some(100), ..Default::default() };
        let local = Arc::new(LocalState::new([("t".to_string(), limits)].into()));
        let state: Arc<dyn SharedState> = local.clone();
        let now = crate::units::unix_ms().div_euclid(1000);
        let g = local.admit_at("t", 0.9, 100, now).unwrap();
        assert_eq!(local.admit_at("t", 0.0, 1, now).unwrap_err(), Denied::Tokens(Some(60)));
        drop(TenantHold::new(state.clone(), g));
        let g = local.admit_at("t", 0.9, 100, now).unwrap();
        TenantHold::new(state, g).settle(0.5, 40);
        assert_eq!(local.admit_at("t", 0.6, 1, now).unwrap_err(), Denied::Budget);
        local.admit_at("t", 0.5, 60, now).unwrap();
    }

    #[test]
    fn forecasts_merge_by_rate() {
        let k = ClassKey { tenant: "t".into(), model: "m".into() };
        let s = |rate, mean_in| ClassStats { rate, last: 1.0, mean_in, mean_out: 10.0, arrivals: 1, finished: 1 };
        let m = merge_forecasts(vec![(k.clone(), s(1.0, 100.0)), (k.clone(), s(3.0, 200.0))]);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1.rate, 4.0);
        assert_eq!(m[0].1.mean_in, 175.0);
        assert_eq!(m[0].1.arrivals, 2);
    }
}
