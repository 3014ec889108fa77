//! Robustness runs: the same scenario with its traffic changed mid-trace in ways a forecast has
//! not seen, to check that bid prices keep beating the baselines when the world moves: a
//! tenant's rate doubling, a new tenant arriving, output lengths mis-forecast by 2x either way.
//! A replica lost mid-run is a change to the fleet, not the traffic: a scenario's `[[outages]]`.

use super::request::SimRequest;
use rand::{Rng, SeedableRng};

/// A change to a replay's requests from `at_s` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Perturbation {
    /// Class `class` sends twice as many requests (each of its requests gets a twin shortly after).
    RateDoubles { class: usize },
    /// Class `class` is new: it sends nothing before `at_s`.
    NewTenant { class: usize },
    /// Every output is `factor` times as long as the trace says (the forecast learned the old).
    OutputsScaled { factor: f64 },
}

impl Perturbation {
    pub fn name(&self) -> String {
        match self {
            Perturbation::RateDoubles { class } => format!("class {class}'s rate doubles"),
            Perturbation::NewTenant { class } => format!("class {class} arrives"),
            Perturbation::OutputsScaled { factor } => format!("outputs x{factor}"),
        }
    }
}

/// `reqs` changed by `p` from `at_s` on (still in arrival order).
pub fn apply(reqs: &[SimRequest], p: Perturbation, at_s: f64) -> Vec<SimRequest> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut out: Vec<SimRequest> = Vec::with_capacity(reqs.len() * 2);
    for r in reqs {
        let late = r.at >= at_s;
        match p {
            Perturbation::RateDoubles { class } => {
                out.push(r.clone());
                if late && r.class == class {
                    out.push(SimRequest { at: r.at + rng.random_range(0.0..1.0), ..r.clone() });
                }
            }
            Perturbation::NewTenant { class } => {
                if late || r.class != class {
                    out.push(r.clone());
                }
            }
            Perturbation::OutputsScaled { factor } => {
                let mut r = r.clone();
                if late {
                    r.output = ((f64::from(r.output) * factor).round() as u32).max(1);
                    r.max_tokens = r.max_tokens.map(|m| ((f64::from(m) * factor).round() as u32).max(1));
                }
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.at.total_cmp(&b.at));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs() -> Vec<SimRequest> {
        (0..10)
            .map(|i| SimRequest { class: i % 2, at: i as f64, input: 10, output: 20, max_tokens: None, hashes: vec![] })
            .collect()
    }

    #[test]
    fn each_change_starts_at_its_time() {
        let r = reqs();
        let doubled = apply(&r, Perturbation::RateDoubles { class: 1 }, 5.0);
        assert_eq!(doubled.len(), 10 + 3); // class 1 from 5.0 on: requests 5, 7 and 9
        assert!(doubled.windows(2).all(|w| w[0].at <= w[1].at));
        let new = apply(&r, Perturbation::NewTenant { class: 0 }, 5.0);
        assert!(new.iter().all(|x| x.class != 0 || x.at >= 5.0) && new.len() == 7);
        let long = apply(&r, Perturbation::OutputsScaled { factor: 2.0 }, 5.0);
        assert!(long.iter().all(|x| x.output == if x.at >= 5.0 { 40 } else { 20 }));
    }
}
