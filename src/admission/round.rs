//! One admission round for one request: the entry point the gateway and the simulator both call,
//! so a change to the policy is one edit and the two drivers cannot drift. It builds the
//! candidates from the allocator (the router's estimate, if any, as the fallbacks' quality),
//! asks [`super::decide`], and for a request it serves reserves the capacity in this process's
//! view of the pool. What a driver does around it (the shared-state step across replicas,
//! waiting in the deferral queue, the refusal's response) stays with the driver.

use super::defer::Window;
use super::reservation::Reservation;
use super::{decide, Ask, Candidate, Decision};
use crate::allocator::forecast::ClassKey;
use crate::allocator::Allocator;
use crate::config::Config;

/// What admission knows of one request: only what the gateway would see.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub class: &'a ClassKey,
    /// Prompt tokens, and the output expected (the forecast, capped by `max_tokens`).
    pub input: f64,
    pub output: f64,
    /// Its value served by the model asked for, USD.
    pub value: f64,
    /// Its tier's time-to-first-token objective, seconds (infinite when it has none).
    pub ttft_slo_s: f64,
    /// For work that may wait: its window, and the time now on the same clock.
    pub wait: Option<(Window, f64)>,
    /// The router's probability that a fallback's answer is as good, if a router is configured.
    pub p_weak: Option<f64>,
}

/// How one round ended.
#[derive(Debug)]
pub enum Outcome {
    /// Serve on `cand`; its capacity is reserved (released when the reservation drops).
    Serve { cand: Candidate, reservation: Reservation, downgraded: bool, net: f64, price: f64 },
    /// The policy would serve, but another request took the room meanwhile: price again.
    Contended,
    /// Deferrable work whose price has not cleared: wait in the pool's queue.
    Defer,
    /// Not worth serving now; `quote_per_1k` USD per 1,000 tokens would have been.
    Refuse { quote_per_1k: f64, price: f64 },
}

/// A round's outcome and the candidate for the model asked for (quotes and queues use it).
#[derive(Debug)]
pub struct Round {
    pub asked: Candidate,
    pub outcome: Outcome,
}

/// Runs one round; `None` when the requested model is not capacity-managed.
pub fn round(alloc: &Allocator, cfg: &Config, req: &Request) -> Option<Round> {
    let mut cands = alloc.candidates(cfg, req.class, req.input, req.output, req.wait.is_some())?;
    if let Some(p) = req.p_weak {
        crate::routing::apply(p, &mut cands);
    }
    let asked = *cands.first()?;
    // Work that may wait is judged at the moment its first token would come: what is left of
    // its window then (it is offered only the pool asked for).
    let window_left = req.wait.map(|(w, now)| w.left(now + asked.ttft_s));
    let ask = Ask { value: req.value, tokens: req.input + req.output, window_left, ttft_slo_s: req.ttft_slo_s };
    let outcome = match decide(&ask, &cands) {
        Decision::Serve { index, downgraded, net, price } => {
            let cand = cands[index];
            match alloc.load(cand.pool).try_reserve(cand.work, cand.prefill) {
                Some(reservation) => Outcome::Serve { cand, reservation, downgraded, net, price },
                None => Outcome::Contended,
            }
        }
        Decision::Defer { .. } => Outcome::Defer,
        Decision::Refuse { quote_per_1k, price } => Outcome::Refuse { quote_per_1k, price },
    };
    Some(Round { asked, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(replicas: u32) -> Config {
        crate::config::one_pool_for_tests(replicas)
    }

    fn request(class: &ClassKey, work: f64, value: f64) -> Request<'_> {
        Request { class, input: work, output: work, value, ttft_slo_s: f64::INFINITY, wait: None, p_weak: None }
    }

    #[test]
    fn a_round_reserves_what_it_serves_and_gives_it_back_on_drop() {
        let cfg = cfg(1);
        let alloc = Allocator::new(&cfg).unwrap();
        let class = ClassKey::new("a", "m");
        let req = request(&class, 100.0, 1.0);
        let r = round(&alloc, &cfg, &req).expect("managed");
        let Outcome::Serve { cand, reservation, downgraded, .. } = r.outcome else { panic!("{:?}", r.outcome) };
        assert!(!downgraded);
        assert_eq!(cand.pool, 0);
        assert!(alloc.load(0).inflight() > 0.0);
        drop(reservation);
        assert_eq!(alloc.load(0).inflight(), 0.0);
    }

    #[test]
    fn an_unmanaged_model_has_no_round_and_a_full_pool_refuses_with_a_quote() {
        let cfg = cfg(1);
        let alloc = Allocator::new(&cfg).unwrap();
        let other = ClassKey::new("a", "nope");
        let req = request(&other, 1.0, 1.0);
        assert!(round(&alloc, &cfg, &req).is_none());
        let class = ClassKey::new("a", "m");
        // Far more work than the pool's room: no candidate fits.
        let huge = request(&class, 1e9, 1e9);
        let r = round(&alloc, &cfg, &huge).unwrap();
        assert!(matches!(r.outcome, Outcome::Refuse { .. }), "{:?}", r.outcome);
        assert_eq!(alloc.load(0).inflight(), 0.0);
    }
}
