//! The plan: the linear program of BRIEF.md section 3, solved with Clarabel (through good_lp),
//! whose duals are the shadow prices that admission charges.
//!
//! maximise   sum_k,p (q_kp v_k - cost_p w_kp) x_kp
//! subject to sum_k w_kp x_kp            <= rho_p n_p T   (pool p, dual lambda_p)
//!            sum_p x_kp                 <= d_k T         (class k, dual mu_k)
//!            sum_p watts_p W_p           <= P_s T        (site s,  dual pi_s)
//!            x_kp >= reserved_kp, x_kp >= 0
//! where x_kp is requests of class k served by pool p over the horizon T, and W_p the
//! engine-seconds planned on pool p.

use good_lp::solvers::clarabel::clarabel;
use good_lp::solvers::DualValues;
use good_lp::{variable, variables, Expression, Solution, SolutionWithDual, SolverModel};

/// A pool as the LP sees it.
#[derive(Debug, Clone)]
pub struct LpPool {
    /// Engine-seconds per second that may be planned: rho_p x n_p.
    pub capacity: f64,
    /// USD per engine-second.
    pub cost: f64,
    pub watts: f64,
    pub site: Option<usize>,
}

/// One way a class may be served: on `pool`, keeping `quality` of the value, costing `work`
/// engine-seconds per request.
#[derive(Debug, Clone)]
pub struct LpOption {
    pub pool: usize,
    pub quality: f64,
    pub work: f64,
}

#[derive(Debug, Clone)]
pub struct LpClass {
    /// Requests per second (forecast).
    pub rate: f64,
    /// Mean value of a request, USD.
    pub value: f64,
    pub options: Vec<LpOption>,
    /// Engine-seconds per second reserved on the first option (the requested pool).
    pub reserved: f64,
}

/// The solution: the plan and its shadow prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// USD per engine-second of each pool: the value that its best displaced work would produce.
    pub lambda: Vec<f64>,
    /// USD per request of each class: its surplus over the pool prices.
    pub mu: Vec<f64>,
    /// USD per joule (watt-second) of each site's power cap; an engine-second on pool p costs
    /// `pi_s x watts_p` of it.
    pub pi: Vec<f64>,
    /// Requests per second planned for each class on each of its options.
    pub rate: Vec<Vec<f64>>,
    /// Planned value per second, USD.
    pub objective: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum LpError {
    #[error("the LP solver failed: {0}")]
    Solver(String),
}

/// Solves the plan over a horizon of `horizon` seconds.
pub fn solve(pools: &[LpPool], site_caps: &[f64], classes: &[LpClass], horizon: f64) -> Result<Plan, LpError> {
    let t = horizon;
    let mut vars = variables!();
    // Reserved floors, scaled down where they would exceed demand or a pool's capacity.
    let mut reserved_on_pool = vec![0.0; pools.len()];
    for c in classes {
        if let Some(o) = c.options.first() {
            reserved_on_pool[o.pool] += c.reserved.min(c.rate * o.work);
        }
    }
    let scale: Vec<f64> = pools
        .iter()
        .zip(&reserved_on_pool)
        .map(|(p, r)| if *r > p.capacity && *r > 0.0 { p.capacity / r } else { 1.0 })
        .collect();
    let mut x = Vec::with_capacity(classes.len());
    let mut objective = Expression::from(0.0);
    for c in classes {
        let mut row = Vec::with_capacity(c.options.len());
        for (i, o) in c.options.iter().enumerate() {
            let floor = if i == 0 && o.work > 0.0 {
                (c.reserved.min(c.rate * o.work) * scale[o.pool] * t / o.work) * 0.999
            } else {
                0.0
            };
            let v = vars.add(variable().min(floor));
            objective.add_mul(o.quality * c.value - pools[o.pool].cost * o.work, v);
            row.push(v);
        }
        x.push(row);
    }
    let mut model = vars.maximise(objective.clone()).using(clarabel);
    // Prices need about six significant digits, not Clarabel's default 1e-8: fewer iterations.
    model.settings().tol_gap_abs(1e-7).tol_gap_rel(1e-6).tol_feas(1e-7).verbose(false);
    let mut pool_rows: Vec<Expression> = vec![Expression::from(0.0); pools.len()];
    for (c, row) in classes.iter().zip(&x) {
        for (o, v) in c.options.iter().zip(row) {
            pool_rows[o.pool].add_mul(o.work, *v);
        }
    }
    let pool_refs: Vec<_> =
        pools.iter().zip(&pool_rows).map(|(p, e)| model.add_constraint(e.clone().leq(p.capacity * t))).collect();
    let class_refs: Vec<_> = classes
        .iter()
        .zip(&x)
        .map(|(c, row)| {
            let sum: Expression = row.iter().fold(Expression::from(0.0), |mut e, v| {
                e.add_mul(1.0, *v);
                e
            });
            model.add_constraint(sum.leq(c.rate * t))
        })
        .collect();
    let mut site_rows: Vec<Expression> = vec![Expression::from(0.0); site_caps.len()];
    let mut site_used = vec![false; site_caps.len()];
    for (c, row) in classes.iter().zip(&x) {
        for (o, v) in c.options.iter().zip(row) {
            if let Some(s) = pools[o.pool].site {
                site_rows[s].add_mul(pools[o.pool].watts * o.work, *v);
                site_used[s] = true;
            }
        }
    }
    let site_refs: Vec<_> = site_rows
        .into_iter()
        .zip(site_caps)
        .zip(&site_used)
        .map(|((e, cap), used)| used.then(|| model.add_constraint(e.leq(*cap * t))))
        .collect();
    let mut sol = model.solve().map_err(|e| LpError::Solver(e.to_string()))?;
    let rate: Vec<Vec<f64>> = x.iter().map(|row| row.iter().map(|v| sol.value(*v).max(0.0) / t).collect()).collect();
    let obj = sol.eval(&objective) / t;
    let dual = sol.compute_dual();
    // Duals of a maximisation's <= rows are non-negative; clamp solver noise.
    let clean = |d: f64| if d.abs() < 1e-9 { 0.0 } else { d.abs() };
    Ok(Plan {
        lambda: pool_refs.iter().map(|r| clean(dual.dual(r.clone()))).collect(),
        mu: class_refs.iter().map(|r| clean(dual.dual(r.clone()))).collect(),
        pi: site_refs.iter().map(|r| r.as_ref().map(|r| clean(dual.dual(r.clone()))).unwrap_or(0.0)).collect(),
        rate,
        objective: obj,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(capacity: f64) -> LpPool {
        LpPool { capacity, cost: 0.0, watts: 0.0, site: None }
    }

    fn class(rate: f64, value: f64, options: Vec<(usize, f64, f64)>) -> LpClass {
        LpClass {
            rate,
            value,
            options: options.into_iter().map(|(pool, quality, work)| LpOption { pool, quality, work }).collect(),
            reserved: 0.0,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-4 * (1.0 + b.abs())
    }

    /// One pool of 10 engine-s/s; A (value 5, 4/s) and B (value 2, 20/s), 1 engine-s each.
    /// Serve all of A and 6/s of B: B is the marginal class, so the pool's price is 2 per
    /// engine-second, A's surplus 5 - 2 = 3, B's none.
    #[test]
    fn the_marginal_class_sets_the_price() {
        let plan = solve(
            &[pool(10.0)],
            &[],
            &[class(4.0, 5.0, vec![(0, 1.0, 1.0)]), class(20.0, 2.0, vec![(0, 1.0, 1.0)])],
            60.0,
        )
        .unwrap();
        assert!(close(plan.rate[0][0], 4.0) && close(plan.rate[1][0], 6.0), "{plan:?}");
        assert!(close(plan.lambda[0], 2.0), "{plan:?}");
        assert!(close(plan.mu[0], 3.0) && close(plan.mu[1], 0.0), "{plan:?}");
        assert!(close(plan.objective, 4.0 * 5.0 + 6.0 * 2.0));
    }

    #[test]
    fn idle_capacity_is_free() {
        let plan = solve(&[pool(10.0)], &[], &[class(2.0, 5.0, vec![(0, 1.0, 1.0)])], 60.0).unwrap();
        assert!(close(plan.lambda[0], 0.0) && close(plan.mu[0], 5.0), "{plan:?}");
    }

    /// A big pool (capacity 2) and a small cheap one (capacity 10). Class A (value 10, work 1 on
    /// big; 0.8 quality on small, work 0.5) and class B (value 3, work 1 on big only). Demand far
    /// exceeds both pools, so A fills the small pool at 0.8 x 10 / 0.5 = 16 per engine-second
    /// and the big pool at 10 per engine-second: lambda_small = 16, lambda_big = 10.
    #[test]
    fn downgrades_price_the_cheaper_pool() {
        let plan = solve(
            &[pool(2.0), pool(10.0)],
            &[],
            &[class(100.0, 10.0, vec![(0, 1.0, 1.0), (1, 0.8, 0.5)]), class(100.0, 3.0, vec![(0, 1.0, 1.0)])],
            60.0,
        )
        .unwrap();
        assert!(close(plan.lambda[0], 10.0), "{plan:?}");
        assert!(close(plan.lambda[1], 16.0), "{plan:?}");
        assert!(close(plan.rate[0][1], 20.0) && close(plan.rate[0][0], 2.0) && close(plan.rate[1][0], 0.0), "{plan:?}");
    }

    /// Power: two pools at one site capped at 1,000 W; pool 0 draws 100 W per engine, pool 1
    /// draws 50 W. One class per pool, value density 4 and 3. Power, not engines, binds.
    #[test]
    fn a_site_power_cap_binds_and_is_priced() {
        let pools = [
            LpPool { capacity: 100.0, cost: 0.0, watts: 100.0, site: Some(0) },
            LpPool { capacity: 100.0, cost: 0.0, watts: 50.0, site: Some(0) },
        ];
        let plan = solve(
            &pools,
            &[1000.0],
            &[class(100.0, 4.0, vec![(0, 1.0, 1.0)]), class(100.0, 3.0, vec![(1, 1.0, 1.0)])],
            10.0,
        )
        .unwrap();
        // Per watt, pool 1 earns 3/50 = 0.06 and pool 0 4/100 = 0.04: all power goes to pool 1.
        assert!(close(plan.rate[1][0], 20.0) && plan.rate[0][0] < 1e-3, "{plan:?}");
        assert!(close(plan.pi[0], 0.06), "{plan:?}");
        assert!(close(plan.lambda[0], 0.0) && close(plan.lambda[1], 0.0));
    }

    #[test]
    fn reserved_capacity_is_served_even_when_others_pay_more() {
        let mut cheap = class(20.0, 1.0, vec![(0, 1.0, 1.0)]);
        cheap.reserved = 3.0;
        let plan = solve(&[pool(10.0)], &[], &[class(20.0, 5.0, vec![(0, 1.0, 1.0)]), cheap], 60.0).unwrap();
        assert!(plan.rate[1][0] >= 2.99 - 1e-3, "{plan:?}");
        assert!((plan.rate[0][0] - 7.0).abs() < 0.01, "{plan:?}");
    }
}
