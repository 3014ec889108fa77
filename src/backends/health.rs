//! Active health checks: each backend's health path is probed on an interval; a backend that
//! fails `unhealthy_threshold` probes in a row is left out of selection until it passes
//! `healthy_threshold` in a row. One failed probe is not enough: a probe also times out when the
//! gateway itself stalls (a paused process, a starved machine) while the backend is fine, and a
//! backend taken out on that refuses every request to its model until the next probes.

use super::backend::Backend;
use crate::config::HealthConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Consecutive probe results and the verdict they lead to (the thresholds of `[health]`).
#[derive(Debug, Clone, Copy)]
struct Verdicts {
    fall: u32,
    rise: u32,
    /// Failed probes in a row (while healthy), or good ones in a row (while not).
    streak: u32,
}

impl Verdicts {
    fn new(cfg: &HealthConfig) -> Self {
        // Both at least 1 (`HealthConfig::validate`).
        Self { fall: cfg.unhealthy_threshold, rise: cfg.healthy_threshold, streak: 0 }
    }

    /// A probe came back `ok` for a backend now `healthy`: whether it is healthy after it.
    fn probe(&mut self, healthy: bool, ok: bool) -> bool {
        if ok == healthy {
            self.streak = 0;
            return healthy;
        }
        self.streak += 1;
        let needed = if healthy { self.fall } else { self.rise };
        if self.streak >= needed {
            self.streak = 0;
            !healthy
        } else {
            healthy
        }
    }
}

pub fn spawn_health_checks(backends: &[Arc<Backend>], cfg: &HealthConfig) -> Vec<JoinHandle<()>> {
    backends
        .iter()
        .map(|b| {
            let b = b.clone();
            let (every, timeout) = (Duration::from_millis(cfg.interval_ms), Duration::from_millis(cfg.timeout_ms));
            let mut verdicts = Verdicts::new(cfg);
            tokio::spawn(async move {
                // The first probe comes after one interval: until then passive detection (failed
                // requests and the circuit breaker) covers a backend that is down at start.
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let url = format!("{}{}", b.base, b.cfg.health_path());
                    let mut req = b.client.get(&url).timeout(timeout);
                    if let Some((name, value)) = b.auth_header() {
                        req = req.header(name, value);
                    }
                    let ok = matches!(req.send().await, Ok(r) if r.status().is_success());
                    b.set_healthy(verdicts.probe(b.healthy(), ok));
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(fall: u32, rise: u32) -> Verdicts {
        Verdicts::new(&HealthConfig { unhealthy_threshold: fall, healthy_threshold: rise, ..HealthConfig::default() })
    }

    #[test]
    fn a_backend_goes_out_only_after_failures_in_a_row_and_back_after_passes_in_a_row() {
        let mut v = verdicts(3, 2);
        let mut healthy = true;
        // Two failures, a pass, two failures: never three in a row, so it stays in.
        for ok in [false, false, true, false, false] {
            healthy = v.probe(healthy, ok);
            assert!(healthy);
        }
        healthy = v.probe(healthy, false);
        assert!(!healthy, "the third failure in a row takes it out");
        // One pass, a failure, then two passes: back on the second of those.
        for (ok, after) in [(true, false), (false, false), (true, false), (true, true)] {
            healthy = v.probe(healthy, ok);
            assert_eq!(healthy, after);
        }
    }

    #[test]
    fn thresholds_of_one_follow_every_probe() {
        let mut v = verdicts(1, 1);
        assert!(!v.probe(true, false));
        assert!(v.probe(false, true));
    }
}
