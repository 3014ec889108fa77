//! A pool's recent prices, one per price correction (every [`super::runtime::CORRECTION_INTERVAL_S`],
//! in the live gateway and in the simulator alike, so an index is a time), kept over the planning
//! horizon: what work that may wait is priced at and holds out for. A dip of the price shorter
//! than a request's lifetime is not free capacity (a request admitted in it holds the room after
//! the dip, displacing what arrives then), so such work is priced at the highest price over the
//! last lifetime; and it holds out for the lowest price over the horizon (the last valley's).

use std::collections::VecDeque;

#[derive(Debug)]
pub struct PriceHistory {
    prices: VecDeque<f64>,
    kept: usize,
}

impl PriceHistory {
    /// Keeps the last `kept` prices (at least one).
    pub fn new(kept: usize) -> Self {
        Self { prices: VecDeque::new(), kept: kept.max(1) }
    }

    pub fn push(&mut self, price: f64) {
        if self.prices.len() == self.kept {
            self.prices.pop_front();
        }
        self.prices.push_back(price);
    }

    /// The highest of the last `n` prices (at least one), 0 with none.
    pub fn high(&self, n: usize) -> f64 {
        self.prices.iter().rev().take(n.max(1)).fold(0.0, |m, &p| f64::max(m, p))
    }

    /// The lowest price kept, if any.
    pub fn low(&self) -> Option<f64> {
        self.prices.iter().copied().reduce(f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_looks_back_over_the_last_prices_and_the_low_over_all_kept() {
        let mut h = PriceHistory::new(6);
        assert_eq!((h.high(5), h.low()), (0.0, None));
        for p in [3.0, 1.0, 0.0, 0.5] {
            h.push(p);
        }
        assert_eq!(h.high(1), 0.5);
        assert_eq!(h.high(3), 1.0);
        assert_eq!(h.high(100), 3.0);
        assert_eq!(h.low(), Some(0.0));
        for _ in 0..5 {
            h.push(2.0);
        }
        assert_eq!(h.high(usize::MAX), 2.0, "only six are kept");
        assert_eq!(h.low(), Some(0.5));
    }
}
