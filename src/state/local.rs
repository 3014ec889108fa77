//! The in-process state: this replica alone. Budgets and minute windows per tenant under a
//! per-tenant lock; pools are the allocator's own atomics (nothing to share), the replica always
//! leads, and the exact cache is the local one.

use super::contract::{micro, Denied, Origin, SharedState, StateError, TenantGrant, TenantLimits, MICRO};
use super::window::Window;
use crate::allocator::board::PriceBoard;
use crate::allocator::forecast::Demand;
use crate::units::{month_start_ms, unix_ms};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug)]
struct Tenant {
    limits: TenantLimits,
    /// Micro-USD spent in `month_ms`, and held by requests in flight.
    spent: i64,
    month_ms: i64,
    held: i64,
    tokens: Window,
    requests: Window,
}

pub struct LocalState {
    tenants: HashMap<String, Mutex<Tenant>>,
}

fn now_s() -> i64 {
    unix_ms().div_euclid(1000)
}

impl LocalState {
    pub fn new(limits: HashMap<String, TenantLimits>) -> Self {
        let tenants = limits
            .into_iter()
            .map(|(t, l)| {
                let spent = micro(l.spent_usd);
                let month_ms = if l.spent_month_ms > 0 { l.spent_month_ms } else { month_start_ms(unix_ms()) };
                (
                    t,
                    Mutex::new(Tenant {
                        limits: l,
                        spent,
                        month_ms,
                        held: 0,
                        tokens: Window::default(),
                        requests: Window::default(),
                    }),
                )
            })
            .collect();
        Self { tenants }
    }

    /// Starts a tenant's spend of month `month_ms` from `spent_usd` (what the shared state last
    /// said, when this replica degrades to local limits); a later month than that starts at zero.
    pub fn resume(&self, tenant: &str, spent_usd: f64, month_ms: i64) {
        let Some(t) = self.tenants.get(tenant) else { return };
        let mut t = t.lock().expect("tenant lock");
        if month_ms >= t.month_ms {
            t.month_ms = month_ms;
            t.spent = micro(spent_usd);
        }
    }

    /// The admission itself, at second `now` (pure but for the lock).
    pub fn admit_at(&self, tenant: &str, hold_usd: f64, tokens: u64, now: i64) -> Result<TenantGrant, Denied> {
        let Some(t) = self.tenants.get(tenant) else { return Err(Denied::Budget) };
        let mut t = t.lock().expect("tenant lock");
        let month_ms = month_start_ms(now * 1000);
        if month_ms > t.month_ms {
            // A new calendar month: its spend starts at zero (holds in flight stay held).
            t.spent = 0;
            t.month_ms = month_ms;
        }
        let hold = micro(hold_usd);
        let budgeted = t.limits.budget_usd.map(micro);
        if let Some(limit) = budgeted {
            if t.spent + t.held + hold > limit {
                return Err(Denied::Budget);
            }
        }
        // Check both windows before counting in either.
        let (mut tw, mut rw) = (t.tokens.clone(), t.requests.clone());
        if let Some(l) = t.limits.tokens_per_minute {
            tw.try_add(now, tokens, l).map_err(Denied::Tokens)?;
        }
        if let Some(l) = t.limits.requests_per_minute {
            rw.try_add(now, 1, l).map_err(Denied::Requests)?;
        }
        t.tokens = tw;
        t.requests = rw;
        let hold = if budgeted.is_some() { hold } else { 0 };
        t.held += hold;
        let tokens = if t.limits.tokens_per_minute.is_some() { tokens as i64 } else { 0 };
        let month_ms = t.month_ms;
        Ok(TenantGrant {
            tenant: tenant.to_string(),
            hold,
            tokens,
            second: now,
            month_ms,
            epoch: 0,
            origin: Origin::Local,
        })
    }
}

#[async_trait::async_trait]
impl SharedState for LocalState {
    fn replica_id(&self) -> &str {
        "local"
    }

    fn shared(&self) -> bool {
        false
    }

    async fn admit_tenant(
        &self,
        tenant: &str,
        hold_usd: f64,
        tokens: u64,
    ) -> Result<Result<TenantGrant, Denied>, StateError> {
        Ok(self.admit_at(tenant, hold_usd, tokens, now_s()))
    }

    fn settle_tenant(&self, g: TenantGrant, charge_usd: f64, tokens: u64) {
        let Some(t) = self.tenants.get(&g.tenant) else { return };
        let mut t = t.lock().expect("tenant lock");
        t.held -= g.hold;
        // A request admitted in a month now closed was charged to that month, not this one.
        if g.month_ms == t.month_ms {
            t.spent += micro(charge_usd);
        }
        if g.tokens > 0 {
            t.tokens.adjust(g.second, tokens as i64 - g.tokens);
        }
    }

    async fn tenant_usage(&self, tenant: &str) -> Result<Option<(f64, f64)>, StateError> {
        Ok(self.tenants.get(tenant).map(|t| {
            let t = t.lock().expect("tenant lock");
            (t.spent as f64 / MICRO, t.held as f64 / MICRO)
        }))
    }

    async fn reserve_pool(
        &self,
        _: usize,
        _: i64,
        _: i64,
        _: i64,
    ) -> Result<Option<crate::admission::reservation::PoolView>, StateError> {
        Ok(None)
    }

    fn release_pool(&self, _: usize, _: i64, _: i64, _: u64) {}

    async fn heartbeat(&self) -> Result<(), StateError> {
        Ok(())
    }

    async fn lead(&self) -> Result<bool, StateError> {
        Ok(true)
    }

    async fn exchange_forecasts(&self, own: &Demand) -> Result<Vec<Demand>, StateError> {
        Ok(vec![own.clone()])
    }

    async fn publish_board(&self, _: &PriceBoard) -> Result<(), StateError> {
        Ok(())
    }

    async fn fetch_board(&self) -> Result<Option<PriceBoard>, StateError> {
        Ok(None)
    }

    async fn cache_get(&self, _: &str) -> Result<Option<Vec<u8>>, StateError> {
        Ok(None)
    }

    fn cache_put(&self, _: &str, _: Vec<u8>, _: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(limits: TenantLimits) -> LocalState {
        LocalState::new([("t".to_string(), limits)].into())
    }

    #[test]
    fn a_new_month_starts_at_zero_and_a_late_settlement_stays_in_its_month() {
        // 2026-11-30T23:59:00Z and 2026-12-01T00:01:00Z, in seconds.
        let (nov, dec) = (1_796_083_140, 1_796_083_260);
        let nov_start = month_start_ms(nov * 1000);
        let s = state(TenantLimits {
            budget_usd: Some(1.0),
            spent_usd: 0.9,
            spent_month_ms: nov_start,
            ..Default::default()
        });
        assert_eq!(s.admit_at("t", 0.2, 0, nov).unwrap_err(), Denied::Budget);
        let late = s.admit_at("t", 0.05, 0, nov).unwrap();
        // December: the 0.9 spent in November no longer counts; the November hold still does
        // until it settles.
        let g = s.admit_at("t", 0.9, 0, dec).unwrap();
        assert_eq!(s.admit_at("t", 0.06, 0, dec).unwrap_err(), Denied::Budget);
        s.settle_tenant(late, 0.05, 0);
        s.settle_tenant(g, 0.9, 0);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (spent, held) = rt.block_on(s.tenant_usage("t")).unwrap().unwrap();
        assert!((spent - 0.9).abs() < 1e-9 && held == 0.0, "December: spent {spent}, held {held}");
        // A replica that degrades resumes from what the shared state last said for the month.
        s.resume("t", 0.95, month_start_ms(dec * 1000));
        assert_eq!(s.admit_at("t", 0.06, 0, dec).unwrap_err(), Denied::Budget);
        s.admit_at("t", 0.05, 0, dec).unwrap();
    }

    #[test]
    fn budget_binds_on_spent_plus_held_and_settles() {
        let s = state(TenantLimits { budget_usd: Some(1.0), spent_usd: 0.25, ..Default::default() });
        let g1 = s.admit_at("t", 0.5, 10, 0).unwrap();
        assert_eq!(s.admit_at("t", 0.5, 10, 0).unwrap_err(), Denied::Budget);
        s.settle_tenant(g1, 0.1, 10);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(rt.block_on(s.tenant_usage("t")).unwrap(), Some((0.35, 0.0)));
        assert_eq!(s.admit_at("nobody", 0.1, 1, 0).unwrap_err(), Denied::Budget);
    }

    #[test]
    fn token_and_request_limits_refuse_with_a_wait_and_count_nothing_when_refused() {
        let s =
            state(TenantLimits { tokens_per_minute: Some(100), requests_per_minute: Some(2), ..Default::default() });
        let g = s.admit_at("t", 0.0, 80, 10).unwrap();
        assert_eq!(s.admit_at("t", 0.0, 30, 20).unwrap_err(), Denied::Tokens(Some(50)));
        // Settling gives back the tokens not used.
        s.settle_tenant(g, 0.0, 50);
        s.admit_at("t", 0.0, 30, 20).unwrap();
        assert_eq!(s.admit_at("t", 0.0, 1, 21).unwrap_err(), Denied::Requests(Some(49)));
        assert_eq!(s.admit_at("t", 0.0, 1000, 21).unwrap_err(), Denied::Tokens(None));
    }
}
