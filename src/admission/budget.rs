//! Tenant budgets: the expected charge is held at admission and settled with the real one when
//! the response ends, so a tenant can overspend by at most what it has in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const MICRO_USD: f64 = 1e6;

#[derive(Debug)]
struct Account {
    limit: Option<i64>,
    spent: AtomicI64,
    held: AtomicI64,
}

/// Budgets of every tenant, in micro-USD.
#[derive(Debug, Default)]
pub struct Budgets {
    accounts: HashMap<String, Arc<Account>>,
}

/// An expected charge held against a tenant's budget until settled or dropped.
#[derive(Debug)]
pub struct Hold {
    account: Arc<Account>,
    amount: i64,
    settled: bool,
}

impl Hold {
    /// Replaces the held estimate by the real charge.
    pub fn settle(mut self, actual_usd: f64) {
        self.account.spent.fetch_add((actual_usd * MICRO_USD).round() as i64, Ordering::AcqRel);
        self.account.held.fetch_sub(self.amount, Ordering::AcqRel);
        self.settled = true;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.settled {
            self.account.held.fetch_sub(self.amount, Ordering::AcqRel);
        }
    }
}

impl Budgets {
    /// `limits`: tenant -> (monthly budget in USD if any, already spent this month in USD).
    pub fn new(limits: impl IntoIterator<Item = (String, Option<f64>, f64)>) -> Self {
        let accounts = limits
            .into_iter()
            .map(|(t, limit, spent)| {
                let a = Account {
                    limit: limit.map(|l| (l * MICRO_USD) as i64),
                    spent: AtomicI64::new((spent * MICRO_USD) as i64),
                    held: AtomicI64::new(0),
                };
                (t, Arc::new(a))
            })
            .collect();
        Self { accounts }
    }

    /// Holds `estimate_usd` if the tenant's spent plus held plus it stays within its budget.
    /// `None` when it would overspend. Tenants without a budget always get a hold.
    pub fn hold(&self, tenant: &str, estimate_usd: f64) -> Option<Hold> {
        let account = self.accounts.get(tenant)?.clone();
        let amount = (estimate_usd.max(0.0) * MICRO_USD).round() as i64;
        let held = account.held.fetch_add(amount, Ordering::AcqRel) + amount;
        if let Some(limit) = account.limit {
            if account.spent.load(Ordering::Acquire) + held > limit {
                account.held.fetch_sub(amount, Ordering::AcqRel);
                return None;
            }
        }
        Some(Hold { account, amount, settled: false })
    }

    /// (spent, held) in USD.
    pub fn usage(&self, tenant: &str) -> Option<(f64, f64)> {
        self.accounts.get(tenant).map(|a| {
            (a.spent.load(Ordering::Acquire) as f64 / MICRO_USD, a.held.load(Ordering::Acquire) as f64 / MICRO_USD)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_settle_and_the_limit_binds_on_spent_plus_held() {
        let b = Budgets::new([("t".to_string(), Some(1.0), 0.25)]);
        let h1 = b.hold("t", 0.5).unwrap();
        assert!(b.hold("t", 0.5).is_none(), "0.25 + 0.5 + 0.5 > 1");
        h1.settle(0.1);
        assert_eq!(b.usage("t"), Some((0.35, 0.0)));
        let h2 = b.hold("t", 0.6).unwrap();
        drop(h2);
        assert_eq!(b.usage("t"), Some((0.35, 0.0)));
        assert!(b.hold("nobody", 0.1).is_none());
    }
}
