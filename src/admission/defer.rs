//! The deferral queue of one pool: work that may wait (batch lines, deferrable tiers) waiting for
//! its price to clear. The one priced next is the one that would pay the most now: its
//! reservation price rises over its window (see [`super::Ask::hold_out`]) from the pool's recent
//! low price to its value density, so the head is the waiting request whose share of the window
//! gone, times its value density above the low, is largest; then the densest, then the
//! oldest. Pure bookkeeping on the caller's clock (seconds); the gateway holds one per pool and
//! each waiting request asks whether it is at the head; the simulator pops from it.

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

#[derive(Debug, Default, Clone)]
pub struct DeferQueue {
    entries: Vec<Entry>,
    arrivals: u64,
}

impl DeferQueue {
    /// Adds request `id` of `density` (value per engine-second), holding out over `window`,
    /// waiting until `deadline_s`.
    pub fn push(&mut self, id: u64, density: f64, window: Window, deadline_s: f64) {
        self.arrivals += 1;
        self.entries.push(Entry { id, density, window, deadline_s, arrival: self.arrivals });
    }

    pub fn remove(&mut self, id: u64) {
        self.entries.retain(|e| e.id != id);
    }

    /// The request to price next at `now`, on a pool whose recent low price is `low` (USD per
    /// engine-second): the one whose reservation price is highest.
    pub fn head(&self, now: f64, low: f64) -> Option<u64> {
        let bid = |e: &Entry| (1.0 - e.window.left(now)) * (e.density - low).max(0.0);
        self.entries
            .iter()
            .max_by(|a, b| {
                bid(a).total_cmp(&bid(b)).then(a.density.total_cmp(&b.density)).then(b.arrival.cmp(&a.arrival))
            })
            .map(|e| e.id)
    }

    /// Removes and returns the requests whose deadline passed by `now`.
    pub fn take_expired(&mut self, now: f64) -> Vec<u64> {
        let mut out = Vec::new();
        self.entries.retain(|e| {
            let keep = e.deadline_s > now;
            if !keep {
                out.push(e.id);
            }
            keep
        });
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
