//! The allocator at run time: owns the fleet model, the forecast, the published price board,
//! each pool's load and price correction; solves the LP on demand (the gateway's background task
//! calls [`Allocator::solve`] every interval) and prices requests for admission.

use super::board::{ClassPlan, PoolPrice, PriceBoard};
use super::calibration::{Calibration, PoolObs};
use super::forecast::{ClassKey, ClassStats, Demand, Forecast};
use super::history::PriceHistory;
use super::lp::{self, LpClass, LpOption, LpPool};
use super::pools::Fleet;
use super::scarcity::{self, Want};
use crate::admission::defer::DeferQueue;
use crate::admission::reservation::{PoolLoad, Queued};
use crate::config::Config;
use crate::units::Rates;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Target share of a pool's room in use; the price rises above it and falls below it.
const TARGET_UTILISATION: f64 = 0.9;
/// How often [`Allocator::correct_prices`] is called, seconds: the live gateway and the simulator
/// both call it at this cadence, since each call is one step (the controller's gain per second is
/// `price_step` / this).
pub const CORRECTION_INTERVAL_S: f64 = 0.05;

pub struct Allocator {
    pub fleet: Fleet,
    /// What is in flight on each pool (read through [`Allocator::load`]).
    pub(super) loads: Vec<Arc<PoolLoad>>,
    /// Each pool's deferred batch work, densest first.
    pub(super) deferred: Vec<Mutex<DeferQueue>>,
    /// Woken after every price correction and when a pool's deferral queue loses its head, so
    /// waiting work is priced again when the simulator's tick prices it (see [`Waiting::turn`]).
    ///
    /// [`Waiting::turn`]: super::waiting::Waiting::turn
    pub(super) deferred_moved: Vec<tokio::sync::Notify>,
    /// Price correction of each pool since the last solve (f64 bits), USD per engine-second.
    adjust: Vec<AtomicU64>,
    /// Each pool's price at each correction: what work that may wait is priced at.
    history: Vec<Mutex<PriceHistory>>,
    /// What each pool's engines are measured to do: request lifetimes (batched requests
    /// overlap, so by Little's law the work in flight at full capacity is capacity x lifetime)
    /// and the prefill drain rate.
    calib: Vec<Calibration>,
    board: ArcSwap<PriceBoard>,
    forecast: Mutex<Forecast>,
    /// The LP solver, kept set up between solves of the same shape.
    planner: Mutex<lp::Planner>,
    started: Instant,
    horizon_s: f64,
    step: f64,
}

fn load_f64(a: &AtomicU64) -> f64 {
    f64::from_bits(a.load(Ordering::Relaxed))
}

impl Allocator {
    pub fn new(cfg: &Config) -> Result<Self, super::pools::FleetError> {
        let fleet = Fleet::from_config(cfg)?;
        let loads = fleet.pools.iter().map(|p| PoolLoad::new(p.room())).collect();
        let adjust = fleet.pools.iter().map(|_| AtomicU64::new(0f64.to_bits())).collect();
        let deferred = fleet.pools.iter().map(|_| Mutex::new(DeferQueue::default())).collect();
        let kept = (cfg.admission.horizon_s / CORRECTION_INTERVAL_S).ceil().clamp(1.0, 1e6) as usize;
        let history = fleet.pools.iter().map(|_| Mutex::new(PriceHistory::new(kept))).collect();
        let deferred_moved = fleet.pools.iter().map(|_| tokio::sync::Notify::new()).collect();
        let calib =
            fleet.pools.iter().map(|p| Calibration::new(p.engines, p.window_s, cfg.admission.horizon_s)).collect();
        let board = PriceBoard {
            pools: fleet
                .pools
                .iter()
                .map(|p| PoolPrice { pool: p.name.clone(), cost: p.cost, capacity: p.capacity(), ..Default::default() })
                .collect(),
            ..Default::default()
        };
        Ok(Self {
            fleet,
            loads,
            deferred,
            deferred_moved,
            adjust,
            history,
            calib,
            board: ArcSwap::from_pointee(board),
            forecast: Mutex::new(Forecast::new(cfg.admission.forecast_half_life_s)),
            planner: Mutex::new(lp::Planner::default()),
            started: Instant::now(),
            horizon_s: cfg.admission.horizon_s,
            step: cfg.admission.price_step,
        })
    }

    /// What is in flight on pool `pool`, and its room.
    pub fn load(&self, pool: usize) -> &Arc<PoolLoad> {
        &self.loads[pool]
    }

    /// Every pool's load, in the fleet's order.
    pub fn loads(&self) -> impl Iterator<Item = &PoolLoad> {
        self.loads.iter().map(|l| &**l)
    }

    /// Seconds since start: the allocator's clock.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn board(&self) -> Arc<PriceBoard> {
        self.board.load_full()
    }

    /// What an engine-second of `pool` costs a request now: its opportunity cost (see
    /// [`Self::opportunity`]) with the correction measured load made to it, never below zero,
    /// plus running cost and power price.
    pub fn price(&self, pool: usize) -> f64 {
        let b = self.board.load();
        let p = &b.pools[pool];
        (self.opportunity(pool, p, self.fullness(pool, p)) + load_f64(&self.adjust[pool])).max(0.0) + p.cost + p.power
    }

    /// The uncorrected opportunity cost of an engine-second of `pool` under board entry `p`, the
    /// pool being `full` ([`Self::fullness`]): the scarcity price of the room left at that
    /// fullness, or, while the pool is at least the target share full, the LP's shadow price if
    /// that is higher. The shadow price is what an engine-second is worth when the capacity the
    /// LP planned with binds; charged while the pool has room to spare, it refuses work the fleet
    /// could serve (stop 48's diagnosis).
    fn opportunity(&self, pool: usize, p: &PoolPrice, full: f64) -> f64 {
        let scarce = scarcity::price(&p.wants, self.loads[pool].room() * (1.0 - full), self.plannable(pool));
        if full >= TARGET_UTILISATION {
            p.lambda.max(scarce)
        } else {
            scarce
        }
    }

    /// How full `pool` is now, 0 to 1 or above: the share of its room in use, or how far its
    /// prefill backlog has come towards the tightest TTFT objective of those asking for it, if
    /// that is further (an engine whose batch is full queues prompts long before its room fills).
    fn fullness(&self, pool: usize, p: &PoolPrice) -> f64 {
        let load = &self.loads[pool];
        let queued = p.ttft_slo_s.map_or(0.0, |slo| self.ttft_estimate(pool, load.backlog(), 0.0) / slo.max(1e-9));
        load.utilisation().max(queued)
    }

    /// `pool`'s lowest price over the last planning horizon, never below what it falls to when
    /// nothing is scarce (its running cost and power price): what work that may wait holds out
    /// for when it arrives.
    pub fn low_price(&self, pool: usize) -> f64 {
        let b = self.board.load();
        let idle = b.pools[pool].cost + b.pools[pool].power;
        self.history[pool].lock().expect("history lock").low().map_or(idle, |low| low.max(idle))
    }

    pub fn observe_arrival(&self, key: &ClassKey, input_tokens: f64) {
        self.observe_arrival_at(key, self.now(), input_tokens);
    }

    /// As [`Self::observe_arrival`], at a given time (the simulator's virtual clock).
    pub fn observe_arrival_at(&self, key: &ClassKey, now: f64, input_tokens: f64) {
        self.forecast.lock().expect("forecast lock").observe_arrival(key, now, input_tokens);
    }

    pub fn observe_finish(&self, key: &ClassKey, output_tokens: f64) {
        self.forecast.lock().expect("forecast lock").observe_finish(key, output_tokens);
    }

    /// A request on `pool` lived `seconds` from admission to its last token: the pool's room
    /// follows the mean lifetime (never below the configured window) from the next board on.
    pub fn observe_lifetime(&self, pool: usize, seconds: f64) {
        self.observe_lifetime_at(pool, self.now(), seconds);
    }

    /// As [`Self::observe_lifetime`], ending at a given time (the simulator's virtual clock).
    pub fn observe_lifetime_at(&self, pool: usize, now: f64, seconds: f64) {
        self.calib[pool].lifetime(seconds, now);
    }

    /// The room a board publishes for `pool`: capacity times the mean lifetime, at least the
    /// configured window; every replica's measurements (from `demand`) where there are any, else
    /// this one's.
    fn planned_room(&self, pool: usize, demand: &Demand) -> f64 {
        let p = &self.fleet.pools[pool];
        p.capacity() * self.observed(pool, demand).lifetime_s.max(p.window_s)
    }

    /// What every replica measured of `pool` (from `demand`), else this one.
    fn observed(&self, pool: usize, demand: &Demand) -> PoolObs {
        match demand.pools.get(pool) {
            Some(o) if o.seen > 0 => *o,
            _ => self.calib[pool].snapshot(),
        }
    }

    /// Engine-seconds per second that `pool` can plan: its SLA-safe capacity.
    pub fn plannable(&self, pool: usize) -> f64 {
        self.fleet.pools[pool].capacity()
    }

    /// Every pool's room is the board's, so replicas that installed the same board judge
    /// reservations against one room.
    fn apply_rooms(&self, board: &PriceBoard) {
        for (load, p) in self.loads.iter().zip(&board.pools) {
            if p.room > 0.0 {
                load.set_room(p.room);
            }
        }
    }

    /// A request's first token came `ttft_s` after its admission to `pool`, its prefill having
    /// waited behind `q.ahead_s` engine-seconds: calibrates the time-to-first-token estimate.
    pub fn observe_first_token(&self, pool: usize, q: Queued, ttft_s: f64) {
        self.calib[pool].first_token(q.ahead_s, q.prefill_s, ttft_s);
    }

    /// Estimated seconds to the first token on `pool` of a request whose prefill takes
    /// `prefill` engine-seconds, behind `backlog` engine-seconds: the backlog at the measured
    /// drain rate, then its own prefill.
    pub fn ttft_estimate(&self, pool: usize, backlog: f64, prefill: f64) -> f64 {
        self.calib[pool].ttft_estimate(backlog, prefill)
    }

    pub fn expected_output(&self, key: &ClassKey, max_tokens: Option<u32>) -> f64 {
        self.forecast.lock().expect("forecast lock").expected_output(key, max_tokens)
    }

    /// One subgradient step on every pool's price from its measured load against the target;
    /// called every [`CORRECTION_INTERVAL_S`]. Then every pool's waiting work is woken to be
    /// priced again at the new prices, as the simulator prices its queues right after its own.
    pub fn correct_prices(&self) {
        let board = self.board.load();
        let density = board.value_density.max(1e-6);
        for (i, p) in board.pools.iter().enumerate() {
            let full = self.fullness(i, p);
            let g = full - TARGET_UTILISATION;
            let base = self.opportunity(i, p, full);
            let cur = load_f64(&self.adjust[i]);
            // The corrected price never goes below zero.
            let next = (cur + self.step * density * g).max(-base);
            self.adjust[i].store(next.to_bits(), Ordering::Relaxed);
            // As `price(i)`, without computing the scarcity price again.
            let price = base + next + p.cost + p.power;
            self.history[i].lock().expect("history lock").push(price);
        }
        self.deferred_moved.iter().for_each(tokio::sync::Notify::notify_waiters);
    }

    /// What work that may wait pays on `pool`: the highest price over the last request lifetime
    /// (and now), so that it takes only capacity that stays free for as long as it would hold it.
    pub fn price_to_wait(&self, pool: usize) -> f64 {
        let steps = (self.calib[pool].lifetime_s() / CORRECTION_INTERVAL_S).ceil();
        let high = self.history[pool].lock().expect("history lock").high(steps.clamp(1.0, 1e6) as usize);
        self.price(pool).max(high)
    }

    /// Solves the LP on the current forecast and publishes a new board.
    pub fn solve(&self, cfg: &Config) -> Result<Arc<PriceBoard>, lp::LpError> {
        self.solve_at(cfg, self.now())
    }

    /// As [`Self::solve`], at a given time (the simulator's virtual clock).
    pub fn solve_at(&self, cfg: &Config, now: f64) -> Result<Arc<PriceBoard>, lp::LpError> {
        self.solve_for(cfg, now, &self.demand(now))
    }

    /// This replica's demand forecast, rates decayed to `now`.
    pub fn forecast_snapshot(&self, now: f64) -> Vec<(ClassKey, ClassStats)> {
        self.forecast.lock().expect("forecast lock").snapshot(now)
    }

    /// This replica's demand: the forecast at `now` and each pool's measurements.
    pub fn demand(&self, now: f64) -> Demand {
        Demand { classes: self.forecast_snapshot(now), pools: self.calib.iter().map(Calibration::snapshot).collect() }
    }

    /// Installs a board another replica (the LP leader) published, if newer than ours; the
    /// local price corrections start again from it.
    pub fn install(&self, board: PriceBoard) -> bool {
        if board.version <= self.board.load().version || board.pools.len() != self.fleet.pools.len() {
            return false;
        }
        self.apply_rooms(&board);
        self.keep_corrections(&board);
        self.board.store(Arc::new(board));
        true
    }

    /// Solves the LP on a given demand (the leader's: every replica's merged) and publishes.
    pub fn solve_for(&self, cfg: &Config, now: f64, demand: &Demand) -> Result<Arc<PriceBoard>, lp::LpError> {
        let snapshot = &demand.classes;
        let t0 = Instant::now();
        let pools: Vec<LpPool> = self
            .fleet
            .pools
            .iter()
            .map(|p| LpPool { capacity: p.capacity(), cost: p.cost, watts: p.watts, site: p.site })
            .collect();
        let mut classes = Vec::new();
        let mut keys = Vec::new();
        let mut slos = Vec::new();
        let (mut value_rate, mut work_rate) = (0.0, 0.0);
        for (key, s) in snapshot {
            let Some(options) = self.options(cfg, key, s.mean_in, s.mean_out) else { continue };
            // The tier the class's requests are valued at: the tenant's, or the one their
            // service tier names.
            let tier = cfg.request_tier(&key.tenant, key.service);
            let value =
                tier.map(crate::config::TierConfig::value_rates).unwrap_or_default().charge_f(s.mean_in, s.mean_out);
            // A tenant's reserved capacity goes with the requests at its own tier.
            let reserved = tier
                .filter(|_| key.service == crate::config::ServiceTier::Default)
                .map_or(0.0, |t| t.reserved_engine_seconds);
            value_rate += s.rate * value;
            work_rate += s.rate * options[0].work;
            classes.push(LpClass { rate: s.rate, value, options, reserved });
            keys.push((key.clone(), *s));
            slos.push(tier.map_or(f64::INFINITY, crate::config::TierConfig::ttft_slo_s));
        }
        let plan = self.planner.lock().unwrap_or_else(|e| e.into_inner()).solve(
            &pools,
            &self.fleet.site_caps,
            &classes,
            self.horizon_s,
        )?;
        let mut planned = vec![0.0; pools.len()];
        let mut wants: Vec<Vec<Want>> = vec![Vec::new(); pools.len()];
        let mut slo = vec![f64::INFINITY; pools.len()];
        for ((c, rates), class_slo) in classes.iter().zip(&plan.rate).zip(&slos) {
            for (o, r) in c.options.iter().zip(rates) {
                planned[o.pool] += r * o.work;
            }
            // What the class asks of the pool it asks for.
            if let Some(o) = c.options.first() {
                slo[o.pool] = slo[o.pool].min(*class_slo);
                wants[o.pool].push(Want {
                    density: c.value / o.work.max(1e-12),
                    work_rate: c.rate * o.work,
                    work: o.work,
                });
            }
        }
        wants.iter_mut().for_each(|w| scarcity::order(w));
        let board = PriceBoard {
            version: self.board.load().version + 1,
            solved_at: now,
            solve_ms: t0.elapsed().as_secs_f64() * 1e3,
            planned_value_per_s: plan.objective,
            value_density: if work_rate > 0.0 { value_rate / work_rate } else { self.board.load().value_density },
            pools: self
                .fleet
                .pools
                .iter()
                .enumerate()
                .map(|(i, p)| PoolPrice {
                    pool: p.name.clone(),
                    lambda: plan.lambda[i],
                    cost: p.cost,
                    power: p.site.map(|s| plan.pi[s] * p.watts).unwrap_or(0.0),
                    planned: planned[i],
                    capacity: pools[i].capacity,
                    wants: std::mem::take(&mut wants[i]),
                    room: self.planned_room(i, demand),
                    ttft_slo_s: slo[i].is_finite().then_some(slo[i]),
                })
                .collect(),
            classes: keys
                .iter()
                .zip(&classes)
                .zip(&plan.rate)
                .zip(&plan.mu)
                .map(|((((key, s), c), rates), mu)| ClassPlan {
                    tenant: key.tenant.clone(),
                    model: key.model.clone(),
                    rate: s.rate,
                    mean_in: s.mean_in,
                    mean_out: s.mean_out,
                    planned: c
                        .options
                        .iter()
                        .zip(rates)
                        .map(|(o, r)| (self.fleet.pools[o.pool].name.clone(), *r))
                        .collect(),
                    surplus: *mu,
                })
                .collect(),
        };
        self.apply_rooms(&board);
        self.keep_corrections(&board);
        let board = Arc::new(board);
        self.board.store(board.clone());
        Ok(board)
    }

    /// A new board's prices: the corrections measured load made so far are kept (the plan is
    /// a fluid model that is biased where demand sits at capacity; what the room shows corrects
    /// it), within what keeps every price non-negative.
    fn keep_corrections(&self, board: &PriceBoard) {
        for (i, (a, p)) in self.adjust.iter().zip(&board.pools).enumerate() {
            a.store(load_f64(a).max(-self.opportunity(i, p, self.fullness(i, p))).to_bits(), Ordering::Relaxed);
        }
    }

    /// Seconds until the work in flight on `pool` drains (1 to 60): when a refused request
    /// may try again, since the price will not fall much before.
    pub fn drain_seconds(&self, pool: usize) -> u64 {
        (self.loads[pool].total_inflight() / self.plannable(pool).max(1e-9)).ceil().clamp(1.0, 60.0) as u64
    }

    /// The priced candidates for a request of `input` and expected `output` tokens: each pool that
    /// may serve its class, with its quality, work, live price and room left. Deferrable work is
    /// offered only the pool it asked for (it waits rather than take a cheaper model).
    pub fn candidates(
        &self,
        cfg: &Config,
        key: &ClassKey,
        input: f64,
        output: f64,
        deferrable: bool,
    ) -> Option<Vec<crate::admission::Candidate>> {
        let mut options = self.options(cfg, key, input, output)?;
        if deferrable {
            options.truncate(1);
        }
        Some(
            options
                .iter()
                .map(|o| {
                    let pool = &self.fleet.pools[o.pool];
                    let load = &self.loads[o.pool];
                    let (prefill, _) = pool.work_parts(input, output);
                    crate::admission::Candidate {
                        pool: o.pool,
                        quality: o.quality,
                        work: o.work,
                        prefill,
                        price: if deferrable { self.price_to_wait(o.pool) } else { self.price(o.pool) },
                        // Only work that may wait holds out from it (a scan of the history).
                        low_price: if deferrable { self.low_price(o.pool) } else { 0.0 },
                        room_left: load.room() - load.total_inflight(),
                        ttft_s: self.ttft_estimate(o.pool, load.backlog(), prefill),
                    }
                })
                .collect(),
        )
    }

    /// The pools that may serve a class: its own model's pool first, then its fallbacks that the
    /// tenant may use. `None` when the model is not capacity-managed.
    pub fn options(&self, cfg: &Config, key: &ClassKey, input: f64, output: f64) -> Option<Vec<LpOption>> {
        let own = self.fleet.pool(&key.model)?;
        let mut v = vec![LpOption { pool: own, quality: 1.0, work: self.fleet.pools[own].work(input, output) }];
        for fb in cfg.model(&key.model).map(|m| m.fallbacks.as_slice()).unwrap_or_default() {
            if let Some(p) = self.fleet.pool(&fb.model) {
                if cfg.may_use(&key.tenant, &fb.model) {
                    v.push(LpOption { pool: p, quality: fb.quality, work: self.fleet.pools[p].work(input, output) });
                }
            }
        }
        Some(v)
    }
}

/// What a tenant's work is worth per token: its tier's internal value, else its price.
pub fn value_rates(cfg: &Config, tenant: &str) -> Rates {
    cfg.request_tier(tenant, crate::config::ServiceTier::Default)
        .map(crate::config::TierConfig::value_rates)
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
