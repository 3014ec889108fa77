//! The shared-state scripts (`src/state/lua/`) driven directly through `RedisState`s on a real
//! Redis, as several replicas would: exact under contention, calendar months, and a replica that
//! comes back after its presence lapsed. The end-to-end replicas test is `tests/scale_out.rs`.

mod common;

use common::services::Redis;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate::state::SharedState;

/// The scripts under contention from three replicas at once (three `RedisState`s, as three
/// processes would be): pool reservations never exceed the room and fill it; budget holds never
/// exceed the budget; a tokens-per-minute window never admits more than its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_scripts_are_exact_under_contention() {
    let redis = Redis::start();
    let cfg = tollgate::config::RedisConfig { ttl_ms: 10_000, timeout_ms: 10_000, ..Default::default() };
    let limits: HashMap<String, tollgate::state::TenantLimits> = [(
        "t".to_string(),
        tollgate::state::TenantLimits {
            budget_usd: Some(1.0),
            spent_usd: 0.0,
            spent_month_ms: 0,
            tokens_per_minute: Some(100_000),
            requests_per_minute: None,
        },
    )]
    .into();
    let states: Vec<Arc<tollgate::state::RedisState>> = (0..3)
        .map(|_| {
            Arc::new(tollgate::state::RedisState::new(&redis.url, &cfg, limits.clone(), vec!["p".into()]).unwrap())
        })
        .collect();
    for s in &states {
        s.heartbeat().await.unwrap();
    }
    const ROOM: i64 = 10_000_000; // 10 engine-seconds
    let peak = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let granted = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (s, peak, granted) = (states[i % 3].clone(), peak.clone(), granted.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..60 {
                let work = 300_000 + 100_000 * ((i + n) % 7) as i64;
                let v = s.reserve_pool(0, work, work / 4, ROOM).await.unwrap().unwrap();
                peak.fetch_max(v.inflight, std::sync::atomic::Ordering::Relaxed);
                if v.granted {
                    granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    s.release_pool(0, work, work / 4, v.epoch);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak <= ROOM, "reserved {peak} of {ROOM}");
    assert!(peak >= ROOM * 8 / 10, "contention filled the room: {peak} of {ROOM}");
    assert!(granted.load(std::sync::atomic::Ordering::Relaxed) > 100);
    // Releases run in the background: the pool drains to zero.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = states[0].reserve_pool(0, 0, 0, ROOM).await.unwrap().unwrap();
        if v.inflight == 0 && v.backlog == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "reservations not released: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Budget: 1 USD, 30 clients holding 0.03 USD each and settling 0.02 USD; the sum of what was
    // admitted never lets spent plus held pass the budget.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let s = states[i % 3].clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..10 {
                match s.admit_tenant("t", 0.03, 1000).await.unwrap() {
                    Ok(g) => {
                        ok += 1;
                        s.settle_tenant(g, 0.02, 1000);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
            ok
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (spent, held) = states[0].tenant_usage("t").await.unwrap().unwrap();
    assert_eq!(held, 0.0);
    assert!((spent - admitted as f64 * 0.02).abs() < 1e-6, "spent {spent} for {admitted} admitted");
    assert!(spent <= 1.0 + 1e-9, "budget overspent: {spent}");
    assert!(spent >= 1.0 - 0.03 - 1e-9, "the budget was used to its end: {spent}");
    // Tokens per minute: 100,000 limit, 1,000 per request: exactly 100 requests in the minute
    // (the budget grants above already counted theirs).
    let counted = admitted as u64 * 1000;
    let mut extra = 0;
    let limits_only = tollgate::state::TenantLimits { budget_usd: None, ..limits["t"].clone() };
    let s =
        tollgate::state::RedisState::new(&redis.url, &cfg, [("t".to_string(), limits_only)].into(), vec![]).unwrap();
    s.heartbeat().await.unwrap();
    while s.admit_tenant("t", 0.0, 1000).await.unwrap().is_ok() {
        extra += 1;
    }
    assert_eq!(counted + extra * 1000, 100_000, "the window admits exactly its limit");
}

/// Spend is kept per calendar month (UTC) in Redis: a new month starts at zero (not at the spend
/// the ledger reported at start), a request admitted before the boundary is charged to its own
/// month, and the ledger's figure seeds only the month it was counted in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_boundary_resets_spend_in_redis() {
    use tollgate::state::SharedState;
    let redis = Redis::start();
    let cfg = tollgate::config::RedisConfig { ttl_ms: 10_000, timeout_ms: 10_000, ..Default::default() };
    // 2026-11-30T23:59:00Z and 2026-12-01T00:01:00Z.
    let (nov, dec) = (1_796_083_140_000_i64, 1_796_083_260_000_i64);
    let nov_start = tollgate::units::month_start_ms(nov);
    assert_ne!(nov_start, tollgate::units::month_start_ms(dec));
    let limits: HashMap<String, tollgate::state::TenantLimits> = [(
        "t".to_string(),
        tollgate::state::TenantLimits {
            budget_usd: Some(1.0),
            // The ledger said 0.9 USD was spent in November before this replica started.
            spent_usd: 0.9,
            spent_month_ms: nov_start,
            ..Default::default()
        },
    )]
    .into();
    let state = tollgate::state::RedisState::new(&redis.url, &cfg, limits, vec!["p".into()]).unwrap();
    state.heartbeat().await.unwrap();
    // November: 0.2 more does not fit; 0.05 does, and stays in flight across the boundary.
    assert_eq!(state.admit_tenant_at("t", 0.2, 0, nov).await.unwrap().unwrap_err(), tollgate::state::Denied::Budget);
    let in_flight = state.admit_tenant_at("t", 0.05, 0, nov).await.unwrap().unwrap();
    // December starts at zero: 0.6 fits though November was nearly spent.
    let dec_grant = state.admit_tenant_at("t", 0.6, 0, dec).await.unwrap().unwrap();
    // The November request ends in December: its charge goes to November, not December.
    state.settle_tenant(in_flight, 0.05, 0);
    state.settle_tenant(dec_grant, 0.6, 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(state.admit_tenant_at("t", 0.4, 0, dec).await.unwrap().is_ok(), "December has 0.4 left");
    assert_eq!(state.admit_tenant_at("t", 0.01, 0, dec).await.unwrap().unwrap_err(), tollgate::state::Denied::Budget);
    assert_eq!(state.admit_tenant_at("t", 0.06, 0, nov).await.unwrap().unwrap_err(), tollgate::state::Denied::Budget);
}

/// A replica that was away past the TTL and comes back cannot give back, from what it holds
/// now, what it held before the lapse (the others already dropped that): its holds and
/// reservations are kept per epoch of its presence, and an old grant settles against a field
/// that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revived_replica_cannot_release_what_it_no_longer_holds() {
    use tollgate::state::{Denied, SharedState};
    let redis = Redis::start();
    // A generous answer time: the first call connects and loads the scripts, which can take
    // longer than the default 250 ms on a cold CI machine; the TTL is what this test is about.
    let cfg = tollgate::config::RedisConfig { ttl_ms: 1000, timeout_ms: 10_000, ..Default::default() };
    let limits: HashMap<String, tollgate::state::TenantLimits> =
        [("t".to_string(), tollgate::state::TenantLimits { budget_usd: Some(1.0), ..Default::default() })].into();
    let new = || tollgate::state::RedisState::new(&redis.url, &cfg, limits.clone(), vec!["p".into()]).unwrap();
    let (a, b) = (new(), new());
    a.heartbeat().await.unwrap();
    b.heartbeat().await.unwrap();
    let old_hold = a.admit_tenant("t", 0.5, 0).await.unwrap().unwrap();
    let old_room = a.reserve_pool(0, 600, 0, 1000).await.unwrap().unwrap();
    assert!(old_room.granted);
    // A is away past the TTL (B keeps renewing): B's scripts drop what A held.
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.heartbeat().await.unwrap();
    }
    let b_hold = b.admit_tenant("t", 0.9, 0).await.unwrap().unwrap();
    assert!(b.reserve_pool(0, 900, 0, 1000).await.unwrap().unwrap().granted, "A's room was reclaimed");
    // A comes back, holds a little more, then its pre-lapse grants end.
    a.heartbeat().await.unwrap();
    let _new_hold = a.admit_tenant("t", 0.05, 0).await.unwrap().unwrap();
    assert!(a.reserve_pool(0, 50, 0, 1000).await.unwrap().unwrap().granted);
    a.settle_tenant(old_hold, 0.0, 0);
    a.release_pool(0, 600, 0, old_room.epoch);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Held: B's 0.9 and A's new 0.05; the old 0.5 given back frees nothing that is held.
    assert_eq!(b.admit_tenant("t", 0.1, 0).await.unwrap().unwrap_err(), Denied::Budget);
    let (_, held) = b.tenant_usage("t").await.unwrap().unwrap();
    assert!((held - 0.95).abs() < 1e-9, "held {held}");
    // The pool: 900 + 50 of 1000 in flight; the old 600 released frees nothing.
    let view = b.reserve_pool(0, 0, 0, 1000).await.unwrap().unwrap();
    assert_eq!(view.inflight, 950);
    assert!(!b.reserve_pool(0, 100, 0, 1000).await.unwrap().unwrap().granted);
    drop(b_hold);
}
