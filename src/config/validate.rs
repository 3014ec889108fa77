//! Validation of a parsed configuration: each section checks its own fields (in its own file,
//! `validate(&self, at)`, with the helpers of `check.rs`), and this file checks what spans sections (references resolve, names
//! are unique). Every error names the field as users see it (`models[1].backends[0]`).

use super::check::{ensure, Invalid};
use super::{Config, ConfigError};
use std::collections::HashSet;

impl Config {
    /// Checks what types cannot: each section's own fields, then references and unique names.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        self.check().map_err(|Invalid { field, message }| ConfigError::Invalid {
            origin: origin.into(),
            field,
            message,
        })
    }

    fn check(&self) -> Result<(), Invalid> {
        self.check_server()?;
        self.health.validate("health")?;
        self.circuit.validate("circuit")?;
        self.redis.validate("redis")?;
        if let Some(t) = &self.tracing {
            t.validate("tracing")?;
        }
        self.cache.validate("cache")?;
        self.responses.validate("responses")?;
        self.batches.validate("batches")?;
        self.admission.validate("admission")?;
        self.guard.validate("guard")?;
        let backends = unique(self.backends.iter().map(|b| b.name.as_str()), "backends", "backend")?;
        for (i, b) in self.backends.iter().enumerate() {
            b.validate(&format!("backends[{i}]"))?;
        }
        ensure(!self.models.is_empty(), "", "models", "at least one model is needed")?;
        let models = unique(self.models.iter().map(|m| m.name.as_str()), "models", "model")?;
        for (i, site) in self.sites.iter().enumerate() {
            site.validate(&format!("sites[{i}]"))?;
        }
        let sites: HashSet<&str> = self.sites.iter().map(|s| s.name.as_str()).collect();
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("models[{i}]");
            m.validate(&at)?;
            if let Some(p) = &m.extraction {
                p.validate(&format!("{at}.extraction"), m.capacity.is_some())?;
            }
            for (j, b) in m.backends.iter().enumerate() {
                ensure(
                    backends.contains(b.as_str()),
                    &at,
                    &format!("backends[{j}]"),
                    format!("unknown backend `{b}`"),
                )?;
            }
            if let Some(site) = m.capacity.as_ref().and_then(|c| c.site.as_ref()) {
                ensure(sites.contains(site.as_str()), &at, "capacity.site", format!("unknown site `{site}`"))?;
            }
            for (j, fb) in m.fallbacks.iter().enumerate() {
                let known = models.contains(fb.model.as_str()) && fb.model != m.name;
                let msg = format!("unknown or same model `{}`", fb.model);
                ensure(known, &at, &format!("fallbacks[{j}].model"), msg)?;
            }
        }
        let tiers = unique(self.tiers.iter().map(|t| t.name.as_str()), "tiers", "tier")?;
        for (i, t) in self.tiers.iter().enumerate() {
            t.validate(&format!("tiers[{i}]"))?;
        }
        self.service_tiers.validate(&tiers)?;
        let tenants = unique(self.tenants.iter().map(|t| t.name.as_str()), "tenants", "tenant")?;
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            ensure(tiers.contains(t.tier.as_str()), &at, "tier", format!("unknown tier `{}`", t.tier))?;
            let bid = t.max_bid_per_1k.is_none_or(|b| b.is_finite() && b >= 0.0);
            ensure(bid, &at, "max_bid_per_1k", "must be a non-negative number")?;
            for (j, m) in t.models.iter().enumerate() {
                let ok = m == "*" || models.contains(m.as_str());
                ensure(ok, &at, &format!("models[{j}]"), format!("unknown model `{m}`"))?;
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            for (j, t) in m.allowed_tenants.iter().flatten().enumerate() {
                let msg = format!("unknown tenant `{t}`");
                ensure(tenants.contains(t.as_str()), &format!("models[{i}]"), &format!("allowed_tenants[{j}]"), msg)?;
            }
        }
        Ok(())
    }

    /// The top-level (server) fields.
    fn check_server(&self) -> Result<(), Invalid> {
        let addr = self.listen.parse::<std::net::SocketAddr>().is_ok();
        ensure(addr, "", "listen", format!("`{}` is not an address like 127.0.0.1:8080", self.listen))?;
        ensure(self.body_limit_bytes >= 1024, "", "body_limit_bytes", "must be at least 1024")?;
        ensure(self.header_timeout_ms >= 100, "", "header_timeout_ms", "must be at least 100")?;
        ensure(self.header_limit_bytes >= 8192, "", "header_limit_bytes", "must be at least 8192")?;
        ensure(self.auth_failures_per_minute > 0, "", "auth_failures_per_minute", "must be at least 1")?;
        let state_ok = match self.state.as_deref() {
            None | Some("memory") => true,
            Some(u) => u.starts_with("redis://") || u.starts_with("rediss://"),
        };
        ensure(state_ok, "", "state", "must be \"memory\" or a redis:// URL")?;
        let ledger_ok =
            self.ledger.as_deref().is_none_or(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
        ensure(ledger_ok, "", "ledger", "must be a postgres:// URL (SQLite in data_dir is the default)")
    }
}

/// The names of a list's entries, failing on the first duplicate (`tiers[2].name`).
fn unique<'a>(names: impl Iterator<Item = &'a str>, list: &str, what: &str) -> Result<HashSet<&'a str>, Invalid> {
    let mut seen = HashSet::new();
    for (i, n) in names.enumerate() {
        ensure(seen.insert(n), &format!("{list}[{i}]"), "name", format!("duplicate {what} `{n}`"))?;
    }
    Ok(seen)
}
