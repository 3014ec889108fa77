//! Rate limiting of failed authentication attempts per client address: each address has a token
//! bucket of `per_minute` failures, refilled continuously; while it is empty, the address's
//! requests get 429 before any key is checked, so keys cannot be guessed at line rate. Successful
//! authentication costs nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Addresses tracked before full (idle) buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

pub struct FailureLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl FailureLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute: f64::from(per_minute.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    fn level(&self, level: f64, since: Instant, now: Instant) -> f64 {
        (level + now.duration_since(since).as_secs_f64() * self.per_minute / 60.0).min(self.per_minute)
    }

    /// `Err(seconds)` while `ip` may not try again.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let b = self.buckets.lock().expect("limiter lock");
        match b.get(&ip) {
            Some(&(level, at)) => {
                let l = self.level(level, at, now);
                if l >= 1.0 {
                    Ok(())
                } else {
                    Err(((1.0 - l) * 60.0 / self.per_minute).ceil().max(1.0) as u64)
                }
            }
            None => Ok(()),
        }
    }

    /// Counts a failed attempt from `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut b = self.buckets.lock().expect("limiter lock");
        if b.len() >= MAX_TRACKED {
            let full = self.per_minute;
            b.retain(|_, (level, at)| (*level + at.elapsed().as_secs_f64() * full / 60.0) < full);
        }
        let (level, at) = b.get(&ip).copied().unwrap_or((self.per_minute, now));
        b.insert(ip, ((self.level(level, at, now) - 1.0).max(0.0), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_stopped_after_its_failures_and_others_are_not() {
        let l = FailureLimiter::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
            l.fail(a);
        }
        let wait = l.check(a).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(l.check(b).is_ok());
    }
}
