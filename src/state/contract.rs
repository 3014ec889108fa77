//! The contract replicas share state through: the [`SharedState`] trait, what it grants
//! ([`TenantGrant`]), why it refuses ([`Denied`]), its error, and the integer units it counts in.

use crate::admission::reservation::PoolView;
use crate::allocator::board::PriceBoard;
use crate::allocator::forecast::Demand;

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
    /// The month `spent_usd` was counted in (its first millisecond, UTC; 0: the current one). A
    /// later month starts at zero.
    pub spent_month_ms: i64,
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
            spent_month_ms: self.spent_month_ms,
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
    /// The month the hold was made in (its first millisecond, UTC): the charge is spent in it.
    pub month_ms: i64,
    /// The replica's epoch the hold was made under (shared state; 0 in one process).
    pub epoch: u64,
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

    /// Gives back what [`Self::reserve_pool`] granted under `epoch` (its view's), in the
    /// background; nothing if that epoch's reservations were dropped meanwhile.
    fn release_pool(&self, pool: usize, work: i64, prefill: i64, epoch: u64);

    /// Renews this replica's presence (and what hangs on it).
    async fn heartbeat(&self) -> Result<(), StateError>;

    /// Takes or renews the LP leader's lease; true if this replica should solve and publish.
    async fn lead(&self) -> Result<bool, StateError>;

    /// Publishes this replica's demand (forecasts and pool lifetimes); returns the live
    /// replicas' (including its own).
    async fn exchange_forecasts(&self, own: &Demand) -> Result<Vec<Demand>, StateError>;

    async fn publish_board(&self, board: &PriceBoard) -> Result<(), StateError>;

    /// The last board a leader published, if any.
    async fn fetch_board(&self) -> Result<Option<PriceBoard>, StateError>;

    /// The shared exact cache: a stored answer's bytes.
    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// Stores an answer for `ttl_ms` (in the background).
    fn cache_put(&self, key: &str, value: Vec<u8>, ttl_ms: u64);
}
