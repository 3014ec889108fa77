//! The policies the simulator compares: what a plain proxy does (FIFO), what inference schedulers
//! do (strict priority, shedding the lowest tiers under saturation), what gateways do (per-tenant
//! token-per-minute quotas), tollgate's bid prices, and the clairvoyant reference: the hindsight
//! schedule's choices replayed.

use super::request::SimRequest;
use super::scenario::Scenario;
use crate::allocator::Allocator;
use std::collections::HashMap;

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
/// bucket holds at most one minute of quota. As a gateway's token quota works: a request is let in
/// when its prompt and expected output fit, is charged that much, and the charge is corrected to
/// the tokens it actually used when it ends (the bucket may then run into debt).
pub struct QuotaBuckets {
    rate: Vec<f64>,
    level: Vec<f64>,
    last: Vec<f64>,
    /// What each request still running was charged, by its class.
    charged: HashMap<usize, (usize, f64)>,
}

impl QuotaBuckets {
    /// Quotas from the scenario, or by default each class's equal share of its pool's SLA-safe
    /// capacity, converted to tokens at the class's mean request shape (set up as an operator
    /// would from the traffic's history, before the replay).
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
        Self { last: vec![0.0; rate.len()], rate, level, charged: HashMap::new() }
    }

    /// Lets request `req` of `class` in at `t` if `tokens` (its prompt and expected output) fit.
    pub fn take(&mut self, req: usize, class: usize, t: f64, tokens: f64) -> bool {
        self.level[class] = (self.level[class] + (t - self.last[class]) * self.rate[class]).min(self.cap(class));
        self.last[class] = t;
        if self.level[class] >= tokens {
            self.level[class] -= tokens;
            self.charged.insert(req, (class, tokens));
            true
        } else {
            false
        }
    }

    /// Request `req` ended having used `tokens`: its charge is corrected (nothing for a request
    /// the buckets did not let in).
    pub fn settle(&mut self, req: usize, tokens: f64) {
        if let Some((class, charged)) = self.charged.remove(&req) {
            self.level[class] = (self.level[class] + charged - tokens).min(self.cap(class));
        }
    }

    /// The most a class's bucket holds: a minute of its quota.
    fn cap(&self, class: usize) -> f64 {
        self.rate[class] * 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_charges_the_expected_tokens_then_what_was_used() {
        // 10 tokens a second: a bucket of 600.
        let mut q = QuotaBuckets { rate: vec![10.0], level: vec![600.0], last: vec![0.0], charged: HashMap::new() };
        assert!(q.take(1, 0, 0.0, 500.0));
        assert!(!q.take(2, 0, 0.0, 200.0), "100 left");
        // The first used only 100 of the 500 it was charged: 400 come back.
        q.settle(1, 100.0);
        assert!(q.take(2, 0, 0.0, 200.0));
        // One that used more than it was charged leaves the bucket in debt.
        q.settle(2, 900.0);
        assert!(!q.take(3, 0, 0.0, 1.0));
        assert!(q.take(3, 0, 60.0, 1.0), "a minute refills it");
        // A request the buckets never let in changes nothing.
        q.settle(99, 1e9);
        assert!(q.take(4, 0, 60.0, 1.0));
    }
}
