//! A pool's recent prices, one per price correction (every [`super::runtime::CORRECTION_INTERVAL_S`],
//! in the live gateway and in the simulator alike, so an index is a time): what work that may
//! wait is priced at. A dip of the price shorter than a request's lifetime is not idle capacity:
//! a request admitted in it holds the room after the dip, displacing what arrives then, so
//! deferrable work is priced at the highest price over the last lifetime.

use std::collections::VecDeque;

/// The most corrections kept: a minute at the correction interval.
const KEPT: usize = 1200;

#[derive(Debug, Default)]
pub struct PriceHistory {
    prices: VecDeque<f64>,
}

impl PriceHistory {
    pub fn push(&mut self, price: f64) {
        if self.prices.len() == KEPT {
            self.prices.pop_front();
        }
        self.prices.push_back(price);
    }

    /// The highest of the last `n` prices (at least one), 0 with none.
    pub fn high(&self, n: usize) -> f64 {
        self.prices.iter().rev().take(n.max(1)).fold(0.0, |m, &p| f64::max(m, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_looks_back_over_the_last_prices_only() {
        let mut h = PriceHistory::default();
        assert_eq!(h.high(5), 0.0);
        for p in [3.0, 1.0, 0.0, 0.5] {
            h.push(p);
        }
        assert_eq!(h.high(1), 0.5);
        assert_eq!(h.high(3), 1.0);
        assert_eq!(h.high(100), 3.0);
        for _ in 0..KEPT {
            h.push(0.0);
        }
        assert_eq!(h.high(usize::MAX), 0.0, "only a minute is kept");
    }
}
