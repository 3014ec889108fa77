//! A place in a pool's deferral queue: work that may wait, waiting for its price to clear. The allocator
//! owns the queues; a driver holds a [`Waiting`] guard, asks whether it is at the head, waits to
//! be woken (after each price correction, or when the head leaves), and gives its place up on
//! drop (served, refused, or the client left).

use super::Allocator;
use crate::admission::defer::Window;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static NEXT_WAITING: AtomicU64 = AtomicU64::new(1);

pub struct Waiting {
    alloc: Arc<Allocator>,
    pool: usize,
    id: u64,
}

impl Waiting {
    /// Joins pool `pool`'s queue with `density` (value per engine-second), the `window` it
    /// holds out over and its deadline, on the allocator's clock ([`Allocator::now`]).
    pub fn enqueue(alloc: &Arc<Allocator>, pool: usize, density: f64, window: Window, deadline_s: f64) -> Self {
        let id = NEXT_WAITING.fetch_add(1, Ordering::Relaxed);
        alloc.deferred[pool].lock().expect("defer lock").push(id, density, window, deadline_s);
        Self { alloc: alloc.clone(), pool, id }
    }

    /// Whether this request is the one of its pool's queue to price again (the most willing
    /// to pay now).
    pub fn at_head(&self) -> bool {
        let (now, low) = (self.alloc.now(), self.alloc.low_price(self.pool));
        self.alloc.deferred[self.pool].lock().expect("defer lock").head(now, low) == Some(self.id)
    }

    /// Resolves at the next price correction or when the head leaves the queue.
    fn moved(&self) -> tokio::sync::futures::Notified<'_> {
        self.alloc.deferred_moved[self.pool].notified()
    }

    /// Waits until this request is the one to price again, or past its `deadline`. It is woken
    /// when the simulator's tick would price its queue: after each price correction (every
    /// [`super::CORRECTION_INTERVAL_S`]) and when the head leaves; it then goes on if it is at
    /// the head or past its deadline, so its deadline is noticed at the first correction after
    /// it, as in the simulator. A request leaving from behind the head wakes no one (the head is
    /// unchanged). `backstop` after the deadline it returns whatever happens, in case
    /// corrections stop.
    pub async fn turn(&self, deadline: Instant, backstop: Duration) {
        let last = tokio::time::Instant::from_std(deadline) + backstop;
        loop {
            let moved = self.moved();
            tokio::select! {
                _ = tokio::time::sleep_until(last) => return,
                _ = moved => {}
            }
            if self.at_head() || Instant::now() >= deadline {
                return;
            }
        }
    }
}

impl Drop for Waiting {
    /// Gives the place up; if it was the head, the next head is woken to be priced at once.
    fn drop(&mut self) {
        let (now, low) = (self.alloc.now(), self.alloc.low_price(self.pool));
        let mut q = self.alloc.deferred[self.pool].lock().expect("defer lock");
        let was_head = q.head(now, low) == Some(self.id);
        q.remove(self.id);
        drop(q);
        if was_head {
            self.alloc.deferred_moved[self.pool].notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(alloc: &Allocator) -> Window {
        Window { opened_s: alloc.now(), closes_s: alloc.now() + 600.0 }
    }

    #[test]
    fn the_densest_waits_at_the_head_and_leaving_moves_the_queue() {
        let cfg = crate::config::one_pool_for_tests(1);
        let alloc = Arc::new(Allocator::new(&cfg).unwrap());
        // Two requests at the same point of one window: the denser would pay more.
        let w = open(&alloc);
        let low = Waiting::enqueue(&alloc, 0, 1.0, w, w.closes_s);
        let high = Waiting::enqueue(&alloc, 0, 5.0, w, w.closes_s);
        assert!(high.at_head() && !low.at_head());
        drop(high);
        assert!(low.at_head());
        drop(low);
        assert_eq!(alloc.deferred[0].lock().unwrap().len(), 0);
    }

    /// A one-pool allocator with two requests waiting, the denser one at the head.
    fn two_waiting() -> (Arc<Allocator>, Waiting, Waiting) {
        let cfg = crate::config::one_pool_for_tests(1);
        let alloc = Arc::new(Allocator::new(&cfg).unwrap());
        let head = Waiting::enqueue(&alloc, 0, 5.0, open(&alloc), 1e9);
        let behind = Waiting::enqueue(&alloc, 0, 1.0, open(&alloc), 1e9);
        (alloc, head, behind)
    }

    #[tokio::test]
    async fn a_request_behind_another_gets_its_turn_when_that_one_leaves() {
        let (alloc, ahead, behind) = two_waiting();
        let far = Instant::now() + Duration::from_secs(60);
        let leave = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(ahead);
        };
        let t0 = Instant::now();
        tokio::join!(leave, behind.turn(far, Duration::from_secs(1)));
        assert!(behind.at_head() && t0.elapsed() < Duration::from_secs(30));
        // Not at the head, and no correction runs here: it comes back at its backstop.
        let first = Waiting::enqueue(&alloc, 0, 9.0, open(&alloc), 1e9);
        let t0 = Instant::now();
        behind.turn(Instant::now() + Duration::from_millis(30), Duration::from_millis(20)).await;
        assert!(!behind.at_head() && first.at_head());
        assert!(t0.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_correction_wakes_the_head_and_a_waiting_request_leaving_behind_it_does_not() {
        let (alloc, head, behind) = two_waiting();
        let far = Instant::now() + Duration::from_secs(60);
        // The one behind leaves: the head is not woken (its turn runs to the short deadline and
        // backstop instead, 100 ms).
        let t0 = Instant::now();
        let leave = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(behind);
        };
        tokio::join!(leave, head.turn(Instant::now() + Duration::from_millis(50), Duration::from_millis(50)));
        assert!(t0.elapsed() >= Duration::from_millis(100), "woken by a request behind it");
        // A price correction wakes it at once.
        let t0 = Instant::now();
        let correct = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            alloc.correct_prices();
        };
        tokio::join!(correct, head.turn(far, Duration::from_secs(5)));
        assert!(t0.elapsed() < Duration::from_secs(5) && head.at_head());
    }
}
