//! A replica's background work when replicas share state: renew its presence, refresh its view
//! of the other replicas' load on every pool, and take or keep the LP leader's lease.

use crate::api::gateway::Gateway;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often a replica reads the other replicas' load (for prices and time-to-first-token
/// estimates; the reservation itself is checked atomically against the live total).
const VIEW_EVERY: Duration = Duration::from_millis(100);

pub fn spawn(gw: Arc<Gateway>) -> Vec<JoinHandle<()>> {
    let ttl = Duration::from_millis(gw.cfg.redis.ttl_ms);
    let presence = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ttl / 3);
            loop {
                tick.tick().await;
                if let Err(e) = gw.state.heartbeat().await {
                    tracing::debug!(error = %e, "presence not renewed");
                }
            }
        })
    };
    let lease = {
        let gw = gw.clone();
        tokio::spawn(async move {
            // Tried six times per TTL, so a lapsed lease is taken within a sixth of it.
            let mut tick = tokio::time::interval(ttl / 6);
            loop {
                tick.tick().await;
                let lead = gw.state.lead().await.unwrap_or(false);
                let was = gw.state_health.leader.swap(lead, Ordering::AcqRel);
                if lead != was {
                    tracing::info!(
                        leader = lead,
                        "LP lease {}",
                        if lead {
                            "taken: this replica solves and publishes prices"
                        } else {
                            "lost: installing the leader's prices"
                        }
                    );
                }
            }
        })
    };
    let mut tasks = vec![presence, lease];
    if let Some(alloc) = gw.allocator.clone() {
        let replicas = f64::from(gw.cfg.redis.replicas.max(1));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(VIEW_EVERY);
            loop {
                tick.tick().await;
                for (i, load) in alloc.loads().enumerate() {
                    match gw.state.reserve_pool(i, 0, 0, 0).await {
                        Ok(Some(view)) => load.set_others(&view),
                        // Degraded: the others are assumed to use their share.
                        Ok(None) => load.assume_others((replicas - 1.0) / replicas),
                        Err(_) => {}
                    }
                }
            }
        }));
    }
    tasks
}
