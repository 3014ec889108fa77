//! The policies the simulator compares: what a plain proxy does (FIFO), what inference schedulers
//! do (strict priority, shedding the lowest tiers under saturation), what gateways do (per-tenant
//! token-per-minute quotas), tollgate's bid prices, and the clairvoyant reference: the hindsight
//! schedule's choices replayed.

use super::request::SimRequest;
use super::scenario::Scenario;
use crate::allocator::Allocator;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Fifo,
    Priority,
    Quota,
    BidPrice,
    /// The hindsight schedule's plan, replayed (not a policy one can run live: it knows the future).
    Hindsight,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "fifo" => Some(Policy::Fifo),
            "priority" => Some(Policy::Priority),
            "quota" => Some(Policy::Quota),
            "bid-price" => Some(Policy::BidPrice),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::Fifo => "fifo",
            Policy::Priority => "priority",
            Policy::Quota => "quota",
            Policy::BidPrice => "bid-price",
            Policy::Hindsight => "hindsight-replay",
        }
    }
}

/// Token buckets per class, refilled continuously at the class's tokens-per-minute quota; the
/// bucket holds at most one minute of quota.
pub struct QuotaBuckets {
    rate: Vec<f64>,
    level: Vec<f64>,
    last: Vec<f64>,
}

impl QuotaBuckets {
    /// Quotas from the scenario, or by default each class's equal share of its pool's SLA-safe
    /// capacity, converted to tokens at the class's mean request shape.
    pub fn new(sc: &Scenario, alloc: &Allocator, reqs: &[SimRequest]) -> Self {
        let rate: Vec<f64> = sc
            .classes
            .iter()
            .enumerate()
            .map(|(k, c)| {
                if let Some(q) = c.quota_tpm {
                    return q / 60.0;
                }
                let mine: Vec<&SimRequest> = reqs.iter().filter(|r| r.class == k).collect();
                let n = mine.len().max(1) as f64;
                let (mi, mo) = (
                    mine.iter().map(|r| f64::from(r.input)).sum::<f64>() / n,
                    mine.iter().map(|r| f64::from(r.output)).sum::<f64>() / n,
                );
                let Some(p) = alloc.fleet.pool(&c.pool) else { return 0.0 };
                let pool = &alloc.fleet.pools[p];
                let sharing = sc.classes.iter().filter(|o| o.pool == c.pool).count().max(1) as f64;
                pool.capacity() / sharing * (mi + mo) / pool.work(mi, mo).max(1e-9)
            })
            .collect();
        let level = rate.iter().map(|r| r * 60.0).collect();
        Self { last: vec![0.0; rate.len()], rate, level }
    }

    pub fn take(&mut self, class: usize, t: f64, tokens: f64) -> bool {
        let cap = self.rate[class] * 60.0;
        self.level[class] = (self.level[class] + (t - self.last[class]) * self.rate[class]).min(cap);
        self.last[class] = t;
        if self.level[class] >= tokens {
            self.level[class] -= tokens;
            true
        } else {
            false
        }
    }
}
