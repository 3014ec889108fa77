//! Bid-price admission (BRIEF.md section 4): for a request, the net value on each pool that may
//! serve it is its value (kept at the pool's quality) minus the pool's price times the
//! engine-seconds it would take; serve on the best pool if that is non-negative and fits, defer
//! batch work, refuse the rest with a quote. Pure: no clock, no tokio; the gateway and the
//! simulator both call [`decide`].

pub mod defer;
pub mod reservation;
pub mod round;

/// What admission did with a request, as the ledger, the headers and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Admission did not run (off, an unmanaged model, or refused before it).
    None,
    Admit,
    /// Served on a cheaper model than the one asked for.
    Downgrade,
    /// Batch work held until its price cleared, then served.
    Defer,
    Refuse,
    /// Answered from the cache, without admission.
    Cache,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::None => "none",
            Verdict::Admit => "admit",
            Verdict::Downgrade => "downgrade",
            Verdict::Defer => "defer",
            Verdict::Refuse => "refuse",
            Verdict::Cache => "cache",
        }
    }
}

/// One pool a request could be served on, as priced now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub pool: usize,
    /// Share of the request's value kept on this pool (1 for the requested model).
    pub quality: f64,
    /// Engine-seconds the request would take here, and the prefill part of them.
    pub work: f64,
    pub prefill: f64,
    /// USD per engine-second: shadow price plus running cost plus power price.
    pub price: f64,
    /// The pool's lowest price over the last planning horizon (never below its running cost
    /// and power price): what work that may wait holds out for when it arrives (not read, and
    /// left 0, for work that cannot wait).
    pub low_price: f64,
    /// Engine-seconds the pool can still take in flight.
    pub room_left: f64,
    /// Estimated seconds to the first token here now (the prefill backlog, then its own).
    pub ttft_s: f64,
}

impl Candidate {
    pub fn net(&self, value: f64) -> f64 {
        self.quality * value - self.price * self.work
    }

    /// USD per 1,000 tokens at which a request of `tokens` would clear on this pool now.
    pub fn quote_per_1k(&self, tokens: f64) -> f64 {
        self.price * self.work / self.quality.max(1e-9) / tokens.max(1.0) * 1000.0
    }
}

/// What is being asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ask {
    /// Value of the request served by the model asked for, USD.
    pub value: f64,
    /// Tokens in and (expected) out, for the quote.
    pub tokens: f64,
    /// For work that may wait (batch lines, deferrable tiers): the share of its waiting window
    /// still ahead, 1 when it arrives and 0 at its deadline. `None`: served now or refused.
    pub window_left: Option<f64>,
    /// The tier's time-to-first-token objective, seconds (infinite when it has none): a pool
    /// that cannot meet it now is not offered.
    pub ttft_slo_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Serve on `candidates[index]`; `downgraded` when that is not the model asked for.
    Serve { index: usize, downgraded: bool, net: f64, price: f64 },
    /// Batch work that does not clear now: wait for cheaper capacity.
    Defer { best_net: f64 },
    /// Not worth serving now: `quote_per_1k` USD per 1,000 tokens would have been served.
    Refuse { quote_per_1k: f64, price: f64 },
}

impl Ask {
    pub fn deferrable(&self) -> bool {
        self.window_left.is_some()
    }

    /// The net value below which work that may wait holds out on `c`: the share of its window
    /// still ahead times its surplus at the pool's recent low price. Its reservation price thus
    /// rises linearly over the window, from the lowest price the pool had over the last horizon
    /// (on arrival it takes only capacity as cheap as the last valley's) to its own value
    /// density (at its deadline it takes whatever clears), the way a buyer with a deadline
    /// lowers what it holds out for as the time to find a lower price runs out. Zero for work
    /// that cannot wait.
    pub fn hold_out(&self, c: &Candidate) -> f64 {
        let left = self.window_left.unwrap_or(0.0).clamp(0.0, 1.0);
        left * (c.quality * self.value - c.low_price * c.work).max(0.0)
    }
}

/// Decides for one request. `candidates[0]` is the model asked for; the rest are fallbacks.
pub fn decide(ask: &Ask, candidates: &[Candidate]) -> Decision {
    let best = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.room_left >= c.work && c.ttft_s <= ask.ttft_slo_s)
        .map(|(i, c)| (i, c.net(ask.value), ask.hold_out(c)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
    match best {
        Some((index, net, hold_out)) if net >= hold_out => {
            Decision::Serve { index, downgraded: index != 0, net, price: candidates[index].price }
        }
        best if ask.deferrable() => Decision::Defer { best_net: best.map(|b| b.1).unwrap_or(f64::NEG_INFINITY) },
        _ => {
            // The value at which the asked-for model would clear now, per 1,000 tokens.
            let asked = candidates.first();
            Decision::Refuse {
                quote_per_1k: asked.map(|c| c.quote_per_1k(ask.tokens)).unwrap_or(0.0),
                price: asked.map(|c| c.price).unwrap_or(0.0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cand(pool: usize, quality: f64, work: f64, price: f64, room_left: f64) -> Candidate {
        Candidate { pool, quality, work, prefill: work / 2.0, price, low_price: 0.0, room_left, ttft_s: 0.0 }
    }

    #[test]
    fn a_pool_that_would_miss_the_ttft_objective_is_not_offered() {
        let ask = Ask { value: 1.0, tokens: 1000.0, window_left: None, ttft_slo_s: 3.0 };
        let slow = Candidate { ttft_s: 4.0, ..cand(0, 1.0, 1.0, 0.1, 10.0) };
        let quick = Candidate { ttft_s: 0.5, ..cand(1, 0.6, 0.2, 0.1, 10.0) };
        assert!(matches!(decide(&ask, &[slow, quick]), Decision::Serve { index: 1, downgraded: true, .. }));
        assert!(matches!(decide(&ask, &[slow]), Decision::Refuse { .. }));
        let patient = Ask { ttft_slo_s: f64::INFINITY, ..ask };
        assert!(matches!(decide(&patient, &[slow, quick]), Decision::Serve { index: 0, .. }));
    }

    #[test]
    fn serves_downgrades_defers_and_refuses() {
        let ask = Ask { value: 1.0, tokens: 1000.0, window_left: None, ttft_slo_s: f64::INFINITY };
        // Cheap enough on the asked pool.
        assert!(matches!(
            decide(&ask, &[cand(0, 1.0, 1.0, 0.5, 10.0)]),
            Decision::Serve { index: 0, downgraded: false, .. }
        ));
        // Dear on the asked pool, clears on the fallback at 0.7 quality.
        let c = [cand(0, 1.0, 1.0, 2.0, 10.0), cand(1, 0.7, 0.2, 1.0, 10.0)];
        assert!(matches!(decide(&ask, &c), Decision::Serve { index: 1, downgraded: true, .. }));
        // Neither clears: refuse with a quote of price x work per 1,000 tokens = 2.0.
        let c = [cand(0, 1.0, 1.0, 2.0, 10.0), cand(1, 0.7, 0.2, 5.0, 10.0)];
        match decide(&ask, &c) {
            Decision::Refuse { quote_per_1k, .. } => assert!((quote_per_1k - 2.0).abs() < 1e-12),
            d => panic!("{d:?}"),
        }
        // Batch work waits instead.
        assert!(matches!(decide(&Ask { window_left: Some(0.0), ..ask }, &c), Decision::Defer { .. }));
        // No room: not served even when cheap.
        assert!(matches!(decide(&ask, &[cand(0, 1.0, 1.0, 0.0, 0.5)]), Decision::Refuse { .. }));
    }

    #[test]
    fn work_that_may_wait_holds_out_for_less_the_more_of_its_window_is_ahead() {
        // Value 1 on one engine-second; the recent low is 0.2, so its surplus there is 0.8.
        let at = |price: f64, left: f64| {
            let c = Candidate { low_price: 0.2, ..cand(0, 1.0, 1.0, price, 10.0) };
            let ask = Ask { value: 1.0, tokens: 1000.0, window_left: Some(left), ttft_slo_s: f64::INFINITY };
            matches!(decide(&ask, &[c]), Decision::Serve { .. })
        };
        // On arrival only the recent low clears; at the deadline anything below its value does.
        assert!(at(0.2, 1.0) && !at(0.21, 1.0));
        assert!(at(0.99, 0.0) && !at(1.01, 0.0));
        // Half-way: the reservation price is half-way between the low and the value, 0.6.
        assert!(at(0.59, 0.5) && !at(0.61, 0.5));
        // Work that cannot wait has no reservation beyond its value.
        let c = Candidate { low_price: 0.2, ..cand(0, 1.0, 1.0, 0.9, 10.0) };
        let now = Ask { value: 1.0, tokens: 1000.0, window_left: None, ttft_slo_s: f64::INFINITY };
        assert_eq!(now.hold_out(&c), 0.0);
        assert!(matches!(decide(&now, &[c]), Decision::Serve { .. }));
    }

    proptest! {
        /// Admission never serves a request at a negative net value, nor on a pool without room,
        /// and serves on the best pool that fits.
        #[test]
        fn never_admits_negative_net_value_or_beyond_room(
            value in 0.0f64..10.0,
            window_left in proptest::option::of(0.0f64..1.0),
            cands in proptest::collection::vec((0.05f64..1.0, 0.0f64..5.0, 0.0f64..5.0, 0.0f64..10.0), 1..6),
        ) {
            let cands: Vec<Candidate> = cands.iter().enumerate()
                .map(|(i, &(q, w, p, r))| cand(i, if i == 0 { 1.0 } else { q }, w, p, r)).collect();
            let ask = Ask { value, tokens: 500.0, window_left, ttft_slo_s: f64::INFINITY };
            match decide(&ask, &cands) {
                Decision::Serve { index, net, .. } => {
                    let c = cands[index];
                    prop_assert!(net >= 0.0);
                    prop_assert!(c.room_left >= c.work);
                    prop_assert!((c.net(value) - net).abs() < 1e-12);
                    for o in cands.iter().filter(|o| o.room_left >= o.work) {
                        prop_assert!(o.net(value) <= net + 1e-12);
                    }
                }
                Decision::Defer { .. } => prop_assert!(window_left.is_some()),
                Decision::Refuse { quote_per_1k, .. } => {
                    prop_assert!(window_left.is_none());
                    prop_assert!(quote_per_1k >= 0.0);
                    prop_assert!(cands.iter().all(|o| o.room_left < o.work || o.net(value) < 0.0));
                }
            }
        }
    }
}
