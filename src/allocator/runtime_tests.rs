//! The allocator's prices at run time: when the LP's shadow price is charged (only while a pool
//! is full, by its room or by its prefill queue against the TTFT objective), and service tiers
//! forecast as classes valued at their own tiers.

use super::*;
use crate::config::ServiceTier;

/// One pool of one engine; tenant `a` on tier `t` (a 1-second TTFT objective), with `flex` and
/// `priority` served at a tenth and ten times its prices.
fn cfg() -> Config {
    let toml = "[[backends]]\nname = \"b\"\nurl = \"http://127.0.0.1:9\"\n\
         [[models]]\nname = \"m\"\nbackends = [\"b\"]\n\
         capacity = { profile = \"llama3-8b-h100-tp1\", replicas = 1 }\n\
         [service_tiers]\nflex = \"f\"\npriority = \"p\"\n\
         [[tiers]]\nname = \"t\"\ninput_price_per_1m = 1.0\noutput_price_per_1m = 2.0\nttft_slo_ms = 1000\n\
         [[tiers]]\nname = \"f\"\ninput_price_per_1m = 0.1\noutput_price_per_1m = 0.2\n\
         [[tiers]]\nname = \"p\"\ninput_price_per_1m = 10.0\noutput_price_per_1m = 20.0\n\
         [[tenants]]\nname = \"a\"\ntier = \"t\"\n";
    Config::from_toml(toml, "test").expect("test config")
}

/// `n` arrivals of `key` over one second, 2,000 prompt tokens each.
fn arrive(alloc: &Allocator, key: &ClassKey, n: u32) {
    for i in 0..n {
        alloc.observe_arrival_at(key, f64::from(i) / f64::from(n), 2000.0);
    }
}

#[test]
fn service_tiers_are_classes_of_their_own_valued_at_their_tiers() {
    let cfg = cfg();
    let alloc = Allocator::new(&cfg).unwrap();
    for service in [ServiceTier::Default, ServiceTier::Flex, ServiceTier::Priority] {
        arrive(&alloc, &ClassKey { service, ..ClassKey::new("a", "m") }, 2);
    }
    let board = alloc.solve_at(&cfg, 1.0).unwrap();
    let d: Vec<f64> = board.pools[0].wants.iter().map(|w| w.density).collect();
    assert_eq!(d.len(), 3, "{d:?}");
    // Densest first, a factor of ten apart (same tokens, prices ten times apart).
    assert!((d[0] / d[1] - 10.0).abs() < 1e-6 && (d[1] / d[2] - 10.0).abs() < 1e-6, "{d:?}");
    // The tightest objective of those asking for the pool: the tenant's own tier's.
    assert_eq!(board.pools[0].ttft_slo_s, Some(1.0));
}

#[test]
fn the_lps_price_is_charged_only_while_the_pool_is_full() {
    let cfg = cfg();
    let alloc = Allocator::new(&cfg).unwrap();
    // Far more demand than one engine serves: the LP prices the pool at the class's density.
    arrive(&alloc, &ClassKey::new("a", "m"), 400);
    let board = alloc.solve_at(&cfg, 1.0).unwrap();
    let (lambda, idle) = (board.pools[0].lambda, board.pools[0].cost + board.pools[0].power);
    assert!(lambda > 0.0, "{board:?}");
    // An empty pool: one class is never priced out by scarcity, and the LP's price waits.
    assert!((alloc.price(0) - idle).abs() < 1e-12, "{} vs {idle}", alloc.price(0));
    // The room 95% in use, none of it prefill: the LP's price is charged.
    let load = alloc.load(0);
    let held = load.try_reserve(0.95 * load.room(), 0.0).expect("fits");
    assert!((alloc.price(0) - idle - lambda).abs() < 1e-12, "{} vs {}", alloc.price(0), idle + lambda);
    drop(held);
    assert!((alloc.price(0) - idle).abs() < 1e-12);
    // The room barely used, but a prefill queue that takes 95% of the TTFT objective to drain.
    let queued = 0.95 * alloc.ttft_estimate(0, 1.0, 0.0).recip();
    assert!(queued < 0.1 * load.room(), "{queued} of {}", load.room());
    let _held = load.try_reserve(queued, queued).expect("fits");
    assert!((alloc.price(0) - idle - lambda).abs() < 1e-12, "{} vs {}", alloc.price(0), idle + lambda);
}
