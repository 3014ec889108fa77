//! Redis with a configured answer to its absence. `fail_closed`: every call's error goes up and
//! admission answers 503. `degrade`: the call is served by a local state holding each limit
//! divided by the replica count (what this replica may use if the others do the same), with a
//! loud log line when it starts and when Redis is back, and the `tollgate_state_degraded` gauge.
//! What was granted locally is settled locally.

use super::contract::{Denied, Origin, SharedState, StateError, TenantGrant, MICRO};
use super::local::LocalState;
use super::redis::RedisState;
use crate::admission::reservation::PoolView;
use crate::allocator::board::PriceBoard;
use crate::allocator::forecast::Demand;
use crate::config::OnUnavailable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What `/metrics` shows of the shared state.
#[derive(Debug, Default)]
pub struct StateHealth {
    pub degraded: AtomicBool,
    pub errors: AtomicU64,
    /// Whether this replica holds the LP leader's lease (always, alone).
    pub leader: AtomicBool,
    /// Tenants whose local spend was started, when this replica last degraded, from the spend
    /// Redis last reported (the others start from the ledger's figure at start).
    pub seeded_tenants: AtomicU64,
}

impl StateHealth {
    /// A lone replica: leads, never degraded.
    pub fn alone() -> Self {
        Self { leader: AtomicBool::new(true), ..Default::default() }
    }
}

pub struct Resilient {
    redis: RedisState,
    local: LocalState,
    mode: OnUnavailable,
    health: Arc<StateHealth>,
    /// Replicas sharing the state: a degraded replica's share of a spend is `1 / replicas`.
    replicas: u32,
}

impl Resilient {
    pub fn new(
        redis: RedisState,
        local: LocalState,
        mode: OnUnavailable,
        health: Arc<StateHealth>,
        replicas: u32,
    ) -> Self {
        Self { redis, local, mode, health, replicas: replicas.max(1) }
    }

    /// Starts the local limits from the spend Redis last reported (this replica's share of it),
    /// so an outage cannot hand out what was already spent since start.
    fn seed_local(&self) -> usize {
        let known = self.redis.last_known_spend();
        for (tenant, month_ms, spent) in &known {
            self.local.resume(tenant, *spent as f64 / MICRO / f64::from(self.replicas), *month_ms);
        }
        self.health.seeded_tenants.store(known.len() as u64, Ordering::Relaxed);
        known.len()
    }

    pub fn redis(&self) -> &RedisState {
        &self.redis
    }

    fn ok(&self) {
        if self.health.degraded.swap(false, Ordering::AcqRel) {
            tracing::warn!("shared state (Redis) is reachable again: limits are shared and exact again");
        }
    }

    /// Counts the error; `true` if the caller should fall back to the local state.
    fn failed(&self, e: &StateError) -> bool {
        self.health.errors.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            OnUnavailable::FailClosed => {
                if !self.health.degraded.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "SHARED STATE (REDIS) UNREACHABLE: failing closed, requests get 503 until it is back");
                }
                false
            }
            OnUnavailable::Degrade => {
                if !self.health.degraded.swap(true, Ordering::AcqRel) {
                    let seeded = self.seed_local();
                    tracing::error!(error = %e, seeded_tenants = seeded, "SHARED STATE (REDIS) UNREACHABLE: degraded to local limits divided by the replica count, starting from the spend Redis last reported for {seeded} tenant(s) (the ledger's figure at start for the others)");
                }
                true
            }
        }
    }

    fn degrade(&self, e: StateError) -> Result<(), StateError> {
        if self.failed(&e) {
            Ok(())
        } else {
            Err(e)
        }
    }
}

#[async_trait::async_trait]
impl SharedState for Resilient {
    fn replica_id(&self) -> &str {
        &self.redis.replica
    }

    fn shared(&self) -> bool {
        true
    }

    async fn admit_tenant(
        &self,
        tenant: &str,
        hold_usd: f64,
        tokens: u64,
    ) -> Result<Result<TenantGrant, Denied>, StateError> {
        match self.redis.admit_tenant(tenant, hold_usd, tokens).await {
            Ok(v) => {
                self.ok();
                Ok(v)
            }
            Err(e) => {
                self.degrade(e)?;
                self.local.admit_tenant(tenant, hold_usd, tokens).await
            }
        }
    }

    fn settle_tenant(&self, g: TenantGrant, charge_usd: f64, tokens: u64) {
        match g.origin {
            Origin::Shared => self.redis.settle_tenant(g, charge_usd, tokens),
            Origin::Local => self.local.settle_tenant(g, charge_usd, tokens),
        }
    }

    async fn tenant_usage(&self, tenant: &str) -> Result<Option<(f64, f64)>, StateError> {
        match self.redis.tenant_usage(tenant).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.degrade(e)?;
                self.local.tenant_usage(tenant).await
            }
        }
    }

    /// Degraded: `None`, and the caller keeps to its share of the pool's room.
    async fn reserve_pool(
        &self,
        pool: usize,
        work: i64,
        prefill: i64,
        room: i64,
    ) -> Result<Option<PoolView>, StateError> {
        match self.redis.reserve_pool(pool, work, prefill, room).await {
            Ok(v) => {
                self.ok();
                Ok(v)
            }
            Err(e) => self.degrade(e).map(|_| None),
        }
    }

    fn release_pool(&self, pool: usize, work: i64, prefill: i64, epoch: u64) {
        self.redis.release_pool(pool, work, prefill, epoch)
    }

    async fn heartbeat(&self) -> Result<(), StateError> {
        self.redis.heartbeat().await
    }

    /// Degraded: every replica plans alone (it cannot know who leads).
    async fn lead(&self) -> Result<bool, StateError> {
        match self.redis.lead().await {
            Ok(v) => Ok(v),
            Err(e) => self.degrade(e).map(|_| true),
        }
    }

    async fn exchange_forecasts(&self, own: &Demand) -> Result<Vec<Demand>, StateError> {
        match self.redis.exchange_forecasts(own).await {
            Ok(v) => Ok(v),
            Err(e) => self.degrade(e).map(|_| vec![own.clone()]),
        }
    }

    async fn publish_board(&self, board: &PriceBoard) -> Result<(), StateError> {
        self.redis.publish_board(board).await
    }

    async fn fetch_board(&self) -> Result<Option<PriceBoard>, StateError> {
        self.redis.fetch_board().await
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        // A cache that cannot be reached is a miss, whatever the mode.
        Ok(self.redis.cache_get(key).await.unwrap_or(None))
    }

    fn cache_put(&self, key: &str, value: Vec<u8>, ttl_ms: u64) {
        self.redis.cache_put(key, value, ttl_ms)
    }
}
