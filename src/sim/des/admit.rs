//! Bid-price admission inside the simulator: what the gateway's `api::admit` does around the
//! shared admission round (`admission::round`), on the virtual clock: which window a request
//! holds out over, how long it may wait for its price, and one round for one request.

use super::{Sim, Window};
use crate::admission::round;
use crate::sim::run::class_value;

impl Sim<'_> {
    /// The output length request `i`'s gateway expects: its class's `max_tokens` if its clients
    /// send one, else only the forecast (never the trace's true length). Every policy that
    /// decides before a response goes by it.
    pub(super) fn expected_out(&self, i: usize) -> f64 {
        let r = &self.reqs[i];
        self.alloc.expected_output(self.key(r.class), r.max_tokens)
    }

    pub(super) fn deferrable(&self, class: usize) -> bool {
        self.sc.tier(&self.sc.classes[class].tier).is_some_and(|t| t.deferrable)
    }

    /// The window request `i` holds out over: to its deadline for a Batch API line (a tier of
    /// the scenario's `batch_tiers`), none for a request its client holds open.
    pub(super) fn window(&self, i: usize) -> Window {
        let r = &self.reqs[i];
        let line = self.sc.batch_tiers.contains(&self.sc.classes[r.class].tier);
        Window { opened_s: r.at, closes_s: if line { self.deadline(i) } else { r.at } }
    }

    /// When request `i` stops waiting for its price: its patience after its arrival.
    pub(super) fn deadline(&self, i: usize) -> f64 {
        let r = &self.reqs[i];
        let patience = self
            .sc
            .tier(&self.sc.classes[r.class].tier)
            .map_or(0.0, |t| crate::admission::defer::patience_s(t.deferrable, t.deadline_ms, t.ttft_slo_s()));
        r.at + patience
    }

    /// Bid-price admission for request `i` now; true if it was started.
    pub(super) fn try_admit(&mut self, i: usize, t: f64, deferred: bool) -> bool {
        let r = &self.reqs[i];
        let c = &self.sc.classes[r.class];
        let key = self.key(r.class);
        let deferrable = self.deferrable(r.class);
        let out = self.expected_out(i);
        let value = class_value(self.sc, &self.cfg, r.class, f64::from(r.input), out);
        let ttft_slo_s = self.sc.tier(&c.tier).map(|t| t.ttft_slo_s()).unwrap_or(f64::INFINITY) - (t - r.at);
        let wait = deferrable.then(|| (self.window(i), t));
        let req = round::Request {
            class: key,
            input: f64::from(r.input),
            output: out,
            value,
            ttft_slo_s,
            wait,
            p_weak: None,
        };
        match round::round(&self.alloc, &self.cfg, &req) {
            Some(round::Round { outcome: round::Outcome::Serve { cand, reservation, .. }, .. }) => {
                self.start(i, t, cand.pool, cand.quality, Some(reservation), deferred);
                true
            }
            _ => false,
        }
    }

    /// Value per engine-second of request `i` as admission sees it (the forecast output).
    pub(super) fn density(&self, i: usize) -> f64 {
        let r = &self.reqs[i];
        let pool = self.pool_index[r.class];
        let out = self.expected_out(i);
        let w = self.alloc.fleet.pools[pool].work(f64::from(r.input), out).max(1e-12);
        class_value(self.sc, &self.cfg, r.class, f64::from(r.input), out) / w
    }
}
