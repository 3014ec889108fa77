//! Demand forecast per class (tenant x model x the service tier requests name): an exponentially
//! weighted arrival rate and mean input and output tokens. Output estimates settle from the
//! responses as they finish. Pure: time is passed in, in seconds.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ClassKey {
    pub tenant: String,
    pub model: String,
    /// The service tier the requests named (`flex`, `priority`, a batch's lines): valued at
    /// another tier than the tenant's, so forecast apart (the scarcity price then has their
    /// densities to protect).
    #[serde(default)]
    pub service: crate::config::ServiceTier,
}

impl ClassKey {
    /// The class of `tenant`'s requests for `model` at its own tier.
    pub fn new(tenant: impl Into<String>, model: impl Into<String>) -> Self {
        Self { tenant: tenant.into(), model: model.into(), service: crate::config::ServiceTier::Default }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassStats {
    /// Arrivals per second, decayed to `last`.
    pub rate: f64,
    pub last: f64,
    pub mean_in: f64,
    pub mean_out: f64,
    pub arrivals: u64,
    pub finished: u64,
}

/// What one replica knows of demand, exchanged so the LP leader plans for everyone: each class's
/// forecast, and each pool's measurements (mean request lifetime, how many it saw, the room's
/// learned scale), from which the board's one room per pool is set.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Demand {
    pub classes: Vec<(ClassKey, ClassStats)>,
    /// Per pool, in the fleet's order.
    #[serde(default)]
    pub pools: Vec<super::calibration::PoolObs>,
}

impl Demand {
    /// Several replicas' demand as one: class rates add and token means weigh by rate; a pool's
    /// measurements are the replicas' weighed by what each observed.
    pub fn merge(all: Vec<Demand>) -> Demand {
        let mut by: std::collections::BTreeMap<ClassKey, ClassStats> = std::collections::BTreeMap::new();
        let mut pools: Vec<super::calibration::PoolObs> = Vec::new();
        for d in all {
            for (k, s) in d.classes {
                match by.get_mut(&k) {
                    None => {
                        by.insert(k, s);
                    }
                    Some(m) => {
                        let w = m.rate + s.rate;
                        let (a, b) = if w > 0.0 { (m.rate / w, s.rate / w) } else { (0.5, 0.5) };
                        m.mean_in = a * m.mean_in + b * s.mean_in;
                        m.mean_out = a * m.mean_out + b * s.mean_out;
                        m.rate = w;
                        m.last = m.last.max(s.last);
                        m.arrivals += s.arrivals;
                        m.finished += s.finished;
                    }
                }
            }
            for (i, o) in d.pools.into_iter().enumerate() {
                match pools.get_mut(i) {
                    Some(m) => *m = super::calibration::PoolObs::merge(*m, o),
                    None => pools.push(o),
                }
            }
        }
        Demand { classes: by.into_iter().collect(), pools }
    }
}

/// Weight of a new observation in the token means.
const ALPHA: f64 = 0.1;
/// Output assumed for a class before any of its responses finished.
pub const PRIOR_OUTPUT: f64 = 256.0;

#[derive(Debug, Clone)]
pub struct Forecast {
    /// Decay per second of the rate: ln 2 / half-life.
    k: f64,
    classes: HashMap<ClassKey, ClassStats, foldhash::fast::FixedState>,
}

impl Forecast {
    pub fn new(half_life_s: f64) -> Self {
        Self { k: std::f64::consts::LN_2 / half_life_s.max(1e-3), classes: HashMap::default() }
    }

    pub fn observe_arrival(&mut self, key: &ClassKey, now: f64, input_tokens: f64) {
        let k = self.k;
        let s = self.classes.entry(key.clone()).or_insert(ClassStats {
            rate: 0.0,
            last: now,
            mean_in: input_tokens,
            mean_out: PRIOR_OUTPUT,
            arrivals: 0,
            finished: 0,
        });
        s.rate = s.rate * (-(now - s.last).max(0.0) * k).exp() + k;
        s.last = now;
        s.mean_in += ALPHA * (input_tokens - s.mean_in);
        s.arrivals += 1;
    }

    pub fn observe_finish(&mut self, key: &ClassKey, output_tokens: f64) {
        if let Some(s) = self.classes.get_mut(key) {
            s.mean_out =
                if s.finished == 0 { output_tokens } else { s.mean_out + ALPHA * (output_tokens - s.mean_out) };
            s.finished += 1;
        }
    }

    /// Expected output of a class's next request, bounded by its `max_tokens`.
    pub fn expected_output(&self, key: &ClassKey, max_tokens: Option<u32>) -> f64 {
        let mean = self.classes.get(key).map(|s| s.mean_out).unwrap_or(PRIOR_OUTPUT);
        match max_tokens {
            Some(m) => mean.min(f64::from(m)),
            None => mean,
        }
    }

    /// Every class with its rate decayed to `now`.
    pub fn snapshot(&self, now: f64) -> Vec<(ClassKey, ClassStats)> {
        let mut v: Vec<_> = self
            .classes
            .iter()
            .map(|(key, s)| {
                let mut s = *s;
                s.rate *= (-(now - s.last).max(0.0) * self.k).exp();
                (key.clone(), s)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_tracks_a_steady_stream_and_decays_after_it() {
        let key = ClassKey::new("t", "m");
        let mut f = Forecast::new(5.0);
        for i in 0..400 {
            f.observe_arrival(&key, i as f64 * 0.1, 100.0);
        }
        let r = f.snapshot(40.0)[0].1.rate;
        assert!((r - 10.0).abs() < 0.5, "{r}");
        let later = f.snapshot(45.0)[0].1.rate;
        assert!((later - r / 2.0).abs() < 0.3, "{later}");
        f.observe_finish(&key, 50.0);
        assert_eq!(f.expected_output(&key, None), 50.0);
        assert_eq!(f.expected_output(&key, Some(20)), 20.0);
    }
}
