//! Active health checks: each backend's health path is probed on an interval; a backend that
//! fails its probe is left out of selection until a probe succeeds again.

use super::backend::Backend;
use crate::config::HealthConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub fn spawn_health_checks(backends: &[Arc<Backend>], cfg: &HealthConfig) -> Vec<JoinHandle<()>> {
    backends
        .iter()
        .map(|b| {
            let b = b.clone();
            let (every, timeout) = (Duration::from_millis(cfg.interval_ms), Duration::from_millis(cfg.timeout_ms));
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
                    b.set_healthy(ok);
                }
            })
        })
        .collect()
}
