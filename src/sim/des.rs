//! The discrete-event simulator: replays requests on a virtual clock against engine models (the
//! emulator's `Engine`, one per replica) under a policy. Bid-price admission runs the gateway's
//! own allocator and `admission::decide`, with the virtual time passed in.

pub use super::outcome::{Fate, PoolSample};
use super::plan::Planned;
use super::policy::{Policy, QuotaBuckets};
pub use super::request::SimRequest;
use super::scenario::Scenario;
use crate::admission::defer::{DeferQueue, Window};
use crate::admission::reservation::Reservation;
use crate::allocator::forecast::ClassKey;
use crate::allocator::Allocator;
use crate::config::Config;
use crate::emulator::engine::{Emit, Engine, Event, Submission};
use crate::routing::placement::Placer;
use crate::units::Total;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

mod admit;

struct Replica {
    engine: Engine,
    pending: Vec<Event>,
    busy: bool,
    /// False once the replica is lost (a scenario's outage).
    up: bool,
    /// Requests placed here and not yet ended: the load placement reads, as the gateway's is
    /// its requests outstanding on each backend (it cannot see the engine's own queues, which
    /// the engine model has moved past a step's tokens before they are due).
    outstanding: u32,
}

struct Live {
    req: usize,
    pool: usize,
    replica: usize,
    started: f64,
    quality: f64,
    first: Option<f64>,
    deferred: bool,
    reservation: Option<Reservation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Step(usize, usize),
    /// A planned request starts (the hindsight replay's delayed batch work).
    Start(usize),
    Tick,
    Solve,
    /// Pool `0` loses a replica.
    Lose(usize),
}

/// Price corrections and the deferral queue run at the gateway's cadence.
const TICK_S: f64 = crate::allocator::CORRECTION_INTERVAL_S;

pub struct Sim<'a> {
    sc: &'a Scenario,
    cfg: Config,
    policy: Policy,
    reqs: &'a [SimRequest],
    pools: Vec<Vec<Replica>>,
    alloc: Allocator,
    live: HashMap<u64, Live, foldhash::fast::FixedState>,
    /// Each pool's deferred requests, the gateway's queue (by request index).
    waiting_defer: Vec<DeferQueue>,
    heap: BinaryHeap<Reverse<(Total, Ev)>>,
    quotas: QuotaBuckets,
    pub fates: Vec<Option<Fate>>,
    /// (time, pool, price, utilisation) samples, one a second.
    pub prices: Vec<PoolSample>,
    next_id: u64,
    pool_index: Vec<usize>,
    /// Per pool, how requests are placed on its replicas.
    placers: Vec<Placer>,
    /// The hindsight schedule replayed (`Policy::Hindsight`), per request.
    plan: Vec<Option<Planned>>,
    /// Each class's forecast key (its tenant and the model it asks for).
    keys: Vec<ClassKey>,
    /// How long before time zero the gateway's timers (LP solves, price corrections) started.
    timer_offset_s: f64,
}

impl<'a> Sim<'a> {
    pub fn new(sc: &'a Scenario, policy: Policy, reqs: &'a [SimRequest]) -> Result<Self, super::error::SimError> {
        let cfg = sc.gateway_config()?;
        let alloc = Allocator::new(&cfg)?;
        let pools = sc
            .pools
            .iter()
            .map(|p| {
                let profile = crate::capacity::Profile::resolve(&p.capacity.profile)?;
                Ok((0..p.capacity.replicas)
                    .map(|_| Replica {
                        engine: Engine::new(profile.clone()).emitting(Emit::FirstAndLast),
                        pending: Vec::new(),
                        busy: false,
                        up: true,
                        outstanding: 0,
                    })
                    .collect())
            })
            .collect::<Result<Vec<_>, super::error::SimError>>()?;
        let pool_index =
            sc.classes.iter().map(|c| sc.pools.iter().position(|p| p.name == c.pool).unwrap_or(0)).collect();
        let quotas = QuotaBuckets::new(sc, &alloc, reqs);
        let placers = sc.pools.iter().map(|p| Placer::new(p.placement)).collect();
        Ok(Self {
            sc,
            cfg,
            policy,
            reqs,
            pools,
            alloc,
            live: HashMap::default(),
            waiting_defer: vec![DeferQueue::default(); sc.pools.len()],
            heap: BinaryHeap::new(),
            quotas,
            fates: vec![None; reqs.len()],
            prices: Vec::new(),
            next_id: 1,
            pool_index,
            placers,
            plan: Vec::new(),
            keys: sc.classes.iter().map(|c| ClassKey::new(c.name.clone(), c.pool.clone())).collect(),
            timer_offset_s: 0.0,
        })
    }

    /// The plan `Policy::Hindsight` replays: per request, where and from when it is served.
    pub fn with_plan(mut self, plan: Vec<Option<Planned>>) -> Self {
        self.plan = plan;
        self
    }

    /// Runs the allocator's timers at the phase a live gateway's had: started `offset_s` before
    /// the first request's clock (its LP solves and price corrections then fall at
    /// `k * interval - offset_s`). Where the LP flips between plans, which side of a solve a
    /// burst falls on moves admission more than any other timing, so a replay of a live run
    /// uses the live phase (issue 21's validation).
    pub fn with_timer_offset(mut self, offset_s: f64) -> Self {
        self.timer_offset_s = offset_s.max(0.0);
        self
    }

    fn push(&mut self, t: f64, e: Ev) {
        self.heap.push(Reverse((Total(t), e)));
    }

    /// Runs every request to its end; `progress` hears the number of arrivals now and then.
    pub fn run(self, progress: &mut dyn FnMut(usize)) -> (Vec<Fate>, Vec<PoolSample>) {
        let (fates, prices, _) = self.run_counting(progress);
        (fates, prices)
    }

    /// As [`Self::run`], also returning the share of prompt tokens served from the replicas'
    /// prefix caches.
    pub fn run_counting(mut self, progress: &mut dyn FnMut(usize)) -> (Vec<Fate>, Vec<PoolSample>, f64) {
        // The first correction and solve at or after zero (a solve at zero would see no demand).
        let offset = self.timer_offset_s;
        let first = |every: f64| (-offset).rem_euclid(every);
        self.push(first(TICK_S), Ev::Tick);
        for o in &self.sc.outages {
            if let Some(p) = self.sc.pools.iter().position(|x| x.name == o.pool) {
                self.push(o.at_s.max(0.0), Ev::Lose(p));
            }
        }
        if self.policy == Policy::BidPrice {
            let solve = first(self.solve_s());
            self.push(if solve > 0.0 { solve } else { self.solve_s() }, Ev::Solve);
        }
        let mut next = 0;
        let end = self.reqs.last().map(|r| r.at).unwrap_or(0.0);
        loop {
            let t_ev = self.heap.peek().map(|Reverse((t, _))| t.0);
            let t_arr = self.reqs.get(next).map(|r| r.at);
            // An arrival goes first when it comes no later than the next event.
            let arrival = match (t_arr, t_ev) {
                (Some(a), Some(e)) => a <= e,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if let (true, Some(a)) = (arrival, t_arr) {
                self.arrive(next, a);
                next += 1;
                if next % 8192 == 0 {
                    progress(next);
                }
                continue;
            }
            let Reverse((Total(t), ev)) = self.heap.pop().expect("an event is due");
            let idle_after_end = t > end && self.live.is_empty() && self.waiting_defer.iter().all(DeferQueue::is_empty);
            match ev {
                Ev::Step(p, r) => self.step_done(t, p, r),
                Ev::Start(i) => {
                    if let Some(p) = self.plan[i] {
                        self.start(i, t, p.pool, p.quality, None, true);
                    }
                }
                Ev::Lose(p) => self.lose(p),
                Ev::Tick if !idle_after_end => self.tick(t),
                Ev::Solve if !idle_after_end => self.solve(t),
                _ => {}
            }
        }
        progress(next);
        let (queried, hit) = self.pools.iter().flatten().fold((0u64, 0u64), |(q, h), r| {
            let c = r.engine.counters();
            (q + c.prefix_queried_tokens, h + c.prefix_hit_tokens)
        });
        let fates = self.fates.into_iter().map(|f| f.unwrap_or(Fate::Dropped)).collect();
        (fates, self.prices, hit as f64 / queried.max(1) as f64)
    }

    fn key(&self, class: usize) -> &ClassKey {
        &self.keys[class]
    }

    fn arrive(&mut self, i: usize, t: f64) {
        let r = &self.reqs[i];
        let class = r.class;
        let pool = self.pool_index[class];
        // Every policy's gateway sees the arrival (the forecast of output lengths is what the
        // baselines also go by: none of them may read the trace's true output).
        self.alloc.observe_arrival_at(&self.keys[class], t, f64::from(r.input));
        match self.policy {
            Policy::Fifo => self.start(i, t, pool, 1.0, None, false),
            Policy::Priority => {
                let tier = self.sc.tier(&self.sc.classes[class].tier).map(|t| t.priority).unwrap_or(0);
                let top = self.sc.tiers.iter().map(|t| t.priority).max().unwrap_or(0);
                let work = self.alloc.fleet.pools[pool].work(f64::from(r.input), self.expected_out(i));
                match self.alloc.load(pool).try_reserve(work, 0.0) {
                    Some(res) => self.start(i, t, pool, 1.0, Some(res), false),
                    None if tier == top => self.start(i, t, pool, 1.0, None, false),
                    None => self.fates[i] = Some(Fate::Refused),
                }
            }
            // Served as planned: at once, or batch work from its planned slot.
            Policy::Hindsight => match self.plan.get(i).copied().flatten() {
                Some(p) if self.deferrable(class) && p.start_s > t => self.push(p.start_s, Ev::Start(i)),
                Some(p) => self.start(i, t, p.pool, p.quality, None, false),
                None => self.fates[i] = Some(Fate::Refused),
            },
            Policy::Quota => {
                if self.quotas.take(i, class, t, f64::from(r.input) + self.expected_out(i)) {
                    self.start(i, t, pool, 1.0, None, false)
                } else {
                    self.fates[i] = Some(Fate::Refused)
                }
            }
            Policy::BidPrice => {
                if !self.try_admit(i, t, false) {
                    // It waits for its price, as long as its tier lets it (see `patience_s`).
                    let deadline = self.deadline(i);
                    if deadline > t {
                        let (density, window) = (self.density(i), self.window(i));
                        self.waiting_defer[pool].push(i as u64, density, window, deadline);
                    } else {
                        self.fates[i] = Some(Fate::Refused);
                    }
                }
            }
        }
    }

    fn start(&mut self, i: usize, t: f64, pool: usize, quality: f64, res: Option<Reservation>, deferred: bool) {
        let r = &self.reqs[i];
        let id = self.next_id;
        self.next_id += 1;
        let loads: Vec<u32> = self.pools[pool].iter().map(|x| x.outstanding).collect();
        let up: Vec<bool> = self.pools[pool].iter().map(|x| x.up).collect();
        let Some(ri) = self.placers[pool].choose(&r.hashes, &loads, &up) else {
            self.fates[i] = Some(Fate::Refused);
            return;
        };
        let rep = &mut self.pools[pool][ri];
        let sub = Submission {
            id,
            prompt_tokens: r.input.max(1),
            block_hashes: r.hashes.clone(),
            output_tokens: r.output.max(1),
        };
        if rep.engine.submit(sub).is_err() {
            self.fates[i] = Some(Fate::Refused);
            return;
        }
        rep.outstanding += 1;
        self.live.insert(
            id,
            Live { req: i, pool, replica: ri, started: t, quality, first: None, deferred, reservation: res },
        );
        if !rep.busy {
            self.kick(t, pool, ri);
        }
    }

    /// Starts the replica's next step at `t`, if it has work.
    fn kick(&mut self, t: f64, pool: usize, ri: usize) {
        let rep = &mut self.pools[pool][ri];
        match rep.engine.step() {
            Some(step) => {
                rep.pending = step.events;
                rep.busy = true;
                self.push(t + step.duration, Ev::Step(pool, ri));
            }
            None => rep.busy = false,
        }
    }

    fn step_done(&mut self, t: f64, pool: usize, ri: usize) {
        if !self.pools[pool][ri].up {
            return;
        }
        let events = std::mem::take(&mut self.pools[pool][ri].pending);
        for ev in events {
            let Event::Token { id, index, last, .. } = ev else { continue };
            let Some(l) = self.live.get_mut(&id) else { continue };
            if index == 0 {
                l.first = Some(t);
                if let Some(q) = l.reservation.as_mut().and_then(|r| r.first_token()) {
                    self.alloc.observe_first_token(l.pool, q, t - l.started);
                }
            }
            if last {
                let l = self.end(id);
                let at = self.reqs[l.req].at;
                let key = self.key(self.reqs[l.req].class);
                self.alloc.observe_finish(key, f64::from(self.reqs[l.req].output));
                self.quotas.settle(l.req, f64::from(self.reqs[l.req].input + self.reqs[l.req].output));
                self.alloc.observe_lifetime_at(l.pool, t, t - l.started);
                self.fates[l.req] = Some(Fate::Served {
                    pool: l.pool,
                    quality: l.quality,
                    ttft: l.first.unwrap_or(t) - at,
                    e2e: t - at,
                    deferred: l.deferred,
                });
            }
        }
        self.kick(t, pool, ri);
    }

    fn tick(&mut self, t: f64) {
        if self.policy == Policy::BidPrice {
            self.alloc.correct_prices();
            // Deferred work is priced again, the most willing to pay first, as the gateway's
            // deferral queue does: until one does not clear; past its deadline it is refused.
            for p in 0..self.waiting_defer.len() {
                for i in self.waiting_defer[p].take_expired(t) {
                    self.fates[i as usize] = Some(Fate::Refused);
                }
                let low = self.alloc.low_price(p);
                while let Some(i) = self.waiting_defer[p].head(t, low) {
                    if !self.try_admit(i as usize, t, true) {
                        break;
                    }
                    self.waiting_defer[p].remove(i);
                }
            }
        }
        let second = t.fract() < TICK_S;
        if second {
            self.drop_stale(t);
        }
        if second {
            for (p, load) in self.alloc.loads().enumerate() {
                let reps = &self.pools[p];
                self.prices.push(PoolSample {
                    t,
                    pool: p,
                    price: self.alloc.price(p),
                    room_use: load.utilisation(),
                    kv_use: reps.iter().map(|r| r.engine.load().kv_usage).sum::<f64>() / reps.len().max(1) as f64,
                    waiting: reps.iter().map(|r| r.engine.load().waiting).sum(),
                });
            }
        }
        self.push(t + TICK_S, Ev::Tick);
    }

    /// Pool `pool` loses its last replica still up: what it holds is lost (its reservations freed).
    fn lose(&mut self, pool: usize) {
        let Some(ri) = self.pools[pool].iter().rposition(|r| r.up) else { return };
        let rep = &mut self.pools[pool][ri];
        rep.up = false;
        rep.busy = false;
        rep.pending.clear();
        let lost: Vec<u64> =
            self.live.iter().filter(|(_, l)| l.pool == pool && l.replica == ri).map(|(id, _)| *id).collect();
        for id in lost {
            self.pools[pool][ri].engine.abort(id);
            let l = self.end(id);
            self.fates[l.req] = Some(Fate::Dropped);
        }
    }

    /// Requests that have not started within the queue timeout of their submission to an engine
    /// are dropped (a client gives up). Checked once a simulated second.
    fn drop_stale(&mut self, t: f64) {
        let timeout = self.sc.queue_timeout_s;
        let stale: Vec<u64> =
            self.live.iter().filter(|(_, l)| l.first.is_none() && t - l.started > timeout).map(|(id, _)| *id).collect();
        for id in stale {
            let l = self.end(id);
            for rep in &mut self.pools[l.pool] {
                rep.engine.abort(id);
            }
            self.fates[l.req] = Some(Fate::Dropped);
        }
    }

    /// Request `id` leaves its replica (served, dropped or lost).
    fn end(&mut self, id: u64) -> Live {
        let l = self.live.remove(&id).expect("present");
        let rep = &mut self.pools[l.pool][l.replica];
        rep.outstanding = rep.outstanding.saturating_sub(1);
        l
    }

    fn solve(&mut self, t: f64) {
        if let Err(e) = self.alloc.solve_at(&self.cfg, t) {
            tracing::warn!(error = %e, "simulated LP solve failed");
        }
        self.push(t + self.solve_s(), Ev::Solve);
    }

    /// The LP is re-solved at the configured interval, as the gateway does.
    fn solve_s(&self) -> f64 {
        self.cfg.admission.solve_interval_ms as f64 / 1000.0
    }
}
