//! What a pool's engines are measured to do, learned online from every response (the gateway
//! sees every admission, first token and end; the simulator passes the same events with its
//! virtual clock): the mean request lifetime (admission to last token), the rate at which the
//! prefill backlog drains (for time-to-first-token estimates). Replaces constants that fitted one
//! workload; each starts from a prior and follows what the fleet does.

use std::sync::atomic::{AtomicU64, Ordering};

/// Before any first token was seen, the prefill backlog is assumed to drain at this share of the
/// pool's engines (the share of step time prefill gets beside decoding).
const PRIOR_PREFILL_SHARE: f64 = 0.6;
/// Weight of a new observation in the lifetime and drain-rate averages.
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

/// A pool's live measurements.
#[derive(Debug)]
pub struct Calibration {
    engines: f64,
    lifetime: AtomicU64,
    seen: AtomicU64,
    drain: AtomicU64,
}

impl Calibration {
    /// A pool of `engines` whose requests are first assumed to live `lifetime_s`.
    pub fn new(engines: f64, lifetime_s: f64) -> Self {
        let engines = engines.max(1.0);
        Self {
            engines,
            lifetime: AtomicU64::new(lifetime_s.to_bits()),
            seen: AtomicU64::new(0),
            drain: AtomicU64::new((engines * PRIOR_PREFILL_SHARE).to_bits()),
        }
    }

    /// A request lived `seconds` from admission to its last token.
    pub fn lifetime(&self, seconds: f64) {
        let cur = get(&self.lifetime);
        set(&self.lifetime, cur + ALPHA * (seconds - cur));
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
        get(&self.lifetime)
    }

    pub fn snapshot(&self) -> PoolObs {
        PoolObs { lifetime_s: get(&self.lifetime), seen: self.seen.load(Ordering::Relaxed) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_rate_follows_what_first_tokens_show() {
        let c = Calibration::new(4.0, 2.0);
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
    fn merged_observations_weigh_by_what_each_replica_saw() {
        let a = PoolObs { lifetime_s: 2.0, seen: 1 };
        let b = PoolObs { lifetime_s: 6.0, seen: 3 };
        let m = PoolObs::merge(a, b);
        assert_eq!((m.lifetime_s, m.seen), (5.0, 4));
    }
}
