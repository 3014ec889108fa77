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

mod contract;
pub mod local;
pub mod redis;
pub mod resilient;
pub mod window;

pub use local::LocalState;
pub use redis::RedisState;
pub use resilient::Resilient;

pub use crate::admission::reservation::PoolView;
#[cfg(test)]
use crate::allocator::{
    calibration::PoolObs,
    forecast::{ClassKey, ClassStats, Demand},
};
pub use contract::{micro, Denied, Origin, SharedState, StateError, TenantGrant, TenantLimits, MICRO};
use std::sync::Arc;

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
            Ok(Arc::new(Resilient::new(redis, local, cfg.redis.on_unavailable, health, cfg.redis.replicas)))
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
        let k = ClassKey::new("t", "m");
        let s = |rate, mean_in| ClassStats { rate, last: 1.0, mean_in, mean_out: 10.0, arrivals: 1, finished: 1 };
        let o = |lifetime_s, seen| PoolObs { lifetime_s, seen };
        let d = |stats, pools| Demand { classes: vec![(k.clone(), stats)], pools };
        let all = Demand::merge(vec![d(s(1.0, 100.0), vec![o(2.0, 1)]), d(s(3.0, 200.0), vec![o(6.0, 3), o(1.0, 0)])]);
        assert_eq!(all.pools, vec![o(5.0, 4), o(1.0, 0)]);
        let m = all.classes;
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].1.rate, 4.0);
        assert_eq!(m[0].1.mean_in, 175.0);
        assert_eq!(m[0].1.arrivals, 2);
    }
}
