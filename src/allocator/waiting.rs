//! A place in a pool's deferral queue: work that may wait, waiting for its price to clear. The allocator
//! owns the queues; a driver holds a [`Waiting`] guard, asks whether it is at the head, waits to
//! be woken when the queue moves, and gives its place up on drop (served, refused, or the
//! client left).

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

    /// Resolves when someone leaves the queue (register before checking `at_head`).
    fn moved(&self) -> tokio::sync::futures::Notified<'_> {
        self.alloc.deferred_moved[self.pool].notified()
    }

    /// Waits until this request is the one to price again: at the head of its pool's queue
    /// (checked every `poll`, or at once when the queue moves), or past its `deadline`.
    pub async fn turn(&self, poll: Duration, deadline: Instant) {
        loop {
            let moved = self.moved();
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = moved => {}
            }
            if self.at_head() || Instant::now() >= deadline {
                return;
            }
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.alloc.deferred[self.pool].lock().expect("defer lock").remove(self.id);
        self.alloc.deferred_moved[self.pool].notify_waiters();
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

    #[tokio::test]
    async fn a_request_behind_another_gets_its_turn_when_that_one_leaves() {
        let cfg = crate::config::one_pool_for_tests(1);
        let alloc = Arc::new(Allocator::new(&cfg).unwrap());
        let ahead = Waiting::enqueue(&alloc, 0, 5.0, open(&alloc), 1e9);
        let behind = Waiting::enqueue(&alloc, 0, 1.0, open(&alloc), 1e9);
        let far = Instant::now() + Duration::from_secs(60);
        let leave = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(ahead);
        };
        let t0 = Instant::now();
        tokio::join!(leave, behind.turn(Duration::from_secs(30), far));
        assert!(behind.at_head() && t0.elapsed() < Duration::from_secs(30));
        // Not at the head: it comes back at its deadline.
        let first = Waiting::enqueue(&alloc, 0, 9.0, open(&alloc), 1e9);
        behind.turn(Duration::from_millis(5), Instant::now() + Duration::from_millis(30)).await;
        assert!(!behind.at_head() && first.at_head());
    }
}
