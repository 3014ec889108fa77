//! `[service_tiers]`: which tier serves a request that names OpenAI's `service_tier`. `auto` and
//! `default` (or none) use the key's tenant's tier; `flex` and `priority` use the tiers named here:
//! typically a cheaper tier for flex (lower prices, hence lower value, which bid-price admission
//! refuses with 429 and Retry-After while capacity is dear, or holds if the tier is deferrable)
//! and a dearer one for priority (served while others are refused or downgraded). A service tier
//! not named here is refused with 400. `batch` names the tier of the Batch API's lines (no
//! request names it: the gateway sets it on the lines it dispatches).

use super::check::{ensure, Invalid};
use serde::Deserialize;
use std::collections::HashSet;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTiers {
    /// The tier a `service_tier: "flex"` request is served, charged and valued at.
    pub flex: Option<String>,
    /// The tier a `service_tier: "priority"` request is served, charged and valued at.
    pub priority: Option<String>,
    /// The tier batch lines are served, charged and valued at (typically deferrable, at half
    /// the interactive price); unset, a batch's tenant's own tier.
    pub batch: Option<String>,
}

/// OpenAI's `service_tier`, as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTier {
    /// `auto`, `default` or none: the tenant's own tier.
    #[default]
    Default,
    Flex,
    Priority,
    /// A line of a batch (set by the gateway; a request cannot name it).
    Batch,
}

impl ServiceTier {
    /// The service tier a request names, if it is one of OpenAI's.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "auto" | "default" => Some(Self::Default),
            "flex" => Some(Self::Flex),
            "priority" => Some(Self::Priority),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Flex => "flex",
            Self::Priority => "priority",
            Self::Batch => "batch",
        }
    }
}

impl ServiceTiers {
    /// The tier named for `service`; `None` for the tenant's own, or one not offered.
    pub fn tier_name(&self, service: ServiceTier) -> Option<&str> {
        match service {
            ServiceTier::Default => None,
            ServiceTier::Flex => self.flex.as_deref(),
            ServiceTier::Priority => self.priority.as_deref(),
            ServiceTier::Batch => self.batch.as_deref(),
        }
    }

    pub(super) fn validate(&self, tiers: &HashSet<&str>) -> Result<(), Invalid> {
        for (key, name) in [("flex", &self.flex), ("priority", &self.priority), ("batch", &self.batch)] {
            if let Some(n) = name {
                ensure(tiers.contains(n.as_str()), "service_tiers", key, format!("no tier is named `{n}`"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openais_names_parse_and_named_tiers_must_exist() {
        assert_eq!(ServiceTier::parse("auto"), Some(ServiceTier::Default));
        assert_eq!(ServiceTier::parse("flex").map(ServiceTier::as_str), Some("flex"));
        assert_eq!(ServiceTier::parse("scale"), None);
        let st = ServiceTiers { flex: Some("cheap".into()), priority: None, batch: None };
        assert_eq!(st.tier_name(ServiceTier::Flex), Some("cheap"));
        assert_eq!(st.tier_name(ServiceTier::Priority), None);
        let tiers: HashSet<&str> = ["cheap"].into_iter().collect();
        assert!(st.validate(&tiers).is_ok());
        let bad = ServiceTiers { flex: None, priority: Some("gold".into()), batch: None };
        assert_eq!(bad.validate(&tiers).unwrap_err().field, "service_tiers.priority");
    }
}
