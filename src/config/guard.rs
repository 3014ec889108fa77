//! `[guard]` (the extraction watch) and `models[].extraction` (what a model does about a tenant
//! the watch scores as harvesting it).

use super::check::{ensure, positive, Invalid};
use serde::Deserialize;

/// `[guard]`: the extraction watch (docs/extraction.md). On by default: it only observes; a
/// model acts on its scores only where its `extraction` policy says so.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub enabled: bool,
    /// How far back each tenant's and key's window reaches, seconds.
    pub horizon_s: u64,
    /// Requests in a window before it is scored.
    pub min_requests: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self { enabled: true, horizon_s: 3600, min_requests: 20 }
    }
}

impl GuardConfig {
    pub(super) fn validate(&self, at: &str) -> Result<(), Invalid> {
        ensure(self.horizon_s > 0 && self.horizon_s <= 7 * 86_400, at, "horizon_s", "must be 1 s to 7 days")?;
        let cap = crate::guard::signals::Window::CAP;
        let ok = self.min_requests > 0 && self.min_requests <= cap;
        ensure(ok, at, "min_requests", format!("must be 1 to {cap} (the most a window holds)"))
    }
}

fn default_threshold() -> f64 {
    crate::guard::score::DEFAULT_THRESHOLD
}

/// `models[].extraction`: what the model does for a tenant whose extraction score reaches
/// `threshold`. Every action is recorded in the ledger's `guard` column.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExtractionPolicy {
    /// Record it; serve as usual.
    Flag {
        #[serde(default = "default_threshold")]
        threshold: f64,
    },
    /// Add `per_1k_usd` per 1,000 tokens to what the request must clear in admission (on top of
    /// the capacity's price): a capacity-managed model's work from such a tenant is served only
    /// if it is worth that much more.
    Premium {
        #[serde(default = "default_threshold")]
        threshold: f64,
        per_1k_usd: f64,
    },
    /// At most `per_minute` requests a minute (429 past it).
    Throttle {
        #[serde(default = "default_threshold")]
        threshold: f64,
        per_minute: u32,
    },
    /// Refuse (403, `extraction_risk`).
    Refuse {
        #[serde(default = "default_threshold")]
        threshold: f64,
    },
}

impl ExtractionPolicy {
    pub fn threshold(&self) -> f64 {
        match *self {
            Self::Flag { threshold }
            | Self::Premium { threshold, .. }
            | Self::Throttle { threshold, .. }
            | Self::Refuse { threshold } => threshold,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Flag { .. } => "flag",
            Self::Premium { .. } => "premium",
            Self::Throttle { .. } => "throttle",
            Self::Refuse { .. } => "refuse",
        }
    }

    pub(super) fn validate(&self, at: &str, managed: bool) -> Result<(), Invalid> {
        let t = self.threshold();
        ensure(t > 0.0 && t <= 1.0, at, "threshold", "must be in (0, 1]")?;
        match *self {
            Self::Premium { per_1k_usd, .. } => {
                ensure(positive(per_1k_usd), at, "per_1k_usd", "must be positive")?;
                ensure(managed, at, "action", "a premium is priced in admission: the model needs `capacity`")
            }
            Self::Throttle { per_minute, .. } => ensure(per_minute > 0, at, "per_minute", "must be at least 1"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct M {
        extraction: ExtractionPolicy,
    }

    fn parse(s: &str) -> Result<ExtractionPolicy, toml::de::Error> {
        toml::from_str::<M>(s).map(|m| m.extraction)
    }

    #[test]
    fn each_action_carries_what_it_needs_and_nothing_else() {
        assert_eq!(
            parse("[extraction]\naction = \"refuse\"").unwrap(),
            ExtractionPolicy::Refuse { threshold: crate::guard::score::DEFAULT_THRESHOLD }
        );
        let t = parse("[extraction]\naction = \"throttle\"\nper_minute = 5\nthreshold = 0.5").unwrap();
        assert_eq!(t, ExtractionPolicy::Throttle { threshold: 0.5, per_minute: 5 });
        assert!(parse("[extraction]\naction = \"throttle\"").is_err(), "a throttle needs its rate");
        assert!(parse("[extraction]\naction = \"refuse\"\nper_minute = 5").is_err(), "unknown field");
        assert!(parse("[extraction]\naction = \"ban\"").is_err());
        let p = parse("[extraction]\naction = \"premium\"\nper_1k_usd = 0.5").unwrap();
        assert!(p.validate("m", false).is_err(), "a premium needs admission");
        assert!(p.validate("m", true).is_ok());
        assert!(parse("[extraction]\naction = \"flag\"\nthreshold = 1.5").unwrap().validate("m", true).is_err());
        let watch = |min_requests, horizon_s| GuardConfig { enabled: true, horizon_s, min_requests }.validate("guard");
        assert!(watch(20, 3600).is_ok());
        assert!(watch(300, 3600).is_err(), "no window holds 300 requests: nothing would ever be scored");
        assert!(watch(20, u64::MAX).is_err());
    }
}
