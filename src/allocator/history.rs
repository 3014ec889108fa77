//! A pool's recent prices, one per price correction (every [`super::runtime::CORRECTION_INTERVAL_S`],
//! in the live gateway and in the simulator alike, so an index is a time), kept over the planning
//! horizon: what work that may wait is priced at and holds out for. A dip of the price shorter
//! than a request's lifetime is not free capacity (a request admitted in it holds the room after
//! the dip, displacing what arrives then), so such work is priced at the highest price over the
//! last lifetime; and it holds out for the lowest price over the horizon (the last valley's).

use std::collections::VecDeque;

/// The kept prices are not stored: two monotone queues of (index, price) answer both questions,
/// so a read costs a logarithm of the horizon rather than a pass over it (the simulator reads
/// them every 50 ms for every pool, over horizons of thousands of corrections).
#[derive(Debug)]
pub struct PriceHistory {
    kept: usize,
    /// Prices pushed so far; the next one's index.
    pushed: u64,
    /// Increasing prices, each the least of the kept ones from it on: the front is the low.
    lows: VecDeque<(u64, f64)>,
    /// Decreasing prices, each the highest of the kept ones from it on.
    highs: VecDeque<(u64, f64)>,
}

impl PriceHistory {
    /// Keeps the last `kept` prices (at least one).
    pub fn new(kept: usize) -> Self {
        Self { kept: kept.max(1), pushed: 0, lows: VecDeque::new(), highs: VecDeque::new() }
    }

    pub fn push(&mut self, price: f64) {
        let i = self.pushed;
        self.pushed += 1;
        let oldest = self.pushed.saturating_sub(self.kept as u64);
        while self.lows.back().is_some_and(|b| b.1 >= price) {
            self.lows.pop_back();
        }
        while self.highs.back().is_some_and(|b| b.1 <= price) {
            self.highs.pop_back();
        }
        self.lows.push_back((i, price));
        self.highs.push_back((i, price));
        for q in [&mut self.lows, &mut self.highs] {
            while q.front().is_some_and(|f| f.0 < oldest) {
                q.pop_front();
            }
        }
    }

    /// The highest of the last `n` prices (at least one), 0 with none.
    pub fn high(&self, n: usize) -> f64 {
        let kept = self.pushed.min(self.kept as u64);
        let from = self.pushed - (n.max(1) as u64).min(kept);
        let at = self.highs.partition_point(|h| h.0 < from);
        self.highs.get(at).map_or(0.0, |h| f64::max(0.0, h.1))
    }

    /// The lowest price kept, if any.
    pub fn low(&self) -> Option<f64> {
        self.lows.front().map(|l| l.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queues_answer_as_a_pass_over_the_kept_prices_would() {
        let mut h = PriceHistory::new(50);
        let mut all: Vec<f64> = Vec::new();
        let mut x = 7u64;
        for _ in 0..2_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            // Prices with ties and runs, as corrections produce.
            let p = ((x >> 33) % 9) as f64 * 0.25;
            h.push(p);
            all.push(p);
            let kept = &all[all.len().saturating_sub(50)..];
            assert_eq!(h.low(), kept.iter().copied().reduce(f64::min));
            for n in [0, 1, 2, 7, 49, 50, 51, 10_000] {
                let want = kept.iter().rev().take(n.max(1)).fold(0.0, |m, &p| f64::max(m, p));
                assert_eq!(h.high(n), want, "n = {n}");
            }
        }
    }

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
