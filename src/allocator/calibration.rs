//! What a pool's engines are measured to do, learned online from every response (the gateway
//! sees every admission, first token and end; the simulator passes the same events with its
//! virtual clock): the mean request lifetime (admission to last token), the rate at which the
//! prefill backlog drains (for time-to-first-token estimates). Replaces constants that fitted one
//! workload; each starts from a prior and follows what the fleet does. The lifetime, from which
//! the pool's room is sized, is a mean over the LP's planning horizon (time-decayed), not over a
//! number of requests: the room then moves at the pace of the plan it serves, and a few long
//! requests finishing together cannot shrink it under the work already in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Before any first token was seen, the prefill backlog is assumed to drain at this share of the
/// pool's engines (the share of step time prefill gets beside decoding).
const PRIOR_PREFILL_SHARE: f64 = 0.6;
/// Weight of a new observation in the drain-rate average.
const ALPHA: f64 = 0.05;
fn get(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

fn set(a: &AtomicU64, x: f64) {
    a.store(x.to_bits(), Ordering::Relaxed);
}

/// One pool's measurements, as exchanged between replicas with the demand forecasts.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolObs {
    /// Mean lifetime of a request, seconds, and how many were observed.
    pub lifetime_s: f64,
    pub seen: u64,
}

impl PoolObs {
    /// Several replicas' observations of one pool as one, weighed by what each saw.
    pub fn merge(a: PoolObs, b: PoolObs) -> PoolObs {
        let n = a.seen + b.seen;
        if n == 0 {
            return a;
        }
        let w = |x: f64, y: f64| (x * a.seen as f64 + y * b.seen as f64) / n as f64;
        PoolObs { lifetime_s: w(a.lifetime_s, b.lifetime_s), seen: n }
    }
}

/// A mean decayed with time: observations weigh `exp(-age / tau)`.
#[derive(Debug, Clone, Copy)]
struct Decayed {
    /// Weighted sum and total weight, as of `at` seconds.
    sum: f64,
    weight: f64,
    at: f64,
}

impl Decayed {
    fn add(&mut self, x: f64, now: f64, tau: f64) {
        let k = if now > self.at { (-(now - self.at) / tau).exp() } else { 1.0 };
        self.sum = self.sum * k + x;
        self.weight = self.weight * k + 1.0;
        self.at = self.at.max(now);
    }

    fn mean(&self) -> f64 {
        self.sum / self.weight.max(1e-12)
    }
}

/// A pool's live measurements.
#[derive(Debug)]
pub struct Calibration {
    engines: f64,
    /// Time constant of the lifetime's mean, seconds (the LP's horizon).
    tau_s: f64,
    /// The lifetime's decayed mean, starting from one pseudo-observation of the prior.
    lifetime: Mutex<Decayed>,
    seen: AtomicU64,
    drain: AtomicU64,
}

impl Calibration {
    /// A pool of `engines` whose requests are first assumed to live `lifetime_s`; lifetimes are
    /// averaged over about `tau_s` seconds.
    pub fn new(engines: f64, lifetime_s: f64, tau_s: f64) -> Self {
        let engines = engines.max(1.0);
        Self {
            engines,
            tau_s: tau_s.max(1e-3),
            lifetime: Mutex::new(Decayed { sum: lifetime_s, weight: 1.0, at: 0.0 }),
            seen: AtomicU64::new(0),
            drain: AtomicU64::new((engines * PRIOR_PREFILL_SHARE).to_bits()),
        }
    }

    /// A request lived `seconds` from admission to its last token, which came at `now` (the
    /// allocator's clock).
    pub fn lifetime(&self, seconds: f64, now: f64) {
        self.lifetime.lock().expect("lifetime lock").add(seconds, now, self.tau_s);
        self.seen.fetch_add(1, Ordering::Relaxed);
    }

    /// A request's first token came `ttft_s` after admission, its prefill (`prefill_s`
    /// engine-seconds) having waited behind `ahead_s`: the backlog drained at about
    /// `ahead / (ttft - prefill)`. Requests that waited behind nothing say nothing of the rate.
    pub fn first_token(&self, ahead_s: f64, prefill_s: f64, ttft_s: f64) {
        let waited = ttft_s - prefill_s;
        if ahead_s <= 1e-6 || waited <= 1e-6 {
            return;
        }
        let sample = (ahead_s / waited).clamp(0.01 * self.engines, 10.0 * self.engines);
        let cur = get(&self.drain);
        set(&self.drain, cur + ALPHA * (sample - cur));
    }

    /// Seconds to the first token of a prefill of `prefill` engine-seconds behind `backlog`.
    pub fn ttft_estimate(&self, backlog: f64, prefill: f64) -> f64 {
        backlog / get(&self.drain).max(1e-9) + prefill
    }

    /// Mean request lifetime, seconds.
    pub fn lifetime_s(&self) -> f64 {
        self.lifetime.lock().expect("lifetime lock").mean()
    }

    pub fn snapshot(&self) -> PoolObs {
        PoolObs { lifetime_s: self.lifetime_s(), seen: self.seen.load(Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_rate_follows_what_first_tokens_show() {
        let c = Calibration::new(4.0, 2.0, 60.0);
        let prior = c.ttft_estimate(2.4, 0.1);
        assert!((prior - 1.1).abs() < 1e-9, "{prior}");
        // The backlog drains at 1 engine-second per second, not the prior 2.4.
        for _ in 0..400 {
            c.first_token(2.0, 0.1, 2.1);
        }
        assert!((c.ttft_estimate(2.0, 0.1) - 2.1).abs() < 0.01);
        // Requests that waited behind nothing leave it alone.
        c.first_token(0.0, 0.1, 0.5);
        assert!((c.ttft_estimate(2.0, 0.1) - 2.1).abs() < 0.01);
    }

    #[test]
    fn the_lifetime_is_a_mean_over_the_horizon_not_over_the_last_few_requests() {
        let c = Calibration::new(1.0, 2.0, 60.0);
        // A minute of 10-second requests, one a second.
        for t in 0..60 {
            c.lifetime(10.0, f64::from(t));
        }
        let settled = c.lifetime_s();
        assert!((settled - 10.0).abs() < 0.2, "{settled}");
        // Twenty 100-second requests end together: the mean moves, but by their weight against
        // the last minute's sixty, not to 100.
        for _ in 0..20 {
            c.lifetime(100.0, 60.0);
        }
        let after = c.lifetime_s();
        assert!(after > 20.0 && after < 50.0, "{after}");
        // Long after, what is observed then is what counts.
        for t in 0..600 {
            c.lifetime(5.0, 1000.0 + f64::from(t));
        }
        assert!((c.lifetime_s() - 5.0).abs() < 0.1, "{}", c.lifetime_s());
    }

    #[test]
    fn merged_observations_weigh_by_what_each_replica_saw() {
        let a = PoolObs { lifetime_s: 2.0, seen: 1 };
        let b = PoolObs { lifetime_s: 6.0, seen: 3 };
        let m = PoolObs::merge(a, b);
        assert_eq!((m.lifetime_s, m.seen), (5.0, 4));
    }
}
