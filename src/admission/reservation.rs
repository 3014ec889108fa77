//! Capacity reservations: work admitted to a pool holds engine-seconds until the response ends.
//! A reservation is a guard; its `Drop` gives the capacity back, so no path (error, client gone,
//! panic) can leak it, and a reservation is only granted if it fits the pool's room. Its prefill
//! also counts in the pool's prefill backlog until its first token: the queue a new request's
//! prefill waits behind, from which admission estimates time to first token.
//!
//! When replicas share state, the pool also knows the other replicas' load (refreshed from the
//! shared state): prices and room are judged on the total, and a reservation granted across
//! replicas is given back there too by the same guard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A pool's totals across live replicas, micro-engine-seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolView {
    pub granted: bool,
    pub inflight: i64,
    pub own_inflight: i64,
    pub backlog: i64,
    pub own_backlog: i64,
    /// The epoch of the replica's presence the view (and a reservation it grants) belongs to.
    pub epoch: u64,
}

/// Gives back, where replicas share pools, what a reservation held there: (work, prefill)
/// micro-engine-seconds. The shared state supplies it; admission owns only the guard.
pub type SharedRelease = Box<dyn Fn(i64, i64) + Send + Sync>;

/// Engine-seconds are counted in micro-engine-seconds to use integer atomics.
const MICRO: f64 = 1e6;

#[derive(Debug)]
pub struct PoolLoad {
    inflight: AtomicU64,
    room: AtomicU64,
    /// Prefill engine-seconds admitted whose first token has not come yet.
    backlog: AtomicU64,
    /// The other replicas' engine-seconds in flight and prefill backlog, as last seen.
    others: AtomicU64,
    others_backlog: AtomicU64,
}

impl PoolLoad {
    /// A pool that may hold `room` engine-seconds in flight.
    pub fn new(room: f64) -> Arc<Self> {
        Arc::new(Self {
            inflight: AtomicU64::new(0),
            room: AtomicU64::new((room.max(0.0) * MICRO) as u64),
            backlog: AtomicU64::new(0),
            others: AtomicU64::new(0),
            others_backlog: AtomicU64::new(0),
        })
    }

    /// Resizes the room (work already in flight is kept; new grants must fit the new room).
    pub fn set_room(&self, room: f64) {
        self.room.store((room.max(0.0) * MICRO) as u64, Ordering::Release);
    }

    /// Engine-seconds in flight from this replica.
    pub fn inflight(&self) -> f64 {
        self.inflight.load(Ordering::Acquire) as f64 / MICRO
    }

    /// Engine-seconds in flight from every replica, as last seen.
    pub fn total_inflight(&self) -> f64 {
        (self.inflight.load(Ordering::Acquire) + self.others.load(Ordering::Acquire)) as f64 / MICRO
    }

    /// Prefill engine-seconds waiting for their first token (every replica's).
    pub fn backlog(&self) -> f64 {
        (self.backlog.load(Ordering::Acquire) + self.others_backlog.load(Ordering::Acquire)) as f64 / MICRO
    }

    /// Records the other replicas' load from a view of the shared totals.
    pub fn set_others(&self, view: &PoolView) {
        let o = (view.inflight - view.own_inflight).max(0) as u64;
        let b = (view.backlog - view.own_backlog).max(0) as u64;
        self.others.store(o, Ordering::Release);
        self.others_backlog.store(b, Ordering::Release);
    }

    /// Assumes the other replicas use `share` of the room (when their load cannot be known).
    pub fn assume_others(&self, share: f64) {
        let room = self.room.load(Ordering::Acquire) as f64;
        self.others.store((room * share.clamp(0.0, 1.0)) as u64, Ordering::Release);
        self.others_backlog.store(0, Ordering::Release);
    }

    pub fn room(&self) -> f64 {
        self.room.load(Ordering::Acquire) as f64 / MICRO
    }

    /// Share of the room in use.
    pub fn utilisation(&self) -> f64 {
        let room = self.room.load(Ordering::Acquire);
        if room == 0 {
            return 1.0;
        }
        (self.inflight.load(Ordering::Acquire) + self.others.load(Ordering::Acquire)) as f64 / room as f64
    }

    /// Takes `work` engine-seconds, of which `prefill` join the prefill backlog, if they fit;
    /// never lets the total exceed the room.
    pub fn try_reserve(self: &Arc<Self>, work: f64, prefill: f64) -> Option<Reservation> {
        let w = ((work.max(0.0) * MICRO).ceil() as u64).max(1);
        let mut cur = self.inflight.load(Ordering::Acquire);
        loop {
            let next = cur.checked_add(w)?;
            if next.saturating_add(self.others.load(Ordering::Acquire)) > self.room.load(Ordering::Acquire) {
                return None;
            }
            match self.inflight.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    let p = ((prefill.clamp(0.0, work) * MICRO) as u64).min(w);
                    let ahead =
                        self.backlog.fetch_add(p, Ordering::AcqRel) + self.others_backlog.load(Ordering::Acquire);
                    return Some(Reservation { load: self.clone(), amount: w, prefill: p, ahead, shared: None });
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

/// What a request's prefill waited behind, engine-seconds: the pool's backlog when it was
/// admitted, and its own prefill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Queued {
    pub ahead_s: f64,
    pub prefill_s: f64,
}

/// Engine-seconds held on a pool; released on drop.
pub struct Reservation {
    load: Arc<PoolLoad>,
    amount: u64,
    /// Prefill still in the pool's backlog (zero once the first token came).
    prefill: u64,
    /// The pool's prefill backlog when it was granted: the queue its prefill waited behind.
    ahead: u64,
    /// How to give it back where it is also held across replicas.
    shared: Option<SharedRelease>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("amount", &self.amount)
            .field("prefill", &self.prefill)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl Reservation {
    pub fn work(&self) -> f64 {
        self.amount as f64 / MICRO
    }

    /// Micro-engine-seconds held, and of them still in the prefill backlog.
    pub fn amount(&self) -> i64 {
        self.amount as i64
    }

    pub fn prefill(&self) -> i64 {
        self.prefill as i64
    }

    /// The same amount was granted across replicas: `release` gives it back there too.
    pub fn share(&mut self, release: SharedRelease) {
        self.shared = Some(release);
    }

    /// The first token came: this request's prefill leaves the backlog. Idempotent: the first
    /// call says what the prefill waited behind (to calibrate the time-to-first-token estimate).
    pub fn first_token(&mut self) -> Option<Queued> {
        let p = std::mem::take(&mut self.prefill);
        self.load.backlog.fetch_sub(p, Ordering::AcqRel);
        if let (Some(release), true) = (&self.shared, p > 0) {
            release(0, p as i64);
        }
        (p > 0).then(|| Queued { ahead_s: self.ahead as f64 / MICRO, prefill_s: p as f64 / MICRO })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let p = std::mem::take(&mut self.prefill);
        self.load.backlog.fetch_sub(p, Ordering::AcqRel);
        self.load.inflight.fetch_sub(self.amount, Ordering::AcqRel);
        if let Some(release) = self.shared.take() {
            release(self.amount as i64, p as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the order of reserving and releasing, the total in flight never exceeds the
        /// room, every grant fits, and releasing everything returns the pool to empty.
        #[test]
        fn reservations_never_exceed_the_room_and_always_release(
            room in 0.0f64..100.0,
            ops in proptest::collection::vec((0.0f64..30.0, 0.0f64..1.0, 0u8..3), 0..200),
        ) {
            let load = PoolLoad::new(room);
            let mut held: Vec<Reservation> = Vec::new();
            for (work, share, op) in ops {
                match op {
                    0 if !held.is_empty() => drop(held.swap_remove(0)),
                    1 if !held.is_empty() => {
                        held[0].first_token();
                    }
                    _ => {
                        if let Some(r) = load.try_reserve(work, work * share) {
                            held.push(r);
                        }
                    }
                }
                prop_assert!(load.inflight() <= load.room() + 1e-9);
                prop_assert!(load.backlog() <= load.inflight() + 1e-9);
                let sum: f64 = held.iter().map(Reservation::work).sum();
                prop_assert!((sum - load.inflight()).abs() < 1e-6);
            }
            drop(held);
            prop_assert_eq!(load.inflight(), 0.0);
            prop_assert_eq!(load.backlog(), 0.0);
        }
    }

    #[test]
    fn concurrent_reservations_respect_the_room() {
        let load = PoolLoad::new(10.0);
        let granted = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut held = Vec::new();
                    for _ in 0..1000 {
                        if let Some(r) = load.try_reserve(0.5, 0.1) {
                            granted.fetch_add(1, Ordering::Relaxed);
                            assert!(load.inflight() <= 10.0 + 1e-9);
                            held.push(r);
                        }
                        if held.len() > 3 {
                            held.remove(0);
                        }
                    }
                });
            }
        });
        assert!(granted.load(Ordering::Relaxed) > 1000);
        assert_eq!(load.inflight(), 0.0);
        assert_eq!(load.backlog(), 0.0);
    }
}
