//! The hindsight bound: the most value any policy could capture with every request known in
//! advance. It is the time-indexed linear program
//!
//! ```text
//! max  sum_j sum_o q_o v_j x_jo
//! s.t. sum_o x_jo <= 1                                   (each request served at most once)
//!      sum_t y_jot = x_jo,  sum_t z_jot = x_jo           (all its prefill and all its decode)
//!      y_jot = 0 outside [arrival_j, arrival_j + TTFT SLO_j]
//!      z_jot = 0 outside [arrival_j, arrival_j + deadline_j]   (e2e SLO or batch deadline)
//!      sum_j,o on p (a_jo y_jot + b_jo z_jot) <= C_p * slot   (each pool, each one-second slot)
//! ```
//!
//! with `a` and `b` the prefill and decode engine-seconds of the pool's work model, and `C_p` the
//! pool's capacity. It relaxes: knowledge of the future, integrality (a request may be served in
//! part), batching and queueing (a pool's capacity in a slot is fungible across requests, and a
//! request's work may be spread over any slots before its deadlines), and the engine's latency
//! (work done before its deadline is assumed to meet the SLO).
//!
//! It is solved in its dual, `min_mu sum_p,t C_p mu_pt + sum_j max(0, max_o q_o v_j - a_jo
//! min_{t in ttft window} mu_pt - b_jo min_{t in deadline window} mu_pt)`, by projected
//! subgradient descent. Every dual point with `mu >= 0` bounds the primal from above (weak
//! duality), so the figure reported (the least dual value found) is an upper bound however far the
//! descent went; its distance from the optimum is at most the gap to the greedy schedule, which
//! is reported with it.
//!
//! The greedy schedule is also a plan ([`Planned`]: which requests, on which pool, from which
//! slot) that the simulator replays through its engines (`Policy::Hindsight`): a clairvoyant
//! reference that is actually achievable with real batching and latency.

pub use super::plan::{Basis, Planned};
use super::request::SimRequest;
use super::scenario::Scenario;
use crate::allocator::pools::Fleet;
use serde::Serialize;

/// Width of a capacity slot, seconds.
const SLOT_S: f64 = 1.0;
/// Subgradient iterations per round.
const ITERATIONS: usize = 6000;
/// Rounds of descent and scheduling.
const ROUNDS: usize = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Bound {
    pub basis: Basis,
    /// The upper bound, USD.
    pub value_usd: f64,
    /// Value of a feasible schedule of the same program (greedy by value density), USD: the
    /// optimum lies between the two.
    pub feasible_usd: f64,
}

/// A hindsight bound with the feasible schedule it found.
#[derive(Debug, Clone)]
pub struct Solved {
    pub bound: Bound,
    /// Per request (in the replay's order), what the feasible schedule does; `None`: not served.
    pub plan: Vec<Option<Planned>>,
}

/// One way to serve a request: on `pool`, worth `value`, with `prefill` and `decode` work.
#[derive(Debug, Clone, Copy)]
struct Opt {
    pool: usize,
    quality: f64,
    value: f64,
    prefill: f64,
    decode: f64,
}

struct Item {
    opts: Vec<Opt>,
    start: usize,
    /// Last slot (inclusive) for the prefill and for the decode.
    prefill_end: usize,
    decode_end: usize,
}

/// Range minimum with its index, over a fixed array, in O(1) per query.
struct SparseMin {
    levels: Vec<Vec<usize>>,
}

impl SparseMin {
    fn new(v: &[f64]) -> Self {
        let mut levels = vec![(0..v.len()).collect::<Vec<_>>()];
        let mut w = 1;
        while 2 * w <= v.len() {
            let prev = levels.last().expect("level 0");
            let next = (0..=v.len() - 2 * w)
                .map(|i| {
                    let (a, b) = (prev[i], prev[i + w]);
                    if v[b] < v[a] {
                        b
                    } else {
                        a
                    }
                })
                .collect();
            levels.push(next);
            w *= 2;
        }
        Self { levels }
    }

    /// Index of the least value in `lo..=hi`.
    fn argmin(&self, v: &[f64], lo: usize, hi: usize) -> usize {
        let k = (usize::BITS - 1 - (hi - lo + 1).leading_zeros()) as usize;
        let (a, b) = (self.levels[k][lo], self.levels[k][hi + 1 - (1 << k)]);
        if v[b] < v[a] {
            b
        } else {
            a
        }
    }
}

fn items(sc: &Scenario, fleet: &Fleet, reqs: &[SimRequest]) -> Result<(Vec<Item>, usize), super::error::SimError> {
    let cfg = sc.gateway_config()?;
    let slot = |t: f64| (t / SLOT_S).floor().max(0.0) as usize;
    let mut horizon = 0;
    let mut out = Vec::with_capacity(reqs.len());
    for r in reqs {
        let class = &sc.classes[r.class];
        let tier = sc.tier(&class.tier);
        let own = fleet.pool(&class.pool).ok_or("class names an unknown pool")?;
        let full = super::run::full_value(sc, &cfg, r);
        let mut pools = vec![(own, 1.0)];
        if let Some(spec) = sc.pools.iter().find(|p| p.name == class.pool) {
            for fb in &spec.fallbacks {
                pools.push((fleet.pool(&fb.model).ok_or("fallback names an unknown pool")?, fb.quality));
            }
        }
        // Deferrable work is not downgraded (it waits for the pool it asked for).
        if tier.is_some_and(|t| t.deferrable) {
            pools.truncate(1);
        }
        let opts = pools
            .into_iter()
            .map(|(p, q)| {
                let (prefill, decode) = fleet.pools[p].work_parts(f64::from(r.input), f64::from(r.output));
                Opt { pool: p, quality: q, value: q * full, prefill, decode }
            })
            .collect();
        let ms = |m: u64| m as f64 / 1000.0;
        let mut deadline = tier.and_then(|t| t.e2e_slo_ms).map(ms).unwrap_or(f64::INFINITY);
        if tier.is_some_and(|t| t.deferrable) {
            deadline = deadline.min(ms(tier.map(|t| t.deadline_ms).unwrap_or(0)));
        }
        let deadline = if deadline.is_finite() { deadline } else { 3600.0 };
        let ttft = tier.and_then(|t| t.ttft_slo_ms).map(ms).unwrap_or(deadline).min(deadline);
        let item = Item { opts, start: slot(r.at), prefill_end: slot(r.at + ttft), decode_end: slot(r.at + deadline) };
        horizon = horizon.max(item.decode_end + 1);
        out.push(item);
    }
    Ok((out, horizon))
}

/// The hindsight bound on `basis` capacity.
pub fn bound(sc: &Scenario, reqs: &[SimRequest], basis: Basis) -> Result<Bound, super::error::SimError> {
    Ok(solve(sc, reqs, basis)?.bound)
}

/// The hindsight bound on `basis` capacity and the best feasible schedule found, as a plan.
pub fn solve(sc: &Scenario, reqs: &[SimRequest], basis: Basis) -> Result<Solved, super::error::SimError> {
    let cfg = sc.gateway_config()?;
    let fleet = Fleet::from_config(&cfg)?;
    let (items, horizon) = items(sc, &fleet, reqs)?;
    let cap: Vec<f64> =
        fleet.pools.iter().map(|p| SLOT_S * if basis == Basis::SlaSafe { p.capacity() } else { p.engines }).collect();
    // A schedule steers the descent; the prices it finds then steer a better schedule.
    let (mut feasible, mut plan) = greedy(&items, &cap, &vec![vec![0.0; horizon]; cap.len()]);
    let mut upper = f64::INFINITY;
    for _ in 0..ROUNDS {
        let (u, mu) = descend(&items, &cap, horizon, feasible);
        upper = upper.min(u);
        let (f, p) = greedy(&items, &cap, &mu);
        if f > feasible {
            (feasible, plan) = (f, p);
        }
    }
    Ok(Solved { bound: Bound { basis, value_usd: upper.max(feasible), feasible_usd: feasible }, plan })
}

/// The dual value at `mu`, and its subgradient.
fn dual(items: &[Item], cap: &[f64], mu: &[Vec<f64>], grad: &mut [Vec<f64>]) -> f64 {
    let tables: Vec<SparseMin> = mu.iter().map(|m| SparseMin::new(m)).collect();
    let mut total: f64 = cap.iter().zip(mu).map(|(c, m)| c * m.iter().sum::<f64>()).sum();
    for (g, c) in grad.iter_mut().zip(cap) {
        g.iter_mut().for_each(|x| *x = *c);
    }
    for it in items {
        let mut best: Option<(f64, usize, usize, usize, Opt)> = None;
        for o in &it.opts {
            let (m, t) = (&mu[o.pool], &tables[o.pool]);
            let t1 = t.argmin(m, it.start, it.prefill_end);
            let t2 = t.argmin(m, it.start, it.decode_end);
            let net = o.value - o.prefill * m[t1] - o.decode * m[t2];
            if net > 0.0 && best.is_none_or(|b| net > b.0) {
                best = Some((net, o.pool, t1, t2, *o));
            }
        }
        if let Some((net, p, t1, t2, o)) = best {
            total += net;
            grad[p][t1] -= o.prefill;
            grad[p][t2] -= o.decode;
        }
    }
    total
}

/// Projected subgradient descent on the dual with Polyak steps towards the feasible value; the
/// least dual value met and its prices.
fn descend(items: &[Item], cap: &[f64], horizon: usize, feasible: f64) -> (f64, Vec<Vec<f64>>) {
    let mut mu = vec![vec![0.0; horizon]; cap.len()];
    let mut grad = mu.clone();
    let mut best = f64::INFINITY;
    let mut best_mu = mu.clone();
    let mut theta = 1.0;
    let mut since_best = 0;
    for _ in 0..ITERATIONS {
        let d = dual(items, cap, &mu, &mut grad);
        if d < best - 1e-12 {
            best = d;
            best_mu.clone_from(&mu);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= 400 {
                theta /= 2.0;
                since_best = 0;
            }
        }
        let norm: f64 = grad.iter().flatten().map(|g| g * g).sum();
        if norm <= 0.0 || d - feasible <= 1e-9 * d.abs().max(1.0) {
            break;
        }
        // Aim between the best dual and the feasible value (the optimum lies there).
        let target = feasible + 0.5 * (best - feasible);
        let step = theta * (d - target).max(0.0) / norm;
        for (m, g) in mu.iter_mut().zip(&grad) {
            for (x, gi) in m.iter_mut().zip(g) {
                *x = (*x - step * gi).max(0.0);
            }
        }
    }
    (best, best_mu)
}

/// A feasible schedule: requests by value per engine-second, densest first, each placed whole on
/// the option that nets most at prices `mu` and still fits, its prefill and decode in the slots of
/// its windows that are cheapest at `mu` (earliest first among equals). Returns its value and,
/// per item, what it does with it.
fn greedy(items: &[Item], cap: &[f64], mu: &[Vec<f64>]) -> (f64, Vec<Option<Planned>>) {
    let mut plan = vec![None; items.len()];
    let mut free: Vec<Vec<f64>> = mu.iter().zip(cap).map(|(m, c)| vec![*c; m.len()]).collect();
    let mut order: Vec<(f64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let d = it.opts.iter().map(|o| o.value / (o.prefill + o.decode).max(1e-12)).fold(0.0, f64::max);
            (d, i)
        })
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut total = 0.0;
    for (_, i) in order {
        let it = &items[i];
        let slots = |p: usize, end: usize| {
            let mut v: Vec<usize> = (it.start..=end).collect();
            v.sort_by(|&a, &b| mu[p][a].total_cmp(&mu[p][b]).then(a.cmp(&b)));
            v
        };
        let mut opts: Vec<(f64, Opt)> = it
            .opts
            .iter()
            .map(|o| {
                let m = &mu[o.pool];
                let cheapest = |end: usize| m[it.start..=end].iter().copied().fold(f64::INFINITY, f64::min);
                (o.value - o.prefill * cheapest(it.prefill_end) - o.decode * cheapest(it.decode_end), *o)
            })
            .collect();
        opts.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (_, o) in opts {
            let (pre, dec) = (slots(o.pool, it.prefill_end), slots(o.pool, it.decode_end));
            let f = &mut free[o.pool];
            let mut trial = f.clone();
            if take(&mut trial, &pre, o.prefill) && take(&mut trial, &dec, o.decode) {
                // The first slot this request's work took.
                let first = pre.iter().chain(&dec).filter(|&&s| trial[s] < f[s]).min().copied().unwrap_or(it.start);
                *f = trial;
                total += o.value;
                plan[i] = Some(Planned { pool: o.pool, quality: o.quality, start_s: first as f64 * SLOT_S });
                break;
            }
        }
    }
    (total, plan)
}

/// Takes `work` from `slots` in order; false (with `free` partly taken) if it does not fit.
fn take(free: &mut [f64], slots: &[usize], mut work: f64) -> bool {
    for &s in slots {
        if work <= 1e-12 {
            break;
        }
        let t = free[s].min(work);
        free[s] -= t;
        work -= t;
    }
    work <= 1e-12
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(start: usize, end: usize, opts: &[(usize, f64, f64)]) -> Item {
        Item {
            opts: opts
                .iter()
                .map(|&(pool, value, work)| Opt { pool, quality: 1.0, value, prefill: work, decode: 0.0 })
                .collect(),
            start,
            prefill_end: end,
            decode_end: end,
        }
    }

    #[test]
    fn bound_matches_a_knapsack_solved_by_hand() {
        // One pool of 1 engine-second per slot, two slots. Three requests each want 1 engine-second
        // in slot 0 only (worth 3, 2, 1) and one may use either slot (worth 1.5): the optimum
        // serves 3 in slot 0 and 1.5 in slot 1 = 4.5.
        let items = vec![
            item(0, 0, &[(0, 3.0, 1.0)]),
            item(0, 0, &[(0, 2.0, 1.0)]),
            item(0, 0, &[(0, 1.0, 1.0)]),
            item(0, 1, &[(0, 1.5, 1.0)]),
        ];
        let cap = [1.0];
        let (feasible, plan) = greedy(&items, &cap, &[vec![0.0; 2]]);
        assert_eq!(plan.iter().map(|p| p.map(|p| p.start_s)).collect::<Vec<_>>(), [Some(0.0), None, None, Some(1.0)]);
        let (upper, _) = descend(&items, &cap, 2, feasible);
        assert!((feasible - 4.5).abs() < 1e-9, "{feasible}");
        assert!((4.5 - 1e-9..4.5 * 1.01).contains(&upper), "{upper}");
    }

    #[test]
    fn any_dual_point_bounds_the_greedy_schedule() {
        // Two pools, a downgrade option worth less: whatever mu, the dual is above the schedule.
        let items: Vec<Item> = (0..50)
            .map(|i| item(i % 7, i % 7 + 2, &[(0, 1.0 + (i % 5) as f64, 0.6), (1, 0.5 + (i % 3) as f64, 0.2)]))
            .collect();
        let cap = [1.0, 0.5];
        let (feasible, _) = greedy(&items, &cap, &[vec![0.0; 10], vec![0.0; 10]]);
        let mut grad = vec![vec![0.0; 10]; 2];
        for scale in [0.0, 0.5, 2.0, 10.0] {
            let mu: Vec<Vec<f64>> = (0..2).map(|p| (0..10).map(|t| scale * ((t + p) % 3) as f64).collect()).collect();
            assert!(dual(&items, &cap, &mu, &mut grad) >= feasible - 1e-9);
        }
        let (upper, mu) = descend(&items, &cap, 10, feasible);
        assert!(upper >= feasible - 1e-9);
        assert!(upper >= greedy(&items, &cap, &mu).0 - 1e-9);
    }
}
