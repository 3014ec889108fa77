//! Robustness runs, briefly: the shipped Azure scenario at 2x for three simulated minutes, with
//! its traffic changed halfway in ways the forecast has not seen, or one of its four 70B replicas
//! lost halfway. Bid prices must still capture more value than the best baseline (FIFO, strict
//! priority, per-tenant quotas) in every run.

use std::path::Path;
use tollgate::sim::robust::{apply, Perturbation};
use tollgate::sim::run::{load_requests, Load};
use tollgate::sim::scenario::{Outage, Scenario};
use tollgate::sim::suite::{evaluate, POLICIES};

fn check(sc: &Scenario, reqs: &[tollgate::sim::request::SimRequest], name: &str) {
    let r = evaluate(sc, reqs, 2.0, &POLICIES, false, &mut |_, _| {}).unwrap();
    let value = |name: &str| r.policies.iter().find(|x| x.policy == name).unwrap().value_usd;
    let best = ["fifo", "priority", "quota"].into_iter().map(value).fold(0.0, f64::max);
    let bid = value("bid-price");
    println!("{name}: bid-price {bid:.4} USD, best baseline {best:.4} ({:.2}x)", bid / best);
    assert!(bid > best, "{name}: bid-price {bid} <= best baseline {best}");
}

#[test]
fn bid_prices_stay_above_the_best_baseline_when_traffic_changes_mid_trace() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/azure-conv-code.toml");
    let (mut sc, base) = Scenario::from_file(&path).unwrap();
    sc.duration_s = Some(180.0);
    let reqs = load_requests(&sc, &base, &Load { overload: 2.0, ..Load::default() }).unwrap();
    let half = reqs.last().unwrap().at / 2.0;
    let consumer = sc.classes.iter().position(|c| c.name == "consumer-chat").unwrap();
    let enterprise = sc.classes.iter().position(|c| c.name == "enterprise-code").unwrap();
    let runs = [
        Perturbation::RateDoubles { class: consumer },
        Perturbation::RateDoubles { class: enterprise },
        Perturbation::NewTenant { class: enterprise },
        Perturbation::OutputsScaled { factor: 2.0 },
        Perturbation::OutputsScaled { factor: 0.5 },
    ];
    for p in runs {
        check(&sc, &apply(&reqs, p, half), &p.name());
    }
    // One of the four 70B replicas is lost halfway, with what it was serving.
    sc.outages = vec![Outage { pool: "llama2-70b".into(), at_s: half }];
    check(&sc, &reqs, "a llama2-70b replica lost");
}
