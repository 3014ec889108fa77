//! Validation of a parsed configuration as a whole: references resolve, names are unique,
//! numbers are sane; every error names the field as users see it (`models[1].backends[0]`).

use super::{Config, ConfigError};
use std::collections::HashSet;

/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x > 0.0
}

/// `x >= 0`, false for NaN.
fn non_negative(x: f64) -> bool {
    x >= 0.0
}

impl Config {
    /// Checks what types cannot: references resolve, names are unique, numbers are sane.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |field: String, message: String| Err(ConfigError::Invalid { origin: origin.into(), field, message });
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("listen".into(), format!("`{}` is not an address like 127.0.0.1:8080", self.listen));
        }
        if self.body_limit_bytes < 1024 {
            return bad("body_limit_bytes".into(), "must be at least 1024".into());
        }
        if self.header_timeout_ms < 100 {
            return bad("header_timeout_ms".into(), "must be at least 100".into());
        }
        if self.header_limit_bytes < 8192 {
            return bad("header_limit_bytes".into(), "must be at least 8192".into());
        }
        if self.circuit.failure_threshold == 0 {
            return bad("circuit.failure_threshold".into(), "must be at least 1".into());
        }
        if self.auth_failures_per_minute == 0 {
            return bad("auth_failures_per_minute".into(), "must be at least 1".into());
        }
        match self.state.as_deref() {
            None | Some("memory") => {}
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {}
            Some(_) => return bad("state".into(), "must be \"memory\" or a redis:// URL".into()),
        }
        if let Some(u) = &self.ledger {
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                return bad("ledger".into(), "must be a postgres:// URL (SQLite in data_dir is the default)".into());
            }
        }
        if let Some(t) = &self.tracing {
            if let Some(e) = &t.otlp_endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return bad("tracing.otlp_endpoint".into(), "must be an http:// or https:// URL".into());
                }
            }
            if t.export_interval_ms == 0 || t.export_timeout_ms == 0 {
                return bad("tracing".into(), "export_interval_ms and export_timeout_ms must be > 0".into());
            }
        }
        if self.redis.replicas == 0 || self.redis.ttl_ms < 100 || self.redis.timeout_ms == 0 {
            return bad("redis".into(), "replicas >= 1, ttl_ms >= 100 and timeout_ms > 0".into());
        }
        let mut names = HashSet::new();
        for (i, b) in self.backends.iter().enumerate() {
            let f = |k: &str| format!("backends[{i}].{k}");
            if !names.insert(b.name.as_str()) {
                return bad(f("name"), format!("duplicate backend `{}`", b.name));
            }
            match reqwest::Url::parse(&b.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return bad(f("url"), format!("`{}` is not an http(s) URL", b.url)),
            }
            if b.connect_timeout_ms == 0 || b.first_byte_timeout_ms == 0 || b.idle_timeout_ms == 0 {
                return bad(f("*_timeout_ms"), "timeouts must be positive".into());
            }
            if b.max_in_flight == 0 {
                return bad(f("max_in_flight"), "must be at least 1".into());
            }
            if b.cost_per_1m_input < 0.0 || b.cost_per_1m_output < 0.0 {
                return bad(f("cost_per_1m_input"), "costs must be non-negative".into());
            }
        }
        if self.models.is_empty() {
            return bad("models".into(), "at least one model is needed".into());
        }
        let mut models = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            if !models.insert(m.name.as_str()) {
                return bad(format!("models[{i}].name"), format!("duplicate model `{}`", m.name));
            }
            if m.backends.is_empty() {
                return bad(format!("models[{i}].backends"), "a model needs at least one backend".into());
            }
            for (j, b) in m.backends.iter().enumerate() {
                if !names.contains(b.as_str()) {
                    return bad(format!("models[{i}].backends[{j}]"), format!("unknown backend `{b}`"));
                }
            }
        }
        if let Some(sc) = &self.cache.semantic {
            match reqwest::Url::parse(&sc.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return bad("cache.semantic.url".into(), format!("`{}` is not an http(s) URL", sc.url)),
            }
            if !(sc.threshold > 0.0 && sc.threshold <= 1.0) {
                return bad("cache.semantic.threshold".into(), "must be in (0, 1]".into());
            }
            if sc.max_entries_per_scope == 0 {
                return bad("cache.semantic.max_entries_per_scope".into(), "must be at least 1".into());
            }
        }
        let sites: HashSet<&str> = self.sites.iter().map(|s| s.name.as_str()).collect();
        for (i, site) in self.sites.iter().enumerate() {
            if !positive(site.power_cap_watts) {
                return bad(format!("sites[{i}].power_cap_watts"), "must be positive".into());
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            if let Some(c) = &m.capacity {
                let f = |k: &str| format!("models[{i}].capacity.{k}");
                if let Err(e) = crate::capacity::Profile::resolve(&c.profile) {
                    return bad(f("profile"), e.to_string());
                }
                if c.replicas == 0 {
                    return bad(f("replicas"), "must be at least 1".into());
                }
                if !(positive(c.sla_utilisation) && c.sla_utilisation <= 1.0) {
                    return bad(f("sla_utilisation"), "must be in (0, 1]".into());
                }
                if !non_negative(c.cost_per_engine_second) || c.watts.is_some_and(|w| !non_negative(w)) {
                    return bad(f("cost_per_engine_second"), "cost and watts must be non-negative".into());
                }
                if !positive(c.queue_window_s) {
                    return bad(f("queue_window_s"), "must be positive".into());
                }
                if let Some(site) = &c.site {
                    if !sites.contains(site.as_str()) {
                        return bad(f("site"), format!("unknown site `{site}`"));
                    }
                }
            }
            if m.router.is_some() && m.fallbacks.is_empty() {
                return bad(format!("models[{i}].router"), "a router needs fallbacks to route to".into());
            }
            for (j, fb) in m.fallbacks.iter().enumerate() {
                if !models.contains(fb.model.as_str()) || fb.model == m.name {
                    return bad(
                        format!("models[{i}].fallbacks[{j}].model"),
                        format!("unknown or same model `{}`", fb.model),
                    );
                }
                if !(positive(fb.quality) && fb.quality <= 1.0) {
                    return bad(format!("models[{i}].fallbacks[{j}].quality"), "must be in (0, 1]".into());
                }
            }
        }
        let mut tiers = HashSet::new();
        for (i, t) in self.tiers.iter().enumerate() {
            if !tiers.insert(t.name.as_str()) {
                return bad(format!("tiers[{i}].name"), format!("duplicate tier `{}`", t.name));
            }
            if !(non_negative(t.input_price_per_1m) && non_negative(t.output_price_per_1m)) {
                return bad(format!("tiers[{i}].input_price_per_1m"), "prices must be non-negative".into());
            }
            if t.value_per_1m_input.is_some_and(|v| !non_negative(v))
                || t.value_per_1m_output.is_some_and(|v| !non_negative(v))
            {
                return bad(format!("tiers[{i}].value_per_1m_input"), "values must be non-negative".into());
            }
            if !non_negative(t.reserved_engine_seconds) {
                return bad(format!("tiers[{i}].reserved_engine_seconds"), "must be non-negative".into());
            }
        }
        let mut tenants = HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !tenants.insert(t.name.as_str()) {
                return bad(format!("tenants[{i}].name"), format!("duplicate tenant `{}`", t.name));
            }
            if !tiers.contains(t.tier.as_str()) {
                return bad(format!("tenants[{i}].tier"), format!("unknown tier `{}`", t.tier));
            }
            for (j, m) in t.models.iter().enumerate() {
                if m != "*" && !models.contains(m.as_str()) {
                    return bad(format!("tenants[{i}].models[{j}]"), format!("unknown model `{m}`"));
                }
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            for (j, t) in m.allowed_tenants.iter().flatten().enumerate() {
                if !tenants.contains(t.as_str()) {
                    return bad(format!("models[{i}].allowed_tenants[{j}]"), format!("unknown tenant `{t}`"));
                }
            }
        }
        if !(positive(self.admission.horizon_s) && positive(self.admission.forecast_half_life_s)) {
            return bad("admission.horizon_s".into(), "horizon and half-life must be positive".into());
        }
        if self.admission.solve_interval_ms == 0 {
            return bad("admission.solve_interval_ms".into(), "must be positive".into());
        }
        Ok(())
    }
}
