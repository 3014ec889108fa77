//! Shared state in Redis. Every admission is one Lua script (atomic, one round trip): the
//! tenant's budget, token and request windows in `admit.lua`, a pool's capacity in
//! `reserve.lua`. Releases and settlements are sent in the background (retried while Redis is
//! briefly away). Each replica renews its presence (a sorted set of expiry times) every third of
//! the TTL; the scripts count only live replicas' holds and reservations, so a dead replica's
//! are reclaimed after the TTL.
//!
//! Keys (under `redis.prefix`): `replicas`, `budget:{tenant}:{month}`, `held:{tenant}:{month}`,
//! `tpm:{tenant}`, `rpm:{tenant}`, `pool:{pool}:inflight`, `pool:{pool}:backlog`, `lease:lp`,
//! `board`, `forecasts`, `cache:{key}`. Standalone Redis (the scripts touch keys of several
//! tenants' and pools' families only through `replicas`).

use super::contract::{micro, Denied, Origin, SharedState, StateError, TenantGrant, TenantLimits, MICRO};
use crate::admission::reservation::PoolView;
use crate::allocator::board::PriceBoard;
use crate::allocator::forecast::Demand;
use crate::config::RedisConfig;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/admit.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/settle.lua")));
static RESERVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/reserve.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/heartbeat.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lease.lua")));
static FORECASTS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/forecasts.lua")));

/// How long background writes (settlements, releases) keep retrying while Redis is away.
const BACKGROUND_RETRY_FOR: Duration = Duration::from_secs(30);

pub struct RedisState {
    conn: ConnectionManager,
    /// This replica's id: random per process.
    pub replica: String,
    /// Bumped when this replica finds its presence lapsed (it was away past the TTL): holds and
    /// reservations are kept under `{replica}.{epoch}`, so what was granted before the lapse (and
    /// dropped by the others) can never be given back from what is held after it.
    epoch: std::sync::atomic::AtomicU64,
    /// Whether the current epoch's presence was ever renewed.
    present: std::sync::atomic::AtomicBool,
    prefix: String,
    ttl_ms: u64,
    timeout: Duration,
    limits: HashMap<String, TenantLimits>,
    pools: Vec<String>,
    /// The last spend (and holds) Redis reported per budgeted tenant: (month, micro-USD).
    known: std::sync::Mutex<HashMap<String, (i64, i64)>>,
}

fn unavailable(e: impl std::fmt::Display) -> StateError {
    StateError::Unavailable(e.to_string())
}

impl RedisState {
    /// Connects lazily: nothing is sent before the first call, and calls made while Redis is
    /// down fail within the timeout (the connection is re-established behind them).
    pub fn new(
        url: &str,
        cfg: &RedisConfig,
        limits: HashMap<String, TenantLimits>,
        pools: Vec<String>,
    ) -> Result<Self, StateError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mc = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, mc).map_err(unavailable)?;
        Ok(Self {
            conn,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            prefix: cfg.prefix.clone(),
            ttl_ms: cfg.ttl_ms,
            timeout,
            limits,
            pools,
            known: Default::default(),
            epoch: Default::default(),
            present: Default::default(),
        })
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The field this replica's holds and reservations of `epoch` are kept under.
    fn member(&self, epoch: u64) -> String {
        format!("{}.{epoch}", self.replica)
    }

    /// What to seed a month's spend with when Redis has none: the ledger's figure for the
    /// month it was counted in, nothing for a later month.
    fn seed(l: &TenantLimits, month_ms: i64) -> i64 {
        let counted_in = if l.spent_month_ms > 0 { l.spent_month_ms } else { month_ms };
        if counted_in == month_ms {
            micro(l.spent_usd)
        } else {
            0
        }
    }

    /// The last spend Redis reported per tenant: (month, micro-USD spent and held), for a
    /// replica that degrades to local limits.
    pub fn last_known_spend(&self) -> Vec<(String, i64, i64)> {
        self.known.lock().expect("known lock").iter().map(|(t, (m, s))| (t.clone(), *m, *s)).collect()
    }

    async fn call<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, StateError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable(format!("no answer within {} ms", self.timeout.as_millis()))),
        }
    }

    /// Runs `script` in the background until it succeeds or [`BACKGROUND_RETRY_FOR`] passes.
    fn background(&self, script: &'static Script, keys: Vec<String>, args: Vec<String>) {
        let mut conn = self.conn.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        rt.spawn(async move {
            let start = std::time::Instant::now();
            let mut delay = Duration::from_millis(20);
            loop {
                let mut inv = script.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                for a in &args {
                    inv.arg(a);
                }
                match inv.invoke_async::<i64>(&mut conn).await {
                    Ok(_) => return,
                    Err(e) if start.elapsed() < BACKGROUND_RETRY_FOR => {
                        tracing::debug!(error = %e, "shared state write failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "shared state write given up; it lapses with this replica's presence");
                        return;
                    }
                }
            }
        });
    }

    /// The live totals of every pool (work 0: read only).
    pub async fn pool_views(&self) -> Result<Vec<PoolView>, StateError> {
        let mut out = Vec::with_capacity(self.pools.len());
        for i in 0..self.pools.len() {
            out.push(self.reserve_pool(i, 0, 0, 0).await?.unwrap_or_default());
        }
        Ok(out)
    }
}

impl RedisState {
    /// A tenant's admission at `now_ms` (the month's keys come from it; the windows from Redis's
    /// own clock).
    pub async fn admit_tenant_at(
        &self,
        tenant: &str,
        hold_usd: f64,
        tokens: u64,
        now_ms: i64,
    ) -> Result<Result<TenantGrant, Denied>, StateError> {
        let Some(l) = self.limits.get(tenant) else { return Ok(Err(Denied::Budget)) };
        let month_ms = crate::units::month_start_ms(now_ms);
        let month = month_ms.to_string();
        let epoch = self.epoch();
        let hold = micro(hold_usd);
        let budget = l.budget_usd.map(micro).unwrap_or(-1);
        let mut conn = self.conn.clone();
        let mut inv = ADMIT.prepare_invoke();
        inv.key(self.key(&["replicas"]))
            .key(self.key(&["budget", tenant, &month]))
            .key(self.key(&["held", tenant, &month]))
            .key(self.key(&["tpm", tenant]))
            .key(self.key(&["rpm", tenant]))
            .arg(self.member(epoch))
            .arg(hold)
            .arg(budget)
            .arg(Self::seed(l, month_ms))
            .arg(tokens)
            .arg(l.tokens_per_minute.map(|t| t as i64).unwrap_or(-1))
            .arg(l.requests_per_minute.map(|t| t as i64).unwrap_or(-1));
        let (ok, rest): (i64, Vec<redis::Value>) = {
            let v: Vec<redis::Value> = self.call(inv.invoke_async(&mut conn)).await?;
            let ok = v.first().and_then(|x| redis::from_redis_value_ref::<i64>(x).ok()).unwrap_or(0);
            (ok, v.into_iter().skip(1).collect())
        };
        let int = |i: usize| rest.get(i).and_then(|x| redis::from_redis_value_ref::<i64>(x).ok());
        if budget >= 0 {
            // The spend (and holds) Redis counted, remembered for a fall back to local limits.
            if let Some(spent) = int(if ok == 1 { 1 } else { 2 }) {
                self.known.lock().expect("known lock").insert(tenant.to_string(), (month_ms, spent));
            }
        }
        if ok == 1 {
            let second = int(0).unwrap_or(0);
            return Ok(Ok(TenantGrant {
                tenant: tenant.to_string(),
                hold: if budget >= 0 { hold } else { 0 },
                tokens: if l.tokens_per_minute.is_some() { tokens as i64 } else { 0 },
                second,
                month_ms,
                epoch,
                origin: Origin::Shared,
            }));
        }
        let reason = rest.first().and_then(|x| redis::from_redis_value_ref::<String>(x).ok()).unwrap_or_default();
        let wait = rest.get(1).and_then(|x| redis::from_redis_value_ref::<i64>(x).ok()).unwrap_or(-1);
        let wait = (wait >= 0).then_some(wait as u64);
        Ok(Err(match reason.as_str() {
            "tokens" => Denied::Tokens(wait),
            "requests" => Denied::Requests(wait),
            _ => Denied::Budget,
        }))
    }
}

#[async_trait::async_trait]
impl SharedState for RedisState {
    fn replica_id(&self) -> &str {
        &self.replica
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
        self.admit_tenant_at(tenant, hold_usd, tokens, crate::units::unix_ms()).await
    }

    fn settle_tenant(&self, g: TenantGrant, charge_usd: f64, tokens: u64) {
        // The hold was made, and the charge is spent, in the month of admission.
        let month = g.month_ms.to_string();
        let delta = if g.tokens > 0 { tokens as i64 - g.tokens } else { 0 };
        self.background(
            &SETTLE,
            vec![
                self.key(&["budget", &g.tenant, &month]),
                self.key(&["held", &g.tenant, &month]),
                self.key(&["tpm", &g.tenant]),
            ],
            vec![
                self.member(g.epoch),
                g.hold.to_string(),
                micro(charge_usd).to_string(),
                g.second.to_string(),
                delta.to_string(),
            ],
        );
    }

    async fn tenant_usage(&self, tenant: &str) -> Result<Option<(f64, f64)>, StateError> {
        if !self.limits.contains_key(tenant) {
            return Ok(None);
        }
        let month_ms = crate::units::month_start_ms(crate::units::unix_ms());
        let month = month_ms.to_string();
        let mut conn = self.conn.clone();
        let spent: Option<i64> = self.call(conn.hget(self.key(&["budget", tenant, &month]), "spent")).await?;
        let held: HashMap<String, i64> = self.call(conn.hgetall(self.key(&["held", tenant, &month]))).await?;
        let spent = spent.unwrap_or_else(|| Self::seed(&self.limits[tenant], month_ms));
        Ok(Some((spent as f64 / MICRO, held.values().sum::<i64>() as f64 / MICRO)))
    }

    async fn reserve_pool(
        &self,
        pool: usize,
        work: i64,
        prefill: i64,
        room: i64,
    ) -> Result<Option<PoolView>, StateError> {
        let name = &self.pools[pool];
        let epoch = self.epoch();
        let mut conn = self.conn.clone();
        let mut inv = RESERVE.prepare_invoke();
        inv.key(self.key(&["replicas"]))
            .key(self.key(&["pool", name, "inflight"]))
            .key(self.key(&["pool", name, "backlog"]))
            .arg(self.member(epoch))
            .arg(work)
            .arg(prefill)
            .arg(room);
        let v: Vec<i64> = self.call(inv.invoke_async(&mut conn)).await?;
        let g = |i: usize| v.get(i).copied().unwrap_or(0);
        Ok(Some(PoolView {
            granted: g(0) == 1,
            inflight: g(1),
            own_inflight: g(2),
            backlog: g(3),
            own_backlog: g(4),
            epoch,
        }))
    }

    fn release_pool(&self, pool: usize, work: i64, prefill: i64, epoch: u64) {
        let name = &self.pools[pool];
        self.background(
            &RELEASE,
            vec![self.key(&["pool", name, "inflight"]), self.key(&["pool", name, "backlog"])],
            vec![self.member(epoch), work.to_string(), prefill.to_string()],
        );
    }

    async fn heartbeat(&self) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        let mut conn = self.conn.clone();
        for _ in 0..2 {
            let epoch = self.epoch();
            let mut inv = HEARTBEAT.prepare_invoke();
            inv.key(self.key(&["replicas"]))
                .arg(self.member(epoch))
                .arg(self.ttl_ms)
                .arg(if self.present.load(Ordering::Acquire) { 1 } else { 0 });
            let (_, lapsed): (i64, i64) = self.call(inv.invoke_async(&mut conn)).await?;
            if lapsed == 0 {
                self.present.store(true, Ordering::Release);
                return Ok(());
            }
            // Away past the TTL: the others have dropped what this replica held. Go on under a new
            // epoch, so grants from before the lapse settle against a field that is gone.
            if self.epoch.compare_exchange(epoch, epoch + 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                self.present.store(false, Ordering::Release);
                tracing::warn!(replica = %self.replica, epoch = epoch + 1, "this replica's presence lapsed: what it held before is released; continuing under a new epoch");
            }
        }
        Ok(())
    }

    async fn lead(&self) -> Result<bool, StateError> {
        let mut conn = self.conn.clone();
        let mut inv = LEASE.prepare_invoke();
        inv.key(self.key(&["lease", "lp"])).arg(&self.replica).arg(self.ttl_ms);
        Ok(self.call(inv.invoke_async::<i64>(&mut conn)).await? == 1)
    }

    async fn exchange_forecasts(&self, own: &Demand) -> Result<Vec<Demand>, StateError> {
        let mut conn = self.conn.clone();
        let json = serde_json::to_string(own).map_err(unavailable)?;
        let key = self.key(&["forecasts"]);
        self.call(conn.hset::<_, _, _, ()>(&key, self.member(self.epoch()), json)).await?;
        let mut inv = FORECASTS.prepare_invoke();
        inv.key(self.key(&["replicas"])).key(&key);
        let all: Vec<String> = self.call(inv.invoke_async(&mut conn)).await?;
        Ok(all.iter().filter_map(|j| serde_json::from_str::<Demand>(j).ok()).collect())
    }

    async fn publish_board(&self, board: &PriceBoard) -> Result<(), StateError> {
        let mut conn = self.conn.clone();
        let json = serde_json::to_string(board).map_err(unavailable)?;
        self.call(conn.set::<_, _, ()>(self.key(&["board"]), json)).await
    }

    async fn fetch_board(&self) -> Result<Option<PriceBoard>, StateError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = self.call(conn.get(self.key(&["board"]))).await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let mut conn = self.conn.clone();
        self.call(conn.get(self.key(&["cache", key]))).await
    }

    fn cache_put(&self, key: &str, value: Vec<u8>, ttl_ms: u64) {
        let mut conn = self.conn.clone();
        let key = self.key(&["cache", key]);
        let timeout = self.timeout;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let set = conn.pset_ex::<_, _, ()>(&key, value, ttl_ms);
                if let Ok(Err(e)) = tokio::time::timeout(timeout, set).await {
                    tracing::debug!(error = %e, "shared cache: store failed");
                }
            });
        }
    }
}
