//! Cheaper-model routing: a learnt estimate, per prompt, of the probability that a cheaper
//! model's answer is as good as the one asked for. Admission uses it as the fallback's quality,
//! so the cut-off moves with prices: the dearer the asked-for pool, the more prompts the
//! cheaper model is trusted with. Trained and evaluated offline on RouteLLM's data
//! (`tollgate router train|eval`).

pub mod data;
pub mod eval;
pub mod features;
pub mod model;
pub mod placement;
pub mod select;

pub use model::RouterModel;

use crate::admission::Candidate;

/// Sets the quality of every fallback candidate (all but the first, the model asked for) to the
/// router's estimate that the cheaper model's answer is as good, kept within [0.01, 1].
pub fn apply(p_weak_as_good: f64, candidates: &mut [Candidate]) {
    let q = if p_weak_as_good.is_finite() { p_weak_as_good.clamp(0.01, 1.0) } else { 0.01 };
    for c in candidates.iter_mut().skip(1) {
        c.quality = q;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{decide, Ask, Decision};

    /// The cut-off moves with prices: at the same prompt estimate, a dear asked-for pool sends
    /// the request to the cheaper model and a cheap one keeps it.
    #[test]
    fn the_estimate_is_the_fallbacks_quality_and_the_cut_off_moves_with_price() {
        let cand = |pool, price| Candidate {
            pool,
            quality: 1.0,
            work: 1.0,
            prefill: 0.1,
            price,
            low_price: 0.0,
            room_left: 10.0,
            ttft_s: 0.1,
        };
        let ask = Ask { value: 1.0, tokens: 100.0, window_left: None, ttft_slo_s: f64::INFINITY };
        let route = |p: f64, big_price: f64| {
            let mut c = [cand(0, big_price), cand(1, 0.1)];
            apply(p, &mut c);
            decide(&ask, &c)
        };
        // Easy prompt (p = 0.9): downgraded once the big pool costs more than 0.2 of value.
        assert!(matches!(route(0.9, 0.05), Decision::Serve { index: 0, .. }));
        assert!(matches!(route(0.9, 0.3), Decision::Serve { index: 1, downgraded: true, .. }));
        // Hard prompt (p = 0.3): kept on the big pool at the same price.
        assert!(matches!(route(0.3, 0.3), Decision::Serve { index: 0, .. }));
        // Only under more scarcity does it go too.
        assert!(matches!(route(0.3, 0.85), Decision::Serve { index: 1, .. }));
        let mut c = [cand(0, 1.0), cand(1, 1.0)];
        apply(f64::NAN, &mut c);
        assert_eq!((c[0].quality, c[1].quality), (1.0, 0.01));
    }
}
