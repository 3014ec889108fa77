//! A circuit breaker per backend, pure and clock-agnostic (time is passed in).
//!
//! Closed: requests flow; `threshold` consecutive failures open it. Open: no requests until
//! `open_for` has passed, then half-open. Half-open: one probe request at a time; its success
//! closes the circuit, its failure opens it again.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone)]
pub struct Circuit {
    state: State,
    threshold: u32,
    open_for: Duration,
}

impl Circuit {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self { state: State::Closed { failures: 0 }, threshold: threshold.max(1), open_for }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a request may be sent now (without taking the half-open probe slot).
    pub fn available(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { probing } => !probing,
        }
    }

    /// Takes permission to send one request; in half-open this is the probe.
    pub fn acquire(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: true };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => false,
        }
    }

    pub fn on_success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed { failures: failures + 1 },
            _ => State::Open { until: now + self.open_for },
        };
    }

    /// A request that neither succeeded nor failed (cancelled): frees the probe slot.
    pub fn on_abandon(&mut self) {
        if let State::HalfOpen { probing: true } = self.state {
            self.state = State::HalfOpen { probing: false };
        }
    }

    pub fn label(&self) -> &'static str {
        match self.state {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers_through_one_probe() {
        let t0 = Instant::now();
        let mut c = Circuit::new(3, Duration::from_secs(10));
        c.on_failure(t0);
        c.on_failure(t0);
        assert!(c.acquire(t0));
        c.on_success();
        c.on_failure(t0);
        c.on_failure(t0);
        c.on_failure(t0);
        assert_eq!(c.label(), "open");
        assert!(!c.acquire(t0 + Duration::from_secs(5)));
        let later = t0 + Duration::from_secs(11);
        assert!(c.available(later));
        assert!(c.acquire(later), "the probe");
        assert!(!c.acquire(later), "only one probe at a time");
        c.on_failure(later);
        assert_eq!(c.label(), "open");
        let again = later + Duration::from_secs(11);
        assert!(c.acquire(again));
        c.on_success();
        assert_eq!(c.state(), State::Closed { failures: 0 });
    }
}
