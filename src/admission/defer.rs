//! The deferral queue of one pool: work that may wait (batch lines, deferrable tiers) waiting for
//! its price to clear. The one priced next is the one that would pay the most now: its
//! reservation price rises over its window (see [`super::Ask::hold_out`]) from the pool's recent
//! low price to its value density, so the head is the waiting request whose share of the window
//! gone, times its value density above the low, is largest; then the densest, then the
//! oldest. Pure bookkeeping on the caller's clock (seconds); the gateway holds one per pool and
//! each waiting request asks whether it is at the head; the simulator pops from it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use crate::units::Total;

/// Share of a tier's time-to-first-token objective that a request whose price has not cleared
/// may spend waiting for it (the rest is left for the engine's queue and prefill). Chosen on the
/// suite's development scenarios (docs/simulator.md, sixth session): 0.25 to 0.9 all beat
/// refusing at once; 0.4 scored best there.
pub const WAIT_SHARE_OF_TTFT: f64 = 0.4;

/// How long a request may wait for its price to clear, seconds: a deferrable tier's
/// `deadline_ms`; any other tier's request [`WAIT_SHARE_OF_TTFT`] of its TTFT objective, since
/// a price raised by a burst often falls well within it; none without an objective.
pub fn patience_s(deferrable: bool, deadline_ms: u64, ttft_slo_s: f64) -> f64 {
    if deferrable {
        deadline_ms as f64 / 1000.0
    } else if ttft_slo_s.is_finite() {
        WAIT_SHARE_OF_TTFT * ttft_slo_s.max(0.0)
    } else {
        0.0
    }
}

/// One waiting request's window, on the caller's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub opened_s: f64,
    pub closes_s: f64,
}

impl Window {
    /// The share of the window still ahead at `now`, 0 to 1 (0 for an empty window).
    pub fn left(&self, now: f64) -> f64 {
        let len = self.closes_s - self.opened_s;
        if len <= 0.0 {
            return 0.0;
        }
        ((self.closes_s - now) / len).clamp(0.0, 1.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    /// Value per engine-second, USD.
    density: f64,
    window: Window,
    /// When it stops waiting (refused), on the same clock.
    deadline_s: f64,
    arrival: u64,
}

/// The waiting requests, densest first (then oldest), with indexes by id and by deadline, so
/// finding the head stops at the first request too sparse to beat the best found, and removing
/// one or the expired costs a logarithm of the queue, not a pass over it (thousands of batch lines
/// wait at once in the simulator's long replays).
#[derive(Debug, Default, Clone)]
pub struct DeferQueue {
    by_density: BTreeMap<(Reverse<Total>, u64), Entry>,
    by_id: HashMap<u64, (Reverse<Total>, u64), foldhash::fast::FixedState>,
    by_deadline: BTreeMap<(Total, u64), u64>,
    arrivals: u64,
}

impl DeferQueue {
    /// Adds request `id` of `density` (value per engine-second), holding out over `window`,
    /// waiting until `deadline_s`. A request already waiting under `id` is replaced.
    pub fn push(&mut self, id: u64, density: f64, window: Window, deadline_s: f64) {
        self.remove(id);
        self.arrivals += 1;
        let arrival = self.arrivals;
        let key = (Reverse(Total(density)), arrival);
        self.by_density.insert(key, Entry { id, density, window, deadline_s, arrival });
        self.by_id.insert(id, key);
        self.by_deadline.insert((Total(deadline_s), arrival), id);
    }

    pub fn remove(&mut self, id: u64) {
        if let Some(key) = self.by_id.remove(&id) {
            if let Some(e) = self.by_density.remove(&key) {
                self.by_deadline.remove(&(Total(e.deadline_s), e.arrival));
            }
        }
    }

    /// The request to price next at `now`, on a pool whose recent low price is `low` (USD per
    /// engine-second): the one whose reservation price is highest (then the densest, then the
    /// oldest). A request's price is at most its density above the low, so the scan, densest
    /// first, ends where that bound no longer beats the best found.
    pub fn head(&self, now: f64, low: f64) -> Option<u64> {
        let bid = |e: &Entry| (1.0 - e.window.left(now)) * (e.density - low).max(0.0);
        let mut best: Option<(f64, &Entry)> = None;
        for e in self.by_density.values() {
            if let Some((b, _)) = best {
                // Denser ones came first and an earlier one wins a tie, so this one cannot win
                // unless its bound beats the best's price.
                if (e.density - low).max(0.0) <= b {
                    break;
                }
            }
            let b = bid(e);
            if best.is_none_or(|(bb, _)| b > bb) {
                best = Some((b, e));
            }
        }
        best.map(|(_, e)| e.id)
    }

    /// Removes and returns the requests whose deadline passed by `now`.
    pub fn take_expired(&mut self, now: f64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 .0 > now {
                break;
            }
            out.push(entry.remove());
        }
        for id in &out {
            if let Some(key) = self.by_id.remove(id) {
                self.by_density.remove(&key);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.by_density.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_density.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patience_is_the_deadline_or_a_share_of_the_ttft_objective() {
        assert_eq!(patience_s(true, 30_000, 2.0), 30.0, "deferrable: its tier's deadline");
        assert!((patience_s(false, 30_000, 10.0) - WAIT_SHARE_OF_TTFT * 10.0).abs() < 1e-12);
        assert_eq!(patience_s(false, 30_000, f64::INFINITY), 0.0, "no objective: refused at once");
        assert_eq!(patience_s(false, 0, -1.0), 0.0);
    }

    const OPEN: Window = Window { opened_s: 0.0, closes_s: 100.0 };

    /// The queue as a plain list, each head found by a pass over all of it.
    #[derive(Default)]
    struct Naive(Vec<(u64, f64, Window, f64, u64)>, u64);

    impl Naive {
        fn head(&self, now: f64, low: f64) -> Option<u64> {
            let bid = |e: &(u64, f64, Window, f64, u64)| (1.0 - e.2.left(now)) * (e.1 - low).max(0.0);
            let cmp = |a: &&(u64, f64, Window, f64, u64), b: &&(u64, f64, Window, f64, u64)| {
                bid(a).total_cmp(&bid(b)).then(a.1.total_cmp(&b.1)).then(b.4.cmp(&a.4))
            };
            self.0.iter().max_by(cmp).map(|e| e.0)
        }
    }

    #[test]
    fn the_indexed_queue_picks_and_expires_as_a_pass_over_a_list_would() {
        let (mut q, mut naive) = (DeferQueue::default(), Naive::default());
        let mut x = 11u64;
        let mut next = |m: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for step in 0..3_000u64 {
            let now = step as f64 * 0.5;
            // Densities with ties; batch-like windows and empty ones.
            let density = next(12) as f64 * 0.1;
            let window = if next(2) == 0 {
                Window { opened_s: now - next(20) as f64, closes_s: now + next(200) as f64 }
            } else {
                Window { opened_s: now, closes_s: now }
            };
            let deadline = window.closes_s.max(now + next(30) as f64);
            q.push(step, density, window, deadline);
            naive.1 += 1;
            naive.0.push((step, density, window, deadline, naive.1));
            let low = next(8) as f64 * 0.1;
            let mut expired = q.take_expired(now);
            expired.sort_unstable();
            let mut want: Vec<u64> = naive.0.iter().filter(|e| e.3 <= now).map(|e| e.0).collect();
            naive.0.retain(|e| e.3 > now);
            want.sort_unstable();
            assert_eq!(expired, want, "expired at {now}");
            let head = q.head(now, low);
            assert_eq!(head, naive.head(now, low), "head at {now}, low {low}");
            if let (Some(h), 0) = (head, next(3)) {
                q.remove(h);
                naive.0.retain(|e| e.0 != h);
            }
            assert_eq!(q.len(), naive.0.len());
        }
    }

    #[test]
    fn at_the_same_point_of_their_windows_the_densest_then_the_oldest_goes_first() {
        let mut q = DeferQueue::default();
        q.push(1, 0.5, OPEN, 100.0);
        q.push(2, 2.0, OPEN, 100.0);
        q.push(3, 2.0, OPEN, 100.0);
        q.push(4, 1.0, OPEN, 100.0);
        assert_eq!(q.head(10.0, 0.0), Some(2));
        q.remove(2);
        assert_eq!(q.head(10.0, 0.0), Some(3));
        q.remove(3);
        assert_eq!(q.head(10.0, 0.0), Some(4));
        q.remove(4);
        q.remove(1);
        assert!(q.is_empty());
    }

    #[test]
    fn a_request_near_its_deadline_goes_ahead_of_a_denser_one_just_arrived() {
        let mut q = DeferQueue::default();
        // Density 1, 90% of its window gone at t = 90: it would pay 0.9 now.
        q.push(1, 1.0, OPEN, 100.0);
        // Density 3, arrived at 80 with a window to 180: 10% gone, it would pay 0.3.
        q.push(2, 3.0, Window { opened_s: 80.0, closes_s: 180.0 }, 180.0);
        assert_eq!(q.head(90.0, 0.0), Some(1));
        // Later on, the denser one is the more willing (60% of 3 against the first's deadline).
        assert_eq!(q.take_expired(140.0), vec![1]);
        assert_eq!(q.head(140.0, 0.0), Some(2));
        assert_eq!(Window { opened_s: 5.0, closes_s: 5.0 }.left(0.0), 0.0);
        assert!((OPEN.left(25.0) - 0.75).abs() < 1e-12);
    }
}
