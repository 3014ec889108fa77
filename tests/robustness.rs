//! Robustness runs, briefly: shipped scenarios at 2x for a few simulated minutes, with their
//! traffic changed halfway in ways the forecast has not seen, or one replica of their first pool
//! lost halfway. Bid prices must still capture more value than the best baseline (FIFO, strict
//! priority, per-tenant quotas) in every run. The Azure scenario (where admission's settings were
//! chosen) has the runs the issue named; the others run every class's change. On one held-out
//! scenario the claim does not hold yet, and its test is ignored, with the figures:
//! `decode-heavy` (bid prices lose).

use std::path::Path;
use tollgate::sim::request::SimRequest;
use tollgate::sim::robust::{apply, Perturbation};
use tollgate::sim::run::{load_requests, Load};
use tollgate::sim::scenario::{Outage, Scenario};
use tollgate::sim::suite::{evaluate, POLICIES};

/// Bid prices' value and the best baseline's in one run, printed.
fn values(sc: &Scenario, reqs: &[SimRequest], name: &str) -> (f64, f64) {
    let r = evaluate(sc, reqs, 2.0, &POLICIES, false, &mut |_, _| {}).unwrap();
    let value = |name: &str| r.policies.iter().find(|x| x.policy == name).unwrap().value_usd;
    let best = ["fifo", "priority", "quota"].into_iter().map(value).fold(0.0, f64::max);
    let bid = value("bid-price");
    println!("{} | {name}: bid-price {bid:.4} USD, best baseline {best:.4} ({:.3}x)", sc.name, bid / best);
    (bid, best)
}

/// The first `seconds` of a shipped scenario at 2x, and the time halfway through its requests.
fn slice(scenario: &str, seconds: f64) -> (Scenario, Vec<SimRequest>, f64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(scenario);
    let (mut sc, base) = Scenario::from_file(&path).unwrap();
    sc.duration_s = Some(seconds);
    let reqs = load_requests(&sc, &base, &Load { overload: 2.0, ..Load::default() }).unwrap();
    let half = reqs.last().unwrap().at / 2.0;
    (sc, reqs, half)
}

/// Every change of the traffic on any scenario: outputs twice and half as long, and each class's
/// rate doubling and each class arriving new.
fn every_change(sc: &Scenario) -> Vec<Perturbation> {
    let mut runs = vec![Perturbation::OutputsScaled { factor: 2.0 }, Perturbation::OutputsScaled { factor: 0.5 }];
    for class in 0..sc.classes.len() {
        runs.extend([Perturbation::RateDoubles { class }, Perturbation::NewTenant { class }]);
    }
    runs
}

/// Runs `changes` of a scenario's first `seconds`, each halfway, then a replica of its first pool
/// lost halfway. Asserts, after all of them ran, that bid prices captured more than the best
/// baseline in each.
fn runs(scenario: &str, seconds: f64, changes: fn(&Scenario) -> Vec<Perturbation>) {
    let (mut sc, reqs, half) = slice(scenario, seconds);
    let mut lost = Vec::new();
    for p in changes(&sc) {
        let (bid, best) = values(&sc, &apply(&reqs, p, half), &p.name());
        if bid <= best {
            lost.push(p.name());
        }
    }
    sc.outages = vec![Outage { pool: sc.pools[0].name.clone(), at_s: half }];
    let name = format!("a {} replica lost", sc.pools[0].name);
    let (bid, best) = values(&sc, &reqs, &name);
    if bid <= best {
        lost.push(name);
    }
    assert!(lost.is_empty(), "{scenario}: bid prices at or below the best baseline in {lost:?}");
}

/// Every change on a scenario, then a replica lost.
fn every_run(scenario: &str, seconds: f64) {
    runs(scenario, seconds, every_change);
}

/// On the development scenario, the changes the issue named: consumer chat's and enterprise
/// coding's rates doubling, enterprise coding arriving new, outputs mis-forecast 2x either way;
/// then one of the four 70B replicas lost, with what it was serving.
#[test]
fn bid_prices_stay_above_the_best_baseline_when_traffic_changes_mid_trace() {
    runs("azure-conv-code.toml", 180.0, |sc| {
        let class = |name: &str| sc.classes.iter().position(|c| c.name == name).unwrap();
        let (consumer, enterprise) = (class("consumer-chat"), class("enterprise-code"));
        vec![
            Perturbation::RateDoubles { class: consumer },
            Perturbation::RateDoubles { class: enterprise },
            Perturbation::NewTenant { class: enterprise },
            Perturbation::OutputsScaled { factor: 2.0 },
            Perturbation::OutputsScaled { factor: 0.5 },
        ]
    });
}

/// Held out: no admission setting was chosen on it. Four classes on two pools with a fallback.
#[test]
fn and_on_a_held_out_scenario() {
    every_run("mixed-fleet.toml", 180.0);
}

/// Held out, bursty per-client arrivals. Since stop 50 (the LP's price charged only while a pool
/// is as full as the plan allows) bid prices lead in all seven runs, the closest by 1.3% (outputs
/// half as long) and 1.9% (class 0 or class 1 arriving new). Until then the margins were within
/// 2% either way and the test was ignored.
#[test]
fn and_on_the_bursty_clients_scenario() {
    every_run("servegen-clients.toml", 180.0);
}

/// The other development scenario; ten minutes, since its long prompts arrive a few a second.
#[test]
fn and_on_the_long_prompt_scenario() {
    every_run("mooncake-prefix.toml", 600.0);
}

/// Not in the default run: on the decode-heavy scenario (held out; at 2x the pro tier's work
/// alone is most of the pool, and both tiers' requests hold the room for minutes) a baseline
/// captures more than bid prices in 5 of these 7 runs.
/// Run it with `--ignored` to see them.
#[test]
#[ignore = "bid prices lose to the best baseline here in 5 of 7 runs (0.84-0.97x); issue 21"]
fn and_on_the_decode_heavy_scenario() {
    every_run("decode-heavy.toml", 600.0);
}
