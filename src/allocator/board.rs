//! The price board: the latest plan, immutable once published. The request path reads it
//! through an `ArcSwap` without locks; between solves each pool's price is corrected from its
//! measured load (a dual subgradient step) through per-pool atomics.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PoolPrice {
    pub pool: String,
    /// Shadow price from the last LP solve, USD per engine-second.
    pub lambda: f64,
    /// Running cost, USD per engine-second.
    pub cost: f64,
    /// Power price from the site's cap, USD per engine-second.
    pub power: f64,
    /// Planned engine-seconds per second, and the SLA-safe capacity.
    pub planned: f64,
    pub capacity: f64,
    /// The forecast classes asking for this pool, densest first: what the scarcity price of its
    /// room is read from ([`super::scarcity::price`]).
    #[serde(default)]
    pub wants: Vec<super::scarcity::Want>,
    /// Engine-seconds the pool may hold in flight (capacity x the mean request lifetime the
    /// publisher measured): every replica that installs the board uses this one room.
    #[serde(default)]
    pub room: f64,
    /// The tightest time-to-first-token objective of the classes asking for this pool, seconds
    /// (`None` when none has one): how full its prefill backlog is read against.
    #[serde(default)]
    pub ttft_slo_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ClassPlan {
    pub tenant: String,
    pub model: String,
    /// Forecast arrivals per second and mean tokens.
    pub rate: f64,
    pub mean_in: f64,
    pub mean_out: f64,
    /// Planned requests per second on each pool.
    pub planned: Vec<(String, f64)>,
    /// Surplus per request over the pool prices (the class's dual), USD.
    pub surplus: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct PriceBoard {
    pub version: u64,
    /// Seconds since the allocator started.
    pub solved_at: f64,
    pub solve_ms: f64,
    /// Planned value per second, USD.
    pub planned_value_per_s: f64,
    /// Mean value density of the demand, USD per engine-second (scales the price corrections).
    pub value_density: f64,
    pub pools: Vec<PoolPrice>,
    pub classes: Vec<ClassPlan>,
}
