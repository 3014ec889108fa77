//! A plan the simulator can replay: what the hindsight schedule does with each request it serves,
//! and which capacity it was planned on (a leaf, so the replay engine, the reports and the
//! schedule need not import each other).

use serde::Serialize;

/// What the hindsight schedule does with one request it serves.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Planned {
    pub pool: usize,
    /// Share of the request's value kept on that pool (1 on its own, a fallback's quality).
    pub quality: f64,
    /// When its first work is scheduled, seconds (a slot's start).
    pub start_s: f64,
}

/// Which capacity the bound grants each pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// The capacity the allocator plans with: `sla_utilisation x replicas` engine-seconds per second.
    SlaSafe,
    /// Every engine's whole time: a looser bound that ignores what the SLOs cost.
    FullEngines,
}
