//! The plan: the linear program of BRIEF.md section 3, solved with Clarabel, whose duals are the
//! shadow prices that admission charges.
//!
//! maximise   sum_k,p (q_kp v_k - cost_p w_kp) x_kp
//! subject to sum_k w_kp x_kp            <= rho_p n_p T   (pool p, dual lambda_p)
//!            sum_p x_kp                 <= d_k T         (class k, dual mu_k)
//!            sum_p watts_p W_p           <= P_s T        (site s,  dual pi_s)
//!            x_kp >= reserved_kp, x_kp >= 0
//! where x_kp is requests of class k served by pool p over the horizon T, and W_p the
//! engine-seconds planned on pool p.
//!
//! The matrix is built column by column straight into Clarabel's compressed-column form. Options
//! that cannot earn (no margin, no reserved floor) and classes with no demand are left out before
//! the solve: they are zero at every optimum, and the prices stay optimal for the full problem
//! (such an option's reduced cost is its margin less non-negative prices). A left-out class's
//! surplus is read off the prices afterwards.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT};

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

/// One column of the LP: option `option` of class `class`.
struct Column {
    class: usize,
    option: usize,
    margin: f64,
    floor: f64,
}

/// Solves the plan over a horizon of `horizon` seconds, from scratch.
pub fn solve(pools: &[LpPool], site_caps: &[f64], classes: &[LpClass], horizon: f64) -> Result<Plan, LpError> {
    Planner::default().solve(pools, site_caps, classes, horizon)
}

/// Solves plan after plan (the gateway re-solves every interval as demand moves). When a problem
/// has the shape of the last one (the same columns and rows), the solver is kept and only its data
/// replaced: the fill-reducing ordering, the symbolic factorisation and the allocations are
/// reused; the interior-point iterations start afresh, so the answer is the same as a cold solve.
#[derive(Default)]
pub struct Planner {
    last: Option<Warm>,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner").field("warm", &self.last.is_some()).finish()
    }
}

/// A solver set up for one problem shape.
struct Warm {
    colptr: Vec<usize>,
    rowval: Vec<usize>,
    equalities: usize,
    solver: DefaultSolver<f64>,
}

impl Planner {
    /// Solves the plan over a horizon of `horizon` seconds.
    pub fn solve(
        &mut self,
        pools: &[LpPool],
        site_caps: &[f64],
        classes: &[LpClass],
        horizon: f64,
    ) -> Result<Plan, LpError> {
        let t = horizon;
        let columns = columns(pools, classes, t);
        // Variables: one per column, then the engine-seconds W_p of each pool a column uses.
        // Rows: W_p = sum of its columns' work (equalities), then W_p's capacity, the classes'
        // demand, the sites' power (over W_p, so a site row has a handful of entries, not one per
        // column: that keeps the factorisation sparse), and each column's lower bound. Only rows
        // that a column touches exist.
        let mut touched = (vec![false; pools.len()], vec![false; classes.len()], vec![false; site_caps.len()]);
        for c in &columns {
            let o = &classes[c.class].options[c.option];
            touched.0[o.pool] = true;
            touched.1[c.class] = true;
            if let Some(s) = pools[o.pool].site.filter(|s| *s < site_caps.len()) {
                touched.2[s] = true;
            }
        }
        let mut b = Vec::new();
        let work_row = rows(&touched.0, pools.iter().map(|_| 0.0), &mut b);
        let equalities = b.len();
        let pool_row = rows(&touched.0, pools.iter().map(|p| p.capacity * t), &mut b);
        let class_row = rows(&touched.1, classes.iter().map(|c| c.rate * t), &mut b);
        let site_row = rows(&touched.2, site_caps.iter().map(|c| c * t), &mut b);
        let bounds = b.len();
        let n = columns.len() + equalities;
        let mut a = Columns::with_capacity(n);
        let mut q = Vec::with_capacity(n);
        for (j, c) in columns.iter().enumerate() {
            let o = &classes[c.class].options[c.option];
            a.entry(work_row[o.pool], o.work);
            a.entry(class_row[c.class], 1.0);
            a.entry(Some(bounds + j), -1.0);
            a.close();
            q.push(-c.margin);
            b.push(-c.floor);
        }
        for (p, pool) in pools.iter().enumerate().filter(|(p, _)| touched.0[*p]) {
            a.entry(work_row[p], -1.0);
            a.entry(pool_row[p], 1.0);
            if let Some(s) = pool.site.filter(|s| *s < site_caps.len()) {
                a.entry(site_row[s], pool.watts);
            }
            a.close();
            q.push(0.0);
        }
        let (xs, z) = if n == 0 { (Vec::new(), vec![0.0; b.len()]) } else { self.run(&q, a, &b, equalities)? };
        // Duals of a maximisation's <= rows are non-negative; clamp solver noise.
        let clean = |d: f64| if d.abs() < 1e-9 { 0.0 } else { d.abs() };
        let dual = |row: &Option<usize>| row.map(|r| clean(z[r])).unwrap_or(0.0);
        let lambda: Vec<f64> = pool_row.iter().map(dual).collect();
        let pi: Vec<f64> = site_row.iter().map(dual).collect();
        let mut rate: Vec<Vec<f64>> = classes.iter().map(|c| vec![0.0; c.options.len()]).collect();
        let mut objective = 0.0;
        for (c, v) in columns.iter().zip(&xs) {
            let v = v.max(0.0);
            rate[c.class][c.option] = v / t;
            objective += c.margin * v / t;
        }
        let mu = classes
            .iter()
            .zip(&class_row)
            .map(|(c, row)| match row {
                Some(r) => clean(z[*r]),
                None => surplus(pools, c, &lambda, &pi),
            })
            .collect();
        Ok(Plan { lambda, mu, pi, rate, objective })
    }

    /// Runs the solver on `q`, `a`, `b`, reusing the last set-up when the shape is unchanged.
    fn run(&mut self, q: &[f64], a: Columns, b: &[f64], equalities: usize) -> Result<(Vec<f64>, Vec<f64>), LpError> {
        let same = self.last.as_ref().is_some_and(|w| {
            w.equalities == equalities
                && w.colptr == a.colptr
                && w.rowval == a.rowval
                && w.solver.data.b.len() == b.len()
        });
        let updated = same
            && self.last.as_mut().is_some_and(|w| {
                let s = &mut w.solver;
                s.update_q(&q.to_vec()).is_ok() && s.update_A(&a.nzval).is_ok() && s.update_b(&b.to_vec()).is_ok()
            });
        if !updated {
            let (n, m) = (a.colptr.len() - 1, b.len());
            let settings = DefaultSettingsBuilder::default()
                .verbose(false)
                // Prices need about six significant digits, not Clarabel's default 1e-8.
                .tol_gap_abs(1e-7)
                .tol_gap_rel(1e-6)
                .tol_feas(1e-7)
                // Refinement of each KKT solve costs a third of the time and moves no price in
                // the sixth digit on the benchmark or the scenario suite.
                .iterative_refinement_enable(false)
                .build()
                .map_err(|e| LpError::Solver(format!("{e:?}")))?;
            let cones = [SupportedConeT::ZeroConeT(equalities), SupportedConeT::NonnegativeConeT(m - equalities)];
            let (colptr, rowval) = (a.colptr.clone(), a.rowval.clone());
            let solver = DefaultSolver::new(&CscMatrix::zeros((n, n)), q, &a.matrix(m), b, &cones, settings)
                .map_err(|e| LpError::Solver(format!("{e:?}")))?;
            self.last = Some(Warm { colptr, rowval, equalities, solver });
        }
        let w = self.last.as_mut().expect("set up above");
        w.solver.solve();
        let s = &w.solver.solution;
        if !matches!(s.status, SolverStatus::Solved | SolverStatus::AlmostSolved) {
            let status = format!("{:?}", s.status);
            self.last = None;
            return Err(LpError::Solver(status));
        }
        Ok((s.x.clone(), s.z.clone()))
    }
}

/// The columns worth a variable: options with a margin or a reserved floor, of classes with demand.
fn columns(pools: &[LpPool], classes: &[LpClass], t: f64) -> Vec<Column> {
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
    let mut out = Vec::new();
    for (k, c) in classes.iter().enumerate() {
        if c.rate <= 0.0 {
            continue;
        }
        for (i, o) in c.options.iter().enumerate() {
            let floor = if i == 0 && o.work > 0.0 {
                (c.reserved.min(c.rate * o.work) * scale[o.pool] * t / o.work) * 0.999
            } else {
                0.0
            };
            let margin = o.quality * c.value - pools[o.pool].cost * o.work;
            if margin > 0.0 || floor > 0.0 {
                out.push(Column { class: k, option: i, margin, floor });
            }
        }
    }
    out
}

/// A sparse matrix built column by column, rows ascending within a column.
struct Columns {
    colptr: Vec<usize>,
    rowval: Vec<usize>,
    nzval: Vec<f64>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        let mut colptr = Vec::with_capacity(n + 1);
        colptr.push(0);
        Self { colptr, rowval: Vec::with_capacity(4 * n), nzval: Vec::with_capacity(4 * n) }
    }

    fn entry(&mut self, row: Option<usize>, v: f64) {
        if let Some(r) = row {
            self.rowval.push(r);
            self.nzval.push(v);
        }
    }

    fn close(&mut self) {
        self.colptr.push(self.rowval.len());
    }

    fn matrix(self, m: usize) -> CscMatrix<f64> {
        CscMatrix::new(m, self.colptr.len() - 1, self.colptr, self.rowval, self.nzval)
    }
}

/// Numbers the touched rows in order, appending their right-hand sides to `b`.
fn rows(touched: &[bool], rhs: impl Iterator<Item = f64>, b: &mut Vec<f64>) -> Vec<Option<usize>> {
    touched
        .iter()
        .zip(rhs)
        .map(|(t, r)| {
            t.then(|| {
                b.push(r);
                b.len() - 1
            })
        })
        .collect()
}

/// A class's surplus per request over the prices of its best option (never negative).
fn surplus(pools: &[LpPool], c: &LpClass, lambda: &[f64], pi: &[f64]) -> f64 {
    c.options
        .iter()
        .map(|o| {
            let p = &pools[o.pool];
            let power = p.site.and_then(|s| pi.get(s)).map_or(0.0, |pi| pi * p.watts);
            o.quality * c.value - p.cost * o.work - o.work * (lambda[o.pool] + power)
        })
        .fold(0.0, f64::max)
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

    /// Strong duality on a problem with many classes and shared pools and sites: the planned
    /// value equals what the prices charge for the capacity, demand and power they price, and
    /// no option earns more than its class's surplus plus the prices it uses.
    #[test]
    fn prices_and_plan_are_both_optimal() {
        let pools: Vec<LpPool> = (0..10)
            .map(|p| LpPool {
                capacity: 1.0 + p as f64 * 0.3,
                cost: 0.0001,
                watts: 100.0 + p as f64,
                site: Some(p % 2),
            })
            .collect();
        let classes: Vec<LpClass> = (0..200)
            .map(|k| LpClass {
                rate: if k % 23 == 0 { 0.0 } else { 0.2 + (k % 13) as f64 * 0.05 },
                value: 0.0005 + (k % 17) as f64 * 0.0002,
                options: vec![
                    LpOption { pool: k % 10, quality: 1.0, work: 0.1 + (k % 11) as f64 * 0.02 },
                    LpOption { pool: (k + 3) % 10, quality: 0.7, work: 0.05 },
                    LpOption { pool: (k + 7) % 10, quality: 0.2, work: 0.5 },
                ],
                reserved: 0.0,
            })
            .collect();
        let sites = [600.0, 900.0];
        let plan = solve(&pools, &sites, &classes, 60.0).unwrap();
        let charged: f64 = plan.lambda.iter().zip(&pools).map(|(l, p)| l * p.capacity).sum::<f64>()
            + plan.mu.iter().zip(&classes).map(|(m, c)| m * c.rate).sum::<f64>()
            + plan.pi.iter().zip(&sites).map(|(pi, s)| pi * s).sum::<f64>();
        assert!((charged - plan.objective).abs() <= 1e-4 * plan.objective, "{charged} vs {}", plan.objective);
        assert!(plan.lambda.iter().any(|l| *l > 0.0), "{plan:?}");
        for (c, mu) in classes.iter().zip(&plan.mu) {
            for o in &c.options {
                let p = &pools[o.pool];
                let price = o.work * (p.cost + plan.lambda[o.pool] + plan.pi[p.site.unwrap()] * p.watts);
                assert!(o.quality * c.value - price <= mu + 1e-6, "{c:?} {o:?} {plan:?}");
            }
        }
    }
}
