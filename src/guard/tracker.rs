//! The extraction watch's state: a [`Window`] per tenant and per key, fed arrivals and
//! completions, scored by [`Weights`]. Pure and single-threaded: the gateway drives it from the
//! watch's thread ([`super::watch`]), the evaluation from its generated traffic, the same code.

use super::score::{Snapshot, Weights};
use super::signals::{Event, Window};
use super::sketch::Sign;
use std::collections::HashMap;

/// One request as it arrives.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub id: u64,
    pub tenant: String,
    pub key: String,
    pub t_ms: i64,
    pub sign: Sign,
    /// See [`Event::logprobs`].
    pub logprobs: f64,
    pub max_tokens: Option<u32>,
}

/// How the watch is set.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How far back a subject's window reaches, milliseconds.
    pub horizon_ms: i64,
    /// Requests in the window before a subject is scored.
    pub min_requests: usize,
    pub weights: Weights,
}

impl Default for Settings {
    fn default() -> Self {
        Self { horizon_ms: 3_600_000, min_requests: 20, weights: Weights::default() }
    }
}

struct Subject {
    all: Window,
    keys: HashMap<String, Window>,
}

/// Requests awaiting their completion, at most this many (past it the oldest are forgotten: a
/// completion that finds nothing is ignored).
const PENDING: usize = 200_000;

pub struct Tracker {
    pub settings: Settings,
    tenants: HashMap<String, Subject>,
    pending: HashMap<u64, (String, String)>,
}

fn key_hash(key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(7).hash_one(key)
}

impl Tracker {
    pub fn new(settings: Settings) -> Self {
        Self { settings, tenants: HashMap::new(), pending: HashMap::new() }
    }

    /// Takes in an arrival; returns the tenant's and the key's standing after it.
    pub fn arrive(&mut self, a: Arrival) -> (Snapshot, Snapshot) {
        let (tenant, key) = (a.tenant.clone(), a.key.clone());
        self.observe(a);
        (self.tenant_standing(&tenant), self.key_standing(&tenant, &key))
    }

    /// Takes in an arrival without scoring anything (the watch's thread scores each subject once
    /// per batch of messages).
    pub fn observe(&mut self, a: Arrival) {
        let horizon = self.settings.horizon_ms;
        let e = Event {
            id: a.id,
            t_ms: a.t_ms,
            key: key_hash(&a.key),
            sign: a.sign,
            logprobs: a.logprobs.clamp(0.0, 1.0),
            max_tokens: a.max_tokens,
            input_tokens: 0,
            output_tokens: None,
        };
        if self.pending.len() >= PENDING {
            self.pending.clear();
        }
        self.pending.insert(a.id, (a.tenant.clone(), a.key.clone()));
        let s =
            self.tenants.entry(a.tenant).or_insert_with(|| Subject { all: Window::new(horizon), keys: HashMap::new() });
        s.keys.entry(a.key).or_insert_with(|| Window::new(horizon)).push(e.clone());
        s.all.push(e);
    }

    fn score(&self, f: super::signals::Features) -> Snapshot {
        self.settings.weights.snapshot(f, self.settings.min_requests)
    }

    /// A tenant's standing over all its keys (the default one if it is unknown).
    pub fn tenant_standing(&self, tenant: &str) -> Snapshot {
        self.score(self.tenants.get(tenant).map(|s| s.all.features()).unwrap_or_default())
    }

    /// One of a tenant's keys' standing.
    pub fn key_standing(&self, tenant: &str, key: &str) -> Snapshot {
        let w = self.tenants.get(tenant).and_then(|s| s.keys.get(key));
        self.score(w.map(Window::features).unwrap_or_default())
    }

    /// Takes in a request's end; returns its tenant and key and their standings, if its arrival
    /// is still known.
    pub fn complete(
        &mut self,
        id: u64,
        input_tokens: u32,
        output_tokens: u32,
    ) -> Option<(String, String, Snapshot, Snapshot)> {
        let (tenant, key) = self.finish(id, input_tokens, output_tokens)?;
        let (t, k) = (self.tenant_standing(&tenant), self.key_standing(&tenant, &key));
        Some((tenant, key, t, k))
    }

    /// Takes in a request's end without scoring; returns its tenant and key, if its arrival is
    /// still known.
    pub fn finish(&mut self, id: u64, input_tokens: u32, output_tokens: u32) -> Option<(String, String)> {
        let (tenant, key) = self.pending.remove(&id)?;
        let s = self.tenants.get_mut(&tenant)?;
        for w in std::iter::once(&mut s.all).chain(s.keys.get_mut(&key)) {
            w.complete(id, input_tokens, output_tokens);
        }
        Some((tenant, key))
    }

    /// Forgets a request that ended without an answer (refused, failed): it stays an arrival.
    pub fn forget(&mut self, id: u64) {
        self.pending.remove(&id);
    }

    /// Forgets subjects with nothing in their window at `now_ms`; returns the tenants and the
    /// keys forgotten.
    pub fn prune(&mut self, now_ms: i64) -> (Vec<String>, Vec<String>) {
        let (mut tenants, mut keys) = (Vec::new(), Vec::new());
        self.tenants.retain(|t, s| {
            s.all.expire(now_ms);
            s.keys.retain(|k, w| {
                w.expire(now_ms);
                if w.is_empty() {
                    keys.push(k.clone());
                }
                !w.is_empty()
            });
            if s.all.is_empty() {
                tenants.push(t.clone());
            }
            !s.all.is_empty()
        });
        (tenants, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::sketch::sign;

    fn arrival(id: u64, tenant: &str, key: &str, t_ms: i64) -> Arrival {
        Arrival {
            id,
            tenant: tenant.into(),
            key: key.into(),
            t_ms,
            sign: sign("Explain in detail, step by step"),
            logprobs: 1.0,
            max_tokens: Some(64),
        }
    }

    #[test]
    fn a_tenant_is_scored_over_all_its_keys_and_each_key_alone() {
        let mut t = Tracker::new(Settings { min_requests: 10, ..Settings::default() });
        let (mut tenant, mut key) = (Snapshot::default(), Snapshot::default());
        for i in 0..40u64 {
            key = t.arrive(arrival(i, "acme", &format!("k{}", i % 4), i as i64 * 1000)).1;
            let (tn, _, ts, _) = t.complete(i, 20, 64).expect("arrival known");
            assert_eq!(tn, "acme");
            tenant = ts;
        }
        assert_eq!(tenant.features.requests, 40);
        assert_eq!(key.features.requests, 10);
        assert!((tenant.features.keys - 0.75).abs() < 1e-9);
        assert!(tenant.score > key.score, "four keys acting as one weigh more than one: {tenant:?} {key:?}");
        assert!(t.complete(999, 1, 1).is_none());
        let (tenants, keys) = t.prune(40_000 + 3_600_001);
        assert_eq!((tenants.len(), keys.len()), (1, 4));
    }
}
