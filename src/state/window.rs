//! A sliding one-minute window of counts in one-second buckets: the in-process form of the
//! token and request limits (the Redis form is the same arithmetic in `lua/admit.lua`). Pure:
//! the second is passed in.

/// Seconds in the window.
pub const WINDOW_S: i64 = 60;

#[derive(Debug, Clone)]
pub struct Window {
    /// (second, count) per slot `second % 60`.
    slots: [(i64, u64); WINDOW_S as usize],
}

impl Default for Window {
    fn default() -> Self {
        Self { slots: [(i64::MIN, 0); WINDOW_S as usize] }
    }
}

impl Window {
    fn live(&self, now: i64) -> impl Iterator<Item = &(i64, u64)> {
        self.slots.iter().filter(move |(s, _)| *s > now - WINDOW_S && *s <= now)
    }

    /// Counted in the minute ending at `now`.
    pub fn sum(&self, now: i64) -> u64 {
        self.live(now).map(|(_, n)| n).sum()
    }

    /// Counts `n` at `now` if the minute's total stays within `limit`; otherwise the seconds
    /// until enough of the minute has slid out for it to fit (`None` if it never can).
    pub fn try_add(&mut self, now: i64, n: u64, limit: u64) -> Result<(), Option<u64>> {
        let sum = self.sum(now);
        if sum + n <= limit {
            let slot = &mut self.slots[now.rem_euclid(WINDOW_S) as usize];
            if slot.0 != now {
                *slot = (now, 0);
            }
            slot.1 += n;
            return Ok(());
        }
        if n > limit {
            return Err(None);
        }
        let mut live: Vec<(i64, u64)> = self.live(now).copied().collect();
        live.sort_unstable();
        let mut left = sum;
        for (s, c) in live {
            left -= c;
            if left + n <= limit {
                return Err(Some((s + WINDOW_S - now).max(1) as u64));
            }
        }
        Err(Some(WINDOW_S as u64))
    }

    /// Corrects the count of second `at` by `delta` (the real tokens against the reserved), if
    /// that second is still in the window; never below zero.
    pub fn adjust(&mut self, at: i64, delta: i64) {
        let slot = &mut self.slots[at.rem_euclid(WINDOW_S) as usize];
        if slot.0 == at {
            slot.1 = slot.1.saturating_add_signed(delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fills_refuses_with_the_wait_and_slides() {
        let mut w = Window::default();
        assert!(w.try_add(100, 60, 100).is_ok());
        assert!(w.try_add(130, 40, 100).is_ok());
        // Full: 60 more fit once second 100 leaves the window, at 160.
        assert_eq!(w.try_add(131, 60, 100), Err(Some(29)));
        assert_eq!(w.try_add(131, 101, 100), Err(None));
        assert!(w.try_add(160, 60, 100).is_ok());
        w.adjust(160, -50);
        assert_eq!(w.sum(160), 50);
    }

    proptest! {
        /// Whatever arrives, no 60-second span ever holds more than the limit.
        #[test]
        fn no_minute_exceeds_the_limit(
            limit in 1u64..1000,
            asks in proptest::collection::vec((0i64..5, 1u64..300), 1..300),
        ) {
            let mut w = Window::default();
            let mut now = 0;
            let mut granted: Vec<(i64, u64)> = Vec::new();
            for (dt, n) in asks {
                now += dt;
                if w.try_add(now, n, limit).is_ok() {
                    granted.push((now, n));
                }
                let in_minute: u64 = granted.iter().filter(|(s, _)| *s > now - WINDOW_S).map(|g| g.1).sum();
                prop_assert!(in_minute <= limit);
                prop_assert_eq!(in_minute, w.sum(now));
            }
        }
    }
}
